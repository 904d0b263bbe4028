"""Where does an mcptrace load spend its time? Times every SQL statement a load runs.

    .venv/bin/python benchmarks/profile_load.py FILE [FILE ...] [--top 15]

Runs the same code as ``mcptrace.load([FILE], db=...)`` (``connect`` + ``Loader.load`` +
``analysis.rebuild``) with the DuckDB connection wrapped in a proxy that times each
``execute``/``sql`` call, then prints the slowest statements (first line of SQL, seconds, share
of the total) and the time spent outside DuckDB (Python: hashing, line splitting, union-find).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict

from mcptrace.analysis import rebuild as analysis
from mcptrace.core.db import connect
from mcptrace.ingest import loader


class TimedConnection:
    """Forwards everything to a DuckDB connection, timing execute()/sql()/executemany()."""

    def __init__(self, con) -> None:
        self._con = con
        self.times: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def _timed(self, method: str, query: str, *args, **kwargs):
        t0 = time.perf_counter()
        res = getattr(self._con, method)(query, *args, **kwargs)
        if method == "sql":
            res = res.to_arrow_table()  # sql() is lazy; the caller materialises it right away
        key = " ".join(query.split())[:110]
        self.times[key] += time.perf_counter() - t0
        self.counts[key] += 1
        return res

    def execute(self, query, *a, **k):
        return self._timed("execute", query, *a, **k)

    def executemany(self, query, *a, **k):
        return self._timed("executemany", query, *a, **k)

    def sql(self, query, *a, **k):
        return _Lazy(self._timed("sql", query, *a, **k))

    def __getattr__(self, name):
        return getattr(self._con, name)


class _Lazy:
    def __init__(self, table) -> None:
        self.table = table

    def to_arrow_table(self):
        return self.table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        con = TimedConnection(connect(os.path.join(tmp, "p.duckdb")))
        t1 = time.perf_counter()
        loader.Loader(con).load(args.files)
        t2 = time.perf_counter()
        analysis.rebuild(con)
        t3 = time.perf_counter()
    total = t3 - t0
    sql_total = sum(con.times.values())
    print(f"total {total:.2f} s: connect {t1 - t0:.2f}, load {t2 - t1:.2f}, rebuild {t3 - t2:.2f}; "
          f"in DuckDB {sql_total:.2f} s, outside (Python) {total - sql_total:.2f} s\n")
    print(f"{'seconds':>8} {'share':>6} {'n':>4}  statement")
    for key, s in sorted(con.times.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{s:>8.2f} {s / total:>6.0%} {con.counts[key]:>4}  {key}")


if __name__ == "__main__":
    sys.exit(main())
