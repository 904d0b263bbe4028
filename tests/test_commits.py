"""Where a load's transactions end (mcptrace.ingest.commits): at points whose partial row groups DuckDB's
checkpoint cannot merge, which the rule assumes of DuckDB's vacuum and these tests check on it."""

from __future__ import annotations

import duckdb
import pytest

import mcptrace
from mcptrace.ingest import commits
from mcptrace.ingest.commits import ROW_GROUP_ROWS, Transaction, ends_well, insert_target

F = ROW_GROUP_ROWS


def _row_groups(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [n for (n,) in con.execute(
        "SELECT sum(count) FROM pragma_storage_info('t') WHERE column_id = 0 AND segment_type <> 'VALIDITY' "
        "GROUP BY row_group_id ORDER BY row_group_id").fetchall()]


@pytest.mark.parametrize(("per_transaction", "merged"), [
    (F + F // 4, True),          # tails of a quarter row group: two fit in one, the checkpoint rewrites them
    (F + F // 2, True),          # tails of exactly half: two fill one
    (F + F // 2 + 2048, False),  # tails over half a row group: none can be merged
    (2 * F, False),              # whole row groups
    (F // 4, False),             # small transactions into an empty table: appended to its last row group
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
    assert ends_well(per_transaction) == (not merged)


def test_the_bounds_of_a_well_ended_table():
    """Exactly half a row group of tail can be merged with another; fewer than half a row group in all is
    few; from half a row group to a whole one the rows would go through the write-ahead log."""
    assert not ends_well(F + F // 2) and ends_well(F + F // 2 + 1)
    assert ends_well(F // 2 - 1) and not ends_well(F // 2) and not ends_well(F - 1)
    assert ends_well(0) and ends_well(F) and ends_well(3 * F) and not ends_well(3 * F + 1)


def test_a_transaction_ends_past_half_its_bounds_where_no_tail_can_be_merged(monkeypatch):
    """Batches of 45,000 records writing as many messages, bounds of 300,000 records: no commit before half
    of them, then the first batch after which the messages end more than half into a row group; a table
    with few rows does not hold it back, one with less than a row group does until the bound."""
    monkeypatch.setattr(commits, "COMMIT_ROWS", 300_000)
    txn, ends = Transaction(1 << 40), []
    for _ in range(8):
        txn.wrote("messages", 45_000)
        txn.batch(45_000, 1 << 20)
        if txn.should_commit():
            ends.append(txn.records)
            break
    assert ends == [225_000]  # 135,000 and 180,000 end a quarter and a half into their second row group
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
    held.batch(commits.COMMIT_ROWS, 0)
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
    counts = {t: ws.sql(f"SELECT count(*) FROM {t}").rows()[0][0] for t in ("messages", "spans", "http_events")}
    assert all(counts.values())
    assert seen == counts
    assert insert_target("-- a comment\nINSERT INTO spans BY NAME SELECT 1") == "spans"
    assert insert_target("INSERT INTO rejects SELECT 1") is None
    assert insert_target("CREATE TEMP TABLE x AS SELECT 1;\nINSERT INTO messages SELECT 1") is None


def test_a_load_ends_its_transactions_where_the_rule_says_and_keeps_every_row(monkeypatch):
    """Batches of 7 records, bounds of 40 records and row groups of 16 rows (for the rule only): the loader
    commits inside files, early only where every large table's rows end well, and the tables equal a load
    with the usual bounds."""
    from mcptrace.core.db import TABLES
    from mcptrace.ingest import loader

    files = ["data/incidents"]

    def tables(ws) -> dict:
        return {t: sorted(map(repr, ws.sql(f"SELECT * {'EXCLUDE (loaded_at)' if t == 'sources' else ''} FROM {t}").rows()))
                for t in TABLES}

    usual = tables(mcptrace.load(files))
    prefetch, decided = loader._prefetch, []
    monkeypatch.setattr(loader, "_prefetch", lambda batches, depth=1: (
        b.slice(i, 7) for b in prefetch(batches, depth) for i in range(0, b.num_rows, 7)))
    monkeypatch.setattr(commits, "COMMIT_ROWS", 40)
    monkeypatch.setattr(commits, "ROW_GROUP_ROWS", 16)
    should = Transaction.should_commit

    def spy(self):
        out = should(self)
        decided.append((out, self.records, dict(self.rows)))
        return out

    monkeypatch.setattr(commits.Transaction, "should_commit", spy)
    assert tables(mcptrace.load(files)) == usual
    ends = [(records, rows) for out, records, rows in decided if out]
    early = [(records, rows) for records, rows in ends if records < 40]
    assert early and len(ends) > len(early)  # some ended early, some at the bound
    assert all(records >= 20 and all(ends_well(n) for n in rows.values()) for records, rows in early)
    assert any(not out and records >= 20 for out, records, _ in decided)  # and some went on past half
