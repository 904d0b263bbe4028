"""``make demo``: load the shipped samples, print a summary, chart the busiest session.

Usage: ``python -m mcptrace.demo [PATH...] --db out/demo.duckdb --out out``. The database
is created afresh; ``out/timeline.html`` and ``out/timeline.png`` show the busiest session.
"""

from __future__ import annotations

import argparse
import os
import sys

import mcptrace
from mcptrace.cli import _print_table
from mcptrace.render.export import write_figure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mcptrace.demo")
    ap.add_argument("paths", nargs="*", default=["data/samples"])
    ap.add_argument("--db", default="out/demo.duckdb")
    ap.add_argument("--out", default="out")
    args = ap.parse_args(argv)

    os.makedirs(os.path.dirname(os.path.abspath(args.db)), exist_ok=True)
    for suffix in ("", ".wal"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)
    ws = mcptrace.load(args.paths, db=args.db)
    for f in ws.last_report.files:
        status = f"{f.n_records} records, {f.n_rejected} rejected" if f.status == "loaded" else f.error or f.status
        print(f"{f.status:<12} {f.path} [{f.format}] {status}")
    print(f"\n== sessions ({args.db})")
    _print_table(ws.sql("SELECT session_id, session_key_source, session_key, n_calls, max_parallel, n_gaps "
                        "FROM sessions ORDER BY n_calls DESC"))
    print("\n== calls by status")
    _print_table(ws.sql("SELECT status, count(*) AS calls FROM calls GROUP BY status ORDER BY calls DESC"))
    print("\n== gaps by code")
    _print_table(ws.sql("SELECT code, severity, count(*) AS gaps FROM gaps GROUP BY ALL ORDER BY gaps DESC, code"))
    session = ws.busiest_session()
    if session is None:
        print("no sessions found", file=sys.stderr)
        return 1
    fig = ws.timeline(session)
    for ext in ("html", "png"):
        path = os.path.join(args.out, f"timeline.{ext}")
        write_figure(fig, path)
        print(f"wrote {path} (session {session})")
    ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
