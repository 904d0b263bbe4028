"""Small DuckDB helpers."""

from __future__ import annotations

import re
from typing import Any

import duckdb


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
