"""Correlation health over time as a chart: per party (client or server), the share of its client
requests that carried trace context, carried a session key, and were joined to their server span
(:func:`mcptrace.analysis.queries.coverage`). Party names come from the capture and are HTML-escaped."""

from __future__ import annotations

import html

import duckdb
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mcptrace.analysis.queries import coverage

#: the shares drawn, one panel each: (column, panel title)
SHARES = (("trace_context_share", "with trace context"), ("session_key_share", "with a session key"),
          ("server_span_share", "joined to a server span"))


def coverage_figure(con: duckdb.DuckDBPyConnection, every: str = "1 minute", *, by: str = "server") -> go.Figure:
    """Three stacked panels (trace context, session key, server span), x the bucket start (UTC), y the share
    of client requests (0–1), one line per party (``by``: ``client`` or ``server``), markers sized by the
    bucket's requests; hover gives the counts. Raises ``ValueError`` for another ``by``."""
    if by not in ("client", "server"):
        raise ValueError(f"by={by!r}: client or server")
    df = coverage(con, every, by).df()
    fig = make_subplots(rows=len(SHARES), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[t for _, t in SHARES])
    palette = ["#1971c2", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#5c940d"]
    for k, (party, part) in enumerate(df.groupby("party", sort=True)):
        color = palette[k % len(palette)]
        name = html.escape(str(party), quote=False)
        for row, (col, _title) in enumerate(SHARES, 1):
            fig.add_trace(go.Scatter(
                x=part["bucket"], y=part[col], mode="lines+markers", name=name, legendgroup=name,
                showlegend=row == 1, line={"color": color},
                customdata=part[["n_requests", "n_trace_context", "n_session_key", "n_server_span"]].to_numpy(),
                hovertemplate=(f"<b>{name}</b><br>%{{x}}<br>%{{y:.0%}} of %{{customdata[0]}} requests"
                               "<br>trace context %{customdata[1]} · session key %{customdata[2]} · "
                               "server span %{customdata[3]}<extra></extra>")), row=row, col=1)
    for row in range(1, len(SHARES) + 1):
        fig.update_yaxes(range=[-0.05, 1.05], tickformat=".0%", row=row, col=1)
    fig.update_layout(title=f"Correlation coverage by {by} (per {html.escape(every, quote=False)}, UTC)",
                      height=170 * len(SHARES) + 110, margin={"l": 60, "r": 20, "t": 70, "b": 40},
                      legend={"orientation": "h", "y": -0.08}, template="plotly_white")
    return fig
