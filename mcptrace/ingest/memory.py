"""The memory a load may take: DuckDB's ``memory_limit`` per file and per batch.

A file that runs out of memory is loaded again with the limit raised (:func:`memory_limits`), and a
batch holding a long record runs with the limit raised in proportion to it (:func:`batch_limit`), so
one large valid record never fails the load of its file.
"""

from __future__ import annotations

import os
import re

import duckdb

from mcptrace.core.db import one


#: a file whose load runs out of memory is loaded again once with the memory limit raised to this
#: share of the machine's memory (``MCPTRACE_MEMORY_LIMIT_MAX``, a DuckDB size such as ``8GiB``, overrides)
MAX_MEMORY_FRACTION = 0.5


def memory_limits(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The memory limits a file is tried with: the connection's, then the most it may take (see
    :data:`MAX_MEMORY_FRACTION`) when that is more."""
    current = one(con, "SELECT current_setting('memory_limit')")[0]
    now, top = size_bytes(current), memory_ceiling()
    if now is None or top is None or now >= top:
        return [current]
    return [current, f"{top // (1 << 20)}MiB"]


#: A record of L bytes is parsed several times and written out as JSON (``json_transform`` to
#: ``JSON``, ``json_extract``) on its way into the tables; DuckDB counts about 45 times L against its
#: memory limit meanwhile (it reserves six times a string's length, rounded up to a power of two,
#: to write it, and keeps a few such buffers alive), while the process touches about 18 times L.
#: A batch holding a long record runs with the limit raised by this many times its longest record
#: (never past the most a file may take), so a 50 MB screenshot in a tool result loads with the
#: default 1 GiB limit, and the rest of the file keeps that limit.
LONG_RECORD_ALLOWANCE = 48


def batch_limit(base: int | None, top: int | None, longest: int) -> int | None:
    """The memory limit (bytes) for a batch whose longest record is ``longest`` bytes, when it must
    differ from ``base``: ``base`` plus :data:`LONG_RECORD_ALLOWANCE` times ``longest``, at most ``top``."""
    if base is None or top is None or longest <= 0:
        return None
    want = min(top, base + LONG_RECORD_ALLOWANCE * longest)
    return want if want > base + base // 8 else None


def memory_ceiling() -> int | None:
    """The most memory (bytes) a file may take: ``MCPTRACE_MEMORY_LIMIT_MAX`` or
    :data:`MAX_MEMORY_FRACTION` of the machine's memory."""
    ceiling = os.environ.get("MCPTRACE_MEMORY_LIMIT_MAX")
    if ceiling:
        return size_bytes(ceiling)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * MAX_MEMORY_FRACTION)


def size_bytes(text: str | None) -> int | None:
    """Bytes of a DuckDB size setting such as ``1.0 GiB``, ``953.6 MiB`` or ``4GB``; None when unreadable."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?i?B)?\s*", text or "", re.I)
    if not m:
        return None
    unit = (m.group(2) or "B").upper()
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}.get(unit)
    return int(float(m.group(1)) * scale) if scale else None
