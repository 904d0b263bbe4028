"""Files from the field that used to load wrongly: one-line Tempo/Jaeger documents, unsigned 64-bit
span times, Claude Desktop lines cut by ``...[N chars truncated]...``, Parquet datasets of databases
without spans, and ``mcptrace capture http --upstream`` with a path."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import mcptrace
from mcptrace.ingest import readers

TRACE = "0af7651916cd43dd8448eb211c80319c"


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def _span(i: int, ids=lambda h: h, start: object = "1700000000000000000", end: object = "1700000001000000000") -> dict:
    return {"traceId": ids(TRACE), "spanId": ids(f"{i:016x}"), "name": f"span {i}", "kind": 2,
            "startTimeUnixNano": start, "endTimeUnixNano": end}


def _resource(spans: list, pad: int = 0) -> dict:
    attrs = [{"key": "service.name", "value": {"stringValue": "svc"}}]
    if pad:
        attrs.append({"key": "blob", "value": {"stringValue": "x" * pad}})
    return {"resource": {"attributes": attrs}, "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}


def _load_one(path):
    ws = mcptrace.load(str(path))
    (f,) = ws.last_report.files
    return ws, f


# -- 1. one-line Tempo / Jaeger documents ---------------------------------------------------------------
@pytest.mark.parametrize("shape", ["tempo_batches", "tempo_batches_long", "resource_spans_b64",
                                   "jaeger_result_long", "tempo_v2_trace"])
def test_one_line_query_api_documents_are_documents(tmp_path, shape):
    spans = [_span(i, _b64) for i in range(1, 7)]
    doc = {
        "tempo_batches": {"batches": [_resource(spans)]},
        # longer than the sniffing head: cut before any scope list
        "tempo_batches_long": {"batches": [_resource(spans, pad=100_000)]},
        "resource_spans_b64": {"resourceSpans": [_resource(spans)]},
        "jaeger_result_long": {"result": {"resourceSpans": [_resource(spans, pad=100_000)]}},
        "tempo_v2_trace": {"trace": {"resourceSpans": [_resource(spans)]}},
    }[shape]
    path = tmp_path / f"{shape}.json"
    path.write_text(json.dumps(doc, separators=(",", ":")))  # one line, as curl writes it
    assert b"\n" not in path.read_bytes()
    assert readers.sniff(readers.read_head(str(path))).name == "otlp_json_document"
    ws, f = _load_one(path)
    assert (f.format, f.n_rows, f.n_rejected) == ("otlp_json_document", 6, 0)
    assert ws.sql("SELECT DISTINCT trace_id FROM spans").rows() == [(TRACE,)]
    assert ws.sql("SELECT span_id FROM spans ORDER BY 1").rows() == [(f"{i:016x}",) for i in range(1, 7)]
    ws.close()


def test_collector_lines_with_hex_ids_stay_collector_lines(tmp_path):
    lines = [json.dumps({"resourceSpans": [_resource([_span(i)])]}, separators=(",", ":")) for i in (1, 2, 3)]
    one, many, long = tmp_path / "one.jsonl", tmp_path / "many.jsonl", tmp_path / "long.jsonl"
    one.write_text(lines[0] + "\n")
    many.write_text("\n".join(lines) + "\n")
    long.write_text(json.dumps({"resourceSpans": [_resource([_span(1)], pad=100_000)]}) + "\n")
    for path, n in ((one, 1), (many, 3), (long, 1)):
        assert readers.sniff(readers.read_head(str(path))).name == "otlp_json", path
        ws, f = _load_one(path)
        assert (f.format, f.n_rows, f.n_rejected) == ("otlp_json", n, 0)
        ws.close()
    # a Collector line whose first id is broken (neither hex nor base64 of 16 bytes) is still a line:
    # its span is rejected as before, with the line's number
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"resourceSpans": [_resource([dict(_span(1), traceId="zz" * 16), _span(2)])]}) + "\n")
    ws, f = _load_one(bad)
    assert (f.format, f.n_rows, f.n_rejected) == ("otlp_json", 1, 1)
    assert ws.sql("SELECT reason FROM rejects").rows()[0][0].startswith("line 1: span traceId is not 32 hex digits")
    ws.close()


# -- 2. unsigned 64-bit times and the accepted time range ----------------------------------------------
U64_MAX = 2**64 - 1


def test_span_start_times_out_of_range_are_rejected_with_the_reason(tmp_path):
    starts = {1: "1700000000000000000",       # 2023: kept
              2: str(U64_MAX),                # a fixed64 beyond int64: year 2554, outside the range
              3: str(U64_MAX + 1),            # beyond a fixed64
              4: "-5",                        # negative
              5: "7258118400000001000",       # 1 µs after 2200-01-01
              6: "not a number",
              7: 1700000000000000001}         # a JSON number: kept
    path = tmp_path / "times.jsonl"
    path.write_text(json.dumps({"resourceSpans": [_resource([_span(i, start=s) for i, s in starts.items()])]}) + "\n")
    ws, f = _load_one(path)
    assert (f.format, f.n_rows, f.n_rejected) == ("otlp_json", 2, 5)
    assert ws.sql("SELECT span_id FROM spans ORDER BY 1").rows() == [(f"{1:016x}",), (f"{7:016x}",)]
    reasons = sorted(r for (r,) in ws.sql("SELECT reason FROM rejects").rows())
    range_text = "is outside the accepted time range (1970-01-01T00:00:00Z to 2200-01-01T00:00:00Z)"
    assert reasons == sorted([
        f"line 1: span startTimeUnixNano {U64_MAX} {range_text}",
        f"line 1: span startTimeUnixNano is out of range (a fixed64: 0 to {U64_MAX}): {U64_MAX + 1}",
        "line 1: span startTimeUnixNano is out of range (a fixed64: 0 to 18446744073709551615): -5",
        f"line 1: span startTimeUnixNano 7258118400000001000 {range_text}",
        "line 1: span startTimeUnixNano is missing or not an integer",
    ])
    # every command works on what loaded
    assert ws.sql("SELECT min(start_ts) FROM spans").rows()[0][0].year == 2023
    ws.close()


def test_the_accepted_range_is_the_loaders(tmp_path):
    from mcptrace.core.db import connect
    from mcptrace.ingest.loader import Loader
    from mcptrace.ingest.options import LoadOptions

    path = tmp_path / "times.jsonl"
    path.write_text(json.dumps({"resourceSpans": [_resource([_span(1, start="1700000000000000000"),
                                                             _span(2, start="1500000000000000000")])]}) + "\n")
    con = connect(str(tmp_path / "x.duckdb"))
    try:
        opts = LoadOptions(ts_range=("2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"))
        Loader(con, opts).load([str(path)])
        assert con.execute("SELECT span_id FROM spans").fetchall() == [(f"{1:016x}",)]
        (reason,) = con.execute("SELECT reason FROM rejects").fetchone()
        assert reason == ("line 1: span startTimeUnixNano 1500000000000000000 is outside the accepted time range "
                          "(2020-01-01T00:00:00Z to 2030-01-01T00:00:00Z)")
    finally:
        con.close()


def test_fixed64_times_through_the_protobuf_and_document_readers(tmp_path):
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i, start in ((1, 1_700_000_000_000_000_000), (2, U64_MAX)):
        sp = ss.spans.add()
        sp.trace_id, sp.span_id, sp.name = bytes.fromhex(TRACE), bytes.fromhex(f"{i:016x}"), f"span {i}"
        sp.start_time_unix_nano, sp.end_time_unix_nano = start, 1_700_000_001_000_000_000
    body = req.SerializeToString()
    framed = tmp_path / "framed.pb"
    framed.write_bytes(struct.pack(">I", len(body)) + body)
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"batches": [_resource([_span(1, _b64), _span(2, _b64, start=str(U64_MAX))])]},
                              indent=1))
    for path, fmt, label in ((framed, "otlp_proto", "frame"), (doc, "otlp_json_document", "resource")):
        ws, f = _load_one(path)
        assert (f.format, f.n_rows, f.n_rejected) == (fmt, 1, 1), path
        (reason,) = ws.sql("SELECT reason FROM rejects").rows()[0]
        assert reason == (f"{label} 1: span startTimeUnixNano {U64_MAX} is outside the accepted time range "
                          "(1970-01-01T00:00:00Z to 2200-01-01T00:00:00Z)"), reason
        ws.close()


# -- 4. Parquet datasets of any database ------------------------------------------------------------------
def _cli(*args, cwd=None):
    import subprocess
    import sys

    from conftest import ROOT

    return subprocess.run([sys.executable, "-m", "mcptrace", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


def _envelope(ts: str, direction: str, message: dict) -> str:
    return json.dumps({"ts": ts, "direction": direction, "transport": "stdio", "connection_id": "c1",
                       "message": message})


@pytest.mark.parametrize("content", ["messages_only", "spans_only", "nothing"])
def test_parquet_export_and_open_round_trip_whatever_is_empty(tmp_path, content):
    db, ds = tmp_path / "x.duckdb", tmp_path / "ds"
    files = []
    if content == "messages_only":
        f = tmp_path / "cap.jsonl"
        f.write_text(_envelope("2025-01-01T00:00:00Z", "client_to_server",
                               {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) + "\n"
                     + _envelope("2025-01-01T00:00:01Z", "server_to_client",
                                 {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}) + "\n")
        files.append(f)
    elif content == "spans_only":
        f = tmp_path / "spans.jsonl"
        f.write_text(json.dumps({"resourceSpans": [_resource([_span(1), _span(2)])]}) + "\n")
        files.append(f)
    ws = mcptrace.load([str(f) for f in files], db=str(db))
    expected = {t: n for t, n in ws.sql("SELECT 'messages', count(*) FROM messages UNION ALL "
                                        "SELECT 'spans', count(*) FROM spans UNION ALL "
                                        "SELECT 'calls', count(*) FROM calls").rows()}
    ws.close()
    assert expected == {"messages": 2 if content == "messages_only" else 0,
                        "spans": 2 if content == "spans_only" else 0,
                        "calls": 1 if content == "messages_only" else 0}
    r = _cli("export", "--db", db, "--parquet", ds)
    assert r.returncode == 0, r.stderr
    for table in ("messages", "spans", "calls", "sessions", "gaps"):
        assert list((ds / table).rglob("*.parquet")), table  # every table has a file, empty ones too
    r = _cli("open", ds, "--sql", "SELECT 'counted' AS label, " + ", ".join(f"(SELECT count(*) FROM {t}) AS n_{t}"
                                                               for t in expected))
    assert r.returncode == 0, r.stderr
    (row,) = [ln.split() for ln in r.stdout.splitlines() if "counted" in ln.split()]
    assert row[-3:] == [str(n) for n in expected.values()], r.stdout
    for verb in ("sessions", "gaps"):
        r = _cli(verb, "--db", ds)
        assert r.returncode == 0, (verb, r.stderr)
    attached = mcptrace.open_dataset(ds)
    for table, n in expected.items():
        assert attached.sql(f"SELECT count(*) FROM {table}").rows() == [(n,)]
    # the columns of an empty table are the database's
    cols = [c for (c,) in attached.sql("SELECT column_name FROM information_schema.columns "
                                       "WHERE table_name = 'spans'").rows()]
    assert {"trace_id", "span_id", "start_ts", "attributes", "source_id"} <= set(cols) and "day" not in cols
    # exporting again into the same directory, after the table got rows, replaces the empty file
    if content == "messages_only":
        more = tmp_path / "more.jsonl"
        more.write_text(json.dumps({"resourceSpans": [_resource([_span(3)])]}) + "\n")
        ws = mcptrace.load(str(more), db=str(db))
        ws.close()
        assert _cli("export", "--db", db, "--parquet", ds).returncode == 0
        assert not (ds / "spans" / "data.parquet").exists()
        assert mcptrace.open_dataset(ds).sql("SELECT span_id FROM spans").rows() == [(f"{3:016x}",)]


def test_a_dataset_written_without_files_for_its_empty_tables_opens(tmp_path):
    """Datasets exported before empty tables got a file lack spans/ files (say): they open, spans empty."""
    from mcptrace.render.export import write_dataset

    f = tmp_path / "cap.jsonl"
    f.write_text(_envelope("2025-01-01T00:00:00Z", "client_to_server",
                           {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) + "\n")
    ws = mcptrace.load(str(f))
    write_dataset(ws.con, tmp_path / "ds")
    ws.close()
    for p in (tmp_path / "ds" / "spans").rglob("*.parquet"):
        p.unlink()
    attached = mcptrace.open_dataset(tmp_path / "ds")
    assert attached.sql("SELECT count(*) FROM spans").rows() == [(0,)]
    assert attached.sql("SELECT count(*) FROM messages").rows() == [(1,)]
