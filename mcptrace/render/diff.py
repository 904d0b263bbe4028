"""A :class:`mcptrace.analysis.compare.CaptureDiff` as text (``mcptrace diff``), Markdown (``--markdown``,
for a ticket or a pull request) and a self-contained HTML page (``--html OUT``, the report's style sheet).

Every string from a capture (server, tool and party names, descriptions, schemas) is data: Markdown cells
have ``|``, newlines and HTML characters escaped, and the page escapes everything it shows (no script).
The text is escaped for the terminal by the command line.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from typing import Any

from mcptrace.analysis.compare import CaptureDiff, Change, CountChange, DefinitionChange
from mcptrace.render.report import CSS

#: metrics shown as percentages (fractions 0..1; their change in percentage points)
RATES = frozenset({"error_rate", "tool_error_rate", "failure_rate", "trace_context_share", "session_key_share",
                   "server_span_share", "share"})
#: the tool metrics shown, with their headings
TOOL_COLUMNS = (("calls", "calls"), ("error_rate", "error rate"), ("tool_error_rate", "tool-error rate"),
                ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"))
COVERAGE_COLUMNS = (("requests", "requests"), ("trace_context_share", "trace context"),
                    ("session_key_share", "session key"), ("tool_calls", "tool calls"),
                    ("server_span_share", "server span"))
SYMBOL = {"added": "+", "removed": "-", "changed": "~", "appeared": "+", "disappeared": "-"}


def _number(v: float, sign: str = "") -> str:
    return f"{v:{sign}.2f}" if abs(v) < 10 else f"{v:{sign}.1f}"


def value_text(metric: str, v: Any) -> str:
    """One side's value: rates as %, milliseconds with two decimals under 10 (else one), counts as they
    are, '–' for none."""
    if v is None:
        return "–"
    if metric in RATES:
        return f"{v * 100:.0f}%"
    if isinstance(v, float):
        return _number(v)
    return str(v)


def change_text(metric: str, c: Change) -> str:
    """The change: rates in percentage points, others as the difference and its % of A; '' when none."""
    if c.change is None or c.change == 0:
        return ""
    if metric in RATES:
        return f"{c.change * 100:+.0f} pp"
    diff = _number(c.change, "+") if isinstance(c.change, float) else f"{c.change:+d}"
    return diff + (f" ({c.change_pct:+.0f}%)" if c.change_pct is not None else "")


def pair_text(metric: str, c: Change, arrow: str = "->") -> str:
    """``A -> B`` and the change, or the one value when both show the same."""
    a, b = value_text(metric, c.a), value_text(metric, c.b)
    if a == b:
        return a
    ch = change_text(metric, c)
    return f"{a} {arrow} {b}" + (f" {ch}" if ch else "")


def _json_text(v: Any, limit: int = 120) -> str:
    t = json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    return t if len(t) <= limit else t[: limit - 1] + "…"


def op_text(op: dict[str, Any]) -> str:
    """One JSON Patch operation as a line: ``replace /description: "old" -> "new"``."""
    path = op["path"] or "(whole)"
    if op["op"] == "replace":
        return f"replace {path}: {_json_text(op.get('before'))} -> {_json_text(op.get('value'))}"
    if op["op"] == "add":
        return f"add {path}: {_json_text(op.get('value'))}"
    if op["op"] == "remove":
        return f"remove {path} (was {_json_text(op.get('before'))})"
    if op["op"] in ("move", "copy"):
        return f"{op['op']} {op['from']} -> {path}"
    return _json_text(op)


def _n(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _side_line(label: str, s) -> str:
    servers = ", ".join(f"{n} {'/'.join(v)}".strip() for n, v in s.servers.items()) or "none identified"
    return (f"{label}: {s.name}: {_n(s.calls, 'call')} ({_n(s.tool_calls, 'tool call')}), {_n(s.sessions, 'session')}, "
            f"{_n(s.gaps, 'gap')}; servers: {servers}")


def _versions(c, arrow: str = "->") -> str:
    """A party's versions in A and B: ``1.0.0 -> 2.0.0``, one when the same, '' when none is known."""
    a, b = ("/".join(c.versions[k]) or "?" if getattr(c.metrics["requests"], k) is not None else "–" for k in "ab")
    return "" if a in "?–" and b in "?–" else a if a == b else f"{a} {arrow} {b}"


def _changed(c: CountChange) -> bool:
    return c.status != "same"


def _count_label(c: CountChange) -> str:
    k = c.key
    return k["code"] if "party" not in k else f"{k['code']} · {k['party_kind']}: {k['party']}"


def _tool_changed(t) -> bool:
    return t.presence != "both" or any(value_text(m, t.metrics[m].a) != value_text(m, t.metrics[m].b)
                                       for m, _ in TOOL_COLUMNS)


def diff_text(diff: CaptureDiff) -> str:
    """The readable summary ``mcptrace diff`` prints: both captures, then only what changed."""
    out = [_side_line("A", diff.a), _side_line("B", diff.b), ""]
    out.append("Definitions")
    for d in diff.definitions:
        what = f"  {SYMBOL[d.status]} {d.kind} {d.name} ({d.server})"
        if d.status == "changed":
            out.append(f"{what}: {', '.join(m or '(whole)' for m in d.members)} changed")
            out += [f"      {op_text(op)}" for op in d.patch or []]
        else:
            out.append(f"{what} {d.status}")
    for n in diff.not_compared:
        out.append(f"  ? {n.kind}s of {n.server} listed in {n.listed_in.upper()} only: not compared")
    if not diff.definitions and not diff.not_compared:
        out.append("  no change")
    out += ["", "Tools (tools/call; A -> B, change)"]
    tools = [t for t in diff.tools if _tool_changed(t)]
    for t in tools:
        where = {"a": " (called in A only)", "b": " (called in B only)"}.get(t.presence, "")
        out.append(f"  {t.server} · {t.tool}{where}")
        out.append("      " + "; ".join(f"{h} {pair_text(m, t.metrics[m])}" for m, h in TOOL_COLUMNS))
    if not tools:
        out.append("  no change" if diff.tools else "  no tool calls")
    out += ["", "Correlation coverage (requests; tool calls joined to a server span)"]
    for c in diff.coverage:
        versions = _versions(c)
        out.append(f"  {c.party_kind} {c.party}" + (f" ({versions})" if versions else ""))
        out.append("      " + "; ".join(f"{h} {pair_text(m, c.metrics[m])}" for m, h in COVERAGE_COLUMNS))
    if not diff.coverage:
        out.append("  no requests")
    for title, rows in (("Gaps by code", diff.gaps), ("Findings", diff.findings)):
        out += ["", f"{title} (A -> B)"]
        changed = [c for c in rows if _changed(c)]
        out += [f"  {SYMBOL.get(c.status, '~')} [{c.severity}] {_count_label(c)}: {c.count.a} -> {c.count.b} "
                f"{c.status}" for c in changed]
        if not changed:
            out.append("  no change")
    return "\n".join(out) + "\n"


def md_cell(v: Any) -> str:
    """A Markdown table cell: ``|`` and HTML characters escaped, newlines as spaces."""
    text = "" if v is None else str(v)
    return html.escape(text, quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head),
            *["| " + " | ".join(md_cell(v) for v in r) + " |" for r in rows]]


def diff_markdown(diff: CaptureDiff) -> str:
    """The diff as Markdown: the two captures, then tables of what changed."""
    out = ["## Capture diff", "", f"- **A**: {md_cell(_side_line('A', diff.a)[3:])}",
           f"- **B**: {md_cell(_side_line('B', diff.b)[3:])}", "", "### Definitions", ""]
    rows = [[d.server, d.kind, d.name, d.status, ", ".join(m or "(whole)" for m in d.members),
             "; ".join(op_text(op) for op in d.patch or [])] for d in diff.definitions]
    rows += [[n.server, n.kind, ", ".join(n.names), f"listed in {n.listed_in.upper()} only", "", "not compared"]
             for n in diff.not_compared]
    out += _md_table(["server", "kind", "name", "status", "members", "patch"], rows) if rows else ["No change."]
    out += ["", "### Tools (A → B)", ""]
    tools = [t for t in diff.tools if _tool_changed(t)]
    out += _md_table(["server", "tool", "in", *[h for _, h in TOOL_COLUMNS]],
                     [[t.server, t.tool, t.presence, *[pair_text(m, t.metrics[m], "→") for m, _ in TOOL_COLUMNS]]
                      for t in tools]) if tools else ["No change."]
    out += ["", "### Correlation coverage (A → B)", ""]
    out += _md_table(["party", "name", *[h for _, h in COVERAGE_COLUMNS]],
                     [[c.party_kind, c.party, *[pair_text(m, c.metrics[m], "→") for m, _ in COVERAGE_COLUMNS]]
                      for c in diff.coverage]) if diff.coverage else ["No requests."]
    for title, items in (("Gaps by code", diff.gaps), ("Findings", diff.findings)):
        changed = [c for c in items if _changed(c)]
        out += ["", f"### {title} (A → B)", ""]
        out += _md_table(["severity", "what", "A", "B", "status"],
                         [[c.severity, _count_label(c), c.count.a, c.count.b, c.status] for c in changed]) \
            if changed else ["No change."]
    return "\n".join(out) + "\n"


# -- HTML ---------------------------------------------------------------------------------------------------

_DIFF_CSS = """
.st-added,.st-appeared{color:#2b8a3e;font-weight:600} .st-removed,.st-disappeared{color:#c92a2a;font-weight:600}
.st-changed{color:#e67700;font-weight:600} .up{color:#c92a2a} .down{color:#2b8a3e}
"""


def _e(v: Any) -> str:
    return "" if v is None else html.escape(str(v), quote=True)


def _table(head: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (each built from escaped text)."""
    return ("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</tbody></table>")


def _pair_html(metric: str, c: Change, worse_up: bool = True) -> str:
    a, b = value_text(metric, c.a), value_text(metric, c.b)
    ch = change_text(metric, c)
    if a == b or not ch:
        return _e(pair_text(metric, c, "→"))
    cls = "up" if (c.change > 0) == worse_up else "down"
    return _e(f"{a} → {b}") + f' <span class="{cls}">{_e(ch)}</span>'


def _definition_html(d: DefinitionChange) -> list[str]:
    detail = d.patch if d.status == "changed" else d.definition
    return [_e(d.server), _e(d.kind), f"<code>{_e(d.name)}</code>", f'<span class="st-{_e(d.status)}">{_e(d.status)}</span>',
            _e(", ".join(m or "(whole)" for m in d.members)),
            f"<pre>{_e(json.dumps(detail, indent=1, ensure_ascii=False))}</pre>"]


def diff_html(diff: CaptureDiff, *, title: str = "MCP capture diff") -> str:
    """The diff as one self-contained HTML page: the two captures, then definitions (with each patch or
    definition), tools, coverage, gaps and findings. Every string is escaped; the page has no script."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts = [f"<h1>{_e(title)}</h1>",
             f'<div class="muted">generated {_e(now)} by mcptrace · A → B · durations in ms · rates in %, their '
             "changes in percentage points</div>"]
    parts.append(_table(["", "capture", "calls", "tool calls", "sessions", "gaps", "servers", "first call (UTC)"],
                        [[label, _e(s.name), _e(s.calls), _e(s.tool_calls), _e(s.sessions), _e(s.gaps),
                          _e(", ".join(f"{n} {'/'.join(v)}".strip() for n, v in s.servers.items())),
                          _e(s.first_ts and s.first_ts.astimezone(_dt.timezone.utc).isoformat(timespec="seconds"))]
                         for label, s in (("A", diff.a), ("B", diff.b))]))
    defs = [_definition_html(d) for d in diff.definitions]
    defs += [[_e(n.server), _e(n.kind), _e(", ".join(n.names)), "not compared", "",
              _e(f"listed in {n.listed_in.upper()} only")] for n in diff.not_compared]
    parts.append("<h2>Tool, prompt and resource definitions</h2>"
                 + (_table(["server", "kind", "name", "status", "members", "patch (A → B) / definition"], defs)
                    if defs else '<p class="muted">No definition changed.</p>'))
    parts.append("<h2>Tools</h2>" + (_table(
        ["server", "tool", "called in", *[h for _, h in TOOL_COLUMNS]],
        [[_e(t.server), f"<code>{_e(t.tool)}</code>", _e({"both": "A and B"}.get(t.presence, t.presence.upper())),
          *[_pair_html(m, t.metrics[m]) for m, _ in TOOL_COLUMNS]] for t in diff.tools])
        if diff.tools else '<p class="muted">No tool calls.</p>'))
    parts.append("<h2>Correlation coverage</h2>" + (_table(
        ["party", "name", "versions", *[h for _, h in COVERAGE_COLUMNS]],
        [[_e(c.party_kind), _e(c.party), _e(_versions(c, "→")),
          *[_pair_html(m, c.metrics[m], worse_up=m not in RATES) for m, _ in COVERAGE_COLUMNS]]
         for c in diff.coverage]) if diff.coverage else '<p class="muted">No requests.</p>'))
    for heading, items in (("Gaps by code", diff.gaps), ("Findings", diff.findings)):
        parts.append(f"<h2>{heading}</h2>" + (_table(
            ["severity", "what", "A", "B", "change", "status"],
            [[f'<span class="sev-{_e(c.severity)}">{_e(c.severity)}</span>', _e(_count_label(c)), _e(c.count.a),
              _e(c.count.b), _e(change_text("count", c.count)), f'<span class="st-{_e(c.status)}">{_e(c.status)}</span>']
             for c in items]) if items else '<p class="muted">None in either capture.</p>'))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<style>{CSS}{_DIFF_CSS}</style></head><body>{body}</body></html>")


def write_diff_html(diff: CaptureDiff, path: str | os.PathLike, **kwargs: Any) -> str:
    """Write :func:`diff_html` to ``path``; returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(diff_html(diff, **kwargs))
    return path
