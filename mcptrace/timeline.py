"""Session timeline: one lane per concurrent call, coloured by status, gaps marked.

The figure uses WebGL traces (``Scattergl``): one line trace per status whose segments
are the calls (start to end, UTC; x values are epoch milliseconds on a date axis), plus
midpoint markers whose ``customdata`` carries the hover fields (tool, status, JSON-RPC id,
duration in ms, trace id, parallel group, call id; rendered by one ``hovertemplate``) and
one marker trace per gap code. Lanes are
assigned greedily in start order so calls in one lane never overlap. Captures without
times (bare stdio tees) are drawn against message order instead of time.
"""

from __future__ import annotations

import heapq
import html
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from mcptrace.db import one

if TYPE_CHECKING:  # pragma: no cover
    from mcptrace.workspace import Workspace

STATUS_COLORS = {
    "ok": "#2e9e44",
    "tool_error": "#f08c00",
    "error": "#d62728",
    "cancelled": "#868e96",
    "unanswered": "#7048e8",
}
SEVERITY_COLORS = {"error": "#c92a2a", "warning": "#e67700", "info": "#1971c2"}
HOVER_TEMPLATE = ("<b>%{customdata[0]}</b><br>status: %{customdata[1]}<br>JSON-RPC id: %{customdata[2]}"
                  "<br>duration: %{customdata[3]}<br>trace id: %{customdata[4]}"
                  "<br>parallel group: %{customdata[5]}<br>call id: %{customdata[6]}<extra></extra>")

_CALLS_SQL = """
SELECT call_id, rpc_id, method, tool_name, status, error_code, trace_id, parallel_group,
       start_ts, end_ts, duration_ms, start_ord, end_ord, connection_id
FROM calls WHERE session_id = ? ORDER BY start_ord
"""
_GAPS_SQL = """
SELECT g.code, g.severity, g.call_id, g.ts, g.detail, m.ts AS message_ts, e.ord
FROM gaps g LEFT JOIN messages m ON m.message_id = g.message_id
LEFT JOIN (SELECT message_id, row_number() OVER (ORDER BY ts, source_id, record_no, batch_index) AS ord FROM messages) e
       ON e.message_id = g.message_id
WHERE g.session_id = ? ORDER BY g.gap_id
"""


def assign_lanes(starts: list, ends: list) -> list[int]:
    """Greedy interval partitioning: for intervals sorted by start, the lowest lane free at
    each start. ``ends`` may contain None (open interval: the lane stays taken)."""
    free: list[int] = []
    busy: list[tuple] = []  # (end, lane)
    lanes: list[int] = []
    n_lanes = 0
    for s, e in zip(starts, ends):
        while busy and busy[0][0] <= s:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane = n_lanes
            n_lanes += 1
        lanes.append(lane)
        if e is not None:
            heapq.heappush(busy, (max(e, s), lane))
    return lanes


def _esc(v: object) -> str:
    return html.escape("" if v is None else str(v), quote=False)  # plotly text: tags matter, quotes do not


def timeline(ws: "Workspace", session_id: str | None, *, title: str | None = None, height: int | None = None) -> go.Figure:
    """Build the timeline figure of one session.

    Returns a ``plotly.graph_objects.Figure``: x is UTC time (or message order for captures
    without times), y the lane. Raises ``KeyError`` when the session does not exist.
    Every string from the capture is HTML-escaped before it reaches hover text or labels.
    """
    if session_id is None:
        raise KeyError("no sessions in this workspace")
    srow = one(ws.con, "SELECT session_key_source, session_key, n_calls, max_parallel, n_gaps, last_ts "
                          "FROM sessions WHERE session_id = ?", [session_id])
    if srow is None:
        raise KeyError(f"no session {session_id!r}")
    calls = ws.con.execute(_CALLS_SQL, [session_id]).fetchall()
    gaps = ws.con.execute(_GAPS_SQL, [session_id]).fetchall()
    timed = bool(calls) and all(c[8] is not None for c in calls)
    last_ts = srow[5]

    if timed:
        # x as epoch milliseconds (a date axis reads numbers as ms): shorter than ISO strings
        starts = [c[8].timestamp() * 1000.0 for c in calls]
        ends = [c[9].timestamp() * 1000.0 if c[9] is not None else None for c in calls]
        # a call still open at the end of the capture is drawn (dotted) to the capture's end,
        # and at least 6% of the session's span so it stays visible
        capture_end = one(ws.con, "SELECT max(ts) FROM messages")[0] or last_ts
        capture_end = capture_end.timestamp() * 1000.0 if capture_end is not None else None
        last_ms = last_ts.timestamp() * 1000.0 if last_ts is not None else None
        first = min(starts)
        min_open = (max(capture_end or first, last_ms or first) - first) * 0.06
        draw_end = [e if e is not None else max(capture_end or s, s + min_open) for s, e in zip(starts, ends)]
    else:
        starts = [c[11] for c in calls]
        ends = [c[12] for c in calls]
        max_ord = max([e for e in ends if e is not None] + starts + [0])
        draw_end = [e if e is not None else max_ord + 1 for e in ends]
    lanes = assign_lanes(starts, ends)
    lane_of = {c[0]: lane for c, lane in zip(calls, lanes)}

    fig = go.Figure()
    n_lanes = (max(lanes) + 1) if lanes else 1
    width = max(2.0, min(16.0, 420.0 / n_lanes))
    for status, color in STATUS_COLORS.items():
        idx = [i for i, c in enumerate(calls) if c[4] == status]
        if not idx:
            continue
        xs: list = []
        ys: list = []
        for i in idx:
            xs += [starts[i], draw_end[i], None]
            ys += [lanes[i], lanes[i], None]
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines",
                                   line=dict(color=color, width=width, dash="dot" if status == "unanswered" else "solid"),
                                   name=f"{status} ({len(idx)})", legendgroup=status, hoverinfo="skip"))
        mids, data = [], []
        for i in idx:
            c = calls[i]
            s, e = starts[i], draw_end[i]
            mids.append(s + (e - s) / 2)
            dur = "open at end of capture" if c[10] is None else f"{c[10]:.1f} ms"
            # the labels live once in the template; per call only the (escaped) values
            data.append([_esc(c[3] or c[2]),
                         _esc(c[4]) + (f" (code {_esc(c[5])})" if c[5] is not None else ""),
                         _esc(c[1]), dur, _esc(c[6] or "(none)"), _esc(c[7]), c[0]])
        fig.add_trace(go.Scattergl(x=mids, y=[lanes[i] for i in idx], mode="markers",
                                   marker=dict(color=color, size=max(4.0, width), symbol="square"),
                                   customdata=data, hovertemplate=HOVER_TEMPLATE, legendgroup=status,
                                   showlegend=False, name=status))

    by_code: dict[str, list] = {}
    start_of = dict(zip((c[0] for c in calls), starts))
    stacked: dict[tuple, int] = {}
    for code, severity, call_id, ts, _detail, message_ts, ord_ in gaps:
        x = (ts or message_ts) if timed else ord_
        if timed and x is not None:
            x = x.timestamp() * 1000.0
        if x is None:
            x = start_of.get(call_id)
        if x is None:
            continue
        lane = lane_of.get(call_id, -1)
        k = stacked[(lane, x)] = stacked.get((lane, x), -1) + 1
        # above the call's bar; several gaps at one point stack upwards
        by_code.setdefault(code, []).append((x, lane - 0.32 - 0.28 * k, severity, call_id))
    show_text = sum(len(v) for v in by_code.values()) <= 60
    for code, pts in sorted(by_code.items()):
        sev = pts[0][2]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers+text" if show_text else "markers",
            text=[code] * len(pts) if show_text else None, textposition="top center",
            textfont=dict(size=10, color=SEVERITY_COLORS.get(sev, "#333")),
            marker=dict(symbol="x-thin-open" if sev == "info" else "x", size=11, line=dict(width=2),
                        color=SEVERITY_COLORS.get(sev, "#333")),
            name=f"gap: {code} ({len(pts)})",
            hovertext=[f"<b>{_esc(code)}</b> ({_esc(sev)})<br>call id: {_esc(p[3])}" for p in pts],
            hoverinfo="text"))

    src, key, n_calls, max_par, n_gaps = srow[0], srow[1], srow[2], srow[3], srow[4]
    fig.update_layout(
        title=dict(text=title or _esc(f"Session {session_id} — {src}: {key} — {n_calls} calls, "
                                      f"max {max_par} in flight, {n_gaps} gap{'' if n_gaps == 1 else 's'}"), font=dict(size=14)),
        xaxis=dict(title="time (UTC)" if timed else "message order", type="date" if timed else "linear"),
        yaxis=dict(title="lane (concurrent calls)", autorange="reversed", range=None, dtick=1 if n_lanes <= 30 else None,
                   zeroline=False),
        height=height or int(min(1400, max(360, 140 + 28 * (n_lanes + 1)))),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
        margin=dict(l=70, r=20, t=90, b=60),
        hovermode="closest",
        template="plotly_white",
    )
    return fig
