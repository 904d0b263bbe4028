"""Parquet datasets: the layout written by :func:`mcptrace.render.export.write_dataset`, attached without copying.

``mcptrace export --db FILE --parquet DIR`` writes ``DIR/<table>/source_id=<n>/day=<YYYY-MM-DD>/*.parquet``
(calls, sessions and gaps by day only; sources, rejects and call_spans as one file each) plus
``DIR/mcptrace-dataset.json`` naming the tables. Any Parquet engine reads it (pandas, polars,
Spark, DuckDB). :func:`attach_dataset` attaches a local directory or an object-store URL as views
over ``read_parquet(..., hive_partitioning = true)``: queries stream from the files, so analyses
of captures larger than memory run out of core.

Object-store URLs (``s3://``, ``gs://``, ``az://``, ``r2://``, ``https://`` ...) are read through
DuckDB's ``httpfs`` extension when it loads (credentials from DuckDB's secrets, e.g.
``CREATE SECRET (TYPE s3, PROVIDER credential_chain)`` run through ``setup_sql``), or else
through an fsspec filesystem registered with DuckDB (``pip install 'mcptrace[cloud]'`` for S3;
``storage_options`` go to ``fsspec.filesystem``, e.g. ``{"endpoint_url": ...}``).
"""

from __future__ import annotations

import os
import re
from glob import escape, iglob
from collections.abc import Sequence

import duckdb

from mcptrace.core.db import TABLES, apply_threads, install_macros, threads_setting
from mcptrace.core.errors import MCPTraceError, error_line
from mcptrace.core.sqlfiles import statements

MANIFEST = "mcptrace-dataset.json"
#: tables that datasets written by earlier versions lack: attached empty when absent
LATER_TABLES = ("http_events", "span_duplicates")
#: the time column each table is partitioned by (day, UTC), besides source_id where it has one
DAY_COLUMN = {"messages": "ts", "spans": "start_ts", "calls": "start_ts", "gaps": "ts", "sessions": "first_ts"}
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.I)
#: fsspec protocol for a URL scheme where the two differ
_FSSPEC_PROTOCOL = {"s3a": "s3", "gcs": "gs", "abfss": "abfs", "r2": "s3"}


def sql_literal(text: str) -> str:
    """A SQL string literal (COPY and views take no parameters for their paths)."""
    return "'" + text.replace("'", "''") + "'"


def is_url(location: str | os.PathLike) -> bool:
    """True when ``location`` is a URL other than ``file://``."""
    m = _URL.match(os.fspath(location))
    return bool(m) and m.group(1).lower() != "file"


def is_dataset(location: str | os.PathLike) -> bool:
    """True for an object-store URL or a local directory written by :func:`mcptrace.render.export.write_dataset`."""
    location = os.fspath(location)
    if is_url(location):
        return True
    if not os.path.isdir(location):
        return False
    if os.path.exists(os.path.join(location, MANIFEST)):
        return True
    # a dataset written before the manifest existed: Parquet files under messages/ (a folder of
    # captures that happens to have a messages/ subfolder is not one)
    return next(iglob(os.path.join(escape(location), "messages", "**", "*.parquet"), recursive=True), None) is not None


def _schema_ddl(table: str) -> str | None:
    """The ``CREATE TABLE`` statement of a load table in ``sql/schema.sql``, None for the others."""
    return next((st for st in statements("schema.sql") if f"TABLE IF NOT EXISTS {table} " in st), None)


def _object_store(con: duckdb.DuckDBPyConnection, url: str, storage_options: dict | None) -> str:
    """Make ``url`` readable by ``con``: DuckDB's httpfs, else fsspec. Returns which one."""
    scheme = _URL.match(url).group(1).lower()
    problems = []
    if storage_options is None:
        try:
            con.execute("LOAD httpfs")
            return "httpfs"
        except duckdb.Error as e:
            problems.append(f"DuckDB's httpfs extension is not installed ({error_line(e)})")
    try:
        import fsspec

        fs = fsspec.filesystem(_FSSPEC_PROTOCOL.get(scheme, scheme), **(storage_options or {}))
    except ImportError as e:
        hint = "; pip install 'mcptrace[cloud]'" if _FSSPEC_PROTOCOL.get(scheme, scheme) == "s3" else ""
        problems.append(f"no fsspec filesystem for {scheme}:// ({e}{hint})")
    except ValueError as e:
        problems.append(f"fsspec does not know {scheme}:// ({e})")
    else:
        con.register_filesystem(fs)
        return "fsspec"
    if storage_options is None:
        try:
            con.execute("INSTALL httpfs")
            con.execute("LOAD httpfs")
            return "httpfs"
        except duckdb.Error as e:
            problems.append(f"INSTALL httpfs failed ({error_line(e)})")
    raise MCPTraceError(f"{url}: cannot read {scheme}:// URLs: " + "; ".join(problems))


def attach_dataset(location: str | os.PathLike, *, storage_options: dict | None = None,
                   setup_sql: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
    """Attach a dataset written by :func:`mcptrace.render.export.write_dataset` as views, without copying it.

    ``location``: a local directory or an object-store URL (see the module docs for how URLs
    are read; ``storage_options`` force the fsspec route, ``setup_sql`` statements run first,
    e.g. a DuckDB ``CREATE SECRET``). Returns an in-memory DuckDB connection whose tables are views on ``read_parquet(<location>/<table>/**/*.parquet,
    hive_partitioning = true)``; queries, timelines and trees run out of core. The ``day``
    partition column is dropped from the views; a load table (``sql/schema.sql``) without files is
    attached as an empty table. Raises :class:`mcptrace.MCPTraceError` for a location holding no
    readable ``messages`` table (a local dataset with its manifest may hold none) or no readable
    calls, sessions, gaps or call_spans;
    :func:`mcptrace.open` wraps the connection in a read-only Workspace.
    """
    location = os.fspath(location)
    url = is_url(location)
    base = location.rstrip("/") if url else os.path.abspath(location)
    if not url and not os.path.isdir(base):
        raise MCPTraceError(f"{location}: no such directory")
    threads = threads_setting()
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    apply_threads(con, threads)
    for stmt in setup_sql:
        con.execute(stmt)
    if url:
        _object_store(con, base, storage_options)
    install_macros(con)
    manifest = not url and os.path.isfile(os.path.join(base, MANIFEST))
    for table in TABLES:
        if url:
            files = sql_literal(f"{base}/{table}/**/*.parquet")
        else:  # listed here: DuckDB's glob would read [ ] * ? in the directory's own name as patterns
            found = sorted(iglob(os.path.join(escape(base), table, "**", "*.parquet"), recursive=True))
            files = "[" + ", ".join(sql_literal(f) for f in found) + "]" if found else sql_literal(f"{base}/{table}/*.parquet")
        src = f"read_parquet({files}, hive_partitioning = true, union_by_name = true)"
        exclude = " EXCLUDE (day)" if table in DAY_COLUMN else ""
        try:
            con.execute(f'CREATE VIEW "{table}" AS SELECT *{exclude} FROM {src}')
        except duckdb.Error as e:
            no_files = not found if not url else "no files found" in str(e).lower()
            # an empty load table (a dataset written before empty tables got a file: no spans, say)
            # is attached empty; without a manifest, the messages are what makes a dataset
            if table == "findings" and (url or not found):
                continue  # a dataset written before findings existed: the workspace builds them from its gaps
            ddl = _schema_ddl(table)
            if ddl is not None and (table in LATER_TABLES and (url or not found)
                                    or no_files and (table != "messages" or manifest)):
                con.execute(ddl)
                continue
            con.close()
            raise MCPTraceError(f"{location}: not an mcptrace dataset: {table} cannot be read "
                                f"({error_line(e)})") from e
    return con
