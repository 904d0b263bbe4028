"""Following a capture that is still being written (``mcptrace load --follow``, ``Workspace.follow``).

A followed file is read in parts of complete lines from the offset its ``sources`` row records
(``read_offset``, ``read_lines``: every load of an uncompressed one-record-per-line file records them),
so a follow can stop and start again, and a file first loaded whole can then be followed. Each part is
loaded by :meth:`mcptrace.ingest.loader.Loader.load_part` into the file's one ``sources`` row; its
records keep their line numbers. A line still being written (no newline yet) waits for the next part.
Before going on from an offset, the bytes before it are hashed again and compared with the row's
``sha256``: a file rewritten, truncated or replaced since is not appended to.
"""

from __future__ import annotations

import hashlib
import os

import duckdb

from mcptrace.core.db import one
from mcptrace.core.errors import MCPTraceError
from mcptrace.ingest.loader import FOLLOWABLE, FilePart, FileReport
from mcptrace.ingest.readers.inputs import GZIP_MAGIC, ZSTD_MAGIC

#: bytes a part holds at most (a longer line is read whole, up to its newline)
PART_BYTES = 1 << 20
#: bytes the part after one whose analysis ran in full may hold: a full rebuild costs the same whatever the
#: part holds, so the follow catches up with what was written meanwhile instead of paying a rebuild per
#: :data:`PART_BYTES` (a part is held in memory while it loads)
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
        or None when there is none yet. Raises :class:`mcptrace.MCPTraceError` when the file shrank below
        ``offset`` or is compressed."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return None  # not created yet
        except OSError as e:
            raise MCPTraceError(f"{self.path}: cannot read: {e.strerror or e}") from e
        if size < self.offset:
            raise MCPTraceError(f"{self.path}: shrank to {size} bytes below the {self.offset} already loaded "
                                "(truncated or replaced); load it into a new database")
        if size == self.offset:
            return None
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(max_bytes)
            if self.offset == 0 and (data[:2] == GZIP_MAGIC or data[:4] == ZSTD_MAGIC):
                raise MCPTraceError(f"{self.path}: compressed files cannot be followed")
            end = data.rfind(b"\n")
            while end < 0:  # a line longer than max_bytes: read on to its newline
                more = f.read(max_bytes)
                if not more:
                    return None  # still being written
                data += more
                end = data.rfind(b"\n")
        data = data[:end + 1]
        h = self._hash.copy()
        h.update(data)
        return FilePart(data=data, first_record_no=self.lines + 1, end_offset=self.offset + len(data),
                        end_lines=self.lines + data.count(b"\n"), sha256=h.hexdigest(), source_id=self.source_id,
                        format=self.format)

    def advance(self, part: FilePart, report: FileReport) -> None:
        """Move past a part the loader took (``report.status`` 'loaded')."""
        self._hash.update(part.data)
        self.offset, self.lines = part.end_offset, part.end_lines
        self.source_id, self.format = report.source_id, report.format
