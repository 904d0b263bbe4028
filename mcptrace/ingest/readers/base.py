"""Shared reader machinery: reading heads, splitting (decoded) files into numbered lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mcptrace.core.redact import RedactionPolicy
from mcptrace.core.sqlfiles import statements
from mcptrace.ingest.options import MAX_RECORD_BYTES
from mcptrace.ingest.readers.inputs import DECODE_ERRORS, Input, stream_error_reason

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


def _decode_lines(lines: list[bytes], first_no: int, limit: int | None = None) -> pa.Table:
    """Number, decode and filter one block of lines (vectorised; per line only on bad UTF-8 or a
    line over ``limit`` bytes, which is rejected with its size)."""
    arr = pa.array(lines, pa.binary())
    nos = pa.array(range(first_no, first_no + len(lines)), pa.int64())
    over = limit is not None and any(len(raw) > limit for raw in lines)
    try:
        if over:
            raise pa.ArrowInvalid("a line over the limit")
        text = arr.cast(pa.string())  # validates UTF-8 for the whole block at C speed
        errs = pa.nulls(len(lines), pa.string())
    except pa.ArrowInvalid:
        texts, err_list = [], []
        for raw in lines:
            if limit is not None and len(raw) > limit:
                texts.append(raw[:RAW_HEAD].decode("utf-8", errors="replace"))
                err_list.append(f"record of {len(raw)} bytes exceeds the limit of {limit} bytes")
                continue
            try:
                texts.append(raw.decode("utf-8"))
                err_list.append(None)
            except UnicodeDecodeError as e:
                texts.append(raw.decode("utf-8", errors="replace"))
                err_list.append(f"invalid UTF-8 at byte {e.start}")
        text, errs = pa.array(texts, pa.string()), pa.array(err_list, pa.string())
    text = pc.replace_substring_regex(text, "\r$", "")
    # blank means JSON whitespace only; other control characters are a (bad) record
    keep = pc.or_(pc.greater(pc.utf8_length(pc.utf8_trim(text, characters=" \t\n\r")), 0), pc.is_valid(errs))
    return pa.table({"record_no": nos, "line": text, "decode_error": errs}, schema=LINES_SCHEMA).filter(keep)


_JSON_WS = np.frombuffer(b" \t\n\r", np.uint8)  # JSON whitespace (RFC 8259): nothing else is blank
#: bytes of lines per Arrow record batch handed to DuckDB (it scans record batches in parallel)
BATCH_BYTES = 1024 * 1024


def _block_lines(block: bytes, first_no: int, limit: int | None = None,
                 data: bytes | None = None) -> tuple[pa.Table, int]:
    """Number, decode and filter the lines of ``block`` (complete lines, each ending in ``\\n``).

    Returns the table of non-blank lines and the number of lines in the block. Vectorised: the
    block without its newlines becomes the data buffer of an Arrow string array whose offsets
    come from the newline positions, validated as UTF-8 in C. A block with invalid UTF-8, or
    with a line over ``limit`` bytes, takes the per-line path of :func:`_decode_lines` so each
    bad line gets its own error. ``data`` is ``block`` without its newlines, when the caller has it.
    """
    raw = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(raw == 10)
    n = len(newlines)
    # without its newlines, line i of the block spans [newlines[i-1] + 1 - i, newlines[i] - i)
    if data is None:
        data = block.replace(b"\n", b"")
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = newlines - np.arange(n)
    if limit is not None and n and int(np.diff(offsets).max()) > limit:
        return _decode_lines(block.split(b"\n")[:-1], first_no, limit), n
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return _decode_lines(block.split(b"\n")[:-1], first_no, limit), n
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


#: lines per piece of a block handed to :func:`_block_lines` (bounds its index arrays)
_LINES_PER_PIECE = 1 << 20
_WHITESPACE = b" \t\r\n"
#: bytes of an oversized line kept as its reject's raw text
RAW_HEAD = 4096


def _oversized(no: int, size: int, limit: int, head: bytes, complete: bool = True) -> pa.Table:
    """The reject row of a line over ``limit`` bytes: its first bytes, and its size in the reason."""
    size_text = f"{size} bytes" if complete else f"at least {size} bytes"
    return pa.table({"record_no": pa.array([no], pa.int64()),
                     "line": pa.array([head[:RAW_HEAD].decode("utf-8", errors="replace")], pa.string()),
                     "decode_error": pa.array([f"record of {size_text} exceeds the limit of {limit} bytes"])},
                    schema=LINES_SCHEMA)


def _head(parts: list[bytes]) -> bytes:
    """The first :data:`RAW_HEAD` bytes of the concatenation of ``parts`` (joining only those)."""
    out, n = [], 0
    for p in parts:
        out.append(p)
        n += len(p)
        if n >= RAW_HEAD:
            break
    return b"".join(out)[:RAW_HEAD]


def _pieces(block: bytes) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of consecutive pieces of ``block`` (complete lines), each of at most
    :data:`_LINES_PER_PIECE` lines; the whole block when it holds no more than that."""
    end = len(block)
    count = block.count(b"\n")
    if count <= _LINES_PER_PIECE:
        yield 0, end
        return
    # a window expected to hold about half the lines allowed, from the block's mean line length
    window = max(_LINES_PER_PIECE, _LINES_PER_PIECE * end // (2 * count))
    pos = 0
    while pos < end:
        w = window
        while True:
            stop = pos + w
            if stop >= end:
                cut = end
            else:
                cut = block.rfind(b"\n", pos, stop) + 1
                if cut <= pos:  # one line longer than the window
                    cut = block.find(b"\n", stop) + 1
            if w <= _LINES_PER_PIECE or block.count(b"\n", pos, cut) <= _LINES_PER_PIECE:
                break
            w //= 2
        yield pos, cut
        pos = cut


def _split_block(block: bytes, first_no: int, limit: int) -> Iterator[tuple[pa.Table | None, int]]:
    """:func:`_block_lines` over pieces of ``block`` (see :func:`_pieces`); a piece of JSON
    whitespace only is counted without building anything. Lines over ``limit`` bytes are rejected."""
    if block[:1] in (b" ", b"\t", b"\r", b"\n") and not block.translate(None, _WHITESPACE):
        yield None, block.count(b"\n")
        return
    data = block.replace(b"\n", b"")
    if len(block) - len(data) <= _LINES_PER_PIECE:
        yield _block_lines(block, first_no, limit, data)
        return
    del data
    no = first_no
    for start, end in _pieces(block):
        piece = block if (start, end) == (0, len(block)) else block[start:end]
        if piece[:1] in (b" ", b"\t", b"\r", b"\n") and not piece.translate(None, _WHITESPACE):
            n = piece.count(b"\n")
            yield None, n
        else:
            table, n = _block_lines(piece, no, limit)
            yield table, n
        no += n


def iter_lines(inp: "Input", chunk_bytes: int = CHUNK_BYTES, *,
               max_record_bytes: int | None = None) -> Iterator[pa.Table]:
    """Yield the non-blank lines of an input as Arrow tables of (record_no, line, decode_error).

    ``record_no`` is the 1-based line number (in the whole file for a followed file's later lines:
    ``inp.first_record_no``). A line that is not valid UTF-8 is decoded with
    replacement characters and ``decode_error`` says where it broke. A line longer than
    ``max_record_bytes`` bytes (without its newline; ``None``: :data:`MAX_RECORD_BYTES`) is never
    held whole: it is read to its end, counting, and becomes one row whose ``line`` is its first
    :data:`RAW_HEAD` bytes and whose ``decode_error`` gives its size (``record of N bytes exceeds the limit of M bytes``). When
    the compressed stream turns out corrupt or truncated (or over its decoded-size budget), the
    lines decoded so far are yielded, then one record whose ``decode_error`` says so.

    Time is linear in the decoded size and memory is bounded by ``chunk_bytes`` plus
    ``max_record_bytes``: every decoded byte is joined into a block once.
    """
    limit = MAX_RECORD_BYTES if max_record_bytes is None else max_record_bytes
    line_no = getattr(inp, "first_record_no", 1)  # a followed file's later lines keep their numbers
    error: BaseException | None = None
    # small reads from a decompressor, so damage loses at most the piece being decoded
    piece = 64 * 1024 if inp.compression else chunk_bytes
    block: list[bytes] = []  # complete lines, the last ending in b"\n"
    block_len = 0
    tail: list[bytes] = []  # the unfinished line (dropped once it is over the limit)
    tail_len = 0
    skipping = False
    head = b""  # the first bytes of a line being skipped
    bom = True  # a UTF-8 BOM may open the first line

    def flush() -> Iterator[pa.Table]:
        nonlocal block, block_len, line_no, bom
        if not block:
            return
        data = block[0] if len(block) == 1 else b"".join(block)
        block, block_len = [], 0
        if bom and line_no == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        bom = False
        for table, n in _split_block(data, line_no, limit):
            if table is not None and table.num_rows:
                yield table
            line_no += n

    with inp.open() as f:
        while True:
            try:
                chunk = f.read(piece)
            except DECODE_ERRORS as e:
                error, chunk = e, b""
            if not chunk:
                break
            last = chunk.rfind(b"\n")
            if last < 0:  # the unfinished line goes on
                tail_len += len(chunk)
                if not skipping:
                    tail.append(chunk)
                    if tail_len > limit:
                        skipping, head, tail = True, _head(tail), []
                continue
            if not block and not tail_len and last + 1 == len(chunk) and (
                    chunk.count(b"\n") == len(chunk)
                    or (chunk[:1] in (b" ", b"\t", b"\r") and not chunk.translate(None, _WHITESPACE))):
                line_no += chunk.count(b"\n")  # blank lines between blocks: counted, nothing built
                continue
            first = chunk.find(b"\n")
            if skipping or tail_len + first > limit:
                # the line over the limit ends here: lines before it first, then its reject
                if not skipping:
                    head = _head([*tail, chunk[:RAW_HEAD]])
                yield from flush()
                bom = False
                yield _oversized(line_no, tail_len + first, limit, head)
                line_no += 1
                skipping, head, tail, tail_len = False, b"", [], 0
                if first < last:
                    block.append(chunk[first + 1:last + 1])
                    block_len += last - first
            else:
                block.extend(tail)
                block.append(chunk[:last + 1] if last + 1 < len(chunk) else chunk)
                block_len += tail_len + last + 1
                tail, tail_len = [], 0
            if last + 1 < len(chunk):
                rest = chunk[last + 1:]
                tail_len = len(rest)
                if tail_len > limit:
                    skipping, head = True, rest[:RAW_HEAD]
                else:
                    tail = [rest]
            if block_len + tail_len >= chunk_bytes:
                yield from flush()
    yield from flush()
    if skipping:
        yield _oversized(line_no, tail_len, limit, head, complete=error is None)
        line_no += 1
    elif tail:
        carry = b"".join(tail)
        if bom and line_no == 1 and carry.startswith(b"\xef\xbb\xbf"):
            carry = carry[3:]
        yield _decode_lines([carry], line_no, limit)
        line_no += 1
    if error is not None:
        yield pa.table({"record_no": pa.array([line_no], pa.int64()), "line": pa.array([""]),
                        "decode_error": pa.array([stream_error_reason(inp.compression, error)])},
                       schema=LINES_SCHEMA)


#: a statement creating a temporary view, and the view's name
_TEMP_VIEW = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+VIEW\s+(\w+)", re.I | re.M)


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

    def temp_views(self) -> list[str]:
        """The temporary views ``sql_scripts`` create, in the order they run (the loader drops them after
        each file)."""
        return [m.group(1) for name in self.sql_scripts for stmt in statements(name) if (m := _TEMP_VIEW.search(stmt))]

    def head_wanted(self, head: bytes) -> int:
        """How many first bytes ``sniff`` needs to decide when ``head`` (:data:`HEAD_BYTES` of a
        larger file) was not enough; 0 when more would not help. Binary formats whose first record
        can be larger than the head override it."""
        return 0

    def batches(self, inp: Input, *, redaction: RedactionPolicy | None = None,
                max_record_bytes: int | None = None) -> Iterator[pa.Table]:
        """The records of ``inp`` as Arrow tables of ``(record_no, line, decode_error)``.

        ``redaction`` is the load's policy, for readers that turn HTTP headers or URLs into records
        (the SQL redacts JSON keys itself); ``None`` means the default policy. A record over
        ``max_record_bytes`` bytes (decoded; ``None``: :data:`MAX_RECORD_BYTES`) is not read: it
        becomes one row whose ``decode_error`` gives its size (see :func:`iter_lines`).
        """
        return iter_lines(inp, max_record_bytes=max_record_bytes)

    def __repr__(self) -> str:
        return f"<reader {self.name}>"
