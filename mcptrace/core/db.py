"""The DuckDB connection of an mcptrace database: opening it, its macros, small query helpers."""

from __future__ import annotations

import os
import re
from typing import Any

import duckdb

from mcptrace.core.sqlfiles import statements

#: every contract table, in the order exports and datasets list them (README: Tables)
TABLES = ("sources", "rejects", "messages", "http_events", "calls", "sessions", "spans", "span_duplicates",
          "call_spans", "gaps")
#: tables holding a file's rows (removed together when its load fails)
DATA_TABLES = ("messages", "http_events", "spans", "span_duplicates", "rejects")
#: characters of a rejected record's text kept in ``rejects.raw``
RAW_LIMIT = 4096


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> tuple | None:
    """The first row of a query, or None; the result is consumed so the connection is free again."""
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    return rows[0] if rows else None


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def sql_params(sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The named parameters ``$name`` that ``sql`` uses, taken from ``params`` (DuckDB refuses extra
    ones); None when it uses none. A name is matched whole: ``$redact`` is not ``$redacted``."""
    used = set(_PARAM.findall(sql))
    return {n: v for n, v in params.items() if n in used} or None


#: DuckDB ``memory_limit`` of a file-backed database unless told otherwise (``MCPTRACE_MEMORY_LIMIT``
#: or ``memory_limit=``): loads and analyses then spill to ``<db>.tmp`` instead of growing.
DEFAULT_MEMORY_LIMIT = "1GiB"


def connect(db: str | None = None, *, read_only: bool = False,
            memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) an mcptrace database; ``db=None`` is in memory.

    A file-backed database gets DuckDB's ``memory_limit`` (``memory_limit``, else the
    ``MCPTRACE_MEMORY_LIMIT`` environment variable, else :data:`DEFAULT_MEMORY_LIMIT`; DuckDB
    size syntax such as ``"2GiB"``); work beyond it spills to the ``<db>.tmp`` directory. An
    in-memory database keeps DuckDB's default (its data has nowhere else to live).
    """
    con = duckdb.connect(db or ":memory:", read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # a library prints nothing on stdout
    in_memory = not db or db == ":memory:"
    limit = memory_limit or (None if in_memory else os.environ.get("MCPTRACE_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT)
    if limit:
        con.execute("SET memory_limit = ?", [limit])
    if not read_only:
        for stmt in statements("schema.sql"):
            con.execute(stmt)
        # rows of a load that died before writing its `sources` row (loads commit batch by batch)
        for table in DATA_TABLES:
            con.execute(f"DELETE FROM {table} WHERE source_id NOT IN (SELECT source_id FROM sources)")
    install_macros(con)
    return con


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the scalar macros of ``sql/macros.sql`` and ``sql/otlp_macros.sql`` on ``con``
    (temporary macros: they live with the connection, never in the database file)."""
    for name in ("macros.sql", "otlp_macros.sql"):
        for stmt in statements(name):
            con.execute(stmt)
