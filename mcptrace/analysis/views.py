"""Derived views of a session: the parallel-call tree, concurrency over time, correlation coverage.

All take an open :class:`mcptrace.Workspace`. Times are UTC; durations milliseconds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import pandas as pd

from mcptrace.core.db import sql_params
from mcptrace.core.result import Result

if TYPE_CHECKING:  # pragma: no cover
    from mcptrace.workspace import Workspace

TREE_COLUMNS = ["node_id", "parent_id", "kind", "name", "start_ts", "end_ts", "duration_ms", "depth", "lane",
                "gaps", "status", "call_id", "trace_id", "span_id", "service_name", "span_kind", "role",
                "matched_by", "orphan"]


#: calls without a turn (no trace context) are grouped, in wire order, into runs between turns of
#: at most this many calls; each run is one aggregate row, keyed ``untraced:<its first call_id>``
UNTRACED_RUN = 100

# The turn key of each call of session $session_id: its turn_id, or for calls without a turn
# 'untraced:<first call_id of its run>' (consecutive turnless calls, at most $run per run).
TURN_KEYS_SQL = """
WITH c AS (
    SELECT call_id, turn_id, start_ord,
           sum(CASE WHEN turn_id IS NOT NULL THEN 1 ELSE 0 END) OVER (ORDER BY start_ord ROWS UNBOUNDED PRECEDING) AS run
    FROM calls WHERE session_id = $session_id
), u AS (
    SELECT *, (row_number() OVER (PARTITION BY turn_id IS NULL, run ORDER BY start_ord) - 1) // $run AS chunk FROM c
)
SELECT call_id, turn_id,
       coalesce(turn_id, 'untraced:' || first_value(call_id) OVER (PARTITION BY turn_id IS NULL, run, chunk
                                                                  ORDER BY start_ord)) AS turn
FROM u
"""

TURNS_SQL = f"""
WITH k AS ({TURN_KEYS_SQL}),
g AS (SELECT call_id, count(*) AS n, list(DISTINCT code ORDER BY code) AS codes,
             min(CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END) AS sev
      FROM gaps WHERE session_id = $session_id AND call_id IS NOT NULL GROUP BY call_id),
ts AS (SELECT trace_id, span_id, any_value(name) AS name FROM spans GROUP BY ALL),
t AS (
    SELECT k.turn, any_value(k.turn_id) AS turn_id, min(c.start_ts) AS first_ts,
           max(coalesce(c.end_ts, c.start_ts)) AS last_ts, count(*) AS n_calls,
           count(*) FILTER (WHERE c.status IN ('error', 'tool_error')) AS n_errors,
           count(*) FILTER (WHERE c.status = 'cancelled') AS n_cancelled,
           count(*) FILTER (WHERE c.status = 'unanswered') AS n_unanswered,
           coalesce(sum(g.n), 0)::BIGINT AS n_gaps,
           coalesce(list_sort(list_distinct(flatten(list(g.codes) FILTER (WHERE g.codes IS NOT NULL)))),
                    []::VARCHAR[]) AS gap_codes,
           ['error', 'warning', 'info'][min(g.sev) + 1] AS gap_severity,
           min(c.start_ord) AS first_ord, max(coalesce(c.end_ord, c.start_ord)) AS last_ord,
           min(c.call_id) AS first_call_id,
           list_sort(list_distinct(list(coalesce(c.tool_name, c.method)))) AS tools
    FROM k JOIN calls c USING (call_id) LEFT JOIN g USING (call_id)
    GROUP BY k.turn
)
SELECT t.turn, t.turn_id,
       coalesce(ts.name, CASE WHEN t.turn_id IS NULL THEN 'untraced calls'
                              WHEN starts_with(t.turn_id, 'overlap:') THEN 'overlapping calls (no trace context)'
                              ELSE 'trace ' || left(t.turn_id, 8) END) AS name,
       t.first_ts, t.last_ts, date_diff('microsecond', t.first_ts, t.last_ts) / 1000.0 AS duration_ms,
       t.n_calls, t.n_errors, t.n_cancelled, t.n_unanswered, t.n_gaps, t.gap_codes, t.gap_severity, t.tools,
       t.first_ord, t.last_ord, t.first_call_id
FROM t LEFT JOIN ts ON t.turn_id LIKE '%/%' AND ts.trace_id = split_part(t.turn_id, '/', 1)
                   AND ts.span_id = split_part(t.turn_id, '/', 2)
ORDER BY t.first_ord
"""


def turns(ws: "Workspace", session_id: str) -> Result:
    """One row per turn of a session (README: How the correlation works), in wire order: the aggregate the waterfall
    shows for large sessions, and the keys to drill down with (``tree(..., turn=...)``).

    A turn is ``calls.turn_id`` (``calls.turn_source`` says which rule made it: the client span's
    parent, the trace, or for client requests without trace context the run of overlapping calls,
    keyed ``overlap:<first call_id>``). Calls still without a turn (requests of the server) are
    grouped into runs of consecutive such calls (at most :data:`UNTRACED_RUN` each), keyed
    ``untraced:<first call_id>``.
    Columns: turn VARCHAR (the key: ``calls.turn_id`` or ``untraced:…``), turn_id VARCHAR (NULL
    for untraced runs), name VARCHAR (the turn span's name, else ``trace <8 hex>``,
    ``overlapping calls (no trace context)`` or ``untraced calls``), first_ts/last_ts TIMESTAMPTZ (UTC; first start and last end of its
    calls, an unanswered call counts with its start), duration_ms DOUBLE (ms), n_calls,
    n_errors (error + tool_error), n_cancelled, n_unanswered, n_gaps (gaps on its calls) BIGINT,
    gap_codes VARCHAR[], gap_severity VARCHAR (the worst of its gaps: error | warning | info, NULL
    without gaps), tools VARCHAR[] (tool or method names), first_ord/last_ord BIGINT
    (message order), first_call_id BIGINT. Unknown sessions give no rows.
    """
    return ws.sql(TURNS_SQL, {"session_id": session_id, "run": UNTRACED_RUN})


def turn_of(ws: "Workspace", call_id: int) -> tuple[str, str]:
    """(session_id, turn key) of a call, the key as in :func:`turns`. Raises KeyError for an
    unknown call."""
    row = ws.sql("SELECT session_id FROM calls WHERE call_id = ?", [call_id]).rows()
    if not row:
        raise KeyError(f"no call {call_id!r}")
    sid = row[0][0]
    key = ws.sql(f"SELECT turn FROM ({TURN_KEYS_SQL}) WHERE call_id = $call_id",
                 {"session_id": sid, "run": UNTRACED_RUN, "call_id": call_id}).rows()
    return sid, key[0][0]


def _sql(ws: "Workspace", query: str, params: dict) -> Result:
    """``ws.sql`` with only the named parameters the query uses (DuckDB rejects extra ones)."""
    return ws.sql(query, sql_params(query, params) or {})


def _ms(a, b):
    if a is None or b is None or pd.isna(a) or pd.isna(b):
        return None
    return (b - a).total_seconds() * 1000.0


def tree(ws: "Workspace", session_id: str, *, turn: str | None = None, call_id: int | None = None) -> pd.DataFrame:
    """The parallel-call tree of one session (README: How the correlation works) as a DataFrame, one row per node in
    depth-first order; with ``turn`` (a key from :func:`turns`) or ``call_id`` (that call's
    turn; it takes precedence over ``turn``), only the session node and that turn's rows.

    Levels: ``session`` → ``turn`` (the parent span of the turn's client spans, or the shared
    trace) → ``call`` (a request and its response; calls without a turn hang off the
    session) → ``span`` (the call's server span(s), their descendants and downstream spans;
    a downstream root joined only by its time window hangs under the client span that explains
    it). A span whose parent is not in the dump has ``orphan=True``: it stays under its call
    when the wire explains it (a server span continuing a lost client span), otherwise it
    becomes an extra root. Other spans of the session's traces hang under their parent.

    Columns: node_id (str: ``session:…``, ``turn:…``, ``call:<id>``, ``span:<trace>/<span>``),
    parent_id (str or None), kind, name, start_ts/end_ts (UTC), duration_ms (float ms),
    depth (int, 0 = roots), lane (int, row order), gaps (list of gap codes on the node),
    status (calls), call_id, trace_id, span_id, service_name, span_kind, role, matched_by,
    orphan (bool). Raises KeyError for an unknown session, turn or call.

    A turn's rows are exactly those the whole tree holds under that turn's node (for an untraced
    run, under its calls), plus the extra roots of its traces; gaps of other turns are left out.
    """
    srow = ws.sql("SELECT session_id, session_key_source, session_key, first_ts, last_ts FROM sessions "
                  "WHERE session_id = ?", [session_id]).rows()
    if not srow:
        raise KeyError(f"no session {session_id!r}")
    _sid, src, key, first_ts, last_ts = srow[0]
    if call_id is not None:
        call_sid, turn = turn_of(ws, call_id)
        if call_sid != session_id:
            raise KeyError(f"no call {call_id!r} in session {session_id!r}")
    # the selected calls (all of the session's without a selection), as a relation for the queries below
    sel = ("SELECT call_id FROM calls WHERE session_id = $session_id" if turn is None else
           f"SELECT call_id FROM ({TURN_KEYS_SQL}) WHERE turn = $turn")
    p = {"session_id": session_id} if turn is None else {"session_id": session_id, "turn": turn, "run": UNTRACED_RUN}
    calls = _sql(ws, f"SELECT call_id, coalesce(tool_name, method) AS name, start_ts, end_ts, duration_ms, status, "
                   f"trace_id, turn_id FROM calls WHERE call_id IN ({sel}) ORDER BY start_ord", p).rows()
    if turn is not None and not calls:
        raise KeyError(f"no turn {turn!r} in session {session_id!r}")
    cs = _sql(ws, f"""SELECT cs.call_id, cs.role, cs.matched_by, cs.via_span_id, s.trace_id, s.span_id, s.parent_span_id,
                          s.name, s.start_ts, s.end_ts, s.duration_ms, s.service_name, s.kind,
                          s.parent_span_id IS NOT NULL AND NOT EXISTS (
                              SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id)
                              AS orphan
                   FROM call_spans cs JOIN spans s ON s.trace_id = cs.trace_id AND s.span_id = cs.span_id
                   WHERE cs.call_id IN ({sel}) AND cs.role <> 'client' ORDER BY s.start_ts""", p).rows()
    trace_ids = sorted({c[6] for c in calls if c[6]} | {r[4] for r in cs})
    # with a selection, spans that the whole tree places elsewhere (joined to another call of the
    # session, or another call's client or turn span) are not candidates for this turn
    foreign = "" if turn is None else f"""
        AND (trace_id, span_id) NOT IN (
            SELECT (cs.trace_id, cs.span_id) FROM call_spans cs JOIN calls c USING (call_id)
            WHERE c.session_id = $session_id AND c.call_id NOT IN ({sel}))
        AND (trace_id, span_id) NOT IN (
            SELECT (split_part(turn_id, '/', 1), split_part(turn_id, '/', 2)) FROM calls
            WHERE session_id = $session_id AND turn_id LIKE '%/%' AND call_id NOT IN ({sel}))"""
    other = _sql(ws, f"""SELECT trace_id, span_id, parent_span_id, name, start_ts, end_ts, duration_ms, service_name, kind,
                             parent_span_id IS NOT NULL AND NOT EXISTS (
                                 SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id)
                                 AS orphan
                      FROM spans s WHERE list_contains($trace_ids, trace_id){foreign} ORDER BY start_ts""",
                   {**p, "trace_ids": trace_ids}).rows()
    gap_rows = _sql(ws, f"""SELECT code, call_id, trace_id, span_id FROM gaps WHERE session_id = $session_id
                          AND ($all OR call_id IN ({sel}) OR (call_id IS NULL AND list_contains($trace_ids, trace_id)))
                          ORDER BY gap_id""", {**p, "all": turn is None, "trace_ids": trace_ids}).rows()

    nodes: dict[str, dict] = {}
    children: dict[str | None, list[str]] = defaultdict(list)

    def add(node_id, parent_id, **kw):
        if node_id in nodes:
            return
        row = dict.fromkeys(TREE_COLUMNS)
        row.update(node_id=node_id, parent_id=parent_id, gaps=[], orphan=False)
        row.update(kw)
        nodes[node_id] = row
        children[parent_id].append(node_id)

    root = f"session:{session_id}"
    add(root, None, kind="session", name=f"{src}: {key}", start_ts=first_ts, end_ts=last_ts,
        duration_ms=_ms(first_ts, last_ts))

    spans_by_id = {(o[0], o[1]): o for o in other}
    # turns
    turn_calls: dict[str, list] = defaultdict(list)
    for c in calls:
        if c[7]:
            turn_calls[c[7]].append(c)
    for turn_id, members in turn_calls.items():
        overlap = turn_id.startswith("overlap:")
        trace, _, parent = ("", "", "") if overlap else turn_id.partition("/")
        span = spans_by_id.get((trace, parent)) if parent else None
        start = span[4] if span else min((m[2] for m in members if m[2] is not None), default=None)
        ends = [m[3] for m in members if m[3] is not None]
        end = span[5] if span else (max(ends) if ends else None)
        name = span[3] if span else ("overlapping calls (no trace context)" if overlap else f"trace {trace[:8]}")
        add(f"turn:{turn_id}", root, kind="turn", name=name,
            start_ts=start, end_ts=end, duration_ms=_ms(start, end), trace_id=trace or None,
            span_id=parent or None, service_name=span[7] if span else None)
    for c in calls:
        parent = f"turn:{c[7]}" if c[7] else root
        add(f"call:{c[0]}", parent, kind="call", name=c[1], start_ts=c[2], end_ts=c[3], duration_ms=c[4],
            status=c[5], call_id=c[0], trace_id=c[6])

    placed: set[tuple] = set()
    turn_spans = {(t.partition("/")[0], t.partition("/")[2]) for t in turn_calls if "/" in t}
    for call_id, role, matched_by, via, trace, span, parent_span, name, st, en, dur, svc, kind, orphan in cs:
        if (trace, span) in placed:
            continue
        parent = None
        if role == "server":
            parent = f"call:{call_id}"
        elif via:
            parent = next((f"span:{t}/{via}" for t in trace_ids if f"span:{t}/{via}" in nodes), None)
        elif parent_span:
            parent = f"span:{trace}/{parent_span}"
        add(f"span:{trace}/{span}", parent or f"call:{call_id}", kind="span", name=name, start_ts=st, end_ts=en,
            duration_ms=dur, call_id=call_id, trace_id=trace, span_id=span, service_name=svc, span_kind=kind,
            role=role, matched_by=matched_by, orphan=bool(orphan))
        placed.add((trace, span))
    # the rest of the session's traces: under their parent when it is in the tree, else extra roots
    client_spans = {(r[0], r[1]) for r in _sql(ws, 
        "SELECT cs.trace_id, cs.span_id FROM call_spans cs JOIN calls c USING (call_id) "
        "WHERE c.session_id = $session_id AND cs.role = 'client' AND list_contains($trace_ids, cs.trace_id)",
        {"session_id": session_id, "trace_ids": trace_ids}).rows()}
    pending = [o for o in other if (o[0], o[1]) not in placed and (o[0], o[1]) not in turn_spans
               and (o[0], o[1]) not in client_spans]
    for _ in range(len(pending) + 1):
        progressed, rest = False, []
        for o in pending:
            trace, span, parent_span, name, st, en, dur, svc, kind, orphan = o
            pid = f"span:{trace}/{parent_span}" if parent_span else None
            if pid and pid not in nodes and (trace, parent_span) in spans_by_id and not orphan:
                rest.append(o)  # parent not placed yet
                continue
            if pid not in nodes:
                pid = None
            add(f"span:{trace}/{span}", pid, kind="span", name=name, start_ts=st, end_ts=en, duration_ms=dur,
                trace_id=trace, span_id=span, service_name=svc, span_kind=kind, orphan=bool(orphan))
            progressed = True
        pending = rest
        if not pending or not progressed:
            break
    for o in pending:  # cycles or parents elsewhere: extra roots (with a selection: another turn's)
        if turn is not None:
            continue
        trace, span, parent_span, name, st, en, dur, svc, kind, orphan = o
        add(f"span:{trace}/{span}", None, kind="span", name=name, start_ts=st, end_ts=en, duration_ms=dur,
            trace_id=trace, span_id=span, service_name=svc, span_kind=kind, orphan=True)

    for code, call_id, trace, span in gap_rows:
        nid = f"span:{trace}/{span}" if span else (f"call:{call_id}" if call_id is not None else root)
        (nodes.get(nid) or nodes.get(f"call:{call_id}") or nodes[root])["gaps"].append(code)

    def key(nid):
        n = nodes[nid]
        ts = n["start_ts"]
        return (ts is None, ts if ts is not None else 0, nid)

    order: list[str] = []

    def walk(nid, depth):
        nodes[nid]["depth"] = depth
        order.append(nid)
        for ch in sorted(children.get(nid, []), key=key):
            walk(ch, depth + 1)

    for r in sorted(children[None], key=lambda n: (n != root, key(n))):
        walk(r, 0)
    if turn is not None:  # the session node, the turn's subtree and its traces' extra roots
        keep = {root}
        tops = [f"turn:{turn}"] if f"turn:{turn}" in nodes else [f"call:{c[0]}" for c in calls]
        stack = list(tops) + [n for n in children[None] if n != root]
        while stack:
            nid = stack.pop()
            keep.add(nid)
            stack.extend(children.get(nid, []))
        order = [nid for nid in order if nid in keep]
    for i, nid in enumerate(order):
        nodes[nid]["lane"] = i
    df = pd.DataFrame([nodes[n] for n in order], columns=TREE_COLUMNS)
    for col in ("parent_id", "status", "trace_id", "span_id", "service_name", "span_kind", "role", "matched_by"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    df["call_id"] = df["call_id"].astype("Int64")
    return df


def concurrency(ws: "Workspace", session_id: str | None = None) -> Result:
    """Calls in flight over time: +1 at each request, −1 at each response or cancel, running sum.

    Columns: ts TIMESTAMPTZ (UTC), session_id, call_id BIGINT, delta INTEGER (+1/−1),
    in_flight BIGINT. Unanswered calls never end. Bare captures (no times) are left out.
    """
    return ws.sql("""
        WITH ev AS (
            SELECT session_id, call_id, start_ts AS ts, start_ord AS ord, 1 AS delta FROM calls WHERE start_ts IS NOT NULL
            UNION ALL
            SELECT session_id, call_id, end_ts, end_ord, -1 FROM calls WHERE end_ts IS NOT NULL
        )
        SELECT ts, session_id, call_id, delta,
               sum(delta) OVER (PARTITION BY session_id ORDER BY ts, ord, delta ROWS UNBOUNDED PRECEDING) AS in_flight
        FROM ev WHERE ?::VARCHAR IS NULL OR session_id = ?
        ORDER BY session_id, ts, ord, delta""", [session_id, session_id])


def coverage(ws: "Workspace", every: str = "1 minute") -> Result:
    """Share of client requests carrying trace context and a session key, per client and server,
    per time bucket.

    ``every`` is a DuckDB interval (``'1 minute'``, ``'1 hour'``). Columns: bucket TIMESTAMPTZ
    (UTC, start of the bucket), client_name, server_name, n_requests BIGINT,
    n_trace_context, n_session_key BIGINT, trace_context_share, session_key_share DOUBLE (0–1).
    Client and server names come from ``initialize`` (``clientInfo``/``serverInfo``) or the
    2026-07-28 ``_meta`` equivalents; ``(unknown)`` when the capture never says.
    """
    return ws.sql("""
        SELECT time_bucket(?::INTERVAL, c.start_ts) AS bucket,
               coalesce(s.client_name, '(unknown)') AS client_name,
               coalesce(s.server_name, '(unknown)') AS server_name,
               count(*) AS n_requests,
               count(*) FILTER (WHERE c.trace_id IS NOT NULL) AS n_trace_context,
               count(*) FILTER (WHERE c.request_session_key IS NOT NULL) AS n_session_key,
               n_trace_context / n_requests AS trace_context_share,
               n_session_key / n_requests AS session_key_share
        FROM calls c JOIN sessions s USING (session_id)
        WHERE c.direction = 'client_to_server' AND c.start_ts IS NOT NULL
        GROUP BY ALL ORDER BY bucket, client_name, server_name""", [every])
