"""Following a capture that is still being written (``mcptrace load --follow``, ``Workspace.follow``).

A followed file is read in parts of complete lines from the offset its ``sources`` row records
(``read_offset``, ``read_lines``: every load of an uncompressed one-record-per-line file records them),
so a follow can stop and start again, and a file first loaded whole can then be followed. Each part is
loaded by :meth:`mcptrace.ingest.loader.Loader.load_part` into the file's one ``sources`` row; its
records keep their line numbers. A line still being written (no newline yet) waits for the next part.
Before going on from an offset, the bytes before it are hashed again and compared with the row's
``sha256``: a file rewritten, truncated or replaced since is not appended to. A part is a range of the
file: finding its end reads pieces and keeps none, and the load reads the range in pieces as it reads a
whole file, so a line over ``LoadOptions.max_record_bytes`` is rejected without being held.
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

#: bytes a part holds at most: it ends at the last newline in that many bytes (when they hold none, at the
#: last newline of the first such window after them that holds one)
PART_BYTES = 1 << 20
#: bytes read at a time while looking for a part's end and hashing it
_PIECE = 1 << 20
#: bytes the part after one whose analysis ran in full may hold: a full rebuild costs the same whatever the
#: part holds, so the follow catches up with what was written meanwhile instead of paying a rebuild per
#: :data:`PART_BYTES`
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
        try:
            self._refuse_irregular(os.stat(self.path).st_mode)
        except OSError as e:
            raise MCPTraceError(f"{self.path}: cannot read: {e.strerror or e}") from e
        if compression or fmt not in FOLLOWABLE:
            raise MCPTraceError(f"{self.path}: loaded as {compression or fmt}, which cannot be followed; "
                                f"followed files are uncompressed with one record per line ({', '.join(FOLLOWABLE)})")
        n_lines = self._rehash(offset or 0)
        if self._hash.hexdigest() != sha:
            raise MCPTraceError(f"{self.path}: its first {offset} bytes changed since they were loaded "
                                "(rewritten, truncated or replaced); load it into a new database")
        self.offset, self.lines = offset or 0, lines if lines is not None else n_lines
        self.source_id, self.format = source_id, fmt

    def _refuse_irregular(self, mode: int) -> None:
        """A directory, a FIFO or a device has no offsets to go on from (and reading a FIFO waits)."""
        if not stat.S_ISREG(mode):
            raise MCPTraceError(f"{self.path}: cannot be followed: "
                                f"{not_a_regular_file(self.path) or 'not a regular file; only regular files are read'}")

    def _rehash(self, upto: int) -> int:
        newlines = 0
        try:
            with open(self.path, "rb") as f:
                left = upto
                while left > 0:
                    chunk = f.read(min(left, _PIECE))
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
        self._refuse_irregular(st.st_mode)
        size = st.st_size
        if size < self.offset:
            raise MCPTraceError(f"{self.path}: shrank to {size} bytes below the {self.offset} already loaded "
                                "(truncated or replaced); load it into a new database")
        if size == self.offset:
            return None
        end, newlines, h = self._scan(max_bytes)
        if end is None:
            return None  # a line still being written
        self._next_hash = (end, h)
        return FilePart(start_offset=self.offset, first_record_no=self.lines + 1, end_offset=end,
                        end_lines=self.lines + newlines, sha256=h.hexdigest(), source_id=self.source_id,
                        format=self.format)

    def _scan(self, max_bytes: int) -> tuple[int | None, int, object]:
        """Where the next part ends (the byte after its last newline: the last one in the first
        ``max_bytes`` bytes after ``offset``, or, when these hold none, the last one of the first
        ``max_bytes`` window after them that holds one), how many lines it holds and the sha256 of the
        file up to its end; (None, 0, None) when no newline was written yet. One pass in pieces, keeping
        none: the hash runs on, and is copied at each piece's last newline."""
        running, at_end = self._hash.copy(), None
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            pos, budget, end, newlines = self.offset, max_bytes, None, 0
            while True:
                chunk = f.read(min(budget, _PIECE))
                if not chunk:
                    return end, newlines, at_end
                if pos == 0 and (chunk[:2] == GZIP_MAGIC or chunk[:4] == ZSTD_MAGIC):
                    raise MCPTraceError(f"{self.path}: compressed files cannot be followed")
                last = chunk.rfind(b"\n")
                if last >= 0:
                    end, newlines = pos + last + 1, newlines + chunk.count(b"\n")
                    at_end = running.copy()
                    at_end.update(memoryview(chunk)[:last + 1])
                running.update(chunk)
                pos += len(chunk)
                budget -= len(chunk)
                if budget <= 0:
                    if end is not None:
                        return end, newlines, at_end
                    budget = max_bytes  # a line longer than max_bytes: read on to its newline

    def advance(self, part: FilePart, report: FileReport) -> None:
        """Move past a part the loader took (``report.status`` 'loaded')."""
        end, h = self._next_hash
        if end != part.end_offset:  # not the part next_part gave
            raise ValueError(f"{self.path}: advance past a part this file did not give")
        self._hash = h
        self.offset, self.lines = part.end_offset, part.end_lines
        self.source_id, self.format = report.source_id, report.format
