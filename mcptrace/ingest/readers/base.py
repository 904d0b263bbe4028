"""Shared reader machinery: reading heads, splitting (decoded) files into numbered lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mcptrace.core.redact import RedactionPolicy
from mcptrace.ingest.readers.inputs import DECODE_ERRORS, Input

HEAD_BYTES = 64 * 1024
CHUNK_BYTES = 32 * 1024 * 1024

LINES_SCHEMA = pa.schema([("record_no", pa.int64()), ("line", pa.string()), ("decode_error", pa.string())])


def read_head(path: str, n: int = HEAD_BYTES) -> bytes:
    return Input(path).head(n)


def first_json_line(head: bytes) -> tuple[object | None, str]:
    """Parse the first non-blank line of ``head``.

    Returns ``(value, text)``; ``value`` is None when the line is not complete JSON
    (for example cut at the end of ``head``), ``text`` is the decoded line prefix.
    """
    for raw in head.splitlines():
        text = raw.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
        if not text:
            continue
        try:
            return json.loads(text), text
        except ValueError:
            return None, text
    return None, ""


def _decode_lines(lines: list[bytes], first_no: int) -> pa.Table:
    """Number, decode and filter one block of lines (vectorised; per line only on bad UTF-8)."""
    arr = pa.array(lines, pa.binary())
    nos = pa.array(range(first_no, first_no + len(lines)), pa.int64())
    try:
        text = arr.cast(pa.string())  # validates UTF-8 for the whole block at C speed
        errs = pa.nulls(len(lines), pa.string())
    except pa.ArrowInvalid:
        texts, err_list = [], []
        for raw in lines:
            try:
                texts.append(raw.decode("utf-8"))
                err_list.append(None)
            except UnicodeDecodeError as e:
                texts.append(raw.decode("utf-8", errors="replace"))
                err_list.append(f"invalid UTF-8 at byte {e.start}")
        text, errs = pa.array(texts, pa.string()), pa.array(err_list, pa.string())
    text = pc.replace_substring_regex(text, "\r$", "")
    # blank means JSON whitespace only; other control characters are a (bad) record
    keep = pc.greater(pc.utf8_length(pc.utf8_trim(text, characters=" \t\n\r")), 0)
    return pa.table({"record_no": nos, "line": text, "decode_error": errs}, schema=LINES_SCHEMA).filter(keep)


_JSON_WS = np.frombuffer(b" \t\n\r", np.uint8)  # JSON whitespace (RFC 8259): nothing else is blank
#: bytes of lines per Arrow record batch handed to DuckDB (it scans record batches in parallel)
BATCH_BYTES = 1024 * 1024


def _block_lines(block: bytes, first_no: int) -> tuple[pa.Table, int]:
    """Number, decode and filter the lines of ``block`` (complete lines, each ending in ``\\n``).

    Returns the table of non-blank lines and the number of lines in the block. Vectorised: the
    block without its newlines becomes the data buffer of an Arrow string array whose offsets
    come from the newline positions, validated as UTF-8 in C. A block with invalid UTF-8 takes
    the per-line path of :func:`_decode_lines` so each bad line gets its own error.
    """
    raw = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(raw == 10)
    n = len(newlines)
    # without its newlines, line i of the block spans [newlines[i-1] + 1 - i, newlines[i] - i)
    data = block.replace(b"\n", b"")
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = newlines - np.arange(n)
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return _decode_lines(block.split(b"\n")[:-1], first_no), n
    if b"\r" in data:
        text = pc.replace_substring_regex(text, "\r$", "")
    nos = pa.array(np.arange(first_no, first_no + n, dtype=np.int64))
    table = pa.table({"record_no": nos, "line": text.cast(pa.string()), "decode_error": pa.nulls(n, pa.string())},
                     schema=LINES_SCHEMA)
    # record batches of about BATCH_BYTES each, so DuckDB's threads share the block
    cuts = np.unique(np.searchsorted(offsets, np.arange(BATCH_BYTES, len(data), BATCH_BYTES)))
    bounds = [0, *(int(c) for c in cuts if 0 < c < n), n]
    table = pa.Table.from_batches([b for i in range(len(bounds) - 1)
                                   for b in table.slice(bounds[i], bounds[i + 1] - bounds[i]).to_batches()],
                                  LINES_SCHEMA)
    # only a line starting with JSON whitespace (or empty) can be blank: test just those
    lengths = np.diff(offsets)
    first = np.frombuffer(data, np.uint8)[np.minimum(offsets[:-1], max(len(data) - 1, 0))] if len(data) else lengths
    maybe = np.flatnonzero((lengths == 0) | np.isin(first, _JSON_WS))
    if len(maybe):
        cand = pc.take(text, pa.array(maybe))
        blank = maybe[np.asarray(pc.equal(pc.utf8_length(pc.utf8_trim(cand, characters=" \t\n\r")), 0))]
        if len(blank):
            keep = np.ones(n, bool)
            keep[blank] = False
            table = table.filter(pa.array(keep))
    return table, n


def iter_lines(inp: "Input", chunk_bytes: int = CHUNK_BYTES) -> Iterator[pa.Table]:
    """Yield the non-blank lines of an input as Arrow tables of (record_no, line, decode_error).

    ``record_no`` is the 1-based line number. A line that is not valid UTF-8 is decoded with
    replacement characters and ``decode_error`` says where it broke. When the compressed
    stream turns out corrupt or truncated, the lines decoded so far are yielded, then one
    record whose ``decode_error`` says so.
    """
    line_no = 1
    carry = b""
    error: BaseException | None = None
    # small reads from a decompressor, so damage loses at most the piece being decoded
    piece = 64 * 1024 if inp.compression else chunk_bytes
    pending: list[bytes] = []
    pending_len = 0
    with inp.open() as f:
        while True:
            try:
                chunk = f.read(piece)
            except DECODE_ERRORS as e:
                error, chunk = e, b""
            if chunk:
                pending.append(chunk)
                pending_len += len(chunk)
            if pending and (pending_len >= chunk_bytes or not chunk):
                block = carry + b"".join(pending)
                pending, pending_len = [], 0
                cut = block.rfind(b"\n") + 1
                block, carry = block[:cut], block[cut:]
                if line_no == 1 and block.startswith(b"\xef\xbb\xbf"):
                    block = block[3:]
                if block:
                    table, n = _block_lines(block, line_no)
                    yield table
                    line_no += n
            if not chunk:
                break
    if carry:
        if line_no == 1 and carry.startswith(b"\xef\xbb\xbf"):
            carry = carry[3:]
        yield _decode_lines([carry], line_no)
        line_no += 1
    if error is not None:
        yield pa.table({"record_no": pa.array([line_no], pa.int64()), "line": pa.array([""]),
                        "decode_error": pa.array([f"{inp.compression or 'file'} stream is corrupt or truncated: {error}"])},
                       schema=LINES_SCHEMA)


class Reader:
    """Base class of a line-oriented reader.

    Subclasses set ``name``, ``kind`` and ``sql_scripts`` and implement ``sniff``.
    ``sql_scripts`` name files of ``mcptrace/sql`` that the loader runs, in order, when a file of
    the format starts loading; together they create the temporary view ``_batch_out`` over the
    relation ``_lines(record_no BIGINT, line VARCHAR, decode_error VARCHAR)`` (re-registered for
    every batch), reading the default connection id from the file name as
    ``getvariable('mcptrace_connection_id')``. For ``kind == "messages"`` the view yields the
    wire columns (record_no, ts TIMESTAMPTZ, direction, transport, connection_id, http JSON,
    message JSON, reject_reason VARCHAR, raw VARCHAR: a reject's own text, NULL to keep the
    record's line); for ``kind == "spans"`` the span columns of ``sql/read_otlp_json.sql``.
    A row with a non-NULL ``reject_reason`` goes to ``rejects`` instead.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "messages"
    sql_scripts: ClassVar[tuple[str, ...]] = ()
    #: what a record is called in reject reasons ("line 17: ...", "entry 3: ...")
    record_label: ClassVar[str] = "line"

    def sniff(self, head: bytes) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def batches(self, inp: Input, *, redaction: RedactionPolicy | None = None) -> Iterator[pa.Table]:
        """The records of ``inp`` as Arrow tables of ``(record_no, line, decode_error)``.

        ``redaction`` is the load's policy, for readers that turn HTTP headers or URLs into records
        (the SQL redacts JSON keys itself); ``None`` means the default policy.
        """
        return iter_lines(inp)

    def __repr__(self) -> str:
        return f"<reader {self.name}>"
