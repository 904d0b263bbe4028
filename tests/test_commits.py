"""Where a load's transactions end (mcptrace.ingest.commits): at points whose partial row groups DuckDB's
checkpoint cannot merge, which the rule assumes of DuckDB's vacuum and these tests check on it."""

from __future__ import annotations

import duckdb
import pytest

import mcptrace
from mcptrace.ingest import commits
from mcptrace.ingest.commits import COMMIT_ROWS, ROW_GROUP_ROWS, Transaction, ends_well, insert_target

F = ROW_GROUP_ROWS


def _row_groups(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [n for (n,) in con.execute(
        "SELECT sum(count) FROM pragma_storage_info('t') WHERE column_id = 0 AND segment_type <> 'VALIDITY' "
        "GROUP BY row_group_id ORDER BY row_group_id").fetchall()]


@pytest.mark.parametrize(("per_transaction", "merged"), [
    (F + F // 4, True),          # tails of a quarter row group: two fit in one, the checkpoint rewrites them
    (F + F // 2 + 2048, False),  # tails over half a row group: none can be merged
    (2 * F, False),              # whole row groups
    (F // 4, False),             # small transactions: appended to the last row group through the log
])
def test_the_checkpoint_merges_only_the_tails_the_rule_avoids(tmp_path, per_transaction, merged):
    """Transactions writing ``per_transaction`` rows each, then a checkpoint: DuckDB's vacuum merges their
    row groups exactly when ``ends_well`` refuses the count; fewer rows than a row group are appended to the
    table's last row group (through the write-ahead log), leaving nothing to merge."""
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE t (i BIGINT, s VARCHAR)")
    for k in range(3):
        con.execute("BEGIN")
        con.execute("INSERT INTO t SELECT i, md5(i::VARCHAR) FROM range(?, ?) r(i)",
                    [k * per_transaction, (k + 1) * per_transaction])
        con.execute("COMMIT")
    before = _row_groups(con)
    con.execute("CHECKPOINT")
    after = _row_groups(con)
    assert sum(after) == 3 * per_transaction
    assert (after != before) == merged
    assert ends_well(per_transaction) == (not merged) or F // 2 <= per_transaction < F


def test_a_transaction_ends_past_half_its_bounds_where_no_tail_can_be_merged():
    """Batches of 45,000 records writing as many messages: no commit before half of COMMIT_ROWS, then the
    first batch after which the messages end more than half into a row group; a table with few rows does
    not hold it back, one with less than a row group does until the bound."""
    txn, ends = Transaction(1 << 40), []
    for _ in range(8):
        txn.wrote("messages", 45_000)
        txn.batch(45_000, 1 << 20)
        if txn.should_commit():
            ends.append(txn.records)
            break
    assert ends == [225_000] and 225_000 % F > F // 2 and txn.records >= COMMIT_ROWS // 2
    small = Transaction(1 << 40)
    small.wrote("messages", 225_000)
    small.wrote("http_events", 9_000)
    small.batch(225_000, 1 << 20)
    assert small.should_commit()
    held = Transaction(1 << 40)
    held.wrote("messages", 225_000)
    held.wrote("http_events", 90_000)  # less than a row group: written through the log if it ended now
    held.batch(225_000, 1 << 20)
    assert not held.should_commit()
    held.batch(COMMIT_ROWS, 0)
    assert held.should_commit()  # at the bound whatever the tails
    by_bytes = Transaction(100)
    by_bytes.batch(1, 100)
    assert by_bytes.should_commit()


def test_the_loader_counts_every_row_it_writes_to_the_large_tables(monkeypatch):
    """Every insert into messages, spans and http_events of every reader's statements is counted
    (insert_target): the counts a load's transactions saw add up to the tables' rows."""
    seen: dict[str, int] = {}
    wrote = Transaction.wrote

    def spy(self, table, n):
        if table is not None:
            seen[table] = seen.get(table, 0) + n
        wrote(self, table, n)

    monkeypatch.setattr(commits.Transaction, "wrote", spy)
    ws = mcptrace.load(["data/samples", "data/incidents", "data/har", "data/inspector", "data/claude", "data/bare",
                        "data/otlp"])
    counts = {t: ws.sql(f"SELECT count(*) FROM {t}").rows()[0][0] for t in commits.LARGE_TABLES}
    assert all(counts.values())
    assert seen == counts
    assert insert_target("-- a comment\nINSERT INTO spans BY NAME SELECT 1") == "spans"
    assert insert_target("INSERT INTO rejects SELECT 1") is None
    assert insert_target("CREATE TEMP TABLE x AS SELECT 1;\nINSERT INTO messages SELECT 1") is None
