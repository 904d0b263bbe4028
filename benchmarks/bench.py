"""Load benchmark at incident scale: mcptrace vs. the DuckDB scan floor vs. pandas and polars.

    .venv/bin/python benchmarks/bench.py [--messages 1000000] [--spans 1000000] [--out out/bench] [--shape both]

Two shapes of capture, each scaled up (``benchmarks/scale.py``) into one envelope JSONL of N lines
and one OTLP/JSON trace dump of M spans: ``stdio``, the captured samples (stdio hosts with parallel
turns, one Streamable HTTP client), and ``http``, Streamable HTTP traffic of a resumable server as
gateways record it (headers on every envelope, about a third of the envelopes message-less: SSE
priming events, GET streams, ``Last-Event-ID`` resumptions, resets, ``DELETE``; concurrent and
stateless clients). Per shape the same two files go to every contender, each in its own fresh Python
process, one after the other:

  floor     DuckDB alone, nothing else: ``read_ndjson`` with explicit columns into a flat messages
            table (ts, direction, connection_id, method, id, message) and the OTLP explode of
            PERFORMANCE.md (``read_ndjson_objects`` -> resourceSpans -> scopeSpans -> spans, child
            lists extracted before each ``unnest``, one ``json_transform`` per span) into a flat
            spans table, both in a DuckDB file. This is the denominator.
  columns   the floor's spans, and the messages with every column mcptrace's ``messages`` table
            holds: the same ``read_ndjson``, then one ``json_extract`` of all the message paths
            mcptrace reads (id, method, ``_meta`` keys, result/error fields ...) and one of the
            HTTP header paths, each value its own column. No validation, rejects, redaction or
            reconstruction: what storing mcptrace's columns costs DuckDB alone, a lower bound
            for any load into those tables.
  mcptrace  ``mcptrace.load([envelope, traces], db=FILE).close()``: sniff, validate, reject,
            redact, normalise into ``messages``, ``http_events`` and ``spans``, then rebuild
            ``calls``, ``sessions``, turns, ``call_spans``, ``gaps`` and ``findings`` (the whole job);
            its counts line also times the findings step alone (``findings_s``).
  pandas    ``pd.read_json(lines=True)`` of both files, ``json_normalize`` of the messages and of
            ``resourceSpans.scopeSpans.spans`` (in memory).
  polars    ``pl.read_ndjson`` of both files (schema inferred), spans exploded and unnested
            (in memory).

After mcptrace, ``append`` loads 10 more records (a new host session a minute after the capture,
``scale.append_records``) into the database mcptrace wrote, three times, each timed from opening the
database to closing it (median shown): the analysis recomputes only what the records reach
(``mcptrace.analysis.incremental``). A fourth append, not in the median (``continue_0``), is the first
one's 10 records again on its connection, with its session keys and trace-ids (JSON-RPC ids repeat too):
a connection the database already holds, continued from a new file.

Columns: ``wall s`` is the time of the work itself measured inside the child (interpreter start
and imports excluded); ``peak RSS MB`` is the child's maximum resident set (``getrusage``)
(includes the interpreter and libraries, ~100-150 MB); ``x floor`` is wall / floor wall. A
contender that runs past ``--timeout`` seconds is stopped and reported as such. Times drift
+-25% run to run on the shared 2-core machines.
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
from scale import SHAPES, append_records, scale_capture  # noqa: E402

FLOOR_MESSAGES_SQL = """
CREATE TABLE m AS
SELECT ts::TIMESTAMPTZ AS ts, direction, connection_id, message->>'$.method' AS method,
       (message->'$.id')::VARCHAR AS rpc_id, message
FROM read_ndjson(?, columns={ts: 'VARCHAR', direction: 'VARCHAR', transport: 'VARCHAR',
                             connection_id: 'VARCHAR', http: 'JSON', message: 'JSON'})
"""

FLOOR_SPANS_SQL = """
CREATE TABLE s AS
WITH r AS (
    SELECT json_extract(json, '$.resourceSpans[*]') AS rs_list FROM read_ndjson_objects(?)
), rs AS (
    SELECT unnest(rs_list) AS rs FROM r
), rs2 AS (
    SELECT json_extract(rs, '$.scopeSpans[*]') AS ss_list FROM rs
), ss AS (
    SELECT unnest(ss_list) AS ss FROM rs2
), ss2 AS (
    SELECT json_extract(ss, '$.spans[*]') AS span_list FROM ss
), sp AS (
    SELECT unnest(span_list) AS span FROM ss2
), t AS (
    SELECT json_transform(span, '{"traceId":"VARCHAR","spanId":"VARCHAR","parentSpanId":"VARCHAR",
        "name":"VARCHAR","kind":"INTEGER","startTimeUnixNano":"UBIGINT","endTimeUnixNano":"UBIGINT",
        "attributes":"JSON","status":"JSON"}') AS s FROM sp
)
SELECT s.traceId AS trace_id, s.spanId AS span_id, s.parentSpanId AS parent_span_id, s.name AS name,
       s.kind AS kind, s.startTimeUnixNano AS start_unix_nano, s.endTimeUnixNano AS end_unix_nano,
       s.attributes AS attributes, s.status AS status
FROM t
"""


def columns_messages_sql(n_paths: int, n_http: int) -> str:
    """The floor's messages scan plus one column per message path and per HTTP path (``$paths``, ``$http_paths``)."""
    return (
        "CREATE TABLE m AS WITH r AS (SELECT * FROM read_ndjson($path, columns={ts: 'VARCHAR', direction: 'VARCHAR', "
        "transport: 'VARCHAR', connection_id: 'VARCHAR', http: 'JSON', message: 'JSON'})), "
        "e AS (SELECT *, json_extract(message, $paths::VARCHAR[]) AS v, "
        "json_extract_string(http, $http_paths::VARCHAR[]) AS h, "
        "json_extract(http, ['$.request_headers', '$.response_headers']) AS hj FROM r) "
        "SELECT ts::TIMESTAMPTZ AS ts, direction, transport, connection_id, "
        "message AS raw, hj[1] AS request_headers, hj[2] AS response_headers, "
        + ", ".join(f"v[{i + 1}] AS v{i + 1}" for i in range(n_paths)) + ", "
        + ", ".join(f"h[{i + 1}] AS h{i + 1}" for i in range(n_http)) + " FROM e")


# -- the contenders: each runs in a child process and returns (seconds, extra info) -------------
def run_floor(env: str, spans: str, db: str) -> tuple[float, dict]:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(db)
    con.execute(FLOOR_MESSAGES_SQL, [env])
    con.execute(FLOOR_SPANS_SQL, [spans])
    con.close()
    dt = time.perf_counter() - t0
    with duckdb.connect(db, read_only=True) as con:
        m, s = con.execute("SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM s)").fetchone()
    return dt, {"messages": m, "spans": s}


def run_columns(env: str, spans: str, db: str) -> tuple[float, dict]:
    import duckdb

    from mcptrace.core.keys import KeyConfig

    params = KeyConfig().message_params()
    paths, http_paths = params["paths"], params["http_paths"]
    t0 = time.perf_counter()
    con = duckdb.connect(db)
    con.execute(columns_messages_sql(len(paths), len(http_paths)), {"path": env, "paths": paths, "http_paths": http_paths})
    con.execute(FLOOR_SPANS_SQL, [spans])
    con.close()
    dt = time.perf_counter() - t0
    with duckdb.connect(db, read_only=True) as con:
        m, cols, s = con.execute("SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM duckdb_columns() "
                                 "WHERE table_name = 'm'), (SELECT count(*) FROM s)").fetchone()
    return dt, {"messages": m, "message_columns": cols, "spans": s}


def run_mcptrace(env: str, spans: str, db: str) -> tuple[float, dict]:
    import mcptrace
    import mcptrace.workspace  # noqa: F401 - the package imports it on first use: outside the timing

    t0 = time.perf_counter()
    mcptrace.load([env, spans], db=db).close()  # close (checkpoint) inside the timing, as for the floor
    dt = time.perf_counter() - t0
    with mcptrace.open(db) as ws:
        info = dict(zip(("messages", "spans", "calls", "sessions", "gaps", "call_spans", "rejects", "http_events"),
                        ws.con.execute(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM spans), (SELECT count(*) FROM calls), "
            "(SELECT count(*) FROM sessions), (SELECT count(*) FROM gaps), (SELECT count(*) FROM call_spans), "
            "(SELECT count(*) FROM rejects), (SELECT count(*) FROM http_events)").fetchone()))
        # the findings step of the rebuild on its own (part of the load time above)
        from mcptrace.analysis.findings import build

        t1 = time.perf_counter()
        info["findings"] = build(ws.con)
        info["findings_s"] = round(time.perf_counter() - t1, 2)
    return dt, info


def run_append(env: str, spans: str, db: str) -> tuple[float, dict]:
    """Three appends of 10 records (a new host session a minute after the capture: scale.append_records)
    to the database the mcptrace contender loaded, each in this process, timed from opening the database
    to closing it, then a fourth on the first one's connection, session keys and trace-ids (``continue_0``);
    returns the median of the three and what each append's analysis recomputed."""
    import mcptrace

    times, info = [], {}
    for i, (name, tag) in enumerate([("append_0", "append-0"), ("append_1", "append-1"), ("append_2", "append-2"),
                                     ("continue_0", "append-0")]):
        with mcptrace.open(db) as ws:
            after = ws.sql("SELECT max(ts) FROM messages").rows()[0][0]
        path = append_records(after, os.path.join(os.path.dirname(db), f"append_{i}.jsonl"), tag=tag)
        t0 = time.perf_counter()
        ws = mcptrace.open(db)
        rep = ws.load(path)
        ws.close()
        times.append(time.perf_counter() - t0)
        a = rep.analysis
        info[name] = (f"{times[-1]:.2f}s {a.mode} {a.n_calls} calls in scope, analysis {a.seconds:.2f}s"
                      + (f" ({a.reason})" if a.reason else ""))
    return sorted(times[:3])[1], info


def run_pandas(env: str, spans: str, db: str) -> tuple[float, dict]:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_json(env, lines=True)
    messages = pd.json_normalize(df["message"].tolist())
    traces = pd.read_json(spans, lines=True)
    flat = pd.json_normalize(traces.to_dict("records"), record_path=["resourceSpans", "scopeSpans", "spans"])
    dt = time.perf_counter() - t0
    return dt, {"messages": len(messages), "message_columns": messages.shape[1], "spans": len(flat)}


def run_polars(env: str, spans: str, db: str) -> tuple[float, dict]:
    import polars as pl

    t0 = time.perf_counter()
    messages = pl.read_ndjson(env, infer_schema_length=None)
    flat = (pl.read_ndjson(spans, infer_schema_length=None)
            .explode("resourceSpans").unnest("resourceSpans")
            .explode("scopeSpans").unnest("scopeSpans")
            .explode("spans").unnest("spans"))
    dt = time.perf_counter() - t0
    return dt, {"messages": messages.height, "spans": flat.height}


CONTENDERS = {"floor": run_floor, "columns": run_columns, "mcptrace": run_mcptrace, "pandas": run_pandas, "polars": run_polars}
#: runs after mcptrace, on the database it loaded (not a contender: no "x floor")
AFTER = {"append": run_append}


def measure(name: str, env: str, spans: str, workdir: str, timeout: float) -> dict:
    """Run one contender in a fresh interpreter; return its timing, peak RSS and info."""
    db = os.path.join(workdir, f"{'mcptrace' if name in AFTER else name}.duckdb")
    for f in (db, db + ".wal") if name not in AFTER else ():
        if os.path.exists(f):
            os.remove(f)
    proc = subprocess.Popen([sys.executable, __file__, "--child", name, env, spans, db],
                            stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out = None
        proc.wait()
        return {"seconds": None, "peak_mb": float("nan"), "info": {"stopped": f"after {timeout:.0f} s"}}
    if proc.returncode:
        return {"seconds": None, "peak_mb": float("nan"), "info": {"failed": f"exit code {proc.returncode}"}}
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--out", default=None, help="work dir for the scaled files and databases (default: a temp dir)")
    ap.add_argument("--only", nargs="*", choices=list(CONTENDERS), help="run only these contenders (floor always runs)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a contender is stopped")
    ap.add_argument("--shape", choices=[*SHAPES, "both"], default="both",
                    help="the stdio samples, the HTTP captures, or both (default), each scaled to the same sizes")
    ap.add_argument("--child", nargs=4, metavar=("CONTENDER", "ENVELOPE", "SPANS", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        name, env, spans, db = args.child
        seconds, info = {**CONTENDERS, **AFTER}[name](env, spans, db)
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        print(json.dumps({"seconds": seconds, "peak_mb": peak, "info": info}))
        return

    with tempfile.TemporaryDirectory(prefix="mcptrace-bench-") as tmp:
        workdir = args.out or tmp
        os.makedirs(workdir, exist_ok=True)
        shapes = list(SHAPES) if args.shape == "both" else [args.shape]
        for shape in shapes:
            run_shape(shape, workdir, args)


def run_shape(shape: str, workdir: str, args: argparse.Namespace) -> None:
    """Scale the capture of ``shape``, run every contender on it, print the table and the counts."""
    env, spans = scale_capture(workdir, args.messages, args.spans, shape=shape)
    print(f"== shape: {shape}")
    print(f"{args.messages} messages, {os.path.getsize(env) / 1e6:.0f} MB: {env}")
    print(f"{args.spans} spans, {os.path.getsize(spans) / 1e6:.0f} MB: {spans}\n")
    names = ["floor"] + [n for n in CONTENDERS if n != "floor" and (not args.only or n in args.only)]
    results = {}
    shape_dir = os.path.join(workdir, shape)
    os.makedirs(shape_dir, exist_ok=True)
    for name in names:
        results[name] = measure(name, env, spans, shape_dir, args.timeout)
        print(f"  {shape} {name}: done", file=sys.stderr, flush=True)
    floor = results["floor"]["seconds"]
    print(f"{'contender':<10} {'wall s':>8} {'peak RSS MB':>12} {'x floor':>8}")
    for name, r in results.items():
        s = r["seconds"]
        print(f"{name:<10} {s if s is None else round(s, 2)!s:>8} {r['peak_mb']:>12.0f} "
              f"{'-' if s is None else f'{s / floor:.2f}':>8}")
    print()
    if "mcptrace" in results and results["mcptrace"]["seconds"] is not None:
        results["append"] = a = measure("append", env, spans, shape_dir, args.timeout)
        print(f"append     {a['seconds'] if a['seconds'] is None else round(a['seconds'], 2)!s:>8} "
              f"{a['peak_mb']:>12.0f}        -   (10 records into the database above: median of 3)")
    print()
    for name, r in results.items():
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in r["info"].items()))
    got = results.get("mcptrace", {}).get("info", {})
    if "messages" in got and got["messages"] + got.get("http_events", 0) + got["rejects"] < args.messages:
        print(f"WARNING: mcptrace kept {got['messages']} messages + {got.get('http_events', 0)} HTTP events + "
              f"{got['rejects']} rejects of {args.messages}")
    print()


if __name__ == "__main__":
    main()
