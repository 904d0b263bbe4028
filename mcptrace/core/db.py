"""The DuckDB connection of an mcptrace database: opening it, its macros, small query helpers."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from mcptrace.core.errors import MCPTraceError
from mcptrace.core.sqlfiles import statements

#: every contract table, in the order exports and datasets list them (README: Tables)
TABLES = ("sources", "rejects", "messages", "http_events", "calls", "sessions", "spans", "span_duplicates",
          "call_spans", "gaps", "findings")
#: tables holding a file's rows (removed together when its load fails)
DATA_TABLES = ("messages", "http_events", "spans", "span_duplicates", "rejects")
#: characters of a rejected record's text kept in ``rejects.raw``
RAW_LIMIT = 4096


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> tuple | None:
    """The first row of a query, or None; the result is consumed so the connection is free again."""
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    return rows[0] if rows else None


def main_columns(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """The (table_name, column_name) pairs of the current database's main schema: which tables and columns
    a database has (temporary and attached tables not included)."""
    return set(con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                           "WHERE database_name = current_database() AND schema_name = 'main'").fetchall())


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples of the table's columns, in order) into ``table`` in one statement (DuckDB runs
    ``executemany`` as one statement a row). ``table`` comes from the code, never from data."""
    if rows:
        width = len(rows[0])
        values = ", ".join(["(" + ", ".join(["?"] * width) + ")"] * len(rows))
        con.execute(f"INSERT INTO {table} VALUES {values}", [v for row in rows for v in row])


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def sql_params(sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The named parameters ``$name`` that ``sql`` uses, taken from ``params`` (DuckDB refuses extra
    ones); None when it uses none. A name is matched whole: ``$redact`` is not ``$redacted``."""
    used = set(_PARAM.findall(sql))
    return {n: v for n, v in params.items() if n in used} or None


def run_sql_file(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None,
                 views: dict[str, str] | None = None) -> None:
    """Run the statements of ``sql/<name>`` with the named parameters each uses, and with its input
    ``views`` in place: each name a TEMP view of its SELECT (mcptrace's own text, never data), dropped
    again after."""
    views = views or {}
    for view, select in views.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {select}")
    try:
        for stmt in statements(name):
            con.execute(stmt, sql_params(stmt, params or {}))
    finally:
        for view in views:
            con.execute(f"DROP VIEW IF EXISTS {view}")


#: DuckDB ``memory_limit`` of a file-backed database unless told otherwise (``MCPTRACE_MEMORY_LIMIT``
#: or ``memory_limit=``): loads and analyses then spill to ``<db>.tmp`` instead of growing.
DEFAULT_MEMORY_LIMIT = "1GiB"


#: DuckDB settings of a connection to a database someone else may have written (``untrusted=True``):
#: its views and macros run with no access to files or the network beyond the database itself (a
#: view over ``read_text('/home/me/.ssh/id_rsa')`` fails instead of putting the file in a report),
#: and no extension is installed or loaded on its behalf. ``lock_configuration`` is set after
#: mcptrace's own settings, so nothing the database runs can turn them back.
UNTRUSTED_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                    "enable_external_access": False}


def threads_setting() -> int | None:
    """DuckDB's worker threads from the ``MCPTRACE_THREADS`` environment variable (a positive integer), None
    when it is not set (DuckDB's default: one per core). Several mcptrace processes sharing a machine's cores
    (parallel jobs, test workers) each run faster on fewer threads. Raises :class:`mcptrace.MCPTraceError`
    naming the variable for a value that is not a positive integer; read before a database is opened."""
    value = os.environ.get("MCPTRACE_THREADS", "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise MCPTraceError(f"MCPTRACE_THREADS={value!r}: not a positive integer")
    return int(value)


def apply_threads(con: duckdb.DuckDBPyConnection, threads: int | None) -> None:
    """Set DuckDB's worker threads (:func:`threads_setting`) on ``con``'s database (the setting is the
    database's, shared by its connections); None leaves DuckDB's default."""
    if threads is not None:
        con.execute("SET threads = ?", [threads])


#: the lookup hashes of the load tables (macros.sql's key_hash): table, column, the key hashed
LOOKUP_HASHES = (("messages", "scope_hash", "coalesce(mcp_session_id, connection_id)"),
                 ("messages", "exchange_hash", "exchange_id"),
                 ("http_events", "scope_hash", "coalesce(mcp_session_id, connection_id)"),
                 ("http_events", "exchange_hash", "exchange_id"),
                 ("spans", "trace_hash", "trace_id"))
#: those of the analysis tables (turns.sql, call_spans.sql write them)
DERIVED_LOOKUP_HASHES = (("calls", "scope_hash", "coalesce(mcp_session_id, connection_id)"),
                         ("calls", "trace_hash", "trace_id"), ("calls", "session_hash", "session_id"),
                         ("call_spans", "trace_hash", "trace_id"))


@contextmanager
def optimizer(con: duckdb.DuckDBPyConnection, on: bool) -> Iterator[None]:
    """DuckDB's optimizer on or off (``on``) for the statements of the block on this connection (a session
    setting: other connections keep theirs), then as it was. Small inputs are analysed with it off, where
    planning is most of their time. A connection whose configuration is locked (``untrusted``) keeps its
    setting. When the block fails inside a transaction the setting cannot be put back before the rollback:
    the caller does it after."""
    was, locked = one(con, "SELECT current_setting('enable_optimizer'), current_setting('lock_configuration')")
    if was == on or locked:  # a refused SET would abort the transaction the block may run in
        yield
        return
    con.execute("SET SESSION enable_optimizer = ?", [on])
    try:
        yield
    finally:
        try:
            con.execute("SET SESSION enable_optimizer = ?", [was])
        except duckdb.TransactionException:
            pass  # an aborted transaction: see above


def fill_lookup_hashes(con: duckdb.DuckDBPyConnection) -> None:
    """Give every row without a lookup hash its own (:data:`LOOKUP_HASHES`, and the analysis tables'): rows
    written before the hashes existed, by an upgrade stopped half way or by an older mcptrace. A stored hash is
    never NULL (``stored_key_hash``: 0 for a NULL key), and DuckDB skips the row groups its statistics show
    hold no NULL, so on a database whose rows all have theirs this reads next to nothing. The check is one
    statement of UNION ALL branches: a sum of as many scalar subqueries took DuckDB 2.0.1 25-40 ms to plan,
    doubling with each one."""
    cols = main_columns(con)
    present = [(t, c, k) for t, c, k in (*LOOKUP_HASHES, *DERIVED_LOOKUP_HASHES) if (t, c) in cols]
    if not present or not con.execute(" UNION ALL ".join(f"(SELECT 1 FROM {t} WHERE {c} IS NULL LIMIT 1)"
                                                         for t, c, _ in present)).fetchall():
        return
    for table, column, key in present:
        con.execute(f"UPDATE {table} SET {column} = stored_key_hash({key}) WHERE {column} IS NULL")


def connect(db: str | None = None, *, read_only: bool = False, memory_limit: str | None = None,
            untrusted: bool = False, allowed_directories: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) an mcptrace database; ``db=None`` is in memory.

    DuckDB runs ``MCPTRACE_THREADS`` worker threads when that is set (:func:`threads_setting`).
    A file-backed database gets DuckDB's ``memory_limit`` (``memory_limit``, else the
    ``MCPTRACE_MEMORY_LIMIT`` environment variable, else :data:`DEFAULT_MEMORY_LIMIT`; DuckDB
    size syntax such as ``"2GiB"``); work beyond it spills to the ``<db>.tmp`` directory. An
    in-memory database keeps DuckDB's default (its data has nowhere else to live).

    ``untrusted``: the settings of :data:`UNTRUSTED_CONFIG`, locked; ``allowed_directories`` are
    the only directories DuckDB may then read or write (an export's output directory). Queries
    that reach for anything else raise ``duckdb.PermissionException``.
    """
    # enable_external_access is turned off after the allowed directories are set (DuckDB takes
    # them only from a started database, and only while access is still on); nothing of the
    # database runs before that
    config = {k: v for k, v in UNTRUSTED_CONFIG.items() if k != "enable_external_access"} if untrusted else {}
    threads = threads_setting()  # a bad value is refused before the database file is created
    con = duckdb.connect(db or ":memory:", read_only=read_only, config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # a library prints nothing on stdout
    apply_threads(con, threads)
    in_memory = not db or db == ":memory:"
    limit = memory_limit or (None if in_memory else os.environ.get("MCPTRACE_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT)
    if limit:
        con.execute("SET memory_limit = ?", [limit])
    if untrusted:
        if allowed_directories:
            con.execute("SET allowed_directories = ?", [[os.path.abspath(d) for d in allowed_directories]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    install_macros(con)
    if not read_only:
        for stmt in statements("schema.sql"):
            con.execute(stmt)
        fill_lookup_hashes(con)
        # rows of a load that died before writing its `sources` row (loads commit batch by batch)
        for table in DATA_TABLES:
            con.execute(f"DELETE FROM {table} WHERE source_id NOT IN (SELECT source_id FROM sources)")
    return con


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the scalar macros of ``sql/macros.sql`` and ``sql/otlp_macros.sql`` on ``con``, and
    the redaction macros of the default policy (``mcptrace_redact``, ``mcptrace_secret_hit``; a load
    replaces them with its own policy's). Temporary macros: they live with the connection, never in
    the database file."""
    from mcptrace.core.redact import DEFAULT_REDACTION

    for name in ("macros.sql", "otlp_macros.sql"):
        for stmt in statements(name):
            con.execute(stmt)
    for stmt in DEFAULT_REDACTION.sql_macros():
        con.execute(stmt)


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB quoted identifier (``"`` doubled inside)."""
    return '"' + name.replace('"', '""') + '"'
