"""A self-contained HTML incident report.

Sections: summary cards; the findings, ranked (each with its sentence, remedy, gaps over time as a
sparkline, a link to its gaps and to the waterfall of an example call's session); calls by status; per-tool
statistics (p50/p95 latency and error rates per server and tool as a chart, and the table of
:func:`mcptrace.analysis.toolstats.tool_stats`); gaps by code, sources, sessions; the gaps grouped by
finding with their evidence as labelled fields (at most :data:`GAPS_PER_FINDING` per finding); correlation
coverage per client and per server over time (table and chart); and for each selected session (default:
the example sessions of the top findings, then those with the most gaps; three in all) its timeline and
waterfall.
plotly.js is embedded once, so the file opens offline. Every string taken from a capture is
HTML-escaped; figure data is embedded as JSON with ``<`` escaped, so no transcript content
can close a script element.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import re
from collections.abc import Sequence

import duckdb
import plotly.io as pio
from plotly.offline import get_plotlyjs

from mcptrace.analysis import queries
from mcptrace.core.errors import NotFoundError
from mcptrace.render.coverage import coverage_figure
from mcptrace.render.timeline import timeline
from mcptrace.render.toolstats import tool_stats_figure, tool_stats_table
from mcptrace.render.waterfall import waterfall

#: the report's style sheet (also used by the README's findings picture)
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212529;max-width:1500px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
h3{font-size:15px;margin-top:24px} .muted{color:#868e96;font-size:13px}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0} th,td{border:1px solid #dee2e6;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f1f3f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:11.5px;max-width:640px}
td{overflow-wrap:break-word;word-break:normal} code,.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:11.5px}
dl.ev{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:1px 10px;margin:0;font-size:12px;min-width:380px;max-width:720px}
dl.ev dt{color:#495057;font-weight:600} dl.ev dd{margin:0;overflow-wrap:normal}
.scroll{overflow-x:auto;max-width:100%} td.id{white-space:nowrap} td.nowrap{white-space:nowrap}
.finding{border:1px solid #dee2e6;border-left-width:5px;border-radius:4px;padding:8px 14px;margin:10px 0}
.finding.error{border-left-color:#c92a2a} .finding.warning{border-left-color:#e67700} .finding.info{border-left-color:#1971c2}
.finding h3{margin:0 0 4px 0;font-size:15px} .finding p{margin:4px 0} .finding .remedy{color:#343a40}
.finding .meta{font-size:12px;color:#495057} svg.spark{vertical-align:middle}
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


#: gap rows the report lists per finding (the rest: ``mcptrace gaps --code``)
GAPS_PER_FINDING = 25


_CODE_SPAN = re.compile(r"`([^`]+)`")


def prose_html(text: object) -> str:
    """Escaped text with Markdown code spans (`` `x` ``) as ``<code>`` (the findings' sentences and remedies)."""
    return _CODE_SPAN.sub(r"<code>\1</code>", _e(text))


def _value_text(v: object) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    return "null" if v is None else str(v)


def evidence_html(detail: object) -> str:
    """A gap's ``detail`` (JSON text or object) as labelled fields: one ``<dt>``/``<dd>`` pair per member,
    nested values as compact JSON, everything escaped."""
    try:
        d = json.loads(detail) if isinstance(detail, str) else detail
    except ValueError:
        return f"<pre>{_e(detail)}</pre>"
    if not isinstance(d, dict):
        return f"<pre>{_e(_value_text(d))}</pre>"
    items = "".join(f"<dt>{_e(k.replace('_', ' '))}</dt><dd>{_e(_value_text(v))}</dd>" for k, v in d.items())
    return f'<dl class="ev">{items}</dl>'


def sparkline(counts: Sequence[int], *, width: int = 160, height: int = 24, title: str = "") -> str:
    """Counts over equal time buckets as an inline SVG bar sparkline (no script)."""
    if not counts:
        return ""
    top = max(counts) or 1
    w = width / len(counts)
    bars = "".join(f'<rect x="{i * w:.1f}" y="{height - h:.1f}" width="{max(w - 1, 1):.1f}" height="{h:.1f}"/>'
                   for i, c in enumerate(counts) for h in [max(c / top * height, 1 if c else 0)])
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'fill="#868e96"><title>{_e(title)}</title>{bars}</svg>')


def _figure(fig, div_id: str) -> str:
    payload = pio.to_json(fig, validate=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (f'<div id="{div_id}" class="fig"></div>'
            f'<script type="application/json" id="{div_id}-data">{payload}</script>'
            f"<script>(function(){{var f=JSON.parse(document.getElementById('{div_id}-data').textContent);"
            f"Plotly.newPlot('{div_id}',f.data,f.layout,{{responsive:true}});}})();</script>")


def findings_html(con: duckdb.DuckDBPyConnection, findings: list[tuple], charted: dict[str, int]) -> str:
    """The findings as HTML blocks, ranked: heading (rank, severity, code, party), sentence and remedy (code
    spans as ``<code>``), a sparkline of the finding's gaps over the capture's time (24 buckets), its counts,
    share and confidence, and links to its first gap row (``#gap-<id>``) and to its example session's charts
    (``#session-<i>`` for a session in ``charted``, {session_id: i}; else the command that draws it).
    ``findings``: rows of ``findings`` with the columns finding_id, code, severity, party_kind, party,
    n_gaps, n_calls, n_sessions, share, first_ts, last_ts, confidence, summary, remedy, gap_ids,
    example_call_id, example_session_id, in that order. Every string is escaped."""
    if not findings:
        return '<p class="muted">No findings: correlation was not lost anywhere in this data.</p>'
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM gaps").fetchone()
    buckets = 24
    spark: dict[int, list[int]] = {}
    if lo is not None and hi is not None:
        width_us = max((hi - lo).total_seconds() * 1e6, 1.0)
        for fid, b, c in con.execute(
                "SELECT f.finding_id, least(floor(date_diff('microsecond', ?::TIMESTAMPTZ, g.ts) / ? * ?), ? - 1)::INTEGER, "
                "count(*) FROM (SELECT finding_id, unnest(gap_ids) AS gap_id FROM findings) f JOIN gaps g USING (gap_id) "
                "WHERE g.ts IS NOT NULL GROUP BY 1, 2", [lo, width_us, buckets, buckets]).fetchall():
            spark.setdefault(fid, [0] * buckets)[b] += c
    out = []
    for (fid, code, sev, kind, party, n_gaps, n_calls, n_sessions, share, first, last, conf, summary, remedy,
         gap_ids, ex_call, ex_session) in findings:
        share_txt = "" if share is None else f" · {share:.0%} of eligible"
        links = [f'<a href="#gap-{gap_ids[0]}">its gaps</a>'] if gap_ids else []
        if ex_session in charted:
            links.append(f'<a href="#session-{charted[ex_session]}">waterfall of session {_e(ex_session)}</a>'
                         + (f" (call {_e(ex_call)})" if ex_call is not None else ""))
        elif ex_session is not None:
            links.append(f"example: session <span class=\"id\">{_e(ex_session)}</span>"
                         + (f", call {_e(ex_call)}" if ex_call is not None else "")
                         + f" (<code>mcptrace tree --session {_e(ex_session)}</code>)")
        out.append(
            f'<div class="finding {_e(sev)}" id="finding-{fid}"><h3>{fid}. <span class="sev-{_e(sev)}">{_e(sev)}</span> '
            f"<code>{_e(code)}</code> · {_e(kind)}: {_e(party)}</h3>"
            f"<p>{prose_html(summary)}</p><p class=\"remedy\"><b>Remedy.</b> {prose_html(remedy)}</p>"
            f'<p class="meta">{sparkline(spark.get(fid, []), title=f"{n_gaps} gaps over the capture")} '
            f"{n_gaps} gap{'s' if n_gaps != 1 else ''} · {n_calls} call{'s' if n_calls != 1 else ''} · "
            f"{n_sessions} session{'s' if n_sessions != 1 else ''}{share_txt} · {_e(conf)} · "
            + " · ".join(links) + "</p></div>")
    return "".join(out)


def _ts(v: object) -> str:
    return v.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if isinstance(v, _dt.datetime) else _e(v)


def _gaps_html(con: duckdb.DuckDBPyConnection, findings: list[tuple]) -> str:
    """The gaps of each finding (at most :data:`GAPS_PER_FINDING`), the evidence as labelled fields."""
    by_id = {r[0]: r for r in con.execute(
        "SELECT g.gap_id, g.session_id, g.call_id, g.call_name, g.call_rpc_id, g.trace_id, g.span_id, g.ts, g.detail "
        "FROM gap_rows(NULL, NULL) g SEMI JOIN (SELECT unnest(gap_ids[:?]) AS gap_id FROM findings) f "
        "ON f.gap_id = g.gap_id", [GAPS_PER_FINDING]).fetchall()}
    head = "".join(f"<th>{c}</th>" for c in ("gap", "session", "call", "tool / method", "JSON-RPC id",
                                             "trace / span", "time (UTC)", "evidence"))
    out = []
    for fid, code, sev, kind, party, n_gaps, *rest in findings:
        shown = [by_id[g] for g in rest[-3][:GAPS_PER_FINDING] if g in by_id]
        out.append(f'<h3 id="finding-{fid}-gaps">{fid}. <span class="sev-{_e(sev)}">{_e(sev)}</span> '
                   f"<code>{_e(code)}</code> · {_e(party)}</h3>")
        body = []
        for gap_id, session, call, name, rpc_id, trace, span, ts, detail in shown:
            ids = "<br>".join(_e(x) for x in (trace, span) if x)
            body.append(f'<tr id="gap-{gap_id}"><td class="num">{gap_id}</td><td class="id">{_e(session)}</td>'
                        f'<td class="num">{_e(call)}</td><td>{_e(name)}</td><td class="id">{_e(rpc_id)}</td>'
                        f'<td class="id">{ids}</td><td class="nowrap">{_ts(ts)}</td><td>{evidence_html(detail)}</td></tr>')
        out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
                   "</table></div>")
        if n_gaps > len(shown):
            out.append(f'<p class="muted">… and {n_gaps - len(shown)} more: <code>mcptrace gaps --db DB --code '
                       f"{_e(code)}</code></p>")
    return "".join(out) or '<p class="muted">No gaps.</p>'


def report_html(con: duckdb.DuckDBPyConnection, session_ids: Sequence[str] | None = None, *, title: str = "MCP incident report",
                max_sessions: int = 3) -> str:
    """The report as one HTML string (see the module docstring). Raises :class:`mcptrace.NotFoundError`
    (a ``KeyError``) for an unknown session in ``session_ids``."""
    def rows(sql: str, params: Sequence | None = None) -> list[tuple]:
        return con.execute(sql, params).fetchall()

    findings = con.execute("SELECT finding_id, code, severity, party_kind, party, n_gaps, n_calls, n_sessions, share, "
                           "first_ts, last_ts, confidence, summary, remedy, gap_ids, example_call_id, "
                           "example_session_id FROM findings ORDER BY finding_id").fetchall()
    if session_ids is None:
        session_ids = []
        for f in findings:  # the example sessions of the top findings first
            if f[16] is not None and f[16] not in session_ids and len(session_ids) < max_sessions:
                session_ids.append(f[16])
        for (sid,) in rows("SELECT session_id FROM sessions ORDER BY n_gaps DESC, n_calls DESC LIMIT ?", [max_sessions]):
            if sid not in session_ids and len(session_ids) < max_sessions:
                session_ids.append(sid)
    else:
        known = {r[0] for r in rows("SELECT session_id FROM sessions")}
        missing = [s for s in session_ids if s not in known]
        if missing:
            raise NotFoundError("session", missing[0])
    charted = {sid: i for i, sid in enumerate(session_ids)}
    counts = queries.summary(con)
    n = [counts[k] for k in ("sources", "sessions", "calls", "spans", "gaps", "rejects")]
    parts = [f"<h1>{_e(title)}</h1>",
             f'<div class="muted">generated {_e(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))} '
             f"by mcptrace · times in UTC · durations in ms</div>",
             '<div class="cards">' + "".join(f'<div class="card"><b>{v}</b>{k}</div>' for k, v in zip(
                 ("findings", "sources", "sessions", "calls", "spans", "gaps", "rejected records"), [len(findings), *n]))
             + "</div>"]
    parts.append("<h2>Findings</h2>" + findings_html(con, findings, charted))
    parts.append("<h2>Calls by status</h2>" + _table(
        ["status", "calls"], rows("SELECT status, count(*) FROM calls GROUP BY 1 ORDER BY 2 DESC")))
    headings, tool_rows = tool_stats_table(con)
    parts.append('<h2 id="tools">Tools</h2><div class="muted">tools/call per server and tool: latency of the answered '
                 "calls, error rate (JSON-RPC errors) and tool-error rate (isError) as shares of the calls; request and "
                 "response bytes of the messages as stored (credentials redacted)</div>"
                 + (_figure(tool_stats_figure(con), "tool-stats") + f'<div class="scroll">{_table(headings, tool_rows)}</div>'
                    if tool_rows else '<p class="muted">No tool calls.</p>'))
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
    parts.append("<h2>Where correlation was lost</h2>" + _gaps_html(con, findings))
    parts.append("<h2>Correlation coverage</h2>"
                 '<div class="muted">share of client requests carrying W3C trace context, carrying a session key, and '
                 "joined to their server span, per client and per server, by hour</div>")
    parts.append(_figure(coverage_figure(con, "1 hour", by="client"), "coverage-client"))
    parts.append(_figure(coverage_figure(con, "1 hour", by="server"), "coverage-server"))
    parts.append(_table(["bucket", "client", "server", "requests", "with trace context", "with session key",
                         "with server span", "trace share", "key share", "server span share"],
                        queries.coverage(con, "1 hour").select(
                            "bucket", "client_name", "server_name", "n_requests", "n_trace_context", "n_session_key",
                            "n_server_span", "trace_context_share", "session_key_share", "server_span_share").rows()))
    for i, sid in enumerate(session_ids):
        parts.append(f'<h2 id="session-{i}">Session {_e(sid)}</h2>')
        parts.append(_figure(timeline(con, sid), f"timeline-{i}"))
        parts.append(_figure(waterfall(con, sid), f"waterfall-{i}"))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' "
            f"'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:\">"
            f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>{body}</body></html>")


def write_report(con: duckdb.DuckDBPyConnection, path: str | os.PathLike, session_ids: Sequence[str] | None = None, **kw) -> str:
    """Write :func:`report_html` to ``path``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(report_html(con, session_ids, **kw))
    return path
