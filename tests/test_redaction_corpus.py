"""Credentials planted where real traffic carries them, one file per input format: none reaches a table,
``rejects``, the report, a CSV or Parquet export or a Chrome trace; their non-secret neighbours (ids,
tool names, ``progressToken``, token counts) are kept. The capture side is in test_capture_bounds.py
and test_capture.py."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import mcptrace
from mcptrace.core.db import TABLES

PLANTED: list[str] = []


def secret(tag: str) -> str:
    """A credential value that appears nowhere else (the check looks for it verbatim)."""
    value = f"S3CR3T{len(PLANTED):02d}{tag}"
    PLANTED.append(value)
    return value


TRACE = "0af7651916cd43dd8448eb211c80319c"


def _env(ts, direction, message, http=None, raw=None):
    e = {"ts": ts, "direction": direction, "transport": "streamable_http" if http else "stdio",
         "connection_id": "c1", "message": message}
    if http:
        e["http"] = http
    if raw is not None:
        e["raw"] = raw
    return json.dumps(e)


def _envelope_file(d):
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "query_db", "arguments": {
            "dbPassword": secret("camel"), "githubToken": secret("gh"), "OPENAI_API_KEY": secret("env"),
            "nested": {"deeper": [{"client_secret": secret("deep")}]},
            "dsn": "postgres://admin:" + secret("dsn") + "@db:5432/app",
            "connect": "use mysql://root:" + secret("userinfo") + "@db/x now",
            "header_list": [{"name": "Authorization", "value": "Bearer " + secret("harpair")}],
            "note": "curl -H 'Authorization: Bearer " + secret("line") + "'",
            "token_count": 1234},
        "_meta": {"progressToken": "pt-keep-1", "access_token": secret("meta"),
                  "traceparent": f"00-{TRACE}-b7ad6b7169203331-01"}}}
    http = {"method": "POST", "path": "/mcp?api_key=" + secret("path") + "&page=2", "status": 200,
            "request_headers": {"authorization": "Bearer " + secret("hdr"), "x-goog-api-key": secret("goog"),
                                "mcp-session-id": "sess-keep"},
            "response_headers": {"set-cookie": "sid=" + secret("cookie")}}
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "failed: password=" + secret("errmsg"),
                                                 "data": {"apiKey": secret("errdata")}}}
    lines = [_env("2026-03-01T12:00:00Z", "client_to_server", call, http),
             _env("2026-03-01T12:00:01Z", "server_to_client", error, http),
             "this is not json, Authorization: Bearer " + secret("reject") + " and more",
             _env("2026-03-01T12:00:02Z", "server_to_client", None, raw="token=" + secret("raw"))]
    (d / "capture.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _ndjson_file(d):
    msgs = [{"jsonrpc": "2.0", "id": 7, "method": "tools/call",
             "params": {"name": "deploy", "arguments": {"slackBotToken": secret("slack"),
                                                        "webhook": "https://h/x?sig=" + secret("sig")}}},
            {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text",
                                                               "text": "key ghp_" + "a1b2c3d4e5" * 4}]}}]
    PLANTED.append("ghp_" + "a1b2c3d4e5" * 4)
    (d / "bare.ndjson").write_text("\n".join(json.dumps(m) for m in msgs) + "\n", encoding="utf-8")


def _har_file(d):
    req = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "fetch", "arguments": {"apiSecret": secret("harbody")}}})
    sse = ("event: message\ndata: " + json.dumps({"jsonrpc": "2.0", "id": 3, "result": {
        "content": [{"type": "text", "text": "refresh_token=" + secret("sse")}]}}) + "\n\n")
    entries = [
        {"startedDateTime": "2026-03-01T12:00:00Z", "time": 5,
         "request": {"method": "POST", "url": "http://h/mcp?apiToken=" + secret("harquery"),
                     "headers": [{"name": "Authorization", "value": "Bearer " + secret("harhdr")},
                                 {"name": "Content-Type", "value": "application/json"},
                                 {"name": "Mcp-Session-Id", "value": "har-sess"}],
                     "queryString": [{"name": "apiToken", "value": "x"}],
                     "postData": {"mimeType": "application/json", "text": req}},
         "response": {"status": 200, "headers": [{"name": "Content-Type", "value": "text/event-stream"}],
                      "content": {"mimeType": "text/event-stream", "text": sse}}},
        {"startedDateTime": "2026-03-01T12:00:01Z", "time": 5,
         "request": {"method": "POST", "url": "http://h/mcp",
                     "headers": [{"name": "Mcp-Session-Id", "value": "har-sess"}],
                     "postData": {"mimeType": "application/x-www-form-urlencoded",
                                  "text": "grant_type=client_credentials&client_secret=" + secret("form"),
                                  "params": [{"name": "client_secret", "value": "x"}]}},
         "response": {"status": 200, "headers": [{"name": "Mcp-Session-Id", "value": "har-sess"}],
                      "content": {"mimeType": "application/json", "text": "{}"}}},
    ]
    (d / "traffic.har").write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "t"},
                                                       "entries": entries}}), encoding="utf-8")


def _inspector_file(d):
    t = "2026-03-01T12:00:05.000Z"
    entries = [{"id": "1-a", "timestamp": t, "direction": "request", "origin": "client",
                "message": {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                            "params": {"name": "search", "arguments": {"bearerToken": secret("insp")}}},
                "response": {"jsonrpc": "2.0", "id": 11, "result": {"content": [], "privateKey": secret("insp2")}},
                "duration": 3}]
    (d / "inspector-protocol-x.json").write_text(json.dumps(entries), encoding="utf-8")


def _claude_file(d):
    msg = json.dumps({"method": "tools/call", "params": {"name": "files", "arguments": {"password": secret("claude")}},
                     "jsonrpc": "2.0", "id": 21})
    cut = ('{"jsonrpc":"2.0","id":21,"result":{"content":[{"type":"text","text":"token: '
           + secret("cut") + ' then ...[500 chars truncated]...}]}}')
    lines = ["2026-03-01T12:00:06.000Z [files] [info] Message from client: " + msg + " { metadata: undefined }",
             "2026-03-01T12:00:07.000Z [files] [info] Message from server: " + cut + " { metadata: undefined }"]
    (d / "mcp-server-files.log").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _kv(key, value):
    return {"key": key, "value": {"stringValue": value}}


def _otlp_request():
    span_attrs = [
        {"key": "mcp.method.name", "value": {"stringValue": "tools/call"}},
        {"key": "jsonrpc.request.id", "value": {"stringValue": "1"}},
        {"key": "gen_ai.tool.name", "value": {"stringValue": "query_db"}},
        _kv("url.full", "https://api.example/v1?access_token=" + secret("urlfull") + "&x=1"),
        _kv("url.query", "api_key=" + secret("urlquery")),
        _kv("http.url", "https://user:" + secret("httpurl") + "@api.example/v1"),
        _kv("db.connection_string", "Server=db;User=sa;Password=" + secret("dbconn")),
        {"key": "http.request.header.authorization", "value": {"arrayValue": {"values": [
            {"stringValue": "Bearer " + secret("hdrarr")}]}}},
        _kv("gen_ai.tool.call.arguments", json.dumps({"api_key": secret("toolargs"), "city": "Paris"})),
        {"key": "auth", "value": {"kvlistValue": {"values": [_kv("client_secret", secret("kvlist"))]}}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
    ]
    span = {"traceId": TRACE, "spanId": "b7ad6b7169203331", "name": "tools/call query_db", "kind": 2,
            "startTimeUnixNano": "1772366400000000000", "endTimeUnixNano": "1772366400500000000",
            "attributes": span_attrs,
            "status": {"code": 2, "message": "connect failed: password=" + secret("status")},
            "events": [{"name": "exception", "timeUnixNano": "1772366400100000000",
                        "attributes": [_kv("exception.message", "token=" + secret("event")),
                                       _kv("session_secret", secret("eventkey"))]}],
            "links": [{"traceId": "1" * 32, "spanId": "2" * 16, "attributes": [_kv("apiKey", secret("link"))]}]}
    return {"resourceSpans": [{
        "resource": {"attributes": [_kv("service.name", "weather-server"), _kv("db.password", secret("resource")),
                                    _kv("process.command_args", "--token=" + secret("cmdline"))]},
        "scopeSpans": [{"scope": {"name": "mcp", "attributes": [_kv("scope_token", secret("scope"))]},
                        "spans": [span]}]}]}


def _otlp_files(d):
    (d / "traces.otlp.jsonl").write_text(json.dumps(_otlp_request()) + "\n", encoding="utf-8")
    # the same content as OTLP/protobuf, other ids so both are stored
    doc = json.loads(json.dumps(_otlp_request()).replace(TRACE, "f" * 32).replace("S3CR3T", "S3CR3TPB"))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "f" * 32
    for k, v in list(enumerate(PLANTED)):
        PLANTED.append(v.replace("S3CR3T", "S3CR3TPB"))
    msg = json_format.ParseDict(_hex_to_b64(doc), ExportTraceServiceRequest())
    (d / "traces.pb").write_bytes(msg.SerializeToString())


def _hex_to_b64(doc):
    import base64

    def walk(o):
        if isinstance(o, dict):
            return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId") and isinstance(v, str)
                        else walk(v)) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(x) for x in o]
        return o
    return walk(doc)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    PLANTED.clear()
    d = tmp_path_factory.mktemp("planted")
    for make in (_envelope_file, _ndjson_file, _har_file, _inspector_file, _claude_file, _otlp_files):
        make(d)
    db = str(tmp_path_factory.mktemp("db") / "planted.duckdb")
    ws = mcptrace.load(d, db=db)
    report = ws.last_report
    assert all(f.status == "loaded" for f in report.files), [(f.path, f.status, f.error) for f in report.files]
    yield ws, d
    ws.close()


def _leaks(text: str) -> list[str]:
    return [s for s in PLANTED if s in text]


def test_planted_corpus_is_real(loaded):
    ws, d = loaded
    assert len(PLANTED) > 40
    every_file = "".join(p.read_bytes().decode("utf-8", "replace") for p in d.iterdir() if p.is_file()
                         and not p.name.endswith(".duckdb") and p.suffix != ".pb")
    assert len(_leaks(every_file)) > 35  # the credentials are really in the inputs


def test_no_planted_credential_reaches_any_table(loaded):
    ws, _ = loaded
    for table in TABLES:
        text = json.dumps(ws.sql(f'SELECT * FROM "{table}"').rows(), default=str)
        assert not _leaks(text), (table, _leaks(text))


def test_no_planted_credential_reaches_an_output(loaded, tmp_path):
    ws, _ = loaded
    report = ws.write_report(tmp_path / "report.html")
    outputs = [open(report, encoding="utf-8").read()]
    for table in TABLES:
        outputs.append(open(ws.write_table(table, tmp_path / f"{table}.csv"), encoding="utf-8").read())
        outputs.append(json.dumps(pq.read_table(ws.write_table(table, tmp_path / f"{table}.parquet")).to_pylist(),
                                  default=str))
    for (session,) in ws.sql("SELECT session_id FROM sessions").rows():
        outputs.append(open(ws.write_chrome_trace(session, tmp_path / f"{session}.json"), encoding="utf-8").read())
    for out in outputs:
        assert not _leaks(out), _leaks(out)


def test_non_secret_neighbours_are_kept(loaded):
    ws, _ = loaded
    tools = {r[0] for r in ws.sql("SELECT tool_name FROM calls WHERE tool_name IS NOT NULL").rows()}
    assert {"query_db", "deploy", "fetch", "search", "files"} <= tools
    assert ws.sql("SELECT count(*) FROM messages WHERE progress_token = '\"pt-keep-1\"'").rows()[0][0] == 1
    raw = ws.sql("SELECT raw::VARCHAR FROM messages WHERE rpc_id = '1' AND kind = 'request'").rows()[0][0]
    assert '"token_count":1234' in raw.replace(" ", "") and "use mysql://root:[REDACTED]@db/x now" in raw
    assert "curl -H 'Authorization: Bearer [REDACTED]'" in raw
    assert ws.sql("SELECT count(*) FROM messages WHERE mcp_session_id = 'sess-keep'").rows()[0][0] >= 1
    span = ws.sql("SELECT attributes::VARCHAR, service_name FROM spans WHERE trace_id = ?", [TRACE]).rows()[0]
    attrs = json.loads(span[0])
    assert attrs["gen_ai.usage.input_tokens"] in (42, "42") and span[1] == "weather-server"
    assert json.loads(attrs["gen_ai.tool.call.arguments"])["city"] == "Paris"
    assert attrs["url.full"].startswith("https://api.example/v1?access_token=[REDACTED]&x=1")
    # the joins that correlation needs survive redaction
    assert ws.sql("SELECT count(*) FROM call_spans").rows()[0][0] >= 1


def test_rejects_are_redacted_in_reason_and_raw(loaded):
    ws, _ = loaded
    rows = ws.sql("SELECT reason, raw FROM rejects").rows()
    assert rows, "the corpus has rejects"
    assert any("this is not json, Authorization: Bearer [REDACTED] and more" in (raw or "") for _, raw in rows), rows
