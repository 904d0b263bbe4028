"""Jaeger-style waterfall of a session's parallel-call tree (:func:`mcptrace.analysis.tree.tree`).

One row per node in depth-first order, bars on a millisecond axis relative to the session's
first call (bars on a numeric axis: no date-axis pitfalls in image export), indentation by
depth, calls coloured by status, spans by service, orphan spans outlined in red, gap codes
marked on their node, and a banner when the tree is incomplete ("Incomplete: N orphan spans /
N unlinked"). Every string from the capture is HTML-escaped.

A session of more than :data:`AGGREGATE_ABOVE` calls is drawn aggregated instead: one row per
turn (:func:`mcptrace.analysis.turns.turns`: its calls' time range, number of calls, errors, cancelled and
unanswered calls, gaps), in WebGL, coloured by the worst status in the turn. Drill down with
``waterfall(con, session_id, turn=KEY)`` (a key from the hover or ``ws.turns(session_id)``) or
``call_id=ID`` (that call's turn): the detailed rows of exactly that turn.

``highlight=`` (call ids) draws a selection against the rest: in the detailed waterfall the bars
of other calls and of their spans, in the per-turn waterfall the turns without a highlighted
call, in :data:`mcptrace.render.timeline.DIM_COLOR`. The explorer's filters are drawn this way.
"""

from __future__ import annotations

import html
from collections.abc import Collection
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from mcptrace.analysis.tree import tree as build_tree
from mcptrace.analysis.turns import UNTRACED_RUN, turn_of
from mcptrace.core.db import one
from mcptrace.core.errors import NotFoundError
from mcptrace.core.gapcodes import UNLINKED_CODES
from mcptrace.render.timeline import DIM_COLOR, SEVERITY_COLORS, STATUS_COLORS

if TYPE_CHECKING:  # pandas is imported when a waterfall is drawn: a load never needs it
    import pandas as pd

KIND_COLORS = {"session": "#495057", "turn": "#74c0fc"}
SERVICE_PALETTE = ["#4c6ef5", "#12b886", "#f59f00", "#e64980", "#7950f2", "#15aabf", "#82c91e", "#fd7e14"]

#: calls in a session above which the waterfall shows one row per turn (drill down with ``turn=``)
AGGREGATE_ABOVE = 1_000
#: aggregate rows up to which each row gets a text label on the y axis
LABELS_UP_TO = 600
#: the aggregate row colour: the worst status among the turn's calls
TURN_CLASSES = {"unanswered": STATUS_COLORS["unanswered"], "error": STATUS_COLORS["error"],
                "cancelled": STATUS_COLORS["cancelled"], "ok": KIND_COLORS["turn"]}
TURN_HOVER_TEMPLATE = ("<b>%{customdata[0]}</b> (%{customdata[1]} calls)<br>errors: %{customdata[2]} · cancelled: "
                       "%{customdata[3]} · unanswered: %{customdata[4]}<br>gaps: %{customdata[5]}"
                       "<br>duration: %{customdata[6]}<br>tools: %{customdata[7]}<br>turn: %{customdata[8]}"
                       "<extra></extra>")

# the aggregate rows: the session_turns table macro plus bar ends (x0/x1: ms since $t0, or
# message order), the row class and the label and hover fields escaped by the html_text macro
_AGG_SQL = """
SELECT t.turn, t.n_gaps, t.gap_severity,
       CASE WHEN $timed THEN date_diff('microsecond', $t0::TIMESTAMPTZ, t.first_ts) / 1000.0 ELSE t.first_ord END::DOUBLE
           AS x0,
       CASE WHEN $timed THEN date_diff('microsecond', $t0::TIMESTAMPTZ, t.last_ts) / 1000.0 ELSE t.last_ord END::DOUBLE
           AS x1,
       CASE WHEN t.n_unanswered > 0 THEN 'unanswered' WHEN t.n_errors > 0 THEN 'error'
            WHEN t.n_cancelled > 0 THEN 'cancelled' ELSE 'ok' END AS cls,
       html_text(t.name) || ' · ' || t.n_calls || ' call' || CASE WHEN t.n_calls = 1 THEN '' ELSE 's' END
           || CASE WHEN t.n_errors > 0 THEN ' · ' || t.n_errors || ' error' || CASE WHEN t.n_errors = 1 THEN '' ELSE 's' END
                   ELSE '' END
           || CASE WHEN t.n_gaps > 0 THEN ' · ' || t.n_gaps || ' gap' || CASE WHEN t.n_gaps = 1 THEN '' ELSE 's' END
                   ELSE '' END AS label,
       html_text(t.name) AS h_name, t.n_calls::VARCHAR AS h_calls, t.n_errors::VARCHAR AS h_errors,
       t.n_cancelled::VARCHAR AS h_cancelled, t.n_unanswered::VARCHAR AS h_unanswered,
       t.n_gaps::VARCHAR || CASE WHEN t.n_gaps > 0 THEN ' (' || html_text(array_to_string(t.gap_codes, ', ')) || ')'
                                ELSE '' END AS h_gaps,
       CASE WHEN t.duration_ms IS NULL THEN '(no times)' ELSE printf('%.1f ms', t.duration_ms) END AS h_duration,
       html_text(array_to_string(t.tools, ', ')) AS h_tools, html_text(t.turn) AS h_turn
FROM session_turns($session_id, $run) t
ORDER BY t.first_ord
"""
_AGG_HOVER = ["h_name", "h_calls", "h_errors", "h_cancelled", "h_unanswered", "h_gaps", "h_duration", "h_tools", "h_turn"]


def _esc(v: object) -> str:
    return html.escape("" if v is None else str(v), quote=False)  # plotly text: tags matter, quotes do not


def waterfall(con: duckdb.DuckDBPyConnection, session_id: str, *, max_label: int = 48, turn: str | None = None,
              call_id: int | None = None, aggregate_above: int = AGGREGATE_ABOVE,
              highlight: Collection[int] | None = None) -> go.Figure:
    """Build the waterfall figure of one session, or of one turn of it.

    Without ``turn``/``call_id``: up to ``aggregate_above`` calls, one bar per node of
    :func:`mcptrace.analysis.tree.tree` (session, turns, calls, spans); above it, one row per turn
    (:func:`turn_waterfall`, which gets ``highlight``). With ``turn`` (a key from
    :func:`mcptrace.analysis.turns.turns`) or ``call_id`` (that call's turn): the detailed rows of
    exactly that turn. The x axis is ms since the session's first call (message order in the
    per-turn waterfall of a capture without times).

    The detailed figure's first trace is a horizontal ``Bar`` named ``nodes``, one bar per tree row
    (y = the row, 0 at the top; ``base``/``x`` = start and width in ms), coloured by status (calls),
    service (spans) or kind; then a marker trace ``gaps`` when nodes have gaps. ``highlight`` (call
    ids; None draws every row in colour): the bars of calls not in it, and of their spans, are
    :data:`mcptrace.render.timeline.DIM_COLOR`; session and turn rows keep their colour.

    Raises :class:`mcptrace.NotFoundError` (a ``KeyError``) for an unknown session, turn or call.
    """
    if turn is None and call_id is None:
        row = one(con, "SELECT n_calls FROM sessions WHERE session_id = ?", [session_id])
        if row is None:
            raise NotFoundError("session", session_id)
        if row[0] > aggregate_above:
            return turn_waterfall(con, session_id, highlight=highlight)
    if call_id is not None and turn is None:
        call_sid, turn = turn_of(con, call_id)
        if call_sid != session_id:
            raise NotFoundError("call", call_id, f"session {session_id!r}")
    import pandas as pd

    df = build_tree(con, session_id, turn=turn)
    t0 = df["start_ts"].dropna().min()
    if pd.isna(t0):  # a capture without times (bare stdio tee): bars at 0
        t0 = None
    services = sorted(s for s in df["service_name"].dropna().unique())
    svc_color = {s: SERVICE_PALETTE[i % len(SERVICE_PALETTE)] for i, s in enumerate(services)}
    last = df["end_ts"].dropna().max() if df["end_ts"].notna().any() else t0
    kept = None if highlight is None else {int(i) for i in highlight}

    bases, widths, colors, outlines, labels, hovers = [], [], [], [], [], []
    for r in df.itertuples():
        start = r.start_ts if r.start_ts is not None and str(r.start_ts) != "NaT" else t0
        end = r.end_ts if r.end_ts is not None and str(r.end_ts) != "NaT" else last
        base = (start - t0).total_seconds() * 1000.0 if t0 is not None else 0.0
        width = max((end - start).total_seconds() * 1000.0, 0.0) if t0 is not None else 0.0
        bases.append(base)
        widths.append(max(width, 0.2))
        if kept is not None and not pd.isna(r.call_id) and int(r.call_id) not in kept:
            colors.append(DIM_COLOR)  # a call outside the highlight, or one of its spans
        elif r.kind == "call":
            colors.append(STATUS_COLORS.get(r.status, "#adb5bd"))
        elif r.kind == "span":
            colors.append(svc_color.get(r.service_name, "#adb5bd"))
        else:
            colors.append(KIND_COLORS.get(r.kind, "#adb5bd"))
        outlines.append("#e03131" if r.orphan else "rgba(0,0,0,0)")
        name = str(r.name or "")
        if len(name) > max_label:
            name = name[: max_label - 1] + "…"
        prefix = "\u00a0\u00a0" * int(r.depth)
        mark = "⚠ " if r.orphan else ""
        labels.append(_esc(f"{prefix}{mark}{name}"))
        dur = "open at end of capture" if r.duration_ms is None or r.duration_ms != r.duration_ms else f"{r.duration_ms:.1f} ms"
        details = [f"<b>{_esc(r.name)}</b> ({_esc(r.kind)})", f"duration: {dur}"]
        if r.kind == "call":
            details.append(f"status: {_esc(r.status)}")
        if r.service_name:
            details.append(f"service: {_esc(r.service_name)}")
        if r.role:
            details.append(f"role: {_esc(r.role)} (matched by {_esc(r.matched_by)})")
        if r.trace_id:
            details.append(f"trace id: {_esc(r.trace_id)}")
        if r.span_id:
            details.append(f"span id: {_esc(r.span_id)}")
        if r.orphan:
            details.append("<b>orphan</b>: parent span not in the dump")
        if r.gaps:
            details.append("gaps: " + _esc(", ".join(r.gaps)))
        hovers.append("<br>".join(details))

    fig = go.Figure(go.Bar(
        orientation="h", y=list(range(len(df))), x=widths, base=bases,
        marker=dict(color=colors, line=dict(color=outlines, width=2)),
        hovertext=hovers, hoverinfo="text", name="nodes", showlegend=False))

    severity = dict(con.execute("SELECT DISTINCT code, severity FROM gaps").fetchall())
    gx, gy, gcolor, ghover = [], [], [], []
    annotations = []
    with_labels = len(df) <= 600
    for i, r in enumerate(df.itertuples()):
        codes = list(r.gaps or [])
        for code in codes:
            gx.append(bases[i])
            gy.append(i)
            gcolor.append(SEVERITY_COLORS.get(severity.get(code), "#333"))
            ghover.append(_esc(code))
        if with_labels:
            suffix = "".join(f' <span style="color:{SEVERITY_COLORS.get(severity.get(c), "#333")}">{_esc(c)}</span>'
                             for c in dict.fromkeys(codes))
            annotations.append(dict(text=labels[i] + suffix, x=0.005 + 0.012 * int(r.depth), y=i, xref="paper",
                                    yref="y", xanchor="left", showarrow=False,
                                    font=dict(size=10, family="monospace",
                                              color="#c92a2a" if r.orphan else "#212529")))
    if gx:
        fig.add_trace(go.Scatter(x=gx, y=gy, mode="markers", marker=dict(symbol="x", size=9, color=gcolor),
                                 hovertext=ghover, hoverinfo="text", name="gaps", showlegend=False))

    _add_legend(fig, df, svc_color, severity, dimmed=kept is not None)

    n_orphans = int(df["orphan"].sum())
    n_unlinked = sum(1 for codes in df["gaps"] for c in codes if c in UNLINKED_CODES)
    incomplete = bool(n_orphans or n_unlinked)
    banner = f"Incomplete: {n_orphans} orphan spans / {n_unlinked} unlinked" if incomplete else \
        "Complete: every span joined"
    annotations.append(dict(text=_esc(banner), xref="paper", yref="paper", x=0, y=1, yshift=58, showarrow=False,
                            xanchor="left", font=dict(size=12, color="#c92a2a" if incomplete else "#2b8a3e")))
    selected = "" if turn is None else f" — turn {turn}"
    xrange = None
    if turn is not None and len(df) > 1:  # the turn, not the whole session the root spans
        lo, hi = min(bases[1:]), max(b + w for b, w in zip(bases[1:], widths[1:]))
        pad = max((hi - lo) * 0.03, 0.5)
        xrange = [lo - pad, hi + pad]
    fig.update_layout(
        title=dict(text=_esc(f"Waterfall — session {session_id}{selected}"), font=dict(size=14), y=0.995, yanchor="top"),
        xaxis=dict(title="ms since the session's first call", zeroline=False, side="top",
                   domain=[0.4, 1.0] if with_labels else [0.0, 1.0], range=xrange),
        yaxis=dict(showticklabels=not with_labels, tickmode="array", tickvals=list(range(len(df))),
                   ticktext=labels, autorange="reversed", showgrid=False),
        height=int(min(12000, max(320, 150 + 18 * len(df)))),
        margin=dict(l=10, r=20, t=120, b=70),
        bargap=0.25, template="plotly_white", hovermode="closest",
        annotations=annotations,
        legend=dict(orientation="h", yanchor="top", y=-0.005, xanchor="left", x=0, font=dict(size=11)),
    )
    return fig


def _add_legend(fig: go.Figure, df: pd.DataFrame, svc_color: dict, severity: dict, *, dimmed: bool) -> None:
    """Legend entries naming what each colour of the bars means (calls by status, spans by service,
    session and turn rows, orphan outline, gap markers by severity, greyed calls): marker-only traces
    without data, so the bar trace keeps one hover."""
    def entry(name: str, color: str, symbol: str = "square", line: dict | None = None) -> None:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=_esc(name), hoverinfo="skip",
                                 marker=dict(symbol=symbol, size=11, color=color, line=line or dict(width=0))))

    for kind in ("session", "turn"):
        if (df["kind"] == kind).any():
            entry(kind, KIND_COLORS[kind])
    statuses = set(df.loc[df["kind"] == "call", "status"].dropna())
    for status, color in STATUS_COLORS.items():
        if status in statuses:
            entry(f"call: {status}", color)
    for service, color in svc_color.items():
        entry(f"span: {service}", color)
    if df["orphan"].any():
        entry("orphan span (parent not loaded)", "#ffffff", line=dict(color="#e03131", width=2))
    sevs = {severity.get(c) for codes in df["gaps"] for c in codes}
    for sev, color in SEVERITY_COLORS.items():
        if sev in sevs:
            entry(f"gap ({sev})", color, symbol="x")
    if dimmed:
        entry("filtered out", DIM_COLOR)


def turn_waterfall(con: duckdb.DuckDBPyConnection, session_id: str, *,
                   highlight: Collection[int] | None = None) -> go.Figure:
    """The aggregated waterfall of one session: one row per turn, in wire order.

    Each row (y = its index, 0 at the top) is a bar over its calls' time range (ms since the
    session's first call; message order without times), coloured by the worst status in the turn
    (:data:`TURN_CLASSES`), an ``x`` marker at its start when it has gaps (coloured by the worst
    severity; traces ``turns with SEVERITY gaps (N)``), a label (up to :data:`LABELS_UP_TO` rows)
    and a hover with calls, errors, cancelled, unanswered, gaps, duration, tools and the turn key
    (``customdata[8]``, escaped) to drill down with. WebGL traces: per class a line trace named
    ``turns ok (N)`` / ``turns with CLASS calls (N)`` (N: the class's turns) and a marker trace
    carrying the hover (``customdata``: one row of 9 fields per turn, a 2-D array).

    ``highlight`` (call ids; None draws every turn in colour): the class traces keep only the turns
    holding a highlighted call; the bars of the other turns are one line trace in
    :data:`mcptrace.render.timeline.DIM_COLOR`, ``turns filtered out`` (``legendgroup="filtered out"``,
    no hover), drawn first, under the others.

    Raises :class:`mcptrace.NotFoundError` (a ``KeyError``) for an unknown session.
    """
    srow = one(con, "SELECT n_calls, (SELECT min(start_ts) FROM calls WHERE session_id = $1), "
                       "(SELECT count(*) FILTER (WHERE start_ts IS NULL) FROM calls WHERE session_id = $1) "
                       "FROM sessions WHERE session_id = $1", [session_id])
    if srow is None:
        raise NotFoundError("session", session_id)
    n_calls, t0, n_untimed = srow
    timed = t0 is not None and n_untimed == 0
    data = con.sql(_AGG_SQL, params={"session_id": session_id, "run": UNTRACED_RUN, "timed": timed,
                                        "t0": t0}).to_arrow_table()
    n = data.num_rows
    rows = np.arange(n, dtype=np.int32)
    height = int(min(1400, max(320, 170 + 18 * n)))
    width = float(max(1.0, min(12.0, 0.7 * (height - 170) / max(n, 1))))
    fig = go.Figure()
    kept = None
    if highlight is not None:  # the turns holding a highlighted call
        keys = [r[0] for r in con.execute(
            "SELECT DISTINCT turn FROM turn_keys($session_id, $run) WHERE call_id IN (SELECT unnest($ids::BIGINT[]))",
            {"session_id": session_id, "run": UNTRACED_RUN, "ids": [int(i) for i in highlight]}).fetchall()]
        kept = np.asarray(pc.is_in(data["turn"], value_set=pa.array(keys, pa.string())).to_numpy(zero_copy_only=False),
                          dtype=bool)
        dim = ~kept
        if dim.any():
            fig.add_trace(go.Scattergl(x=_bars(data["x0"].to_numpy()[dim], data["x1"].to_numpy()[dim]),
                                       y=_bars(rows[dim], rows[dim], 0), mode="lines",
                                       line=dict(color=DIM_COLOR, width=width), name="turns filtered out",
                                       legendgroup="filtered out", hoverinfo="skip"))
    gapped = pc.greater(data["n_gaps"], 0)
    for sev, color in SEVERITY_COLORS.items():
        mask = pc.and_(gapped, pc.equal(pc.fill_null(data["gap_severity"], ""), sev))
        part = data.filter(mask)
        if not part.num_rows:
            continue
        fig.add_trace(go.Scattergl(x=part["x0"].to_numpy(), y=rows[np.asarray(mask.to_numpy(zero_copy_only=False),
                                                                             dtype=bool)],
                                   mode="markers", marker=dict(symbol="x", size=max(5.0, width + 2), color=color),
                                   name=f"turns with {sev} gaps ({part.num_rows})", legendgroup=f"gaps-{sev}",
                                   customdata=part["h_gaps"].to_numpy(zero_copy_only=False),
                                   hovertemplate="gaps: %{customdata}<extra></extra>"))
    cls = data["cls"]
    for name, color in reversed(TURN_CLASSES.items()):  # the worst drawn last, on top
        mask = pc.equal(cls, name)
        part = data.filter(mask)
        if not part.num_rows:
            continue
        in_class = np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
        n_class = int(in_class.sum())
        if kept is not None:
            part = part.filter(pa.array(kept[in_class]))
            in_class &= kept
        y = rows[in_class]
        x0, x1 = part["x0"].to_numpy(), part["x1"].to_numpy()
        x1 = np.maximum(x1, x0)
        label = "ok" if name == "ok" else f"with {name} calls"
        fig.add_trace(go.Scattergl(x=_bars(x0, x1), y=_bars(y, y, 0), mode="lines", line=dict(color=color, width=width),
                                   name=f"turns {label} ({n_class})", legendgroup=name, hoverinfo="skip"))
        custom = np.empty((len(y), len(_AGG_HOVER)), dtype=object)
        for j, col in enumerate(_AGG_HOVER):
            custom[:, j] = part[col].to_numpy(zero_copy_only=False)
        fig.add_trace(go.Scattergl(x=x0 + (x1 - x0) / 2, y=y, mode="markers", name=f"turns {label}",
                                   marker=dict(color=color, size=max(3.0, width), symbol="square"),
                                   customdata=custom, hovertemplate=TURN_HOVER_TEMPLATE, legendgroup=name,
                                   showlegend=False))
    with_labels = n <= LABELS_UP_TO
    first_key = data["turn"][0].as_py() if n else ""
    banner = (f"Aggregated: {n_calls} calls in {n} turns, one row per turn. Drill down: "
              f"ws.waterfall({session_id!r}, turn=KEY) or mcptrace tree --session {session_id} --turn KEY "
              f"(KEY from the hover, e.g. {first_key})")
    fig.update_layout(
        title=dict(text=_esc(f"Waterfall — session {session_id} — per turn ({n} turns)"), font=dict(size=14),
                   y=0.995, yanchor="top"),
        xaxis=dict(title="ms since the session's first call" if timed else "message order", zeroline=False, side="top"),
        yaxis=dict(showticklabels=with_labels, tickmode="array" if with_labels else "auto",
                   tickvals=rows.tolist() if with_labels else None,
                   ticktext=data["label"].to_pylist() if with_labels else None,
                   autorange="reversed", showgrid=False, zeroline=False, title=None if with_labels else "turns (wire order)",
                   tickfont=dict(size=10, family="monospace")),
        height=height,
        margin=dict(l=10, r=20, t=130, b=60),
        legend=dict(orientation="h", yanchor="top", y=-0.01, xanchor="left", x=0),
        template="plotly_white", hovermode="closest",
        annotations=[dict(text=_esc(banner), xref="paper", yref="paper", x=0, y=1, yshift=80, showarrow=False,
                          xanchor="left", font=dict(size=12, color="#1971c2"))],
    )
    return fig


def _bars(a: np.ndarray, b: np.ndarray, fill=np.nan) -> np.ndarray:
    """One line segment per row: starts and ends interleaved with ``fill`` after each pair (a NaN x
    breaks the line; ``b`` is clipped to at least ``a``)."""
    out = np.full(3 * len(a), fill, dtype=np.float64 if isinstance(fill, float) else np.int32)
    out[0::3] = a
    out[1::3] = np.maximum(b, a)
    return out
