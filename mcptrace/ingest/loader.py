"""Loading files into DuckDB: sources, rejects, messages and spans.

The loader owns the connection. For each file it hashes the content (a file already
loaded, by sha256, adds nothing), sniffs the format, lets the reader split it into
records, runs the reader's SQL over each batch, and puts every unusable record in
``rejects`` with a reason naming its line. After all files are in, the analysis tables
are rebuilt over everything (:mod:`mcptrace.analysis.rebuild`).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import stat
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from mcptrace.ingest import readers as _readers
from mcptrace.core.errors import MCPTraceError, RecordError, UnrecognizedFormatError, error_line
from mcptrace.ingest.commits import COMMIT_BYTES, MESSAGE_COMMIT_BYTES, Transaction, insert_target
from mcptrace.ingest.memory import batch_limit, memory_ceiling, memory_limits, size_bytes
from mcptrace.ingest.options import LoadOptions
from mcptrace.ingest.readers.base import LINES_SCHEMA
from mcptrace.ingest.readers.inputs import Input, RangeInput, stream_error_reason
from mcptrace.core.sqlfiles import statements
from mcptrace.core.db import DATA_TABLES, RAW_LIMIT, one, optimizer, sql_params



@dataclass
class FileReport:
    """What happened to one path: ``status`` is 'loaded', 'duplicate', 'unrecognized', 'unreadable'
    (not a regular file, or it cannot be read) or 'failed' (something inside it went wrong: nothing of it
    was kept, ``error`` says what, and its ``sources`` row has status 'failed')."""

    path: str
    status: str
    format: str | None = None
    source_id: int | None = None
    n_records: int = 0
    n_rejected: int = 0
    n_rows: int = 0
    n_skipped: int = 0
    n_http_events: int = 0
    """message-less HTTP envelopes (SSE priming events, GET streams, DELETE, resets), in ``http_events``"""
    n_duplicate_spans: int = 0
    """spans already loaded (same trace-id, span-id and content), stored once"""
    reasons: Counter = field(default_factory=Counter)
    error: str | None = None


@dataclass
class LoadReport:
    files: list[FileReport] = field(default_factory=list)
    analysis: object | None = None
    """what the analysis after the load recomputed (:class:`mcptrace.analysis.incremental.UpdateReport`:
    nothing, the new records' scope, or everything), set by :meth:`mcptrace.Workspace.load`"""

    @property
    def ok(self) -> bool:
        return all(f.status in ("loaded", "duplicate") for f in self.files)


@dataclass(frozen=True)
class FilePart:
    """The next complete lines of a file being followed (:mod:`mcptrace.ingest.follow`): bytes
    ``start_offset`` to ``end_offset`` of the file hold lines ``first_record_no``... (``end_lines`` lines
    in all up to ``end_offset``), read from the file when the part loads, in pieces like any input;
    ``sha256`` is of the file's bytes up to ``end_offset``. ``source_id`` and ``format``: the file's
    ``sources`` row and reader from an earlier part, None for the first."""

    start_offset: int
    first_record_no: int
    end_offset: int
    end_lines: int
    sha256: str
    source_id: int | None = None
    format: str | None = None


#: the formats a followed file may have: one record per line, so complete lines are complete records
FOLLOWABLE = ("envelope_jsonl", "jsonrpc_ndjson", "otlp_json")


def expand_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Files named or found (recursively, sorted, hidden entries skipped) under the given paths."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
        else:
            out.append(p)
    return out


def _sha256(path: str) -> tuple[str, int, int, bool]:
    """sha256, size, newlines, and whether the last byte is a newline."""
    h = hashlib.sha256()
    n = lines = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return h.hexdigest(), n, lines, last == b"\n"


def not_a_regular_file(path: str) -> str | None:
    """Why ``path`` is not read (a FIFO, a device, a socket, a link to one), None for a regular file.
    Checked before anything opens it: reading a FIFO or ``/dev/zero`` never ends."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # reported by the read that follows
    if stat.S_ISREG(mode):
        return None
    what = ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a directory" if stat.S_ISDIR(mode) else "not a regular file")
    link = " (through a symbolic link)" if os.path.islink(path) else ""
    return f"not a regular file: {what}{link}; only regular files are read"


def _reason(e: BaseException) -> str:
    """One line saying what went wrong: the exception's class and the telling line of its message."""
    first = "nested too deeply" if isinstance(e, RecursionError) else error_line(e)
    return f"{type(e).__name__}: {first[:300]}"


def _json_error(line: str) -> str:
    try:
        json.loads(line)
    except RecursionError:
        return "invalid JSON: nested too deeply"
    except ValueError as e:
        msg = getattr(e, "msg", str(e))
        col = getattr(e, "colno", None)
        return f"invalid JSON at column {col}: {msg}" if col else f"invalid JSON: {msg}"
    return "invalid JSON"


#: a batch of at most this many records and bytes is staged (the reader's SQL and messages.sql or
#: spans_stage.sql, which read the batch alone) without DuckDB's optimizer: planning those statements is most of
#: a small batch's time (a follow's parts, a small append), and over so little their plans take no time either
#: way; a batch holding a long record keeps it (its plan decides how often the record is copied)
LIGHT_PLANNING_ROWS = 1000
LIGHT_PLANNING_BYTES = 1 << 20


class Loader:
    """Loads files into an open connection. Use :func:`mcptrace.load` unless you need the parts."""

    def __init__(self, con: duckdb.DuckDBPyConnection, options: LoadOptions | None = None) -> None:
        self.con = con
        #: error mode, forced format, correlation keys and the one redaction policy of this load
        self.options = options or LoadOptions()
        #: the macro statements this loader ran on the connection (made once for all of its files)
        self._macros: tuple[str, ...] = ()

    def load(self, paths: str | os.PathLike | Sequence[str | os.PathLike]) -> LoadReport:
        report = LoadReport()
        for path in expand_paths(paths):
            report.files.append(self._load_file(path))
        return report

    def load_part(self, path: str, part: FilePart) -> FileReport:
        """Load the next lines of a followed file (:class:`FilePart`): its records keep their line
        numbers, and the file's one ``sources`` row (created by the first part) gets the counts added,
        the new ``sha256`` and ``size_bytes``, and ``read_offset``/``read_lines`` (where the next part
        starts). A format that is not one record per line (:data:`FOLLOWABLE`) is reported
        'unrecognized'; a failure inside the part rolls the part back and is reported 'failed'."""
        inp = RangeInput(path, part.start_offset, part.end_offset, part.first_record_no)
        if part.format:
            reader = _readers.by_name(part.format)
        else:
            reader, _ = _readers.sniff_input(inp)
        if reader is None or reader.name not in FOLLOWABLE:
            what = f"a {reader.name} file" if reader else "not a capture this version reads"
            return FileReport(path, "unrecognized", format=reader.name if reader else None,
                              error=f"{path}: cannot be followed: {what}; followed files hold one record per line "
                                    f"({', '.join(FOLLOWABLE)})")
        source_id = part.source_id or one(self.con, "SELECT coalesce(max(source_id), 0) + 1 FROM sources")[0]
        try:
            return self._ingest_isolated(inp, part.sha256, part.end_offset, reader, source_id, part)
        except (RecordError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - a failed part stays with that part
            reason = self.options.redaction.redact_text(_reason(e))
            return FileReport(path, "failed", format=reader.name, source_id=source_id,
                              error=f"{path}: lines from {part.first_record_no} not loaded: {reason}")

    # -- one file ---------------------------------------------------------------------
    def _load_file(self, path: str) -> FileReport:
        """Load one file. Anything that goes wrong inside it (sniffing, decoding, a DuckDB error,
        memory) rolls back that file only and is reported (and kept as a ``failed`` row of
        ``sources`` with its reason); only a bad record with ``errors="raise"`` and an interrupt
        propagate."""
        problem = not_a_regular_file(path)
        if problem:
            return FileReport(path, "unreadable", error=f"{path}: {problem}")
        try:
            sha, size, newlines, complete = _sha256(path)
        except OSError as e:
            return FileReport(path, "unreadable", error=f"{path}: cannot read: {e.strerror or e}")
        existing = one(self.con, "SELECT source_id, format, coalesce(status, 'loaded') FROM sources WHERE sha256 = ?",
                       [sha])
        if existing and existing[2] != "failed":
            return FileReport(path, "duplicate", format=existing[1], source_id=existing[0])
        if existing:  # an earlier load of this content failed: try again
            self.con.execute("DELETE FROM sources WHERE source_id = ?", [existing[0]])
        tried = tuple(r.name for r in _readers.readers())
        if size == 0:
            return FileReport(path, "unrecognized", error=str(UnrecognizedFormatError(path, tried, "empty file")))
        inp = Input(path)
        reader = None
        try:
            if self.options.format:
                reader = _readers.by_name(self.options.format)
            else:
                reader, head = _readers.sniff_input(inp)
                if reader is None and inp.head_error is not None:
                    # a damaged or truncated stream: a failure of the file, not an unknown format
                    reason = stream_error_reason(inp.compression, inp.head_error)
                    reason += f" after {len(head)} decoded bytes" if head else " before any byte decoded"
                    source_id = one(self.con, "SELECT coalesce(max(source_id), 0) + 1 FROM sources")[0]
                    self._record_failure(path, sha, size, None, inp, source_id, reason)
                    return FileReport(path, "failed", source_id=source_id, error=f"{path}: not loaded: {reason}")
                if reader is None:
                    why = f"{inp.compression} content unreadable" if inp.compression and not head else ""
                    if inp.compression and head:
                        why = f"{inp.compression}-compressed"
                    return FileReport(path, "unrecognized", error=str(UnrecognizedFormatError(path, tried, why)))
        except (RecursionError, MemoryError, ValueError, OSError, EOFError) as e:
            return FileReport(path, "unrecognized", error=str(UnrecognizedFormatError(path, tried, _reason(e))))
        # Batches commit every so often (commits.Transaction: a transaction over a whole large file
        # holds all of its rows in memory until it commits); the `sources` row is written last. A failure
        # removes the file's rows here; rows of a process that died mid-load (no `sources` row)
        # are removed by connect() before anything reads them.
        con = self.con
        source_id = one(con, "SELECT coalesce(max(source_id), 0) + 1 FROM sources")[0]
        limits = memory_limits(con)
        for attempt, limit in enumerate(limits):
            if attempt:  # a statement ran out of memory: the file again, with more room
                con.execute("SET memory_limit = ?", [limit])
            # a file of one record per line can be followed later from where this load ends
            whole = (None if inp.compression or reader.name not in FOLLOWABLE else
                     FilePart(0, 1, size, newlines + (0 if complete else 1), sha))
            try:
                return self._ingest_isolated(inp, sha, size, reader, source_id, whole=whole)
            except duckdb.OutOfMemoryException as e:
                failure: BaseException = e
                continue
            except (RecordError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # noqa: BLE001 - any failure inside one file stays with that file
                failure = e
                break
            finally:
                if attempt:
                    con.execute("SET memory_limit = ?", [limits[0]])
        reason = self.options.redaction.redact_text(_reason(failure))
        self._record_failure(path, sha, size, reader, inp, source_id, reason)
        return FileReport(path, "failed", format=reader.name, source_id=source_id,
                          error=f"{path}: not loaded: {reason}")

    def _ingest_isolated(self, inp: Input, sha: str, size: int, reader: _readers.Reader, source_id: int,
                         part: FilePart | None = None, *, whole: FilePart | None = None) -> FileReport:
        """:meth:`_ingest`, its rows removed again when it fails (the exception propagates)."""
        con = self.con
        first = part.first_record_no if part else 1
        self._discard(source_id, first)
        was = one(con, "SELECT current_setting('enable_optimizer')")[0]  # small batches turn it off
        try:
            return self._ingest(inp, sha, size, reader, source_id, part, whole=whole)
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # no transaction open
            try:
                self._discard(source_id, first)
                con.execute("DROP TABLE IF EXISTS _all")
                if one(con, "SELECT current_setting('enable_optimizer')")[0] != was:  # a failed small batch's
                    con.execute("SET SESSION enable_optimizer = ?", [was])  # setting (core.db.optimizer)
            except duckdb.Error:
                pass  # the connection is gone; connect() removes the rows next time
            raise
        finally:
            self._drop_reader_views(reader)

    def _record_failure(self, path: str, sha: str, size: int, reader: _readers.Reader | None, inp: Input,
                        source_id: int, reason: str) -> None:
        """The ``sources`` row of a file that could not be loaded: status ``failed``, the reason, no rows
        (format and kind ``unknown`` when the file could not be decoded far enough to tell)."""
        self.con.execute(
            "INSERT INTO sources BY NAME SELECT ? AS source_id, ? AS path, ? AS format, ? AS sha256, 0 AS n_records, "
            "0 AS n_rejected, ? AS kind, ? AS size_bytes, now() AS loaded_at, ? AS compression, 'failed' AS status, "
            "? AS error", [source_id, os.path.abspath(path), reader.name if reader else "unknown", sha,
                           reader.kind if reader else "unknown", size, inp.compression, reason])

    def _drop_reader_views(self, reader: _readers.Reader) -> None:
        """Drop the temporary views the reader's scripts create (newest first)."""
        try:
            for name in reversed(reader.temp_views()):
                self.con.execute(f'DROP VIEW IF EXISTS temp.main."{name}"')  # a name from our SQL files
        except duckdb.Error:
            pass  # the connection is gone; temporary views went with it

    def _discard(self, source_id: int, from_record: int = 1) -> None:
        """Remove a file's rows (a followed file's: those from line ``from_record`` on)."""
        for table in DATA_TABLES:
            if from_record <= 1:
                self.con.execute(f"DELETE FROM {table} WHERE source_id = ?", [source_id])
            else:
                self.con.execute(f"DELETE FROM {table} WHERE source_id = ? AND record_no >= ?", [source_id, from_record])

    def _ingest(self, inp: Input, sha: str, size: int, reader: _readers.Reader, source_id: int,
                part: FilePart | None = None, *, whole: FilePart | None = None) -> FileReport:
        """Load ``inp`` (a whole file, or ``part`` of a followed one). ``whole``: where a follow of the
        whole file would go on (``sources.read_offset``/``read_lines``), None when it cannot be followed."""
        con = self.con
        path = inp.path
        first = part.first_record_no if part else 1
        rep = FileReport(path, "loaded", format=reader.name, source_id=source_id)
        connection_id = f"{'stdio' if reader.kind == 'messages' else 'file'}:{os.path.basename(path)}"
        # mcptrace_redact, mcptrace_secret_hit; the _meta key choice of messages.sql (made for the first file;
        # nothing else makes them while the loader runs)
        macros = (*self.options.redaction.sql_macros(), *self.options.keys.sql_macros())
        if macros != self._macros:
            for stmt in macros:
                con.execute(stmt)
            self._macros = macros
        params = {**self.options.keys.message_params(), "source_id": source_id}
        # Each batch goes from the Arrow lines (scanned in parallel) through the reader's SQL and the
        # stage statements (the credential test and redaction, normalisation) into a temp table
        # `_all`, with no insert into a stored table; the reader's rejects are taken
        # from it, then one insert moves the batch into messages or spans. Batches are large
        # (CHUNK_BYTES of lines): many small inserts into a table are several times slower.
        table = "messages" if reader.kind == "messages" else "spans"
        stage = statements("messages.sql" if reader.kind == "messages" else "spans_stage.sql")
        self._install_reader(reader, connection_id)
        # An explicit CREATE: DuckDB 2.0.0 loses rows bulk-inserted (>~110k) into a table made
        # by `CREATE TABLE AS ... WHERE false` inside a transaction.
        cols = ", ".join(f'"{name}" {dtype}' for name, dtype in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
            "AND schema_name = 'main' AND database_name = current_database() ORDER BY column_index",
            [table]).fetchall())
        extra = (", event VARCHAR, sse_retry_ms BIGINT, last_event_id VARCHAR, http_error VARCHAR"
                 if reader.kind == "messages" else ", secret_hit BOOLEAN")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _all ({cols}, reject_reason VARCHAR, raw_reject VARCHAR, "
                    f"from_reader BOOLEAN{extra})")
        finish = statements("messages_finish.sql" if reader.kind == "messages" else "spans_finish.sql")
        # run before `finish` only for a batch with rows for them: planning them is most of a small
        # batch's time (messages_rejects.sql writes the rows with a reason; spans_redact.sql redacts the
        # spans whose text the cheap test hit). spans_finish.sql writes its own rejects (spans seen before
        # with other content) every time.
        when_rows = statements("messages_rejects.sql" if reader.kind == "messages" else "spans_redact.sql")
        rows_for = "reject_reason IS NOT NULL AND NOT from_reader" if reader.kind == "messages" else "secret_hit"
        # the large table each of them inserts into, if any (their row counts decide where transactions end)
        targets = {stmt: insert_target(stmt) for stmt in (*when_rows, *finish)}
        params["record_label"] = reader.record_label
        limit_setting = one(con, "SELECT current_setting('memory_limit')")[0]
        base_limit, top_limit = size_bytes(limit_setting), memory_ceiling()
        n_records = 0
        n_skipped = 0
        txn: Transaction | None = None
        max_bytes = COMMIT_BYTES if reader.kind == "spans" else MESSAGE_COMMIT_BYTES
        for batch in _prefetch(reader.batches(inp, redaction=self.options.redaction,
                                                max_record_bytes=self.options.max_record_bytes)):
            # rows with neither a line nor an error are text the format allows between records
            # (log noise): counted in sources.n_skipped, not records
            skip = pc.and_(pc.is_null(batch.column("line")), pc.is_null(batch.column("decode_error")))
            n_skip = pc.sum(skip).as_py() or 0
            if n_skip:
                n_skipped += n_skip
                batch = batch.filter(pc.invert(skip))
            if batch.num_rows == 0:
                continue
            n_records += batch.num_rows
            con.register("_lines", batch)
            if txn is None:
                con.execute("BEGIN TRANSACTION")
                txn = Transaction(max_bytes)
            lengths = pc.binary_length(batch.column("line"))
            batch_bytes = pc.sum(lengths).as_py() or 0
            raised = batch_limit(base_limit, top_limit, pc.max(lengths).as_py() or 0)
            if raised:
                con.execute("SET memory_limit = ?", [f"{raised >> 20}MiB"])
            try:
                with optimizer(con, on=batch.num_rows > LIGHT_PLANNING_ROWS or batch_bytes > LIGHT_PLANNING_BYTES):
                    for stmt in stage:
                        con.execute(stmt, sql_params(stmt, params))
                lo, hi = pc.min_max(batch.column("record_no")).values()
                # the rows `when_rows` is for (`rows_for`): message rows with a reason, spans the cheap test hit
                n_reader_rejects, n_when = one(
                    con, f"SELECT count(*) FILTER (WHERE from_reader), count(*) FILTER (WHERE {rows_for}) FROM _all")
                if n_reader_rejects:
                    self._take_rejects(path, source_id, reader.record_label, lo.as_py(), hi.as_py())
                params["base_id"] = one(con, "SELECT coalesce(max(message_id), 0) FROM messages")[0]
                for stmt in (*(when_rows if n_when else ()), *finish):
                    res = con.execute(stmt, sql_params(stmt, params))
                    if targets[stmt] is not None:
                        txn.wrote(targets[stmt], res.fetchone()[0])
            finally:
                try:
                    con.unregister("_lines")
                except duckdb.Error:
                    pass
                if raised:
                    try:
                        con.execute("SET memory_limit = ?", [limit_setting])
                    except duckdb.Error:
                        pass  # the transaction failed: the file is rolled back and retried with its limits
            con.execute("DELETE FROM _all")
            txn.batch(batch.num_rows, batch_bytes)
            if txn.should_commit():
                con.execute("COMMIT")
                txn = None
        if txn is not None:
            con.execute("COMMIT")
        if reader.kind == "messages":
            if one(con, "SELECT count(*) FROM messages WHERE source_id = ? AND direction IS NULL", [source_id])[0]:
                for stmt in statements("directions.sql"):
                    con.execute(stmt, {"source_id": source_id})
            if self.options.errors == "raise":
                self._raise_first_reject(path, source_id, first)
            rep.n_rows = one(con, "SELECT count(*) FROM messages WHERE source_id = ? AND record_no >= ?",
                             [source_id, first])[0]
        else:
            if self.options.errors == "raise":  # a span whose ids repeat with other content (spans_finish.sql)
                self._raise_first_reject(path, source_id, first)
            rep.n_rows = one(con, "SELECT count(*) FROM spans WHERE source_id = ? AND record_no >= ?",
                             [source_id, first])[0]
        rep.n_records = n_records
        covered = one(con, f"SELECT count(*) FROM (SELECT record_no FROM {table} WHERE source_id = $s UNION "
                           "SELECT record_no FROM http_events WHERE source_id = $s UNION "
                           "SELECT record_no FROM span_duplicates WHERE source_id = $s UNION "
                           "SELECT record_no FROM rejects WHERE source_id = $s) WHERE record_no >= $first "
                           "OR ($first = 1 AND record_no IS NULL)", {"s": source_id, "first": first})[0]
        if covered != n_records and not (reader.kind == "spans" and covered <= n_records):
            raise MCPTraceError(f"{path}: internal error: {n_records} records read but {covered} accounted for "
                                "in messages, http_events, span_duplicates and rejects; nothing was loaded from this file")
        in_part = "source_id = ? AND (record_no >= ? OR (? = 1 AND record_no IS NULL))"
        rep.reasons = _group_reasons(Counter(dict(con.execute(
            f"SELECT regexp_replace(reason, '^[a-z]+ [0-9]+: ', ''), count(*) FROM rejects WHERE {in_part} GROUP BY 1",
            [source_id, first, first]).fetchall())))
        rep.n_rejected = one(con, f"SELECT count(*) FROM rejects WHERE {in_part}", [source_id, first, first])[0]
        rep.n_skipped = n_skipped
        rep.n_http_events = one(con, f"SELECT count(*) FROM http_events WHERE {in_part}", [source_id, first, first])[0]
        rep.n_duplicate_spans = one(con, f"SELECT count(*) FROM span_duplicates WHERE {in_part}",
                                    [source_id, first, first])[0]
        if part is not None and part.source_id is not None:  # a followed file's later lines: its row grows
            con.execute("UPDATE sources SET sha256 = ?, size_bytes = ?, loaded_at = now(), n_records = n_records + ?, "
                        "n_rejected = n_rejected + ?, n_skipped = coalesce(n_skipped, 0) + ?, "
                        "n_http_events = coalesce(n_http_events, 0) + ?, "
                        "n_duplicate_spans = coalesce(n_duplicate_spans, 0) + ?, read_offset = ?, read_lines = ? "
                        "WHERE source_id = ?",
                        [sha, size, n_records, rep.n_rejected, n_skipped, rep.n_http_events, rep.n_duplicate_spans,
                         part.end_offset, part.end_lines, source_id])
        else:
            con.execute("INSERT INTO sources BY NAME SELECT ? AS source_id, ? AS path, ? AS format, ? AS sha256, "
                        "? AS n_records, ? AS n_rejected, ? AS kind, ? AS size_bytes, now() AS loaded_at, "
                        "? AS n_skipped, ? AS compression, ? AS n_http_events, ? AS n_duplicate_spans, "
                        "'loaded' AS status, ? AS read_offset, ? AS read_lines",
                        [source_id, os.path.abspath(path), reader.name, sha, n_records, rep.n_rejected, reader.kind,
                         size, n_skipped, inp.compression, rep.n_http_events, rep.n_duplicate_spans,
                         (part or whole).end_offset if (part or whole) else None,
                         (part or whole).end_lines if (part or whole) else None])
        con.execute("DROP TABLE IF EXISTS _all")
        return rep

    def _install_reader(self, reader: _readers.Reader, connection_id: str) -> None:
        """Create the reader's view ``_batch_out`` (its ``sql_scripts``) over an empty ``_lines``
        (DuckDB binds a view's relations when it is created); each batch then re-registers ``_lines``."""
        con = self.con
        con.execute("SET VARIABLE mcptrace_connection_id = ?", [connection_id])
        con.execute("SET VARIABLE mcptrace_ts_min = ?::TIMESTAMPTZ", [self.options.ts_range[0]])
        con.execute("SET VARIABLE mcptrace_ts_max = ?::TIMESTAMPTZ", [self.options.ts_range[1]])
        if reader.kind == "spans":  # the span conventions (read by otlp_macros.sql and the span scripts only)
            for name, (value, dtype) in self.options.conventions.sql_variables().items():
                con.execute(f"SET VARIABLE {name} = ?::{dtype}", [value])
        con.register("_lines", LINES_SCHEMA.empty_table())
        try:
            for name in reader.sql_scripts:
                for stmt in statements(name):
                    con.execute(stmt)
        finally:
            con.unregister("_lines")

    def _take_rejects(self, path: str, source_id: int, label: str, lo: int, hi: int) -> None:
        """Move the reader's rejects of the batch of records ``lo..hi`` from ``_all`` into ``rejects``,
        in one statement (credentials redacted in SQL, the raw text cut at :data:`RAW_LIMIT`). Lines
        that are not JSON get the position and message of Python's JSON parser in their reason."""
        con = self.con
        bad = con.execute("SELECT b.record_no, left(coalesce(b.raw_reject, l.line), 65536) FROM _all b "
                          "JOIN _lines l USING (record_no) WHERE b.from_reader AND b.reject_reason = 'invalid JSON' "
                          "AND b.record_no BETWEEN ? AND ?", [lo, hi]).fetchall()
        con.register("_json_reasons", pa.table({
            "record_no": pa.array([r[0] for r in bad], pa.int64()),
            "reason": pa.array([_json_error(r[1]) if r[1] is not None else "invalid JSON" for r in bad], pa.string())}))
        try:
            params = {"label": label, "lo": lo, "hi": hi, "raw_limit": RAW_LIMIT}
            for stmt in statements("rejects_stage.sql"):
                con.execute(stmt, sql_params(stmt, params))
            if self.options.errors == "raise":
                first = one(con, "SELECT record_no, reason FROM _batch_rejects ORDER BY record_no LIMIT 1")
                if first:
                    raise RecordError(path, first[0], first[1].split(": ", 1)[1])
            con.execute("INSERT INTO rejects SELECT ?, record_no, reason, raw FROM _batch_rejects", [source_id])
            con.execute("DROP TABLE _batch_rejects")
        finally:
            con.unregister("_json_reasons")

    def _raise_first_reject(self, path: str, source_id: int, first: int = 1) -> None:
        row = one(self.con, "SELECT record_no, reason FROM rejects WHERE source_id = ? "
                            "AND (record_no >= ? OR record_no IS NULL) ORDER BY record_no LIMIT 1", [source_id, first])
        if row:
            raise RecordError(path, row[0], row[1])


def _prefetch(batches: Iterator[pa.Table], depth: int = 1) -> Iterator[pa.Table]:
    """Iterate ``batches`` with the next ``depth`` of them read in a background thread.

    Reading and splitting lines (file reads, decompression, numpy, Arrow) releases the GIL, as
    DuckDB does while it runs a statement, so the two overlap. Exceptions reach the caller.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in batches:
                if not put(b):
                    return
            put(done)
        except BaseException as e:  # handed to the consumer
            put(e)

    t = threading.Thread(target=work, name="mcptrace-read", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


def _group_reasons(reasons: Counter) -> Counter:
    """Collapse reasons that differ only in positions/values into one class for summaries."""
    out: Counter = Counter()
    for reason, n in reasons.items():
        key = re.sub(r"^(invalid JSON) at column \d+:.*$", r"\1", reason)
        key = re.sub(r"^(invalid UTF-8) at byte \d+$", r"\1", key)
        key = re.sub(r":\s.*$", "", key) if key.startswith(("not JSON on the wire", "span ")) else key
        out[key] += n
    return out


