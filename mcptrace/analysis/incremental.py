"""Appends: rebuild only what the new records reach.

A load into a database whose analysis tables are current does not recompute everything. Before the
load, :func:`watermark` notes where the tables stood; after it, :func:`update` finds the part of the
database the new records can change (the *scope*), recomputes calls, turns, span joins, sessions and
gaps for that part only, and regroups the findings the scope's gaps touch. The result equals a full
:func:`mcptrace.analysis.rebuild.rebuild` over everything (``tests/test_incremental.py`` loads random
splits of the incident captures in random orders and compares), except for the numbering of gaps: a
gap an append finds gets the next ``gap_id``.

The scope (``sql/scope_new.sql``, ``scope_seed.sql``, ``scope_island.sql``, ``scope_grow.sql``,
``scope_inputs.sql``) is grown to a fixed point from what the new records name:

- their transport scopes (``Mcp-Session-Id``, else the connection) and HTTP exchanges, their session keys
  (a new key can merge sessions), their traces (with the traces a new server span links to, and those of
  server spans linking to a new record's trace: a link joins whatever the times) and host tool-call ids:
  every logical session with a call sharing one of these;
- every session sharing a transport scope with one in scope, or a trace one in scope was joined to;
- what the inferred rules could join or change: the attribute join's one-to-one assignment of server spans
  to calls is the stable matching of its pair order, so the sessions of the calls whose assignment could
  change (starting from the new requests, the calls the new records may answer, whose windows reach an
  hour, and the calls and server spans of the new records' traces; then every call or span with a pair
  ranking before the one it holds with one that could change, holding none, or held by one that could)
  and of the calls whose evidence counts those pairs; downstream roots that start during its transports
  or server spans, and every call whose interval (its server span's, whose clock may be off the wire's)
  may hold them; and the sessions of the same client whose reaches (last message plus
  :data:`mcptrace.analysis.rebuild.RECONNECT_WITHIN_S`) chain to it (split sessions).

The scope's records (every message of its transport scopes, every span of its traces and of the spans
the inferred rules may join, its HTTP events) are copied into a scratch in-memory database, the same SQL
as the full rebuild runs there (with the attribute join's pairs of the scope with calls and spans outside
it, which count among the candidates: :func:`_extra_pairs`), and the scope's rows of ``calls``,
``call_spans``, ``sessions``, ``gaps``, ``call_party`` and ``gap_party`` are replaced in one transaction.
The full rebuild runs instead when the new records are more than :data:`FULL_SHARE` of all records or the
scope holds more than that share of the calls, when the scope still grows after :data:`MAX_ROUNDS` rounds,
when the analysis tables are missing or stale, or when the scope changes what the downstream rule reads
from every call (``sql/scope_globals.sql``). ``calls.start_ord``/``end_ord`` stay the positions in the
whole database's event order: new messages after every earlier one (a live capture, the next day's files)
are numbered on; otherwise every call's positions are renumbered.

Definition drift compares a server's listings across sessions, which no scope holds: when the scope holds
a list request or a call a drift gap rests on, or the load added a list_changed notification
(:func:`mcptrace.analysis.drift.reached`), :func:`mcptrace.analysis.drift.refresh` recomputes its gaps over
the whole database in the same transaction and replaces their rows and finding groups.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb

from mcptrace.analysis import drift, findings
from mcptrace.analysis import rebuild as _rb
from mcptrace.core.db import main_columns, one, optimizer, quote_ident, run_sql_file
from mcptrace.core.gapcodes import GAP_CODES, GapCode

#: an append whose new records are more than this share of all records, or whose scope holds more than
#: this share of the calls, rebuilds everything (the scratch copy then costs more than it saves)
FULL_SHARE = 0.5
#: rounds of scope growth after which a scope still growing is rebuilt in full: a chain of inferred
#: candidates (calls nothing answered, each reaching an hour of spans of its method) adds a hop per round,
#: and rounds over a large scope cost more than the full rebuild
MAX_ROUNDS = 8
#: the scratch database an append's scope is analysed in
SCRATCH = "mcptrace_scope"
#: a scratch database holding at most this many records (messages, HTTP events, spans) is analysed without
#: DuckDB's optimizer: planning is most of a small scope's analysis, and over so few rows the plans it would
#: improve take no time (the analysis SQL joins on conditions, never by a filter over a cross product, so an
#: unoptimised plan stays a hash or range join). The statements over the whole database keep it. Measured on
#: whole analyses: 141 records 0.55-0.59 s without against 0.67-0.82 s with it, 5,000 records the same,
#: 20,000 records 40-60% slower without.
LIGHT_PLANNING_RECORDS = 1000
#: analysis tables an append replaces rows of; a database without one of them (or without
#: ``message_order``) is rebuilt in full
_ANALYSIS = ("calls", "sessions", "call_spans", "gaps", "findings", "message_order", "call_party", "gap_party",
             "finding_eligible", "finding_rows", "listing_items", "definition_texts")


@dataclass(frozen=True)
class Watermark:
    """How far a database had got before a load: its last ``message_id`` and whether its analysis tables
    were current (only then can an append be analysed on its own)."""

    max_message_id: int
    analysed: bool


@dataclass
class UpdateReport:
    """What an :func:`update` recomputed. ``mode``: 'none' (nothing new), 'incremental' or 'full';
    ``reason`` says why a full rebuild ran. Counts are of the scope (for 'incremental') or of the whole
    database ('full'); ``rounds`` the rounds of scope growth run (``scope_grow.sql``); ``seconds`` the wall
    time."""

    mode: str
    reason: str = ""
    n_new_messages: int = 0
    n_new_spans: int = 0
    n_new_http_events: int = 0
    n_sessions: int = 0
    n_calls: int = 0
    n_messages: int = 0
    n_spans: int = 0
    renumbered: bool = False
    rounds: int = 0
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def watermark(con: duckdb.DuckDBPyConnection) -> Watermark:
    """Note where ``messages``, ``spans`` and ``http_events`` stand before a load: the last ``message_id``
    (the returned :class:`Watermark`) and every source with the line a follow had reached (the TEMP table
    ``_seen_sources(source_id, read_lines)``)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _seen_sources AS SELECT source_id, read_lines FROM sources")
    max_id = one(con, "SELECT coalesce(max(message_id), 0) FROM messages")[0]
    return Watermark(max_id, _analysed(con))


def _analysed(con: duckdb.DuckDBPyConnection) -> bool:
    return set(_ANALYSIS) <= {t for t, _ in main_columns(con)} and not _rb.needs_rebuild(con)


def update(con: duckdb.DuckDBPyConnection, before: Watermark, *, full_share: float = FULL_SHARE,
           gap_codes: Mapping[str, GapCode] = GAP_CODES) -> UpdateReport:
    """Bring the analysis tables up to date after a load that started at ``before``
    (:func:`watermark`): nothing when the load added no record, the scope of the new records when the
    tables were current, else everything. ``full_share`` (0..1): the share of the records that are new, or
    of the calls in scope, above which the full rebuild runs instead (0 always rebuilds in full, 1 never
    unless the tables are stale or the downstream rule's inputs change); below 1, a scope still growing
    after :data:`MAX_ROUNDS` rounds is rebuilt in full too. Raises what
    :func:`mcptrace.analysis.rebuild.rebuild` raises."""
    t0 = time.perf_counter()
    # the sources this load wrote: new ones from their first record, followed ones from the line they had reached
    con.execute("CREATE OR REPLACE TEMP TABLE _grown AS SELECT s.source_id, "
                "CASE WHEN p.source_id IS NULL THEN 1 ELSE coalesce(p.read_lines, 0) + 1 END AS from_record "
                "FROM sources s LEFT JOIN _seen_sources p USING (source_id) "
                "WHERE p.source_id IS NULL OR s.read_lines > coalesce(p.read_lines, 0)")
    n_msg, n_span, n_ev, n_all = one(con, """
        SELECT (SELECT count(*) FROM messages WHERE message_id > $m),
               (SELECT count(*) FROM spans s JOIN _grown g ON g.source_id = s.source_id
                  AND (g.from_record = 1 OR s.record_no >= g.from_record)),
               (SELECT count(*) FROM http_events e JOIN _grown g ON g.source_id = e.source_id
                  AND e.record_no >= g.from_record),
               (SELECT count(*) FROM messages) + (SELECT count(*) FROM spans) + (SELECT count(*) FROM http_events)""",
                                {"m": before.max_message_id})
    rep = UpdateReport("none", n_new_messages=n_msg, n_new_spans=n_span, n_new_http_events=n_ev)
    if not (n_msg or n_span or n_ev) and before.analysed:
        return rep
    if not before.analysed:
        return _full(con, rep, "the analysis tables were missing or stale", gap_codes, t0)
    if full_share <= 0:
        return _full(con, rep, "asked for", gap_codes, t0)
    if n_msg + n_span + n_ev > full_share * n_all:
        return _full(con, rep, f"the new records are {n_msg + n_span + n_ev} of {n_all}", gap_codes, t0)
    _rb.run_script(con, "scope_new.sql", {"max_message_id": before.max_message_id})
    steps = rep.steps
    params = {"skew_ms": _rb.SKEW_TOLERANCE_MS, "reconnect_s": _rb.RECONNECT_WITHIN_S, "window_ms": _rb.WINDOW_MS,
              "nearest_margin_ms": _rb.NEAREST_MARGIN_MS, "max_message_id": before.max_message_id,
              "new_from_ts": one(con, "SELECT min(ts) FROM _new_msg")[0]}
    t = time.perf_counter()
    _rb.run_script(con, "scope_seed.sql", params)
    total = one(con, "SELECT count(*) FROM calls")[0]
    while True:
        # the split-session islands first (a second run adds nothing), then the other rules: when those add
        # nothing either, the scope is complete
        _rb.run_script(con, "scope_island.sql", params)
        n = one(con, _GROWTH)
        _rb.run_script(con, "scope_grow.sql", params)
        rep.rounds += 1
        if one(con, _GROWTH) == n:
            break
        reached = one(con, "SELECT count(*) FROM calls WHERE session_hash IN (SELECT key_hash(session_id) FROM _aff) "
                           "AND session_id IN (SELECT session_id FROM _aff)")[0]
        if total and reached > full_share * total:
            steps["scope"] = time.perf_counter() - t
            return _full(con, rep, f"the new records reach {reached} of {total} calls (after {rep.rounds} rounds "
                         "of scope growth)", gap_codes, t0)
        if rep.rounds >= MAX_ROUNDS and full_share < 1:
            steps["scope"] = time.perf_counter() - t
            return _full(con, rep, f"the scope still grew after {rep.rounds} rounds ({reached} of {total} calls)",
                         gap_codes, t0)
    _rb.run_script(con, "scope_inputs.sql", params)
    steps["scope"] = time.perf_counter() - t
    n_calls, total = one(con, "SELECT (SELECT count(*) FROM _scope_calls), (SELECT count(*) FROM calls)")
    if total and n_calls > full_share * total:
        return _full(con, rep, f"the new records reach {n_calls} of {total} calls", gap_codes, t0)
    t = time.perf_counter()
    rep.renumbered = _order_new_messages(con, before.max_message_id)
    steps["message_order"] = time.perf_counter() - t
    t = time.perf_counter()
    main = one(con, "SELECT current_database()")[0]
    con.execute(f"DETACH DATABASE IF EXISTS {SCRATCH}")
    con.execute(f"ATTACH ':memory:' AS {SCRATCH}")
    try:
        _copy_scope(con, main)
        steps["copy"] = time.perf_counter() - t
        t = time.perf_counter()
        light = one(con, f"""SELECT (SELECT count(*) FROM {SCRATCH}.messages) + (SELECT count(*) FROM {SCRATCH}.spans)
                                 + (SELECT count(*) FROM {SCRATCH}.http_events)""")[0] <= LIGHT_PLANNING_RECORDS

        def extra_pairs(c: duckdb.DuckDBPyConnection) -> None:
            with optimizer(c, on=True):  # statements over the whole database
                _extra_pairs(c, main, params)

        con.execute(f"USE {SCRATCH}")
        try:
            with optimizer(con, on=not light):
                _rb.load_gap_codes(con, gap_codes)
                _rb.analyse(con, params, extra_pairs=extra_pairs)
                findings.parties(con, gap_codes)
        finally:
            con.execute(f"USE {quote_ident(main)}")
        steps["analyse"] = time.perf_counter() - t
        t = time.perf_counter()
        rep.n_sessions, rep.n_calls, rep.n_messages, rep.n_spans = one(con, f"""
            SELECT (SELECT count(*) FROM {SCRATCH}.sessions), (SELECT count(*) FROM {SCRATCH}.calls),
                   (SELECT count(*) FROM {SCRATCH}.messages), (SELECT count(*) FROM {SCRATCH}.spans)""")
        _rb.run_script(con, "scope_old.sql")
        changed = _downstream_globals_changed(con)
        steps["globals"] = time.perf_counter() - t
        if changed:
            con.execute(f"DETACH DATABASE IF EXISTS {SCRATCH}")
            return _full(con, rep, "the new records change what the downstream rule reads from every call: "
                         + ", ".join(r[0] for r in changed), gap_codes, t0)
        t = time.perf_counter()
        findings.scope_before(con, SCRATCH)
        t_drift = time.perf_counter()
        need_drift = drift.reached(con, SCRATCH, before.max_message_id)  # before the merge replaces the scope's gaps
        steps["drift"] = time.perf_counter() - t_drift
        con.execute("BEGIN TRANSACTION")
        try:
            _rb.run_script(con, "scope_merge.sql", params)
            findings.scope_after(con)
            drift.store(con, "_scope_old_calls")
            if need_drift:
                t_drift = time.perf_counter()
                drift.refresh(con, gap_codes, regroup=True)
                steps["drift"] += time.perf_counter() - t_drift
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        steps["merge"] = time.perf_counter() - t
    finally:
        con.execute(f"DETACH DATABASE IF EXISTS {SCRATCH}")
    t = time.perf_counter()
    findings.build(con, gap_codes, with_parties=False)
    steps["findings"] = time.perf_counter() - t
    rep.mode = "incremental"
    rep.seconds = time.perf_counter() - t0
    return rep


#: how far the scope has grown: its sessions, and the attribute join's dirty calls and spans (scope_island.sql,
#: scope_grow.sql)
_GROWTH = ("SELECT (SELECT count(*) FROM _aff), (SELECT count(*) FROM _dirty_call), "
           "(SELECT count(*) FROM _dirty_span)")


def _extra_pairs(con: duckdb.DuckDBPyConnection, main: str, params: Mapping[str, object]) -> None:
    """In the scratch database: ``_attr_extra``, the attribute join's candidate pairs (attr_pairs.sql) of the
    scope's calls with the server spans outside it, and of the calls outside it with the scope's spans,
    among those no exact join took. Their assignments stay (scope_grow.sql put every call and span whose
    pair could change in scope), but they count among the candidates of the scope's calls and spans."""
    m = quote_ident(main)
    w_us = int(float(params["window_ms"]) * 1000)
    exact = (f"SELECT call_id, span_id, trace_id FROM {m}.call_spans "
             "WHERE role = 'server' AND matched_by IN ('parent', 'link')")
    # the spans outside that the scope's calls may meet: of their methods, in the 10-minute buckets their
    # windows cover
    run_sql_file(con, "attr_pairs.sql", dict(params), views={
        "_ap_calls": "SELECT * FROM calls",
        "_ap_spans": f"""
            WITH b AS (
                SELECT DISTINCT method, unnest(attr_call_buckets(start_ts, end_ts, {w_us})) AS bucket
                FROM calls WHERE start_ts IS NOT NULL AND rpc_id IS NOT NULL
            )
            SELECT s.* FROM {m}.spans s SEMI JOIN b ON b.method = s.mcp_method_name
                                                   AND b.bucket = epoch_us(s.start_ts) // 600000000
            WHERE s.mcp_side = 'server'
              AND s.start_ts BETWEEN (SELECT min(start_ts) FROM calls) - to_microseconds({w_us})
                                 AND (SELECT max(start_ts) FROM calls) + INTERVAL 1 HOUR + to_microseconds({w_us})
              AND s.trace_id NOT IN (SELECT trace_id FROM _scope_trace)
              AND NOT EXISTS (SELECT 1 FROM ({exact}) x WHERE x.span_id = s.span_id AND x.trace_id = s.trace_id)"""})
    con.execute("CREATE OR REPLACE TEMP TABLE _attr_extra AS SELECT * FROM _attr_pairs")
    # the calls outside that may meet the scope's spans: of their methods, starting in the 10-minute buckets
    # from an hour and the window before a span to the window after it
    run_sql_file(con, "attr_pairs.sql", dict(params), views={
        "_ap_calls": f"""
            WITH b AS (
                SELECT DISTINCT mcp_method_name AS method, unnest(attr_span_call_buckets(start_ts, {w_us})) AS bucket
                FROM spans WHERE mcp_side = 'server' AND mcp_method_name IS NOT NULL AND start_ts IS NOT NULL
            )
            SELECT c.* FROM {m}.calls c SEMI JOIN b ON b.method = c.method
                                                   AND b.bucket = epoch_us(c.start_ts) // 600000000
            WHERE c.start_ts BETWEEN (SELECT min(start_ts) FROM spans WHERE mcp_side = 'server')
                                     - INTERVAL 1 HOUR - to_microseconds({w_us})
                                 AND (SELECT max(start_ts) FROM spans WHERE mcp_side = 'server') + to_microseconds({w_us})
              AND c.call_id NOT IN (SELECT call_id FROM _scope_calls)
              AND c.call_id NOT IN (SELECT call_id FROM ({exact}))""",
        "_ap_spans": "SELECT * FROM spans"})
    con.execute("INSERT INTO _attr_extra SELECT * FROM _attr_pairs")


def _full(con: duckdb.DuckDBPyConnection, rep: UpdateReport, reason: str, gap_codes: Mapping[str, GapCode],
          t0: float) -> UpdateReport:
    _rb.rebuild(con, gap_codes=gap_codes)
    rep.mode, rep.reason = "full", reason
    rep.n_sessions, rep.n_calls, rep.n_messages, rep.n_spans = one(
        con, "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM calls), (SELECT count(*) FROM messages), "
             "(SELECT count(*) FROM spans)")
    rep.seconds = time.perf_counter() - t0
    return rep


def _downstream_globals_changed(con: duckdb.DuckDBPyConnection) -> list[tuple[str]]:
    """What the scope adds to or takes from the sets the downstream rule reads from the whole database
    that nothing outside the scope holds (``sql/scope_globals.sql``): the services of MCP spans, and the
    (MCP server service, downstream service) pairs seen with propagated context. Up to three, as text.
    Every one of them is read from spans: a scope without any (the scratch copy holds every span of the
    scope's traces, so none was there before either) changes none."""
    if not one(con, f"SELECT EXISTS (SELECT 1 FROM {SCRATCH}.spans)")[0]:
        return []

    def sets(call_spans: str, spans: str, into: str) -> None:
        run_sql_file(con, "scope_globals.sql", views={"_kp_call_spans": call_spans, "_kp_spans": spans})
        con.execute(f"CREATE OR REPLACE TEMP TABLE {into}_services AS SELECT * FROM _kp_services")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {into}_pairs AS SELECT * FROM _kp_pairs")

    sets("SELECT * FROM call_spans WHERE call_id IN (SELECT call_id FROM _scope_old_calls)",
         "SELECT * FROM spans WHERE trace_hash IN (SELECT key_hash(trace_id) FROM _scope_trace) "
         "AND trace_id IN (SELECT trace_id FROM _scope_trace)", "_kp_old")
    sets(f"SELECT * FROM {SCRATCH}.call_spans", f"SELECT * FROM {SCRATCH}.spans", "_kp_new")
    changed = """
        CREATE OR REPLACE TEMP TABLE _kp_changed_{what} AS
        (SELECT * FROM _kp_old_{what} EXCEPT SELECT * FROM _kp_new_{what})
        UNION (SELECT * FROM _kp_new_{what} EXCEPT SELECT * FROM _kp_old_{what})"""
    for what in ("services", "pairs"):
        con.execute(changed.format(what=what))
    if not one(con, "SELECT (SELECT count(*) FROM _kp_changed_services) + (SELECT count(*) FROM _kp_changed_pairs)")[0]:
        return []
    # only then the rows outside the scope: of the spans and calls that name a changed service
    names = ("(SELECT service_name FROM _kp_changed_services UNION SELECT server_service FROM _kp_changed_pairs "
             "UNION SELECT downstream_service FROM _kp_changed_pairs)")
    sets("SELECT * FROM call_spans WHERE call_id NOT IN (SELECT call_id FROM _scope_old_calls)",
         f"SELECT * FROM spans WHERE trace_id NOT IN (SELECT trace_id FROM _scope_trace) AND service_name IN {names}",
         "_kp_out")
    return con.execute("""
        SELECT 'mcp service ' || service_name FROM (SELECT * FROM _kp_changed_services EXCEPT SELECT * FROM _kp_out_services)
        UNION ALL
        SELECT 'known downstream ' || server_service || ' → ' || downstream_service
        FROM (SELECT * FROM _kp_changed_pairs EXCEPT SELECT * FROM _kp_out_pairs)
        ORDER BY ALL LIMIT 3""").fetchall()


#: a message's place in event order as one comparable value (message_order.sql's ORDER BY: time with
#: untimed messages last, then source, record, place in a batch with none last, then id)
_ORDER_KEY = ("[CASE WHEN ts IS NULL THEN 1 ELSE 0 END, coalesce(epoch_us(ts), 0), source_id, record_no, "
              "coalesce(batch_index, 2147483647), message_id]")


def _order_new_messages(con: duckdb.DuckDBPyConnection, max_message_id: int) -> bool:
    """Give the new messages their positions in ``message_order``. When they all come after every
    earlier message they are numbered on; otherwise the whole order is renumbered and every call's
    ``start_ord``/``end_ord`` with it. Returns whether it renumbered."""
    new_first = one(con, f"SELECT min({_ORDER_KEY}) FROM messages WHERE message_id > ?", [max_message_id])[0]
    if new_first is None:
        return False
    # the usual case (new messages later than every earlier one) is told by the times alone
    old_last_ts, old_untimed = one(con, "SELECT max(epoch_us(ts)), count(*) FILTER (WHERE ts IS NULL) FROM messages "
                                        "WHERE message_id <= ?", [max_message_id])
    later_old = not (new_first[0] == 0 and not old_untimed and (old_last_ts is None or old_last_ts < new_first[1]))
    if later_old:
        later_old = one(con, f"SELECT count(*) FROM messages WHERE message_id <= ? AND (ts IS NULL OR epoch_us(ts) >= ?) "
                             f"AND {_ORDER_KEY} > ?", [max_message_id, new_first[1], new_first])[0]
    if not later_old:
        con.execute("INSERT INTO message_order SELECT message_id, (SELECT coalesce(max(ord), 0) FROM message_order) "
                    "+ row_number() OVER (ORDER BY ts, source_id, record_no, batch_index, message_id) "
                    "FROM messages WHERE message_id > ?", [max_message_id])
        return False
    _rb.run_script(con, "message_order.sql")
    con.execute("""
        UPDATE calls SET start_ord = o.start_ord, end_ord = o.end_ord
        FROM (SELECT c.call_id, q.ord AS start_ord, coalesce(r.ord, x.ord) AS end_ord FROM calls c
              JOIN message_order q ON q.message_id = c.request_message_id
              LEFT JOIN message_order r ON r.message_id = c.response_message_id
              LEFT JOIN message_order x ON x.message_id = c.cancel_message_id) o
        WHERE calls.call_id = o.call_id
          AND (calls.start_ord <> o.start_ord OR calls.end_ord IS DISTINCT FROM o.end_ord)""")
    return True


def _copy_scope(con: duckdb.DuckDBPyConnection, main: str) -> None:
    """The scope's records into the scratch database: messages, their positions, HTTP events, spans."""
    m = quote_ident(main)
    con.execute(f"CREATE TABLE {SCRATCH}.messages AS SELECT m.* FROM {m}.messages m "
                "SEMI JOIN _scope_msg s ON s.message_id = m.message_id")
    con.execute(f"CREATE TABLE {SCRATCH}.message_order AS SELECT o.* FROM {m}.message_order o "
                "SEMI JOIN _scope_msg s ON s.message_id = o.message_id")
    # the rows of events and spans found by the hashes of their keys first, then read whole by row id: only
    # the row groups that hold them are read in full (a filter on a subquery, or a join, read every column,
    # headers and attributes, of every row); the rows of keys that only share a hash are removed after
    # (compared in the scan, the keys would be read for every row). An event is the scope's when its transport
    # scope or its exchange is (an event's Mcp-Session-Id is its transport scope).
    con.execute(f"""CREATE TABLE {SCRATCH}.http_events AS
                    WITH k AS (
                        SELECT rowid AS rid FROM {m}.http_events
                        WHERE scope_hash IN (SELECT key_hash(scope) FROM _scope_scope)
                        UNION SELECT rowid FROM {m}.http_events
                        WHERE exchange_hash IN (SELECT key_hash(exchange_id) FROM _scope_msg)
                    )
                    SELECT e.* FROM {m}.http_events e SEMI JOIN k ON k.rid = e.rowid""")
    con.execute(f"""DELETE FROM {SCRATCH}.http_events
                    WHERE NOT (coalesce(coalesce(mcp_session_id, connection_id) IN (SELECT scope FROM _scope_scope), false)
                               OR coalesce(exchange_id IN (SELECT exchange_id FROM _scope_msg), false))""")
    # the spans by their traces' hashes, then those of a trace that only shares a hash removed: compared in the
    # scan, the trace ids would be read for every span
    con.execute(f"CREATE TABLE {SCRATCH}.spans AS WITH k AS (SELECT s.rowid AS rid FROM {m}.spans s "
                "WHERE s.trace_hash IN (SELECT key_hash(trace_id) FROM _scope_trace)) "
                f"SELECT s.* FROM {m}.spans s SEMI JOIN k ON k.rid = s.rowid")
    con.execute(f"DELETE FROM {SCRATCH}.spans "
                "WHERE trace_id NOT IN (SELECT trace_id FROM _scope_trace WHERE trace_id IS NOT NULL)")
