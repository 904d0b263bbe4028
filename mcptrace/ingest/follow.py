"""Following a capture that is still being written (``mcptrace load --follow``, ``Workspace.follow``).

A followed file is read in parts of complete lines from the offset its ``sources`` row records
(``read_offset``, ``read_lines``: every load of an uncompressed one-record-per-line file records them),
so a follow can stop and start again, and a file first loaded whole can then be followed. Each part is
loaded by :meth:`mcptrace.ingest.loader.Loader.load_part` into the file's one ``sources`` row; its
records keep their line numbers. A line still being written (no newline yet) waits for the next part.
Before going on from an offset, the bytes before it are hashed again and compared with the row's
``sha256``: a file rewritten, truncated or replaced since is not appended to. A part is a range of the
file, read when it loads in pieces like any input: a line of any length is never held whole, and one
over ``LoadOptions.max_record_bytes`` is rejected as a load of the whole file rejects it.
"""

from __future__ import annotations

import hashlib
import os
import stat

import duckdb

from mcptrace.core.db import one
from mcptrace.core.errors import MCPTraceError
from mcptrace.ingest.loader import FOLLOWABLE, FilePart, FileReport, not_a_regular_file
from mcptrace.ingest.readers.inputs import GZIP_MAGIC, ZSTD_MAGIC

#: bytes a part holds at most (a part holding a longer line goes on to its newline)
PART_BYTES = 1 << 20
#: bytes read at a time while looking for a part's end and hashing it
_PIECE = 1 << 20
#: bytes the part after one whose analysis ran in full may hold: a full rebuild costs the same whatever the
#: part holds, so the follow catches up with what was written meanwhile instead of paying a rebuild per
#: :data:`PART_BYTES` (a part is read from the file in pieces when it loads, as any input)
CATCH_UP_BYTES = 64 << 20


class FollowedFile:
    """One file being followed: where the next part starts (``offset`` bytes, ``lines`` lines read) and
    the ``sources`` row and format of the parts before. Raises :class:`mcptrace.MCPTraceError` when the
    file cannot be followed: compressed, of a format that is not one record per line, or changed before
    the recorded offset."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.con = con
        self._hash = hashlib.sha256()
        self._next_hash: tuple[int, object] = (-1, None)
        self.offset = 0
        self.lines = 0
        self.source_id: int | None = None
        self.format: str | None = None
        row = one(con, "SELECT source_id, format, sha256, coalesce(read_offset, size_bytes), read_lines, "
                       "compression FROM sources WHERE path = ? AND coalesce(status, 'loaded') = 'loaded' "
                       "ORDER BY source_id DESC LIMIT 1", [os.path.abspath(self.path)])
        if row is None:
            return
        source_id, fmt, sha, offset, lines, compression = row
        if compression or fmt not in FOLLOWABLE:
            raise MCPTraceError(f"{self.path}: loaded as {compression or fmt}, which cannot be followed; "
                                f"followed files are uncompressed with one record per line ({', '.join(FOLLOWABLE)})")
        n_lines = self._rehash(offset or 0)
        if self._hash.hexdigest() != sha:
            raise MCPTraceError(f"{self.path}: its first {offset} bytes changed since they were loaded "
                                "(rewritten, truncated or replaced); load it into a new database")
        self.offset, self.lines = offset or 0, lines if lines is not None else n_lines
        self.source_id, self.format = source_id, fmt

    def _rehash(self, upto: int) -> int:
        newlines = 0
        try:
            with open(self.path, "rb") as f:
                left = upto
                while left > 0:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    self._hash.update(chunk)
                    newlines += chunk.count(b"\n")
                    left -= len(chunk)
        except OSError as e:
            raise MCPTraceError(f"{self.path}: cannot read: {e.strerror or e}") from e
        return newlines

    def next_part(self, max_bytes: int = PART_BYTES) -> FilePart | None:
        """The complete lines written after ``offset`` (at most about ``max_bytes``, a longer line whole),
        or None when there is none yet. The file is read in pieces and no line is held: a line of any
        length costs memory only when the part loads, as in a load of the whole file (a record over
        ``LoadOptions.max_record_bytes`` is rejected without being read whole). Raises
        :class:`mcptrace.MCPTraceError` when the file shrank below ``offset``, is compressed or is not a
        regular file (a directory, a FIFO, a device)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None  # not created yet
        except OSError as e:
            raise MCPTraceError(f"{self.path}: cannot read: {e.strerror or e}") from e
        if not stat.S_ISREG(st.st_mode):  # a directory, a FIFO or a device has no offsets to go on from
            raise MCPTraceError(f"{self.path}: cannot be followed: {not_a_regular_file(self.path)}")
        size = st.st_size
        if size < self.offset:
            raise MCPTraceError(f"{self.path}: shrank to {size} bytes below the {self.offset} already loaded "
                                "(truncated or replaced); load it into a new database")
        if size == self.offset:
            return None
        end, newlines = self._scan(max_bytes)
        if end is None:
            return None  # a line still being written
        h = self._hash.copy()
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            left = end - self.offset
            while left > 0:
                chunk = f.read(min(left, _PIECE))
                if not chunk:
                    raise MCPTraceError(f"{self.path}: shrank while being read (truncated or replaced); "
                                        "load it into a new database")
                h.update(chunk)
                left -= len(chunk)
        self._next_hash = (end, h)
        return FilePart(start_offset=self.offset, first_record_no=self.lines + 1, end_offset=end,
                        end_lines=self.lines + newlines, sha256=h.hexdigest(), source_id=self.source_id,
                        format=self.format)

    def _scan(self, max_bytes: int) -> tuple[int | None, int]:
        """Where the next part ends (the byte after its last newline: the last one in the first
        ``max_bytes`` bytes after ``offset``, or, when these hold none, the last one of the first
        ``max_bytes`` piece after them that holds one) and how many lines it holds; (None, 0) when no
        newline was written yet. Reads in pieces, keeping none."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            pos, budget, end, newlines = self.offset, max_bytes, None, 0
            while True:
                chunk = f.read(min(budget, _PIECE))
                if not chunk:
                    return end, newlines
                if pos == 0 and (chunk[:2] == GZIP_MAGIC or chunk[:4] == ZSTD_MAGIC):
                    raise MCPTraceError(f"{self.path}: compressed files cannot be followed")
                last = chunk.rfind(b"\n")
                if last >= 0:
                    end, newlines = pos + last + 1, newlines + chunk.count(b"\n")
                pos += len(chunk)
                budget -= len(chunk)
                if budget <= 0:
                    if end is not None:
                        return end, newlines
                    budget = max_bytes  # a line longer than max_bytes: read on to its newline

    def advance(self, part: FilePart, report: FileReport) -> None:
        """Move past a part the loader took (``report.status`` 'loaded')."""
        end, h = self._next_hash
        if end != part.end_offset:  # not the part next_part gave
            raise ValueError(f"{self.path}: advance past a part this file did not give")
        self._hash = h
        self.offset, self.lines = part.end_offset, part.end_lines
        self.source_id, self.format = report.source_id, report.format
