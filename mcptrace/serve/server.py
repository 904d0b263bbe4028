"""``mcptrace serve --db DB``: the workspace as a read-only MCP server (the official SDK's ``MCPServer``).

Tools return structured JSON (rows capped in number and bytes, with ``truncated``); resources give the
HTML report and a session's timeline PNG. The database is opened by
:func:`mcptrace.workspace.open_untrusted` and held read-only with DuckDB's file and network access
off and its configuration locked; the ``sql`` tool runs through :class:`mcptrace.serve.readonly.SqlReader`
on a connection of its own. Transports: stdio (the default) and Streamable HTTP on loopback
(``--allow-remote`` for another address).
"""

import json
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import duckdb

from mcptrace.core.errors import MCPTraceError, MissingDependencyError, error_line
from mcptrace.core.gapcodes import GAP_CODES
from mcptrace.serve import DEFAULT_PORT
from mcptrace.serve.readonly import Limits, SqlReader, arrow_rows
from mcptrace.workspace import Workspace, open_untrusted

try:
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import (
        ResourceError,
        ResourceNotFoundError,
        ToolError,
    )
    from mcp_types import ToolAnnotations
    from pydantic import BaseModel, Field
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("mcp>=2.3 (the MCP Python SDK)", "serve", f"({_exc})") from _exc

DEFAULT_LIMITS = Limits()
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class Column(BaseModel):
    name: str
    type: str = Field(description="DuckDB type, e.g. VARCHAR, BIGINT, DOUBLE, TIMESTAMP WITH TIME ZONE, JSON, VARCHAR[]")


class Rows(BaseModel):
    """Rows of a table, capped."""

    columns: list[Column]
    rows: list[dict[str, Any]] = Field(description="one object per row, keyed by column name")
    row_count: int = Field(description="rows returned")
    truncated: bool = Field(description="true when a cap cut the result: more rows exist")
    truncated_by: Literal["rows", "bytes"] | None = Field(description="which cap cut it")
    max_rows: int
    max_bytes: int = Field(description="cap on the rows' JSON, in bytes")


class SqlRows(Rows):
    elapsed_ms: float = Field(description="milliseconds the query took")


class DiffResult(BaseModel):
    a: dict[str, Any] = Field(description="the served database's side")
    b: dict[str, Any] = Field(description="the other database's side")
    definitions: list[dict[str, Any]]
    not_compared: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    coverage: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    counts: dict[str, int] = Field(description="each section's full length")
    truncated: bool = Field(description="true when a cap cut a section")


class TurnTree(BaseModel):
    session_id: str
    turn: str | None = Field(description="the turn key the tree is of (null: the whole session)")
    turns: Rows = Field(description="the session's turns, one row each")
    tree: Rows = Field(description="the tree's nodes, depth-first")


_ROWS_NOTE = ("Result: {columns: [{name, type}], rows: [{column: value}], row_count, truncated, truncated_by "
              "('rows' | 'bytes' | null), max_rows, max_bytes}; `truncated` is true when the server's row or byte cap "
              "(or `limit`) cut the result. Timestamps are UTC, ISO 8601 ending in Z (microseconds); duration_ms "
              "and other *_ms columns are milliseconds; JSON columns come as JSON values. Credentials in the data were "
              "redacted when it was loaded ([REDACTED]).")
Limit = Annotated[int | None, Field(ge=1, description="at most this many rows (the server's own cap still applies)")]
SessionId = Annotated[str, Field(description="a session_id from the sessions tool (s_ + 12 hex digits)")]


def open_served(db: str | os.PathLike) -> Workspace:
    """The database file ``db`` opened to be served, by :func:`mcptrace.workspace.open_untrusted`: read-only,
    DuckDB's file and network access off, configuration locked. Never written: a database of an older
    mcptrace, which would have to be upgraded first, is refused. Raises :class:`mcptrace.MCPTraceError` for
    a missing file, a directory, a file that is not a DuckDB database or one to upgrade, and
    ``duckdb.PermissionException`` when the database's own views reach outside it."""
    path = os.fspath(db)
    if os.path.isdir(path):
        raise MCPTraceError(f"{path}: a directory; mcptrace serve serves a DuckDB database file "
                            "(a Parquet dataset needs file access, which the served connection does not have)")
    if not os.path.isfile(path):
        raise MCPTraceError(f"{path}: no such database; create it with: mcptrace load PATH... --db {path}")
    try:
        ws = open_untrusted(path, upgrade=False)
    except duckdb.PermissionException:
        raise
    except duckdb.Error as e:
        raise MCPTraceError(f"{path}: cannot open: {error_line(e)}") from e
    if not ws.read_only:  # pragma: no cover - open_untrusted(upgrade=False) opens read-only or raises
        ws.close()
        raise MCPTraceError(f"{path}: could not be opened read-only")
    return ws


class Served:
    """What the server's tools and resources read: the workspace (one lock around its connection),
    the ``sql`` reader on a connection of its own, the caps, the directories ``diff`` may open."""

    def __init__(self, db: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                 allow_dirs: list[str | os.PathLike] | None = None) -> None:
        self.path = os.path.abspath(os.fspath(db))
        self.ws = open_served(self.path)
        self.limits = limits
        self.lock = threading.Lock()
        self.image_lock = threading.Lock()
        try:
            self.sql = SqlReader(self.ws.con.cursor(), limits)
        except BaseException:
            self.ws.close()
            raise
        self.allow_dirs = [os.path.realpath(os.fspath(d)) for d in allow_dirs or [os.path.dirname(self.path)]]
        missing = [d for d in self.allow_dirs if not os.path.isdir(d)]
        if missing:
            self.ws.close()
            raise MCPTraceError(f"--allow-dir {missing[0]}: no such directory")
        rows = self.ws.con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                   "WHERE data_type = 'JSON'").fetchall()
        self.json_columns: dict[str, set[str]] = {}
        for table, column in rows:
            self.json_columns.setdefault(table, set()).add(column)

    def rows(self, result, table: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A :class:`mcptrace.Result` as capped rows."""
        return arrow_rows(result.arrow(), max_rows=self.limits.rows(limit), max_bytes=self.limits.max_bytes,
                          json_columns=self.json_columns.get(table or "", ()))

    def other_database(self, other: str) -> str:
        """The real path of the database ``other`` names (relative: to the served database's directory),
        when it lies in an allowed directory and is a DuckDB database file; else MCPTraceError."""
        given = other if os.path.isabs(other) else os.path.join(os.path.dirname(self.path), other)
        real = os.path.realpath(given)
        if not any(os.path.commonpath([real, d]) == d for d in self.allow_dirs):
            raise MCPTraceError(f"{other}: outside the directories this server may open databases in "
                                f"({', '.join(self.allow_dirs)}; the operator adds some with --allow-dir)")
        if not os.path.isfile(real):
            raise MCPTraceError(f"{other}: no such database file")
        from mcptrace.analysis.compare import input_kind

        if input_kind(real) != "database":
            raise MCPTraceError(f"{other}: not a DuckDB database file (the diff tool compares mcptrace databases)")
        return real

    def diff(self, other: str) -> dict[str, Any]:
        """:meth:`mcptrace.Workspace.diff` of the served database against ``other`` (see
        :meth:`other_database`), opened like the served one, as a capped dict."""
        real = self.other_database(other)
        with self.lock:
            if real == os.path.realpath(self.path):
                d = self.ws.diff(self.ws)
            else:
                other_ws = open_served(real)
                try:
                    d = self.ws.diff(other_ws)
                finally:
                    other_ws.close()
        return capped_diff(d.to_dict(), self.limits.max_rows, self.limits.max_bytes)

    def require_session(self, session_id: str) -> None:
        if not self.ws.con.execute("SELECT 1 FROM sessions WHERE session_id = ?", [session_id]).fetchall():
            raise MCPTraceError(f"no session {session_id!r}; the sessions tool lists them")

    def close(self) -> None:
        self.ws.close()


#: the list sections of a diff (:meth:`mcptrace.analysis.compare.CaptureDiff.to_dict`), capped in this order
DIFF_SECTIONS = ("findings", "gaps", "definitions", "tools", "coverage", "not_compared")


def capped_diff(d: dict[str, Any], max_rows: int, max_bytes: int) -> dict[str, Any]:
    """A diff's dict with each list section cut to ``max_rows`` items and all of them together to about
    ``max_bytes`` of JSON (sections in :data:`DIFF_SECTIONS` order keep their first items); ``counts``
    gives each section's full length and ``truncated`` whether anything was cut."""
    out = {k: v for k, v in d.items() if k not in DIFF_SECTIONS}
    budget = max_bytes - len(json.dumps(out, ensure_ascii=False, default=str).encode("utf-8"))
    counts = {}
    truncated = False
    for name in DIFF_SECTIONS:
        items = d.get(name) or []
        counts[name] = len(items)
        kept = []
        for item in items[:max_rows]:
            n = len(json.dumps(item, ensure_ascii=False, default=str).encode("utf-8")) + 1
            if n > budget:
                break
            budget -= n
            kept.append(item)
        truncated = truncated or len(kept) < len(items)
        out[name] = kept
    out["counts"] = counts
    out["truncated"] = truncated
    return out


@contextmanager
def _as_tool_error():
    """Every failure of a tool becomes an MCP tool error (``isError``) with a clear message."""
    try:
        yield
    except ToolError:
        raise
    except MCPTraceError as e:
        raise ToolError(str(e)) from None
    except duckdb.Error as e:
        raise ToolError(error_line(e)) from None
    except (KeyError, ValueError) as e:
        raise ToolError(str(e.args[0]) if e.args else type(e).__name__) from None
    except Exception as e:  # noqa: BLE001 - never a crash of the server
        raise ToolError(f"{type(e).__name__}: {e}") from None


def build_server(served: Served) -> MCPServer:
    """The ``mcptrace`` MCP server over ``served``: its tools and resources."""
    from mcptrace import __version__

    mcp = MCPServer("mcptrace", version=__version__, log_level="WARNING", instructions=(
        "Read-only view of one mcptrace database: captured MCP JSON-RPC traffic and OpenTelemetry traces rebuilt "
        "into sessions, calls, turns, span joins, gaps (where correlation was lost) and findings (who lost it, "
        "with the remedy). Start with `findings`, then `sessions`, `calls`, `gaps`, `turn_tree` and `tool_stats`; "
        "`diff` compares with another database; `sql` runs one SELECT over the contract tables. Times are UTC (ISO 8601), durations milliseconds; results are capped "
        "(`truncated`). Resources: mcptrace://report (HTML report), "
        "mcptrace://sessions/{session_id}/timeline.png."))
    ws = served.ws

    def tool(description: str) -> Callable:
        return mcp.tool(description=description, annotations=READ_ONLY, structured_output=True)

    @tool("Logical sessions (host conversations), busiest first. Columns: session_id (s_ + 12 hex), session_key, "
          "session_key_source (the _meta key, Mcp-Client-Session-Id, trace, Mcp-Session-Id or connection: what "
          "grouped the calls), first_ts, last_ts, n_calls, n_transport_sessions, max_parallel (most calls in flight "
          "at once), n_gaps; extras n_tool_calls, n_errors, client_name, client_version, server_name, "
          "server_version. " + _ROWS_NOTE)
    def sessions(limit: Limit = None) -> Rows:
        with _as_tool_error(), served.lock:
            return served.rows(ws.sessions(), "sessions", limit)

    @tool("The calls (JSON-RPC requests paired with their responses) of one session, in wire order. Columns: "
          "call_id, session_id, connection_id, mcp_session_id, direction, rpc_id (JSON text), method, tool_name, "
          "start_ts, end_ts (null when unanswered), duration_ms, status (ok | error | tool_error | truncated | "
          "cancelled | unanswered), error_code, trace_id, parent_span_id (hex, from the W3C traceparent), call_key "
          "(the host's tool-call id), parallel_group (call_id of the first call of its group of parallel calls), "
          "request_message_id, response_message_id, turn_id, turn_source and further extras. " + _ROWS_NOTE)
    def calls(session_id: SessionId, limit: Limit = None) -> Rows:
        with _as_tool_error(), served.lock:
            served.require_session(session_id)
            return served.rows(ws.calls(session_id), "calls", limit)

    @tool("Where correlation was lost or is doubtful, in gap_id order, optionally of one gap code and/or session. "
          "Columns: gap_id, code, severity (error | warning | info), session_id, call_id, message_id, trace_id, "
          "span_id, ts, detail (JSON evidence: the keys compared and what was found). Codes: "
          + ", ".join(GAP_CODES) + ". " + _ROWS_NOTE)
    def gaps(code: Annotated[str | None, Field(description="only this gap code")] = None,
             session_id: Annotated[str | None, Field(description="only this session's gaps")] = None,
             limit: Limit = None) -> Rows:
        with _as_tool_error(), served.lock:
            if code is not None and code not in GAP_CODES:
                raise MCPTraceError(f"unknown gap code {code!r}; codes: {', '.join(GAP_CODES)}")
            if session_id is not None:
                served.require_session(session_id)
            return served.rows(ws.gaps(code, session_id), "gaps", limit)

    @tool("Findings: the gaps grouped by cause (gap code) and responsible party, ranked errors first, then warnings, "
          "then info, each by affected calls. Columns: finding_id (the rank), code, severity, party_kind (client | "
          "server | tool | downstream_service | transport | capture), party (clientInfo / serverInfo name and "
          "version, service.name, tool, downstream service), n_gaps, n_calls, n_sessions, share (affected out of "
          "eligible, 0-1, null when nothing is eligible), first_ts, last_ts, confidence (exact | inferred), summary "
          "(one sentence with the numbers), remedy (what to change), gap_ids (the gaps it covers); extras "
          "n_affected, n_eligible, unit, server, tool, downstream_service, example_call_id, example_session_id. "
          + _ROWS_NOTE)
    def findings(severity: Annotated[Literal["error", "warning", "info"] | None,
                                     Field(description="only findings of this severity")] = None,
                 limit: Limit = None) -> Rows:
        with _as_tool_error(), served.lock:
            return served.rows(ws.findings(severity), "findings", limit)

    @tool("The parallel-call tree of a session, or of one of its turns: `turns` lists the session's turns (columns "
          "turn (the key to pass back as `turn`), turn_id, name, first_ts, last_ts, duration_ms, n_calls, n_errors, "
          "n_cancelled, n_unanswered, n_gaps, gap_codes, gap_severity, tools, first_ord, last_ord, first_call_id); "
          "`tree` has one row per node, depth-first: node_id (session:…, turn:…, call:<id>, span:<trace>/<span>), "
          "parent_id, kind (session | turn | host | call | span), name, start_ts, end_ts, duration_ms, depth (0 = "
          "root), lane, gaps (gap codes on the node), status, call_id, trace_id, span_id, service_name, span_kind, "
          "role (client | server | host | downstream), matched_by, orphan (its parent span is not in the data). "
          "Without `turn` or `call_id` the tree is the whole session's. Both are capped like every result: "
          + _ROWS_NOTE)
    def turn_tree(session_id: SessionId,
                  turn: Annotated[str | None, Field(description="a turn key from `turns`")] = None,
                  call_id: Annotated[int | None, Field(description="the turn of this call (instead of `turn`)")] = None,
                  limit: Limit = None) -> TurnTree:
        import pyarrow as pa

        with _as_tool_error(), served.lock:
            served.require_session(session_id)
            tree = ws.tree(session_id, turn=turn, call_id=call_id)
            selected = turn
            if call_id is not None:
                from mcptrace.analysis.turns import turn_of

                selected = turn_of(ws.con, call_id)[1]
            turns = served.rows(ws.turns(session_id), None, limit)
            table = pa.Table.from_pandas(tree, preserve_index=False)
            nodes = arrow_rows(table, max_rows=served.limits.rows(limit), max_bytes=served.limits.max_bytes)
            return {"session_id": session_id, "turn": selected, "turns": turns, "tree": nodes}

    @tool("Per-tool statistics of the calls of `method` (default tools/call; null: every request method), one row "
          "per group of `by` (any of server, client, tool, session_id, method; default server, tool), most calls "
          "first. Columns: the `by` columns, then calls, ok, errors (JSON-RPC error responses), tool_errors "
          "(isError results), cancelled, unanswered, truncated (counts of calls), error_rate, tool_error_rate "
          "(shares of calls, 0-1), p50_ms, p95_ms, p99_ms, mean_ms, max_ms (request-to-response milliseconds of the "
          "answered calls), error_codes (text, e.g. '-32602×3'), error_code_counts (code: count), request_bytes, "
          "response_bytes, mean_request_bytes, mean_response_bytes (bytes of the stored, redacted JSON), first_seen, "
          "last_seen. " + _ROWS_NOTE)
    def tool_stats(by: Annotated[list[Literal["server", "client", "tool", "session_id", "method"]],
                                 Field(description="what to group by, in order")] = ["server", "tool"],  # noqa: B006
                   method: Annotated[str | None, Field(description="the request method (null: all)")] = "tools/call",
                   limit: Limit = None) -> Rows:
        with _as_tool_error(), served.lock:
            return served.rows(ws.tool_stats(by, method=method), None, limit)

    @tool("What changed from the served database's capture (a) to another mcptrace database (b): `other` is a "
          ".duckdb file in a directory the operator allowed (mcptrace serve --allow-dir; default the served "
          "database's directory), a path relative to that directory or absolute; it is opened read-only like the "
          "served one. Result: a, b (each: name, calls, tool_calls, sessions, gaps, first_ts, last_ts, servers and "
          "clients with the versions seen); definitions (tools, prompts, resources, templates added, removed or "
          "changed per server, with the changed members and an RFC 6902 patch); not_compared; tools (per server and "
          "tool: presence, and calls, answered, error_rate, tool_error_rate, failure_rate, p50_ms, p95_ms, p99_ms "
          "each as {a, b, change, change_pct}); coverage (per client and server: requests, tool_calls, "
          "trace_context_share, session_key_share, server_span_share, each {a, b, change, change_pct}); gaps (per "
          "code) and findings (per code and party): status appeared | disappeared | changed | same, a, b, change. "
          "Sections are capped to the row cap and together to the byte cap: counts gives each section's full "
          "length, truncated whether any was cut. Times UTC ISO 8601, durations milliseconds, rates 0-1.")
    def diff(other: Annotated[str, Field(description="the other database file, e.g. before.duckdb")]) -> DiffResult:
        with _as_tool_error():
            return served.diff(other)

    @tool("Run one read-only SQL query (a single SELECT, or WITH … SELECT; DESCRIBE/SUMMARIZE of a query too) over "
          "the contract tables: sources, rejects, messages, http_events, calls, sessions, spans, span_duplicates, "
          "call_spans, gaps, findings (and information_schema for their columns). Refused: any other statement "
          "(INSERT, UPDATE, DELETE, CREATE, DROP, COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET, EXPORT, CALL …), more "
          "than one statement, other tables and DuckDB internals, table functions but range/generate_series/unnest; "
          "the connection is read-only with file and network access off, so nothing outside the database can be "
          "read. Credentials in the tables were redacted when the captures were loaded. Results are capped in rows "
          "and bytes and the query in time. " + _ROWS_NOTE + " Also elapsed_ms.")
    def sql(query: Annotated[str, Field(description="one SELECT statement, e.g. SELECT tool_name, count(*) AS n, "
                                                     "avg(duration_ms) AS avg_ms FROM calls GROUP BY ALL")],
            limit: Limit = None) -> SqlRows:
        with _as_tool_error():
            return served.sql.run(query, limit)

    @mcp.resource("mcptrace://report", name="report", mime_type="text/html",
                  description="The self-contained HTML incident report of the database: summary, findings, sessions, "
                              "every gap with its evidence, coverage, timelines and waterfalls (plotly.js embedded).")
    def report() -> str:
        with tempfile.TemporaryDirectory(prefix="mcptrace-serve-") as tmp:
            path = os.path.join(tmp, "report.html")
            with _as_resource_error(), served.lock:
                ws.write_report(path)
            with open(path, encoding="utf-8") as f:
                return f.read()

    @mcp.resource("mcptrace://sessions/{session_id}/timeline.png", name="timeline", mime_type="image/png",
                  description="A session's timeline as a PNG (one lane per concurrent call, turns as bands, gaps "
                              "marked); session_id from the sessions tool. Drawn by a headless Chromium.")
    def timeline_png(session_id: str) -> bytes:
        from mcptrace.render.export import write_figure

        with tempfile.TemporaryDirectory(prefix="mcptrace-serve-") as tmp:
            path = os.path.join(tmp, "timeline.png")
            with _as_resource_error():
                with served.lock:
                    if not ws.con.execute("SELECT 1 FROM sessions WHERE session_id = ?", [session_id]).fetchall():
                        raise ResourceNotFoundError(f"no session {session_id!r}; the sessions tool lists them")
                    fig = ws.timeline(session_id)
                with served.image_lock:
                    write_figure(fig, path)
            with open(path, "rb") as f:
                return f.read()

    return mcp


@contextmanager
def _as_resource_error():
    try:
        yield
    except ResourceError:
        raise
    except (MCPTraceError, duckdb.Error) as e:
        raise ResourceError(error_line(e)) from None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def run(db: str | os.PathLike, *, transport: Literal["stdio", "http"] = "stdio", host: str = "127.0.0.1",
        port: int = DEFAULT_PORT, limits: Limits = DEFAULT_LIMITS, allow_dirs: list[str] | None = None,
        out=None) -> int:
    """Serve ``db`` until the client goes away (stdio) or the process is interrupted (HTTP). For HTTP,
    the URL (``http://HOST:PORT/mcp``) is printed to ``out`` (stdout) once the socket listens; stdio
    prints only to stderr (stdout is the wire). Returns the exit code."""
    served = Served(db, limits, allow_dirs)
    try:
        server = build_server(served)
        if transport == "stdio":
            print(f"mcptrace serve: {served.path} (read-only) over stdio", file=sys.stderr, flush=True)
            anyio.run(server.run_stdio_async)
            return 0
        import uvicorn

        sock = _listen(host, port)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        app = server.streamable_http_app(host=host)
        print(f"mcptrace serve: http://{shown}:{bound}/mcp  ({served.path}, read-only; Ctrl-C to stop)",
              file=out or sys.stdout, flush=True)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)
        uvicorn.Server(config).run(sockets=[sock])
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        served.close()
