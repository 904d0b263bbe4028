"""Small DuckDB helpers."""

from __future__ import annotations

from typing import Any

import duckdb


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> tuple | None:
    """The first row of a query, or None; the result is consumed so the connection is free again."""
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    return rows[0] if rows else None
