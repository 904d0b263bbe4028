"""Timeline: lanes from SQL, statuses and gaps drawn, the overview strip of large sessions,
capture strings escaped, exports written."""

from __future__ import annotations

import json

import numpy as np

import mcptrace
from conftest import ROOT, SAMPLES, first_index, read_lines, write_lines
from mcptrace.render.export import write_figure
from mcptrace.analysis.lanes import call_lanes
from mcptrace.render.timeline import AGGREGATE_ABOVE, STATUS_COLORS


def _call_markers(fig):
    return [t for t in fig.data if t.type == "scattergl" and t.mode == "markers" and t.legendgroup in STATUS_COLORS]


def test_timeline_of_busiest_session(samples_ws):
    sid = samples_ws.busiest_session()
    fig = samples_ws.timeline(sid)
    calls = samples_ws.calls(sid).df()
    line_traces = [t for t in fig.data if t.mode == "lines"]
    # one line trace per status present, each with one segment (3 points) per call
    assert {t.legendgroup for t in line_traces} == set(calls["status"])
    for t in line_traces:
        n = int((calls["status"] == t.legendgroup).sum())
        assert len(t.x) == 3 * n
        assert t.line.color == STATUS_COLORS[t.legendgroup]
    hover = [row for t in _call_markers(fig) for row in t.customdata]
    assert sorted(int(r[6]) for r in hover) == sorted(calls["call_id"])
    assert {r[4] for r in hover} == set(calls["trace_id"].fillna("(none)"))
    assert all("%{customdata[4]}" in t.hovertemplate for t in _call_markers(fig))
    gap_traces = [t for t in fig.data if t.name and t.name.startswith("gap: ")]
    n_gaps = len(samples_ws.gaps(session_id=sid))
    assert sum(len(t.x) for t in gap_traces) == n_gaps
    assert fig.layout.xaxis.type == "date"


def test_hostile_strings_are_escaped_in_hover(tmp_path):
    payload = '<img src=x onerror="alert(1)">'
    lines = read_lines(SAMPLES / "agent_stdio.jsonl")
    i = first_index(lines, lambda e: e["message"].get("method") == "tools/call")
    env = json.loads(lines[i])
    env["message"]["params"]["name"] = payload
    lines[i] = json.dumps(env)
    ws = mcptrace.load(write_lines(tmp_path / "hostile_tool_name.jsonl", lines))
    fig = ws.timeline(ws.busiest_session())
    hover = "\n".join(str(v) for t in fig.data if t.customdata is not None for row in t.customdata for v in row)
    assert "&lt;img src=x onerror=\"alert(1)\"&gt;" in hover
    assert "<img" not in hover


def test_exports_html_png_svg(samples_ws, artifacts):
    fig = samples_ws.timeline(samples_ws.busiest_session())
    html = write_figure(fig, artifacts / "timeline.html")
    png = write_figure(fig, artifacts / "timeline.png")
    svg = write_figure(fig, artifacts / "timeline.svg")
    assert "plotly" in open(html, encoding="utf-8").read(200000).lower()
    with open(png, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width == 1400 and height > 300
    text = open(svg, encoding="utf-8").read()
    assert "<svg" in text[:2000]
    # the axis shows the capture's dates, not the 1970 epoch (a known plotly/kaleido pitfall)
    year = samples_ws.sql("SELECT strftime(min(start_ts), '%Y') FROM calls").rows()[0][0]
    assert year in text and "1970" not in text


def test_bare_capture_is_drawn_against_message_order(tmp_path):
    ws = mcptrace.load(SAMPLES.parent / "bare")
    fig = ws.timeline(ws.busiest_session())
    assert fig.layout.xaxis.type == "linear"
    assert fig.layout.xaxis.title.text == "message order"


def test_lanes_are_the_sql_lanes_and_segments_break_between_calls(samples_ws):
    for (sid,) in samples_ws.sql("SELECT session_id FROM sessions").rows():
        fig = samples_ws.timeline(sid)
        lane = dict(call_lanes(samples_ws.con, sid).rows())
        drawn = {int(row[6]): int(y) for t in _call_markers(fig) for row, y in zip(t.customdata, t.y)}
        assert drawn == lane
        for t in fig.data:
            if t.mode == "lines":
                xs = np.asarray(t.x, dtype=float)
                assert np.isnan(xs[2::3]).all() and not np.isnan(xs[0::3]).any()   # one segment per call
                assert (xs[1::3] >= xs[0::3]).all()


def test_overview_strip_above_the_threshold(samples_ws):
    sid = samples_ws.busiest_session()
    small = samples_ws.timeline(sid)
    assert AGGREGATE_ABOVE >= 1000 and not [t for t in small.data if t.type == "bar"]
    assert "yaxis2" not in small.layout.to_plotly_json()
    fig = samples_ws.timeline(sid, aggregate_above=5)
    calls = samples_ws.calls(sid).df()
    bars = [t for t in fig.data if t.type == "bar"]
    # calls started per bucket, one bar trace per status, on the overview axis above the lanes
    assert {t.legendgroup for t in bars} == set(calls["status"])
    for t in bars:
        assert t.yaxis == "y2" and sum(t.y) == (calls["status"] == t.legendgroup).sum()
    (peak,) = [t for t in fig.data if t.legendgroup == "overview"]
    max_parallel = samples_ws.sql("SELECT max_parallel FROM sessions WHERE session_id = ?", [sid]).rows()[0][0]
    assert peak.yaxis == "y3" and max(peak.y) == max_parallel
    assert fig.layout.yaxis2.domain[0] > fig.layout.yaxis.domain[1]
    assert fig.layout.barmode == "stack"
    # every call is still drawn in the lanes, with its hover
    assert sorted(int(r[6]) for t in _call_markers(fig) for r in t.customdata) == sorted(calls["call_id"])
    assert len(fig.data) == len(small.data) + len(bars) + 1


def test_gap_markers_carry_their_call_and_an_escaped_template(samples_ws):
    sid = samples_ws.busiest_session()
    fig = samples_ws.timeline(sid)
    gaps = samples_ws.gaps(session_id=sid).df()
    gap_traces = [t for t in fig.data if t.name and t.name.startswith("gap: ")]
    got = sorted((t.name.split(" (")[0][5:], str(c)) for t in gap_traces for c in t.customdata)
    want = sorted((code, "" if cid != cid or cid is None else str(int(cid))) for code, cid in zip(gaps["code"], gaps["call_id"]))
    assert got == want
    for t in gap_traces:
        assert "call id: %{customdata}" in t.hovertemplate


def test_bare_capture_lanes_and_overview_in_message_order():
    ws = mcptrace.load(ROOT / "data" / "bare")
    try:
        sid = ws.busiest_session()
        fig = ws.timeline(sid, aggregate_above=1)
        assert fig.layout.xaxis.type == "linear"
        ords = dict((r[0], r[1]) for r in ws.sql("SELECT call_id, start_ord FROM calls WHERE session_id = ?",
                                                  [sid]).rows())
        xs = {int(r[6]): x for t in _call_markers(fig) for r, x in zip(t.customdata, t.x)}
        assert set(xs) == set(ords)
        assert sum(sum(t.y) for t in fig.data if t.type == "bar") == len(ords)
    finally:
        ws.close()
