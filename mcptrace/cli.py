"""Command line: ``mcptrace load | open | sessions | gaps | timeline | tree | turns | report | export``.

Exit codes: 0 success; 1 some path could not be read or recognised, or a bad record with
``--errors raise`` (the other paths still load); 2 usage errors (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from mcptrace.core.errors import MCPTraceError
from mcptrace.core.db import one


def _print_table(res, max_width: int = 48, out=sys.stdout) -> None:
    cols = res.columns
    rows = [["" if v is None else str(v) for v in r] for r in res.rows()]
    rows = [[v if len(v) <= max_width else v[: max_width - 1] + "…" for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)), file=out)


def _open_existing(db: str):
    """A database file, or a Parquet dataset (directory or object-store URL) attached read-only."""
    from mcptrace.core.dataset import is_dataset, is_url
    from mcptrace.workspace import open as open_ws

    if not is_url(db) and not os.path.exists(db):
        raise MCPTraceError(f"{db}: no such database; create it with: mcptrace load PATH... --db {db}")
    if os.path.isdir(db) and not is_dataset(db):
        raise MCPTraceError(f"{db}: a directory that is not an mcptrace Parquet dataset "
                            "(no mcptrace-dataset.json, no messages/*.parquet)")
    return open_ws(db)


def _open_read_only(location: str):
    """Like :func:`_open_existing`, but a database file is opened read-only (nothing rebuilt or written)."""
    from mcptrace.core.dataset import is_dataset
    from mcptrace.ingest.loader import connect
    from mcptrace.workspace import Workspace

    if is_dataset(location) or not os.path.isfile(location):
        return _open_existing(location)
    try:
        con = connect(location, read_only=True)
    except Exception as e:  # duckdb.Error: not a DuckDB file, or locked by a writer
        raise MCPTraceError(f"{location}: cannot open read-only: {str(e).splitlines()[0]}") from e
    return Workspace(con, path=location, read_only=True)


def cmd_open(args: argparse.Namespace) -> int:
    with _open_read_only(args.location) as ws:
        if args.sql:
            _print_table(ws.sql(args.sql), max_width=args.width)
            return 0
        n = one(ws.con, "SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM messages), "
                        "(SELECT count(*) FROM sessions), (SELECT count(*) FROM calls), "
                        "(SELECT count(*) FROM spans), (SELECT count(*) FROM gaps)")
        kind = "database (read-only)" if os.path.isfile(args.location) else "Parquet dataset (read-only)"
        print(f"{args.location}: {kind}: {n[0]} sources, {n[1]} messages, {n[2]} sessions, {n[3]} calls, "
              f"{n[4]} spans, {n[5]} gaps")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from mcptrace.workspace import open as open_ws

    ws = open_ws(args.db)
    try:
        report = ws.load(args.paths, errors=args.errors, format=args.format, redact=not args.no_redact)
    except MCPTraceError as e:
        print(f"error: {e}", file=sys.stderr)
        ws.close()
        return 1
    reasons: Counter = Counter()
    for f in report.files:
        if f.status == "loaded":
            extra = "".join([f", {f.n_http_events} HTTP events" if f.n_http_events else "",
                             f", {f.n_duplicate_spans} duplicate spans stored once" if f.n_duplicate_spans else ""])
            print(f"loaded     {f.path}  [{f.format}]  {f.n_records} records, {f.n_rows} rows{extra}, "
                  f"{f.n_rejected} rejected")
            reasons.update(f.reasons)
        elif f.status == "duplicate":
            print(f"skipped    {f.path}  (same content already loaded as source {f.source_id})")
        else:
            print(f"error: {f.error}", file=sys.stderr)
    if reasons:
        print("rejected records by reason:")
        for reason, n in reasons.most_common():
            print(f"  {n:>8}  {reason}")
    n = one(ws.con, "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM calls), "
                       "(SELECT count(*) FROM spans), (SELECT count(*) FROM gaps)")
    print(f"{args.db}: {n[0]} sessions, {n[1]} calls, {n[2]} spans, {n[3]} gaps")
    ws.close()
    return 0 if report.ok else 1


def cmd_sessions(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        _print_table(ws.sql("SELECT session_id, session_key_source, session_key, client_name, first_ts, last_ts, "
                            "n_calls, n_transport_sessions, max_parallel, n_gaps FROM sessions "
                            "ORDER BY n_calls DESC, first_ts"))
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        res = ws.sql("SELECT gap_id, code, severity, session_id, call_id, message_id, trace_id, ts, detail FROM gaps "
                     "WHERE (?::VARCHAR IS NULL OR code = ?) AND (?::VARCHAR IS NULL OR session_id = ?) ORDER BY gap_id",
                     [args.code, args.code, args.session, args.session])
        _print_table(res, max_width=args.width)
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from mcptrace.render.export import write_figure

    with _open_existing(args.db) as ws:
        session = args.session or ws.busiest_session()
        try:
            fig = ws.timeline(session)
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 1
        write_figure(fig, args.out)
    print(f"wrote {args.out} (session {session})")
    return 0


TABLE_FORMATS = (".csv", ".parquet", ".json")


def cmd_report(args: argparse.Namespace) -> int:
    from mcptrace.render.report import write_report

    with _open_existing(args.db) as ws:
        try:
            write_report(ws, args.out, args.session or None)
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 1
    print(f"wrote {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mcptrace.render.export import write_chrome_trace, write_dataset, write_table

    with _open_existing(args.db) as ws:
        try:
            if args.parquet:
                write_dataset(ws, args.parquet)
                print(f"wrote {args.parquet} (every table, Hive-partitioned by source and day)")
            if args.chrome_trace:
                session = args.session or ws.busiest_session()
                write_chrome_trace(ws, session, args.chrome_trace)
                print(f"wrote {args.chrome_trace} (session {session}; open it in the Perfetto UI)")
            for spec in args.table or []:
                table, _, path = spec.partition("=")
                write_table(ws, table, path)
                print(f"wrote {path}")
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 1
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    from mcptrace.render.export import write_figure
    from mcptrace.render.waterfall import AGGREGATE_ABOVE

    note = ""
    with _open_existing(args.db) as ws:
        session = args.session or ws.busiest_session()
        try:
            if os.path.splitext(args.out)[1].lower() in TABLE_FORMATS:
                write_table(ws.tree(session, turn=args.turn, call_id=args.call), args.out)
            else:
                write_figure(ws.waterfall(session, turn=args.turn, call_id=args.call), args.out)
                n = one(ws.con, "SELECT n_calls FROM sessions WHERE session_id = ?", [session])
                if args.turn is None and args.call is None and n and n[0] > AGGREGATE_ABOVE:
                    note = (f"; {n[0]} calls: one row per turn, drill down with --turn KEY "
                            f"(keys: mcptrace turns --db {args.db} --session {session}) or --call ID")
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 1
    selected = f", turn {args.turn}" if args.turn else (f", the turn of call {args.call}" if args.call is not None else "")
    print(f"wrote {args.out} (session {session}{selected}{note})")
    return 0


def cmd_turns(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        session = args.session or ws.busiest_session()
        if session is None or not ws.sql("SELECT 1 FROM sessions WHERE session_id = ?", [session]).rows():
            print(f"error: no session {session!r}", file=sys.stderr)
            return 1
        from mcptrace.analysis.views import TURNS_SQL, UNTRACED_RUN

        _print_table(ws.sql(f"""SELECT turn, name, first_ts, duration_ms, n_calls, n_errors, n_cancelled, n_unanswered,
                                       n_gaps, array_to_string(gap_codes, ',') AS gap_codes
                                FROM ({TURNS_SQL}) WHERE NOT $with_gaps OR n_gaps > 0 ORDER BY first_ord""",
                            {"session_id": session, "run": UNTRACED_RUN, "with_gaps": args.with_gaps}),
                     max_width=args.width)
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    from mcptrace.capture._cli import run

    return run(args)


def write_table(df, path: str) -> None:
    ext = os.path.splitext(path)[1].lower()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", date_format="iso", indent=1)


def build_parser() -> argparse.ArgumentParser:
    from mcptrace.ingest import readers

    p = argparse.ArgumentParser(prog="mcptrace", description="Investigate MCP traffic and OTLP traces in DuckDB.")
    sub = p.add_subparsers(dest="command", required=True)

    lp = sub.add_parser("load", help="load captures and trace dumps into a database")
    lp.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (recursed)")
    lp.add_argument("--db", required=True, help="DuckDB file (created or appended to)")
    lp.add_argument("--format", choices=[r.name for r in readers.readers()], help="skip sniffing, read as this format")
    lp.add_argument("--errors", choices=["collect", "raise"], default="collect",
                    help="collect bad records in `rejects` (default) or stop at the first")
    lp.add_argument("--no-redact", action="store_true",
                    help="keep credential headers and secret-looking _meta/argument values (redacted by default)")
    lp.set_defaults(func=cmd_load)

    op = sub.add_parser("open", help="open a database or attach a Parquet dataset (directory or object-store URL); "
                                     "print its size, or run --sql")
    op.add_argument("location", help="a DuckDB file, a dataset directory, or a URL such as s3://bucket/prefix")
    op.add_argument("--sql", help="a query to run; its result is printed as a table")
    op.add_argument("--width", type=int, default=48, help="cut cells to this many characters")
    op.set_defaults(func=cmd_open)

    sp = sub.add_parser("sessions", help="list logical sessions")
    sp.add_argument("--db", required=True)
    sp.set_defaults(func=cmd_sessions)

    gp = sub.add_parser("gaps", help="list where correlation was lost")
    gp.add_argument("--db", required=True)
    gp.add_argument("--code", help="only this gap code")
    gp.add_argument("--session", help="only this session id")
    gp.add_argument("--width", type=int, default=60, help="truncate cells to this width")
    gp.set_defaults(func=cmd_gaps)

    tp = sub.add_parser("timeline", help="chart a session's calls (.html, .png or .svg)")
    tp.add_argument("--db", required=True)
    tp.add_argument("--session", help="session id (default: the busiest)")
    tp.add_argument("--out", required=True, help="output path; format from the extension")
    tp.set_defaults(func=cmd_timeline)
    trp = sub.add_parser("tree", help="a session's parallel-call tree: waterfall (.html/.png/.svg) or table (.csv/.parquet/.json)")
    trp.add_argument("--db", required=True)
    trp.add_argument("--session", help="session id (default: the busiest)")
    trp.add_argument("--out", required=True, help="output path; format from the extension")
    trp.add_argument("--turn", metavar="KEY", help="only this turn's rows (keys: mcptrace turns); large sessions "
                                                   "are otherwise drawn one row per turn")
    trp.add_argument("--call", type=int, metavar="ID", help="only the rows of this call's turn")
    trp.set_defaults(func=cmd_tree)

    tup = sub.add_parser("turns", help="list a session's turns (keys for tree --turn), with calls, errors and gaps")
    tup.add_argument("--db", required=True)
    tup.add_argument("--session", help="session id (default: the busiest)")
    tup.add_argument("--with-gaps", action="store_true", help="only turns with gaps")
    tup.add_argument("--width", type=int, default=60, help="truncate cells to this width")
    tup.set_defaults(func=cmd_turns)

    rp = sub.add_parser("report", help="a self-contained HTML incident report")
    rp.add_argument("--db", required=True)
    rp.add_argument("--out", required=True)
    rp.add_argument("--session", action="append", help="session to chart (repeatable; default: the most gaps)")
    rp.set_defaults(func=cmd_report)

    ep = sub.add_parser("export", help="export a session as Chrome Trace Event JSON, or tables as Parquet/CSV")
    ep.add_argument("--db", required=True)
    ep.add_argument("--session", help="session for --chrome-trace (default: the busiest)")
    ep.add_argument("--chrome-trace", metavar="PATH", help="write the session as Chrome Trace Event JSON (Perfetto)")
    ep.add_argument("--table", action="append", metavar="TABLE=PATH",
                    help="write a table to .parquet or .csv, e.g. calls=out/calls.parquet (repeatable)")
    ep.add_argument("--parquet", metavar="DIR",
                    help="write every table as a Hive-partitioned Parquet dataset (attach it with mcptrace open DIR, or --db DIR)")
    ep.set_defaults(func=cmd_export)

    from mcptrace.capture._cli import add_capture_arguments

    cp = sub.add_parser("capture", help="record MCP traffic as envelope JSONL (stdio tee, HTTP reverse proxy)")
    add_capture_arguments(cp)
    cp.set_defaults(func=cmd_capture)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MCPTraceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
