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
    assert all("<img" not in (a.text or "") for a in fig.layout.annotations)  # names written on bars too


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


def test_highlight_draws_the_other_calls_greyed(samples_ws):
    from mcptrace.render.timeline import DIM_COLOR, DIM_GAP_OPACITY, HOVER_TEMPLATE, timeline, timeline_call_ids

    sid = samples_ws.busiest_session()
    calls = samples_ws.calls(sid).df()
    keep = {int(c) for c, s in zip(calls["call_id"], calls["status"]) if s == "ok"}
    assert 0 < len(keep) < len(calls)
    fig = timeline(samples_ws.con, sid, highlight=keep)
    assert sorted(int(c) for c in timeline_call_ids(fig)) == sorted(keep)
    lines = {t.legendgroup: t for t in fig.data if t.mode == "lines" and t.legendgroup in STATUS_COLORS}
    assert lines["ok"].name == f"ok ({len(keep)})" and len(lines["ok"].x) == 3 * len(keep)
    for status, t in lines.items():
        if status != "ok":   # every call of that status is outside the highlight: the trace stays, empty
            assert len(t.x) == 0 and t.name == f"{status} (0)"
    line, markers = [t for t in fig.data if t.legendgroup == "filtered out"]
    assert fig.data[-2:] == (line, markers)                      # drawn last
    n_out = len(calls) - len(keep)
    assert line.name == f"filtered out ({n_out})" and line.line.color == DIM_COLOR and len(line.x) == 3 * n_out
    assert markers.marker.color == DIM_COLOR and markers.hovertemplate == HOVER_TEMPLATE
    assert sorted(int(r[6]) for r in markers.customdata) == sorted(set(calls["call_id"]) - keep)
    assert fig.layout.title.text.endswith(f" — filter shows {len(keep)} of {len(calls)} calls")
    for t in fig.data:
        if (t.name or "").startswith("gap: "):
            assert list(t.marker.opacity) == [1.0 if not c or int(c) in keep else DIM_GAP_OPACITY for c in t.customdata]
    # the plain figure is the one without a highlight: no grey traces, no opacity, the plain title
    plain = timeline(samples_ws.con, sid)
    assert not [t for t in plain.data if t.legendgroup == "filtered out"]
    assert all(t.marker.opacity is None for t in plain.data if (t.name or "").startswith("gap: "))
    assert fig.layout.title.text.startswith(plain.layout.title.text)
    everything = timeline(samples_ws.con, sid, highlight=set(calls["call_id"]))
    assert not [t for t in everything.data if t.legendgroup == "filtered out"]


def test_gap_codes_and_window(samples_ws):
    import pytest

    from mcptrace.core.errors import NotFoundError
    from mcptrace.render.timeline import timeline

    sid = samples_ws.busiest_session()
    codes = sorted(set(samples_ws.gaps(session_id=sid).df()["code"]))
    fig = timeline(samples_ws.con, sid, gap_codes={codes[0]})
    shown = {t.name.split(" (")[0][5:]: t.visible for t in fig.data if (t.name or "").startswith("gap: ")}
    assert shown == {c: None if c == codes[0] else "legendonly" for c in codes}
    t0 = samples_ws.sql("SELECT min(start_ts) FROM calls WHERE session_id = ?", [sid]).rows()[0][0]
    lo, hi = timeline(samples_ws.con, sid, window_ms=(100.0, 200.0)).layout.xaxis.range
    first = t0.timestamp() * 1000
    assert lo == pytest.approx(first + 97.0) and hi == pytest.approx(first + 203.0)   # padded 3% each side
    assert timeline(samples_ws.con, sid).layout.xaxis.range is None
    bare = mcptrace.load(ROOT / "data" / "bare")
    try:   # without times the window is ignored
        assert timeline(bare.con, bare.busiest_session(), window_ms=(0.0, 1.0)).layout.xaxis.range is None
    finally:
        bare.close()
    with pytest.raises(NotFoundError, match="no session"):
        timeline(samples_ws.con, "s_nope", highlight=set())


def test_tool_names_on_wide_bars_and_turns_as_bands(samples_ws):
    """Names are written on the bars wide enough for them (every name stays in the hover); each turn is a
    band behind its calls."""
    sid = samples_ws.busiest_session()
    fig = samples_ws.timeline(sid)
    calls = samples_ws.sql("SELECT call_id, coalesce(tool_name, method) AS name, turn_id FROM calls "
                           "WHERE session_id = ?", [sid]).df()
    labels = [a for a in fig.layout.annotations if a.name == "tool name"]
    assert labels and {a.text for a in labels} <= set(calls["name"])
    span = max(t for t in [*[x for tr in fig.data if tr.mode == "lines" for x in tr.x if x == x]]) - \
        min(x for tr in fig.data if tr.mode == "lines" for x in tr.x if x == x)
    for a in labels:  # each written name fits its bar at the full view
        bar = [tr for tr in fig.data if tr.mode == "lines"]
        assert any(abs((x0 + x1) / 2 - a.x) < 1e-6 and (x1 - x0) / span * 1000 >= len(a.text) * 6.5 + 8
                   for tr in bar for x0, x1 in zip(tr.x[0::3], tr.x[1::3]))
    n_turns = calls["turn_id"].nunique()
    bands = [s for s in fig.layout.shapes if s.type == "rect" and s.layer == "below"]
    assert n_turns >= 2 and len(bands) == n_turns
    # a highlight writes only the highlighted calls' names
    keep = {int(calls["call_id"].iloc[0])}
    assert len([a for a in samples_ws.timeline(sid, highlight=keep).layout.annotations if a.name == "tool name"]) <= 1


def test_waterfall_legend_names_every_colour(samples_ws):
    sid = samples_ws.busiest_session()
    fig = samples_ws.waterfall(sid)
    names = {t.name for t in fig.data if t.showlegend is not False and t.x == (None,)}
    statuses = set(samples_ws.sql("SELECT DISTINCT status FROM calls WHERE session_id = ?", [sid]).df()["status"])
    assert {f"call: {s}" for s in statuses} <= names and {"session", "turn"} <= names
    assert any(n.startswith("span: ") for n in names) and any(n.startswith("gap (") for n in names)
