"""Per-tool statistics as a chart and a table (:func:`mcptrace.analysis.toolstats.tool_stats`): for each
server and tool, the latency of its answered calls (p50, p95) and its error rates. Server and tool names
come from the capture and are HTML-escaped before they reach the figure."""

from __future__ import annotations

import html

import duckdb
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mcptrace.analysis.toolstats import tool_stats

#: server/tool rows the chart draws at most (the busiest; the report's table lists them all)
TOOLS_CHARTED = 30

#: the report table's columns: (heading, column of tool_stats, scale); rates are shown in percent
TABLE_COLUMNS = (("server", "server", None), ("tool", "tool", None), ("calls", "calls", None), ("ok", "ok", None),
                 ("errors", "errors", None), ("tool errors", "tool_errors", None), ("cancelled", "cancelled", None),
                 ("unanswered", "unanswered", None), ("truncated", "truncated", None),
                 ("error %", "error_rate", 100.0), ("tool error %", "tool_error_rate", 100.0),
                 ("p50 ms", "p50_ms", None), ("p95 ms", "p95_ms", None), ("p99 ms", "p99_ms", None),
                 ("mean ms", "mean_ms", None), ("max ms", "max_ms", None), ("error codes", "error_codes", None),
                 ("request bytes", "request_bytes", None), ("response bytes", "response_bytes", None))


def tool_stats_table(con: duckdb.DuckDBPyConnection, method: str | None = "tools/call") -> tuple[list[str], list[tuple]]:
    """The headings and rows of the report's table of :func:`tool_stats` by server and tool (values as
    stored, rates in percent; not escaped: the report's table escapes every cell)."""
    res = tool_stats(con, ("server", "tool"), method=method)
    index = {c: i for i, c in enumerate(res.columns)}
    out = [tuple(v if (v := r[index[col]]) is None or scale is None else v * scale for _, col, scale in TABLE_COLUMNS)
           for r in res.rows()]
    return [h for h, _, _ in TABLE_COLUMNS], out


def tool_stats_figure(con: duckdb.DuckDBPyConnection, method: str | None = "tools/call", *,
                      top: int = TOOLS_CHARTED) -> go.Figure:
    """Two panels side by side, one row per server and tool (the ``top`` with the most calls, busiest at the
    top; labelled ``server · tool``): left the p50 and p95 latency of the answered calls (ms), right the
    error rate (JSON-RPC errors) and the tool-error rate (``isError``) as shares of the calls (0–1). Hover
    gives the counts. Every name is HTML-escaped."""
    df = tool_stats(con, ("server", "tool"), method=method).df().head(top)
    labels = [html.escape(f"{s} · {t}", quote=False) for s, t in zip(df["server"], df["tool"])]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=["latency of answered calls (ms)", "share of calls"])
    custom = df[["calls", "errors", "tool_errors"]].to_numpy()
    hover = "<b>%{y}</b><br>{what}: {value}<br>%{customdata[0]} calls, %{customdata[1]} errors, " \
            "%{customdata[2]} tool errors<extra></extra>"
    for col, name, color in (("p50_ms", "p50", "#74c0fc"), ("p95_ms", "p95", "#1971c2")):
        fig.add_trace(go.Bar(x=df[col], y=labels, orientation="h", name=name, marker_color=color, customdata=custom,
                             hovertemplate=hover.replace("{what}", name).replace("{value}", "%{x:.1f} ms")),
                      row=1, col=1)
    for col, name, color in (("error_rate", "error rate", "#c92a2a"), ("tool_error_rate", "tool-error rate", "#e67700")):
        fig.add_trace(go.Bar(x=df[col], y=labels, orientation="h", name=name, marker_color=color, customdata=custom,
                             hovertemplate=hover.replace("{what}", name).replace("{value}", "%{x:.1%}")),
                      row=1, col=2)
    fig.update_xaxes(tickformat=".0%", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(autorange="reversed", automargin=True, type="category")
    fig.update_layout(title=f"Per-tool latency and errors ({html.escape(method or 'every method', quote=False)})",
                      barmode="group", height=max(44 * len(labels) + 140, 260),
                      margin={"l": 20, "r": 20, "t": 70, "b": 40}, legend={"orientation": "h", "y": -0.08},
                      template="plotly_white")
    return fig
