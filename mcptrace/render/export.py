"""Writing figures to HTML, PNG and SVG.

PNG and SVG go through kaleido (v1), which drives a system Chromium/Chrome found on the
PATH or at ``/usr/bin/chromium`` (Debian package ``chromium``); ``BROWSER_PATH`` overrides.
One browser process serves every image a process writes (kaleido's sync server).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import defaultdict

import duckdb
import plotly.graph_objects as go

from mcptrace.analysis.lanes import call_lanes
from mcptrace.core.dataset import DAY_COLUMN, MANIFEST, sql_literal
from mcptrace.core.db import TABLES, quote_ident
from mcptrace.core.errors import MCPTraceError, NotFoundError

FORMATS = {".html": "html", ".htm": "html", ".png": "png", ".svg": "svg"}

_server_started = False


def _browser() -> None:
    """Keep one Chromium process (kaleido's sync server) for every image this process writes."""
    global _server_started
    if not _server_started:
        import atexit

        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
        atexit.register(kaleido.stop_sync_server, silence_warnings=True)
        _server_started = True


def _require_browser(path: str) -> None:
    """Raise :class:`mcptrace.MCPTraceError` when kaleido would find no Chromium/Chrome to drive
    (the lookup kaleido itself uses: ``BROWSER_PATH``, the PATH, the usual install locations)."""
    from choreographer.browsers.chromium import Chromium

    found = Chromium.find_browser(skip_local=False)
    if not found or not os.path.isfile(found):
        raise MCPTraceError(f"{path}: PNG/SVG export needs Chromium or Chrome: apt-get install chromium "
                            "(or set BROWSER_PATH)")


def write_figure(fig: go.Figure, path: str | os.PathLike, *, include_plotlyjs: bool | str = True,
                 width: int = 1400, height: int | None = None, scale: float = 1.0) -> str:
    """Write ``fig`` to ``path``; the format follows the extension (.html, .png, .svg).

    HTML is self-contained by default (``include_plotlyjs=True``; ``"cdn"`` links instead).
    Raises :class:`mcptrace.MCPTraceError` for an unknown extension or when no browser is
    available for PNG/SVG.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise MCPTraceError(f"{path}: unknown output format {ext or '(none)'}; use .html, .png or .svg")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == "html":
        fig.write_html(path, include_plotlyjs=include_plotlyjs, full_html=True)
        return path
    _require_browser(path)
    _browser()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The kopts argument is ignored")
        fig.write_image(path, format=fmt, width=width, height=height or fig.layout.height or 600, scale=scale)
    return path


# -- Chrome Trace Event Format -----------------------------------------------------------

def chrome_trace(con: duckdb.DuckDBPyConnection, session_id: str) -> dict:
    """A session as Chrome Trace Event Format JSON (opens in the Perfetto UI and chrome://tracing).

    Shape (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU):
    process 1 "MCP calls (wire)" holds each call as an async begin/end pair (``ph`` ``b``/``e``,
    ``id`` = call_id, one track per lane of concurrent calls); each service of the spans is
    a process, with spans as complete events (``ph`` ``X``) on tracks where they nest; a flow (``ph`` ``s``/``f``) joins each call's client span to its server span.
    Timestamps are microseconds since the Unix epoch (UTC). Gap markers are instant events.
    Raises :class:`mcptrace.NotFoundError` (a ``KeyError``) for an unknown session.
    """
    def rows(sql: str, params: list) -> list[tuple]:
        return con.execute(sql, params).fetchall()

    calls = rows("SELECT call_id, coalesce(tool_name, method), rpc_id, status, trace_id, start_ts, end_ts, "
                   "epoch_us(start_ts), epoch_us(end_ts) FROM calls WHERE session_id = ? AND start_ts IS NOT NULL "
                   "ORDER BY start_ord", [session_id])
    if not calls and not rows("SELECT 1 FROM sessions WHERE session_id = ?", [session_id]):
        raise NotFoundError("session", session_id)
    end_us = max([c[8] for c in calls if c[8] is not None] + [c[7] for c in calls] + [0])
    lane_of = dict(call_lanes(con, session_id).rows())
    lanes = [lane_of[c[0]] for c in calls]
    events: list[dict] = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "MCP calls (wire)"}},
                          {"ph": "M", "pid": 1, "name": "process_sort_index", "args": {"sort_index": 0}}]
    for c, lane in zip(calls, lanes):
        args = {"call_id": c[0], "jsonrpc_id": c[2], "status": c[3], "trace_id": c[4]}
        events.append({"ph": "b", "cat": "call", "name": c[1], "id": c[0], "pid": 1, "tid": lane, "ts": c[7], "args": args})
        events.append({"ph": "e", "cat": "call", "name": c[1], "id": c[0], "pid": 1, "tid": lane,
                       "ts": c[8] if c[8] is not None else end_us})
    spans = rows("""
        SELECT DISTINCT s.trace_id, s.span_id, s.parent_span_id, s.name, coalesce(s.service_name, '(unknown service)'),
               s.kind, s.start_unix_nano // 1000, (s.end_unix_nano - s.start_unix_nano) / 1000.0
        FROM spans s WHERE s.trace_id IN (SELECT trace_id FROM calls WHERE session_id = ?
                                          UNION SELECT cs.trace_id FROM call_spans cs JOIN calls c USING (call_id)
                                                WHERE c.session_id = ?)
        ORDER BY 7""", [session_id, session_id])
    # Tracks: slices on one thread must nest. Spans (in start order) go on their parent's track
    # when they fit inside the slice open there, else on the first track of their service where
    # they fit, else on a new one, so parallel calls get tracks of their own.
    pids: dict[str, int] = {}
    tracks: dict[str, list[list[float]]] = defaultdict(list)  # service -> per-track stack of open ends
    track: dict[tuple, int] = {}

    def fits(stack: list[float], start: float, end: float) -> bool:
        while stack and stack[-1] <= start:
            stack.pop()
        return not stack or end <= stack[-1]

    for trace, span, parent, _n, svc, _k, ts, dur in spans:
        end = ts + (dur or 0)
        stacks = tracks[svc]
        preferred = track.get((trace, parent)) if parent else None
        order = ([preferred] if preferred is not None and preferred < len(stacks) else []) + list(range(len(stacks)))
        chosen = next((i for i in order if fits(stacks[i], ts, end)), None)
        if chosen is None:
            stacks.append([])
            chosen = len(stacks) - 1
        stacks[chosen].append(end)
        track[(trace, span)] = chosen
    where: dict[tuple, tuple] = {}
    for trace, span, parent, name, svc, kind, ts, dur in spans:
        pid = pids.setdefault(svc, len(pids) + 2)
        tid = track[(trace, span)] + 1
        where[(trace, span)] = (pid, tid, ts)
        events.append({"ph": "X", "cat": kind, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur,
                       "args": {"trace_id": trace, "span_id": span, "parent_span_id": parent}})
    for svc, pid in pids.items():
        events.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": svc}})
    pairs = rows("""SELECT c.call_id, cl.trace_id, cl.span_id, sv.trace_id, sv.span_id
                      FROM calls c JOIN call_spans cl ON cl.call_id = c.call_id AND cl.role = 'client'
                      JOIN call_spans sv ON sv.call_id = c.call_id AND sv.role = 'server'
                      WHERE c.session_id = ?""", [session_id])
    for call_id, ct, cspan, st, sspan in pairs:
        a, b = where.get((ct, cspan)), where.get((st, sspan))
        if a and b:
            events.append({"ph": "s", "cat": "mcp", "name": "request", "id": call_id, "pid": a[0], "tid": a[1], "ts": a[2]})
            events.append({"ph": "f", "bp": "e", "cat": "mcp", "name": "request", "id": call_id, "pid": b[0],
                           "tid": b[1], "ts": b[2]})
    for code, call_id, ts in rows("SELECT code, call_id, epoch_us(ts) FROM gaps WHERE session_id = ? AND ts IS NOT NULL",
                                    [session_id]):
        events.append({"ph": "i", "s": "t", "cat": "gap", "name": code, "pid": 1, "tid": lane_of.get(call_id, 0), "ts": ts})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "metadata": {"source": "mcptrace", "session_id": session_id}}


def write_chrome_trace(con: duckdb.DuckDBPyConnection, session_id: str, path: str | os.PathLike) -> str:
    """Write :func:`chrome_trace` of a session to ``path`` (JSON)."""

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(chrome_trace(con, session_id), f)
    return path


#: A CSV cell starting with one of these is taken for a formula by spreadsheet tools (OWASP, CSV
#: injection): ``=HYPERLINK(...)`` in a tool name would run when the export is opened.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(text: str | None) -> str | None:
    """``text`` with a ``'`` in front when it starts like a spreadsheet formula (:data:`FORMULA_START`),
    as OWASP recommends; the spreadsheet shows the text and evaluates nothing. Other text unchanged."""
    return "'" + text if isinstance(text, str) and text.startswith(FORMULA_START) else text


def _neutralise_arrow(data):
    """An Arrow table with :func:`neutralise_formulas` applied to every string column, vectorised."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for col in data.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            hit = pc.match_substring_regex(col, "^[=+\\-@\t\r]")
            col = pc.if_else(pc.fill_null(hit, False), pc.binary_join_element_wise("'", col, ""), col)
        cols.append(col)
    return pa.table(cols, names=data.column_names)


def write_table(con: duckdb.DuckDBPyConnection, table: str, path: str | os.PathLike, *,
                csv_formulas: bool = False) -> str:
    """Write one of :data:`TABLES` to Parquet (``.parquet``) or CSV (``.csv``), by extension.

    CSV text cells that start like a spreadsheet formula get a leading ``'``
    (:func:`neutralise_formulas`) unless ``csv_formulas=True`` (the text exactly as stored). Parquet
    is written as stored. Raises :class:`mcptrace.NotFoundError` for an unknown table,
    :class:`mcptrace.MCPTraceError` for an unknown extension.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if table not in TABLES:
        raise NotFoundError("table", table, known=", ".join(TABLES))
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if ext == ".parquet":
        pq.write_table(con.sql(f'SELECT * FROM "{table}"').to_arrow_table(), path)  # table is one of TABLES
    elif ext == ".csv":
        # JSON columns are text already; a list (findings.gap_ids) is written as its JSON text
        lists = [name for name, dtype, *_ in con.execute(f'DESCRIBE SELECT * FROM "{table}"').fetchall()
                 if dtype.endswith("[]")]
        replace = f" REPLACE ({', '.join(f'to_json({quote_ident(c)})::VARCHAR AS {quote_ident(c)}' for c in lists)})" \
            if lists else ""
        data = con.sql(f'SELECT *{replace} FROM "{table}"').to_arrow_table()
        pacsv.write_csv(data if csv_formulas else _neutralise_arrow(data), path)
    else:
        raise MCPTraceError(f"{path}: unknown table format {ext or '(none)'}; use .parquet or .csv")
    return path


#: extensions :func:`write_frame` writes
FRAME_FORMATS = (".csv", ".parquet", ".json")


def write_frame(df, path: str | os.PathLike, *, csv_formulas: bool = False) -> str:
    """Write a pandas DataFrame (e.g. :func:`mcptrace.analysis.tree.tree`) to ``.csv``, ``.parquet``
    or ``.json`` (records, ISO dates), by extension; CSV text cells as :func:`write_table` writes
    them (``csv_formulas``). Raises :class:`mcptrace.MCPTraceError` for another extension."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FRAME_FORMATS:
        raise MCPTraceError(f"{path}: unknown table format {ext or '(none)'}; use .csv, .parquet or .json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if ext == ".csv":
        if not csv_formulas:
            import pandas as pd

            df = df.copy()
            for name in df.columns:
                if df[name].dtype == object or pd.api.types.is_string_dtype(df[name].dtype):
                    df[name] = df[name].map(neutralise_formulas)
        df.to_csv(path, index=False)
    elif ext == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", date_format="iso", indent=1)
    return path


# -- Parquet datasets ----------------------------------------------------------------------

def write_dataset(con: duckdb.DuckDBPyConnection, directory: str | os.PathLike) -> dict[str, str]:
    """Write every table to ``directory/<table>/`` as a Hive-partitioned Parquet dataset.

    Tables with a ``source_id`` and a time column are partitioned by ``source_id`` and ``day``
    (UTC date of ``ts``/``start_ts``/``first_ts``, as ``YYYY-MM-DD``, ``unknown`` without one);
    calls, sessions and gaps by ``day``; the rest are single files, and so is a partitioned table
    without rows (``<table>/data.parquet``, no rows, every column), so that any database, one
    without spans or without messages included, round-trips. Writes ``mcptrace-dataset.json``
    at the top (the layout :func:`mcptrace.core.dataset.attach_dataset` reads). Returns {table: path}. Raises ``duckdb.IOException`` when the directory cannot
    be written.
    """
    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(directory, exist_ok=True)
    cols = {t: {c for (c,) in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                          [t]).fetchall()} for t in TABLES}
    out = {}
    for table in TABLES:
        path = os.path.join(directory, table)
        day = DAY_COLUMN.get(table)
        parts = [p for p in ("source_id",) if p in cols[table] and day]
        if day:
            parts.append("day")
            query = f'SELECT *, coalesce(strftime({day}, \'%Y-%m-%d\'), \'unknown\') AS day FROM "{table}"'
            empty_file = os.path.join(path, "data.parquet")
            if con.execute(f'SELECT NOT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]:
                # no rows, no partitions: one empty file keeps the table's columns readable
                os.makedirs(path, exist_ok=True)
                con.execute(f"COPY ({query} LIMIT 0) TO {sql_literal(empty_file)} (FORMAT PARQUET)")
            else:
                if os.path.isfile(empty_file):  # the empty table of an earlier export to this directory
                    os.remove(empty_file)
                con.execute(f"COPY ({query}) TO {sql_literal(path)} "
                            f"(FORMAT PARQUET, PARTITION_BY ({', '.join(parts)}), OVERWRITE_OR_IGNORE)")
        else:
            os.makedirs(path, exist_ok=True)
            con.execute(f'COPY (SELECT * FROM "{table}") TO {sql_literal(os.path.join(path, "data.parquet"))} '
                           "(FORMAT PARQUET)")
        out[table] = path
    with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as f:
        json.dump({"format": "mcptrace-dataset", "version": 1, "tables": list(TABLES),
                   "partitioned_by": {t: (["source_id", "day"] if t in ("messages", "spans") else ["day"])
                                      for t in DAY_COLUMN}}, f, indent=2)
    return out
