"""The parallel-call tree of a session (README: How the correlation works).

:func:`tree` takes an open DuckDB connection of an mcptrace database; the selection of a turn's
calls is the ``turn_calls`` table macro of ``sql/queries.sql``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import duckdb

from mcptrace.analysis.turns import UNTRACED_RUN, turn_of
from mcptrace.core.db import sql_params
from mcptrace.core.errors import NotFoundError

if TYPE_CHECKING:  # pandas is imported when a tree is built: a load never needs it
    import pandas as pd

TREE_COLUMNS = ["node_id", "parent_id", "kind", "name", "start_ts", "end_ts", "duration_ms", "depth", "lane",
                "gaps", "status", "call_id", "trace_id", "span_id", "service_name", "span_kind", "role",
                "matched_by", "orphan"]

# The spans joined to the selected calls (not their client spans), with whether each one's parent is missing.
_JOINED_SPANS_SQL = """
SELECT cs.call_id, cs.role, cs.matched_by, cs.via_span_id, s.trace_id, s.span_id, s.parent_span_id,
       s.name, s.start_ts, s.end_ts, s.duration_ms, s.service_name, s.kind,
       s.parent_span_id IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id) AS orphan
FROM call_spans cs JOIN spans s ON s.trace_id = cs.trace_id AND s.span_id = cs.span_id
WHERE cs.call_id IN (SELECT call_id FROM turn_calls($session_id, $run, $turn)) AND cs.role <> 'client'
ORDER BY s.start_ts
"""

# The spans of the given traces; with a turn selected, not those the whole tree places elsewhere
# (joined to another call of the session, or another call's client or turn span).
_TRACE_SPANS_SQL = """
SELECT trace_id, span_id, parent_span_id, name, start_ts, end_ts, duration_ms, service_name, kind,
       parent_span_id IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id) AS orphan
FROM spans s
WHERE list_contains($trace_ids, trace_id)
  AND ($turn IS NULL OR (
      (trace_id, span_id) NOT IN (
          SELECT (cs.trace_id, cs.span_id) FROM call_spans cs JOIN calls c USING (call_id)
          WHERE c.session_id = $session_id
            AND c.call_id NOT IN (SELECT call_id FROM turn_calls($session_id, $run, $turn)))
      AND (trace_id, span_id) NOT IN (
          SELECT (split_part(turn_id, '/', 1), split_part(turn_id, '/', 2)) FROM calls
          WHERE session_id = $session_id AND turn_source IN ('client_span', 'host_span')
            AND call_id NOT IN (SELECT call_id FROM turn_calls($session_id, $run, $turn)))))
ORDER BY start_ts
"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> list[tuple]:
    """Rows of ``sql`` with only the named parameters it uses (DuckDB rejects extra ones)."""
    return con.execute(sql, sql_params(sql, params) or {}).fetchall()


def _ms(a, b):
    import pandas as pd

    if a is None or b is None or pd.isna(a) or pd.isna(b):
        return None
    return (b - a).total_seconds() * 1000.0


def tree(con: duckdb.DuckDBPyConnection, session_id: str, *, turn: str | None = None,
         call_id: int | None = None) -> pd.DataFrame:
    """The parallel-call tree of one session (README: How the correlation works) as a DataFrame, one row per node in
    depth-first order; with ``turn`` (a key from :func:`turns`) or ``call_id`` (that call's
    turn; it takes precedence over ``turn``), only the session node and that turn's rows.

    Levels: ``session`` → ``turn`` (the host's turn, the parent span of the turn's client spans, or the
    shared trace) → the host's tool span when one is joined (role ``host``: ``execute_tool``,
    ``claude_code.tool``) → ``call`` (a request and its response; calls without a turn hang off the
    session) → ``span`` (the call's server span(s), their descendants and downstream spans;
    a downstream root joined only by its time window hangs under the client span that explains
    it). A span whose parent is not in the dump has ``orphan=True``: it stays under its call
    when the wire explains it (a server span continuing a lost client span), otherwise it
    becomes an extra root. Other spans of the session's traces hang under their parent.

    Columns: node_id (str: ``session:…``, ``turn:…``, ``call:<id>``, ``span:<trace>/<span>``),
    parent_id (str or None), kind, name, start_ts/end_ts (UTC), duration_ms (float ms),
    depth (int, 0 = roots), lane (int, row order), gaps (list of gap codes on the node),
    status (calls), call_id, trace_id, span_id, service_name, span_kind, role, matched_by,
    orphan (bool). Raises :class:`mcptrace.NotFoundError` (a ``KeyError``) for an unknown session,
    turn or call.

    A turn's rows are exactly those the whole tree holds under that turn's node (for an untraced
    run, under its calls), plus the extra roots of its traces; gaps of other turns are left out.
    """
    srow = _rows(con, "SELECT session_id, session_key_source, session_key, first_ts, last_ts FROM sessions "
                      "WHERE session_id = $session_id", {"session_id": session_id})
    if not srow:
        raise NotFoundError("session", session_id)
    _sid, src, key, first_ts, last_ts = srow[0]
    if call_id is not None:
        call_sid, turn = turn_of(con, call_id)
        if call_sid != session_id:
            raise NotFoundError("call", call_id, f"session {session_id!r}")
    # the selected calls (all of the session's without a selection): the turn_calls table macro
    p = {"session_id": session_id, "run": UNTRACED_RUN, "turn": turn}
    calls = _rows(con, "SELECT call_id, coalesce(tool_name, method) AS name, start_ts, end_ts, duration_ms, status, "
                       "trace_id, turn_id, turn_source FROM calls "
                       "WHERE call_id IN (SELECT call_id FROM turn_calls($session_id, $run, $turn)) ORDER BY start_ord", p)
    if turn is not None and not calls:
        raise NotFoundError("turn", turn, f"session {session_id!r}")
    cs = _rows(con, _JOINED_SPANS_SQL, p)
    trace_ids = sorted({c[6] for c in calls if c[6]} | {r[4] for r in cs})
    other = _rows(con, _TRACE_SPANS_SQL, {**p, "trace_ids": trace_ids})
    gap_rows = _rows(con, """SELECT code, call_id, trace_id, span_id FROM gaps WHERE session_id = $session_id
                             AND ($turn IS NULL OR call_id IN (SELECT call_id FROM turn_calls($session_id, $run, $turn))
                                  OR (call_id IS NULL AND list_contains($trace_ids, trace_id)))
                             ORDER BY gap_id""", {**p, "trace_ids": trace_ids})

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
    span_turns = {}  # turn_id -> (trace, parent span) of turns made from spans
    for turn_id, members in turn_calls.items():
        source = members[0][8]
        overlap = source == "overlap"
        trace, _, parent = turn_id.partition("/") if source in ("client_span", "host_span", "trace") else ("", "", "")
        span_turns[turn_id] = (trace, parent)
        span = spans_by_id.get((trace, parent)) if parent else None
        start = span[4] if span else min((m[2] for m in members if m[2] is not None), default=None)
        ends = [m[3] for m in members if m[3] is not None]
        end = span[5] if span else (max(ends) if ends else None)
        name = span[3] if span else ("overlapping calls (no trace context)" if overlap
                                     else f"trace {trace[:8]}" if trace else f"{source} {turn_id}")
        add(f"turn:{turn_id}", root, kind="turn", name=name,
            start_ts=start, end_ts=end, duration_ms=_ms(start, end), trace_id=trace or None,
            span_id=parent or None, service_name=span[7] if span else None)
    # the host's tool span that caused a call (call_spans role 'host') sits between the turn and the call
    placed: set[tuple] = set()
    host_of = {}
    for call_id, role, matched_by, via, trace, span, parent_span, name, st, en, dur, svc, kind, orphan in cs:
        if role == "host":
            host_of.setdefault(call_id, (trace, span, name, st, en, dur, svc, kind, matched_by, orphan))
    for c in calls:
        parent = f"turn:{c[7]}" if c[7] else root
        host = host_of.get(c[0])
        if host is not None:
            trace, span, name, st, en, dur, svc, kind, matched_by, orphan = host
            add(f"span:{trace}/{span}", parent, kind="span", name=name, start_ts=st, end_ts=en, duration_ms=dur,
                call_id=c[0], trace_id=trace, span_id=span, service_name=svc, span_kind=kind, role="host",
                matched_by=matched_by, orphan=bool(orphan))
            placed.add((trace, span))
            parent = f"span:{trace}/{span}"
        add(f"call:{c[0]}", parent, kind="call", name=c[1], start_ts=c[2], end_ts=c[3], duration_ms=c[4],
            status=c[5], call_id=c[0], trace_id=c[6])

    turn_spans = {ts for ts in span_turns.values() if ts[1]}
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
    client_spans = {(r[0], r[1]) for r in _rows(
        con, "SELECT cs.trace_id, cs.span_id FROM call_spans cs JOIN calls c USING (call_id) "
             "WHERE c.session_id = $session_id AND cs.role = 'client' AND list_contains($trace_ids, cs.trace_id)",
        {"session_id": session_id, "trace_ids": trace_ids})}
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
    import pandas as pd

    df = pd.DataFrame([nodes[n] for n in order], columns=TREE_COLUMNS)
    for col in ("parent_id", "status", "trace_id", "span_id", "service_name", "span_kind", "role", "matched_by"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    df["call_id"] = df["call_id"].astype("Int64")
    return df
