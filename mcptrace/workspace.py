"""The Workspace: an mcptrace DuckDB database and the verbs over it (the library's facade).

Every verb delegates to a lower layer with the workspace's DuckDB connection: loading to
:mod:`mcptrace.ingest`, the rebuild and queries to :mod:`mcptrace.analysis`, charts and files to
:mod:`mcptrace.render`, the notebook explorer to :mod:`mcptrace.explorer` (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from mcptrace.analysis import queries
from mcptrace.analysis.compare import CaptureDiff, compare, input_kind, same_location
from mcptrace.analysis.findings import build as build_findings
from mcptrace.analysis.incremental import UpdateReport, update, watermark
from mcptrace.analysis.lanes import call_lanes
from mcptrace.analysis.rebuild import SKEW_TOLERANCE_MS, needs_rebuild, rebuild
from mcptrace.analysis.skew import adjust_clock_skew
from mcptrace.analysis.toolstats import tool_stats
from mcptrace.analysis.tree import tree
from mcptrace.analysis.turns import turns
from mcptrace.core.dataset import attach_dataset, is_dataset
from mcptrace.core.db import connect, main_columns, one
from mcptrace.core.errors import MCPTraceError
from mcptrace.core.gapcodes import SEVERITIES
from mcptrace.core.conventions import SpanConventions
from mcptrace.core.keys import KeyConfig
from mcptrace.core.redact import DEFAULT_SECRET_KEYS
from mcptrace.core.result import Result
from mcptrace.core.result import query as run_query
from mcptrace.ingest.follow import CATCH_UP_BYTES, PART_BYTES, FollowedFile
from mcptrace.ingest.loader import FileReport, LoadReport, Loader
from mcptrace.ingest.options import ErrorMode, LoadOptions
from mcptrace.render import export, report
from mcptrace.render.coverage import coverage_figure
from mcptrace.render.timeline import timeline
from mcptrace.render.waterfall import waterfall


@dataclass
class FollowedPart:
    """One part of a followed file (:meth:`Workspace.follow`): its lines ``first_line``..``last_line``,
    the byte offset it ends at, what the loader did (:class:`mcptrace.ingest.loader.FileReport`) and what
    the analysis recomputed (:class:`mcptrace.analysis.incremental.UpdateReport`)."""

    path: str
    first_line: int
    last_line: int
    end_offset: int
    load: FileReport
    analysis: UpdateReport


class Workspace:
    """An mcptrace database (DuckDB file or in memory) with its tables rebuilt.

    Tables (README: Tables): ``sources``, ``rejects``, ``messages``, ``calls``, ``sessions``,
    ``spans``, ``call_spans``, ``gaps``. Times are UTC ``TIMESTAMPTZ`` (microseconds),
    ``duration_ms`` DOUBLE milliseconds. Close it with :meth:`close` or use it as a context
    manager.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, path: str | None = None,
                 keys: KeyConfig | None = None, read_only: bool = False, _derive: bool = True) -> None:
        self.con = con
        self.path = path
        self.keys = keys or KeyConfig()
        self.read_only = read_only
        self.last_report: LoadReport | None = None
        # not when a load follows at once (mcptrace.load): it brings the tables up to date, then installs them
        self._installed = _derive
        if not read_only and _derive:
            _ensure_derived(con)
        if _derive:
            queries.install(con)

    # -- loading --------------------------------------------------------------------
    def load(self, paths: str | os.PathLike | Sequence[str | os.PathLike], *, errors: ErrorMode = "collect",
             format: str | None = None, redact: bool = True, secret_keys: str = DEFAULT_SECRET_KEYS,
             conventions: SpanConventions | None = None, options: LoadOptions | None = None) -> LoadReport:
        """Load more files (files or directories, recursively) and rebuild the analysis tables.

        A file whose sha256 is already in ``sources`` adds nothing. With ``errors="collect"``
        (default) bad records go to ``rejects``; with ``errors="raise"`` the first one raises
        :class:`mcptrace.RecordError` naming file, line and reason (that file is rolled back).
        Files that are not captures are reported in the returned :class:`LoadReport`.
        With ``redact=True`` (default) the values of credential headers and secret-looking keys
        (``secret_keys``, see :mod:`mcptrace.core.redact`) are replaced by ``"[REDACTED]"`` before
        anything is stored; the policy reaches every reader (HAR and inspector headers and URLs
        included). ``conventions`` (:class:`mcptrace.SpanConventions`, default: the instrumentations
        mcptrace knows) says which span attributes and names give an MCP call's method, tool,
        request id and session, and which spans are its server side. ``options``
        (:class:`mcptrace.ingest.options.LoadOptions`) replaces the keyword
        arguments and the workspace's keys when given. Raises :class:`mcptrace.MCPTraceError` on a
        read-only workspace (an attached Parquet dataset), ``ValueError`` for an unknown ``errors``.
        """
        if self.read_only:
            raise MCPTraceError(f"{self.path}: opened read-only (an attached Parquet dataset, or a database opened "
                                "to be read); load into a database with mcptrace.load(paths, db=FILE)")
        if options is None:
            options = LoadOptions.of(errors=errors, format=format, keys=self.keys, redact=redact,
                                     secret_keys=secret_keys, conventions=conventions)
        before = watermark(self.con)
        try:
            report = Loader(self.con, options).load(paths)
        finally:  # the files that loaded are analysed even when a bad record stops the load
            analysis = update(self.con, before)
            if not self._installed:
                queries.install(self.con)
                self._installed = True
        report.analysis = analysis
        self.last_report = report
        return report

    def follow(self, paths: str | os.PathLike | Sequence[str | os.PathLike], *, interval: float = 0.5,
               part_bytes: int = PART_BYTES, stop: threading.Event | None = None, idle_timeout: float | None = None,
               on_part: Callable[[FollowedPart], None] | None = None, options: LoadOptions | None = None
               ) -> list[FollowedPart]:
        """Follow captures still being written (``mcptrace capture --out FILE`` appends to FILE): load
        what each file has gained since the offset its ``sources`` row records, in parts of complete lines
        (at most about ``part_bytes``; after a part whose analysis ran in full, up to
        :data:`mcptrace.ingest.follow.CATCH_UP_BYTES`, as a rebuild costs the same whatever the part holds),
        each analysed on what it reaches (:mod:`mcptrace.analysis.incremental`), every ``interval`` seconds, until ``stop`` is set,
        nothing was written for ``idle_timeout`` seconds, or the process is interrupted (Ctrl-C ends the
        follow; the parts loaded stay). A file not written yet is waited for; a file loaded whole before is
        followed from its end. ``on_part`` is called after each part with its :class:`FollowedPart`.
        Returns the parts loaded. The tables then equal one load of the files as they are.

        Raises :class:`mcptrace.MCPTraceError` for a read-only workspace, and for a file that cannot be
        followed (compressed, several records per line or one record over many lines, changed before the
        offset already loaded) or whose part fails to load (the part is rolled back: nothing of it is kept).
        """
        if self.read_only:
            raise MCPTraceError(f"{self.path}: opened read-only; follow into a database file")
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        files = [FollowedFile(self.con, p) for p in items]
        loader = Loader(self.con, options or LoadOptions.of(keys=self.keys))
        done: list[FollowedPart] = []
        idle_since = time.monotonic()
        size = part_bytes
        try:
            while stop is None or not stop.is_set():
                progressed = False
                for f in files:
                    part = f.next_part(size)
                    if part is None:
                        continue
                    before = watermark(self.con)
                    try:
                        rep = loader.load_part(f.path, part)
                    finally:
                        analysis = update(self.con, before)
                    if rep.status != "loaded":
                        raise MCPTraceError(rep.error or f"{f.path}: lines from {part.first_record_no} not loaded")
                    f.advance(part, rep)
                    size = max(part_bytes, CATCH_UP_BYTES) if analysis.mode == "full" else part_bytes
                    progressed = True
                    done.append(FollowedPart(f.path, part.first_record_no, part.end_lines, part.end_offset, rep,
                                             analysis))
                    if on_part is not None:
                        on_part(done[-1])
                if progressed:
                    idle_since = time.monotonic()
                    continue
                if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                    break
                if stop is not None:
                    stop.wait(interval)
                else:
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
        return done

    # -- queries --------------------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Result:
        """Run SQL against the database; values go in ``params`` (``?`` or ``$name``), never into the string."""
        return run_query(self.con, query, params)

    def sessions(self) -> Result:
        """Logical sessions (host conversations), busiest first.

        Columns: session_id VARCHAR (``s_`` + 12 hex), session_key VARCHAR, session_key_source VARCHAR
        (the ``_meta`` key name, ``Mcp-Client-Session-Id``, ``trace``, ``Mcp-Session-Id`` or
        ``connection``), first_ts/last_ts TIMESTAMPTZ (UTC), n_calls, n_transport_sessions,
        max_parallel (most calls in flight at once), n_gaps BIGINT; extras n_tool_calls, n_errors,
        client_name. README: Tables, How the correlation works.
        """
        return self.sql("SELECT * FROM sessions ORDER BY n_calls DESC, first_ts")

    def calls(self, session_id: str | None = None) -> Result:
        """Calls in wire order, optionally of one session.

        One row per JSON-RPC request: call_id BIGINT (the request's message_id), session_id,
        connection_id, mcp_session_id, direction, rpc_id (JSON text), method, tool_name VARCHAR,
        start_ts/end_ts TIMESTAMPTZ (UTC; end NULL when unanswered), duration_ms DOUBLE (ms),
        status VARCHAR (ok | error | tool_error | cancelled | unanswered), error_code BIGINT,
        trace_id/parent_span_id VARCHAR (hex, from ``_meta.traceparent``, else the HTTP header),
        call_key VARCHAR, parallel_group BIGINT, request_message_id/response_message_id BIGINT;
        extras trace_context_source, turn_id, turn_source VARCHAR (a ``_meta`` turn key's name |
        spans.turn_id | host_span | client_span | trace | overlap: which rule made the turn; overlap is
        inferred from the intervals of untraced requests), call_key_source VARCHAR (the ``_meta`` key, or
        spans.tool_call_id), turn_key/turn_key_source, span_turn_id, host_span_id/host_parent_span_id
        VARCHAR (the host's tool span above the call, from its spans),
        transport_session, cancel_message_id, start_ord/end_ord.
        """
        if session_id is None:
            return self.sql("SELECT * FROM calls ORDER BY start_ord")
        return self.sql("SELECT * FROM calls WHERE session_id = ? ORDER BY start_ord", [session_id])

    def call_spans(self, call_id: int | None = None) -> Result:
        """Spans joined to calls, optionally of one call.

        Columns: call_id BIGINT, span_id/trace_id VARCHAR, role VARCHAR (client | server | downstream),
        matched_by VARCHAR (parent | link | attributes | time_window), via_span_id VARCHAR (the CLIENT
        span a time-window root started in), inferred BOOLEAN (true for attributes and time_window),
        n_candidates INTEGER (candidate spans the call had, or calls the downstream root fitted),
        evidence JSON (the rule, the candidates and distances of an inferred join). The rules are in
        the README ("How the correlation works").
        """
        return self.sql("SELECT * FROM call_spans WHERE ?::BIGINT IS NULL OR call_id = ? ORDER BY call_id, role, span_id",
                        [call_id, call_id])

    def gaps(self, code: str | None = None, session_id: str | None = None) -> Result:
        """Where correlation was lost or is doubtful, optionally of one code and/or session.

        Columns: gap_id BIGINT, code VARCHAR (README: gap codes), severity VARCHAR (error | warning |
        info), session_id VARCHAR, call_id/message_id BIGINT, trace_id/span_id VARCHAR,
        ts TIMESTAMPTZ (UTC), detail JSON (the keys compared and what was found).
        """
        return queries.gaps(self.con, code, session_id)

    def findings(self, severity: str | None = None) -> Result:
        """The gaps grouped by cause and responsible party (README: Findings), ranked: errors first, then
        warnings, then info, each by affected calls. With ``severity`` (error | warning | info) only those.

        Columns: finding_id BIGINT (the rank), code VARCHAR (the gap code), severity VARCHAR, party_kind
        VARCHAR (client | server | tool | downstream_service | transport | capture), party VARCHAR (from the
        data: clientInfo / serverInfo name and version, the server's service.name, the tool, the downstream
        service), n_gaps/n_calls/n_sessions BIGINT, share DOUBLE (affected out of eligible, 0–1; NULL when
        nothing is eligible), first_ts/last_ts TIMESTAMPTZ (UTC), confidence VARCHAR (exact | inferred),
        summary VARCHAR (one sentence with the numbers), remedy VARCHAR (what to change, citing the
        specification), gap_ids BIGINT[] (every gap it covers; each gap is in exactly one finding); extras
        n_affected/n_eligible BIGINT, unit VARCHAR, server/tool/downstream_service VARCHAR,
        example_call_id BIGINT, example_session_id VARCHAR.
        """
        if severity is not None and severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        return self.sql("SELECT * FROM findings WHERE ?::VARCHAR IS NULL OR severity = ? ORDER BY finding_id",
                        [severity, severity])

    def tool_stats(self, by: Sequence[str] = ("server", "tool"), *, method: str | None = "tools/call") -> Result:
        """Per-tool statistics: one row per group of ``by`` (any of server, client, tool, session_id,
        method) of the calls of ``method`` (``None``: every request method): counts by status, error
        rates, latency percentiles (ms), JSON-RPC error codes, request/response bytes, first and last
        seen; see :func:`mcptrace.analysis.toolstats.tool_stats` for the columns. Raises ``ValueError``
        for an unknown ``by``."""
        return tool_stats(self.con, by, method=method)

    def spans(self, trace_id: str | None = None) -> Result:
        """OTLP spans in start order, optionally of one trace (32 hex digits).

        Columns: source_id, trace_id/span_id/parent_span_id VARCHAR (lowercase hex), name,
        kind VARCHAR (internal | server | client | producer | consumer | unspecified),
        service_name, start_ts/end_ts TIMESTAMPTZ (UTC, µs; nanoseconds in start_unix_nano/
        end_unix_nano BIGINT), duration_ms DOUBLE, status_code (unset | ok | error),
        status_message, attributes/resource_attributes JSON objects, events/links JSON arrays,
        and the lifted mcp_method_name, jsonrpc_request_id, gen_ai_tool_name, mcp_session_id.
        """
        return self.sql("SELECT * FROM spans WHERE ?::VARCHAR IS NULL OR trace_id = ? ORDER BY start_ts, span_id",
                        [trace_id, trace_id])

    def messages(self, session_id: str | None = None) -> Result:
        """Messages in wire order; with ``session_id``, those of the session's calls."""
        if session_id is None:
            return self.sql("SELECT * FROM messages ORDER BY ts, source_id, record_no, batch_index")
        return self.sql("""SELECT m.* FROM messages m WHERE m.message_id IN (
                             SELECT request_message_id FROM calls WHERE session_id = ? UNION
                             SELECT response_message_id FROM calls WHERE session_id = ? UNION
                             SELECT cancel_message_id FROM calls WHERE session_id = ?)
                           ORDER BY ts, source_id, record_no, batch_index""", [session_id] * 3)

    def rejects(self) -> Result:
        """Records that could not be used: source_id INTEGER, record_no BIGINT, reason VARCHAR (names
        the line, entry or frame), raw VARCHAR (the record's text, credentials redacted, at most 4 KiB),
        path VARCHAR."""
        return self.sql("SELECT r.*, s.path FROM rejects r JOIN sources s USING (source_id) ORDER BY source_id, record_no")

    def http_events(self, mcp_session_id: str | None = None) -> Result:
        """HTTP transport events (envelopes without a JSON-RPC message), in time order; with
        ``mcp_session_id``, those of one transport session.

        Columns: source_id INTEGER, record_no BIGINT, ts TIMESTAMPTZ (UTC), event VARCHAR
        (``sse_priming``, ``get_stream``, ``resumption``, ``resumption_failed``, ``delete``, ``reset``,
        ``client_disconnected``, ``capture_stopped``, ``upstream_error``, ``error``, ``http_error``,
        ``other``), direction, transport, connection_id, mcp_session_id, exchange_id, http_method,
        http_path VARCHAR, http_status INTEGER, sse_event_id VARCHAR, sse_retry_ms BIGINT (ms),
        last_event_id VARCHAR (the ``Last-Event-ID`` of a resumption), error VARCHAR (the recorder's
        note), http_request_headers/http_response_headers JSON (credentials redacted).
        """
        return self.sql("SELECT * FROM http_events WHERE ?::VARCHAR IS NULL OR mcp_session_id = ? "
                        "ORDER BY ts, source_id, record_no", [mcp_session_id, mcp_session_id])

    def busiest_session(self) -> str | None:
        """The session_id (``s_`` + 12 hex) with the most calls (the earliest first on a tie), None without sessions."""
        row = one(self.con, "SELECT session_id FROM sessions ORDER BY n_calls DESC, first_ts LIMIT 1")
        return row[0] if row else None

    # -- charts and files -------------------------------------------------------------
    def timeline(self, session_id: str | None = None, **kwargs: Any):
        """A plotly Figure of one session's calls (the busiest without ``session_id``), with an
        overview strip above ``aggregate_above`` calls (default
        :data:`mcptrace.render.timeline.AGGREGATE_ABOVE`); see :func:`mcptrace.render.timeline.timeline`.
        Raises :class:`mcptrace.NotFoundError` for an unknown session."""
        return timeline(self.con, session_id or self.busiest_session(), **kwargs)

    def tree(self, session_id: str, *, turn: str | None = None, call_id: int | None = None):
        """The session's parallel-call tree as a pandas DataFrame, or with ``turn`` (a key of
        :meth:`turns`) or ``call_id`` (that call's turn) only that turn's rows; see
        :func:`mcptrace.analysis.tree.tree`. Raises :class:`mcptrace.NotFoundError`."""
        return tree(self.con, session_id, turn=turn, call_id=call_id)

    def turns(self, session_id: str) -> Result:
        """One row per turn of the session (calls, errors, gaps, time range) with the keys to drill
        down with; see :func:`mcptrace.analysis.turns.turns`."""
        return turns(self.con, session_id)

    def waterfall(self, session_id: str, *, turn: str | None = None, call_id: int | None = None, **kwargs: Any):
        """A Jaeger-style plotly Figure of the session's tree: one row per turn above
        ``aggregate_above`` calls (default :data:`mcptrace.render.waterfall.AGGREGATE_ABOVE`), and with
        ``turn`` (a key of :meth:`turns`) or ``call_id`` (that call's turn) the detailed rows of
        that turn; see :func:`mcptrace.render.waterfall.waterfall`. Raises :class:`mcptrace.NotFoundError`."""
        return waterfall(self.con, session_id, turn=turn, call_id=call_id, **kwargs)

    def call_lanes(self, session_id: str) -> Result:
        """The lane of each call of the session (``call_id``, ``lane``); see
        :func:`mcptrace.analysis.lanes.call_lanes`."""
        return call_lanes(self.con, session_id)

    def concurrency(self, session_id: str | None = None) -> Result:
        """Calls in flight over time (+1/−1 running sum); see :func:`mcptrace.analysis.queries.concurrency`."""
        return queries.concurrency(self.con, session_id)

    def coverage(self, every: str = "1 minute", by: str = "client_server") -> Result:
        """Share of requests with trace context, a session key and a joined server span per time bucket,
        by client and server (``by="client_server"``), by client (``"client"``) or by server
        (``"server"``); see :func:`mcptrace.analysis.queries.coverage`."""
        return queries.coverage(self.con, every, by)

    def coverage_chart(self, every: str = "1 minute", by: str = "server"):
        """A plotly Figure of :meth:`coverage`: one panel per share, one line per party; see
        :func:`mcptrace.render.coverage.coverage_figure`."""
        return coverage_figure(self.con, every, by=by)

    def summary(self) -> dict[str, int]:
        """Row counts: sources, messages, sessions, calls, spans, gaps, rejects; see
        :func:`mcptrace.analysis.queries.summary`."""
        return queries.summary(self.con)

    def adjust_clock_skew(self, tolerance_ms: float = SKEW_TOLERANCE_MS) -> int:
        """Opt-in: fill ``spans.adjusted_start_ts/adjusted_end_ts/clock_adjustment_ms`` (raw times
        untouched); returns the number of spans shifted. See :mod:`mcptrace.analysis.skew`. Raises
        :class:`mcptrace.MCPTraceError` on a read-only workspace."""
        if self.read_only:
            raise MCPTraceError(f"{self.path}: read-only; adjust clock skew in a database (mcptrace.load(..., db=FILE))")
        return adjust_clock_skew(self.con, tolerance_ms)

    def diff(self, other: Workspace | str | os.PathLike) -> CaptureDiff:
        """What changed from this workspace's capture to ``other`` (a Workspace, or a database file, Parquet
        dataset or capture path opened by :func:`open_capture`): tool definitions, per-tool statistics,
        correlation coverage, gaps and findings; see :func:`mcptrace.analysis.compare.compare`."""
        name = None if self.path is None else os.fspath(self.path)
        if isinstance(other, Workspace):
            return compare(self.con, other.con, a_name=name, b_name=None if other.path is None else os.fspath(other.path))
        if name is not None and same_location(name, other):  # DuckDB opens a file once per process
            return compare(self.con, self.con, a_name=name, b_name=os.fspath(other))
        with open_capture(other) as ws:
            return compare(self.con, ws.con, a_name=name, b_name=os.fspath(other))

    def write_report(self, path: str | os.PathLike, session_ids: Sequence[str] | None = None, **kwargs: Any) -> str:
        """Write the self-contained HTML incident report; see :func:`mcptrace.render.report.report_html`."""
        return report.write_report(self.con, path, session_ids, **kwargs)

    def write_table(self, table: str, path: str | os.PathLike, *, csv_formulas: bool = False) -> str:
        """Write one contract table to ``.parquet`` or ``.csv`` (cells that look like spreadsheet formulas
        neutralised unless ``csv_formulas``); see :func:`mcptrace.render.export.write_table`."""
        return export.write_table(self.con, table, path, csv_formulas=csv_formulas)

    def write_dataset(self, directory: str | os.PathLike) -> dict[str, str]:
        """Write every table as a Hive-partitioned Parquet dataset; see :func:`mcptrace.render.export.write_dataset`."""
        return export.write_dataset(self.con, directory)

    def write_chrome_trace(self, session_id: str, path: str | os.PathLike) -> str:
        """Write one session as Chrome Trace Event JSON (Perfetto); see :func:`mcptrace.render.export.chrome_trace`."""
        return export.write_chrome_trace(self.con, session_id, path)

    def explore(self, session_id: str | None = None, **kwargs: Any):
        """An ipywidgets explorer of this workspace for Jupyter (on its connection); see
        :func:`mcptrace.explorer.explore`. Raises :class:`mcptrace.NotFoundError` for an unknown session."""
        from mcptrace.explorer import explore

        return explore(self.con, session_id, **kwargs)

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        n = self.summary()
        return (f"<mcptrace.Workspace {self.path or ':memory:'}: {n['sources']} sources, {n['sessions']} sessions, "
                f"{n['calls']} calls, {n['gaps']} gaps>")


#: columns added to the schema after the first databases were written (schema.sql adds them)
_LATER_COLUMNS = (("sources", "status"), ("sources", "error"), ("sources", "read_offset"), ("sources", "read_lines"), ("messages", "truncated"), ("messages", "turn_key"),
                  ("messages", "turn_key_source"), ("messages", "server_version"), ("spans", "mcp_side"), ("spans", "conversation_id"),
                  ("spans", "turn_id"), ("spans", "tool_call_id"), ("spans", "mcp_server_name"), ("messages", "scope_hash"),
                  ("messages", "exchange_hash"), ("http_events", "scope_hash"), ("http_events", "exchange_hash"),
                  ("spans", "trace_hash"))
def _needs_upgrade(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether an existing database must be written to before it can be read (older schema, no
    analysis tables, out-of-range times)."""
    return not set(_LATER_COLUMNS) <= main_columns(con) or needs_rebuild(con)


def _ensure_derived(con: duckdb.DuckDBPyConnection) -> None:
    if needs_rebuild(con):
        rebuild(con)


def open_untrusted(db: str | os.PathLike, *, allowed_directories: list[str] | None = None,
                   upgrade: bool = True) -> Workspace:
    """Open an existing database file to read it, as one someone else may have written.

    The connection is read-only and runs with :data:`mcptrace.core.db.UNTRUSTED_CONFIG` (no file
    or network access beyond the database and ``allowed_directories``, no extension loaded on its
    behalf; locked), so a view in the file cannot read a local file into a report. A database of an
    older mcptrace (older schema, no analysis tables) is upgraded and rebuilt first, under the same
    settings; with ``upgrade=False`` it raises :class:`mcptrace.MCPTraceError` instead, and the file is
    never written. Raises ``duckdb.Error`` when the file is not a DuckDB database or is locked by a
    writer; queries over a view that reaches outside raise ``duckdb.PermissionException``.
    """
    path = os.fspath(db)
    con = connect(path, read_only=True, untrusted=True, allowed_directories=allowed_directories)
    if not _needs_upgrade(con):
        return Workspace(con, path=path, read_only=True)
    if not upgrade:
        ours = one(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'messages'")[0]
        con.close()
        raise MCPTraceError(f"{path}: written by an older mcptrace; its tables must be upgraded and rebuilt, which "
                            f"writes to the file: run `mcptrace open {path}` once to do it" if ours else
                            f"{path}: a DuckDB database without mcptrace's tables")
    con.close()
    return Workspace(connect(path, untrusted=True, allowed_directories=allowed_directories), path=path)


def open(db: str | os.PathLike | None = None, *, keys: KeyConfig | None = None,  # noqa: A001 - the verb users expect
         storage_options: dict | None = None, read_only: bool = False) -> Workspace:
    """Open an mcptrace database (created if missing; ``None`` is in memory).

    ``db`` may also be a Parquet dataset written by ``mcptrace export --parquet`` (a local
    directory or an object-store URL such as ``s3://bucket/prefix``): it is attached read-only,
    without copying, by :func:`open_dataset` (``storage_options`` go there).
    ``read_only=True``: an existing database file someone else may have written, opened by
    :func:`open_untrusted` (its views cannot read files; what the CLI's reading commands do).
    """
    if db is not None and is_dataset(db):
        return open_dataset(db, storage_options=storage_options)
    if read_only:
        if db is None:
            raise MCPTraceError("read_only=True needs an existing database file")
        return open_untrusted(db)
    return Workspace(connect(os.fspath(db) if db is not None else None), path=db, keys=keys)


def load(paths: str | os.PathLike | Sequence[str | os.PathLike], db: str | None = None, *,
         errors: ErrorMode = "collect", format: str | None = None, keys: KeyConfig | None = None,
         redact: bool = True, secret_keys: str = DEFAULT_SECRET_KEYS, conventions: SpanConventions | None = None,
         storage_options: dict | None = None) -> Workspace:
    """Load captures and trace dumps into DuckDB and rebuild calls, sessions and gaps.

    ``paths``: files or directories (recursed). Formats are sniffed from content:
    envelope JSONL, bare JSON-RPC NDJSON, OTLP/JSON (Collector file exporter lines);
    ``format=`` forces one. ``db``: a DuckDB file (created or appended to) or ``None``
    for in memory. Returns a :class:`Workspace`; its ``last_report`` says per file what was
    loaded, rejected or not recognised. ``conventions``: see :meth:`Workspace.load`.

    ``paths`` may instead name one Parquet dataset written by ``mcptrace export --parquet``
    (local directory or object-store URL): it is attached read-only without copying, as by
    :func:`open` (``db`` must then be None). Raises :class:`mcptrace.MCPTraceError` when a
    dataset is mixed with other paths or given as ``db``.

    >>> ws = mcptrace.load("data/samples")            # doctest: +SKIP
    >>> ws.sessions().df()                             # doctest: +SKIP
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    datasets = [p for p in items if is_dataset(p)]
    if db is not None and is_dataset(db):
        raise MCPTraceError(f"{db}: a Parquet dataset cannot be loaded into; give a DuckDB file as db")
    if datasets:
        if len(items) > 1 or db is not None:
            raise MCPTraceError(f"{datasets[0]}: a Parquet dataset is attached on its own "
                                "(mcptrace.open(DIR_OR_URL)), not mixed with captures or loaded into a database")
        return open_dataset(datasets[0], storage_options=storage_options)
    ws = Workspace(connect(os.fspath(db) if db is not None else None), path=db, keys=keys, _derive=False)
    ws.load(paths, errors=errors, format=format, redact=redact, secret_keys=secret_keys, conventions=conventions)
    return ws


def open_capture(location: str | os.PathLike) -> Workspace:
    """What ``mcptrace diff`` reads on each side (:func:`mcptrace.analysis.compare.input_kind`): a DuckDB
    database file, opened to be read (:func:`open_untrusted`); a Parquet dataset, attached
    (:func:`open_dataset`); else capture files or a directory of them, loaded into memory. Raises
    :class:`mcptrace.MCPTraceError` naming the path when it does not exist or nothing in it loads."""
    path = os.fspath(location)
    try:
        kind = input_kind(path)
    except FileNotFoundError as e:
        raise MCPTraceError(str(e)) from None
    if kind == "dataset":
        return open_dataset(path)
    if kind == "database":  # read-only, as untrusted (open_untrusted), and never upgraded in place
        try:
            con = connect(path, read_only=True, untrusted=True)
        except duckdb.Error as e:  # locked by a writer
            raise MCPTraceError(f"{path}: cannot open the database: {str(e).splitlines()[0]}") from e
        problem = ("a DuckDB database without mcptrace's tables"
                   if not one(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'messages'")[0] else
                   f"written by an older mcptrace; upgrade it once with: mcptrace open {path}"
                   if _needs_upgrade(con) else None)
        if problem:
            con.close()
            raise MCPTraceError(f"{path}: {problem}")
        return Workspace(con, path=path, read_only=True)
    ws = open(None)
    ws.load(path)
    if not any(f.status == "loaded" for f in ws.last_report.files):
        ws.close()
        raise MCPTraceError(f"{path}: not a DuckDB database, an mcptrace Parquet dataset or a capture mcptrace reads ("
                            + ("; ".join(f.error or f"{f.path}: {f.status}" for f in ws.last_report.files)
                               or "no files") + ")")
    return ws


def open_dataset(location: str | os.PathLike, *, storage_options: dict | None = None,
                 setup_sql: Sequence[str] = ()) -> Workspace:
    """Attach a Parquet dataset written by ``mcptrace export --parquet DIR`` (a local directory or an
    object-store URL) as a read-only :class:`Workspace`, without copying; see
    :func:`mcptrace.core.dataset.attach_dataset` for how URLs are read. Loading into it raises
    :class:`mcptrace.MCPTraceError`, as does a location holding no ``messages`` table."""
    con = attach_dataset(location, storage_options=storage_options, setup_sql=setup_sql)
    if not one(con, "SELECT count(*) FROM duckdb_views() WHERE view_name = 'findings'")[0]:
        build_findings(con)  # a dataset written before findings: built in the connection's memory from its gaps
    return Workspace(con, path=os.fspath(location), read_only=True)
