"""OTLP/protobuf trace dumps, decoded with ``opentelemetry-proto``.

Two layouts of ``opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest``:

- the OpenTelemetry Collector file exporter's ``format: proto``: repeated (4-byte big-endian
  length, message). Gzip/zstd files and the legacy ``compression: zstd`` per-message frames are
  decoded (and re-framed) by :mod:`mcptrace.ingest.readers.inputs` before this reader sees bytes;
- one bare message (an OTLP/HTTP request body saved to a file).

A file whose first byte is 0 is framing (a bare message cannot start with field number 0);
otherwise it is framing when its first length prefix fits and that frame parses as a request with
spans, else a bare message. Each message is converted to the Collector file-exporter JSON line
form (``MessageToDict(..., use_integers_for_enums=True)``, base64 ids to lowercase hex) and run
through the OTLP/JSON reader's SQL (``sql/read_otlp_json.sql``), so the
``spans`` rows are the same as from OTLP/JSON.

Records are frames (``record_label`` is ``"frame"``; a bare message is frame 1). A frame over the
load's ``max_record_bytes`` (or :attr:`OtlpProtoReader.max_frame_bytes`, 1 GiB) is read past
without being held and rejected with its size; reading goes on with the next frame. A length
prefix larger than what is left of the file, a truncated length prefix and a corrupt compressed
stream end the file with one reject (the claimed size is never allocated; frames read before
stay). A frame that does not parse is rejected and reading goes on with the next frame. A bare
message is all or nothing.
"""

from __future__ import annotations

import gc
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
from google.protobuf import unknown_fields
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from mcptrace.core.redact import RedactionPolicy
from mcptrace.ingest.readers.base import HEAD_BYTES, Reader
from mcptrace.ingest.options import MAX_RECORD_BYTES
from mcptrace.ingest.readers.inputs import DECODE_ERRORS, Input, stream_error_reason
from mcptrace.ingest.readers.otlp_doc import RecordBuffer, b64_id_to_hex, dumps_line, normalize_ids
from mcptrace.ingest.readers.otlp_json import OtlpJsonReader

MAX_FRAME_BYTES = 1 << 30
_PIECE = 1 << 20


# -- sniffing ----------------------------------------------------------------------------------------
def _parse(cls, data: bytes):
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        return None
    return msg


def _n_unknown(msg) -> int:
    return len(unknown_fields.UnknownFieldSet(msg))


def _plausible_span(span: Span) -> bool:
    return (len(span.trace_id) == 16 and len(span.span_id) == 8 and len(span.parent_span_id) in (0, 8)
            and span.start_time_unix_nano > 0 and not _n_unknown(span))


_SPANS_TRIED = 8


def _plausible_request(msg: ExportTraceServiceRequest | None) -> bool:
    """A parsed request with one of its first spans looking like a real one (not, say, metrics)."""
    if msg is None or not msg.resource_spans or _n_unknown(msg):
        return False
    tried = 0
    for rs in msg.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                if _plausible_span(span):
                    return True
                tried += 1
                if tried >= _SPANS_TRIED:
                    return False
    return False


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7
    return None


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Field boundaries of a (possibly truncated) message: ``(number, wire type, start, end)``.

    Only for sniffing a message cut at the end of the head: it finds where the complete
    sub-messages are, which are then parsed by opentelemetry-proto. ``end`` of the last field may
    lie past ``end`` of the buffer (truncated). Stops at anything malformed.
    """
    pos = start
    while pos < end:
        tag = _varint(buf, pos)
        if tag is None:
            return
        key, pos = tag
        number, wire = key >> 3, key & 7
        if number == 0:
            return
        if wire == 0:
            v = _varint(buf, pos)
            if v is None:
                return
            yield number, wire, pos, v[1]
            pos = v[1]
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            yield number, wire, pos, pos + n
            pos += n
        elif wire == 2:
            v = _varint(buf, pos)
            if v is None:
                return
            length, pos = v
            yield number, wire, pos, pos + length
            pos += length
        else:
            return


#: the wire type of each ``Span`` field (opentelemetry/proto/trace/v1/trace.proto)
_SPAN_FIELDS = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 0, 7: 1, 8: 1, 9: 2, 10: 0, 11: 2, 12: 0, 13: 2, 14: 0, 15: 2, 16: 5}


def _plausible_span_prefix(buf: bytes, start: int) -> bool:
    """A span cut by the end of ``buf`` (a large attribute, event or link): every field before the cut
    is a ``Span`` field of the right wire type, and its ids and start time, which precede attributes,
    events and links on the wire, look real."""
    seen: dict[int, bytes] = {}
    for number, wire, fs, fe in _fields(buf, start, len(buf)):
        if _SPAN_FIELDS.get(number) != wire:
            return False
        if fe > len(buf):
            break
        seen[number] = buf[fs:fe]
    return (len(seen.get(1, b"")) == 16 and len(seen.get(2, b"")) == 8 and len(seen.get(4, b"")) in (0, 8)
            and int.from_bytes(seen.get(7, bytes(8)), "little") > 0)


def _plausible_prefix(buf: bytes) -> bool:
    """Whether a request cut short (larger than the head) starts like OTLP traces.

    The first ``ResourceSpans`` is walked down to its complete ``Resource``, ``ScopeSpans``,
    ``InstrumentationScope`` and ``Span`` sub-messages; each is parsed with opentelemetry-proto
    and one of the complete spans must look real, or the span cut by the end of ``buf`` must
    (:func:`_plausible_span_prefix`: a first frame or message larger than the head whose first span
    holds a large attribute).
    """
    top = next(_fields(buf, 0, len(buf)), None)
    if top is None or top[:2] != (1, 2):
        return False
    _, _, s, e = top
    if e <= len(buf):
        return _plausible_request(_parse(ExportTraceServiceRequest, buf[:e]))
    for number, wire, fs, fe in _fields(buf, s, len(buf)):
        complete = fe <= len(buf)
        if number == 1 and wire == 2:
            if complete and (_parse(Resource, buf[fs:fe]) is None):
                return False
        elif number == 2 and wire == 2:
            if complete:
                ss = _parse(ScopeSpans, buf[fs:fe])
                if ss is None or _n_unknown(ss):
                    return False
                if any(_plausible_span(span) for span in ss.spans[:_SPANS_TRIED]):
                    return True
                continue
            for n2, w2, s2, e2 in _fields(buf, fs, len(buf)):
                if e2 > len(buf):
                    return (n2, w2) == (2, 2) and _plausible_span_prefix(buf, s2)
                if (n2, w2) == (1, 2):
                    if _parse(InstrumentationScope, buf[s2:e2]) is None:
                        return False
                elif (n2, w2) == (2, 2):
                    span = _parse(Span, buf[s2:e2])
                    if span is None:
                        return False
                    if _plausible_span(span):
                        return True
                elif (n2, w2) != (3, 2):
                    return False
        elif (number, wire) != (3, 2):
            return False
    return False


#: the most a sniff reads of a first request larger than the head (its resource can be large)
SNIFF_MAX_BYTES = 16 << 20


def head_wanted(head: bytes) -> int:
    """Bytes that cover the first request (framed: the frame; bare: the first ``ResourceSpans``) when
    ``head`` starts like one, at most :data:`SNIFF_MAX_BYTES`; else 0."""
    if len(head) >= 5:
        (n,) = struct.unpack(">I", head[:4])
        if 0 < n <= MAX_FRAME_BYTES and head[4:5] == b"\x0a":
            return min(4 + n, SNIFF_MAX_BYTES)
    top = next(_fields(head, 0, len(head)), None) if head[:1] == b"\x0a" else None
    return min(top[3], SNIFF_MAX_BYTES) if top is not None and top[:2] == (1, 2) else 0


def sniff_framed(head: bytes) -> bool:
    if len(head) < 5:
        return False
    (n,) = struct.unpack(">I", head[:4])
    if n == 0 or n > MAX_FRAME_BYTES:
        return False
    if 4 + n <= len(head):
        return _plausible_request(_parse(ExportTraceServiceRequest, head[4:4 + n]))
    return _plausible_prefix(head[4:])


def sniff_bare(head: bytes) -> bool:
    if head[:1] != b"\x0a":
        return False
    if len(head) < HEAD_BYTES:  # the whole (small) file
        return _plausible_request(_parse(ExportTraceServiceRequest, head))
    return _plausible_prefix(head)


# -- reading -----------------------------------------------------------------------------------------
class _Stream:
    """Bounded reads from a decoded input; remembers a decoding error instead of raising it."""

    def __init__(self, f: BinaryIO, inp: Input) -> None:
        self.f = f
        self.inp = inp
        self.size = os.path.getsize(inp.path) if inp.compression is None else None
        self.pos = 0
        self.error: BaseException | None = None

    @property
    def where(self) -> str:
        return "the file" if self.inp.compression is None else f"the {self.inp.compression}-decompressed file"

    def _pieces(self, n: int) -> Iterator[bytes]:
        """The next ``n`` bytes in pieces of at most ``_PIECE``, fewer at the end or at damage (kept in
        ``error``); ``pos`` advances with each piece."""
        got = 0
        while got < n and self.error is None:
            try:
                chunk = self.f.read(min(_PIECE, n - got))
            except DECODE_ERRORS as e:
                self.error = e
                return
            if not chunk:
                return
            got += len(chunk)
            self.pos += len(chunk)
            yield chunk

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer at the end or at damage; never allocates more than what is read."""
        parts = list(self._pieces(n))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def skip(self, n: int) -> int:
        """Read and drop up to ``n`` bytes; how many there were."""
        return sum(len(chunk) for chunk in self._pieces(n))

    def stream_error(self) -> str:
        return stream_error_reason(self.inp.compression, self.error)


def request_to_line(msg: ExportTraceServiceRequest) -> str:
    """One request as a Collector file-exporter JSON line (hex ids, integer enums, int64 as strings)."""
    doc = MessageToDict(msg, use_integers_for_enums=True)
    normalize_ids(doc.get("resourceSpans", []), b64_id_to_hex)
    return dumps_line(doc)


def _too_large(size: int, limit: int) -> str:
    return f"record of {size} bytes exceeds the limit of {limit} bytes"


def _unusable(msg: ExportTraceServiceRequest) -> str | None:
    if not msg.resource_spans and _n_unknown(msg):
        return (f"not an OTLP ExportTraceServiceRequest: no resourceSpans, {_n_unknown(msg)} fields of "
                "unknown numbers")
    return None


class OtlpProtoReader(Reader):
    """OTLP/protobuf ``ExportTraceServiceRequest`` files; see the module docstring."""

    name = "otlp_proto"
    kind = "spans"
    sql_scripts = OtlpJsonReader.sql_scripts
    record_label = "frame"
    #: a frame (or bare message) larger than this many bytes is refused
    max_frame_bytes: int = MAX_FRAME_BYTES

    def sniff(self, head: bytes) -> bool:
        return sniff_framed(head) or sniff_bare(head)

    def head_wanted(self, head: bytes) -> int:
        return head_wanted(head)

    def batches(self, inp: Input, *, redaction: RedactionPolicy | None = None,
                max_record_bytes: int | None = None) -> Iterator[pa.Table]:
        """The frames of ``inp`` as rows of Collector file-exporter JSON lines (see the module
        docstring). A frame (or bare message) over ``max_record_bytes`` bytes (``None``:
        :data:`~mcptrace.ingest.options.MAX_RECORD_BYTES`), or over :attr:`max_frame_bytes`, is read
        past without being held and rejected with its size; the frames after it load."""
        buf = RecordBuffer()
        limit = MAX_RECORD_BYTES if max_record_bytes is None else max_record_bytes
        with inp.open() as f:
            s = _Stream(f, inp)
            yield from self._read(s, buf, min(self.max_frame_bytes, limit))
        table = buf.take()
        if table is not None:
            yield table

    def _add(self, buf: RecordBuffer, frame_no: int, body: bytes) -> None:
        msg = ExportTraceServiceRequest()
        try:
            msg.ParseFromString(body)
        except (DecodeError, ValueError, RuntimeError) as e:
            detail = str(e).rsplit("': ", 1)[-1] or type(e).__name__
            buf.add(frame_no, body[:2048].hex(), f"not an OTLP ExportTraceServiceRequest (protobuf: {detail})")
            return
        why = _unusable(msg)
        if why:
            buf.add(frame_no, body[:2048].hex(), why)
            return
        if not msg.resource_spans:
            return  # an empty request: nothing to load, nothing lost
        enabled = gc.isenabled()
        gc.disable()  # building large dicts: the collector would walk them again and again
        try:
            buf.add(frame_no, request_to_line(msg))
        finally:
            if enabled:
                gc.enable()

    def _read(self, s: _Stream, buf: RecordBuffer, limit: int) -> Iterator[pa.Table]:
        hdr = s.read(4)
        if not hdr:
            if s.error is not None:
                buf.add(1, None, s.stream_error())
            return
        if hdr[0] == 0:  # framing: a bare message cannot start with field number 0
            yield from self._frames(s, buf, 0, hdr, limit)
            return
        if len(hdr) == 4:
            # a first byte other than 0: a first frame of 16 MiB or more, or a bare message
            (n,) = struct.unpack(">I", hdr)
            fits = n <= self.max_frame_bytes and (s.size is None or n <= s.size - 4)
            if fits and n > limit:
                # too large to read whole: told apart from a bare message by its first bytes
                body = s.read(HEAD_BYTES)
                if len(body) == HEAD_BYTES and _plausible_prefix(body):
                    left = s.skip(n - len(body))
                    if left < n - len(body):
                        why = s.stream_error() if s.error is not None else \
                            f"length {n} exceeds the {len(body) + left} bytes left in {s.where}"
                        buf.add(1, (hdr + body[:2044]).hex(), why)
                        return
                    buf.add(1, (hdr + body[:2044]).hex(), _too_large(n, limit))
                    yield from self._frames(s, buf, 1, b"", limit)
                    return
            else:
                body = s.read(n) if fits else b""
                if fits and len(body) == n and _plausible_request(_parse(ExportTraceServiceRequest, body)):
                    self._add(buf, 1, body)
                    yield from self._frames(s, buf, 1, b"", limit)
                    return
            hdr += body
        self._bare(s, buf, hdr, limit)

    def _frames(self, s: _Stream, buf: RecordBuffer, frame_no: int, pending: bytes,
                limit: int) -> Iterator[pa.Table]:
        while True:
            if buf.full:
                yield buf.take()
            hdr = pending or s.read(4)
            pending = b""
            frame_no += 1
            if not hdr:
                if s.error is not None:
                    buf.add(frame_no, None, s.stream_error())
                return
            if len(hdr) < 4:
                why = s.stream_error() if s.error is not None else \
                    f"truncated length prefix: {len(hdr)} of 4 bytes at the end of {s.where}"
                buf.add(frame_no, hdr.hex(), why)
                return
            (n,) = struct.unpack(">I", hdr)
            if s.size is not None and n > s.size - s.pos:
                buf.add(frame_no, hdr.hex(), f"length {n} exceeds the {s.size - s.pos} bytes left in {s.where}")
                return
            if n > limit:
                left = s.skip(n)
                if s.error is not None:
                    buf.add(frame_no, hdr.hex(), s.stream_error())
                    return
                if left < n:
                    buf.add(frame_no, hdr.hex(), f"length {n} exceeds the {left} bytes left in {s.where}")
                    return
                buf.add(frame_no, hdr.hex(), _too_large(n, limit))  # read past: the next frames load
                continue
            body = s.read(n)
            if len(body) < n:
                why = s.stream_error() if s.error is not None else \
                    f"length {n} exceeds the {len(body)} bytes left in {s.where}"
                buf.add(frame_no, (hdr + body[:2044]).hex(), why)
                return
            self._add(buf, frame_no, body)

    def _bare(self, s: _Stream, buf: RecordBuffer, start: bytes, limit: int) -> None:
        """One bare message: all of it parses or it is one reject (over ``limit`` bytes: read past,
        counting, and rejected with its size)."""
        rest = s.read(limit + 1 - len(start)) if len(start) <= limit else b""
        data = start + rest
        if len(data) > limit:
            size = len(data) + s.skip(1 << 62)
            why = s.stream_error() if s.error is not None else _too_large(size, limit)
            buf.add(1, data[:2048].hex(), why)
            return
        if s.error is not None:
            buf.add(1, data[:2048].hex(), s.stream_error())
            return
        self._add(buf, 1, data)
