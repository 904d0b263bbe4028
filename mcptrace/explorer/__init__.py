"""An ipywidgets explorer over a :class:`mcptrace.Workspace`: ``mcptrace.explore(ws)``.

Layout (top to bottom):

- a session picker, sessions ordered by gaps, then size (calls), then first time;
- a one-line summary of the picked session;
- filters: tool, status, gap code and a time range (ms since the session's first call);
- the session's timeline and waterfall (tabs): calls outside the filter are greyed, so the
  selection stands out against the rest of the session. A session of more than
  ``aggregate_above`` calls (:data:`mcptrace.render.waterfall.AGGREGATE_ABOVE`) gets the per-turn
  waterfall (one row per turn) and a turn picker above it: picking a turn, or picking a call in
  the call list, drills down to the detailed rows of that turn;
- the gap list (one line per gap) with the selected gap's evidence (``gaps.detail``);
- the call list and the message inspector: the selected call's summary, its request and
  response JSON, the ``_meta`` of both, HTTP headers, and the spans and gaps joined to it.
  Picking a gap picks its call. The gap and call lists show at most ``list_limit`` entries
  (the count says how many the filters select); messages and spans are read per call, when
  it is inspected, so opening a 50k-call session stays a matter of seconds.

Everything that decides *what* is shown lives in :class:`ExplorerModel` (plain Python, no
widgets) so it can be tested without a browser; :class:`ExplorerWidget` only wires widgets
to it. Transcript strings are treated as hostile: they are shown in widgets that
render text (dropdown and select options, text areas, labels); the two HTML widgets (session
summary, call header) escape every value with :func:`html.escape`, and the figures come from
:mod:`mcptrace.render.timeline` / :mod:`mcptrace.render.waterfall`, which escape their labels and hovers.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import html
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ipywidgets as w

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import plotly.graph_objects as go

    from mcptrace.workspace import Workspace

ALL = "(all)"
DIM_COLOR = "#dee2e6"
NO_TIME = "(no times in this capture: message order)"
#: the turn picker's value for the per-turn (aggregated) waterfall
ALL_TURNS = ""
#: most entries the call list, the gap list and the turn picker show
LIST_LIMIT = 1_000

_CALLS_SQL = """
WITH g AS (
    SELECT call_id, list_sort(list_distinct(list(code))) AS gap_codes
    FROM gaps WHERE session_id = $session_id AND call_id IS NOT NULL GROUP BY call_id
)
SELECT c.call_id, c.rpc_id, c.method, c.tool_name, coalesce(c.tool_name, c.method) AS name, c.status,
       c.error_code, c.error_message, c.start_ts, c.end_ts, c.duration_ms, c.trace_id, c.parent_span_id,
       c.trace_context_source, c.request_session_key, c.request_session_key_source, c.connection_id,
       c.mcp_session_id, c.parallel_group, c.turn_id, c.request_message_id, c.response_message_id,
       c.cancel_message_id, c.start_ord, c.end_ord, coalesce(g.gap_codes, []::VARCHAR[]) AS gap_codes
FROM calls c LEFT JOIN g USING (call_id)
WHERE c.session_id = $session_id
ORDER BY c.start_ord
"""
_CALL_COLUMNS = ["call_id", "rpc_id", "method", "tool_name", "name", "status", "error_code", "error_message",
                 "start_ts", "end_ts", "duration_ms", "trace_id", "parent_span_id", "trace_context_source",
                 "session_key", "session_key_source", "connection_id", "mcp_session_id", "parallel_group",
                 "turn_id", "request_message_id", "response_message_id", "cancel_message_id", "start_ord",
                 "end_ord", "gap_codes"]


# -- plain logic ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """What to show of a session. ``None`` means no restriction.

    ``tool``: the call's tool name, or its method for calls that are not ``tools/call``;
    ``status``: ok | error | tool_error | cancelled | unanswered; ``gap_code``: calls with a
    gap of that code (and only gaps of that code); ``time_range_ms``: (lo, hi) in ms since the
    session's first call: calls whose [start, end] overlaps it (an unanswered call never
    ends), gaps whose time lies in it. Captures without times ignore the time range.
    """

    tool: str | None = None
    status: str | None = None
    gap_code: str | None = None
    time_range_ms: tuple[float, float] | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.tool, self.status, self.gap_code, self.time_range_ms))


@dataclass
class CallDetail:
    """What the message inspector shows for one call. Every string is plain text."""

    call_id: int
    session_id: str
    title: str
    fields: list[tuple[str, str]]
    request_json: str
    response_json: str
    meta_json: str
    http_text: str
    spans_text: str
    gaps_text: str
    gap_codes: list[str] = field(default_factory=list)

    def header_html(self) -> str:
        """The inspector header as HTML; every value escaped."""
        rows = "".join(f"<span style='color:#868e96'>{_e(k)}</span><span style='font-family:monospace;"
                       f"word-break:break-all'>{_e(v)}</span>" for k, v in self.fields)
        gaps = ""
        if self.gap_codes:
            gaps = ("<div style='color:#c92a2a;margin-top:2px'>gaps: "
                    + ", ".join(f"<code>{_e(c)}</code>" for c in self.gap_codes) + "</div>")
        return (f"<div class='mcptrace-call-header' style='font-size:12px;line-height:1.45'><b>{_e(self.title)}</b>"
                f"<div style='display:grid;grid-template-columns:max-content 1fr;column-gap:12px;margin-top:2px'>"
                f"{rows}</div>{gaps}</div>")


def _e(v: object) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _isnull(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _pretty(text: str | None, empty: str = "(none)") -> str:
    if text is None:
        return empty
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(text)


def _short(s: object, n: int = 48) -> str:
    s = "" if s is None else str(s)
    s = " ".join(s.split())  # no newlines in one-line labels
    return s if len(s) <= n else s[: n - 1] + "…"


def _dicts_with_offset(res, t0, ts_column: str) -> list[dict]:
    """Rows of ``res`` as dicts, each with ``offset_ms``: ms from ``t0`` to its ``ts_column``."""
    out = []
    for r in res.rows():
        d = dict(zip(res.columns, r))
        d["offset_ms"] = _ms_between(t0, d[ts_column])
        out.append(d)
    return out


def _ms_between(a: _dt.datetime | None, b: _dt.datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return (b - a).total_seconds() * 1000.0


class ExplorerModel:
    """The explorer's logic over a workspace, without widgets.

    >>> m = ExplorerModel(ws)                                  # doctest: +SKIP
    >>> sid = m.session_ids()[0]                               # most gaps first
    >>> m.filtered_calls(sid, Filters(status="error"))         # doctest: +SKIP
    >>> m.inspect(call_id).request_json                        # doctest: +SKIP
    """

    def __init__(self, ws: "Workspace", *, aggregate_above: int | None = None, list_limit: int = LIST_LIMIT,
                 timeline_aggregate_above: int | None = None) -> None:
        from mcptrace.render.timeline import AGGREGATE_ABOVE as TIMELINE_ABOVE
        from mcptrace.render.waterfall import AGGREGATE_ABOVE

        self.ws = ws
        #: sessions with more calls get the per-turn waterfall (see :mod:`mcptrace.render.waterfall`)
        self.aggregate_above = AGGREGATE_ABOVE if aggregate_above is None else aggregate_above
        #: sessions with more calls get the timeline's overview strip (see :mod:`mcptrace.render.timeline`)
        self.timeline_aggregate_above = TIMELINE_ABOVE if timeline_aggregate_above is None else timeline_aggregate_above
        #: most entries in the call list, the gap list and the turn picker
        self.list_limit = list_limit
        self._calls: dict[str, list[dict]] = {}
        self._timeline: dict[str, Any] = {}
        self._waterfall: dict[Any, Any] = {}
        self._turns: dict[str, list[dict]] = {}
        self._turn_keys: dict[str, dict[int, str]] = {}

    # sessions --------------------------------------------------------------------------
    def sessions(self) -> "pd.DataFrame":
        """Sessions in picker order: most gaps first, then most calls, then earliest."""
        return self.ws.sql("SELECT * FROM sessions ORDER BY n_gaps DESC, n_calls DESC, first_ts NULLS LAST, "
                           "session_id").df()

    def session_ids(self) -> list[str]:
        return [r[0] for r in self.ws.sql("SELECT session_id FROM sessions ORDER BY n_gaps DESC, n_calls DESC, "
                                          "first_ts NULLS LAST, session_id").rows()]

    def session_options(self) -> list[tuple[str, str]]:
        """(label, session_id) for the picker; labels are plain text (shown as text)."""
        rows = self.ws.sql("""SELECT session_id, session_key_source, session_key, client_name, n_calls, n_gaps
                              FROM sessions ORDER BY n_gaps DESC, n_calls DESC, first_ts NULLS LAST, session_id""").rows()
        out = []
        for sid, src, key, client, n_calls, n_gaps in rows:
            label = (f"{n_gaps} gap{'' if n_gaps == 1 else 's'} · {n_calls} call{'' if n_calls == 1 else 's'} · "
                     f"{sid} · {_short(client or '(unknown client)', 24)} · {_short(src, 24)}: {_short(key, 40)}")
            out.append((label, sid))
        return out

    def session_summary(self, session_id: str) -> dict[str, Any]:
        rows = self.ws.sql("SELECT * FROM sessions WHERE session_id = ?", [session_id])
        if not len(rows):
            raise KeyError(f"no session {session_id!r}")
        return dict(zip(rows.columns, rows.rows()[0]))

    def session_summary_html(self, session_id: str) -> str:
        """A one-paragraph HTML summary of the session; every value escaped."""
        s = self.session_summary(session_id)
        span = _ms_between(s.get("first_ts"), s.get("last_ts"))
        parts = [
            ("session", s["session_id"]),
            ("key", f"{s.get('session_key_source')}: {s.get('session_key')}"),
            ("client", s.get("client_name") or "(unknown)"),
            ("server", s.get("server_name") or "(unknown)"),
            ("calls", s.get("n_calls")),
            ("max in flight", s.get("max_parallel")),
            ("transport sessions", s.get("n_transport_sessions")),
            ("first", s.get("first_ts")),
            ("span", f"{span:.1f} ms" if span is not None else "(no times)"),
        ]
        body = " · ".join(f"<span style='color:#868e96'>{_e(k)}</span> {_e(v)}" for k, v in parts)
        n_gaps = s.get("n_gaps") or 0
        colour = "#c92a2a" if n_gaps else "#2b8a3e"
        return (f"<div class='mcptrace-session-summary' style='font-size:12.5px;line-height:1.5'>{body} · "
                f"<b style='color:{colour}'>{_e(n_gaps)} gap{'' if n_gaps == 1 else 's'}</b></div>")

    # calls and filters -----------------------------------------------------------------
    def calls(self, session_id: str) -> list[dict]:
        """The session's calls in wire order as dicts (columns of ``calls`` plus ``name``,
        ``gap_codes`` and ``offset_ms``/``end_offset_ms``: ms since the session's first call)."""
        if session_id not in self._calls:
            rows = self.ws.sql(_CALLS_SQL, {"session_id": session_id}).rows()
            calls = [dict(zip(_CALL_COLUMNS, r)) for r in rows]
            t0 = min((c["start_ts"] for c in calls if c["start_ts"] is not None), default=None)
            for c in calls:
                c["gap_codes"] = list(c["gap_codes"] or [])
                c["offset_ms"] = _ms_between(t0, c["start_ts"])
                c["end_offset_ms"] = _ms_between(t0, c["end_ts"])
            self._calls[session_id] = calls
        return self._calls[session_id]

    def session_t0(self, session_id: str) -> _dt.datetime | None:
        return min((c["start_ts"] for c in self.calls(session_id) if c["start_ts"] is not None), default=None)

    def is_timed(self, session_id: str) -> bool:
        calls = self.calls(session_id)
        return bool(calls) and all(c["start_ts"] is not None for c in calls)

    def filter_choices(self, session_id: str) -> dict[str, Any]:
        """What the filters can take for this session: ``tools``, ``statuses``, ``gap_codes``
        (sorted lists) and ``time_bounds`` ((0, last ms) or None without times)."""
        calls = self.calls(session_id)
        codes = [r[0] for r in self.ws.sql("SELECT DISTINCT code FROM gaps WHERE session_id = ? ORDER BY code",
                                           [session_id]).rows()]
        bounds = None
        if self.is_timed(session_id):
            ends = [c["end_offset_ms"] if c["end_offset_ms"] is not None else c["offset_ms"] for c in calls]
            gap_offsets = [g["offset_ms"] for g in self.gaps(session_id) if g["offset_ms"] is not None]
            bounds = (0.0, max(ends + gap_offsets + [0.0]))
        return {"tools": sorted({c["name"] for c in calls if c["name"] is not None}),
                "statuses": sorted({c["status"] for c in calls if c["status"] is not None}),
                "gap_codes": codes, "time_bounds": bounds}

    def call_matches(self, call: dict, f: Filters, *, timed: bool = True) -> bool:
        if f.tool is not None and call["name"] != f.tool:
            return False
        if f.status is not None and call["status"] != f.status:
            return False
        if f.gap_code is not None and f.gap_code not in call["gap_codes"]:
            return False
        if f.time_range_ms is not None and timed and call["offset_ms"] is not None:
            lo, hi = f.time_range_ms
            end = call["end_offset_ms"] if call["end_offset_ms"] is not None else math.inf
            if call["offset_ms"] > hi or end < lo:
                return False
        return True

    def filtered_calls(self, session_id: str, f: Filters | None = None) -> list[dict]:
        """The session's calls that pass ``f``, in wire order."""
        f = f or Filters()
        timed = self.is_timed(session_id)
        return [c for c in self.calls(session_id) if self.call_matches(c, f, timed=timed)]

    def call_label(self, c: dict) -> str:
        """One line per call for the call list (plain text)."""
        when = f"{c['offset_ms']:9.1f} ms" if c["offset_ms"] is not None else f"#{c['start_ord']:>6}"
        dur = f"{c['duration_ms']:.1f} ms" if c["duration_ms"] is not None else "open"
        gaps = f"  ⚠ {', '.join(c['gap_codes'])}" if c["gap_codes"] else ""
        return f"{when}  id {_short(c['rpc_id'], 12)}  {_short(c['name'], 40)}  [{c['status']}, {dur}]{gaps}"

    def call_options(self, session_id: str, f: Filters | None = None) -> tuple[list[tuple[str, int]], int]:
        """(label, call_id) of the first :attr:`list_limit` calls that pass ``f``, and how many pass."""
        calls = self.filtered_calls(session_id, f)
        return [(self.call_label(c), c["call_id"]) for c in calls[: self.list_limit]], len(calls)

    # turns -----------------------------------------------------------------------------
    def is_aggregated(self, session_id: str) -> bool:
        """Whether the session's waterfall is drawn one row per turn (more than
        :attr:`aggregate_above` calls)."""
        row = self.ws.sql("SELECT n_calls FROM sessions WHERE session_id = ?", [session_id]).rows()
        return bool(row) and row[0][0] > self.aggregate_above

    def turns(self, session_id: str) -> list[dict]:
        """The session's turns in wire order as dicts (columns of :func:`mcptrace.analysis.turns.turns`
        plus ``offset_ms``: ms since the session's first call)."""
        if session_id not in self._turns:
            self._turns[session_id] = _dicts_with_offset(self.ws.turns(session_id), self.session_t0(session_id),
                                                         "first_ts")
        return self._turns[session_id]

    def turn_of(self, session_id: str, call_id: int) -> str | None:
        """The turn key (as in :meth:`turns`) of a call of the session, None for other calls."""
        if session_id not in self._turn_keys:
            from mcptrace.analysis.turns import UNTRACED_RUN

            self._turn_keys[session_id] = dict(self.ws.sql("SELECT call_id, turn FROM turn_keys($session_id, $run)", {
                "session_id": session_id, "run": UNTRACED_RUN}).rows())
        return self._turn_keys[session_id].get(call_id)

    def turn_label(self, t: dict) -> str:
        """One line per turn for the turn picker (plain text)."""
        when = f"{t['offset_ms']:9.1f} ms" if t["offset_ms"] is not None else f"#{t['first_ord']:>6}"
        extra = "".join(f" · {t[k]} {label}" for k, label in (("n_errors", "errors"), ("n_cancelled", "cancelled"),
                                                              ("n_unanswered", "unanswered"), ("n_gaps", "gaps"))
                        if t[k])
        return f"{when}  {_short(t['name'], 32)} · {t['n_calls']} call{'' if t['n_calls'] == 1 else 's'}{extra}"

    def turn_options(self, session_id: str, f: Filters | None = None,
                     include: str | None = None) -> tuple[list[tuple[str, str]], int]:
        """Options of the turn picker: ("all turns", :data:`ALL_TURNS`) then (label, turn key)
        of the first :attr:`list_limit` turns holding a call that passes ``f`` (wire order), plus
        the turn ``include`` wherever it falls; and how many turns pass."""
        f = f or Filters()
        turns = self.turns(session_id)
        if f.active:
            keys = {self.turn_of(session_id, c["call_id"]) for c in self.filtered_calls(session_id, f)}
            turns = [t for t in turns if t["turn"] in keys]
        shown = turns[: self.list_limit]
        if include is not None and include not in {t["turn"] for t in shown}:
            extra = [t for t in self.turns(session_id) if t["turn"] == include]
            shown = sorted(shown + extra, key=lambda t: t["first_ord"])
        n = len(self.turns(session_id))
        head = (f"(all {n} turns: one row per turn)", ALL_TURNS)
        return [head] + [(self.turn_label(t), t["turn"]) for t in shown], len(turns)

    # gaps ----------------------------------------------------------------------------
    def gap_options(self, session_id: str, f: Filters | None = None) -> tuple[list[tuple[str, int]], int]:
        """(label, gap_id) of the first :attr:`list_limit` gaps :meth:`gaps` keeps, and how many it keeps."""
        gaps = self.gaps(session_id, f)
        return [(self.gap_label(g), g["gap_id"]) for g in gaps[: self.list_limit]], len(gaps)

    def gaps(self, session_id: str, f: Filters | None = None) -> list[dict]:
        """The session's gaps as dicts (columns of ``gaps`` plus ``offset_ms``), filtered:
        by code; by the time range; and, when a tool/status/gap-code/time filter picks calls,
        gaps of a call only when that call is picked (gaps without a call stay)."""
        rows = self.ws.sql("SELECT gap_id, code, severity, session_id, call_id, message_id, trace_id, span_id, ts, "
                           "detail FROM gaps WHERE session_id = ? ORDER BY ts NULLS LAST, gap_id", [session_id])
        out = _dicts_with_offset(rows, self.session_t0(session_id), "ts")
        f = f or Filters()
        if not f.active:
            return out
        picked = {c["call_id"] for c in self.filtered_calls(session_id, f)}
        timed = self.is_timed(session_id)
        keep = []
        for g in out:
            if f.gap_code is not None and g["code"] != f.gap_code:
                continue
            if f.time_range_ms is not None and timed and g["offset_ms"] is not None:
                lo, hi = f.time_range_ms
                if not lo <= g["offset_ms"] <= hi:
                    continue
            if g["call_id"] is not None and g["call_id"] not in picked and (f.tool or f.status or f.time_range_ms):
                continue
            keep.append(g)
        return keep

    def gap_label(self, g: dict) -> str:
        when = f"{g['offset_ms']:9.1f} ms" if g["offset_ms"] is not None else "        —"
        call = f"call {g['call_id']}" if g["call_id"] is not None else "session"
        return f"{when}  {g['severity']:<7}  {g['code']}  ({call})"

    def gap_detail(self, gap_id: int) -> str:
        """The gap's ids and its evidence (``detail``) as indented JSON text."""
        rows = self.ws.sql("SELECT gap_id, code, severity, session_id, call_id, message_id, trace_id, span_id, ts, "
                           "detail FROM gaps WHERE gap_id = ?", [gap_id])
        if not len(rows):
            raise KeyError(f"no gap {gap_id!r}")
        g = dict(zip(rows.columns, rows.rows()[0]))
        try:
            detail = json.loads(g.pop("detail")) if g.get("detail") is not None else None
        except ValueError:
            detail = g.pop("detail")
        g["ts"] = None if g["ts"] is None else g["ts"].isoformat()
        g["detail"] = detail
        return json.dumps(g, indent=2, ensure_ascii=False, default=str)

    # the inspector ---------------------------------------------------------------------
    def _message(self, message_id: int | None) -> dict | None:
        if message_id is None:
            return None
        rows = self.ws.sql("SELECT message_id, ts, direction, kind, raw, meta, http_method, http_path, http_status, "
                           "http_request_headers, http_response_headers FROM messages WHERE message_id = ?",
                           [message_id])
        return dict(zip(rows.columns, rows.rows()[0])) if len(rows) else None

    def inspect(self, call_id: int) -> CallDetail:
        """The inspector content of one call: its request and response JSON (as captured,
        indented), the ``_meta`` of both, HTTP details, the spans joined to it and its gaps."""
        rows = self.ws.sql("SELECT session_id FROM calls WHERE call_id = ?", [call_id]).rows()
        if not rows:
            raise KeyError(f"no call {call_id!r}")
        sid = rows[0][0]
        c = next(x for x in self.calls(sid) if x["call_id"] == call_id)
        req, resp, cancel = (self._message(c[k]) for k in ("request_message_id", "response_message_id",
                                                           "cancel_message_id"))
        dur = f"{c['duration_ms']:.3f} ms" if c["duration_ms"] is not None else "(no response)"
        fields = [
            ("tool / method", c["name"]),
            ("JSON-RPC id", c["rpc_id"]),
            ("status", c["status"] + (f" (code {c['error_code']}: {c['error_message']})"
                                      if c["error_code"] is not None else "")),
            ("start", c["start_ts"].isoformat() if c["start_ts"] is not None else f"message #{c['start_ord']}"),
            ("duration", dur),
            ("trace id", c["trace_id"] or "(none)"),
            ("parent span id", c["parent_span_id"] or "(none)"),
            ("trace context from", c["trace_context_source"] or "(none)"),
            ("session key", f"{c['session_key_source']}: {c['session_key']}" if c["session_key"] else "(none)"),
            ("connection", c["connection_id"]),
            ("Mcp-Session-Id", c["mcp_session_id"] or "(none)"),
            ("parallel group", c["parallel_group"] if c["parallel_group"] is not None else "(none)"),
        ]
        metas = []
        for label, m in (("request params._meta", req), ("response result._meta", resp)):
            meta = None
            if m is not None:
                if label.startswith("request"):
                    meta = m.get("meta")
                else:
                    try:
                        body = json.loads(m["raw"])
                        res = body.get("result") if isinstance(body, dict) else None
                        if isinstance(res, dict) and "_meta" in res:
                            meta = json.dumps(res["_meta"])
                    except (TypeError, ValueError):
                        pass
            metas.append(f"# {label}\n{_pretty(meta)}")
        http = []
        for label, m, col in (("request", req, "http_request_headers"), ("response", resp, "http_response_headers")):
            if m is None or (m.get("http_method") is None and m.get(col) is None):
                continue
            http.append(f"# JSON-RPC {label} carried by: {m.get('http_method') or ''} {m.get('http_path') or ''} "
                        f"→ {m.get('http_status') or '?'}")
            http.append(f"HTTP {label} headers:\n{_pretty(m.get(col))}\n")
        spans = self.ws.sql("""
            SELECT cs.role, cs.matched_by, s.service_name, s.kind, s.name, s.trace_id, s.span_id, s.parent_span_id,
                   s.duration_ms
            FROM call_spans cs JOIN spans s ON s.trace_id = cs.trace_id AND s.span_id = cs.span_id
            WHERE cs.call_id = ? ORDER BY s.start_ts, s.span_id""", [call_id]).rows()
        span_lines = []
        for role, mb, svc, kind, name, trace, span, parent, dur in spans:
            took = f" · {dur:.1f} ms" if dur is not None else ""
            span_lines.append(f"{role:<10} {kind or '':<8} {svc or '(unknown service)'} · {name}\n"
                              f"           trace {trace} span {span} parent {parent or '(root)'}"
                              f" · matched by {mb}{took}")
        gap_rows = self.ws.sql("SELECT gap_id FROM gaps WHERE call_id = ? AND session_id = ? ORDER BY gap_id",
                               [call_id, sid]).rows()
        return CallDetail(
            call_id=call_id, session_id=sid,
            title=f"call {call_id}: {c['name']} (id {c['rpc_id']}) — {c['status']}",
            fields=[(k, "" if v is None else str(v)) for k, v in fields],
            request_json=_pretty(req["raw"] if req else None, "(request not captured)"),
            response_json=(_pretty(resp["raw"]) if resp else
                           "(no response captured" + (": cancelled by\n" + _pretty(cancel["raw"]) if cancel else ")")),
            meta_json="\n\n".join(metas),
            http_text="\n".join(http) if http else "(not HTTP: no headers captured)",
            spans_text="\n".join(span_lines) if span_lines else "(no spans joined to this call)",
            gaps_text="\n\n".join(self.gap_detail(g[0]) for g in gap_rows) if gap_rows else "(no gaps on this call)",
            gap_codes=list(c["gap_codes"]),
        )

    # figures ---------------------------------------------------------------------------
    def timeline(self, session_id: str, f: Filters | None = None) -> "go.Figure":
        """The session's timeline (:mod:`mcptrace.render.timeline`) with calls outside ``f`` greyed,
        gaps of other codes hidden and the x axis narrowed to the time range."""
        import plotly.graph_objects as go

        if session_id not in self._timeline:
            self._timeline[session_id] = self.ws.timeline(session_id, aggregate_above=self.timeline_aggregate_above)
        fig = go.Figure(copy.deepcopy(self._timeline[session_id]))
        f = f or Filters()
        if not f.active:
            return fig
        picked = {c["call_id"] for c in self.filtered_calls(session_id, f)}
        try:
            _dim_timeline(fig, picked, f)
        except Exception:  # noqa: BLE001 - the figure's layout changed: show it undimmed rather than fail
            pass
        timed = self.is_timed(session_id)
        t0 = self.session_t0(session_id)
        if f.time_range_ms is not None and timed and t0 is not None:
            lo, hi = f.time_range_ms
            pad = max((hi - lo) * 0.03, 0.5)
            fig.update_xaxes(range=[_axis_value(fig, t0, lo - pad), _axis_value(fig, t0, hi + pad)])
        n = len(self.calls(session_id))
        fig.update_layout(title_text=(fig.layout.title.text or "") + _e(f" — filter shows {len(picked)} of {n} calls"))
        return fig

    def waterfall(self, session_id: str, f: Filters | None = None, turn: str | None = None) -> "go.Figure":
        """The session's waterfall (:mod:`mcptrace.render.waterfall`) with the rows of calls outside
        ``f`` (the calls and their spans) greyed. Above :attr:`aggregate_above` calls it is the
        per-turn waterfall (turns without a call that passes ``f`` greyed) unless ``turn`` (a key
        of :meth:`turns`) picks the detailed rows of one turn."""
        import plotly.graph_objects as go

        f = f or Filters()
        turn = turn or None
        if turn is None and self.is_aggregated(session_id):
            if (session_id, None) not in self._waterfall:
                self._waterfall[(session_id, None)] = (self.ws.waterfall(session_id,
                                                                         aggregate_above=self.aggregate_above), None)
            fig = go.Figure(copy.deepcopy(self._waterfall[(session_id, None)][0]))
            if f.active:
                keys = {self.turn_of(session_id, c["call_id"]) for c in self.filtered_calls(session_id, f)}
                _dim_turns(fig, {html.escape(k, quote=False) for k in keys if k is not None})
            return fig
        if (session_id, turn) not in self._waterfall:
            self._waterfall[(session_id, turn)] = (
                self.ws.waterfall(session_id, turn=turn, aggregate_above=self.aggregate_above),
                self.ws.tree(session_id, turn=turn))
        base, tree = self._waterfall[(session_id, turn)]
        fig = go.Figure(copy.deepcopy(base))
        if not f.active:
            return fig
        picked = {c["call_id"] for c in self.filtered_calls(session_id, f)}
        bar = fig.data[0] if fig.data else None
        colors = list(bar.marker.color) if bar is not None and bar.marker.color is not None \
            and not isinstance(bar.marker.color, str) else None
        if colors is not None and len(colors) == len(tree):
            for i, cid in enumerate(tree["call_id"]):
                if not _isnull(cid) and cid is not None and str(cid) != "<NA>" and int(cid) not in picked:
                    colors[i] = DIM_COLOR
            bar.marker.color = colors
        return fig


def _mode(trace: Any) -> str | None:
    """A trace's ``mode`` (bars, e.g. the timeline's overview strip, have none)."""
    return getattr(trace, "mode", None)


def _as_array(v: Any):
    """A trace's data array as numpy: plotly keeps numpy arrays as given, but a copied figure
    holds them as typed-array specs (``{"dtype", "bdata", "shape"?}``, base64)."""
    import base64

    import numpy as np

    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if v.get("shape"):
            a = a.reshape([int(n) for n in str(v["shape"]).split(",")])
        return a
    return np.asarray(v, dtype=object if v is not None and len(v) and isinstance(v[0], (list, tuple)) else None)


def _dim_turns(fig, picked: set) -> None:
    """Grey the rows of a per-turn waterfall (:func:`mcptrace.render.waterfall.turn_waterfall`) whose
    turn key (escaped, ``customdata[8]``) is not in ``picked``: each class's line and marker
    traces are split into kept and dimmed parts."""
    import numpy as np
    import plotly.graph_objects as go

    data = list(fig.data)
    markers = {t.legendgroup: t for t in data if _mode(t) == "markers" and t.customdata is not None
               and np.ndim(t.customdata) == 2}
    dim_x: list = []
    dim_y: list = []
    width = None
    for t in data:
        if _mode(t) != "lines" or t.legendgroup not in markers:
            continue
        m = markers[t.legendgroup]
        keep = np.array([row[8] in picked for row in m.customdata], dtype=bool)
        xs, ys = _as_array(t.x), _as_array(t.y)
        seg = np.repeat(keep, 3)
        dim_x.append(xs[~seg])
        dim_y.append(ys[~seg])
        t.x, t.y = xs[seg], ys[seg]
        m.x, m.y, m.customdata = _as_array(m.x)[keep], _as_array(m.y)[keep], _as_array(m.customdata)[keep]
        width = t.line.width
    if dim_x and sum(len(x) for x in dim_x):
        fig.add_trace(go.Scattergl(x=np.concatenate(dim_x), y=np.concatenate(dim_y), mode="lines",
                                   line=dict(color=DIM_COLOR, width=width or 4), name="turns filtered out",
                                   legendgroup="filtered out", hoverinfo="skip"))
        fig.data = (fig.data[-1],) + fig.data[:-1]  # under the kept rows


def _call_id_of(row: Any) -> Any:
    """The call id a timeline marker carries: its ``customdata`` is the call id, or a row of
    hover fields ending with it."""
    if isinstance(row, (str, bytes)) or not hasattr(row, "__len__"):
        return row
    return row[-1]


def timeline_call_ids(fig) -> list:
    """The call ids of the calls drawn in colour (not greyed) in a timeline figure."""
    from mcptrace.render.timeline import STATUS_COLORS

    return [_call_id_of(r) for t in fig.data if t.customdata is not None and _mode(t) == "markers"
            and t.legendgroup in STATUS_COLORS for r in t.customdata]


def _dim_timeline(fig, picked: set, f: Filters) -> None:
    """Grey the calls of ``fig`` (a :func:`mcptrace.render.timeline.timeline`) that are not in
    ``picked``: the per-status line and marker traces are split into kept and dimmed parts
    (the dimmed markers keep their hover). Array operations, no loop over calls."""
    import numpy as np
    import plotly.graph_objects as go

    from mcptrace.render.timeline import STATUS_COLORS

    data = list(fig.data)
    markers = {t.legendgroup: t for t in data if t.customdata is not None and _mode(t) == "markers"
               and t.legendgroup in STATUS_COLORS}
    wanted = np.fromiter(picked, dtype=np.int64, count=len(picked))
    dim_x, dim_y, dim_mx, dim_my, dim_custom, dim_hover = [], [], [], [], [], []
    width = None
    template = None
    n_dim = 0
    for t in data:
        if _mode(t) != "lines" or t.legendgroup not in markers:
            continue
        m = markers[t.legendgroup]
        rows = _as_array(m.customdata)
        ids = np.array([_call_id_of(r) for r in rows], dtype=np.int64) if rows.ndim != 2 else \
            rows[:, -1].astype(np.int64)
        keep = np.isin(ids, wanted)
        xs, ys = _as_array(t.x), _as_array(t.y)
        if len(xs) != 3 * len(ids):
            raise ValueError("unexpected timeline layout")
        seg = np.repeat(keep, 3)
        dim_x.append(xs[~seg])
        dim_y.append(ys[~seg])
        t.x, t.y = xs[seg], ys[seg]
        width = t.line.width
        mx, my = _as_array(m.x), _as_array(m.y)
        mh = m.hovertext if m.hovertext is not None and not isinstance(m.hovertext, str) else None
        template = template or m.hovertemplate
        dim_mx.append(mx[~keep])
        dim_my.append(my[~keep])
        dim_custom.append(rows[~keep])
        dim_hover += list(np.asarray(mh, dtype=object)[~keep]) if mh is not None else [""] * int((~keep).sum())
        m.x, m.y, m.customdata = mx[keep], my[keep], rows[keep]
        if mh is not None:
            m.hovertext = np.asarray(mh, dtype=object)[keep]
        t.name = f"{t.legendgroup} ({int(keep.sum())})"
        n_dim += int((~keep).sum())
    for t in data:
        name = t.name or ""
        if not name.startswith("gap: "):
            continue
        code = name[5:].rsplit(" (", 1)[0]
        if f.gap_code is not None and code != f.gap_code:
            t.visible = "legendonly"
            continue
        # a gap's customdata is its call id as text ('' for gaps without a call)
        ids = [] if t.customdata is None else [str(v) for v in t.customdata]
        if ids:
            t.marker.opacity = [1.0 if (not cid or int(cid) in picked) else 0.2 for cid in ids]
    if n_dim:
        fig.add_trace(go.Scattergl(x=np.concatenate(dim_x), y=np.concatenate(dim_y), mode="lines",
                                   line=dict(color=DIM_COLOR, width=width or 8), name=f"filtered out ({n_dim})",
                                   legendgroup="filtered out", hoverinfo="skip"))
        custom = np.concatenate(dim_custom)
        hover = dict(customdata=custom, hovertemplate=template) if template else \
            dict(customdata=custom, hovertext=dim_hover, hoverinfo="text")
        fig.add_trace(go.Scattergl(x=np.concatenate(dim_mx), y=np.concatenate(dim_my), mode="markers",
                                   marker=dict(color=DIM_COLOR, symbol="square"), legendgroup="filtered out",
                                   showlegend=False, name="filtered out", **hover))


def _axis_value(fig, t0: _dt.datetime, ms: float):
    """A point of the timeline's x axis ``ms`` after ``t0``, in the figure's own x representation
    (epoch milliseconds, or naive UTC ISO text for datetime values)."""
    sample = next((x for t in fig.data if _mode(t) == "lines" and t.x is not None
                   for x in _as_array(t.x)[:1]), None)
    when = t0 + _dt.timedelta(milliseconds=ms)
    if isinstance(sample, (int, float)):
        return when.timestamp() * 1000.0
    return when.astimezone(_dt.timezone.utc).replace(tzinfo=None).isoformat()


def figure_output(fig) -> dict:
    """An nbformat ``display_data`` output of a plotly figure (the plotly MIME type, which
    JupyterLab's bundled plotly renderer and VS Code draw), for ``Output.outputs``."""
    import plotly.io as pio

    return {"output_type": "display_data", "metadata": {},
            "data": {"application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False)),
                     "text/plain": f"<plotly figure: {len(fig.data)} traces>"}}


# -- widget wiring ----------------------------------------------------------------------------

class ExplorerWidget(w.VBox):
    """The explorer's widgets, wired to an :class:`ExplorerModel`. Public parts:
    ``session_picker``, ``tool_filter``, ``status_filter``, ``gap_filter``, ``time_filter``,
    ``reset_button``, ``summary`` (HTML, escaped), ``figure_tabs`` (``timeline_out``,
    ``waterfall_box``: ``turn_picker`` for sessions above the model's ``aggregate_above`` calls,
    then ``waterfall_out``), ``gap_list``, ``gap_detail``, ``call_list``, ``call_header`` (HTML,
    escaped), ``inspector_tabs`` (``request_text``, ``response_text``, ``meta_text``,
    ``http_text``, ``spans_text``, ``call_gaps_text``). ``aggregate_above`` and ``list_limit``
    go to the :class:`ExplorerModel`."""

    def __init__(self, ws: "Workspace", session_id: str | None = None, *, aggregate_above: int | None = None,
                 list_limit: int = LIST_LIMIT, **kwargs: Any) -> None:
        self.model = ExplorerModel(ws, aggregate_above=aggregate_above, list_limit=list_limit)
        self._quiet = False
        self._figs_stale = {0: True, 1: True}
        mono = w.Layout(width="98%", height="300px")
        options = self.model.session_options()
        self.session_picker = w.Dropdown(options=options, description="Session", layout=w.Layout(width="100%"),
                                         style={"description_width": "60px"})
        self.summary = w.HTML(layout=w.Layout(width="100%"))
        self.tool_filter = w.Dropdown(options=[ALL], description="Tool", layout=w.Layout(width="230px"),
                                      style={"description_width": "40px"})
        self.status_filter = w.Dropdown(options=[ALL], description="Status", layout=w.Layout(width="190px"),
                                        style={"description_width": "48px"})
        self.gap_filter = w.Dropdown(options=[ALL], description="Gap", layout=w.Layout(width="270px"),
                                     style={"description_width": "36px"})
        self.time_filter = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.1, description="ms",
                                              continuous_update=False, readout_format=".1f",
                                              layout=w.Layout(width="420px"), style={"description_width": "28px"})
        self.reset_button = w.Button(description="Reset filters", layout=w.Layout(width="110px"))
        self.count_label = w.Label()
        self.timeline_out = w.Output(layout=w.Layout(width="100%"))
        self.waterfall_out = w.Output(layout=w.Layout(width="100%"))
        # shown above the waterfall only for sessions drawn one row per turn
        self.turn_picker = w.Dropdown(options=[("(all turns)", ALL_TURNS)], value=ALL_TURNS, description="Turn",
                                      layout=w.Layout(width="100%"), style={"description_width": "40px"})
        self.waterfall_box = w.VBox([self.waterfall_out], layout=w.Layout(width="100%"))
        self.figure_tabs = w.Tab(children=[self.timeline_out, self.waterfall_box])
        self.figure_tabs.set_title(0, "Timeline")
        self.figure_tabs.set_title(1, "Waterfall")
        self.gap_list = w.Select(options=[], rows=9, description="", layout=w.Layout(width="100%"))
        self.gap_detail = w.Textarea(value="", disabled=True, layout=mono,
                                     placeholder="Pick a gap for its evidence (gaps.detail).")
        self.call_list = w.Select(options=[], rows=12, layout=w.Layout(width="100%"))
        self.call_header = w.HTML(layout=w.Layout(width="100%"))
        self.request_text = w.Textarea(disabled=True, layout=mono)
        self.response_text = w.Textarea(disabled=True, layout=mono)
        self.meta_text = w.Textarea(disabled=True, layout=mono)
        self.http_text = w.Textarea(disabled=True, layout=mono)
        self.spans_text = w.Textarea(disabled=True, layout=mono)
        self.call_gaps_text = w.Textarea(disabled=True, layout=mono)
        self.inspector_tabs = w.Tab(children=[self.request_text, self.response_text, self.meta_text,
                                              self.http_text, self.spans_text, self.call_gaps_text])
        for i, t in enumerate(["Request", "Response", "_meta", "HTTP", "Spans", "Gaps"]):
            self.inspector_tabs.set_title(i, t)
        gaps_box = w.VBox([w.Label("Gaps (pick one for its evidence and its call)"), self.gap_list,
                           self.gap_detail], layout=w.Layout(flex="0 0 40%", min_width="0", overflow="hidden"))
        calls_box = w.VBox([w.Label("Calls (pick one to inspect its messages)"), self.call_list,
                            self.call_header, self.inspector_tabs],
                           layout=w.Layout(flex="1 1 0%", min_width="0", margin="0 0 0 10px", overflow="hidden"))
        filters = w.HBox([self.tool_filter, self.status_filter, self.gap_filter, self.time_filter,
                          self.reset_button, self.count_label], layout=w.Layout(flex_flow="row wrap"))
        super().__init__(children=[self.session_picker, self.summary, filters, self.figure_tabs,
                                   w.HBox([gaps_box, calls_box], layout=w.Layout(width="100%", overflow="hidden"))],
                         **kwargs)
        self.add_class("mcptrace-explorer")

        self.session_picker.observe(self._on_session, "value")
        for ctl in (self.tool_filter, self.status_filter, self.gap_filter, self.time_filter):
            ctl.observe(self._on_filter, "value")
        self.reset_button.on_click(lambda _b: self.reset_filters())
        self.gap_list.observe(self._on_gap, "value")
        self.call_list.observe(self._on_call, "value")
        self.turn_picker.observe(self._on_turn, "value")
        self.figure_tabs.observe(self._on_tab, "selected_index")

        if options:
            start = session_id if session_id is not None else options[0][1]
            if self.session_picker.value != start:
                self.session_picker.value = start  # fires _on_session
            else:
                self.set_session(start)
        else:
            self.summary.value = "<i>No sessions in this workspace.</i>"

    # state ---------------------------------------------------------------------
    @property
    def session_id(self) -> str | None:
        return self.session_picker.value

    @contextlib.contextmanager
    def _quietly(self):
        old, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = old

    def filters(self) -> Filters:
        """The filters as the widgets set them."""
        def pick(ctl):
            return None if ctl.value in (ALL, None) else ctl.value

        tr = None
        if not self.time_filter.disabled:
            lo, hi = self.time_filter.value
            if lo > self.time_filter.min or hi < self.time_filter.max:
                tr = (float(lo), float(hi))
        return Filters(tool=pick(self.tool_filter), status=pick(self.status_filter),
                       gap_code=pick(self.gap_filter), time_range_ms=tr)

    # reactions -------------------------------------------------------------------
    def _on_session(self, change) -> None:
        if change["new"] is not None:
            self.set_session(change["new"])

    def _on_filter(self, _change) -> None:
        if not self._quiet:
            self.refresh()

    def _on_gap(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        self.show_gap(change["new"])

    def _on_call(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        self.show_call(change["new"])
        if self.session_id is not None and self.model.is_aggregated(self.session_id):
            self.show_turn(self.model.turn_of(self.session_id, change["new"]))  # drill down to its turn

    def _on_turn(self, _change) -> None:
        if not self._quiet:
            self._figs_stale[1] = True
            self._render_figures()

    def _on_tab(self, change) -> None:
        self._render_figures()

    # actions ---------------------------------------------------------------------
    def set_session(self, session_id: str) -> None:
        """Show a session: reset the filters to its choices and redraw everything."""
        with self._quietly():
            if self.session_picker.value != session_id:
                self.session_picker.value = session_id
            choices = self.model.filter_choices(session_id)
            self.tool_filter.options = [ALL] + choices["tools"]
            self.status_filter.options = [ALL] + choices["statuses"]
            self.gap_filter.options = [ALL] + choices["gap_codes"]
            self.tool_filter.value = self.status_filter.value = self.gap_filter.value = ALL
            bounds = choices["time_bounds"]
            if bounds is None:
                self.time_filter.disabled = True
                self.time_filter.tooltip = NO_TIME
            else:
                hi = max(bounds[1], 0.1)
                if hi > self.time_filter.max:
                    self.time_filter.max = hi
                    self.time_filter.min = 0.0
                else:
                    self.time_filter.min = 0.0
                    self.time_filter.max = hi
                self.time_filter.step = max(hi / 500.0, 0.001)
                self.time_filter.value = (0.0, hi)
                self.time_filter.disabled = False
            self.summary.value = self.model.session_summary_html(session_id)
            aggregated = self.model.is_aggregated(session_id)
            self.waterfall_box.children = [self.turn_picker, self.waterfall_out] if aggregated else [self.waterfall_out]
            self.turn_picker.value = ALL_TURNS
        self.refresh()

    def reset_filters(self) -> None:
        if self.session_id is not None:
            self.set_session(self.session_id)

    def refresh(self) -> None:
        """Redraw the figures, gap list and call list for the current session and filters."""
        sid = self.session_id
        if sid is None:
            return
        f = self.filters()
        call_options, n_calls = self.model.call_options(sid, f)
        gap_options, n_gaps = self.model.gap_options(sid, f)
        n = len(self.model.calls(sid))
        shown = "" if n_calls <= len(call_options) and n_gaps <= len(gap_options) else \
            f" (lists show the first {self.model.list_limit}: narrow with the filters)"
        self.count_label.value = f"{n_calls} of {n} calls · {n_gaps} gaps{shown}"
        previous_call = self.call_list.value
        with self._quietly():
            self.gap_list.options = gap_options
            self.gap_list.value = None
            self.gap_detail.value = "" if gap_options else "(no gaps in the selection)"
            self.call_list.options = call_options
            ids = [v for _l, v in call_options]
            gapped = (c["call_id"] for c in self.model.filtered_calls(sid, f)[: self.model.list_limit] if c["gap_codes"])
            pick = previous_call if previous_call in ids else next(gapped, ids[0] if ids else None)
            self.call_list.value = pick
            if self.model.is_aggregated(sid):
                current = self.turn_picker.value or None
                self.turn_picker.options = self.model.turn_options(sid, f, include=current)[0]
                self.turn_picker.value = current or ALL_TURNS
        self._figs_stale = {0: True, 1: True}
        self._render_figures()
        self.show_call(pick)

    def _render_figures(self) -> None:
        sid = self.session_id
        idx = self.figure_tabs.selected_index or 0
        if sid is None or not self._figs_stale.get(idx):
            return
        f = self.filters()
        if idx == 0:
            self.timeline_out.outputs = (figure_output(self.model.timeline(sid, f)),)
        else:
            turn = (self.turn_picker.value or None) if self.model.is_aggregated(sid) else None
            self.waterfall_out.outputs = (figure_output(self.model.waterfall(sid, f, turn=turn)),)
        self._figs_stale[idx] = False

    def show_turn(self, turn: str | None) -> None:
        """Drill the waterfall down to one turn (a key of ``model.turns``); None or
        :data:`ALL_TURNS` goes back to one row per turn. Only for aggregated sessions."""
        sid = self.session_id
        if sid is None or not self.model.is_aggregated(sid):
            return
        turn = turn or ALL_TURNS
        if turn not in [v for _l, v in self.turn_picker.options]:
            with self._quietly():
                self.turn_picker.options = self.model.turn_options(sid, self.filters(), include=turn or None)[0]
        self.turn_picker.value = turn  # fires _on_turn

    def show_call(self, call_id: int | None) -> None:
        """Fill the inspector with one call (None clears it)."""
        if call_id is None:
            self.call_header.value = "<i>No call in the selection.</i>"
            for t in (self.request_text, self.response_text, self.meta_text, self.http_text, self.spans_text,
                      self.call_gaps_text):
                t.value = ""
            return
        d = self.model.inspect(call_id)
        self.call_header.value = d.header_html()
        self.request_text.value = d.request_json
        self.response_text.value = d.response_json
        self.meta_text.value = d.meta_json
        self.http_text.value = d.http_text
        self.spans_text.value = d.spans_text
        self.call_gaps_text.value = d.gaps_text
        if self.call_list.value != call_id and call_id in [v for _l, v in self.call_list.options]:
            with self._quietly():
                self.call_list.value = call_id

    def show_gap(self, gap_id: int) -> None:
        """Show a gap's evidence and inspect its call."""
        self.gap_detail.value = self.model.gap_detail(gap_id)
        row = self.model.ws.sql("SELECT call_id FROM gaps WHERE gap_id = ?", [gap_id]).rows()
        if row and row[0][0] is not None:
            self.show_call(row[0][0])


def explore(ws: "Workspace", session_id: str | None = None, **kwargs: Any):
    """An interactive explorer of ``ws`` for Jupyter (ipywidgets): session picker (most gaps
    first), filters (tool, status, gap code, time range), the session's timeline and
    waterfall, the gap list with each gap's evidence, and a message inspector (request and
    response JSON, ``_meta``, HTTP headers, joined spans). Display the returned widget (it is
    an ``ipywidgets.VBox``; its ``model`` is the :class:`ExplorerModel`). ``kwargs``
    (``aggregate_above``, ``list_limit``) go to :class:`ExplorerWidget`.

    >>> mcptrace.explore(mcptrace.load("data/samples"))   # doctest: +SKIP
    """
    return ExplorerWidget(ws, session_id, **kwargs)
