"""Opening input files: transparent gzip and zstd, and the Collector's legacy zstd framing.

Compression is detected from magic bytes, not the file name: gzip (``1f 8b``, concatenated
members too), zstd (``28 b5 2f fd``, multiple frames too), and the OpenTelemetry Collector
file exporter's legacy ``compression: zstd`` layout, where every message is its own zstd
frame preceded by a 4-byte big-endian length. Readers see decoded bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: Exceptions a decoding stream raises on corrupt or truncated input.
DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, ValueError)
try:  # pragma: no branch
    import zstandard as _zstd

    DECODE_ERRORS = DECODE_ERRORS + (_zstd.ZstdError,)
except ImportError:  # pragma: no cover - zstandard is a dependency
    _zstd = None


def _is_framed_zstd(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] == ZSTD_MAGIC and struct.unpack(">I", head[:4])[0] > 0


class _FramedZstd(io.RawIOBase):
    """Decodes ``(u32 big-endian length, zstd frame)*`` into the concatenated messages.

    ``separator`` is written after each message (``b"\\n"`` for JSON lines; for protobuf the
    messages are re-framed with their decoded length instead, so ``reframe=True``).
    """

    def __init__(self, raw: BinaryIO, *, reframe: bool) -> None:
        self.raw = raw
        self.reframe = reframe
        self.buf = b""
        self.dctx = _zstd.ZstdDecompressor()

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        hdr = self.raw.read(4)
        if not hdr:
            return b""
        if len(hdr) < 4:
            raise EOFError("truncated zstd frame length")
        (n,) = struct.unpack(">I", hdr)
        frame = self.raw.read(n)
        if len(frame) < n:
            raise EOFError(f"zstd frame of {n} bytes truncated after {len(frame)}")
        msg = self.dctx.decompress(frame, max_output_size=1 << 31)
        if self.reframe:
            return struct.pack(">I", len(msg)) + msg
        return msg if msg.endswith(b"\n") else msg + b"\n"

    def readinto(self, b) -> int:
        while len(self.buf) < len(b):
            more = self._next()
            if not more:
                break
            self.buf += more
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


class _Gzip(io.RawIOBase):
    """gzip decoding that hands out every byte decoded before damage or truncation, then raises.

    Damaged deflate data often decodes to garbage for a while before zlib notices (sometimes
    only the CRC at the end of the member does), so bytes decoded shortly before the error
    may be garbled: they still go through the readers' validation like any other record.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.d = zlib.decompressobj(wbits=31)
        self.buf = b""
        self.done = False

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while len(self.buf) < want and not self.done:
            data = self.raw.read(64 * 1024)
            if not data:
                self.done = True
                if not self.d.eof:
                    self.buf += self.d.flush()
                    self._pending_error = EOFError("compressed file ended before the end-of-stream marker")
                return
            while data:
                piece, data = data[:65536], data[65536:]
                backup = self.d.copy()
                try:
                    self.buf += self.d.decompress(piece)
                except zlib.error as e:
                    # replay the failing piece in small steps to keep what decodes before the error
                    for i in range(0, len(piece), 64):
                        try:
                            self.buf += backup.decompress(piece[i:i + 64])
                        except zlib.error:
                            break
                    self.done = True
                    self._pending_error = e
                    return
                if not self.d.eof:
                    continue
                data = self.d.unused_data + data
                if self.d.eof and data.strip(b"\x00"):
                    self.d = zlib.decompressobj(wbits=31)  # next gzip member
                elif self.d.eof:
                    data = b""

    _pending_error: BaseException | None = None

    def readinto(self, b) -> int:
        self._fill(len(b))
        if not self.buf and self._pending_error is not None:
            err, self._pending_error = self._pending_error, None
            raise err
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class Input:
    """An input file: ``compression`` is ``None``, ``'gzip'``, ``'zstd'`` or ``'zstd-framed'``.

    ``open()`` returns a binary stream of the decoded content; ``head(n)`` its first bytes
    (decoding errors in the head are swallowed: the reader meets them again and reports them).
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

    def open(self) -> BinaryIO:
        raw = open(self.path, "rb")  # noqa: SIM115 - returned to the caller
        if self.compression == "gzip":
            return _Gzip(raw)
        if self.compression == "zstd":
            return _zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        if self.compression == "zstd-framed":
            return _FramedZstd(raw, reframe=self.framed_proto())
        return raw

    def framed_proto(self) -> bool:
        """Whether the legacy zstd frames hold protobuf (re-framed on decode) rather than JSON."""
        if self._framed_proto is None:
            try:
                with open(self.path, "rb") as f:
                    (n,) = struct.unpack(">I", f.read(4))
                    msg = _zstd.ZstdDecompressor().decompress(f.read(n), max_output_size=1 << 31)
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
        except DECODE_ERRORS:
            pass  # what decoded before the damage; the reader reports the damage itself
        return bytes(out)

    def __repr__(self) -> str:
        return f"<Input {self.path} {self.compression or 'plain'}>"
