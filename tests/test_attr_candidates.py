"""The candidates of the attribute join (``sql/attr_pairs.sql``, ``_attr_pairs``) are found through time
buckets (10 s, or 10 min for a window over 2 min: a call nothing answered reaches an hour). The buckets
only prune: the pairs must be exactly those of the rule's plain definition, a join on method, request id
and tool with the window as an inequality, whatever the windows, the bucket edges and the times before
1970."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcptrace.analysis.rebuild import WINDOW_MS
from mcptrace.core.db import run_sql_file


def _pairs(con: duckdb.DuckDBPyConnection) -> None:
    """The attribute join's candidates, as call_spans.sql leaves them to attr_pairs.sql."""
    con.execute("CREATE OR REPLACE TEMP TABLE _attr_taken AS SELECT call_id, span_id, trace_id FROM _cs_server_parent "
                "UNION ALL SELECT call_id, span_id, trace_id FROM _cs_server_link")
    run_sql_file(con, "attr_pairs.sql", {"window_ms": WINDOW_MS},
                 views={"_ap_calls": "SELECT c.* FROM calls c ANTI JOIN _attr_taken t ON t.call_id = c.call_id",
                        "_ap_spans": "SELECT s.* FROM spans s ANTI JOIN _attr_taken t ON t.span_id = s.span_id "
                                     "AND t.trace_id = s.trace_id"})

# the rule written plainly: no buckets
PLAIN = """
WITH taken AS (
    SELECT call_id, span_id, trace_id FROM _cs_server_parent
    UNION ALL SELECT call_id, span_id, trace_id FROM _cs_server_link
), c AS (
    SELECT c.*, coalesce((rpc_id::JSON)->>'$', rpc_id) AS rpc_text,
           start_ts - to_microseconds(CAST($window_ms * 1000 AS BIGINT)) AS lo,
           least(coalesce(end_ts, start_ts + INTERVAL 1 HOUR), start_ts + INTERVAL 1 HOUR)
               + to_microseconds(CAST($window_ms * 1000 AS BIGINT)) AS hi
    FROM calls c ANTI JOIN taken t ON t.call_id = c.call_id
    WHERE c.start_ts IS NOT NULL AND c.rpc_id IS NOT NULL
), s AS (
    SELECT s.* FROM spans s ANTI JOIN taken t ON t.span_id = s.span_id AND t.trace_id = s.trace_id
    WHERE s.mcp_side = 'server' AND s.mcp_method_name IS NOT NULL
)
SELECT c.call_id, s.span_id, s.trace_id, s.jsonrpc_request_id IS NOT NULL AS by_id
FROM c JOIN s ON s.mcp_method_name = c.method AND s.start_ts BETWEEN c.lo AND c.hi
WHERE (s.jsonrpc_request_id = c.rpc_text
       AND (c.tool_name IS NULL OR s.gen_ai_tool_name IS NULL OR s.gen_ai_tool_name = c.tool_name))
   OR (s.jsonrpc_request_id IS NULL AND (c.tool_name IS NULL OR s.gen_ai_tool_name = c.tool_name)
       AND (c.mcp_session_id IS NULL OR s.mcp_session_id IS NULL OR s.mcp_session_id = c.mcp_session_id))
"""

BASES = [datetime(2026, 7, 28, 12, 0, 0, tzinfo=timezone.utc),
         datetime(2026, 7, 28, 11, 59, 55, tzinfo=timezone.utc),  # a few seconds before a 10 min edge
         datetime(1969, 12, 31, 23, 30, 0, tzinfo=timezone.utc)]  # negative epoch microseconds

# offsets from the base, in ms: both sides of 10 s and 10 min edges, and past the hour
offsets = st.one_of(st.integers(-5_000, 5_000), st.integers(-700_000, 4_000_000),
                    st.sampled_from([0, 9_999, 10_000, 599_999, 600_000, 3_600_000, 3_601_000, 3_601_001]))
calls = st.lists(st.tuples(offsets,
                           st.one_of(st.none(), st.integers(0, 200_000), st.integers(0, 5_000_000)),  # duration
                           st.sampled_from(["tools/call", "tools/list"]),
                           st.sampled_from(["1", "2", '"a"']),
                           st.sampled_from([None, "search", "fetch"]),
                           st.sampled_from([None, "s1", "s2"])), max_size=12)
spans = st.lists(st.tuples(offsets, st.integers(0, 10_000),
                           st.sampled_from(["tools/call", "tools/list"]),
                           st.sampled_from([None, "1", "2", "a"]),
                           st.sampled_from([None, "search", "fetch"]),
                           st.sampled_from([None, "s1", "s2"])), max_size=12)


def _tables(con: duckdb.DuckDBPyConnection, base: datetime, cs: list, ss: list) -> None:
    ms = lambda n: base + timedelta(milliseconds=n)  # noqa: E731
    con.execute("CREATE OR REPLACE TABLE calls (call_id BIGINT, start_ts TIMESTAMPTZ, end_ts TIMESTAMPTZ, "
                "rpc_id VARCHAR, method VARCHAR, tool_name VARCHAR, trace_id VARCHAR, mcp_session_id VARCHAR)")
    con.execute("CREATE OR REPLACE TABLE spans (trace_id VARCHAR, span_id VARCHAR, start_ts TIMESTAMPTZ, "
                "end_ts TIMESTAMPTZ, mcp_side VARCHAR, mcp_method_name VARCHAR, jsonrpc_request_id VARCHAR, "
                "gen_ai_tool_name VARCHAR, mcp_session_id VARCHAR)")
    for i, (start, dur, method, rpc_id, tool, sess) in enumerate(cs):
        con.execute("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [i, ms(start), None if dur is None else ms(start + dur), rpc_id, method, tool, f"t{i}", sess])
    for i, (start, dur, method, rpc_id, tool, sess) in enumerate(ss):
        con.execute("INSERT INTO spans VALUES (?, ?, ?, ?, 'server', ?, ?, ?, ?)",
                    [f"T{i}", f"S{i}", ms(start), ms(start + dur), method, rpc_id, tool, sess])
    for t in ("_cs_server_parent", "_cs_server_link"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {t} (call_id BIGINT, span_id VARCHAR, trace_id VARCHAR)")


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), cs=calls, ss=spans)
def test_bucketed_candidates_are_the_plain_rules_pairs(base, cs, ss):
    con = duckdb.connect()
    _tables(con, base, cs, ss)
    _pairs(con)
    got = sorted(con.execute("SELECT call_id, span_id, trace_id, by_id FROM _attr_pairs").fetchall())
    want = sorted(con.execute(PLAIN, {"window_ms": WINDOW_MS}).fetchall())
    assert got == want


def test_an_unanswered_call_meets_a_span_up_to_an_hour_later_and_no_further():
    con = duckdb.connect()
    base = BASES[0]
    _tables(con, base, [(0, None, "tools/call", "1", "search", None)],
            [(30 * 60_000, 5, "tools/call", "1", "search", None),  # 30 min later: in reach
             (60 * 60_000 + int(WINDOW_MS), 5, "tools/call", "1", None, None),  # the hour and the window: in
             (60 * 60_000 + int(WINDOW_MS) + 1, 5, "tools/call", "1", None, None),  # a ms past it: out
             (30 * 60_000, 5, "tools/call", "2", "search", None)])  # another request id: out
    _pairs(con)
    assert sorted(r[0] for r in con.execute("SELECT span_id FROM _attr_pairs").fetchall()) == ["S0", "S1"]
