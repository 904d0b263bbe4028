"""Timeline: lanes never overlap, statuses and gaps drawn, capture strings escaped, exports written."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

import mcptrace
from conftest import SAMPLES, first_index, read_lines, write_lines
from mcptrace.export import write_figure
from mcptrace.timeline import STATUS_COLORS, assign_lanes

# (start, duration): duration None is a call still open at the end of the capture
intervals = st.lists(st.tuples(st.integers(0, 1000), st.one_of(st.none(), st.integers(1, 300))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(intervals)
def test_lanes_never_overlap_and_use_the_fewest_lanes(raw):
    inf = float("inf")
    ivs = sorted(((s, None if d is None else s + d) for s, d in raw), key=lambda iv: (iv[0], iv[1] or inf))
    starts, ends = [s for s, _ in ivs], [e for _, e in ivs]
    lanes = assign_lanes(starts, ends)
    for i in range(len(ivs)):
        for j in range(i + 1, len(ivs)):
            if lanes[i] == lanes[j]:
                a, b = ivs[i], ivs[j]
                assert (a[1] if a[1] is not None else inf) <= b[0], (a, b)
    # optimal: as many lanes as the deepest overlap (interval graphs are perfect)
    depth = 0
    for s in starts:
        depth = max(depth, sum(1 for (a, e) in ivs if a <= s < (e if e is not None else inf)))
    assert (max(lanes) + 1 if lanes else 0) == depth


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
    hover = [row for t in fig.data if t.mode == "markers" and t.customdata is not None for row in t.customdata]
    assert sorted(int(r[6]) for r in hover) == sorted(calls["call_id"])
    assert {r[4] for r in hover} == set(calls["trace_id"].fillna("(none)"))
    assert all("%{customdata[4]}" in t.hovertemplate for t in fig.data if t.mode == "markers" and t.customdata is not None)
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
