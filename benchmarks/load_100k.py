"""Load benchmark: mcptrace vs. the DuckDB scan floor vs. pandas, on N scaled real messages.

    .venv/bin/python benchmarks/load_100k.py [--messages 100000] [--out out/bench]

The captured samples are repeated into one envelope JSONL of N messages (``benchmarks/scale.py``:
every copy gets its own connection ids, Mcp-Session-Ids, session keys and trace-ids). Then each
contender runs in its own fresh Python subprocess, one after the other:

  mcptrace   ``mcptrace.load([file], db=<file>.duckdb).close()``: read, validate, normalise into
             ``messages``, then rebuild ``calls``, ``sessions``, turns, ``gaps`` (the whole job).
  floor      DuckDB alone: ``read_ndjson`` with explicit columns into a flat table in a DuckDB
             file, extracting ts, method and id. Nothing can load the file into DuckDB faster,
             so this is the denominator.
  pandas     ``pd.read_json(lines=True)`` + ``json_normalize`` of the message column, the peer
             a user would reach for first (in memory, no file written).

Columns: ``wall s`` is the time of the work itself, measured inside the child (interpreter
start and imports excluded); ``peak RSS MB`` is the child's max resident set size from
``os.wait4`` (includes the interpreter and imported libraries, ~100-150 MB of it);
``x floor`` is wall / floor wall. The project goal is
mcptrace <= 1.5x floor (that goal is for envelope + OTLP together; here only envelope).
Times drift +-25% run to run on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import DEFAULT_SOURCES, scale_envelope  # noqa: E402

FLOOR_SQL = """
CREATE TABLE m AS
SELECT ts::TIMESTAMPTZ AS ts, direction, connection_id, message->>'$.method' AS method,
       (message->'$.id')::VARCHAR AS rpc_id, message
FROM read_ndjson(?, columns={ts: 'VARCHAR', direction: 'VARCHAR', transport: 'VARCHAR',
                             connection_id: 'VARCHAR', http: 'JSON', message: 'JSON'})
"""


# -- the contenders: each runs in a child process and returns (seconds, extra info) -------------
def run_mcptrace(path: str, db: str) -> tuple[float, dict]:
    import mcptrace

    t0 = time.perf_counter()
    mcptrace.load([path], db=db).close()  # close (checkpoint) inside the timing, as for the floor
    dt = time.perf_counter() - t0
    with mcptrace.open(db) as ws:
        info = dict(zip(("messages", "calls", "sessions", "gaps", "rejects"), ws.con.execute(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM calls), (SELECT count(*) FROM sessions), "
            "(SELECT count(*) FROM gaps), (SELECT count(*) FROM rejects)").fetchone()))
    return dt, info


def run_floor(path: str, db: str) -> tuple[float, dict]:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(db)
    con.execute(FLOOR_SQL, [path])
    con.close()
    dt = time.perf_counter() - t0
    with duckdb.connect(db, read_only=True) as con:
        return dt, {"rows": con.execute("SELECT count(*) FROM m").fetchone()[0]}


def run_pandas(path: str, db: str) -> tuple[float, dict]:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_json(path, lines=True)
    flat = pd.json_normalize(df["message"].tolist())
    dt = time.perf_counter() - t0
    return dt, {"rows": len(flat), "columns": flat.shape[1]}


CONTENDERS = {"mcptrace": run_mcptrace, "floor": run_floor, "pandas": run_pandas}


def measure(name: str, path: str, workdir: str) -> dict:
    """Run one contender in a fresh interpreter; return its timing, peak RSS and info."""
    db = os.path.join(workdir, f"{name}.duckdb")
    for f in (db, db + ".wal"):
        if os.path.exists(f):
            os.remove(f)
    proc = subprocess.Popen([sys.executable, __file__, "--child", name, path, db], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--out", default=None, help="work dir for the scaled file and databases (default: a temp dir)")
    ap.add_argument("--child", nargs=3, metavar=("CONTENDER", "FILE", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        name, path, db = args.child
        seconds, info = CONTENDERS[name](path, db)
        print(json.dumps({"seconds": seconds, "info": info}))
        return

    with tempfile.TemporaryDirectory(prefix="mcptrace-bench-") as tmp:
        workdir = args.out or tmp
        os.makedirs(workdir, exist_ok=True)
        path = os.path.join(workdir, f"envelope_{args.messages}.jsonl")
        n = scale_envelope(DEFAULT_SOURCES, path, args.messages)
        print(f"{n} messages, {os.path.getsize(path) / 1e6:.1f} MB: {path}\n")

        results = {name: measure(name, path, workdir) for name in ("floor", "mcptrace", "pandas")}
        floor = results["floor"]["seconds"]
        print(f"{'contender':<10} {'wall s':>8} {'peak RSS MB':>12} {'x floor':>8}")
        for name, r in results.items():
            print(f"{name:<10} {r['seconds']:>8.2f} {r['peak_mb']:>12.0f} {r['seconds'] / floor:>8.1f}")
        print()
        for name, r in results.items():
            print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in r["info"].items()))
        got = results["mcptrace"]["info"]
        if got["messages"] + got["rejects"] != n:
            print(f"WARNING: mcptrace kept {got['messages']} messages + {got['rejects']} rejects of {n} lines")


if __name__ == "__main__":
    main()
