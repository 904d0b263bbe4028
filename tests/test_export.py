"""Exports: Chrome Trace Event JSON for Perfetto, tables to Parquet and CSV."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import mcptrace
from mcptrace.render.export import TABLES, chrome_trace, write_chrome_trace, write_table


def test_chrome_trace_of_a_session(samples_ws, tmp_path):
    sid = samples_ws.busiest_session()
    doc = json.load(open(write_chrome_trace(samples_ws.con, sid, tmp_path / "session.trace.json")))
    ev = doc["traceEvents"]
    calls = samples_ws.calls(sid).rows()
    # every call is one async begin/end pair with its call id
    begins = Counter(e["id"] for e in ev if e["ph"] == "b")
    ends = Counter(e["id"] for e in ev if e["ph"] == "e")
    assert begins == ends == Counter(c[0] for c in calls)
    # complete events per (pid, tid) are properly nested (a requirement of the format)
    by_track = defaultdict(list)
    for e in ev:
        if e["ph"] == "X":
            by_track[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for slices in by_track.values():
        stack = []
        for start, end in sorted(slices, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1] + 1, "overlapping, non-nested slices on one track"
            stack.append(end)
    # one flow per call whose client and server spans are both loaded
    n_pairs = samples_ws.sql("""SELECT count(*) FROM calls c JOIN call_spans a ON a.call_id = c.call_id AND a.role = 'client'
                                JOIN call_spans b ON b.call_id = c.call_id AND b.role = 'server'
                                WHERE c.session_id = ?""", [sid]).rows()[0][0]
    assert Counter(e["ph"] for e in ev)["s"] == Counter(e["ph"] for e in ev)["f"] == n_pairs > 0
    names = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
    assert {"MCP calls (wire)", "agent-host", "weather-mcp-stdio", "downstream-api"} <= names
    with pytest.raises(KeyError):
        chrome_trace(samples_ws.con, "s_nope")


@pytest.mark.parametrize("table", TABLES)
def test_tables_to_parquet_and_csv(samples_ws, tmp_path, table):
    n = len(samples_ws.sql(f'SELECT * FROM "{table}"'))
    assert pq.read_table(write_table(samples_ws.con, table, tmp_path / f"{table}.parquet")).num_rows == n
    assert pacsv.read_csv(write_table(samples_ws.con, table, tmp_path / f"{table}.csv")).num_rows == n


def test_unknown_table_or_format(samples_ws, tmp_path):
    with pytest.raises(mcptrace.MCPTraceError):
        write_table(samples_ws.con, "calls; DROP TABLE calls", tmp_path / "x.csv")
    with pytest.raises(mcptrace.MCPTraceError):
        write_table(samples_ws.con, "calls", tmp_path / "x.xlsx")


def test_png_export_without_a_browser_says_what_to_install(tmp_path, monkeypatch):
    import plotly.graph_objects as go

    from mcptrace.render.export import write_figure

    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    with pytest.raises(mcptrace.MCPTraceError, match="needs Chromium or Chrome: apt-get install chromium"):
        write_figure(go.Figure(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
