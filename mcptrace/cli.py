"""Command line: ``mcptrace load | open | sessions | findings | tools | gaps | timeline | tree | turns | report |
export | diff | capture | serve``.

Exit codes: 0 success; 1 some path could not be read or recognised, or a bad record with
``--errors raise`` (the other paths still load); 2 usage errors (argparse, a bad ``diff --fail-on`` rule);
3 ``findings --fail-on`` found a finding of that severity or worse, or ``diff --fail-on`` a rule broken.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
from collections import Counter

import duckdb
import pyarrow as pa

from mcptrace.analysis.compare import compare, same_location
from mcptrace.analysis.diffrules import MIN_ANSWERED, parse_rules, violations
from mcptrace.analysis.turns import UNTRACED_RUN
from mcptrace.core.dataset import is_dataset, is_url
from mcptrace.core.errors import MCPTraceError
from mcptrace.core.gapcodes import SEVERITIES
from mcptrace.capture.options import add_secret_keys_argument
from mcptrace.core.redact import RedactionPolicy
from mcptrace.core.result import Result
from mcptrace.ingest.options import LoadOptions
from mcptrace.ingest import readers
from mcptrace.render.diff import diff_markdown, diff_text, write_diff_html
from mcptrace.render.export import FRAME_FORMATS, neutralise_formulas, write_figure, write_frame
from mcptrace.render.waterfall import AGGREGATE_ABOVE as WATERFALL_AGGREGATE_ABOVE
from mcptrace.workspace import FollowedPart, Workspace
from mcptrace.workspace import open as open_ws
from mcptrace.workspace import open_capture, open_untrusted


#: Characters a transcript may hold that a terminal would act on (C0 and C1 controls but newline
#: and tab, DEL, and the bidirectional overrides that reorder what is shown): printed escaped,
#: ``\x1b`` for ESC, so a reject reason or a tool name cannot set the window title, write a
#: hyperlink, clear the screen or hide text.
TERMINAL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f, *range(0x80, 0xa0)]}
TERMINAL_ESCAPES.update({c: f"\\u{c:04x}" for c in [*range(0x202a, 0x202f), *range(0x2066, 0x206a)]})


def terminal_text(text: str) -> str:
    """``text`` with the characters of :data:`TERMINAL_ESCAPES` escaped."""
    return text.translate(TERMINAL_ESCAPES)


class _TerminalSafe:
    """A text stream that escapes :data:`TERMINAL_ESCAPES` in everything written to it."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        return self._inner.write(terminal_text(text))

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _print_table(res, max_width: int = 48, out=None) -> None:
    out = out or sys.stdout
    cols = [terminal_text(c) for c in res.columns]
    rows = [["" if v is None else terminal_text(str(v)) for v in r] for r in res.rows()]
    rows = [[v if len(v) <= max_width else v[: max_width - 1] + "…" for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)), file=out)


def _open_existing(db: str, allowed_directories: list[str] | None = None):
    """A database file opened to be read, as untrusted (:func:`mcptrace.workspace.open_untrusted`:
    its views cannot reach files; ``allowed_directories`` are where DuckDB may write, an export's
    output), or a Parquet dataset (directory or object-store URL) attached read-only."""
    if not is_url(db) and not os.path.exists(db):
        raise MCPTraceError(f"{db}: no such database; create it with: mcptrace load PATH... --db {db}")
    if os.path.isdir(db) and not is_dataset(db):
        raise MCPTraceError(f"{db}: a directory that is not an mcptrace Parquet dataset "
                            "(no mcptrace-dataset.json, no messages/*.parquet)")
    if is_dataset(db) or not os.path.isfile(db):
        return open_ws(db)
    try:
        return open_untrusted(db, allowed_directories=allowed_directories)
    except duckdb.PermissionException:
        raise
    except duckdb.Error as e:  # not a DuckDB file, or locked by a writer
        raise MCPTraceError(f"{db}: cannot open: {str(e).splitlines()[0]}") from e


def cmd_open(args: argparse.Namespace) -> int:
    with _open_existing(args.location) as ws:
        if args.sql:
            _print_table(ws.sql(args.sql), max_width=args.width)
            return 0
        n = ws.summary()
        kind = "database (read-only)" if os.path.isfile(args.location) else "Parquet dataset (read-only)"
        print(f"{args.location}: {kind}: {n['sources']} sources, {n['messages']} messages, {n['sessions']} sessions, "
              f"{n['calls']} calls, {n['spans']} spans, {n['gaps']} gaps")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    try:
        redaction = RedactionPolicy(enabled=not args.no_redact, secret_keys=args.secret_keys)
    except ValueError as e:
        print(f"error: --secret-keys: {e}", file=sys.stderr)
        return 2
    ws = open_ws(args.db)
    if args.follow:
        return _follow(ws, args, LoadOptions(errors=args.errors, format=args.format, keys=ws.keys, redaction=redaction))
    try:
        report = ws.load(args.paths, options=LoadOptions(errors=args.errors, format=args.format, keys=ws.keys,
                                                          redaction=redaction))
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
    n = ws.summary()
    print(f"{args.db}: {n['sessions']} sessions, {n['calls']} calls, {n['spans']} spans, {n['gaps']} gaps")
    ws.close()
    return 0 if report.ok else 1


def _follow(ws: Workspace, args: argparse.Namespace, options: LoadOptions) -> int:
    """``load --follow``: one line per part loaded, until Ctrl-C (or --idle-timeout)."""
    def said(p: FollowedPart) -> None:
        a, f = p.analysis, p.load
        scope = (f"{a.n_calls} calls in scope" if a.mode == "incremental" else
                 f"everything ({a.reason})" if a.mode == "full" else "nothing new")
        print(f"loaded     {p.path}  lines {p.first_line}-{p.last_line}  {f.n_records} records, {f.n_rejected} rejected; "
              f"analysed {scope} in {a.seconds:.2f} s", flush=True)

    print(f"following {', '.join(args.paths)} into {args.db} (Ctrl-C to stop)", flush=True)
    try:
        ws.follow(args.paths, interval=args.interval, idle_timeout=args.idle_timeout, on_part=said, options=options)
    except MCPTraceError as e:
        print(f"error: {e}", file=sys.stderr)
        ws.close()
        return 1
    n = ws.summary()
    print(f"{args.db}: {n['sessions']} sessions, {n['calls']} calls, {n['spans']} spans, {n['gaps']} gaps")
    ws.close()
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        _print_table(ws.sql("SELECT session_id, session_key_source, session_key, client_name, first_ts, last_ts, "
                            "n_calls, n_transport_sessions, max_parallel, n_gaps FROM sessions "
                            "ORDER BY n_calls DESC, first_ts"))
    return 0


#: exit code of ``findings --fail-on`` when a finding of that severity or worse exists
FINDINGS_FAILED = 3


def _json_value(v):
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return v


def findings_markdown(rows: list[dict]) -> str:
    """Findings as Markdown for a ticket: a ranked table, then each finding's sentence and remedy.
    Cells are escaped for Markdown tables (``|`` and newlines)."""
    def cell(v) -> str:
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| # | severity | code | party | calls | share | confidence |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        share = "" if r["share"] is None else f"{r['share']:.0%}"
        out.append(f"| {r['finding_id']} | {r['severity']} | `{cell(r['code'])}` | {cell(r['party'])} | "
                   f"{r['n_calls']} | {share} | {r['confidence']} |")
    for r in rows:
        out += ["", f"### {r['finding_id']}. {r['severity']}: `{cell(r['code'])}`, {cell(r['party'])}", "",
                cell(r["summary"]), "", f"**Remedy.** {cell(r['remedy'])}", "",
                f"{r['n_gaps']} gap{'s' if r['n_gaps'] != 1 else ''} (ids {', '.join(map(str, r['gap_ids'][:20]))}{' …' if len(r['gap_ids']) > 20 else ''})"
                + (f"; example call {r['example_call_id']} in session {r['example_session_id']}"
                   if r["example_call_id"] is not None else "") + "."]
    return "\n".join(out) + "\n"


def cmd_findings(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        res = ws.findings(args.severity)
        rows = [dict(zip(res.columns, r)) for r in res.rows()]
        if rows and not (args.json or args.markdown):
            _print_table(ws.sql("SELECT finding_id, severity, code, party_kind, party, n_calls, "
                                "printf('%.0f%%', share * 100) AS share, confidence, summary FROM findings "
                                "WHERE ?::VARCHAR IS NULL OR severity = ? ORDER BY finding_id",
                                [args.severity, args.severity]), max_width=args.width)
    if args.json:
        print(json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows], indent=2, ensure_ascii=False))
    elif args.markdown:
        sys.stdout.write(terminal_text(findings_markdown(rows)))
    elif not rows:
        print("no findings: no gaps")
    if args.fail_on:
        worst = SEVERITIES.index(args.fail_on)
        if any(SEVERITIES.index(r["severity"]) <= worst for r in rows):
            return FINDINGS_FAILED
    return 0


#: ``tools`` text table: (column, format) after the ``--by`` columns; --json and --csv give every column
_TOOLS_TEXT = (("calls", "{}"), ("ok", "{}"), ("errors", "{}"), ("tool_errors", "{}"), ("cancelled", "{}"),
               ("unanswered", "{}"), ("truncated", "{}"), ("error_rate", "{:.1%}"), ("tool_error_rate", "{:.1%}"),
               ("p50_ms", "{:.1f}"), ("p95_ms", "{:.1f}"), ("p99_ms", "{:.1f}"), ("max_ms", "{:.1f}"),
               ("error_codes", "{}"), ("request_bytes", "{}"), ("response_bytes", "{}"))


def cmd_tools(args: argparse.Namespace) -> int:
    """Per-tool statistics (:meth:`Workspace.tool_stats`): a text table, JSON lines or CSV."""
    by = tuple(b.strip() for b in args.by.split(",") if b.strip())
    with _open_existing(args.db) as ws:
        try:
            res = ws.tool_stats(by, method=None if args.method == "all" else args.method)
        except ValueError as e:
            print(f"error: --by {args.by}: {e}", file=sys.stderr)
            return 2
    rows = [dict(zip(res.columns, r)) for r in res.rows()]
    for r in rows:  # MAP(BIGINT, BIGINT) arrives as (code, count) pairs
        r["error_code_counts"] = {str(k): v for k, v in r["error_code_counts"]}
    if args.json:
        for r in rows:
            print(json.dumps({k: _json_value(v) for k, v in r.items()}, ensure_ascii=False))
    elif args.csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(res.columns)
        for r in rows:
            out.writerow([json.dumps(v) if isinstance(v, dict) else neutralise_formulas(_json_value(v))
                          for v in r.values()])
    elif not rows:
        print("no calls" + ("" if args.method == "all" else f" of method {args.method}"))
    else:
        cols = [*by, *(c for c, _ in _TOOLS_TEXT)]
        fmt = dict(_TOOLS_TEXT)
        cells = [[("" if r[c] is None else fmt.get(c, "{}").format(r[c])) for c in cols] for r in rows]
        _print_table(Result(pa.table({c: [row[i] for row in cells] for i, c in enumerate(cols)})),
                     max_width=args.width)
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        res = ws.gaps(args.code, args.session).select("gap_id", "code", "severity", "session_id", "call_id",
                                                      "message_id", "trace_id", "ts", "detail")
        _print_table(res, max_width=args.width)
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        session = args.session or ws.busiest_session()
        write_figure(ws.timeline(session), args.out)
    print(f"wrote {args.out} (session {session})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        ws.write_report(args.out, args.session or None)
    print(f"wrote {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _open_existing(args.db, allowed_directories=[args.parquet] if args.parquet else None) as ws:
        if args.parquet:
            ws.write_dataset(args.parquet)
            print(f"wrote {args.parquet} (every table, Hive-partitioned by source and day)")
        if args.chrome_trace:
            session = args.session or ws.busiest_session()
            ws.write_chrome_trace(session, args.chrome_trace)
            print(f"wrote {args.chrome_trace} (session {session}; open it in the Perfetto UI)")
        for spec in args.table or []:
            table, _, path = spec.partition("=")
            ws.write_table(table, path, csv_formulas=args.csv_formulas)
            print(f"wrote {path}")
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    note = ""
    with _open_existing(args.db) as ws:
        session = args.session or ws.busiest_session()
        if os.path.splitext(args.out)[1].lower() in FRAME_FORMATS:
            write_frame(ws.tree(session, turn=args.turn, call_id=args.call), args.out, csv_formulas=args.csv_formulas)
        else:
            write_figure(ws.waterfall(session, turn=args.turn, call_id=args.call), args.out)
            n = ws.sql("SELECT n_calls FROM sessions WHERE session_id = ?", [session]).rows()
            if args.turn is None and args.call is None and n and n[0][0] > WATERFALL_AGGREGATE_ABOVE:
                note = (f"; {n[0][0]} calls: one row per turn, drill down with --turn KEY "
                        f"(keys: mcptrace turns --db {args.db} --session {session}) or --call ID")
    selected = f", turn {args.turn}" if args.turn else (f", the turn of call {args.call}" if args.call is not None else "")
    print(f"wrote {args.out} (session {session}{selected}{note})")
    return 0


def cmd_turns(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as ws:
        session = args.session or ws.busiest_session()
        if session is None or not ws.sql("SELECT 1 FROM sessions WHERE session_id = ?", [session]).rows():
            print(f"error: no session {session!r}", file=sys.stderr)
            return 1
        _print_table(ws.sql("""SELECT turn, name, first_ts, duration_ms, n_calls, n_errors, n_cancelled, n_unanswered,
                                      n_gaps, array_to_string(gap_codes, ',') AS gap_codes
                               FROM session_turns($session_id, $run) WHERE NOT $with_gaps OR n_gaps > 0
                               ORDER BY first_ord""",
                            {"session_id": session, "run": UNTRACED_RUN, "with_gaps": args.with_gaps}),
                     max_width=args.width)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """``mcptrace diff A B``: what changed between two captures (:mod:`mcptrace.analysis.compare`)."""
    try:
        rules = parse_rules(args.fail_on) if args.fail_on is not None else []
    except ValueError as e:
        print(f"error: --fail-on: {e}", file=sys.stderr)
        return 2
    with open_capture(args.a) as wa:
        if same_location(args.a, args.b):  # one file, opened once (DuckDB opens a database once per process)
            diff = compare(wa.con, wa.con, a_name=args.a, b_name=args.b)
        else:
            with open_capture(args.b) as wb:
                diff = compare(wa.con, wb.con, a_name=args.a, b_name=args.b)
    if args.json:
        print(diff.to_json(indent=2))
    else:
        sys.stdout.write(diff_markdown(diff) if args.markdown else diff_text(diff))
    if args.html:
        write_diff_html(diff, args.html)
        print(f"wrote {args.html}", file=sys.stderr if args.json else sys.stdout)
    hits = violations(diff, rules)
    for hit in hits:
        print(f"fail-on {hit}", file=sys.stderr)
    return FINDINGS_FAILED if hits else 0


def cmd_capture(args: argparse.Namespace) -> int:
    from mcptrace.capture._cli import run

    return run(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from mcptrace.capture._common import is_loopback

    parser = args.serve_parser
    if args.transport == "http" and not args.allow_remote and not is_loopback(args.host):
        parser.error(f"refusing to listen on non-loopback address {args.host!r} (pass --allow-remote to do it anyway)")
    from mcptrace.serve.readonly import MAX_BYTES, MAX_ROWS

    for flag, value, most in (("--max-rows", args.max_rows, MAX_ROWS), ("--max-bytes", args.max_bytes, MAX_BYTES)):
        if not 1 <= value <= most:
            parser.error(f"{flag} must be between 1 and {most} (it lowers the default cap), got {value}")
    if not args.sql_timeout > 0:
        parser.error(f"--sql-timeout must be positive, got {args.sql_timeout}")
    try:
        from mcptrace.serve import server
    except ImportError as exc:  # the serve extra (the MCP SDK) is not installed
        parser.error(str(exc))
    from mcptrace.serve.readonly import Limits

    return server.run(args.db, transport=args.transport, host=args.host, port=args.port, allow_dirs=args.allow_dir,
                      limits=Limits(max_rows=args.max_rows, max_bytes=args.max_bytes, timeout_s=args.sql_timeout))


def _add_serve_parser(sub) -> None:
    sv = sub.add_parser("serve", help="serve a database read-only to agents as an MCP server (stdio or Streamable HTTP)",
                        description="The database as a read-only MCP server: tools sessions, calls, gaps, findings, "
                                    "turn_tree, tool_stats, diff, sql; resources mcptrace://report and "
                                    "mcptrace://sessions/{session_id}/timeline.png.")
    sv.add_argument("--db", required=True, help="the DuckDB database file to serve (opened read-only)")
    sv.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                    help="stdio (default: put the command in the MCP host's config) or Streamable HTTP")
    sv.add_argument("--host", default="127.0.0.1", help="with --transport http: address to listen on (loopback only "
                                                        "unless --allow-remote; default 127.0.0.1)")
    sv.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (no authentication!)")
    sv.add_argument("--allow-dir", action="append", metavar="DIR",
                    help="a directory whose databases the diff tool may open (repeatable; default: the served "
                         "database's directory)")
    from mcptrace.serve import DEFAULT_PORT
    from mcptrace.serve.readonly import MAX_BYTES, MAX_ROWS, SQL_TIMEOUT_S

    sv.add_argument("--port", type=int, default=DEFAULT_PORT,
                    help=f"with --transport http: port (default {DEFAULT_PORT}; 0 = a free one); the URL is printed")
    sv.add_argument("--max-rows", type=int, default=MAX_ROWS, help=f"rows per tool result, at most {MAX_ROWS} (default)")
    sv.add_argument("--max-bytes", type=int, default=MAX_BYTES,
                    help=f"bytes of row JSON per tool result, at most {MAX_BYTES} (default)")
    sv.add_argument("--sql-timeout", type=float, default=SQL_TIMEOUT_S,
                    help=f"seconds an sql query may run (default {SQL_TIMEOUT_S:g})")
    sv.set_defaults(func=cmd_serve, serve_parser=sv)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcptrace", description="Investigate MCP traffic and OTLP traces in DuckDB.")
    sub = p.add_subparsers(dest="command", required=True)

    lp = sub.add_parser("load", help="load captures and trace dumps into a database")
    lp.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (recursed)")
    lp.add_argument("--db", required=True, help="DuckDB file (created or appended to)")
    lp.add_argument("--follow", action="store_true",
                    help="keep reading what the files gain (a capture being written), in parts, each analysed on "
                         "what it reaches, until Ctrl-C; the files are uncompressed with one record per line")
    lp.add_argument("--interval", type=float, default=0.5, help="with --follow: seconds between looks (default 0.5)")
    lp.add_argument("--idle-timeout", type=float, metavar="S",
                    help="with --follow: stop after S seconds in which no file grew (default: never)")
    lp.add_argument("--format", choices=[r.name for r in readers.readers()], help="skip sniffing, read as this format")
    lp.add_argument("--errors", choices=["collect", "raise"], default="collect",
                    help="collect bad records in `rejects` (default) or stop at the first")
    lp.add_argument("--no-redact", action="store_true",
                    help="keep credential headers and secret-looking _meta/argument values (redacted by default)")
    add_secret_keys_argument(lp)
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

    fp = sub.add_parser("findings", help="who broke correlation and what to change: the gaps grouped by cause "
                                         "and responsible party, ranked")
    fp.add_argument("--db", required=True)
    fmt = fp.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the findings as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the findings as Markdown (for a ticket)")
    fp.add_argument("--severity", choices=list(SEVERITIES), help="only findings of this severity")
    fp.add_argument("--fail-on", choices=["error", "warning"],
                    help=f"exit {FINDINGS_FAILED} when a finding of this severity or worse exists (for CI)")
    fp.add_argument("--width", type=int, default=90, help="truncate cells to this width")
    fp.set_defaults(func=cmd_findings)

    tsp = sub.add_parser("tools", help="per-tool statistics: calls by status, error rates, latency percentiles, "
                                       "error codes and bytes, by server and tool")
    tsp.add_argument("--db", required=True)
    tsp.add_argument("--by", default="server,tool",
                     help="comma-separated: any of server, client, tool, session_id, method (default server,tool)")
    tsp.add_argument("--method", default="tools/call",
                     help="the request method counted (default tools/call); 'all' for every method, the tool "
                          "column then naming the method of requests other than tools/call")
    tsf = tsp.add_mutually_exclusive_group()
    tsf.add_argument("--json", action="store_true", help="every column, one JSON object per line")
    tsf.add_argument("--csv", action="store_true", help="every column as CSV (cells that start like a formula get a "
                                                        "leading ')")
    tsp.add_argument("--width", type=int, default=48, help="truncate text cells to this width")
    tsp.set_defaults(func=cmd_tools)

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
    trp.add_argument("--csv-formulas", action="store_true", help="a .csv as stored (see export --csv-formulas)")
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
    ep.add_argument("--csv-formulas", action="store_true",
                    help="write CSV cells as stored: by default a cell starting with = + - @ (or tab, CR) gets a "
                         "leading ' so a spreadsheet shows it instead of evaluating it")
    ep.add_argument("--parquet", metavar="DIR",
                    help="write every table as a Hive-partitioned Parquet dataset (attach it with mcptrace open DIR, or --db DIR)")
    ep.set_defaults(func=cmd_export)

    dp = sub.add_parser("diff", help="what changed between two captures: tool definitions, per-tool calls, errors and "
                                     "durations, correlation coverage, gaps and findings")
    dp.add_argument("a", metavar="A", help="the earlier capture: a DuckDB database file, a Parquet dataset, or a capture "
                                           "file or directory of captures (loaded in memory)")
    dp.add_argument("b", metavar="B", help="the later capture, the same kinds")
    dfmt = dp.add_mutually_exclusive_group()
    dfmt.add_argument("--json", action="store_true", help="print the whole diff as JSON")
    dfmt.add_argument("--markdown", action="store_true", help="print the changes as Markdown (for a ticket)")
    dp.add_argument("--fail-on", metavar="RULES",
                    help=f"exit {FINDINGS_FAILED} when a rule is broken (comma-separated): new-error-finding, "
                         "removed-tool, changed-tool, p95-regression=N (a tool's p95 up more than N %%; tools with "
                         f"at least {MIN_ANSWERED} answered calls on both sides), error-rate=N (a tool's error + tool-error rate "
                         "up more than N percentage points)")
    dp.add_argument("--html", metavar="OUT", help="also write a self-contained HTML diff report")
    dp.set_defaults(func=cmd_diff)

    from mcptrace.capture._cli import CAPTURE_HELP, add_capture_arguments

    cp = sub.add_parser("capture", help=CAPTURE_HELP, description=CAPTURE_HELP)
    add_capture_arguments(cp)
    cp.set_defaults(func=cmd_capture)
    _add_serve_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # everything printed is escaped for the terminal, but by capture (its stdio pipe carries the
    # server's bytes as they are)
    safe = args.func is not cmd_capture
    saved = sys.stdout, sys.stderr
    if safe:
        sys.stdout, sys.stderr = _TerminalSafe(sys.stdout), _TerminalSafe(sys.stderr)
    try:
        return _run(args)
    finally:
        if safe:
            sys.stdout, sys.stderr = saved


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except MCPTraceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except duckdb.PermissionException as e:
        print(f"error: {getattr(args, 'db', None) or getattr(args, 'location', '')}: the database asks for a file "
              f"or extension outside it (a view or macro of its own), which mcptrace does not allow when it "
              f"reads a database: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
