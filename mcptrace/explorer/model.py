"""The explorer's data side, without widgets: what a session shows under a set of filters.

:class:`ExplorerModel` works on an open DuckDB connection of an mcptrace database (``ws.con``)
with the analysis functions (:mod:`mcptrace.analysis.turns`, :mod:`mcptrace.analysis.queries`)
and the figure builders (:func:`mcptrace.render.timeline.timeline`,
:func:`mcptrace.render.waterfall.waterfall`), which draw the filtered-out calls greyed themselves
(``highlight=``). Every string it returns is plain text, except the two ``*_html`` methods, which
escape every value with :func:`html.escape`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import html
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from mcptrace.analysis.queries import gaps as gap_list
from mcptrace.analysis.turns import UNTRACED_RUN
from mcptrace.analysis.turns import turns as session_turns
from mcptrace.core.errors import NotFoundError
from mcptrace.core.result import Result, query
from mcptrace.render.timeline import AGGREGATE_ABOVE as TIMELINE_ABOVE
from mcptrace.render.timeline import DIM_COLOR, timeline
from mcptrace.render.waterfall import AGGREGATE_ABOVE, waterfall

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["ALL", "ALL_FINDINGS", "ALL_TURNS", "DIM_COLOR", "LIST_LIMIT", "NO_TIME", "CallDetail", "ExplorerModel", "Filters"]

ALL = "(all)"
#: the findings picker's first option: every session
ALL_FINDINGS = "(all findings: every session)"
NO_TIME = "(no times in this capture: message order)"
#: the turn picker's value for the per-turn (aggregated) waterfall
ALL_TURNS = ""
#: most entries the call list, the gap list and the turn picker show
LIST_LIMIT = 1_000
#: picker order of the sessions: most gaps first, then most calls, then earliest
_SESSION_ORDER = "ORDER BY n_gaps DESC, n_calls DESC, first_ts NULLS LAST, session_id"
#: the columns of a gap in the gap list (those of the ``gaps`` table)
_GAP_COLUMNS = "gap_id, code, severity, session_id, call_id, message_id, trace_id, span_id, ts, detail"

_CALLS_SQL = """
WITH g AS (
    SELECT call_id, list_sort(list_distinct(list(code))) AS gap_codes
    FROM gap_rows(NULL, $session_id) WHERE call_id IS NOT NULL GROUP BY call_id
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
    ``status``: ok | error | tool_error | truncated | cancelled | unanswered; ``gap_code``: calls with a
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


def _first_wins(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose repeated keys keep their first value, as DuckDB's JSON functions (and so the
    analysis) read them; Python's :func:`json.loads` alone would keep the last one."""
    out: dict = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


def _loads(text: str) -> Any:
    """``text`` parsed the way the analysis read it (see :func:`_first_wins`)."""
    return json.loads(text, object_pairs_hook=_first_wins)


def _pretty(text: str | None, empty: str = "(none)") -> str:
    if text is None:
        return empty
    try:
        return json.dumps(_loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
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
    """The explorer's logic over an open DuckDB connection of an mcptrace database, without widgets.

    ``con``: e.g. ``ws.con`` of a :class:`mcptrace.Workspace` (its table macros installed, as
    :func:`mcptrace.analysis.queries.install` does); the model only reads. Unknown session, gap
    and call ids raise :class:`mcptrace.NotFoundError` (a ``KeyError``).

    >>> m = ExplorerModel(ws.con)                              # doctest: +SKIP
    >>> sid = m.session_ids()[0]                               # most gaps first
    >>> m.filtered_calls(sid, Filters(status="error"))         # doctest: +SKIP
    >>> m.inspect(call_id).request_json                        # doctest: +SKIP
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, aggregate_above: int | None = None,
                 list_limit: int = LIST_LIMIT, timeline_aggregate_above: int | None = None) -> None:
        if not isinstance(con, duckdb.DuckDBPyConnection):
            raise TypeError(f"ExplorerModel takes a DuckDB connection (a workspace's .con), not {type(con).__name__}")
        self.con = con
        #: sessions with more calls get the per-turn waterfall (see :mod:`mcptrace.render.waterfall`)
        self.aggregate_above = AGGREGATE_ABOVE if aggregate_above is None else aggregate_above
        #: sessions with more calls get the timeline's overview strip (see :mod:`mcptrace.render.timeline`)
        self.timeline_aggregate_above = TIMELINE_ABOVE if timeline_aggregate_above is None else timeline_aggregate_above
        #: most entries in the call list, the gap list and the turn picker
        self.list_limit = list_limit
        self._calls: dict[str, list[dict]] = {}
        self._timeline: dict[str, Any] = {}
        self._waterfall: dict[tuple[str, str | None], Any] = {}
        self._turns: dict[str, list[dict]] = {}
        self._gaps: dict[str, list[dict]] = {}
        self._turn_keys: dict[str, dict[int, str]] = {}

    def _sql(self, sql: str, params: Any = None) -> Result:
        return query(self.con, sql, params)

    def invalidate(self) -> None:
        """Forget what was read: the next question reads the tables again (after a load or a followed
        capture's new part changed them)."""
        for cache in (self._calls, self._timeline, self._waterfall, self._turns, self._gaps, self._turn_keys):
            cache.clear()

    # sessions --------------------------------------------------------------------------
    def sessions(self) -> "pd.DataFrame":
        """Sessions in picker order: most gaps first, then most calls, then earliest."""
        return self._sql(f"SELECT * FROM sessions {_SESSION_ORDER}").df()

    def session_ids(self) -> list[str]:
        return [r[0] for r in self._sql(f"SELECT session_id FROM sessions {_SESSION_ORDER}").rows()]

    def finding_options(self) -> list[tuple[str, int]]:
        """(label, finding_id) of every finding, ranked, for the findings picker (``(all findings)``, 0, first);
        labels are plain text."""
        rows = self._sql("SELECT finding_id, severity, code, party, n_sessions FROM findings ORDER BY finding_id").rows()
        return [(ALL_FINDINGS, 0)] + [
            (f"{fid}. {sev} · {code} · {_short(party, 70)} · {n} session{'' if n == 1 else 's'}", fid)
            for fid, sev, code, party, n in rows]

    def finding(self, finding_id: int) -> dict[str, Any]:
        """One row of ``findings`` as a dict; :class:`mcptrace.NotFoundError` for an unknown id."""
        rows = self._sql("SELECT * FROM findings WHERE finding_id = ?", [finding_id])
        if not len(rows):
            raise NotFoundError("finding", finding_id)
        return dict(zip(rows.columns, rows.rows()[0]))

    def session_options(self, finding_id: int | None = None) -> list[tuple[str, str]]:
        """(label, session_id) for the picker; with ``finding_id`` (not 0) only the sessions of that finding's
        gaps. Labels are plain text (shown as text)."""
        where = ("WHERE session_id IN (SELECT g.session_id FROM gaps g JOIN (SELECT unnest(gap_ids) AS gap_id "
                 "FROM findings WHERE finding_id = ?) f USING (gap_id))") if finding_id else "WHERE ?::INTEGER IS NULL"
        rows = self._sql("SELECT session_id, session_key_source, session_key, client_name, n_calls, n_gaps "
                         f"FROM sessions {where} {_SESSION_ORDER}", [finding_id or None]).rows()
        out = []
        for sid, src, key, client, n_calls, n_gaps in rows:
            label = (f"{n_gaps} gap{'' if n_gaps == 1 else 's'} · {n_calls} call{'' if n_calls == 1 else 's'} · "
                     f"{sid} · {_short(client or '(unknown client)', 24)} · {_short(src, 24)}: {_short(key, 40)}")
            out.append((label, sid))
        return out

    def session_summary(self, session_id: str) -> dict[str, Any]:
        rows = self._sql("SELECT * FROM sessions WHERE session_id = ?", [session_id])
        if not len(rows):
            raise NotFoundError("session", session_id)
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
            rows = self._sql(_CALLS_SQL, {"session_id": session_id}).rows()
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
        codes = sorted({g["code"] for g in self.gaps(session_id)})
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
        row = self._sql("SELECT n_calls FROM sessions WHERE session_id = ?", [session_id]).rows()
        return bool(row) and row[0][0] > self.aggregate_above

    def turns(self, session_id: str) -> list[dict]:
        """The session's turns in wire order as dicts (columns of :func:`mcptrace.analysis.turns.turns`
        plus ``offset_ms``: ms since the session's first call)."""
        if session_id not in self._turns:
            self._turns[session_id] = _dicts_with_offset(session_turns(self.con, session_id),
                                                         self.session_t0(session_id), "first_ts")
        return self._turns[session_id]

    def turn_of(self, session_id: str, call_id: int) -> str | None:
        """The turn key (as in :meth:`turns`) of a call of the session, None for other calls."""
        if session_id not in self._turn_keys:  # one query for the whole session (filters map many calls)
            self._turn_keys[session_id] = dict(self._sql("SELECT call_id, turn FROM turn_keys($session_id, $run)", {
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
        gaps of a call only when that call is picked (gaps without a call stay). In time order
        (gaps without a time last), then ``gap_id``."""
        if session_id not in self._gaps:
            out = _dicts_with_offset(gap_list(self.con, session_id=session_id), self.session_t0(session_id), "ts")
            out.sort(key=lambda g: (g["ts"] is None, g["ts"] if g["ts"] is not None else 0, g["gap_id"]))
            self._gaps[session_id] = out
        out = list(self._gaps[session_id])
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
        g = self._gap(gap_id)
        raw = g.pop("detail")
        try:
            detail = json.loads(raw) if raw is not None else None
        except ValueError:  # kept as the text it is
            detail = raw
        g["ts"] = None if g["ts"] is None else g["ts"].isoformat()
        g["detail"] = detail
        return json.dumps(g, indent=2, ensure_ascii=False, default=str)

    def gap_call(self, gap_id: int) -> int | None:
        """The call a gap points at (None for a gap of the session or a trace)."""
        return self._gap(gap_id)["call_id"]

    def _gap(self, gap_id: int) -> dict:
        rows = self._sql(f"SELECT {_GAP_COLUMNS} FROM gap_rows(NULL, NULL) WHERE gap_id = ?", [gap_id])
        if not len(rows):
            raise NotFoundError("gap", gap_id)
        return dict(zip(rows.columns, rows.rows()[0]))

    # the inspector ---------------------------------------------------------------------
    def _message(self, message_id: int | None) -> dict | None:
        if message_id is None:
            return None
        # a time Python cannot hold (infinity, a year before 1 or after 9999, in a database written before
        # the loader rejected such times) is shown as no time
        rows = self._sql("SELECT message_id, CASE WHEN ts BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' AND "
                         "TIMESTAMPTZ '9999-12-31 00:00:00+00' THEN ts END AS ts, direction, kind, raw, meta, "
                         "http_method, http_path, http_status, http_request_headers, http_response_headers "
                         "FROM messages WHERE message_id = ?", [message_id])
        return dict(zip(rows.columns, rows.rows()[0])) if len(rows) else None

    def inspect(self, call_id: int) -> CallDetail:
        """The inspector content of one call: its request and response JSON (as captured,
        indented), the ``_meta`` of both, HTTP details, the spans joined to it and its gaps."""
        rows = self._sql("SELECT session_id FROM calls WHERE call_id = ?", [call_id]).rows()
        if not rows:
            raise NotFoundError("call", call_id)
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
                        body = _loads(m["raw"])
                        res = body.get("result") if isinstance(body, dict) else None
                        if isinstance(res, dict) and "_meta" in res:
                            meta = json.dumps(res["_meta"])
                    except (TypeError, ValueError, RecursionError):
                        pass
            metas.append(f"# {label}\n{_pretty(meta)}")
        http = []
        for label, m, col in (("request", req, "http_request_headers"), ("response", resp, "http_response_headers")):
            if m is None or (m.get("http_method") is None and m.get(col) is None):
                continue
            http.append(f"# JSON-RPC {label} carried by: {m.get('http_method') or ''} {m.get('http_path') or ''} "
                        f"→ {m.get('http_status') or '?'}")
            http.append(f"HTTP {label} headers:\n{_pretty(m.get(col))}\n")
        spans = self._sql("""
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
        gap_ids = sorted(g["gap_id"] for g in self.gaps(sid) if g["call_id"] == call_id)
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
            gaps_text="\n\n".join(self.gap_detail(g) for g in gap_ids) if gap_ids else "(no gaps on this call)",
            gap_codes=list(c["gap_codes"]),
        )

    # figures ---------------------------------------------------------------------------
    def highlight(self, session_id: str, f: Filters | None = None) -> set[int] | None:
        """The call ids ``f`` picks (what the figures keep in colour); None without an active filter."""
        f = f or Filters()
        return {c["call_id"] for c in self.filtered_calls(session_id, f)} if f.active else None

    def timeline(self, session_id: str, f: Filters | None = None) -> "go.Figure":
        """The session's timeline (:func:`mcptrace.render.timeline.timeline`) with calls outside ``f``
        greyed, gaps of other codes hidden and the x axis narrowed to the time range."""
        f = f or Filters()
        if not f.active:
            if session_id not in self._timeline:
                self._timeline[session_id] = timeline(self.con, session_id,
                                                      aggregate_above=self.timeline_aggregate_above)
            return copy.deepcopy(self._timeline[session_id])
        return timeline(self.con, session_id, aggregate_above=self.timeline_aggregate_above,
                        highlight=self.highlight(session_id, f),
                        gap_codes=None if f.gap_code is None else {f.gap_code}, window_ms=f.time_range_ms)

    def waterfall(self, session_id: str, f: Filters | None = None, turn: str | None = None) -> "go.Figure":
        """The session's waterfall (:func:`mcptrace.render.waterfall.waterfall`) with the rows of calls
        outside ``f`` (the calls and their spans) greyed. Above :attr:`aggregate_above` calls it is the
        per-turn waterfall (turns without a call that passes ``f`` greyed) unless ``turn`` (a key
        of :meth:`turns`) picks the detailed rows of one turn."""
        f = f or Filters()
        turn = turn or None
        if not f.active:
            if (session_id, turn) not in self._waterfall:
                self._waterfall[(session_id, turn)] = waterfall(self.con, session_id, turn=turn,
                                                                aggregate_above=self.aggregate_above)
            return copy.deepcopy(self._waterfall[(session_id, turn)])
        return waterfall(self.con, session_id, turn=turn, aggregate_above=self.aggregate_above,
                         highlight=self.highlight(session_id, f))
