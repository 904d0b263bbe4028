"""Where a load's transactions end.

A load commits batch by batch: a transaction over a whole large file would hold all of its staged rows
in memory until it commits. Each transaction's rows of a table start a new row group, and its last row
group is partial. At its next checkpoint DuckDB merges adjacent row groups whose rows fit in fewer
(its vacuum): two partial row groups of at most half a row group each, with the full ones between them,
are written again. Over a 1M-message load that rewrote about half of ``messages`` and ``spans`` (2.3-3.5
s, 100 MB of new blocks). So once a transaction has reached half of its bounds, it ends at the first batch
after which every large table's rows in it end with a row group more than half full (or full), or are
fewer than half a row group: then no two partial row groups it leaves can be merged but small ones (a few
row groups rewritten, not half the table). Between half a row group and a whole one it goes on: a
transaction holding that much of a table writes it through the write-ahead log and a checkpoint (a load
of HTTP envelopes committed every 131,000 records took 53 s against 44 s). At its bounds it ends anyway.
"""

from __future__ import annotations

import re

#: records per transaction while loading: large enough that DuckDB writes whole row groups
#: (122,880 rows) straight to the database file at insert, small enough to bound the memory an
#: open transaction holds (a transaction over a whole large file holds all of it: DuckDB keeps every
#: batch's staged rows until the commit). At 200,000 the 1M loads peaked at 1386-1474 MiB (HTTP) and 1424
#: MiB (stdio), against 1516-1522 and 1474 MiB at 250,000, in 64.6 s against 62.8 s (HTTP, means of three,
#: within the machine's noise) and 56.7 s against 59.1 s (stdio)
COMMIT_ROWS = 200_000
#: ... and, in a span file, every this many bytes of record text, whichever comes first: one OTLP line
#: holds many spans, so its transaction is bounded by its bytes
COMMIT_BYTES = 128 << 20
#: ... and, in a message file, every this many: more than 200k HTTP envelopes (~250 MiB), whose
#: transactions would otherwise hold less than a row group of messages, written through a checkpoint at
#: commit (a load of HTTP envelopes 22% slower at 128 MiB); still a bound for captures of large records
MESSAGE_COMMIT_BYTES = 384 << 20
#: rows in a DuckDB row group (its default ``ROW_GROUP_SIZE``, which mcptrace databases keep)
ROW_GROUP_ROWS = 122_880
#: the tables a load writes many rows to, whose row groups a checkpoint could merge
LARGE_TABLES = ("messages", "spans", "http_events")

#: an INSERT statement's table, after the comment lines that may open it
_INSERT = re.compile(r"(?:\s*--[^\n]*\n)*\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)


def insert_target(stmt: str) -> str | None:
    """The large table (:data:`LARGE_TABLES`) an ``INSERT`` statement writes to, else None."""
    m = _INSERT.match(stmt)
    return m.group(1).lower() if m and m.group(1).lower() in LARGE_TABLES else None


def ends_well(n: int) -> bool:
    """Whether ``n`` rows of a table written by one transaction may end it: fewer than half a row group
    (written through the write-ahead log, into the table's small last row group or one of their own: a
    checkpoint may merge it with a neighbour, rewriting a few row groups at most), or at least a row group
    (written to the database file at insert) ending with a row group full or more than half full (no two
    such can be merged)."""
    tail = n % ROW_GROUP_ROWS
    return n < ROW_GROUP_ROWS // 2 or (n >= ROW_GROUP_ROWS and not 0 < tail <= ROW_GROUP_ROWS // 2)


class Transaction:
    """One load transaction's size: its records, their bytes, and the rows it wrote to each large table.
    ``max_bytes``: its bound in bytes (:data:`COMMIT_BYTES` or :data:`MESSAGE_COMMIT_BYTES`)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.records = 0
        self.bytes = 0
        self.rows: dict[str, int] = {}

    def wrote(self, table: str | None, n: int) -> None:
        """Count ``n`` rows an insert wrote to ``table`` (:func:`insert_target`; None is not counted)."""
        if table is not None:
            self.rows[table] = self.rows.get(table, 0) + n

    def batch(self, records: int, nbytes: int) -> None:
        """Count a batch's records and the bytes of their text."""
        self.records += records
        self.bytes += nbytes

    def should_commit(self) -> bool:
        """At its bounds; or past half of them, when every large table's rows may end it
        (:func:`ends_well`)."""
        if self.records >= COMMIT_ROWS or self.bytes >= self.max_bytes:
            return True
        if self.records < COMMIT_ROWS // 2 and self.bytes < self.max_bytes // 2:
            return False
        return all(ends_well(n) for n in self.rows.values())
