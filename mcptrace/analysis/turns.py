"""Turns of a session: the calls of one LLM turn, and the keys to drill down with.

A turn is ``calls.turn_id`` (README: How the correlation works); calls without one are grouped
into runs. The SQL is the table macros ``turn_keys``, ``turn_calls`` and ``session_turns`` of
``sql/queries.sql``. Every function takes an open DuckDB connection of an mcptrace database.
"""

from __future__ import annotations

import duckdb

from mcptrace.core.db import one
from mcptrace.core.errors import NotFoundError
from mcptrace.core.result import Result, query

#: calls without a turn (no trace context) are grouped, in wire order, into runs between turns of
#: at most this many calls; each run is one aggregate row, keyed ``untraced:<its first call_id>``
UNTRACED_RUN = 100


def turns(con: duckdb.DuckDBPyConnection, session_id: str) -> Result:
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
    return query(con, "SELECT * FROM session_turns($session_id, $run)", {"session_id": session_id, "run": UNTRACED_RUN})


def turn_of(con: duckdb.DuckDBPyConnection, call_id: int) -> tuple[str, str]:
    """(session_id, turn key) of a call, the key as in :func:`turns`. Raises
    :class:`mcptrace.NotFoundError` (a ``KeyError``) for an unknown call."""
    row = one(con, "SELECT session_id FROM calls WHERE call_id = ?", [call_id])
    if not row:
        raise NotFoundError("call", call_id)
    key = one(con, "SELECT turn FROM turn_keys($session_id, $run) WHERE call_id = $call_id",
              {"session_id": row[0], "run": UNTRACED_RUN, "call_id": call_id})
    return row[0], key[0]
