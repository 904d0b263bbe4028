"""Opening input files: transparent gzip and zstd, and the Collector's legacy zstd framing.

Compression is detected from magic bytes, not the file name: gzip (``1f 8b``, concatenated
members too), zstd (``28 b5 2f fd``, multiple frames too), and the OpenTelemetry Collector
file exporter's legacy ``compression: zstd`` layout, where every message is its own zstd
frame preceded by a 4-byte big-endian length. Readers see decoded bytes.

Whatever the compression ratio, one read decodes at most about a MiB (:data:`_OUT`) and hands it
out through an offset, so reading is linear and a decompression bomb costs no more memory than
any file; the decoded size of a file is capped at ``max(MAX_RATIO * file size,
MIN_DECODED_BYTES)`` (:class:`DecompressionLimitError`). Damage or truncation raises after every
byte decoded before it (a zstd file ending inside a frame too), so readers keep those records and
reject the rest with :func:`stream_error_reason`.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import BinaryIO

from mcptrace.core.errors import MCPTraceError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: Exceptions a decoding stream raises on corrupt or truncated input.
DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, ValueError)
try:  # pragma: no branch
    import zstandard as _zstd

    DECODE_ERRORS = DECODE_ERRORS + (_zstd.ZstdError,)
except ImportError:  # pragma: no cover - zstandard is a dependency
    _zstd = None


#: bytes handed out per decompression call: what one read can cost in memory, whatever the ratio
_OUT = 1 << 20
#: compressed bytes fed to the zstd decoder per call (a zstd block can expand about 32768-fold)
_ZSTD_IN = 1 << 10
#: decoded bytes allowed per byte of a compressed file before it is taken for a decompression bomb
MAX_RATIO = 10_000
#: decoded bytes always allowed, whatever the ratio
MIN_DECODED_BYTES = 1 << 30


class DecompressionLimitError(ValueError):
    """A compressed file decodes to more than its budget (:data:`MAX_RATIO` times its size, at least
    :data:`MIN_DECODED_BYTES`): reading stops there, like at damage."""



def stream_error_reason(compression: str | None, error: BaseException) -> str:
    """The reject reason for a decoded stream that stopped with ``error``."""
    if isinstance(error, DecompressionLimitError):
        return str(error)
    return f"{compression or 'file'} stream is corrupt or truncated: {error}"


def _is_framed_zstd(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] == ZSTD_MAGIC and struct.unpack(">I", head[:4])[0] > 0


class _Pieces(io.RawIOBase):
    """A raw stream over a generator of decoded pieces (each at most about :data:`_OUT` bytes).

    A piece is handed out through an offset, never re-sliced, so reading is linear whatever the
    caller's read size. An exception of the generator is raised once every byte before it is read.
    """

    def __init__(self) -> None:
        self._gen = self._pieces()
        self._buf = b""
        self._pos = 0
        self._error: BaseException | None = None
        self._done = False

    def _pieces(self):  # pragma: no cover - abstract
        raise NotImplementedError
        yield b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._pos >= len(self._buf):
            if self._done:
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err
                return 0
            try:
                self._buf, self._pos = next(self._gen), 0
            except StopIteration:
                self._done = True
            except DECODE_ERRORS as e:
                self._done, self._error = True, e
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = memoryview(self._buf)[self._pos:self._pos + n]
        self._pos += n
        return n


class _Zstd(_Pieces):
    """zstd decoding (concatenated and skippable frames too) that hands out every byte decoded
    before damage or truncation, then raises: a file ending inside a frame raises ``EOFError``."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        super().__init__()

    def _pieces(self):
        dctx = _zstd.ZstdDecompressor()
        d = dctx.decompressobj()
        fed = False  # whether the current frame has been fed anything
        data = b""
        while True:
            if not data:
                data = self.raw.read(64 * 1024)
                if not data:
                    if fed and not d.eof:
                        raise EOFError("compressed file ended inside a zstd frame")
                    return
            if d.eof:
                data = d.unused_data + data
                d, fed = dctx.decompressobj(), False
                continue
            piece, data = data[:_ZSTD_IN], data[_ZSTD_IN:]
            fed = True
            out = d.decompress(piece)
            if d.eof and d.unused_data:
                data = d.unused_data + data
                d, fed = dctx.decompressobj(), False
            for i in range(0, len(out), _OUT):
                yield out[i:i + _OUT] if len(out) > _OUT else out

    def close(self) -> None:
        self.raw.close()
        super().close()


class _FramedZstd(_Pieces):
    """Decodes ``(u32 big-endian length, zstd frame)*`` into the concatenated messages.

    ``separator`` is written after each message (``b"\\n"`` for JSON lines; for protobuf the
    messages are re-framed with their decoded length instead, so ``reframe=True``). Each frame is
    decoded in pieces: a message is never held whole (re-framing counts it first, then decodes it
    again), and a message of 4 GiB or more (which a length prefix cannot state) raises
    :class:`DecompressionLimitError`.
    """

    #: decoded messages up to this size are kept between counting and handing out
    KEEP = 16 << 20

    def __init__(self, raw: BinaryIO, *, reframe: bool) -> None:
        self.raw = raw
        self.reframe = reframe
        self.dctx = _zstd.ZstdDecompressor()
        try:
            self.left = os.fstat(raw.fileno()).st_size - raw.tell()
        except (OSError, AttributeError, io.UnsupportedOperation):
            self.left = None
        super().__init__()

    def _decode(self, frame: bytes):
        with self.dctx.stream_reader(frame) as r:
            while piece := r.read(_OUT):
                yield piece

    def _pieces(self):
        while True:
            hdr = self.raw.read(4)
            if not hdr:
                return
            if len(hdr) < 4:
                raise EOFError("truncated zstd frame length")
            (n,) = struct.unpack(">I", hdr)
            if self.left is not None:
                self.left -= 4
                if n > self.left:
                    raise EOFError(f"zstd frame of {n} bytes truncated after {self.left}")
                self.left -= n
            frame = self.raw.read(n)
            if len(frame) < n:
                raise EOFError(f"zstd frame of {n} bytes truncated after {len(frame)}")
            if self.reframe:
                kept: list[bytes] | None = []
                size = 0
                for piece in self._decode(frame):
                    size += len(piece)
                    if size > 0xFFFFFFFF:
                        raise DecompressionLimitError(f"a zstd frame of {n} bytes decodes to 4 GiB or more")
                    if kept is not None:
                        kept.append(piece)
                        if size > self.KEEP:
                            kept = None
                yield struct.pack(">I", size)
                yield from (kept if kept is not None else self._decode(frame))
            else:
                last = b"\n"
                for piece in self._decode(frame):
                    last = piece
                    yield piece
                if not last.endswith(b"\n"):
                    yield b"\n"

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Gzip(_Pieces):
    """gzip decoding that hands out every byte decoded before damage or truncation, then raises.

    Damaged deflate data often decodes to garbage for a while before zlib notices (sometimes
    only the CRC at the end of the member does), so bytes decoded shortly before the error
    may be garbled: they still go through the readers' validation like any other record.
    Each decompression call yields at most :data:`_OUT` bytes, whatever the ratio.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        super().__init__()

    def _pieces(self):
        d = zlib.decompressobj(wbits=31)
        data = b""
        while True:
            if not data:
                data = self.raw.read(64 * 1024)
                if not data:
                    if not d.eof:
                        tail = d.flush()
                        if tail:
                            yield tail
                        raise EOFError("compressed file ended before the end-of-stream marker")
                    return
            if d.eof:
                if data.strip(b"\x00"):
                    d = zlib.decompressobj(wbits=31)  # next gzip member
                else:
                    data = b""  # padding after the last member
                continue
            backup = d.copy()
            try:
                out = d.decompress(data, _OUT)
            except zlib.error as e:
                # replay the failing input in small steps to keep what decodes before the error
                for i in range(0, len(data), 64):
                    try:
                        out = backup.decompress(data[i:i + 64])
                    except zlib.error:
                        break
                    for j in range(0, len(out), _OUT):
                        yield out[j:j + _OUT]
                raise e from None
            data = d.unused_data if d.eof else d.unconsumed_tail
            if out:
                yield out

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Budget(io.RawIOBase):
    """Counts the decoded bytes of a stream; past ``budget`` it raises :class:`DecompressionLimitError`."""

    def __init__(self, inner: BinaryIO, budget: int, compression: str, size: int) -> None:
        self.inner = inner
        self.budget = budget
        self.total = 0
        self.what = (f"the {compression} content of this {size}-byte file decodes to more than {budget} bytes "
                     f"(the larger of {MAX_RATIO} times its size and {MIN_DECODED_BYTES} bytes)")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.inner.readinto(b)
        self.total += n or 0
        if self.total > self.budget:
            raise DecompressionLimitError(f"{self.what}: reading stopped there (a decompression bomb?)")
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


class Input:
    """An input file: ``compression`` is ``None``, ``'gzip'``, ``'zstd'`` or ``'zstd-framed'``.

    ``open()`` returns a binary stream of the decoded content; ``head(n)`` its first bytes
    (a decoding error in the head is kept in ``head_error``: the reader meets it again and reports it
    as a reject; when nothing recognisable decoded, the loader reports the file as damaged).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            magic = f.read(8)
        if magic.startswith(GZIP_MAGIC):
            self.compression: str | None = "gzip"
        elif magic.startswith(ZSTD_MAGIC):
            self.compression = "zstd"
        elif _is_framed_zstd(magic):
            self.compression = "zstd-framed"
        else:
            self.compression = None
        self._framed_proto: bool | None = None
        self.head_error: BaseException | None = None

    def open(self) -> BinaryIO:
        """A binary stream of the decoded content, read in pieces whatever the compression ratio.

        Reading raises an error of :data:`DECODE_ERRORS` at damage or truncation (after every byte
        decoded before it), and :class:`DecompressionLimitError` once the decoded content passes
        ``max(MAX_RATIO * file size, MIN_DECODED_BYTES)`` bytes.
        """
        raw = open(self.path, "rb")  # noqa: SIM115 - returned to the caller
        if self.compression is None:
            return raw
        if self.compression == "gzip":
            f: BinaryIO = _Gzip(raw)
        elif self.compression == "zstd":
            f = _Zstd(raw)
        else:
            f = _FramedZstd(raw, reframe=self.framed_proto())
        size = os.fstat(raw.fileno()).st_size
        return _Budget(f, max(MAX_RATIO * size, MIN_DECODED_BYTES), self.compression, size)

    def framed_proto(self) -> bool:
        """Whether the legacy zstd frames hold protobuf (re-framed on decode) rather than JSON."""
        if self._framed_proto is None:
            try:
                with open(self.path, "rb") as f:
                    (n,) = struct.unpack(">I", f.read(4))
                    with _zstd.ZstdDecompressor().stream_reader(f.read(n)) as r:
                        msg = r.read(4096)
            except DECODE_ERRORS + (struct.error,):
                msg = b"{"
            self._framed_proto = msg.lstrip()[:1] not in (b"{", b"[")
        return self._framed_proto

    def head(self, n: int = 64 * 1024) -> bytes:
        out = bytearray()
        try:
            with self.open() as f:
                while len(out) < n:
                    chunk = f.read(min(8192, n - len(out)))
                    if not chunk:
                        break
                    out += chunk
        except DECODE_ERRORS as e:
            self.head_error = e  # what decoded before the damage; the reader reports the damage itself
        return bytes(out)

    def __repr__(self) -> str:
        return f"<Input {self.path} {self.compression or 'plain'}>"


class RangeInput(Input):
    """Lines ``first_record_no``... of a file being followed: bytes ``start`` to ``end`` of an uncompressed
    file (complete lines, from an offset: :mod:`mcptrace.ingest.follow`), read from the file in pieces, so a
    part holding a line of any length costs what reading that line from a whole file costs. Readers number
    its lines from ``first_record_no``, so records keep their line numbers in the whole file."""

    def __init__(self, path: str, start: int, end: int, first_record_no: int) -> None:
        self.path = path
        self.start, self.end = start, end
        self.first_record_no = first_record_no
        self.compression = None
        self._framed_proto = None
        self.head_error = None

    def open(self) -> BinaryIO:
        return io.BufferedReader(_FileRange(self.path, self.start, self.end))


class _FileRange(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file, as a raw stream. Raises :class:`mcptrace.MCPTraceError` (not a
    decoding error: the part fails, no reject is recorded) when the file ends before ``end``: truncated
    since the range was hashed."""

    def __init__(self, path: str, start: int, end: int) -> None:
        self._f = None
        self.path = path
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed with the stream
        try:
            f.seek(start)
        except BaseException:
            f.close()
            raise
        self._f = f
        self._left = max(end - start, 0)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        got = self._f.readinto(memoryview(b)[:n]) or 0
        if not got:
            raise MCPTraceError(f"{self.path}: shrank while being read (truncated or replaced); "
                                   "load it into a new database")
        self._left -= got
        return got

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
        super().close()

