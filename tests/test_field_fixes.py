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


# -- 5. capture http --upstream with a path -------------------------------------------------------------------
_INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "field-fixes-test", "version": "1"}}}
_MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _initialize(url: str) -> tuple[int, str]:
    import httpx

    with httpx.Client(trust_env=False, timeout=30) as client:
        r = client.post(url, json=_INIT, headers=_MCP_HEADERS)
        return r.status_code, r.text


def test_capture_http_upstream_with_a_path_is_the_endpoint(tmp_path):
    import signal

    from test_capture import Proxy, _http_server, _stop

    server, origin = _http_server(tmp_path)  # a real SDK server whose endpoint is /mcp
    out_path, out_root = tmp_path / "path.jsonl", tmp_path / "root.jsonl"
    try:
        # the README's form: the upstream URL is the endpoint, whatever path the client uses
        proxy = Proxy(tmp_path, origin + "/mcp", out_path)
        try:
            for client_path in ("/mcp", "/", "/anything/else"):
                status, text = _initialize(proxy.url + client_path)
                assert status == 200, (client_path, status, text[:300])
                assert '"serverInfo"' in text, text[:300]
        finally:
            assert proxy.stop() == 0
        # without a path the request path is appended, as before
        proxy = Proxy(tmp_path, origin, out_root)
        try:
            assert _initialize(proxy.url + "/mcp")[0] == 200
            assert _initialize(proxy.url + "/")[0] == 404  # origin + "/": not the endpoint
        finally:
            assert proxy.stop() == 0
    finally:
        _stop(server, signal.SIGKILL)
    envs = [json.loads(line) for line in out_path.read_text().splitlines()]
    c2s = [e for e in envs if e["direction"] == "client_to_server" and e["message"]]
    s2c = [e for e in envs if e["direction"] == "server_to_client" and e["message"]]
    assert [e["http"]["path"] for e in c2s] == ["/mcp", "/", "/anything/else"]  # what the client asked for
    assert {e["http"]["status"] for e in c2s} == {200} and len(s2c) == 3
    ws = mcptrace.load(str(out_path))
    assert ws.sql("SELECT method, status FROM calls").rows() == [("initialize", "ok")] * 3
    ws.close()


def test_upstream_url_of_each_request(tmp_path):
    from mcptrace.capture.http import LoggingProxy

    def url(upstream: str, target: str) -> str:
        proxy = LoggingProxy(upstream, str(tmp_path / "out.jsonl"))
        try:
            return proxy.upstream_url(target)
        finally:
            proxy.writer.close()

    assert url("http://h:8000", "/mcp") == "http://h:8000/mcp"
    assert url("http://h:8000/", "/mcp?x=1") == "http://h:8000/mcp?x=1"
    assert url("http://h:8000/mcp", "/mcp") == "http://h:8000/mcp"
    assert url("http://h:8000/mcp", "/") == "http://h:8000/mcp"
    assert url("http://h:8000/mcp/", "/mcp") == "http://h:8000/mcp/"  # exactly as given
    assert url("http://h:8000/mcp", "/mcp?x=1") == "http://h:8000/mcp?x=1"
    assert url("http://h:8000/mcp?key=k", "/?x=1") == "http://h:8000/mcp?key=k&x=1"
    # OAuth discovery and a 2024-11-05 message POST go to the origin
    assert url("http://h:8000/mcp", "/.well-known/oauth-protected-resource/mcp") == \
        "http://h:8000/.well-known/oauth-protected-resource/mcp"
    assert url("http://h:8000/sse", "/messages/?session_id=abc") == "http://h:8000/messages/?session_id=abc"


# -- 3. Claude Desktop lines cut by "...[N chars truncated]..." -------------------------------------------------
def _claude_line(second: int, who: str, text: str) -> str:
    return f"2025-04-06T03:11:{second:02d}.000Z [files] [info] Message from {who}: {text} {{ metadata: undefined }}"


def _cut(text: str, keep_head: int, keep_tail: int) -> str:
    n = len(text) - keep_head - keep_tail
    return text[:keep_head] + f"...[{n} chars truncated]..." + text[len(text) - keep_tail:]


def test_claude_desktop_cut_lines_keep_their_calls_answered(tmp_path):
    compact = lambda v: json.dumps(v, separators=(",", ":"))  # noqa: E731
    big = "line of a big file\n" * 2000
    lines = ["2025-04-06T03:11:00.000Z [files] [info] Initializing server... { metadata: undefined }"]
    # 1. a reply cut in its result: id at the start (the Python SDK's order)
    lines.append(_claude_line(1, "client", compact({"method": "tools/call", "params": {"name": "read_file", "arguments":
                                                  {"path": "/a"}}, "jsonrpc": "2.0", "id": 1})))
    reply = compact({"jsonrpc": "2.0", "id": 1, "result": {"isError": False, "content": [{"type": "text", "text": big}]}})
    head = reply.index("\\n", 100) + 1  # the cut falls inside an escape: "\...[N chars truncated]..."
    lines.append(_claude_line(2, "server", _cut(reply, head, 30)))
    # 2. a request cut in its arguments, its id only at the end (Claude's own order); the cut leaves one
    #    more closing brace than it opened
    req = ('{"method":"tools/call","params":{"name":"write_file","_meta":{"progressToken":7},'
           '"arguments":{"token":"sk-live-0123456789","content":"' + "z" * 3000 + '"}}},"jsonrpc":"2.0","id":2}')
    lines.append(_claude_line(3, "client", req[:150] + "...[2900 chars truncated]..." + req[-45:]))
    lines.append(_claude_line(4, "server", compact({"jsonrpc": "2.0", "id": 2, "result": {"content": []}})))
    # 3. an error reply cut in its data
    err = compact({"jsonrpc": "2.0", "id": 3, "error": {"code": -32603, "message": "boom", "data": "t" * 4000}})
    lines.append(_claude_line(5, "client", compact({"method": "tools/call", "params": {"name": "x"},
                                                     "jsonrpc": "2.0", "id": 3})))
    lines.append(_claude_line(6, "server", _cut(err, 80, 2)))  # the string never closes
    # 4. a cut that leaves nothing readable stays a reject; 5. a cut inside one string leaves valid JSON, kept whole
    lines.append(_claude_line(7, "server", '{"resu...[5000 chars truncated]...]}}'))
    whole = compact({"jsonrpc": "2.0", "method": "notifications/message",
                     "params": {"level": "info", "data": "abc...[99 chars truncated]...xyz"}})
    lines.append(_claude_line(8, "server", whole))
    path = tmp_path / "mcp-server-files.log"
    path.write_text("\n".join(lines) + "\n")

    ws, f = _load_one(path)
    assert (f.format, f.n_rows, f.n_rejected) == ("claude_desktop_log", 7, 1)
    assert ws.sql("SELECT reason FROM rejects").rows() == [
        ("line 8: Message from server: cut by the log (5000 chars truncated) before its id or method could be read",)]
    assert ws.sql("SELECT rpc_id, method, tool_name, status, error_code FROM calls ORDER BY start_ts").rows() == [
        ("1", "tools/call", "read_file", "truncated", None),  # answered; the capture cut its result
        ("2", "tools/call", "write_file", "ok", None),
        ("3", "tools/call", "x", "error", -32603)]
    assert ws.sql("SELECT count(*) FROM gaps WHERE severity = 'error'").rows() == [(0,)]
    assert ws.sql("SELECT record_no FROM messages WHERE truncated ORDER BY 1").rows() == [(3,), (4,), (7,)]
    rows = {r[0]: r[1:] for r in ws.sql(
        "SELECT record_no, kind, direction, rpc_id, raw::VARCHAR, error_message FROM messages").rows()}
    # the reply: a response whose result says it was cut, with the text before the cut
    kind, direction, rpc_id, raw, _ = rows[3]
    assert (kind, direction, rpc_id) == ("response", "server_to_client", "1")
    note = json.loads(raw)["result"]["_meta"]["mcptrace/truncated"]
    assert note["chars_truncated"] == len(reply) - head - 30 and note["prefix"] == reply[:head]
    assert json.loads(raw)["result"]["isError"] is False  # members before the cut are kept as they were
    # the request: id read from its end; tool name, _meta from before the cut; the secret redacted
    kind, direction, rpc_id, raw, _ = rows[4]
    assert (kind, direction, rpc_id) == ("request", "client_to_server", "2")
    params = json.loads(raw)["params"]
    assert params["name"] == "write_file" and params["_meta"]["progressToken"] == 7
    assert params["_meta"]["mcptrace/truncated"]["chars_truncated"] == 2900
    assert "sk-live" not in raw and '\\"token\\":\\"[REDACTED]' in raw
    # the error: code and message read before the cut
    kind, _, rpc_id, raw, error_message = rows[7]
    assert (kind, rpc_id, error_message) == ("error", "3", "boom")
    assert "mcptrace/truncated" in json.loads(raw)["error"]["_meta"]
    # a cut inside one string: the message as written
    assert json.loads(rows[9][3]) == json.loads(whole)
