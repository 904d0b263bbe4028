"""Session timeline: one lane per concurrent call, coloured by status, gaps marked.

The figure uses WebGL traces (``Scattergl``): one line trace per status whose segments
are the calls (start to end, UTC; x values are epoch milliseconds on a date axis), plus
midpoint markers whose ``customdata`` carries the hover fields (tool, status, JSON-RPC id,
duration in ms, trace id, parallel group, call id; rendered by one ``hovertemplate``) and
one marker trace per gap code. Captures without times (bare stdio tees) are drawn against
message order instead of time.

``highlight=`` (call ids) draws a selection against the rest of the session: the other calls
in :data:`DIM_COLOR` in one "filtered out" trace (they keep their hover), gap markers of other
calls faded; ``gap_codes=`` hides the gap markers of other codes (legend only) and
``window_ms=`` narrows the x axis to a time range. The explorer's filters are drawn this way.

Everything per call comes from one DuckDB query as Arrow columns: the lanes
(:mod:`mcptrace.analysis.lanes`, set-based: calls in one lane never overlap, as many lanes as calls in
flight at once), the drawn ends, and the hover fields, already HTML-escaped in SQL. Coordinates
go to plotly as numpy arrays (sent to the browser as typed arrays).

Above :data:`AGGREGATE_ABOVE` calls the figure also gets an overview strip on top (calls started
per time bucket, stacked by status, and the most calls in flight in each bucket), readable when
zoomed out; every call is still drawn in the lanes below for zooming in (box-zoom on either).
"""

from __future__ import annotations

import html
from collections.abc import Collection

import duckdb
import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from mcptrace.analysis.lanes import call_lanes
from mcptrace.core.db import one
from mcptrace.core.errors import NotFoundError

STATUS_COLORS = {
    "ok": "#2e9e44",
    "tool_error": "#f08c00",
    "truncated": "#94d82d",
    "error": "#d62728",
    "cancelled": "#868e96",
    "unanswered": "#7048e8",
}
SEVERITY_COLORS = {"error": "#c92a2a", "warning": "#e67700", "info": "#1971c2"}
#: the colour of calls (and per-turn waterfall rows) outside a ``highlight``
DIM_COLOR = "#dee2e6"
#: the opacity of gap markers whose call is outside a ``highlight``
DIM_GAP_OPACITY = 0.2
HOVER_TEMPLATE = ("<b>%{customdata[0]}</b><br>status: %{customdata[1]}<br>JSON-RPC id: %{customdata[2]}"
                  "<br>duration: %{customdata[3]}<br>trace id: %{customdata[4]}"
                  "<br>parallel group: %{customdata[5]}<br>call id: %{customdata[6]}<extra></extra>")
HOVER_COLUMNS = ["h_name", "h_status", "h_rpc_id", "h_duration", "h_trace", "h_group", "call_id"]

#: calls in a session above which the timeline adds the aggregated overview strip
AGGREGATE_ABOVE = 5_000
#: time buckets of the overview strip
OVERVIEW_BUCKETS = 400
#: gap markers above which they are drawn with WebGL too (and without text labels)
GL_GAPS_ABOVE = 1_000
#: calls up to which tool names are written on the bars wide enough for them
LABEL_CALLS_MAX = 400
#: turns up to which the timeline draws each turn as a band behind its calls
TURN_BANDS_MAX = 200
#: the plot width (px) assumed to decide whether a name fits on its bar, and the width of a character
_PLOT_PX, _CHAR_PX = 1000.0, 6.5


# One row per call of the session: lane (from the relation _mcptrace_lanes), drawn start/end
# (x0, x1, mid) and the hover fields escaped by the html_text macro. $timed picks epoch ms (true) or
# message order (false) for x; a call still open at the end of the capture is drawn to the
# capture's end and at least 6% of the session's span.
_CALLS_SQL = """
WITH c AS (
    SELECT c.*, l.lane,
           CASE WHEN $timed THEN epoch_us(c.start_ts) / 1000.0 ELSE c.start_ord END::DOUBLE AS x0,
           CASE WHEN $timed THEN epoch_us(c.end_ts) / 1000.0 ELSE c.end_ord END::DOUBLE AS x_end
    FROM calls c JOIN _mcptrace_lanes l ON l.call_id = c.call_id WHERE c.session_id = $session_id
),
b AS (
    SELECT min(x0) AS first_x, max(greatest(x0, coalesce(x_end, x0))) AS last_x,
           CASE WHEN $timed THEN (SELECT epoch_us(max(ts)) / 1000.0 FROM messages) END AS capture_end
    FROM c
)
SELECT c.call_id, c.lane, c.status, c.start_ord, c.x_end IS NULL AS is_open, c.x0,
       CASE WHEN c.x_end IS NOT NULL THEN c.x_end
            WHEN $timed THEN greatest(coalesce(b.capture_end, c.x0),
                                      c.x0 + (greatest(coalesce(b.capture_end, b.first_x), b.last_x) - b.first_x) * 0.06)
            ELSE b.last_x + 1 END AS x1,
       html_text(coalesce(c.tool_name, c.method)) AS h_name,
       html_text(c.status) || CASE WHEN c.error_code IS NOT NULL THEN ' (code ' || html_text(c.error_code) || ')' ELSE '' END
           AS h_status,
       html_text(c.rpc_id) AS h_rpc_id,
       CASE WHEN c.duration_ms IS NULL THEN 'open at end of capture' ELSE printf('%.1f ms', c.duration_ms) END
           AS h_duration,
       html_text(coalesce(c.trace_id, '(none)')) AS h_trace,
       html_text(c.parallel_group) AS h_group,
       c.turn_id
FROM c, b
ORDER BY c.start_ord
"""

# One row per gap of the session: x (its time, else its message's; without times the message's
# position; else its call's start), y above its call's lane (several at one point stack up).
_GAPS_SQL = """
WITH calls_x AS (SELECT * FROM _mcptrace_timeline_calls),
ord AS (
    SELECT message_id, row_number() OVER (ORDER BY ts, source_id, record_no, batch_index) AS ord
    FROM messages WHERE NOT $timed
),
g AS (
    SELECT g.gap_id, g.code, g.severity, g.call_id, coalesce(c.lane, -1) AS lane,
           coalesce(CASE WHEN $timed THEN epoch_us(coalesce(g.ts, m.ts)) / 1000.0 ELSE o.ord END, c.x0)::DOUBLE AS x
    FROM gaps g LEFT JOIN messages m ON m.message_id = g.message_id
    LEFT JOIN ord o ON o.message_id = g.message_id
    LEFT JOIN calls_x c ON c.call_id = g.call_id
    WHERE g.session_id = $session_id
)
SELECT gap_id, code, severity, x,
       (lane - 0.32 - 0.28 * (row_number() OVER (PARTITION BY lane, x ORDER BY gap_id) - 1))::FLOAT AS y,
       coalesce(call_id::VARCHAR, '') AS call_id
FROM g WHERE x IS NOT NULL ORDER BY code, gap_id
"""

# The overview strip: per bucket of width $w from $x_lo, calls started by status, and the most
# calls in flight (running sum of +1 at starts, -1 at ends, carried through empty buckets).
_OVERVIEW_SQL = """
WITH c AS (SELECT * FROM _mcptrace_timeline_calls),
bk AS (SELECT range AS bucket FROM range(0, $n)),
started AS (
    SELECT least(floor((x0 - $x_lo) / $w), $n - 1)::BIGINT AS bucket, status, count(*) AS n
    FROM c GROUP BY ALL
),
ev AS (
    SELECT x0 AS x, start_ord AS o, 1 AS d FROM c
    UNION ALL
    SELECT x1, start_ord, -1 FROM c WHERE NOT is_open
),
run AS (SELECT x, sum(d) OVER (ORDER BY x, d, o ROWS UNBOUNDED PRECEDING) AS in_flight FROM ev),
per AS (
    SELECT least(floor((x - $x_lo) / $w), $n - 1)::BIGINT AS bucket, max(in_flight) AS peak,
           arg_max(in_flight, x) AS at_end
    FROM run GROUP BY 1
),
filled AS (
    SELECT bk.bucket, per.peak,
           last_value(per.at_end IGNORE NULLS) OVER (ORDER BY bk.bucket ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS carried
    FROM bk LEFT JOIN per USING (bucket)
)
SELECT f.bucket, $x_lo + (f.bucket + 0.5) * $w AS x, greatest(coalesce(f.peak, 0), coalesce(f.carried, 0)) AS peak,
       s.status, coalesce(s.n, 0) AS n
FROM filled f LEFT JOIN started s USING (bucket)
ORDER BY f.bucket, s.status
"""


def _esc(v: object) -> str:
    return html.escape("" if v is None else str(v), quote=False)  # plotly text: tags matter, quotes do not


def _segments(a: np.ndarray, b: np.ndarray, fill=np.nan) -> np.ndarray:
    """Interleave starts and ends with ``fill`` after each pair: one line segment per call (a NaN
    x breaks the line, so y may stay integer)."""
    out = np.full(3 * len(a), fill, dtype=np.result_type(a, b))
    out[0::3] = a
    out[1::3] = b
    return out


def _small_int(values: np.ndarray, top: int) -> np.ndarray:
    """Lanes as the smallest integer type that holds ``top`` (typed arrays: 1 byte per lane)."""
    for dtype in (np.int8, np.int16, np.int32):
        if top < np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.int64)


def timeline_data(con: duckdb.DuckDBPyConnection, session_id: str, *, timed: bool = True) -> pa.Table:
    """The per-call data of :func:`timeline` as one Arrow table, in wire order.

    Columns: call_id BIGINT, lane INTEGER (0-based, see :mod:`mcptrace.analysis.lanes`), status VARCHAR,
    start_ord BIGINT, is_open BOOLEAN (no response by the end of the capture), x0/x1 DOUBLE
    (drawn start and end: epoch ms UTC when ``timed``, else message order; an open call ends at
    the capture's end, and at least 6% of the session's span after its start), and the hover
    fields h_name, h_status, h_rpc_id, h_duration, h_trace, h_group (VARCHAR, HTML-escaped), and
    turn_id VARCHAR (``calls.turn_id``). Unknown sessions give no rows.
    """
    con.register("_mcptrace_lanes", call_lanes(con, session_id).arrow())
    try:
        return con.sql(_CALLS_SQL, params={"session_id": session_id, "timed": timed}).to_arrow_table()
    finally:
        con.unregister("_mcptrace_lanes")


def timeline(con: duckdb.DuckDBPyConnection, session_id: str | None, *, title: str | None = None, height: int | None = None,
             aggregate_above: int = AGGREGATE_ABOVE, highlight: Collection[int] | None = None,
             gap_codes: Collection[str] | None = None, window_ms: tuple[float, float] | None = None) -> go.Figure:
    """Build the timeline figure of one session.

    Returns a ``plotly.graph_objects.Figure``: x is UTC time (epoch ms on a date axis) or message
    order for captures without times, y the lane (0 at the top). Traces: per status a WebGL line
    trace (one segment per call, ``legendgroup`` = status, named ``STATUS (N)``) and a marker
    trace (``customdata`` rows as :data:`HOVER_COLUMNS`, the last being the call id); per gap code
    a marker trace named ``gap: CODE (N)`` (``customdata``: the gap's call id as text; WebGL above
    :data:`GL_GAPS_ABOVE` gaps). With more than ``aggregate_above`` calls, an overview strip
    (``yaxis2``: calls started per time bucket, stacked bars by status; ``yaxis3``: most calls in
    flight per bucket, trace ``legendgroup="overview"``) sits above the lanes. Up to
    :data:`LABEL_CALLS_MAX` calls, layout annotations (``name="tool name"``) write each tool name on the
    bars wide enough for it; with 2 to :data:`TURN_BANDS_MAX` turns, each
    turn is a shaded band (a layout shape) behind its calls.

    ``highlight`` (call ids; None draws every call in colour): only those calls stay in their
    status traces (``STATUS (N)`` counts them); the session's other calls are drawn in
    :data:`DIM_COLOR` by two more traces, ``legendgroup="filtered out"``, added last: a line trace
    named ``filtered out (N)`` and a marker trace with the same hover; gap markers of a call
    outside ``highlight`` get opacity :data:`DIM_GAP_OPACITY` (per point, ``marker.opacity``), and
    the title ends with ``— filter shows K of N calls``. ``gap_codes`` (None: all): gap markers of
    other codes are hidden to the legend (``visible="legendonly"``). ``window_ms`` (lo, hi in ms
    since the session's first call): the x axis shows that range, padded by 3% (at least 0.5 ms)
    on each side; ignored for captures without times.

    Raises :class:`mcptrace.NotFoundError` (a ``KeyError``) when the session does not exist. Every
    string from the capture is HTML-escaped before it reaches hover text or labels.
    """
    if session_id is None:
        raise NotFoundError("session", None, message="no sessions in this workspace")
    srow = one(con, "SELECT session_key_source, session_key, n_calls, max_parallel, n_gaps, "
                       "(SELECT count(*) FILTER (WHERE start_ts IS NULL) FROM calls WHERE session_id = $1) "
                       "FROM sessions WHERE session_id = $1", [session_id])
    if srow is None:
        raise NotFoundError("session", session_id)
    src, key, n_calls, max_par, n_gaps, n_untimed = srow
    timed = bool(n_calls) and n_untimed == 0
    data = timeline_data(con, session_id, timed=timed)
    kept = None if highlight is None else pc.is_in(data["call_id"], value_set=_id_array(highlight))

    fig = go.Figure()
    n_lanes = (pc.max(data["lane"]).as_py() + 1) if data.num_rows else 1
    width = max(2.0, min(16.0, 420.0 / n_lanes))
    overview = n_calls > aggregate_above and data.num_rows > 0
    # the midpoint markers carry the hover; in large sessions they stay small (hover picks by
    # distance, not size), which keeps the browser's first paint several times faster
    marker_size = max(4.0, width) if not overview else min(5.0, width)
    statuses = data["status"]
    dimmed = []
    for status, color in STATUS_COLORS.items():
        mask = pc.equal(statuses, status)
        part = data.filter(mask)
        if not part.num_rows:
            continue
        if kept is not None:
            keep = kept.filter(mask)
            dimmed.append(part.filter(pc.invert(keep)))
            part = part.filter(keep)
        x0, x1, lane = _drawn(part, n_lanes)
        fig.add_trace(go.Scattergl(x=_segments(x0, x1), y=_segments(lane, lane, 0), mode="lines",
                                   line=dict(color=color, width=width, dash="dot" if status == "unanswered" else "solid"),
                                   name=f"{status} ({part.num_rows})", legendgroup=status, hoverinfo="skip"))
        fig.add_trace(go.Scattergl(x=x0 + (x1 - x0) / 2, y=lane, mode="markers",
                                   marker=dict(color=color, size=marker_size, symbol="square"),
                                   customdata=_hover_rows(part), hovertemplate=HOVER_TEMPLATE, legendgroup=status,
                                   showlegend=False, name=status))

    _add_turn_bands(fig, data, n_lanes)
    if 0 < data.num_rows <= LABEL_CALLS_MAX:
        _add_bar_labels(fig, data, kept)

    con.register("_mcptrace_timeline_calls", data.select(["call_id", "lane", "status", "start_ord", "is_open", "x0", "x1"]))
    try:
        gaps = con.sql(_GAPS_SQL, params={"session_id": session_id, "timed": timed}).to_arrow_table()
        if overview:
            _add_overview(con, fig, data)
    finally:
        con.unregister("_mcptrace_timeline_calls")
    _add_gaps(fig, gaps, highlight=highlight, gap_codes=gap_codes)
    dim = pa.concat_tables(dimmed) if dimmed else data.slice(0, 0)
    if dim.num_rows:  # the calls outside the highlight, grey, with their hover
        x0, x1, lane = _drawn(dim, n_lanes)
        fig.add_trace(go.Scattergl(x=_segments(x0, x1), y=_segments(lane, lane, 0), mode="lines",
                                   line=dict(color=DIM_COLOR, width=width), name=f"filtered out ({dim.num_rows})",
                                   legendgroup="filtered out", hoverinfo="skip"))
        fig.add_trace(go.Scattergl(x=x0 + (x1 - x0) / 2, y=lane, mode="markers",
                                   marker=dict(color=DIM_COLOR, symbol="square"), legendgroup="filtered out",
                                   showlegend=False, name="filtered out", customdata=_hover_rows(dim),
                                   hovertemplate=HOVER_TEMPLATE))

    heading = title or _esc(f"Session {session_id} — {src}: {key} — {n_calls} calls, "
                            f"max {max_par} in flight, {n_gaps} gap{'' if n_gaps == 1 else 's'}")
    if kept is not None:
        heading += _esc(f" — filter shows {pc.sum(kept).as_py() or 0} of {data.num_rows} calls")
    xrange = None
    if window_ms is not None and timed and data.num_rows:
        first = pc.min(data["x0"]).as_py()  # epoch ms of the session's first call
        lo, hi = window_ms
        pad = max((hi - lo) * 0.03, 0.5)
        xrange = [first + lo - pad, first + hi + pad]
    lanes_domain = [0.0, 0.72] if overview else [0.0, 1.0]
    layout = dict(
        title=dict(text=heading, font=dict(size=14),
                   y=0.99 if overview else None, yanchor="top" if overview else None),
        xaxis=dict(title="time (UTC)" if timed else "message order", type="date" if timed else "linear", range=xrange),
        yaxis=dict(title="lane (concurrent calls)", autorange="reversed", range=None, dtick=1 if n_lanes <= 30 else None,
                   zeroline=False, domain=lanes_domain),
        height=height or int(min(1400, max(360, 140 + 28 * (n_lanes + 1)) + (260 if overview else 0))),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
        margin=dict(l=70, r=70 if overview else 20, t=120 if overview else 90, b=60),
        hovermode="closest",
        template="plotly_white",
    )
    if overview:
        layout.update(
            yaxis2=dict(title="calls started", domain=[0.78, 1.0], anchor="x", rangemode="tozero", zeroline=False),
            yaxis3=dict(title="max in flight", overlaying="y2", side="right", anchor="x", rangemode="tozero",
                        showgrid=False, zeroline=False, tickformat="d"),
            barmode="stack", bargap=0.0)
    fig.update_layout(**layout)
    return fig


def _add_bar_labels(fig: go.Figure, data: pa.Table, kept: pa.ChunkedArray | None) -> None:
    """The tool (or method) name written on each bar wide enough for it at the full view (the hover
    always has it): one layout annotation per bar, ``name="tool name"``, text already HTML-escaped."""
    x0, x1 = data["x0"].to_numpy(), data["x1"].to_numpy()
    span = max(float(x1.max() - x0.min()), 1e-9)
    names = data["h_name"].to_numpy(zero_copy_only=False)
    px = (x1 - x0) / span * _PLOT_PX
    fits = np.array([len(html.unescape(n or "")) * _CHAR_PX + 8 <= w for n, w in zip(names, px)], dtype=bool)
    if kept is not None:
        fits &= kept.to_numpy(zero_copy_only=False).astype(bool)
    if not fits.any():
        return
    lanes = data["lane"].to_numpy()
    mids = x0 + (x1 - x0) / 2
    # layout annotations: drawn above the WebGL canvas of the bars (a text trace would be under it)
    for x, y, name in zip(mids[fits], lanes[fits], names[fits]):
        fig.add_annotation(x=float(x), y=int(y), xref="x", yref="y", text=name, showarrow=False,
                           font=dict(size=10, color="#ffffff"), name="tool name")


def _add_turn_bands(fig: go.Figure, data: pa.Table, n_lanes: int) -> None:
    """Each turn of the session (``calls.turn_id``) as a band behind its calls, alternately shaded, when
    there are 2 to :data:`TURN_BANDS_MAX` turns; up to 40 turns a label at the band's foot numbers it."""
    if not data.num_rows:
        return
    turns = data.group_by("turn_id").aggregate([("x0", "min"), ("x1", "max")]).filter(
        pc.is_valid(pc.field("turn_id"))).sort_by("x0_min")
    if not 2 <= turns.num_rows <= TURN_BANDS_MAX:
        return
    for i, (lo, hi) in enumerate(zip(turns["x0_min"].to_numpy(), turns["x1_max"].to_numpy())):
        fig.add_shape(type="rect", xref="x", yref="y", x0=lo, x1=hi, y0=-0.5, y1=n_lanes - 0.5, layer="below",
                      line=dict(width=1, color="#ced4da", dash="dot"),
                      fillcolor="#f1f3f5" if i % 2 == 0 else "#e7f5ff", opacity=0.6)
        if turns.num_rows <= 40:
            fig.add_annotation(x=lo, y=n_lanes - 0.5, xref="x", yref="y", text=f"turn {i + 1}", showarrow=False,
                               xanchor="left", yanchor="top", font=dict(size=9, color="#868e96"))


def _id_array(ids: Collection[int]) -> pa.Array:
    """Call ids as an Arrow BIGINT array (for ``is_in``)."""
    return pa.array(np.fromiter((int(i) for i in ids), dtype=np.int64, count=len(ids)), type=pa.int64())


def _drawn(part: pa.Table, n_lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drawn start, drawn end and lane of the calls of ``part`` as numpy arrays."""
    return part["x0"].to_numpy(), part["x1"].to_numpy(), _small_int(part["lane"].to_numpy(), n_lanes)


def _hover_rows(part: pa.Table) -> np.ndarray:
    """The ``customdata`` of call markers: one row of :data:`HOVER_COLUMNS` per call (the labels live
    once in the template; per call only the escaped values)."""
    custom = np.empty((part.num_rows, len(HOVER_COLUMNS)), dtype=object)
    for j, col in enumerate(HOVER_COLUMNS):
        custom[:, j] = part[col].to_numpy(zero_copy_only=False)
    return custom


def timeline_call_ids(fig: go.Figure) -> list:
    """The call ids of the calls a :func:`timeline` figure draws in colour (not those outside its
    ``highlight``), from the status marker traces' ``customdata``."""
    return [row[-1] for t in fig.data if t.customdata is not None and getattr(t, "mode", None) == "markers"
            and t.legendgroup in STATUS_COLORS for row in t.customdata]


def gap_hover_template(code: str, severity: str | None) -> str:
    """The hover of a gap marker: code and severity (escaped), then ``call id: %{customdata}``."""
    return f"<b>{_esc(code)}</b> ({_esc(severity)})<br>call id: %{{customdata}}<extra></extra>"


def _add_gaps(fig: go.Figure, gaps: pa.Table, *, highlight: Collection[int] | None = None,
              gap_codes: Collection[str] | None = None) -> None:
    """One marker trace per gap code (WebGL above :data:`GL_GAPS_ABOVE` gaps); ``customdata``
    holds each gap's call id (text, '' for gaps without a call). Codes outside ``gap_codes`` are
    legend only; with ``highlight``, markers of other calls are faded (:data:`DIM_GAP_OPACITY`)."""
    n = gaps.num_rows
    show_text = n <= 60
    trace = go.Scattergl if n > GL_GAPS_ABOVE else go.Scatter
    codes = gaps["code"]
    wanted = None if highlight is None else {str(int(i)) for i in highlight}
    for code in pc.unique(codes).to_pylist():
        part = gaps.filter(pc.equal(codes, code))
        sev = part["severity"][0].as_py()
        k = part.num_rows
        call_ids = part["call_id"].to_numpy(zero_copy_only=False)
        kw = dict(mode="markers+text", text=[_esc(code)] * k, textposition="top center",
                  textfont=dict(size=10, color=SEVERITY_COLORS.get(sev, "#333"))) if show_text else dict(mode="markers")
        hidden = gap_codes is not None and code not in gap_codes
        if hidden:
            kw["visible"] = "legendonly"
        marker = dict(symbol="x-thin-open" if sev == "info" and trace is go.Scatter else "x",
                      size=11 if trace is go.Scatter else 8, line=dict(width=2 if trace is go.Scatter else 0),
                      color=SEVERITY_COLORS.get(sev, "#333"))
        if wanted is not None and not hidden:
            marker["opacity"] = [1.0 if not cid or cid in wanted else DIM_GAP_OPACITY for cid in call_ids]
        fig.add_trace(trace(
            x=part["x"].to_numpy(), y=part["y"].to_numpy(), marker=marker,
            name=_esc(f"gap: {code} ({k})"),
            customdata=call_ids, hovertemplate=gap_hover_template(code, sev),
            **kw))


def _add_overview(con: duckdb.DuckDBPyConnection, fig: go.Figure, data: pa.Table) -> None:
    """The overview strip: calls started per bucket (stacked bars by status) and the most calls
    in flight per bucket (a step line), on ``yaxis2``/``yaxis3`` above the lanes."""
    lo = pc.min(data["x0"]).as_py()
    hi = max(pc.max(data["x1"]).as_py(), lo + 1.0)
    w = (hi - lo) / OVERVIEW_BUCKETS
    ov = con.sql(_OVERVIEW_SQL, params={"n": OVERVIEW_BUCKETS, "x_lo": lo, "w": w}).to_arrow_table()
    statuses = ov["status"]
    for status, color in STATUS_COLORS.items():
        part = ov.filter(pc.equal(statuses, status))
        if not part.num_rows:
            continue
        fig.add_trace(go.Bar(x=part["x"].to_numpy(), y=part["n"].to_numpy(), width=w, yaxis="y2",
                             marker=dict(color=color, line=dict(width=0)), name=f"{status} started", legendgroup=status,
                             showlegend=False, hovertemplate=f"{status}: %{{y}} calls started<extra></extra>"))
    peak = ov.group_by(["bucket", "x"]).aggregate([("peak", "max")]).sort_by("bucket")
    fig.add_trace(go.Scatter(x=peak["x"].to_numpy(), y=peak["peak_max"].to_numpy(), yaxis="y3", mode="lines",
                             line=dict(color="#212529", width=1.5, shape="hvh"), name="max in flight",
                             legendgroup="overview", hovertemplate="max in flight: %{y}<extra></extra>"))
