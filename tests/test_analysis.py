"""mcptrace.analysis.rebuild: the one-to-one assignment against a brute-force model, and gap rows that share
a call but say different things."""

from __future__ import annotations

import json

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mcptrace
from conftest import BARE, ROOT, SAMPLES, read_lines, write_lines
from mcptrace.analysis.rebuild import one_to_one

INCIDENTS = ROOT / "data" / "incidents"


def _greedy(edges: list[tuple[int, int, int]]) -> set[tuple[int, int]]:
    """The nearest-first assignment by its definition: repeatedly take the nearest pair whose two
    sides are both free (ties by left, then right)."""
    left = sorted(edges, key=lambda e: (e[2], e[0], e[1]))
    taken_l, taken_r, out = set(), set(), set()
    while True:
        free = [e for e in left if e[0] not in taken_l and e[1] not in taken_r]
        if not free:
            return out
        a, b, _ = free[0]
        taken_l.add(a)
        taken_r.add(b)
        out.add((a, b))


def _run(edges):
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE cand (a BIGINT, b BIGINT, dist BIGINT)")
    if edges:
        con.executemany("INSERT INTO cand VALUES (?, ?, ?)", edges)
    n = one_to_one(con, "cand", "pick", ["a"], ["b"], "dist, a, b")
    return n, set(con.execute("SELECT a, b FROM pick").fetchall())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 30)), max_size=60,
                unique_by=lambda e: (e[0], e[1])))
def test_one_to_one_is_the_nearest_first_assignment(edges):
    n, got = _run(edges)
    assert got == _greedy(edges) and n == len(got)
    # one to one, and maximal: no candidate pair left with both sides free
    assert len({a for a, _ in got}) == len({b for _, b in got}) == len(got)
    assert not [e for e in edges if e[0] not in {a for a, _ in got} and e[1] not in {b for _, b in got}]


def test_a_chain_of_candidates_is_assigned_in_one_pass():
    """Sessions ended by one crash and as many reconnects, each earlier part nearest to the next one's
    later part: every pair is taken (the shape that needs one round per pair when done by rounds)."""
    n = 3000
    edges = [(i, j, 1000 + j - i) for i in range(n) for j in (i, i + 1) if j < n]
    k, got = _run(edges)
    assert k == n and got == {(i, i) for i in range(n)}


def test_gap_rows_of_one_message_that_say_different_things_are_kept(tmp_path):
    """An invalid traceparent in _meta and another invalid one in the HTTP header of the same request:
    two invalid_traceparent rows, one per place."""
    lines = read_lines(SAMPLES / "ide_http.jsonl")
    for i, line in enumerate(lines):
        env = json.loads(line)
        msg = env["message"]
        if msg.get("method") == "tools/call":
            msg["params"].setdefault("_meta", {})["traceparent"] = "00-zz-bad"
            env["http"]["request_headers"]["traceparent"] = "ff-" + "1" * 32 + "-" + "2" * 16 + "-01"
            lines[i] = json.dumps(env)
            call_id = msg["id"]
            break
    ws = mcptrace.load(write_lines(tmp_path / "two_bad_traceparents.jsonl", lines))
    rows = ws.sql("""SELECT g.detail->>'$.where' FROM gaps g JOIN calls c USING (call_id)
                     WHERE g.code = 'invalid_traceparent' AND c.rpc_id = ? ORDER BY 1""", [json.dumps(call_id)]).rows()
    assert rows == [("HTTP traceparent header",), ("_meta.traceparent",)]


def test_if_rows_in_blocks_run_only_when_the_table_has_rows(monkeypatch):
    """``IF ROWS IN t`` ... ``END IF`` in a SQL file (rebuild.run_script): the block's statements run only
    when ``t`` has rows (``IF NO ROWS IN t``: only when it has none), a block inside a skipped one is skipped
    without reading its table, and an unbalanced block is an error naming the file."""
    from mcptrace.analysis import rebuild

    con = duckdb.connect()
    script = ["CREATE TABLE full_t AS SELECT 1 AS x", "CREATE TABLE empty_t (x INTEGER)", "CREATE TABLE ran (what VARCHAR)",
              "IF ROWS IN full_t", "INSERT INTO ran VALUES ('full')",
              "IF ROWS IN empty_t", "INSERT INTO ran VALUES ('empty')",
              "IF ROWS IN no_such_table", "INSERT INTO ran VALUES ('never')", "END IF",
              "END IF", "INSERT INTO ran VALUES ('after empty')", "END IF",
              "IF NO ROWS IN empty_t", "INSERT INTO ran VALUES ('none in empty')",
              "IF NO ROWS IN full_t", "INSERT INTO ran VALUES ('none in full')", "END IF", "END IF",
              "IF NO ROWS IN full_t", "IF NO ROWS IN no_such_table", "INSERT INTO ran VALUES ('never')", "END IF", "END IF",
              "INSERT INTO ran VALUES ('end')"]
    monkeypatch.setattr(rebuild, "statements", lambda name: tuple(script))
    rebuild.run_script(con, "blocks.sql")
    assert [r[0] for r in con.execute("SELECT what FROM ran").fetchall()] == ["full", "after empty", "none in empty",
                                                                           "end"]
    for broken, message in ((["IF ROWS IN full_t", "SELECT 1"], "without END IF"), (["END IF"], "without IF ROWS IN")):
        monkeypatch.setattr(rebuild, "statements", lambda name, b=broken: tuple(b))
        with pytest.raises(ValueError, match=f"blocks.sql: .*{message}"):
            rebuild.run_script(con, "blocks.sql")


def test_without_spans_the_span_joins_are_skipped_for_tables_of_the_same_columns(monkeypatch):
    """With no span the span joins are skipped (call_spans.sql's ``IF NO ROWS IN spans`` block makes an empty
    ``call_spans`` instead): it has the columns and types the joins give, and a capture without spans gets the
    same rows as when every statement runs over the empty ``spans``."""
    from mcptrace.analysis import rebuild

    columns = ("SELECT list((column_name, data_type) ORDER BY column_index) FROM duckdb_columns() "
               "WHERE table_name = 'call_spans'")
    tables = ("calls", "sessions", "call_spans", "gaps", "findings", "call_party", "gap_party")
    with mcptrace.load(SAMPLES) as with_spans, mcptrace.load([BARE, INCIDENTS / "untraced_parallel_turn.jsonl"]) as ws:
        assert with_spans.sql("SELECT count(*) FROM spans").rows()[0][0] > 0
        assert ws.sql("SELECT count(*) FROM spans").rows()[0][0] == 0
        assert len(with_spans.con.execute(columns).fetchall()[0][0]) == 10
        assert ws.con.execute(columns).fetchall() == with_spans.con.execute(columns).fetchall()
        skipped = {t: ws.sql(f"SELECT * FROM {t} ORDER BY ALL").rows() for t in tables}
        assert skipped["calls"] and skipped["gaps"]

        def every_statement(name: str) -> tuple[str, ...]:
            """The file's statements without its blocks: those of an IF ROWS IN block, none of an IF NO ROWS IN one."""
            out, negated = [], []
            for stmt in real_statements(name):
                cond = rebuild._IF_ROWS.match(stmt.strip())
                if cond:
                    negated.append(bool(cond.group(1)))
                elif stmt.strip() == "END IF":
                    negated.pop()
                elif not any(negated):
                    out.append(stmt)
            return tuple(out)

        real_statements = rebuild.statements
        monkeypatch.setattr(rebuild, "statements", every_statement)
        rebuild.rebuild(ws.con)
        assert {t: ws.sql(f"SELECT * FROM {t} ORDER BY ALL").rows() for t in tables} == skipped
