"""Reconstruction: calls, logical sessions, turns, parallel groups, span joins and gaps.

:func:`rebuild` recomputes everything over the whole database; after a load into a database whose
analysis tables are current, only the part the new records reach is recomputed
(:mod:`mcptrace.analysis.incremental`), with the same result. Set-based SQL lives in
``mcptrace/sql/{calls,span_keys,turns,call_spans,sessions,gaps}.sql``; two steps are done in Python: the
transitive closure that forms logical sessions (union-find over correlation keys, :func:`assign_sessions`)
and the greedy one-to-one assignment of candidate pairs (:func:`one_to_one`: server spans to calls,
split sessions to their reconnects), each a single pass over rows DuckDB sorted.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Mapping

import duckdb
import pyarrow as pa

from mcptrace.analysis import drift, findings
from mcptrace.core.db import insert_rows, main_columns, one, run_sql_file, sql_params
from mcptrace.core.gapcodes import GAP_CODES, GapCode, rows as gap_code_rows
from mcptrace.core.sqlfiles import statements


#: slack (ms) around a call's interval when matching server spans by attributes
WINDOW_MS = 1000.0
#: how far (ms) a span or response may lie outside its parent before clock skew is suspected
SKEW_TOLERANCE_MS = 5.0
#: how soon (s) after a transport ended abnormally a new one of the same client counts as its reconnect
RECONNECT_WITHIN_S = 60.0
#: how much nearer (ms) the nearest-starting call must be than the next for a downstream root to be
#: given to it by the ``nearest_start`` rule (call_spans.sql)
NEAREST_MARGIN_MS = 10.0

#: ``ONE_TO_ONE <source> -> <target> LEFT (<cols>) RIGHT (<cols>) ORDER BY <order>`` in a SQL file:
#: the Python step :func:`one_to_one`, in its place among the statements
_ONE_TO_ONE = re.compile(r"^ONE_TO_ONE\s+(\w+)\s*->\s*(\w+)\s+LEFT\s*\(([^)]*)\)\s+RIGHT\s*\(([^)]*)\)\s+"
                         r"ORDER BY\s+(.+)$", re.S)
#: ``ATTR_PAIRS <calls>, <spans>`` in a SQL file: attr_pairs.sql's candidate pairs (``_attr_pairs``) of the
#: calls and spans of those tables or views, in its place among the statements
_ATTR_PAIRS = re.compile(r"^ATTR_PAIRS\s+(\w+)\s*,\s*(\w+)$")
#: ``IF ROWS IN <table>`` ... ``END IF`` in a SQL file: the statements between run only when the table has rows
#: (nothing after the block may read what they write, unless an ``IF NO ROWS IN <table>`` block, which runs
#: only when it has none, makes the same tables)
_IF_ROWS = re.compile(r"^IF (NO )?ROWS IN\s+(\w+)$")


def run_script(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object] | None = None) -> None:
    """Run the statements of ``sql/<name>`` with the named parameters each uses; a ``ONE_TO_ONE``
    line runs :func:`one_to_one` there, an ``ATTR_PAIRS`` line ``attr_pairs.sql``, and the statements of an
    ``IF ROWS IN <table>`` ... ``END IF`` block run only when the table has rows (of an ``IF NO ROWS IN
    <table>`` block, only when it has none). Raises ``ValueError`` (naming the file) for a block without its
    ``END IF`` or an ``END IF`` without a block, and what DuckDB raises for a statement."""
    depth, skip_from = 0, None  # open IF blocks; the depth of the one being skipped
    for stmt in statements(name):
        cond = _IF_ROWS.match(stmt.strip())
        if cond:
            depth += 1
            negated, table = cond.groups()
            if skip_from is None and one(con, f"SELECT EXISTS (SELECT 1 FROM {table})")[0] == bool(negated):
                skip_from = depth
            continue
        if stmt.strip() == "END IF":
            if not depth:
                raise ValueError(f"{name}: END IF without IF ROWS IN or IF NO ROWS IN")
            skip_from = None if skip_from == depth else skip_from
            depth -= 1
            continue
        if skip_from is not None:
            continue
        p = _ATTR_PAIRS.match(stmt.strip())
        if p:
            run_sql_file(con, "attr_pairs.sql", params, views={"_ap_calls": f"SELECT * FROM {p.group(1)}",
                                                               "_ap_spans": f"SELECT * FROM {p.group(2)}"})
            continue
        m = _ONE_TO_ONE.match(stmt.strip())
        if m:
            source, target, left, right, order = m.groups()
            one_to_one(con, source, target, [c.strip() for c in left.split(",")],
                       [c.strip() for c in right.split(",")], order.strip())
        else:
            con.execute(stmt, sql_params(stmt, params or {}))
    if depth:
        raise ValueError(f"{name}: IF ROWS IN or IF NO ROWS IN without END IF")


def one_to_one(con: duckdb.DuckDBPyConnection, source: str, target: str, left: list[str], right: list[str],
               order: str) -> int:
    """Greedy one-to-one assignment: ``target`` gets the rows of ``source`` (candidate pairs) taken in
    ``order`` (best first), each row taken unless its ``left`` key or its ``right`` key was taken by an
    earlier row. With ``order`` by distance this is the nearest-first assignment: every pair taken is
    the nearest left among what is still free, so a pair is never taken while a nearer one of either
    side is open. One sort in DuckDB, one pass here (O(n log n)). Returns the rows taken.
    ``source``, ``target``, ``left``, ``right`` and ``order`` come from the SQL files, never from data.
    """
    keys = [*left, *right]
    t = con.sql(f"SELECT rowid AS rid, {', '.join(keys)} FROM {source} ORDER BY {order}").to_arrow_table()
    rid = t.column("rid").to_pylist()
    lk = list(zip(*(t.column(c).to_pylist() for c in left)))
    rk = list(zip(*(t.column(c).to_pylist() for c in right)))
    taken_l: set = set()
    taken_r: set = set()
    picked = []
    for i, (a, b) in enumerate(zip(lk, rk)):
        if a in taken_l or b in taken_r:
            continue
        taken_l.add(a)
        taken_r.add(b)
        picked.append(rid[i])
    con.register("_one_to_one_picked", pa.table({"rid": pa.array(picked, pa.int64())}))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {target} AS SELECT s.* FROM {source} s "
                    "SEMI JOIN _one_to_one_picked p ON p.rid = s.rowid")
    finally:
        con.unregister("_one_to_one_picked")
    return len(picked)


def rebuild(con: duckdb.DuckDBPyConnection, *, window_ms: float = WINDOW_MS,
            skew_tolerance_ms: float = SKEW_TOLERANCE_MS, reconnect_within_s: float = RECONNECT_WITHIN_S,
            nearest_margin_ms: float = NEAREST_MARGIN_MS, gap_codes: Mapping[str, GapCode] = GAP_CODES) -> None:
    """Recompute ``calls``, ``sessions``, ``call_spans``, ``gaps`` and ``findings`` from ``messages``,
    ``http_events`` and ``spans``; the definition drift gaps over every listing (:mod:`mcptrace.analysis.drift`).
    Gap severities come from ``gap_codes`` (the registry, :mod:`mcptrace.core.gapcodes`); a gap whose code
    is not in it raises ``duckdb.InvalidInputException`` naming the code."""
    load_gap_codes(con, gap_codes)
    clean_times(con)
    params = {"skew_ms": skew_tolerance_ms, "reconnect_s": reconnect_within_s, "window_ms": window_ms,
              "nearest_margin_ms": nearest_margin_ms}
    run_script(con, "message_order.sql")
    analyse(con, params)
    findings.parties(con, gap_codes)
    drift.store(con)
    drift.refresh(con, gap_codes)
    findings.groups(con)
    findings.build(con, gap_codes, with_parties=False)


def clean_times(con: duckdb.DuckDBPyConnection) -> None:
    """A time Python cannot hold (infinity, a year before 1 or after 9999), stored by a load before the
    loader rejected times outside ``LoadOptions.ts_range``, is no time: the message or event stays, untimed."""
    for table in ("messages", "http_events"):
        con.execute(f"UPDATE {table} SET ts = NULL WHERE NOT (ts BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' "
                    "AND TIMESTAMPTZ '9999-12-31 00:00:00+00')")


#: the columns of attr_pairs.sql's candidate pairs, as an empty ``_attr_extra`` (a full build's)
_NO_EXTRA_PAIRS = ("CREATE OR REPLACE TEMP TABLE _attr_extra (call_id BIGINT, span_id VARCHAR, trace_id VARCHAR, "
                   "by_id BOOLEAN, inside BOOLEAN, dist BIGINT, start_dist BIGINT, matched_on VARCHAR[], "
                   "expected_trace_id VARCHAR)")


def analyse(con: duckdb.DuckDBPyConnection, params: dict[str, object],
            extra_pairs: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> None:
    """Calls, span keys, logical sessions, turns, span joins, sessions and gaps from the ``messages``,
    ``message_order``, ``http_events`` and ``spans`` of the current database (the whole database, or an
    append's scratch copy of its scope: :mod:`mcptrace.analysis.incremental`). ``gap_codes`` must be
    loaded (:func:`load_gap_codes`). ``extra_pairs``, for an append's scope, creates the TEMP table
    ``_attr_extra`` (attr_pairs.sql's columns): the attribute join's candidate pairs of the scope's calls and
    spans with calls and spans outside it, which count among the candidates; without it, or with no span in
    the database, there are none."""
    run_script(con, "calls.sql", params)
    run_script(con, "span_keys.sql", params)
    keys = assign_sessions(con)
    con.register("_session_keys_arrow", keys)
    con.execute("CREATE OR REPLACE TEMP TABLE _session_keys AS SELECT * FROM _session_keys_arrow")
    con.unregister("_session_keys_arrow")
    run_script(con, "turns.sql", params)
    # with no span, call_spans.sql joins nothing and reads no pair: those outside would count for nothing
    if extra_pairs is None or not one(con, "SELECT EXISTS (SELECT 1 FROM spans)")[0]:
        con.execute(_NO_EXTRA_PAIRS)
    else:
        extra_pairs(con)
    for name in ("call_spans.sql", "sessions.sql", "gaps.sql"):
        run_script(con, name, params)


#: columns of the analysis tables added later: a database without them is rebuilt when opened
_LATER_DERIVED = (("calls", "call_key_source"), ("calls", "host_span_id"), ("sessions", "server_version"),
                  ("call_party", "server_name"), ("listing_items", "digest"), ("definition_texts", "digest"),
                  ("calls", "scope_hash"), ("calls", "trace_hash"), ("calls", "session_hash"), ("call_spans", "trace_hash"))


def needs_rebuild(con: duckdb.DuckDBPyConnection) -> bool:
    """A database without the analysis tables (or with analysis tables of an older mcptrace), or with
    times Python cannot hold."""
    cols = main_columns(con)
    if not {"calls", "sessions", "gaps", "call_spans", "findings"} <= {t for t, _ in cols}:
        return True
    return not set(_LATER_DERIVED) <= cols or bool(one(
        con, "SELECT count(*) FROM messages WHERE NOT (ts BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' "
             "AND TIMESTAMPTZ '9999-12-31 00:00:00+00')")[0])


def load_gap_codes(con: duckdb.DuckDBPyConnection, gap_codes: Mapping[str, GapCode] = GAP_CODES) -> None:
    """(Re)create the TEMP table ``gap_codes(code, severity, meaning)`` from the registry; ``gaps.sql``
    joins it for every gap's severity."""
    con.execute("CREATE OR REPLACE TEMP TABLE gap_codes (code VARCHAR PRIMARY KEY, severity VARCHAR NOT NULL, "
                "meaning VARCHAR NOT NULL)")
    insert_rows(con, "gap_codes", gap_code_rows(gap_codes))


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        return ra


def session_id_for(source: str, key: str) -> str:
    """Stable id of a logical session: ``s_`` + 12 hex digits of sha1(source, key)."""
    return "s_" + hashlib.sha1(f"{source}\x00{key}".encode()).hexdigest()[:12]


#: session-key sources that name the host's conversation id wherever it was found: the same value from
#: ``_meta`` baggage and from spans is one session
CONVERSATION_SOURCES = ("spans.conversation_id",)


def key_family(source: str | None) -> str | None:
    """The namespace a session key's value lives in: its source, except that a conversation id read from
    ``_meta.baggage`` (``baggage <member>``) or from spans (``spans.conversation_id``) is one namespace."""
    if source is not None and (source in CONVERSATION_SOURCES or source.startswith("baggage ")):
        return "conversation"
    return source


def assign_sessions(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Group calls into logical sessions and write ``calls.session_id``.

    README (How the correlation works): a logical session is the transitive closure of calls sharing a session key
    (``_meta`` keys, ``_meta.baggage`` members, ``Mcp-Client-Session-Id``, the conversation id on the
    call's spans: :func:`key_family`) or a trace id. The transport session
    (``Mcp-Session-Id``, else the connection: a stdio process) then joins calls that carry
    neither, and merges groups only when that cannot join two different session keys: a
    transport shared by two keyed conversations keeps them apart.

    Returns a table (session_id, session_key, session_key_source) naming what decided each
    session: the session key's name, ``trace``, ``Mcp-Session-Id`` or ``connection``.
    """
    t = con.sql("""
        SELECT call_id, request_session_key_source, request_session_key, trace_id,
               transport_session, mcp_session_id, connection_id
        FROM calls ORDER BY start_ord""").to_arrow_table()
    n = t.num_rows
    call_ids = t.column("call_id").to_pylist()
    sk_src = t.column("request_session_key_source").to_pylist()
    sk = t.column("request_session_key").to_pylist()
    trace = t.column("trace_id").to_pylist()
    transport = t.column("transport_session").to_pylist()
    mcp_sid = t.column("mcp_session_id").to_pylist()
    conn = t.column("connection_id").to_pylist()

    uf = _UnionFind(n)
    first_by_key: dict[tuple, int] = {}
    for i in range(n):
        for key in ((("sk", key_family(sk_src[i]), sk[i]) if sk[i] is not None else None),
                    (("tr", trace[i]) if trace[i] is not None else None)):
            if key is None:
                continue
            j = first_by_key.setdefault(key, i)
            if j != i:
                uf.union(i, j)

    keyed_roots: set[int] = {uf.find(i) for i in range(n) if sk[i] is not None}
    by_transport: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        if transport[i] is not None:
            by_transport[transport[i]].append(i)
    for members in by_transport.values():
        roots = {uf.find(i) for i in members}
        keyed = {r for r in roots if r in keyed_roots}
        unkeyed = sorted(roots - keyed)
        if len(keyed) <= 1:
            target = next(iter(keyed)) if keyed else (unkeyed[0] if unkeyed else None)
            for r in unkeyed:
                if target is not None:
                    target = uf.union(target, r)
            if keyed:
                keyed_roots.discard(next(iter(keyed)))
                keyed_roots.add(uf.find(target))
        else:
            for r in unkeyed[1:]:
                uf.union(unkeyed[0], r)

    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[uf.find(i)].append(i)

    out_call, out_sid = [], []
    s_ids, s_keys, s_srcs = [], [], []
    seen: set[str] = set()
    for members in groups.values():
        keyed = [i for i in members if sk[i] is not None]
        traces = {trace[i] for i in members}
        if keyed:
            i = keyed[0]
            src, key = sk_src[i], sk[i]
        elif len(traces) == 1 and None not in traces:
            src, key = "trace", trace[members[0]]
        else:
            with_sid = [i for i in members if mcp_sid[i] is not None]
            if with_sid:
                src, key = "Mcp-Session-Id", mcp_sid[with_sid[0]]
            else:
                src, key = "connection", conn[members[0]]
        sid = session_id_for(src, key)
        if sid in seen:  # two groups with the same deciding key (e.g. stateless calls of one connection)
            sid = session_id_for(src, f"{key}\x00{call_ids[members[0]]}")
        seen.add(sid)
        s_ids.append(sid)
        s_keys.append(key)
        s_srcs.append(src)
        for i in members:
            out_call.append(call_ids[i])
            out_sid.append(sid)

    con.register("_call_session", pa.table({"call_id": pa.array(out_call, pa.int64()),
                                            "session_id": pa.array(out_sid, pa.string())}))
    con.execute("UPDATE calls SET session_id = s.session_id FROM _call_session s WHERE calls.call_id = s.call_id")
    con.unregister("_call_session")
    return pa.table({"session_id": pa.array(s_ids, pa.string()), "session_key": pa.array(s_keys, pa.string()),
                     "session_key_source": pa.array(s_srcs, pa.string())})
