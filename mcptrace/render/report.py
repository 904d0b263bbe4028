"""A self-contained HTML incident report.

Sections: summary (sources, sessions, calls by status, gaps by code), the sessions table,
the gap table with each gap's evidence, correlation coverage per client and server, and for
each selected session (default: the three with the most gaps) its timeline and waterfall.
plotly.js is embedded once, so the file opens offline. Every string taken from a capture is
HTML-escaped; figure data is embedded as JSON with ``<`` escaped, so no transcript content
can close a script element.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from collections.abc import Sequence

import duckdb
import plotly.io as pio
from plotly.offline import get_plotlyjs

from mcptrace.analysis import queries
from mcptrace.core.errors import NotFoundError
from mcptrace.render.timeline import timeline
from mcptrace.render.waterfall import waterfall

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212529;max-width:1500px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
h3{font-size:15px;margin-top:24px} .muted{color:#868e96;font-size:13px}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0} th,td{border:1px solid #dee2e6;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f1f3f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:11.5px;max-width:640px}
td.detail pre{min-width:420px} td{word-break:break-all}
.sev-error{color:#c92a2a;font-weight:600} .sev-warning{color:#e67700;font-weight:600} .sev-info{color:#1971c2}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{border:1px solid #dee2e6;border-radius:6px;padding:8px 14px}
.card b{font-size:20px;display:block}
"""


def _e(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.1f}"
    return html.escape(str(v), quote=True)


def _table(columns: Sequence[str], rows: Sequence[Sequence[object]], *, pre: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c, v in zip(columns, r):
            if c in pre and v is not None:
                try:
                    v = json.dumps(json.loads(v), indent=1, ensure_ascii=False)
                except (TypeError, ValueError):
                    pass
                cells.append(f'<td class="detail"><pre>{_e(v)}</pre></td>')
            elif c == "severity":
                cells.append(f'<td class="sev-{_e(v)}">{_e(v)}</td>')
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f'<td class="num">{_e(v)}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(fig, div_id: str) -> str:
    payload = pio.to_json(fig, validate=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (f'<div id="{div_id}" class="fig"></div>'
            f'<script type="application/json" id="{div_id}-data">{payload}</script>'
            f"<script>(function(){{var f=JSON.parse(document.getElementById('{div_id}-data').textContent);"
            f"Plotly.newPlot('{div_id}',f.data,f.layout,{{responsive:true}});}})();</script>")


def report_html(con: duckdb.DuckDBPyConnection, session_ids: Sequence[str] | None = None, *, title: str = "MCP incident report",
                max_sessions: int = 3) -> str:
    """The report as one HTML string (see the module docstring). Raises :class:`mcptrace.NotFoundError`
    (a ``KeyError``) for an unknown session in ``session_ids``."""
    def rows(sql: str, params: Sequence | None = None) -> list[tuple]:
        return con.execute(sql, params).fetchall()

    if session_ids is None:
        session_ids = [r[0] for r in rows("SELECT session_id FROM sessions ORDER BY n_gaps DESC, n_calls DESC "
                                          "LIMIT ?", [max_sessions])]
    else:
        known = {r[0] for r in rows("SELECT session_id FROM sessions")}
        missing = [s for s in session_ids if s not in known]
        if missing:
            raise NotFoundError("session", missing[0])
    counts = queries.summary(con)
    n = [counts[k] for k in ("sources", "sessions", "calls", "spans", "gaps", "rejects")]
    parts = [f"<h1>{_e(title)}</h1>",
             f'<div class="muted">generated {_e(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))} '
             f"by mcptrace · times in UTC · durations in ms</div>",
             '<div class="cards">' + "".join(f'<div class="card"><b>{v}</b>{k}</div>' for k, v in zip(
                 ("sources", "sessions", "calls", "spans", "gaps", "rejected records"), n)) + "</div>"]
    parts.append("<h2>Calls by status</h2>" + _table(
        ["status", "calls"], rows("SELECT status, count(*) FROM calls GROUP BY 1 ORDER BY 2 DESC")))
    parts.append("<h2>Gaps by code</h2>" + _table(
        ["code", "severity", "gaps"],
        rows("SELECT code, severity, count(*) FROM gaps GROUP BY ALL ORDER BY 3 DESC, 1")))
    parts.append("<h2>Sources</h2>" + _table(
        ["path", "format", "records", "rejected", "skipped"],
        rows("SELECT path, format, n_records, n_rejected, n_skipped FROM sources ORDER BY source_id")))
    parts.append("<h2>Sessions</h2>" + _table(
        ["session_id", "key source", "session key", "client", "server", "first", "last", "calls", "transports",
         "max parallel", "gaps"],
        rows("SELECT session_id, session_key_source, session_key, client_name, server_name, first_ts, last_ts, n_calls, "
               "n_transport_sessions, max_parallel, n_gaps FROM sessions ORDER BY n_gaps DESC, n_calls DESC")))
    parts.append("<h2>Where correlation was lost</h2>" + _table(
        ["gap_id", "code", "severity", "session_id", "call", "tool / method", "JSON-RPC id", "trace_id", "span_id", "ts",
         "detail"],
        queries.gaps(con, with_call=True).select(
            "gap_id", "code", "severity", "session_id", "call_id", "call_name", "call_rpc_id", "trace_id", "span_id",
            "ts", "detail").rows(), pre=("detail",)))
    parts.append("<h2>Correlation coverage</h2>"
                 '<div class="muted">share of client requests carrying W3C trace context and a session key</div>'
                 + _table(["bucket", "client", "server", "requests", "with trace context", "with session key",
                           "trace share", "key share"], queries.coverage(con, "1 hour").rows()))
    for i, sid in enumerate(session_ids):
        parts.append(f"<h2>Session {_e(sid)}</h2>")
        parts.append(_figure(timeline(con, sid), f"timeline-{i}"))
        parts.append(_figure(waterfall(con, sid), f"waterfall-{i}"))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' "
            f"'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:\">"
            f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head><body>{body}</body></html>")


def write_report(con: duckdb.DuckDBPyConnection, path: str | os.PathLike, session_ids: Sequence[str] | None = None, **kw) -> str:
    """Write :func:`report_html` to ``path``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(report_html(con, session_ids, **kw))
    return path
