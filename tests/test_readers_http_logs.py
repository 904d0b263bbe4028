"""HAR 1.2, Claude Desktop logs and MCP Inspector exports load as the same calls as the envelope capture.

The shipped files in data/har, data/claude and data/inspector come from the same sample run as
data/samples: the HAR is the logging proxy's own ``--har`` output for scenario B; the Claude log and
the inspector exports are re-renderings of the captured messages (see mcptrace.samples.claude_log and
mcptrace.samples.inspector_export). Hand-made fixtures here are named after the situation they hold.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcptrace
from conftest import BARE, ROOT, SAMPLES, read_lines, write_lines
from mcptrace.ingest import readers

DATA = ROOT / "data"
HAR = DATA / "har" / "ide_http.har"
CLAUDE = DATA / "claude" / "mcp-server-weather.log"
INSPECTOR_PROTOCOL = DATA / "inspector" / "inspector-protocol-weather-http.json"
INSPECTOR_NETWORK = DATA / "inspector" / "inspector-network-weather-http.json"

CALL_COLUMNS = ("c.direction, c.rpc_id, c.method, c.tool_name, c.status, c.error_code, c.trace_id, "
                "c.mcp_session_id, s.session_key_source, s.session_key")


def load(path, **kw):
    ws = mcptrace.load(path, **kw)
    (report,) = ws.last_report.files
    return ws, report


def calls(ws, times: str = "us") -> list[tuple]:
    ts = {"us": "c.start_ts, c.end_ts",
          "ms": "date_trunc('millisecond', c.start_ts), date_trunc('millisecond', c.end_ts)",
          "start_ms": "date_trunc('millisecond', c.start_ts)",
          "none": "NULL"}[times]
    return ws.sql(f"SELECT {CALL_COLUMNS}, {ts} FROM calls c LEFT JOIN sessions s USING (session_id) "
                  "ORDER BY c.start_ts, c.rpc_id").rows()


def messages(ws) -> list[tuple]:
    return ws.sql("SELECT direction, kind, rpc_id, method, sse_event_id, ts FROM messages ORDER BY ts, message_id").rows()


def every_text_in_the_database(ws) -> str:
    tables = ws.sql("SELECT table_schema, table_name FROM information_schema.tables").rows()
    out = []
    for schema, name in tables:
        for row in ws.con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall():
            out.append(repr(row))
    return "\n".join(out)


@pytest.fixture(scope="module")
def envelope_b():
    ws, rep = load(SAMPLES / "ide_http.jsonl")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def envelope_a():
    ws, rep = load(SAMPLES / "agent_stdio.jsonl")
    yield ws
    ws.close()


# -- HAR helpers ---------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def har_entry(*, body: dict | str | None, status: int = 200, mime: str = "text/event-stream", text: str | None = "",
              at: float = 0.0, time_ms: float = 40.0, request_headers=None, response_headers=None,
              url: str = "https://mcp.example/mcp", method: str = "POST", **extra) -> dict:
    started = (T0 + timedelta(seconds=at)).isoformat().replace("+00:00", "Z")
    req = {"method": method, "url": url, "httpVersion": "HTTP/1.1", "cookies": [], "headersSize": -1, "bodySize": 0,
           "headers": [{"name": "Content-Type", "value": "application/json"},
                       {"name": "Accept", "value": "application/json, text/event-stream"},
                       {"name": "Mcp-Session-Id", "value": "sess-1"}] + list(request_headers or [])}
    if body is not None:
        req["postData"] = {"mimeType": "application/json", "text": body if isinstance(body, str) else json.dumps(body)}
    content = {"mimeType": mime}
    if text is not None:
        content["text"], content["size"] = text, len(text)
    resp = {"status": status, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [], "redirectURL": "",
            "headersSize": -1, "bodySize": -1, "content": content,
            "headers": [{"name": "Content-Type", "value": mime}] + list(response_headers or [])}
    return {"startedDateTime": started, "time": time_ms, "request": req, "response": resp, "cache": {},
            "timings": {"send": 0, "wait": time_ms / 2, "receive": time_ms / 2}, **extra}


def write_har(tmp_path, name: str, entries: list[dict]) -> os.PathLike:
    path = tmp_path / name
    path.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"},
                                        "pages": [], "entries": entries}}, indent=2), encoding="utf-8")
    return path


CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "search", "arguments": {"q": "rain"}}}
RESULT = '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}]}}'
PROGRESS = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}'


# -- HAR of scenario B -------------------------------------------------------------------------

def test_har_of_scenario_b_rebuilds_the_calls_of_the_envelope_capture(envelope_b):
    ws, rep = load(HAR)
    assert (rep.format, rep.n_rejected) == ("har", 0)
    assert rep.n_skipped >= 1  # the generator's /healthz probe, the DELETE that ends the session
    assert calls(ws) == calls(envelope_b)  # per-event times from _eventSourceMessages: even the times match
    assert messages(ws) == messages(envelope_b)
    got = ws.sql("SELECT session_key_source, count(*) FROM sessions GROUP BY 1").rows()
    assert got == envelope_b.sql("SELECT session_key_source, count(*) FROM sessions GROUP BY 1").rows()
    assert got and all(source == "Mcp-Session-Id" for source, _ in got)
    gaps = "SELECT code, count(*) FROM gaps GROUP BY 1 ORDER BY 1"
    assert ws.sql(gaps).rows() == envelope_b.sql(gaps).rows()


def test_har_without_event_times_stamps_every_event_with_the_response_end(tmp_path, envelope_b):
    har = json.loads(HAR.read_text(encoding="utf-8"))
    for e in har["log"]["entries"]:
        e.pop("_eventSourceMessages", None)
    path = tmp_path / "devtools_style_no_event_times.har"
    path.write_text(json.dumps(har), encoding="utf-8")
    ws, rep = load(path)
    assert rep.n_rejected == 0
    assert calls(ws, "none") == calls(envelope_b, "none")
    ends = {}
    for e in har["log"]["entries"]:
        post = e["request"].get("postData", {}).get("text")
        if post and '"id"' in post:
            ends[json.loads(post)["id"]] = datetime.fromisoformat(e["startedDateTime"]) + timedelta(
                microseconds=round(e["time"] * 1000))
    for rpc_id, end in ws.sql("SELECT rpc_id, end_ts FROM calls").rows():
        assert end == ends[int(rpc_id)]
    # the progress notifications of long_task share the response's time yet stay before it
    assert ws.sql("SELECT count(*) FROM gaps WHERE code = 'unknown_progress_token'").rows() == [(0,)]


# -- SSE splitting -----------------------------------------------------------------------------

SSE_CASES = {
    "priming_event_with_empty_data": (
        "id: p0\ndata:\n\nid: e1\ndata: " + RESULT + "\n\n",
        [("response", "7", None, "e1")]),
    "priming_event_with_retry_and_a_space_after_data": (
        "id: e9\r\ndata: \r\nretry: 1000\r\n\r\nid: e10\r\nevent: message\r\ndata: " + RESULT + "\r\n\r\n",
        [("response", "7", None, "e10")]),
    "comment_keep_alives_between_events": (
        ": ping\n\n: ping\n\ndata: " + PROGRESS + "\n\n:keep-alive\n\ndata: " + RESULT + "\n\n",
        [("notification", None, "notifications/progress", None), ("response", "7", None, None)]),
    "multi_line_data_joined_with_newlines": (
        'id: m1\ndata: {"jsonrpc":"2.0",\ndata:  "id":7,\ndata:  "result":{}}\n\n',
        [("response", "7", None, "m1")]),
    "crlf_line_endings": (
        "event: message\r\nid: c1\r\ndata: " + PROGRESS + "\r\n\r\nid: c2\r\ndata: " + RESULT + "\r\n\r\n",
        [("notification", None, "notifications/progress", "c1"), ("response", "7", None, "c2")]),
    "bare_cr_line_endings": (
        "id: r1\rdata: " + RESULT + "\r\r",
        [("response", "7", None, "r1")]),
    "retry_field_alone_then_event": (
        "retry: 3000\n\nretry: 5000\nid: x1\ndata: " + RESULT + "\n\n",
        [("response", "7", None, "x1")]),
    "bom_and_an_event_without_id": (
        "\ufeffdata: " + RESULT + "\n\n",
        [("response", "7", None, None)]),
}


@pytest.mark.parametrize("situation", sorted(SSE_CASES))
def test_sse_body_splits_into_exactly_these_messages(tmp_path, situation):
    body, expected = SSE_CASES[situation]
    path = write_har(tmp_path, f"{situation}.har", [har_entry(body=CALL, text=body)])
    ws, rep = load(path)
    assert (rep.n_records, rep.n_rejected) == (1, 0)
    got = ws.sql("SELECT kind, rpc_id, method, sse_event_id FROM messages WHERE direction = 'server_to_client' "
                 "ORDER BY message_id").rows()
    assert got == expected
    assert ws.sql("SELECT status FROM calls").rows() == [("ok",)]


def test_sse_stream_ending_inside_an_event_is_one_reject_and_keeps_the_rest(tmp_path):
    body = "id: e1\ndata: " + PROGRESS + "\n\nid: e2\ndata: " + RESULT  # no blank line after the last event
    ws, rep = load(write_har(tmp_path, "stream_cut_inside_the_last_event.har", [har_entry(body=CALL, text=body)]))
    assert rep.n_rejected == 1
    (reason,) = [r for (r,) in ws.sql("SELECT reason FROM rejects").rows()]
    assert reason.startswith("entry 1: event stream ends inside an event")
    assert ws.sql("SELECT kind FROM messages ORDER BY message_id").rows() == [("request",), ("notification",)]
    assert ws.sql("SELECT status FROM calls").rows() == [("unanswered",)]


def test_sse_event_with_data_that_is_not_json_is_a_reject_naming_the_event(tmp_path):
    body = "id: e1\ndata: hello there\n\nid: e2\ndata: " + RESULT + "\n\n"
    ws, rep = load(write_har(tmp_path, "sse_event_with_plain_text_data.har", [har_entry(body=CALL, text=body)]))
    assert [r for (r,) in ws.sql("SELECT reason FROM rejects").rows()] == [
        "entry 1: response SSE event 1 (id 'e1') data is not JSON (Expecting value at line 1 column 1)"]
    # the evidence kept is the offending event's data, not the whole entry
    assert ws.sql("SELECT raw FROM rejects").rows() == [("hello there",)]
    assert ws.sql("SELECT status FROM calls").rows() == [("ok",)]


def test_json_response_and_batch_request(tmp_path):
    batch = [CALL, {"jsonrpc": "2.0", "id": 8, "method": "tools/list"}]
    text = json.dumps([json.loads(RESULT), {"jsonrpc": "2.0", "id": 8, "result": {"tools": []}}])
    ws, rep = load(write_har(tmp_path, "json_rpc_batch_over_http.har",
                             [har_entry(body=batch, mime="application/json", text=text)]))
    assert rep.n_rejected == 0
    assert ws.sql("SELECT rpc_id, status FROM calls ORDER BY rpc_id").rows() == [("7", "ok"), ("8", "ok")]


def test_202_accepted_with_an_empty_body_is_just_the_request(tmp_path):
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    ws, rep = load(write_har(tmp_path, "notification_answered_202_empty.har",
                             [har_entry(body=note, status=202, mime="application/json", text="")]))
    assert (rep.n_records, rep.n_rejected) == (1, 0)
    assert ws.sql("SELECT direction, kind, method, http_status FROM messages").rows() == [
        ("client_to_server", "notification", "notifications/initialized", 202)]


@pytest.mark.parametrize("how", ["status_0_with_error", "no_response_object", "error_with_partial_headers"])
def test_aborted_exchange_keeps_the_request_as_an_unanswered_call(tmp_path, how):
    e = har_entry(body=CALL, text=None)
    if how == "status_0_with_error":
        e["response"] = {"status": 0, "statusText": "", "headers": [], "content": {}, "_error": "net::ERR_ABORTED"}
    elif how == "no_response_object":
        del e["response"]
    else:
        e["response"]["status"] = 0
        e["_error"] = "Client closed connection"
    ws, rep = load(write_har(tmp_path, f"aborted_{how}.har", [e]))
    assert (rep.n_records, rep.n_rejected) == (1, 0)
    assert ws.sql("SELECT rpc_id, status, end_ts FROM calls").rows() == [("7", "unanswered", None)]
    assert ws.sql("SELECT http_status FROM messages").rows() == [(None,)]
    assert ws.sql("SELECT code FROM gaps WHERE code = 'unanswered_request'").rows() == [("unanswered_request",)]


def test_2xx_json_response_missing_from_the_har_is_a_reject_not_silence(tmp_path):
    ws, rep = load(write_har(tmp_path, "body_not_saved_by_devtools.har",
                             [har_entry(body=CALL, mime="application/json", text=None)]))
    (reason,) = [r for (r,) in ws.sql("SELECT reason FROM rejects").rows()]
    assert reason.startswith("entry 1: HTTP 200 application/json response body is not in the HAR")
    assert ws.sql("SELECT status FROM calls").rows() == [("unanswered",)]


def test_error_page_instead_of_json_rpc_is_a_reject(tmp_path):
    ws, rep = load(write_har(tmp_path, "gateway_502_html_page.har",
                             [har_entry(body=CALL, status=502, mime="text/html", text="<h1>Bad gateway</h1>")]))
    assert [r for (r,) in ws.sql("SELECT reason FROM rejects").rows()] == [
        "entry 1: HTTP 502 response body is text/html, not JSON-RPC: '<h1>Bad gateway</h1>'"]
    assert ws.sql("SELECT status FROM calls").rows() == [("unanswered",)]


def test_browser_har_skips_what_is_not_mcp_traffic(tmp_path):
    page = har_entry(body=None, method="GET", url="https://app.example/", mime="text/html", text="<html></html>")
    page["request"]["headers"], page["response"]["headers"] = [], [{"name": "Content-Type", "value": "text/html"}]
    script = copy.deepcopy(page)
    script["request"]["url"] = "https://app.example/app.js"
    script["response"]["content"] = {"mimeType": "application/javascript", "text": "console.log(1)"}
    api = har_entry(body={"query": "x"}, mime="application/json", text='{"ok":true}', at=0.5)
    api["request"]["headers"] = api["response"]["headers"] = []
    mcp = har_entry(body=CALL, text="data: " + RESULT + "\n\n", at=1)
    ws, rep = load(write_har(tmp_path, "browser_session_with_page_assets.har", [page, script, api, mcp]))
    assert (rep.n_records, rep.n_skipped, rep.n_rejected) == (1, 3, 0)
    assert ws.sql("SELECT record_no, kind FROM messages ORDER BY message_id").rows() == [(4, "request"), (4, "response")]


def test_entries_that_are_not_usable_are_rejects_naming_the_entry(tmp_path):
    good = har_entry(body=CALL, text="data: " + RESULT + "\n\n")
    no_time = har_entry(body=CALL, text="")
    no_time["startedDateTime"] = "yesterday"
    bad_body = har_entry(body="{not json", text="", at=2)
    ws, rep = load(write_har(tmp_path, "three_entries_two_broken.har", [good, "not an entry", no_time, bad_body]))
    reasons = [r for (r,) in ws.sql("SELECT reason FROM rejects ORDER BY record_no").rows()]
    assert reasons == [
        "entry 2: entry is not a JSON object",
        "entry 3: startedDateTime is missing or not an ISO 8601 time with an offset: 'yesterday'",
        "entry 4: request body is not JSON (Expecting property name enclosed in double quotes at line 1 column 2)",
    ]
    assert ws.sql("SELECT status FROM calls").rows() == [("ok",)]


def test_truncated_har_keeps_every_entry_before_the_damage(tmp_path):
    entries = [har_entry(body=dict(CALL, id=i), text="data: " + RESULT.replace('"id":7', f'"id":{i}') + "\n\n", at=i)
               for i in range(1, 5)]
    text = write_har(tmp_path, "x.har", entries).read_text(encoding="utf-8")
    cut = text.rindex('"startedDateTime"') + 30  # inside the 4th entry
    path = tmp_path / "har_cut_off_in_the_last_entry.har"
    path.write_text(text[:cut], encoding="utf-8")
    ws, rep = load(path)
    assert ws.sql("SELECT rpc_id, status FROM calls ORDER BY start_ts").rows() == [
        ("1", "ok"), ("2", "ok"), ("3", "ok")]
    (reason,) = [r for (r,) in ws.sql("SELECT reason FROM rejects").rows()]
    assert reason.startswith("entry 4: HAR is not readable after entry 3: not valid JSON: the file ends")


def test_gzipped_har_loads_like_the_plain_one(tmp_path, envelope_b):
    path = tmp_path / "ide_http.har.gz"
    path.write_bytes(gzip.compress(HAR.read_bytes()))
    ws, rep = load(path)
    assert (rep.format, rep.n_rejected) == ("har", 0)
    assert calls(ws) == calls(envelope_b)


def test_credential_headers_never_reach_the_database(tmp_path):
    secrets = {f"S3CR3T-{k}" for k in range(8)}
    e = har_entry(body=CALL, text="data: " + RESULT + "\n\n",
                  url="https://mcp.example/mcp?access_token=S3CR3T-0&keep=1",
                  request_headers=[{"name": "Authorization", "value": "Bearer S3CR3T-1"},
                                   {"name": "Proxy-Authorization", "value": "Basic S3CR3T-2"},
                                   {"name": "Cookie", "value": "sid=S3CR3T-3"},
                                   {"name": "X-Api-Key", "value": "S3CR3T-4"}],
                  response_headers=[{"name": "Set-Cookie", "value": "sid=S3CR3T-5; HttpOnly"}])
    e["request"]["cookies"] = [{"name": "sid", "value": "S3CR3T-3"}]
    e["response"]["cookies"] = [{"name": "sid", "value": "S3CR3T-5"}]
    broken = copy.deepcopy(e)  # an MCP exchange whose bodies are unusable: still no header in the reject
    broken["request"]["postData"]["text"] = "{oops"
    broken["request"]["headers"].append({"name": "authorization", "value": "Bearer S3CR3T-6"})
    broken["response"]["content"]["text"] = "data: nope\n\n"
    doc = {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [e, broken]}}
    text = json.dumps(doc, indent=1)
    # ... and the file breaks off right after another credential header
    tail = ',\n{"startedDateTime": "2026-03-01T12:00:09Z", "request": {"headers": [{"name": "Authorization", ' \
           '"value": "Bearer S3CR3T-7"}, {"name": "x'
    path = tmp_path / "har_with_credentials_everywhere.har"
    path.write_text(text[:text.rindex("]")] + tail, encoding="utf-8")
    ws, rep = load(path)
    assert rep.n_rejected >= 3  # the broken bodies and the broken tail
    dump = every_text_in_the_database(ws)
    assert not [s for s in secrets if s in dump]
    headers = ws.sql("SELECT http_request_headers, http_response_headers, http_path FROM messages LIMIT 1").rows()[0]
    assert json.loads(headers[0])["authorization"] == "[REDACTED]"
    assert json.loads(headers[1])["set-cookie"] == "[REDACTED]"
    assert headers[2] == "/mcp?access_token=[REDACTED]&keep=1"
    # with redaction on load switched off the reader redacts nothing either (one policy for the load)
    ws2 = mcptrace.open()
    ws2.load(path, redact=False)
    kept = every_text_in_the_database(ws2)
    assert {f"S3CR3T-{k}" for k in (0, 1, 2, 3, 4, 5, 7)} <= {s for s in secrets if s in kept}
    headers = ws2.sql("SELECT http_request_headers, http_path FROM messages LIMIT 1").rows()[0]
    assert json.loads(headers[0])["authorization"] == "Bearer S3CR3T-1"
    assert headers[1] == "/mcp?access_token=S3CR3T-0&keep=1"


SECRET_QUERY_URL = "https://mcp.example/mcp?my_secret=s1&x_token=t&page=2"
SECRET_QUERY_PATH = "/mcp?my_secret=[REDACTED]&x_token=[REDACTED]&page=2"


def test_har_query_values_are_redacted_by_the_key_pattern(tmp_path):
    e = har_entry(body=CALL, text="data: " + RESULT + "\n\n", url=SECRET_QUERY_URL)
    path = write_har(tmp_path, "har_secret_query.har", [e])
    ws, rep = load(path)
    assert rep.n_rejected == 0
    assert {p for (p,) in ws.sql("SELECT DISTINCT http_path FROM messages").rows()} == {SECRET_QUERY_PATH}
    dump = every_text_in_the_database(ws)
    assert "my_secret=s1" not in dump and "x_token=t&" not in dump
    # redaction off: the query as written
    ws, _ = load(path, redact=False)
    assert {p for (p,) in ws.sql("SELECT DISTINCT http_path FROM messages").rows()} == {
        "/mcp?my_secret=s1&x_token=t&page=2"}


def test_a_custom_key_pattern_reaches_the_har_reader(tmp_path):
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "pay", "arguments": {"tenant_pin": "PIN-BODY", "amount": "12"}}}
    e = har_entry(body=body, text="data: " + RESULT + "\n\n",
                  url="https://mcp.example/mcp?tenant_pin=PIN-QUERY&page=2",
                  request_headers=[{"name": "X-Tenant-Pin", "value": "PIN-HEADER"},
                                   {"name": "Authorization", "value": "Bearer PIN-AUTH"}])
    path = write_har(tmp_path, "har_custom_secret.har", [e])
    pattern = r"(?:[a-z0-9]+[-_.])*tenant[-_]?pin"
    ws, rep = load(path, secret_keys=pattern)
    assert rep.n_rejected == 0
    dump = every_text_in_the_database(ws)
    assert not [s for s in ("PIN-BODY", "PIN-QUERY", "PIN-HEADER", "PIN-AUTH") if s in dump]
    headers, http_path, message = ws.sql("SELECT http_request_headers, http_path, raw FROM messages "
                                         "WHERE direction = 'client_to_server'").rows()[0]
    assert json.loads(headers)["x-tenant-pin"] == "[REDACTED]"
    assert json.loads(headers)["authorization"] == "[REDACTED]"  # credential headers whatever the pattern
    assert http_path == "/mcp?tenant_pin=[REDACTED]&page=2"
    assert json.loads(message)["params"]["arguments"] == {"tenant_pin": "[REDACTED]", "amount": "12"}
    # the default pattern does not name tenant_pin; with redaction off nothing is redacted at all
    ws, _ = load(path)
    assert {"PIN-BODY", "PIN-QUERY", "PIN-HEADER"} <= {s for s in ("PIN-BODY", "PIN-QUERY", "PIN-HEADER", "PIN-AUTH")
                                                       if s in every_text_in_the_database(ws)}
    ws, _ = load(path, redact=False)
    dump = every_text_in_the_database(ws)
    assert all(s in dump for s in ("PIN-BODY", "PIN-QUERY", "PIN-HEADER", "PIN-AUTH"))


def test_a_custom_key_pattern_reaches_the_inspector_reader(tmp_path):
    entry = {"id": "1", "timestamp": "2026-03-01T12:00:00.000Z", "method": "POST",
             "url": "http://127.0.0.1:9/mcp?tenant_pin=PIN-QUERY",
             "requestHeaders": {"content-type": "application/json", "mcp-protocol-version": "2025-11-25",
                                "x-tenant-pin": "PIN-HEADER"},
             "requestBody": json.dumps(CALL), "error": "fetch failed", "duration": 3, "category": "transport"}
    path = tmp_path / "inspector-network-custom_secret.json"
    path.write_text(json.dumps([entry], indent=2), encoding="utf-8")
    ws, rep = load(path, secret_keys=r"(?:[a-z0-9]+[-_.])*tenant[-_]?pin")
    assert (rep.n_records, rep.n_rejected) == (1, 0)
    headers, http_path = ws.sql("SELECT http_request_headers, http_path FROM messages").rows()[0]
    assert json.loads(headers)["x-tenant-pin"] == "[REDACTED]"
    assert http_path == "/mcp?tenant_pin=[REDACTED]"
    ws, _ = load(path, redact=False)
    assert ws.sql("SELECT http_path FROM messages").rows() == [("/mcp?tenant_pin=PIN-QUERY",)]


def test_har_headers_are_found_case_insensitively(tmp_path):
    e = har_entry(body=CALL, text="data: " + RESULT + "\n\n",
                  request_headers=[{"name": "Traceparent", "value": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                                   {"name": "MCP-Protocol-Version", "value": "2025-11-25"},
                                   {"name": "Mcp-Client-Session-Id", "value": "conv-42"}])
    ws, _ = load(write_har(tmp_path, "mixed_case_mcp_headers.har", [e]))
    assert ws.sql("SELECT mcp_session_id, http_traceparent, protocol_version, session_key, session_key_source "
                  "FROM messages WHERE kind = 'request'").rows() == [
        ("sess-1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "2025-11-25", "conv-42",
         "Mcp-Client-Session-Id")]


def test_connection_field_is_kept_per_file(tmp_path):
    a = har_entry(body=CALL, text="data: " + RESULT + "\n\n", connection="443")
    b = har_entry(body=dict(CALL, id=8), text="", at=1)
    ws, _ = load(write_har(tmp_path, "chrome.har", [a, b]))
    assert ws.sql("SELECT DISTINCT connection_id FROM messages ORDER BY 1").rows() == [
        ("har:chrome.har",), ("har:chrome.har:443",)]


# -- Claude Desktop logs -------------------------------------------------------------------

def test_claude_log_rebuilds_the_calls_of_scenario_a_at_millisecond_precision(envelope_a):
    ws, rep = load(CLAUDE)
    assert (rep.format, rep.n_rejected) == ("claude_desktop_log", 0)
    lines = read_lines(CLAUDE)
    n_messages = sum(1 for x in lines if "] Message from " in x)
    assert rep.n_records == n_messages == len(read_lines(SAMPLES / "agent_stdio.jsonl"))
    assert rep.n_skipped == len([x for x in lines if x.strip()]) - n_messages  # noise: skipped, not rejected
    # the session key (anthropic/session in _meta) travels in the messages, so the sessions are the same too
    assert calls(ws, "ms") == calls(envelope_a, "ms")
    assert ws.sql("SELECT DISTINCT transport, connection_id FROM messages").rows() == [("stdio", "claude:weather")]


def test_claude_log_with_a_broken_json_message_line_has_exactly_one_reject(tmp_path):
    lines = read_lines(CLAUDE)
    i = next(k for k, x in enumerate(lines) if "Message from server" in x and '"result"' in x)
    lines[i] = lines[i].replace('"result":', '"result"', 1)
    path = write_lines(tmp_path / "mcp-server-weather.log", lines)
    ws, rep = load(path)
    (row,) = ws.sql("SELECT record_no, reason, raw FROM rejects").rows()
    assert row[0] == i + 1
    assert row[1].startswith(f"line {i + 1}: Message from server: invalid JSON at column ")
    assert row[2] == lines[i]
    assert rep.n_records == sum(1 for x in lines if "] Message from " in x)


@pytest.mark.parametrize("order", ["server_then_level", "level_then_server", "no_server_tag"])
def test_claude_log_tag_order_does_not_matter(tmp_path, order, envelope_a):
    lines = read_lines(CLAUDE)
    if order == "level_then_server":
        lines = [x.replace("[weather] [info]", "[info] [weather]") for x in lines]
    elif order == "no_server_tag":
        lines = [x.replace("[weather] [info]", "[info]") for x in lines]
    lines = [x.replace(" { metadata: undefined }", "") if k % 2 else x for k, x in enumerate(lines)]  # old and new builds
    ws, rep = load(write_lines(tmp_path / "mcp-server-weather.log", lines))
    assert (rep.format, rep.n_rejected) == ("claude_desktop_log", 0)
    assert calls(ws, "ms") == calls(envelope_a, "ms")
    assert ws.sql("SELECT DISTINCT connection_id FROM messages").rows() == [("claude:weather",)]


def test_claude_mcp_log_holds_several_servers_and_a_restart(tmp_path):
    lines = [
        "2026-03-01T12:00:00.000Z [info] [weather] Initializing server...",
        "2026-03-01T12:00:00.001Z [info] [files] Initializing server...",
        '2026-03-01T12:00:00.100Z [info] [weather] Message from client: {"method":"tools/call","params":{"name":"a"},"jsonrpc":"2.0","id":0}',
        '2026-03-01T12:00:00.101Z [info] [files] Message from client: {"method":"tools/call","params":{"name":"b"},"jsonrpc":"2.0","id":0}',
        "Traceback (most recent call last):",
        '  File "server.py", line 3, in <module>',
        "2026-03-01T12:00:00.150Z [error] [weather] Server transport closed unexpectedly, this is likely due to the process exiting early.",
        '2026-03-01T12:00:00.200Z [info] [files] Message from server: {"jsonrpc":"2.0","id":0,"result":{}}',
        "2026-03-01T12:00:01.000Z [info] [weather] Initializing server...",
        '2026-03-01T12:00:01.100Z [info] [weather] Message from client: {"method":"tools/call","params":{"name":"a"},"jsonrpc":"2.0","id":0}',
        '2026-03-01T12:00:01.200Z [info] [weather] Message from server: {"jsonrpc":"2.0","id":0,"result":{}}',
    ]
    ws, rep = load(write_lines(tmp_path / "mcp.log", lines))
    assert (rep.n_records, rep.n_skipped, rep.n_rejected) == (5, 6, 0)
    assert ws.sql("SELECT connection_id, tool_name, status FROM calls ORDER BY start_ts").rows() == [
        ("claude:weather", "a", "unanswered"), ("claude:files", "b", "ok"), ("claude:weather#2", "a", "ok")]
    assert ws.sql("SELECT count(*) FROM gaps WHERE code = 'duplicate_request_id'").rows() == [(0,)]


def test_claude_message_line_that_is_not_a_json_rpc_message_is_a_reject(tmp_path):
    lines = ['2026-03-01T12:00:00.100Z [weather] [info] Message from client: "just a string" { metadata: undefined }',
             '2026-03-01T12:00:00.200Z [weather] [info] Message from server: {"jsonrpc":"2.0","id":0,"result":{}} and more',
             '2026-03-01T12:00:00.300Z [weather] [info] Message from server: {"jsonrpc":"2.0","id":1,"result":NaN}']
    ws, rep = load(write_lines(tmp_path / "mcp-server-weather.log", lines))
    assert [r for (r,) in ws.sql("SELECT reason FROM rejects ORDER BY record_no").rows()] == [
        "line 1: Message from client: a JSON string, not a JSON-RPC message",
        "line 2: Message from server: unexpected text after the JSON at column 100: 'and more'",
        "line 3: Message from server: invalid JSON: NaN is not JSON",
    ]


# -- MCP Inspector exports -----------------------------------------------------------------

def test_inspector_protocol_export_rebuilds_the_calls_of_scenario_b(envelope_b):
    ws, rep = load(INSPECTOR_PROTOCOL)
    assert (rep.format, rep.n_rejected, rep.n_skipped) == ("mcp_inspector_export", 0, 0)
    expected = [c[:7] + (None, "connection", "inspector:" + INSPECTOR_PROTOCOL.name) + c[10:]
                for c in calls(envelope_b, "ms")]  # no HTTP headers in the export, so no Mcp-Session-Id
    assert calls(ws, "ms") == expected
    assert ws.sql("SELECT DISTINCT transport FROM messages").rows() == [(None,)]
    # request + response per entry; the client's notifications are not tracked by the inspector
    want = envelope_b.sql("SELECT count(*) FROM messages WHERE NOT (direction = 'client_to_server' "
                          "AND kind = 'notification')").rows()
    assert ws.sql("SELECT count(*) FROM messages").rows() == want


def test_inspector_network_export_rebuilds_the_calls_with_responses_at_header_time(envelope_b):
    ws, rep = load(INSPECTOR_NETWORK)
    assert (rep.format, rep.n_rejected) == ("mcp_inspector_export", 0)
    assert calls(ws, "start_ms") == calls(envelope_b, "start_ms")
    env_end = dict(envelope_b.sql("SELECT rpc_id, end_ts FROM calls").rows())
    for rpc_id, start, end in ws.sql("SELECT rpc_id, start_ts, end_ts FROM calls").rows():
        assert start <= end <= env_end[rpc_id]


def test_inspector_export_entries_by_situation(tmp_path):
    t = "2026-03-01T12:00:00.000Z"
    entries = [
        {"id": "1-a", "timestamp": t, "direction": "request", "origin": "client", "message": CALL,
         "response": json.loads(RESULT), "duration": 25},
        {"id": "2-b", "timestamp": "2026-03-01T12:00:01.000Z", "direction": "request",
         "message": dict(CALL, id=8)},  # no origin (older export), never answered
        {"id": "3-c", "timestamp": "2026-03-01T12:00:01.500Z", "direction": "notification", "origin": "server",
         "message": json.loads(PROGRESS)},
        {"id": "4-d", "timestamp": "2026-03-01T12:00:02.000Z", "direction": "request", "origin": "server",
         "message": {"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage", "params": {}}},
        {"id": "5-e", "timestamp": "2026-03-01T12:00:03.000Z", "method": "POST", "url": "https://x/token",
         "requestHeaders": {}, "requestBody": "grant_type=client_credentials", "category": "auth"},
        {"id": "6-f", "timestamp": "not a time", "direction": "request", "message": CALL},
        {"what": "else"},
    ]
    path = tmp_path / "inspector-protocol-mixed-situations.json"
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    ws, rep = load(path)
    assert (rep.n_records, rep.n_skipped) == (6, 1)  # the OAuth fetch is skipped
    assert ws.sql("SELECT rpc_id, method, direction, status, duration_ms FROM calls ORDER BY start_ts").rows() == [
        ("7", "tools/call", "client_to_server", "ok", 25.0),
        ("8", "tools/call", "client_to_server", "unanswered", None),
        ("0", "sampling/createMessage", "server_to_client", "unanswered", None)]
    assert [r for (r,) in ws.sql("SELECT reason FROM rejects ORDER BY record_no").rows()] == [
        "entry 6: timestamp is missing or not an ISO 8601 time: 'not a time'",
        "entry 7: not an inspector protocol (MessageEntry) or network (FetchRequestEntry) entry"]


def test_inspector_network_entry_whose_fetch_failed_keeps_its_request(tmp_path):
    entry = {"id": "1", "timestamp": "2026-03-01T12:00:00.000Z", "method": "POST", "url": "http://127.0.0.1:9/mcp",
             "requestHeaders": {"content-type": "application/json", "mcp-protocol-version": "2025-11-25",
                                "authorization": "Bearer TOPSECRET"},
             "requestBody": json.dumps(CALL), "error": "fetch failed", "duration": 3, "category": "transport"}
    path = tmp_path / "inspector-network-fetch_failed.json"
    path.write_text(json.dumps([entry], indent=2), encoding="utf-8")
    ws, rep = load(path)
    assert (rep.n_records, rep.n_rejected) == (1, 0)
    assert ws.sql("SELECT status FROM calls").rows() == [("unanswered",)]
    assert "TOPSECRET" not in every_text_in_the_database(ws)


# -- sniffing ---------------------------------------------------------------------------------

def _one_line(path, tmp_path, name):
    out = tmp_path / name
    out.write_text(json.dumps(json.loads(path.read_text(encoding="utf-8"))), encoding="utf-8")
    return out


def test_sniffing_picks_the_right_reader_for_every_format(tmp_path):
    expected = {
        HAR: "har", CLAUDE: "claude_desktop_log", INSPECTOR_PROTOCOL: "mcp_inspector_export",
        INSPECTOR_NETWORK: "mcp_inspector_export",
        _one_line(HAR, tmp_path, "one_line.har"): "har",
        _one_line(INSPECTOR_PROTOCOL, tmp_path, "one_line_protocol.json"): "mcp_inspector_export",
        SAMPLES / "agent_stdio.jsonl": "envelope_jsonl", SAMPLES / "ide_http.jsonl": "envelope_jsonl",
        SAMPLES / "plain_stdio.jsonl": "envelope_jsonl", SAMPLES / "traces.otlp.jsonl": "otlp_json",
        BARE / "agent_stdio.ndjson": "jsonrpc_ndjson",
    }
    got = {p: getattr(readers.sniff(readers.read_head(str(p))), "name", None) for p in expected}
    assert got == expected


def test_compact_inspector_network_export_loads_when_named(tmp_path, envelope_b):
    # The inspector writes its exports pretty-printed; a compact one-line copy of a *network* export is
    # taken for JSON-RPC NDJSON by sniffing (its entries have a "method"), so name the format.
    path = _one_line(INSPECTOR_NETWORK, tmp_path, "one_line_network.json")
    ws, rep = load(path, format="mcp_inspector_export")
    assert rep.n_rejected == 0
    assert calls(ws, "start_ms") == calls(envelope_b, "start_ms")


def test_claude_log_starting_with_stderr_noise_still_sniffs(tmp_path):
    lines = ["╭──── FastMCP 2.0 ────╮", "[10/03/25 16:51:43] INFO     Starting MCP server"] + read_lines(CLAUDE)
    path = write_lines(tmp_path / "mcp-server-weather.log", lines)
    assert readers.sniff(readers.read_head(str(path))).name == "claude_desktop_log"


# -- the proxy's --har ---------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sse_upstream(port: int):
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def mcp(request: Request):
        msg = await request.json()
        if "id" not in msg:
            return Response(status_code=202, media_type="application/json")
        if msg.get("method") == "ping":
            return JSONResponse({"jsonrpc": "2.0", "id": msg["id"], "result": {}},
                                headers={"mcp-session-id": "s-1", "set-cookie": "upstream=S3CR3T-COOKIE"})

        async def events():
            yield b"id: p\ndata:\nretry: 500\n\n"
            yield b": keep-alive\n\n"
            yield (b'id: a\ndata: {"jsonrpc":"2.0","method":"notifications/progress",'
                   b'\ndata: "params":{"progressToken":1,"progress":1}}\n\n')
            yield b'id: b\ndata: {"jsonrpc":"2.0","id":%d,"result":{}}\n\n' % msg["id"]

        return StreamingResponse(events(), media_type="text/event-stream", headers={"mcp-session-id": "s-1"})

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/mcp", mcp, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, thread


def test_capture_proxy_writes_a_har_that_loads_like_its_envelopes(tmp_path):
    import httpx
    up_port, proxy_port = _free_port(), _free_port()
    server, thread = _sse_upstream(up_port)
    out, har = tmp_path / "proxy.jsonl", tmp_path / "proxy.har"
    proc = subprocess.Popen([sys.executable, "-m", "mcptrace.capture.http", "--listen", f"127.0.0.1:{proxy_port}",
                             "--upstream", f"http://127.0.0.1:{up_port}", "--out", str(out), "--har", str(har)],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        url = f"http://127.0.0.1:{proxy_port}/mcp"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        headers = {"Authorization": "Bearer S3CR3T-TOKEN", "Cookie": "a=S3CR3T-COOKIE"}
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers, timeout=5)
        assert r.status_code == 200
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "x"}},
                       headers=headers, timeout=5)
        assert "notifications/progress" in r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        server.should_exit = True
        thread.join(timeout=10)
    doc = json.loads(har.read_text(encoding="utf-8"))
    entries = doc["log"]["entries"]
    assert doc["log"]["version"] == "1.2"
    assert "S3CR3T" not in har.read_text(encoding="utf-8")
    sse = next(e for e in entries if e["response"]["content"]["mimeType"].startswith("text/event-stream"))
    assert sse["response"]["content"]["text"].startswith("id: p\ndata:\nretry: 500\n\n: keep-alive\n\n")
    assert [m["eventId"] for m in sse["_eventSourceMessages"]] == ["p", "a", "b"]
    ws_har, rep = load(har)
    ws_env, _ = load(out)
    assert rep.n_rejected == 0
    assert messages(ws_har) == messages(ws_env)
    q = "SELECT rpc_id, method, status, start_ts, end_ts, mcp_session_id FROM calls ORDER BY start_ts"
    assert ws_har.sql(q).rows() == ws_env.sql(q).rows()


def test_har_and_capture_redact_the_same_query(tmp_path):
    """A HAR of an exchange and ``mcptrace capture http`` of the same exchange give the same ``http_path``."""
    import httpx
    up_port, proxy_port = _free_port(), _free_port()
    server, thread = _sse_upstream(up_port)
    out = tmp_path / "proxy.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "mcptrace.capture.http", "--listen", f"127.0.0.1:{proxy_port}",
                             "--upstream", f"http://127.0.0.1:{up_port}", "--out", str(out)],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        url = f"http://127.0.0.1:{proxy_port}/mcp?my_secret=s1&x_token=t&page=2"
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        server.should_exit = True
        thread.join(timeout=10)
    ws_env, _ = load(out)
    har = write_har(tmp_path, "same_exchange.har", [har_entry(body=CALL, text="data: " + RESULT + "\n\n",
                                                              url=SECRET_QUERY_URL)])
    ws_har, _ = load(har)
    q = "SELECT DISTINCT http_path FROM messages"
    assert ws_env.sql(q).rows() == ws_har.sql(q).rows() == [(SECRET_QUERY_PATH,)]


# -- robustness: mutated files never raise, every record is accounted for ------------------------

MUTABLE = {"har": HAR.read_bytes(), "claude_desktop_log": CLAUDE.read_bytes(),
           "mcp_inspector_export": INSPECTOR_NETWORK.read_bytes()}


@st.composite
def damaged(draw, data: bytes):
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        k = draw(st.integers(0, len(b) - 1))
        if op == "flip":
            b[k] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del b[k:]
        elif op == "insert":
            b[k:k] = draw(st.binary(min_size=1, max_size=40))
        else:
            del b[k:k + draw(st.integers(1, 200))]
        if not b:
            b = bytearray(b"{")
    return bytes(b)


@pytest.mark.parametrize("fmt", sorted(MUTABLE))
def test_damaged_files_load_without_raising(tmp_path_factory, fmt):
    d = tmp_path_factory.mktemp(fmt)

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(damaged(MUTABLE[fmt]))
    def check(data):
        path = d / f"damaged.{fmt}"
        path.write_bytes(data)
        ws = mcptrace.load(path, format=fmt)
        (rep,) = ws.last_report.files
        assert rep.status == "loaded"
        covered = ws.sql("SELECT count(*) FROM (SELECT record_no FROM messages UNION SELECT record_no FROM rejects)"
                         ).rows()[0][0]
        assert covered == rep.n_records
        ws.close()

    check()
