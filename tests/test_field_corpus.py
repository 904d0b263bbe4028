"""Real third-party files (tests/field/, provenance in tests/field/README.md) load with the counts
that an independent reading of each file gives.

The expected numbers are computed here from the files themselves with the ``json`` module, a
regular expression over the log lines, or a minimal protobuf walker - never from mcptrace's own
output - and each file's expected format is written down by hand.
"""

from __future__ import annotations

import base64
import json
import pathlib
import re

import pytest

import mcptrace

FIELD = pathlib.Path(__file__).resolve().parent / "field"

# file -> format that mcptrace must sniff (read off each file by hand)
FORMATS = {
    "otel-proto-trace.json": "otlp_json_document",
    "otel-proto-trace.protobuf-bin": "otlp_proto",
    "otel-spec-file-exporter-traces.jsonl": "otlp_json",
    "otel-go-instrumentation-nethttp-traces-orig.json": "otlp_json",
    "jaeger-example_trace.json": "otlp_json_document",
    "jaeger-otel_traces_01.json": "otlp_json_document",
    "jaeger-otlp2jaeger-in.json": "otlp_json_document",
    "jaeger-apiv3-GetTrace.json": "otlp_json_document",
    "tempo-tempopb-trace.json": "otlp_json_document",
    "tempo-tempopb-trace-oneline.json": "otlp_json_document",
    "claude-mcp-server-cowgnition.log": "claude_desktop_log",
    "claude-cowgnition-mcp.log": "claude_desktop_log",
    "claude-taptools-mcp.log": "claude_desktop_log",
    "mitmproxy-event_stream.har": "har",
    "mitmproxy-successful_log.har": "har",
}

REBUILT_TABLES = ("sources", "rejects", "messages", "spans", "calls", "sessions", "gaps", "call_spans",
                  "http_events", "span_duplicates")


def test_every_field_file_is_listed_and_has_provenance():
    on_disk = {p.name for p in FIELD.iterdir() if p.name != "README.md"}
    assert on_disk == set(FORMATS)
    readme = (FIELD / "README.md").read_text(encoding="utf-8")
    for name in FORMATS:
        assert f"`{name}`" in readme, name
    for p in FIELD.iterdir():
        assert p.stat().st_size < 200_000, p.name


@pytest.fixture(scope="module")
def loaded():
    """Each file loaded alone into its own in-memory workspace."""
    out = {}
    for name in FORMATS:
        ws = mcptrace.load(FIELD / name)
        out[name] = ws
    yield out
    for ws in out.values():
        ws.close()


def q(ws, sql, params=None):
    return ws.con.execute(sql, params or []).fetchall()


def report(ws):
    files = ws.last_report.files
    assert len(files) == 1
    return files[0]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_sniffed_format_and_rebuild_tables(loaded, name):
    ws = loaded[name]
    f = report(ws)
    assert f.status == "loaded", (f.status, f.error)
    assert f.format == FORMATS[name]
    assert q(ws, "SELECT format FROM sources") == [(FORMATS[name],)]
    for table in REBUILT_TABLES:
        q(ws, f"SELECT count(*) FROM {table}")  # exists and is queryable after the rebuild
    # the public views work on the result
    ws.sessions().df()
    ws.gaps().df()


# --- OTLP/JSON documents (opentelemetry-proto, Jaeger, Tempo) ---------------------------------

def _id_hex(value: str, nbytes: int) -> str:
    """OTLP/JSON ids are hex (OTLP spec) or base64 (protobuf JSON mapping, Tempo); lower-case hex."""
    if re.fullmatch(rf"[0-9a-fA-F]{{{2 * nbytes}}}", value):
        return value.lower()
    return base64.b64decode(value).hex()


def _document_resources(doc: dict) -> list[dict]:
    doc = doc.get("result", doc)  # Jaeger api_v3 wraps the TracesData in "result"
    return doc.get("resourceSpans", doc.get("batches"))  # Tempo /api/traces uses "batches"


def _document_spans(resources: list[dict]) -> list[dict]:
    return [s for r in resources for ss in r["scopeSpans"] for s in ss["spans"]]


DOCUMENTS = ["otel-proto-trace.json", "jaeger-example_trace.json", "jaeger-otel_traces_01.json",
             "jaeger-otlp2jaeger-in.json", "tempo-tempopb-trace.json", "tempo-tempopb-trace-oneline.json"]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_otlp_json_document_counts(loaded, name):
    doc = json.loads((FIELD / name).read_text(encoding="utf-8"))
    resources = _document_resources(doc)
    spans = _document_spans(resources)
    # a span repeated with the same content is stored once and counted as a duplicate
    distinct = {json.dumps(s, sort_keys=True) for s in spans}
    ids = {(_id_hex(s["traceId"], 16), _id_hex(s["spanId"], 8)) for s in spans}
    names = sorted(s["name"] for s in {json.dumps(s, sort_keys=True): s for s in spans}.values())

    ws = loaded[name]
    f = report(ws)
    assert f.n_records == len(resources)
    assert f.n_rejected == 0
    assert q(ws, "SELECT count(*) FROM rejects") == [(0,)]
    assert f.n_duplicate_spans == len(spans) - len(distinct)
    assert q(ws, "SELECT count(*) FROM spans") == [(len(distinct),)]
    assert set(q(ws, "SELECT trace_id, span_id FROM spans")) == ids
    assert sorted(r[0] for r in q(ws, "SELECT name FROM spans")) == names
    assert q(ws, "SELECT count(*) FROM messages") == [(0,)]


def test_expected_document_sizes():
    """The hand count of the documents above, so that a silently emptied file cannot pass."""
    by_hand = {  # file: (resources, spans as written in the file)
        "otel-proto-trace.json": (1, 1),
        "jaeger-example_trace.json": (3, 5),
        "jaeger-otel_traces_01.json": (1, 4),
        "jaeger-otlp2jaeger-in.json": (1, 2),
        "tempo-tempopb-trace.json": (1, 1),
        "tempo-tempopb-trace-oneline.json": (1, 1),
    }
    for name, (n_res, n_spans) in by_hand.items():
        resources = _document_resources(json.loads((FIELD / name).read_text(encoding="utf-8")))
        assert (len(resources), len(_document_spans(resources))) == (n_res, n_spans), name
    oneline = (FIELD / "tempo-tempopb-trace-oneline.json").read_text(encoding="utf-8")
    assert oneline.count("\n") == 1 and oneline.endswith("\n")  # one line, as curl returns it
    assert json.loads(oneline) == json.loads((FIELD / "tempo-tempopb-trace.json").read_text(encoding="utf-8"))


def test_opentelemetry_proto_example_span(loaded):
    ws = loaded["otel-proto-trace.json"]
    row = q(ws, "SELECT trace_id, span_id, parent_span_id, name, service_name, duration_ms FROM spans")
    # the file: ids in upper-case hex, 1544712660 s -> 1544712661 s, service.name my.service
    assert row == [("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173",
                    "I'm a server span", "my.service", 1000.0)]


def test_jaeger_api_v3_snapshot_span_without_times_is_rejected(loaded):
    """Jaeger's api_v3 GetTrace snapshot has one span with ids, name and status but no start or end
    time: it cannot be placed in time, so it is a reject naming its resource, and nothing else is lost."""
    doc = json.loads((FIELD / "jaeger-apiv3-GetTrace.json").read_text(encoding="utf-8"))
    resources = _document_resources(doc)
    spans = _document_spans(resources)
    assert len(resources) == 1 and len(spans) == 1
    assert "startTimeUnixNano" not in spans[0] and "endTimeUnixNano" not in spans[0]

    ws = loaded["jaeger-apiv3-GetTrace.json"]
    f = report(ws)
    assert f.n_records == 1
    assert f.n_rejected == 1
    reasons = [r[0] for r in q(ws, "SELECT reason FROM rejects")]
    assert len(reasons) == 1
    assert reasons[0].startswith("resource 1: span startTimeUnixNano is missing")
    assert q(ws, "SELECT count(*) FROM spans") == [(0,)]


# --- OTLP/protobuf (opentelemetry-proto examples/trace.protobuf-bin) ---------------------------

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message; value is bytes for wire type 2."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise AssertionError(f"wire type {wt}")
        yield num, wt, v


def test_otlp_protobuf_example(loaded):
    data = (FIELD / "otel-proto-trace.protobuf-bin").read_bytes()
    # ExportTraceServiceRequest.resource_spans = 1; ResourceSpans.scope_spans = 2; ScopeSpans.spans = 2;
    # Span.trace_id = 1, span_id = 2, name = 5
    spans = []
    resources = [v for n, _, v in _fields(data) if n == 1]
    for rs in resources:
        for ss in (v for n, _, v in _fields(rs) if n == 2):
            for span in (v for n, _, v in _fields(ss) if n == 2):
                f = {n: v for n, _, v in _fields(span)}
                spans.append((f[1].hex(), f[2].hex(), f[5].decode()))
    assert len(resources) == 1 and len(spans) == 1

    ws = loaded["otel-proto-trace.protobuf-bin"]
    f = report(ws)
    assert f.n_records == 1  # one bare message
    assert f.n_rejected == 0
    assert q(ws, "SELECT trace_id, span_id, name FROM spans") == spans
    # the same span as the JSON example of the same repository
    assert spans == [("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "I'm a server span")]


# --- Collector file-exporter lines (OTel specification example) --------------------------------

def test_file_exporter_example_lines_with_empty_ids_are_rejected(loaded):
    """The specification's file-exporter example is four ExportTraceServiceRequest lines whose spans
    all have an empty traceId: every span is a reject naming its line, none is stored."""
    lines = (FIELD / "otel-spec-file-exporter-traces.jsonl").read_text(encoding="utf-8").splitlines()
    expected = []
    for no, line in enumerate(lines, start=1):
        for s in _document_spans(json.loads(line)["resourceSpans"]):
            assert not re.fullmatch(r"[0-9a-fA-F]{32}", s["traceId"])
            expected.append(f"line {no}: span traceId is not 32 hex digits: {s['traceId']}")
    assert len(lines) == 4 and len(expected) == 8

    ws = loaded["otel-spec-file-exporter-traces.jsonl"]
    f = report(ws)
    assert f.n_records == len(lines)
    assert f.n_rejected == len(expected)
    assert sorted(r[0] for r in q(ws, "SELECT reason FROM rejects")) == sorted(expected)
    assert q(ws, "SELECT count(*) FROM spans") == [(0,)]


FILE_EXPORTER_LINES = ["otel-go-instrumentation-nethttp-traces-orig.json"]


@pytest.mark.parametrize("name", FILE_EXPORTER_LINES)
def test_file_exporter_lines_with_valid_ids(loaded, name):
    """Collector file-exporter output with real ids: one ExportTraceServiceRequest per line, every
    span stored with its lower-case hex ids, parent, name, service and duration; nothing rejected."""
    lines = (FIELD / name).read_text(encoding="utf-8").splitlines()
    expected = set()
    for line in lines:
        for r in json.loads(line)["resourceSpans"]:
            attrs = {a["key"]: a["value"].get("stringValue") for a in r["resource"]["attributes"]}
            for s in _document_spans([r]):
                assert re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", s["spanId"])
                expected.add((s["traceId"], s["spanId"], s.get("parentSpanId") or None, s["name"],
                              attrs.get("service.name"),
                              (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e6))

    ws = loaded[name]
    f = report(ws)
    assert f.n_records == len(lines)
    assert f.n_rejected == 0
    assert f.n_duplicate_spans == 0
    assert q(ws, "SELECT count(*) FROM rejects") == [(0,)]
    got = q(ws, "SELECT trace_id, span_id, parent_span_id, name, service_name, duration_ms FROM spans")
    assert len(got) == len(expected)
    assert {r[:5] for r in got} == {e[:5] for e in expected}
    assert sorted(r[5] for r in got) == pytest.approx(sorted(e[5] for e in expected))
    assert q(ws, "SELECT count(*) FROM messages") == [(0,)]


def test_expected_file_exporter_sizes():
    """The hand count of the file-exporter files above (lines, resources, spans)."""
    by_hand = {"otel-go-instrumentation-nethttp-traces-orig.json": (1, 1, 2)}
    for name, counts in by_hand.items():
        requests = [json.loads(line) for line in (FIELD / name).read_text(encoding="utf-8").splitlines()]
        resources = [r for req in requests for r in req["resourceSpans"]]
        assert (len(requests), len(resources), len(_document_spans(resources))) == counts, name


# --- Claude Desktop logs ------------------------------------------------------------------------

_CLAUDE_MSG = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z (?:\[[^\]]*\] ){2}Message from (client|server): (.*)$")


def _claude_messages(name: str) -> tuple[list[tuple[str, dict]], int]:
    """(direction, message) for each 'Message from' line, and the number of other lines."""
    lines = (FIELD / name).read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        m = _CLAUDE_MSG.match(line)
        if m:
            out.append(("client_to_server" if m.group(1) == "client" else "server_to_client",
                        json.loads(m.group(2))))
    return out, len(lines) - len(out)


def _kind(msg: dict) -> str:
    if "method" in msg:
        return "request" if "id" in msg else "notification"
    return "error" if "error" in msg else "response"


@pytest.mark.parametrize("name", ["claude-mcp-server-cowgnition.log", "claude-cowgnition-mcp.log",
                                  "claude-taptools-mcp.log"])
def test_claude_desktop_log_counts(loaded, name):
    msgs, other_lines = _claude_messages(name)
    ws = loaded[name]
    f = report(ws)
    assert f.n_records == len(msgs)
    assert f.n_rejected == 0
    assert f.n_skipped == other_lines
    assert q(ws, "SELECT count(*) FROM rejects") == [(0,)]
    got = q(ws, "SELECT direction, kind, rpc_id, method FROM messages ORDER BY record_no")
    want = [(d, _kind(m), json.dumps(m["id"]) if "id" in m else None, m.get("method")) for d, m in msgs]
    assert got == want


def test_claude_desktop_log_calls_are_answered(loaded):
    """In mcp-server-cowgnition.log every request of the one server run is answered on a later line:
    four results and two 'Method not found' errors."""
    msgs, _ = _claude_messages("claude-mcp-server-cowgnition.log")
    requests = {m["id"]: m["method"] for d, m in msgs if _kind(m) == "request"}
    answers = {m["id"]: _kind(m) for d, m in msgs if _kind(m) in ("response", "error")}
    assert set(requests) == set(answers) == {0, 1, 2, 3, 4, 5}
    expected = sorted((json.dumps(i), requests[i], "ok" if answers[i] == "response" else "error") for i in requests)

    ws = loaded["claude-mcp-server-cowgnition.log"]
    assert sorted(q(ws, "SELECT rpc_id, method, status FROM calls")) == expected
    assert q(ws, "SELECT DISTINCT connection_id FROM messages") == [("claude:cowgnition",)]


def test_claude_desktop_mcp_log_restarts(loaded):
    """The mcp.log excerpt holds four 'Initializing server...' runs of one server, each sending
    initialize with id 0: four requests on four connections."""
    text = (FIELD / "claude-cowgnition-mcp.log").read_text(encoding="utf-8")
    runs = len(re.findall(r"\] Initializing server\.\.\.$", text, re.M))
    msgs, _ = _claude_messages("claude-cowgnition-mcp.log")
    n_requests = sum(1 for _, m in msgs if _kind(m) == "request")
    assert (runs, n_requests) == (4, 4)

    ws = loaded["claude-cowgnition-mcp.log"]
    assert q(ws, "SELECT count(*), count(DISTINCT connection_id) FROM calls") == [(n_requests, runs)]
    assert q(ws, "SELECT DISTINCT method FROM calls") == [("initialize",)]


def test_claude_desktop_mcp_log_of_two_servers_that_never_answer(loaded):
    """A whole mcp.log (every server in one file): two servers, each started three times, each run
    sending initialize and dying before it answers. Every run is its own connection, named after
    the server, and every call stays unanswered."""
    text = (FIELD / "claude-taptools-mcp.log").read_text(encoding="utf-8")
    starts = re.findall(r"^\S+ \[info\] \[([^\]]+)\] Initializing server\.\.\.$", text, re.M)
    msgs, _ = _claude_messages("claude-taptools-mcp.log")
    assert sorted(set(starts)) == ["filesystem", "server"]
    assert len(starts) == 6
    assert [(d, _kind(m), m.get("method")) for d, m in msgs] == [("client_to_server", "request", "initialize")] * 6

    ws = loaded["claude-taptools-mcp.log"]
    assert q(ws, "SELECT status, count(*), count(DISTINCT connection_id) FROM calls GROUP BY status") == [
        ("unanswered", len(msgs), len(starts))]
    servers = {c.split(":", 1)[1].split("#")[0] for (c,) in q(ws, "SELECT DISTINCT connection_id FROM calls")}
    assert servers == set(starts)


# --- HAR files of ordinary web traffic (mitmproxy test data) ------------------------------------

@pytest.mark.parametrize("name", ["mitmproxy-event_stream.har", "mitmproxy-successful_log.har"])
def test_har_without_json_rpc_loads_nothing_and_rejects_nothing(loaded, name):
    """mitmproxy's HAR test files hold plain web traffic (HTML, a JSON API answer, an SSE stream with
    no data): no entry carries JSON-RPC, so no message is loaded, every entry is skipped, none rejected."""
    har = json.loads((FIELD / name).read_text(encoding="utf-8"))
    entries = har["log"]["entries"]
    for e in entries:
        body = (e["request"].get("postData") or {}).get("text", "") + e["response"]["content"].get("text", "")
        assert '"jsonrpc"' not in body

    ws = loaded[name]
    f = report(ws)
    assert f.n_records == 0
    assert f.n_rejected == 0
    assert f.n_skipped == len(entries)
    assert q(ws, "SELECT count(*) FROM messages") == [(0,)]
    assert q(ws, "SELECT count(*) FROM rejects") == [(0,)]
    assert q(ws, "SELECT count(*) FROM calls") == [(0,)]
