"""Queries over the analysis tables shared by the library, the CLI, the report and the explorer:
the database summary, the gap list, calls in flight over time, correlation coverage.

Each takes an open DuckDB connection of an mcptrace database whose table macros
(``sql/queries.sql``) are installed by :func:`install`. Times are UTC; durations milliseconds.
"""

from __future__ import annotations

import duckdb

from mcptrace.core.result import Result, query
from mcptrace.core.sqlfiles import statements


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Create the table macros of ``sql/queries.sql`` (``turn_keys``, ``turn_calls``, ``session_turns``,
    ``gap_rows``, ``table_counts``) on ``con``. Temporary macros: they live with the connection.
    DuckDB binds the tables a table macro reads when it is created, so this runs once the analysis
    tables exist (after a rebuild, or when a database or dataset is opened)."""
    for stmt in statements("queries.sql"):
        con.execute(stmt)


def summary(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of the database: ``{"sources", "messages", "sessions", "calls", "spans", "gaps",
    "rejects"}`` (int each)."""
    res = con.execute("SELECT * FROM table_counts()")
    names = [d[0] for d in res.description]
    return dict(zip(names, res.fetchall()[0]))


def gaps(con: duckdb.DuckDBPyConnection, code: str | None = None, session_id: str | None = None, *,
         with_call: bool = False) -> Result:
    """The gaps, optionally of one code and/or session, in ``gap_id`` order.

    Columns: those of the ``gaps`` table (README: Tables, Gap codes); with ``with_call`` also
    call_name VARCHAR (the tool, else the method, of the gap's call) and call_rpc_id VARCHAR (its
    JSON-RPC id as JSON text), NULL for gaps without a call.
    """
    if with_call:
        return query(con, "SELECT * FROM gap_rows($code, $session_id)", {"code": code, "session_id": session_id})
    return query(con, "SELECT * EXCLUDE (call_name, call_rpc_id) FROM gap_rows($code, $session_id)",
                 {"code": code, "session_id": session_id})


def concurrency(con: duckdb.DuckDBPyConnection, session_id: str | None = None) -> Result:
    """Calls in flight over time: +1 at each request, −1 at each response or cancel, running sum.

    Columns: ts TIMESTAMPTZ (UTC), session_id, call_id BIGINT, delta INTEGER (+1/−1),
    in_flight BIGINT. Unanswered calls never end. Bare captures (no times) are left out.
    """
    return query(con, """
        WITH ev AS (
            SELECT session_id, call_id, start_ts AS ts, start_ord AS ord, 1 AS delta FROM calls WHERE start_ts IS NOT NULL
            UNION ALL
            SELECT session_id, call_id, end_ts, end_ord, -1 FROM calls WHERE end_ts IS NOT NULL
        )
        SELECT ts, session_id, call_id, delta,
               sum(delta) OVER (PARTITION BY session_id ORDER BY ts, ord, delta ROWS UNBOUNDED PRECEDING) AS in_flight
        FROM ev WHERE ?::VARCHAR IS NULL OR session_id = ?
        ORDER BY session_id, ts, ord, delta""", [session_id, session_id])


#: what :func:`coverage` groups by: the pair (default), the client (name and version) or the server
COVERAGE_BY = ("client_server", "client", "server")


def coverage(con: duckdb.DuckDBPyConnection, every: str = "1 minute", by: str = "client_server") -> Result:
    """Correlation health over time: the share of client requests carrying trace context, carrying a
    session key, and joined to their server span, per time bucket and per party ("did the 14:00 deploy
    of server X stop propagation?").

    ``every`` is a DuckDB interval (``'1 minute'``, ``'1 hour'``). ``by``: ``client_server`` (default;
    columns client_name and server_name), ``client`` (column party: client name and version) or
    ``server`` (party: server name and version). Other columns: bucket TIMESTAMPTZ (UTC, start of the
    bucket), n_requests BIGINT, n_trace_context, n_session_key, n_server_span BIGINT (requests with a
    server span in ``call_spans``), trace_context_share, session_key_share, server_span_share DOUBLE (0–1).
    Names come from ``initialize`` (``clientInfo``/``serverInfo``) or the 2026-07-28 ``_meta``
    equivalents; ``(unknown)`` when the capture never says. Raises ``ValueError`` for another ``by``.
    """
    if by not in COVERAGE_BY:
        raise ValueError(f"by={by!r}: one of {', '.join(COVERAGE_BY)}")
    client = "coalesce(s.client_name || coalesce(' ' || s.client_version, ''), '(unknown)')"
    server = "coalesce(s.server_name || coalesce(' ' || s.server_version, ''), '(unknown)')"
    keys = {"client_server": "coalesce(s.client_name, '(unknown)') AS client_name, "
                             "coalesce(s.server_name, '(unknown)') AS server_name",
            "client": f"{client} AS party", "server": f"{server} AS party"}[by]
    order = "client_name, server_name" if by == "client_server" else "party"
    return query(con, f"""
        SELECT time_bucket(?::INTERVAL, c.start_ts) AS bucket, {keys},
               count(*) AS n_requests,
               count(*) FILTER (WHERE c.trace_id IS NOT NULL) AS n_trace_context,
               count(*) FILTER (WHERE c.request_session_key IS NOT NULL) AS n_session_key,
               count(*) FILTER (WHERE sv.call_id IS NOT NULL) AS n_server_span,
               n_trace_context / n_requests AS trace_context_share,
               n_session_key / n_requests AS session_key_share,
               n_server_span / n_requests AS server_span_share
        FROM calls c JOIN sessions s USING (session_id)
        LEFT JOIN (SELECT DISTINCT call_id FROM call_spans WHERE role = 'server') sv ON sv.call_id = c.call_id
        WHERE c.direction = 'client_to_server' AND c.start_ts IS NOT NULL
        GROUP BY ALL ORDER BY bucket, {order}""", [every])
