"""Read-only access for agents: result rows as capped JSON, and the ``sql`` tool's checked queries.

Nothing here needs the MCP SDK. :class:`SqlReader` runs an agent's SQL with defence in depth:

1. the connection: a connection of the served database's DuckDB instance, which
   :func:`mcptrace.workspace.open_untrusted` opened ``read_only`` with ``enable_external_access``
   off, no extension installed or loaded on its behalf, and ``lock_configuration`` on (checked by
   :func:`check_hardened` when the reader is made, refused otherwise). DuckDB itself then refuses
   to write, to read or write any file or URL (``read_csv``, ``read_text``, ``glob``, ``COPY``,
   ``ATTACH``, ``EXPORT``), to install or load an extension, and to change a setting back;
2. the statement: DuckDB's own parser (``extract_statements``) must find exactly one
   statement of type ``SELECT`` (``WITH … SELECT``, ``FROM …``, ``DESCRIBE``/``SUMMARIZE`` of a query
   included; ``INSERT``, ``PRAGMA``, ``SET``, ``CALL``, ``EXPLAIN`` … are other types);
3. what it reads: the statement's syntax tree (DuckDB's ``json_serialize_sql``) may name only the
   contract tables (:data:`mcptrace.core.db.TABLES`, in ``main`` of the served database),
   ``information_schema`` and its own CTEs (a CTE may not take the name of another table or view);
   of table functions only ``range``, ``generate_series`` and ``unnest``; no macro stored in the
   database file; no ``SHOW TABLES``-style listing;
4. the result: at most ``max_rows`` rows and ``max_bytes`` bytes of row JSON (``truncated`` says
   when a cap cut it), and a time limit: a timer interrupts the query (DuckDB has no statement
   timeout setting; ``Connection.interrupt`` stops it between vectors).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from mcptrace.core.db import TABLES
from mcptrace.core.errors import MCPTraceError, error_line

#: default caps of a tool's result (``mcptrace serve`` takes lower ones: ``--max-rows``, ``--max-bytes``)
MAX_ROWS = 1000
MAX_BYTES = 1_000_000
#: seconds an agent's query may run (``--sql-timeout``)
SQL_TIMEOUT_S = 10.0
#: table functions the ``sql`` tool allows (they read nothing but their arguments)
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
CONTRACT_TABLES = frozenset(TABLES)


class QueryRefused(MCPTraceError):
    """A query the ``sql`` tool does not run (what it is or what it reads); the message says why."""


@dataclass(frozen=True)
class Limits:
    """Caps of every tool result: rows, bytes of row JSON, seconds of an agent's query."""

    max_rows: int = MAX_ROWS
    max_bytes: int = MAX_BYTES
    timeout_s: float = SQL_TIMEOUT_S

    def rows(self, limit: int | None) -> int:
        """The row cap of one call: ``limit`` when given and lower than :attr:`max_rows`."""
        if limit is not None and limit < 1:
            raise MCPTraceError(f"limit must be at least 1, got {limit}")
        return self.max_rows if limit is None else min(limit, self.max_rows)


# -- JSON rows ---------------------------------------------------------------------------------

def json_value(v: Any) -> Any:
    """A DuckDB or Arrow value as JSON: timestamps ISO 8601 (UTC as ``Z``), decimals as numbers,
    non-finite floats, UUIDs and intervals as text, blobs as base64, lists and structs recursively."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            return v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return v.isoformat()
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v) if v.is_finite() else str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if isinstance(v, (uuid.UUID, dt.timedelta)):
        return str(v)
    return str(v)


def _parse_json(v: Any) -> Any:
    if not isinstance(v, str):
        return json_value(v)
    try:
        return json.loads(v)
    except ValueError:
        return v


def _unique(names: list[str]) -> list[str]:
    """Column names made unique (``a``, ``a_2``): rows are objects keyed by them."""
    out: list[str] = []
    seen: set[str] = set()
    for n in names:
        k, i = n, 1
        while k in seen:
            i += 1
            k = f"{n}_{i}"
        seen.add(k)
        out.append(k)
    return out


def capped_rows(names: list[str], types: list[str], rows: Iterable[tuple], *, max_rows: int, max_bytes: int,
                json_columns: Iterable[str] = ()) -> dict[str, Any]:
    """The tool result of ``rows``: ``{"columns": [{"name", "type"}], "rows": [{column: value}],
    "row_count", "truncated", "truncated_by": "rows" | "bytes" | None, "max_rows", "max_bytes"}``.

    Values go through :func:`json_value`; those of ``json_columns`` (and of columns typed ``JSON``)
    are parsed. At most ``max_rows`` rows and ``max_bytes`` bytes of row JSON (UTF-8, compact) are
    kept; the rows are consumed only as far as needed."""
    names = _unique(list(names))
    parse = [n in set(json_columns) or t == "JSON" for n, t in zip(names, types)]
    out: list[dict[str, Any]] = []
    size = 2
    truncated_by = None
    for row in rows:
        if len(out) >= max_rows:
            truncated_by = "rows"
            break
        obj = {n: (_parse_json(v) if p else json_value(v)) for n, p, v in zip(names, parse, row)}
        n = len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")) + 1
        if size + n > max_bytes:
            truncated_by = "bytes"
            break
        size += n
        out.append(obj)
    return {"columns": [{"name": n, "type": t} for n, t in zip(names, types)], "rows": out, "row_count": len(out),
            "truncated": truncated_by is not None, "truncated_by": truncated_by, "max_rows": max_rows,
            "max_bytes": max_bytes}


def arrow_type_name(t: pa.DataType) -> str:
    """The DuckDB name of an Arrow type (the ``type`` of a column in a tool result)."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"{arrow_type_name(t.value_type)}[]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{f.name} {arrow_type_name(f.type)}" for f in t) + ")"
    if pa.types.is_map(t):
        return f"MAP({arrow_type_name(t.key_type)}, {arrow_type_name(t.item_type)})"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    names = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.int16(): "SMALLINT", pa.int8(): "TINYINT",
             pa.uint64(): "UBIGINT", pa.uint32(): "UINTEGER", pa.float64(): "DOUBLE", pa.float32(): "FLOAT",
             pa.bool_(): "BOOLEAN", pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.date32(): "DATE",
             pa.binary(): "BLOB", pa.large_binary(): "BLOB", pa.null(): "NULL"}
    return names.get(t, str(t).upper())


def arrow_rows(table: pa.Table, *, max_rows: int, max_bytes: int, json_columns: Iterable[str] = ()) -> dict[str, Any]:
    """:func:`capped_rows` of an Arrow table (a :class:`mcptrace.Result`'s), converting only the rows kept."""
    json_columns = set(json_columns)
    types = ["JSON" if f.name in json_columns else arrow_type_name(f.type) for f in table.schema]

    maps = [pa.types.is_map(f.type) for f in table.schema]

    def rows() -> Iterator[tuple]:
        for batch in table.slice(0, max_rows + 1).to_batches(max_chunksize=256):
            cols = [[None if v is None else dict(v) for v in c.to_pylist()] if m else c.to_pylist()
                    for c, m in zip(batch.columns, maps)]
            yield from zip(*cols)

    return capped_rows(table.column_names, types, rows(), max_rows=max_rows, max_bytes=max_bytes,
                       json_columns=json_columns)


# -- the sql tool ------------------------------------------------------------------------------

def check_hardened(con: duckdb.DuckDBPyConnection) -> None:
    """Raise :class:`mcptrace.MCPTraceError` unless ``con``'s database is read-only, with external
    access off and the configuration locked (what the ``sql`` tool relies on)."""
    readonly = con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    ext, lock = con.execute("SELECT current_setting('enable_external_access'), "
                            "current_setting('lock_configuration')").fetchone()
    if not (readonly and readonly[0]) or ext or not lock:
        raise MCPTraceError("refusing to run agents' SQL on a connection that is not read-only with external access "
                            f"off and its configuration locked (read_only={bool(readonly and readonly[0])}, "
                            f"enable_external_access={ext}, lock_configuration={lock})")


class SqlReader:
    """The ``sql`` tool over one hardened connection (see the module docstring). Each query runs on
    a fresh cursor of ``con`` (no temporary objects of other connections, no state between queries),
    so readers in several threads do not wait for each other."""

    def __init__(self, con: duckdb.DuckDBPyConnection, limits: Limits = Limits()) -> None:
        check_hardened(con)
        self._con = con
        self.limits = limits
        self._catalog = con.execute("SELECT current_database()").fetchone()[0].lower()
        #: every table and view name DuckDB knows (the database's, the system's): a CTE may not take one
        self._relations = {r[0] for r in con.execute(
            "SELECT lower(table_name) FROM duckdb_tables() UNION SELECT lower(view_name) FROM duckdb_views()").fetchall()}
        #: macros stored in the database file: refused by name
        self._stored_functions = {r[0] for r in con.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE NOT internal").fetchall()}

    # -- what a query is and what it reads
    def check(self, query: str) -> None:
        """Raise :class:`QueryRefused` unless ``query`` is one ``SELECT`` reading only what the tool allows."""
        cur = self._con.cursor()
        try:
            self._check(cur, query)
        finally:
            cur.close()

    def _check(self, cur: duckdb.DuckDBPyConnection, query: str) -> None:
        try:
            statements = cur.extract_statements(query)
        except duckdb.Error as e:
            raise QueryRefused(f"not valid SQL: {error_line(e)}") from None
        if len(statements) != 1:
            raise QueryRefused(f"exactly one statement is allowed, got {len(statements)}")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise QueryRefused(f"only a SELECT (or WITH … SELECT) is allowed, not {kind.name} "
                               "(the database is served read-only)")
        tree = json.loads(cur.execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchone()[0])
        if tree.get("error"):
            raise QueryRefused(f"cannot check this statement: {tree.get('error_message')}")
        self._walk(tree.get("statements"), frozenset())

    def _walk(self, node: Any, ctes: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                self._walk(item, ctes)
            return
        if not isinstance(node, dict):
            return
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict) and cte_map.get("map"):
            names = {str(e.get("key", "")).lower() for e in cte_map["map"]}
            taken = sorted(n for n in names if n in self._relations and n not in CONTRACT_TABLES)
            if taken:
                raise QueryRefused(f"a CTE may not take the name of a table or view of the database: {', '.join(taken)}")
            ctes = ctes | names
        kind = node.get("type")
        if kind == "BASE_TABLE" and "table_name" in node:
            self._check_table(node, ctes)
        elif kind == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            name = str(node["function"].get("function_name", "")).lower()
            if name not in TABLE_FUNCTIONS or name in self._stored_functions or node["function"].get("schema"):
                raise QueryRefused(f"table function {name}() is not allowed: the sql tool reads the contract tables "
                                   f"only (table functions allowed: {', '.join(sorted(TABLE_FUNCTIONS))})")
        elif kind == "SHOW_REF" and node.get("table_name"):
            raise QueryRefused("SHOW is not allowed; list tables and columns with information_schema.tables / "
                               "information_schema.columns")
        elif node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in self._stored_functions:
            raise QueryRefused(f"{node['function_name']}() is a macro stored in the database, not allowed")
        for value in node.values():
            if isinstance(value, (dict, list)):
                self._walk(value, ctes)

    def _check_table(self, node: dict, ctes: frozenset[str]) -> None:
        catalog = str(node.get("catalog_name") or "").lower()
        schema = str(node.get("schema_name") or "").lower()
        name = str(node["table_name"]).lower()
        if catalog in ("", self._catalog):
            if schema == "information_schema":
                return
            if schema in ("", "main") and name in CONTRACT_TABLES:
                return
        if not catalog and not schema and name in ctes:
            return
        shown = ".".join(p for p in (catalog, schema, str(node["table_name"])) if p)
        raise QueryRefused(f"{shown!r} is not a contract table: the sql tool reads only {', '.join(TABLES)} "
                           "(and information_schema)")

    # -- running one
    def run(self, query: str, limit: int | None = None) -> dict[str, Any]:
        """Check and run ``query``; its rows as :func:`capped_rows` gives them, plus ``elapsed_ms``.
        Raises :class:`QueryRefused` or :class:`mcptrace.MCPTraceError` (DuckDB's error, the time limit)."""
        max_rows = self.limits.rows(limit)
        cur = self._con.cursor()
        try:
            self._check(cur, query)
        except BaseException:
            cur.close()
            raise
        done = threading.Event()
        guard = threading.Lock()
        timed_out = threading.Event()

        def stop() -> None:
            with guard:
                if not done.is_set():
                    timed_out.set()
                    cur.interrupt()

        timer = threading.Timer(self.limits.timeout_s, stop)
        started = dt.datetime.now(dt.UTC)
        timer.start()
        try:
            res = cur.execute(query)
            names = [d[0] for d in res.description]
            types = [str(d[1]) for d in res.description]

            def fetched() -> Iterator[tuple]:
                while batch := res.fetchmany(256):
                    yield from batch

            out = capped_rows(names, types, fetched(), max_rows=max_rows, max_bytes=self.limits.max_bytes)
        except duckdb.Error as e:
            if timed_out.is_set():
                raise MCPTraceError(f"the query was stopped after {self.limits.timeout_s:g} s (the sql tool's time "
                                    "limit, mcptrace serve --sql-timeout)") from None
            raise MCPTraceError(error_line(e)) from None
        finally:
            with guard:
                done.set()
            timer.cancel()
            cur.close()
        out["elapsed_ms"] = (dt.datetime.now(dt.UTC) - started).total_seconds() * 1000.0
        return out
