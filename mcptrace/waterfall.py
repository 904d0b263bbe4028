"""Jaeger-style waterfall of a session's parallel-call tree (:func:`mcptrace.views.tree`).

One row per node in depth-first order, bars on a millisecond axis relative to the session's
first call (bars on a numeric axis: no date-axis pitfalls in image export), indentation by
depth, calls coloured by status, spans by service, orphan spans outlined in red, gap codes
marked on their node, and a banner when the tree is incomplete ("Incomplete: N orphan spans /
N unlinked"). Every string from the capture is HTML-escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from mcptrace.timeline import SEVERITY_COLORS, STATUS_COLORS
from mcptrace.views import tree as build_tree

if TYPE_CHECKING:  # pragma: no cover
    from mcptrace.workspace import Workspace

KIND_COLORS = {"session": "#495057", "turn": "#74c0fc"}
SERVICE_PALETTE = ["#4c6ef5", "#12b886", "#f59f00", "#e64980", "#7950f2", "#15aabf", "#82c91e", "#fd7e14"]
UNLINKED_CODES = ("server_span_unlinked", "downstream_unlinked", "server_span_missing")


def _esc(v: object) -> str:
    return html.escape("" if v is None else str(v), quote=False)  # plotly text: tags matter, quotes do not


def waterfall(ws: "Workspace", session_id: str, *, max_label: int = 48) -> go.Figure:
    """Build the waterfall figure of one session. Raises KeyError for an unknown session."""
    df = build_tree(ws, session_id)
    t0 = df["start_ts"].dropna().min()
    services = sorted(s for s in df["service_name"].dropna().unique())
    svc_color = {s: SERVICE_PALETTE[i % len(SERVICE_PALETTE)] for i, s in enumerate(services)}
    last = df["end_ts"].dropna().max() if df["end_ts"].notna().any() else t0

    bases, widths, colors, outlines, labels, hovers = [], [], [], [], [], []
    for r in df.itertuples():
        start = r.start_ts if r.start_ts is not None and str(r.start_ts) != "NaT" else t0
        end = r.end_ts if r.end_ts is not None and str(r.end_ts) != "NaT" else last
        base = (start - t0).total_seconds() * 1000.0 if t0 is not None else 0.0
        width = max((end - start).total_seconds() * 1000.0, 0.0) if t0 is not None else 0.0
        bases.append(base)
        widths.append(max(width, 0.2))
        if r.kind == "call":
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

    severity = dict(ws.sql("SELECT DISTINCT code, severity FROM gaps").rows())
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

    n_orphans = int(df["orphan"].sum())
    n_unlinked = sum(1 for codes in df["gaps"] for c in codes if c in UNLINKED_CODES)
    incomplete = bool(n_orphans or n_unlinked)
    banner = f"Incomplete: {n_orphans} orphan spans / {n_unlinked} unlinked" if incomplete else \
        "Complete: every span joined"
    annotations.append(dict(text=_esc(banner), xref="paper", yref="paper", x=0, y=1, yshift=58, showarrow=False,
                            xanchor="left", font=dict(size=12, color="#c92a2a" if incomplete else "#2b8a3e")))
    fig.update_layout(
        title=dict(text=_esc(f"Waterfall — session {session_id}"), font=dict(size=14), y=0.995, yanchor="top"),
        xaxis=dict(title="ms since the session's first call", zeroline=False, side="top",
                   domain=[0.4, 1.0] if with_labels else [0.0, 1.0]),
        yaxis=dict(showticklabels=not with_labels, tickmode="array", tickvals=list(range(len(df))),
                   ticktext=labels, autorange="reversed", showgrid=False),
        height=int(min(12000, max(320, 150 + 18 * len(df)))),
        margin=dict(l=10, r=20, t=120, b=30),
        bargap=0.25, template="plotly_white", hovermode="closest",
        annotations=annotations,
    )
    return fig
