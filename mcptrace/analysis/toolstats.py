"""Per-tool statistics: how many calls each tool (or request method) had, how they ended, how long the
answered ones took and how many bytes they moved, grouped by server, client, tool, session or method.

One parameterised query (``sql/tool_stats.sql``) over ``calls``, ``call_party`` and ``messages``; the
grouping is chosen by parameters, never by building SQL text from the arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from mcptrace.analysis.findings import parties
from mcptrace.core.db import one
from mcptrace.core.result import Result, query
from mcptrace.core.sqlfiles import statements

#: what :func:`tool_stats` can group by, in any subset and order
TOOL_STATS_BY = ("server", "client", "tool", "session_id", "method")

#: the columns after the ``by`` columns, in order
TOOL_STATS_COLUMNS = ("calls", "ok", "errors", "tool_errors", "cancelled", "unanswered", "truncated",
                      "error_rate", "tool_error_rate", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms",
                      "error_codes", "error_code_counts", "request_bytes", "response_bytes", "mean_request_bytes",
                      "mean_response_bytes", "first_seen", "last_seen")


def tool_stats(con: duckdb.DuckDBPyConnection, by: Sequence[str] = ("server", "tool"), *,
               method: str | None = "tools/call") -> Result:
    """Statistics of the calls of ``method`` (default ``tools/call``; ``None``: every request method, in
    either direction), one row per group of ``by``.

    ``by``: any subset of :data:`TOOL_STATS_BY`, in the order the rows are sorted by after ``calls``
    (``()``: one row for all the calls; one name may be given as a string). Raises ``ValueError`` naming
    the allowed names for another name or a name given twice.

    Columns, in this order:

    - the ``by`` columns, VARCHAR: ``server`` (the server's name: serverInfo ``name``, else the
      ``service.name`` of its server spans; ``'unidentified server'`` when the data names none),
      ``client`` (clientInfo name and version, ``'unidentified client'``), ``tool`` (for ``tools/call``
      the tool's name, for another request its method), ``session_id`` (the logical session),
      ``method`` (the JSON-RPC method);
    - ``calls``, ``ok``, ``errors`` (status ``error``: a JSON-RPC error response), ``tool_errors``
      (status ``tool_error``: ``isError: true``), ``cancelled``, ``unanswered``, ``truncated`` (answered,
      but the capture cut the result) BIGINT counts of calls;
    - ``error_rate``, ``tool_error_rate`` DOUBLE: ``errors`` and ``tool_errors`` as a share of ``calls`` (0..1);
    - ``p50_ms``, ``p95_ms``, ``p99_ms`` (``quantile_cont``, linear interpolation), ``mean_ms``, ``max_ms``
      DOUBLE milliseconds: ``duration_ms`` (request to response) of the answered calls (a response or an
      error was seen); NULL when none was answered;
    - ``error_codes`` VARCHAR: the JSON-RPC error codes of the group's error responses with their counts,
      most frequent first (``"-32602×3, -32603×1"``), NULL when none; ``error_code_counts``
      MAP(BIGINT, BIGINT): the same as a map, code to count, empty when none;
    - ``request_bytes``, ``response_bytes`` BIGINT: sums of the UTF-8 byte length of the request and
      response messages' JSON text as stored in ``messages.raw``, which is credential-redacted at load
      (not the bytes on the wire); ``mean_request_bytes`` (over the calls) and ``mean_response_bytes``
      (over the calls with a response; NULL when none) DOUBLE bytes;
    - ``first_seen``, ``last_seen`` TIMESTAMPTZ (UTC): the first request, and the last request, response
      or cancellation of the group's calls (NULL for captures without times).

    Rows are ordered by ``calls`` descending, then the ``by`` columns in their order. Needs the analysis
    tables (``calls``, ``call_party``, ``messages``); an attached Parquet dataset has no ``call_party``, so
    it is computed first, in the connection's memory (:func:`mcptrace.analysis.findings.parties`).
    """
    if isinstance(by, str):
        by = (by,)
    by = tuple(by)
    wrong = [b for b in by if b not in TOOL_STATS_BY]
    if wrong or len(set(by)) != len(by):
        what = f"unknown {', '.join(map(repr, wrong))}" if wrong else "a name given twice"
        raise ValueError(f"by={by!r}: {what}; by names any of {', '.join(TOOL_STATS_BY)}, each at most once")
    if not one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'call_party'")[0]:
        parties(con)
    (sql,) = statements("tool_stats.sql")
    return query(con, sql, {"by": list(by), "method": method}).select(*by, *TOOL_STATS_COLUMNS)
