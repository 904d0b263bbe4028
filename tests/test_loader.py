"""Loading: sniffing, rejects with reasons naming the line, dedupe, append, raise mode."""

from __future__ import annotations

import json
import os

import duckdb
import pytest

import mcptrace
from conftest import BARE, SAMPLES, first_index, read_lines, write_lines
from mcptrace.ingest.readers import readers


def _count(ws, sql, params=None):
    return ws.sql(sql, params).rows()[0][0]


def test_sniffs_each_sample_format(samples_ws):
    got = dict(samples_ws.sql("SELECT regexp_extract(path, '[^/]+$'), format FROM sources").rows())
    assert got == {"agent_stdio.jsonl": "envelope_jsonl", "ide_http.jsonl": "envelope_jsonl",
                   "plain_stdio.jsonl": "envelope_jsonl", "traces.otlp.jsonl": "otlp_json"}
    ws = mcptrace.load(BARE)
    assert ws.sql("SELECT format FROM sources").rows() == [("jsonrpc_ndjson",)]


def test_every_record_is_a_message_or_a_reject(samples_ws):
    # messages sources: every non-blank line is either one message row or a reject
    for name in ("agent_stdio.jsonl", "ide_http.jsonl", "plain_stdio.jsonl"):
        n_lines = len([line for line in read_lines(SAMPLES / name) if line.strip()])
        sid, n_records, n_rejected = samples_ws.sql(
            "SELECT source_id, n_records, n_rejected FROM sources WHERE path LIKE ?", ["%" + name]).rows()[0]
        assert n_records == n_lines
        assert n_rejected == 0
        assert _count(samples_ws, "SELECT count(*) FROM messages WHERE source_id = ?", [sid]) == n_lines
    # spans source: every span of every line is in `spans`
    n_spans = sum(len(s["spans"]) for req in map(json.loads, read_lines(SAMPLES / "traces.otlp.jsonl"))
                  for rs in req["resourceSpans"] for s in rs["scopeSpans"])
    assert _count(samples_ws, "SELECT count(*) FROM spans") == n_spans


def test_invalid_json_line_goes_to_rejects_with_line_and_column(tmp_path, stdio_lines):
    lines = list(stdio_lines)
    bad = '{"ts": "2026-11-22T01:00:00Z", "direction": "client_to_server", "message": {"id": 1,,}}'
    lines.insert(4, bad)
    ws = mcptrace.load(write_lines(tmp_path / "broken_json_line_5.jsonl", lines))
    rejects = ws.rejects().rows()
    assert [(r[1], r[2].split(":")[0]) for r in rejects] == [(5, "line 5")]
    assert f"invalid JSON at column {bad.index(',,') + 2}:" in rejects[0][2]  # 1-based, at the second comma
    assert _count(ws, "SELECT count(*) FROM messages") == len(stdio_lines)
    assert ws.sql("SELECT n_records, n_rejected FROM sources").rows() == [(len(lines), 1)]


def test_truncated_last_line(tmp_path, stdio_lines):
    lines = list(stdio_lines)
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    ws = mcptrace.load(write_lines(tmp_path / "truncated_last_line.jsonl", lines))
    assert [(r[1]) for r in ws.rejects().rows()] == [len(lines)]
    assert _count(ws, "SELECT count(*) FROM messages") == len(lines) - 1


@pytest.mark.parametrize("bad_id, reason", [
    ({"a": 1}, "message.id is an object"),
    (1.5, "message.id is a float"),
    (None, "message.id is null"),
    ([1], "message.id is an array"),
])
def test_request_id_of_wrong_type(tmp_path, stdio_lines, bad_id, reason):
    lines = list(stdio_lines)
    i = first_index(lines, lambda e: e["message"].get("method") == "tools/call")
    env = json.loads(lines[i])
    env["message"]["id"] = bad_id
    lines[i] = json.dumps(env)
    ws = mcptrace.load(write_lines(tmp_path / "request_id_wrong_type.jsonl", lines))
    rejects = ws.rejects().rows()
    assert len(rejects) == 1
    assert rejects[0][1] == i + 1
    assert rejects[0][2].startswith(f"line {i + 1}: {reason}")
    assert _count(ws, "SELECT count(*) FROM messages") == len(lines) - 1


def test_method_not_a_string(tmp_path, stdio_lines):
    lines = list(stdio_lines)
    i = first_index(lines, lambda e: e["message"].get("method") == "tools/call")
    env = json.loads(lines[i])
    env["message"]["method"] = ["tools/call"]
    lines[i] = json.dumps(env)
    ws = mcptrace.load(write_lines(tmp_path / "method_not_a_string.jsonl", lines))
    assert [r[2] for r in ws.rejects().rows()] == [f"line {i + 1}: message.method is not a string"]


def test_raise_mode_names_file_line_and_reason(tmp_path, stdio_lines):
    lines = list(stdio_lines)
    lines.insert(2, "not json at all")
    path = write_lines(tmp_path / "garbage_line_3.jsonl", lines)
    with pytest.raises(mcptrace.RecordError) as exc:
        mcptrace.load(path, errors="raise")
    assert exc.value.path == str(path)
    assert exc.value.record_no == 3
    assert "invalid JSON" in exc.value.reason
    assert f"{path}:3" in str(exc.value)


def test_same_content_twice_adds_nothing(tmp_path):
    db = str(tmp_path / "x.duckdb")
    ws = mcptrace.load(SAMPLES, db=db)
    before = ws.sql("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM spans), "
                    "(SELECT count(*) FROM calls), (SELECT count(*) FROM sources)").rows()
    report = ws.load(SAMPLES)
    assert {f.status for f in report.files} == {"duplicate"}
    ws.close()
    ws = mcptrace.open(db)
    after = ws.sql("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM spans), "
                   "(SELECT count(*) FROM calls), (SELECT count(*) FROM sources)").rows()
    assert after == before


def test_appending_files_recomputes_like_loading_at_once(tmp_path):
    at_once = mcptrace.load(SAMPLES)
    ws = mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=str(tmp_path / "a.duckdb"))
    assert _count(ws, "SELECT count(*) FROM call_spans") == 0
    ws.load([SAMPLES / "traces.otlp.jsonl", SAMPLES / "ide_http.jsonl", SAMPLES / "plain_stdio.jsonl"])
    q = ("SELECT c.session_id, m.method, c.rpc_id, c.status, c.trace_id, c.parallel_group IS NOT NULL, "
         "(SELECT count(*) FROM call_spans s WHERE s.call_id = c.call_id) "
         "FROM calls c JOIN messages m ON m.message_id = c.request_message_id ORDER BY c.start_ts, c.rpc_id")
    assert ws.sql(q).rows() == at_once.sql(q).rows()
    assert ws.sql("SELECT code, count(*) FROM gaps GROUP BY 1 ORDER BY 1").rows() == \
        at_once.sql("SELECT code, count(*) FROM gaps GROUP BY 1 ORDER BY 1").rows()


def test_files_that_are_not_captures(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "random.bin").write_bytes(os.urandom(4096))
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(256))
    good = tmp_path / "agent_stdio.jsonl"
    good.write_bytes((SAMPLES / "agent_stdio.jsonl").read_bytes())
    ws = mcptrace.load(tmp_path)
    status = {os.path.basename(f.path): f.status for f in ws.last_report.files}
    assert status == {"empty.jsonl": "unrecognized", "random.bin": "unrecognized", "image.png": "unrecognized",
                      "agent_stdio.jsonl": "loaded"}
    errors = {os.path.basename(f.path): f.error for f in ws.last_report.files if f.error}
    assert "empty file" in errors["empty.jsonl"]
    for msg in errors.values():
        assert "tried " + ", ".join(r.name for r in readers()) in msg
    assert not ws.last_report.ok
    assert _count(ws, "SELECT count(*) FROM messages") == len(read_lines(good))


def test_credentials_in_rejected_records_are_redacted(tmp_path, stdio_lines):
    lines = list(stdio_lines)
    lines.append('{"http": {"request_headers": {"Authorization": "Bearer sk-live-123", "cookie": "sid=9"}}, "message": 7,')
    ws = mcptrace.load(write_lines(tmp_path / "credentials_in_bad_line.jsonl", lines))
    raw = ws.rejects().rows()[0][3]
    assert "sk-live-123" not in raw and "sid=9" not in raw
    assert raw.count("[REDACTED]") == 2


def test_plain_duckdb_sees_the_same_tables(tmp_path):
    db = str(tmp_path / "x.duckdb")
    ws = mcptrace.load(SAMPLES, db=db)
    lib = {
        "calls": sorted(ws.sql("SELECT status, count(*) FROM calls GROUP BY 1").rows()),
        "sessions": sorted(ws.sql("SELECT session_id, n_calls FROM sessions").rows()),
        "gaps": sorted(ws.sql("SELECT code, call_id FROM gaps").rows(), key=repr),
    }
    expected_status = sorted((s, len(ws.sql("SELECT 1 FROM calls WHERE status = ?", [s]))) for s, _ in lib["calls"])
    assert lib["calls"] == expected_status
    ws.close()
    con = duckdb.connect(db, read_only=True)
    assert sorted(con.sql("SELECT status, count(*) FROM calls GROUP BY 1").fetchall()) == lib["calls"]
    assert sorted(con.sql("SELECT session_id, n_calls FROM sessions").fetchall()) == lib["sessions"]
    assert sorted(con.sql("SELECT code, call_id FROM gaps").fetchall(), key=repr) == lib["gaps"]


def test_a_batch_of_many_short_lines_keeps_every_message(tmp_path):
    # 200k short request/response lines (a bare stdio tee) in one read batch: all must reach `messages`
    msgs = [json.loads(x) for x in read_lines(BARE / "agent_stdio.ndjson")]
    req = next(m for m in msgs if m.get("method") == "tools/list")
    resp = next(m for m in msgs if m.get("id") == req["id"] and "result" in m)
    req.pop("params", None)
    resp["result"] = {"tools": []}
    lines = []
    for i in range(100_000):
        req["id"] = resp["id"] = i
        lines += [json.dumps(req, separators=(",", ":")), json.dumps(resp, separators=(",", ":"))]
    path = write_lines(tmp_path / "many_short_lines.ndjson", lines)
    from mcptrace.ingest.readers.base import iter_lines
    from mcptrace.ingest.readers.inputs import Input

    assert next(iter_lines(Input(str(path)))).num_rows == 200_000
    ws = mcptrace.load(path)
    assert _count(ws, "SELECT count(*) FROM messages") == 200_000
    assert ws.sql("SELECT status, count(*) FROM calls GROUP BY 1").rows() == [("ok", 100_000)]


def _with_secrets(tmp_path):
    lines = []
    for x in read_lines(SAMPLES / "ide_http.jsonl"):
        e = json.loads(x)
        e["http"]["request_headers"]["Authorization"] = "Bearer sk-live-SECRET1"
        e["http"]["request_headers"]["x-api-key"] = "SECRET2"
        e["http"]["response_headers"]["set-cookie"] = "sid=SECRET3"
        params = e["message"].get("params") or {}
        if "arguments" in params:
            params["arguments"]["api_key"] = "SECRET4"
            params["arguments"]["max_tokens"] = 7          # not a secret
            params["_meta"]["x-auth-token"] = "SECRET5"
        lines.append(json.dumps(e))
    return write_lines(tmp_path / "credentials_in_headers_and_arguments.jsonl", lines)


def _all_text(ws) -> str:
    out = []
    for (table,) in ws.sql("SELECT table_name FROM information_schema.tables WHERE table_catalog <> 'temp' AND table_type = 'BASE TABLE'").rows():
        out.append(ws.sql(f'SELECT CAST(list(t) AS VARCHAR) FROM "{table}" t').rows()[0][0] or "")
    return "\n".join(out)


def test_credentials_never_reach_the_database(tmp_path):
    ws = mcptrace.load(_with_secrets(tmp_path))
    text = _all_text(ws)
    for secret in ("SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5"):
        assert secret not in text
    row = ws.sql("SELECT http_request_headers->>'$.Authorization', raw->'$.params.arguments'->>'$.max_tokens', "
                 "meta->>'$.\"x-auth-token\"' FROM messages WHERE tool_name IS NOT NULL LIMIT 1").rows()
    assert row == [("[REDACTED]", "7", "[REDACTED]")]


def test_no_redact_keeps_them(tmp_path):
    ws = mcptrace.load(_with_secrets(tmp_path), redact=False)
    text = _all_text(ws)
    assert all(s in text for s in ("SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5"))


def _gap_counts(ws) -> list[tuple]:
    return ws.sql("SELECT code, call_id IS NULL, count(*) FROM gaps GROUP BY ALL ORDER BY ALL").rows()


def test_overlapping_dumps_store_each_span_once(tmp_path):
    """Two dumps that share lines (an exporter's retry, two collectors) give the tables of one dump."""
    lines = read_lines(SAMPLES / "traces.otlp.jsonl")
    a = write_lines(tmp_path / "a.otlp.jsonl", lines[:4])
    b = write_lines(tmp_path / "b.otlp.jsonl", lines[2:] + lines[3:4])  # line 4 twice in b too
    envelopes = [SAMPLES / n for n in ("agent_stdio.jsonl", "ide_http.jsonl", "plain_stdio.jsonl")]
    whole = mcptrace.load([*envelopes, SAMPLES / "traces.otlp.jsonl"])
    both = mcptrace.load([*envelopes, a, b])
    assert both.sql("SELECT count(*) FROM spans").rows() == whole.sql("SELECT count(*) FROM spans").rows()
    assert both.sql("SELECT count(*) FROM (SELECT DISTINCT trace_id, span_id FROM spans)").rows() == \
        both.sql("SELECT count(*) FROM spans").rows()
    n_shared = sum(len(s["spans"]) for line in lines[2:4] for rs in json.loads(line)["resourceSpans"]
                   for s in rs["scopeSpans"])
    n_line4 = sum(len(s["spans"]) for rs in json.loads(lines[3])["resourceSpans"] for s in rs["scopeSpans"])
    assert both.sql("SELECT n_duplicate_spans FROM sources WHERE path LIKE '%b.otlp.jsonl'").rows() == \
        [(n_shared + n_line4,)]
    assert both.sql("SELECT count(*) FROM rejects").rows() == [(0,)]
    assert _gap_counts(both) == _gap_counts(whole)
    assert both.sql("SELECT count(*) FROM call_spans").rows() == whole.sql("SELECT count(*) FROM call_spans").rows()


def test_same_span_ids_with_other_content_is_a_reject_naming_the_first_copy(tmp_path):
    lines = read_lines(SAMPLES / "traces.otlp.jsonl")
    req = json.loads(lines[0])
    span = req["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    changed = json.loads(lines[0])
    changed["resourceSpans"] = [dict(changed["resourceSpans"][0], scopeSpans=[
        dict(changed["resourceSpans"][0]["scopeSpans"][0], spans=[dict(span, name="renamed")])])]
    path = write_lines(tmp_path / "changed.otlp.jsonl", [json.dumps(changed)])
    ws = mcptrace.load([SAMPLES / "traces.otlp.jsonl", path])
    (reason,) = [r[0] for r in ws.sql("SELECT reason FROM rejects").rows()]
    assert reason.startswith(f"line 1: span {span['traceId']}/{span['spanId']} has the trace-id and span-id of a span "
                             "already loaded (source 1, line 1) but different content")
    assert ws.sql("SELECT name FROM spans WHERE span_id = ?", [span["spanId"]]).rows() == [(span["name"],)]


def test_same_span_ids_with_other_content_in_one_file_is_a_reject_naming_the_first_line(tmp_path):
    """Within one batch too: the first copy is kept, a copy with the same content is a duplicate, one with
    other content a reject naming the first copy's line."""
    lines = read_lines(SAMPLES / "traces.otlp.jsonl")
    span = json.loads(lines[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    changed = json.loads(lines[0])
    changed["resourceSpans"] = [dict(changed["resourceSpans"][0], scopeSpans=[
        dict(changed["resourceSpans"][0]["scopeSpans"][0], spans=[dict(span, name="renamed")])])]
    path = write_lines(tmp_path / "one.otlp.jsonl", [lines[0], lines[0], json.dumps(changed)])
    ws = mcptrace.load([path])
    (reason,) = [r[0] for r in ws.sql("SELECT reason FROM rejects").rows()]
    assert reason.startswith(f"line 3: span {span['traceId']}/{span['spanId']} has the trace-id and span-id of a span "
                             "already loaded (source 1, line 1) but different content"), reason
    n_line1 = sum(len(s["spans"]) for rs in json.loads(lines[0])["resourceSpans"] for s in rs["scopeSpans"])
    assert ws.sql("SELECT n_duplicate_spans FROM sources").rows() == [(n_line1,)]
    assert ws.sql("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").rows() == [(n_line1, n_line1)]
    assert ws.sql("SELECT name FROM spans WHERE span_id = ?", [span["spanId"]]).rows() == [(span["name"],)]


def _event_lines() -> tuple[list[str], list[str]]:
    """The IDE sample's Streamable HTTP capture, and the same with the transport events a gateway
    records beside the messages (built from the capture's own envelopes)."""
    lines = read_lines(SAMPLES / "ide_http.jsonl")
    envs = [json.loads(line) for line in lines]
    post = next(e for e in envs if e["direction"] == "server_to_client" and e["http"].get("sse_event_id")
                and e["http"]["response_headers"].get("mcp-session-id"))
    sid = post["http"]["response_headers"]["mcp-session-id"]

    def ev(direction, **http):
        base = {k: v for k, v in post["http"].items() if k not in ("sse_event_id",)}
        return json.dumps({"ts": post["ts"], "direction": direction, "transport": "streamable_http",
                           "connection_id": post["connection_id"], "http": dict(base, **http), "message": None})

    get_headers = {"mcp-session-id": sid, "accept": "text/event-stream"}
    extra = [
        ev("server_to_client", sse_event_id="e0", sse_retry_ms=1000),
        ev("client_to_server", method="GET", status=200, request_headers=get_headers),
        ev("client_to_server", method="GET", status=200, request_headers=dict(get_headers, **{"last-event-id": "e3"})),
        ev("client_to_server", method="GET", status=404, request_headers=dict(get_headers, **{"last-event-id": "e9"})),
        ev("server_to_client", error="upstream_reset: RemoteProtocolError: peer closed connection"),
        ev("client_to_server", method="DELETE", status=200, request_headers={"mcp-session-id": sid}),
    ]
    return lines, lines + extra


def test_message_less_http_envelopes_are_transport_events_not_rejects(tmp_path):
    plain, with_events = _event_lines()
    raw_body = json.loads(with_events[-1])
    raw_body.update(direction="server_to_client", raw="<html>502 Bad Gateway</html>")
    path = write_lines(tmp_path / "gateway.jsonl", with_events + [json.dumps(raw_body)])
    ws = mcptrace.load(path)
    assert ws.sql("SELECT event, http_method, http_status, sse_event_id, sse_retry_ms, last_event_id FROM http_events "
                  "ORDER BY record_no").rows() == [
        ("sse_priming", "POST", 200, "e0", 1000, None),
        ("get_stream", "GET", 200, None, None, None),
        ("resumption", "GET", 200, None, None, "e3"),
        ("resumption_failed", "GET", 404, None, None, "e9"),
        ("reset", "POST", 200, None, None, None),
        ("delete", "DELETE", 200, None, None, None),
    ]
    assert ws.sql("SELECT count(DISTINCT mcp_session_id), count(*) FILTER (WHERE mcp_session_id IS NULL) "
                  "FROM http_events").rows() == [(1, 0)]
    # a body that really was not JSON-RPC is still a reject; every record is a message, an event or a reject
    assert [r[0] for r in ws.sql("SELECT reason FROM rejects").rows()] == \
        [f"line {len(with_events) + 1}: not JSON on the wire: <html>502 Bad Gateway</html>"]
    assert ws.sql("SELECT n_records, n_http_events, n_rejected FROM sources").rows() == [(len(with_events) + 1, 6, 1)]
    # the events add evidence, never calls or gaps
    base = mcptrace.load(write_lines(tmp_path / "plain.jsonl", plain))
    assert ws.sql("SELECT count(*) FROM calls").rows() == base.sql("SELECT count(*) FROM calls").rows()
    assert _gap_counts(ws) == _gap_counts(base)


def test_reader_sql_packs_record_numbers_with_the_readers_key_bits():
    from mcptrace.core.sqlfiles import text
    from mcptrace.ingest.readers.http_entries import KEY_BITS

    sql = "\n".join(ln for ln in text("read_multi.sql").splitlines() if not ln.lstrip().startswith("--"))
    assert sql.count(f"<< {KEY_BITS}") == 2 and "<<" not in sql.replace(f"<< {KEY_BITS}", "")


@pytest.mark.parametrize("files", [["data/samples"], ["data/har", "data/inspector", "data/claude", "data/bare"]])
def test_small_batches_are_staged_without_the_optimizer_to_the_same_rows(monkeypatch, files):
    """Batches of at most LIGHT_PLANNING_ROWS records are staged with DuckDB's optimizer off: every table
    of the load is the same as with it on, and the connection's optimizer is on again after."""
    from mcptrace.core.db import TABLES
    from mcptrace.ingest import loader

    switch, asked = loader.optimizer, []
    monkeypatch.setattr(loader, "optimizer", lambda con, on: asked.append(on) or switch(con, on))

    def tables(light: int) -> dict:
        monkeypatch.setattr(loader, "LIGHT_PLANNING_ROWS", light)
        asked.clear()
        ws = mcptrace.load(files)
        assert asked and set(asked) == {light < 0}  # every batch staged light, or none
        assert ws.sql("SELECT current_setting('enable_optimizer')").rows() == [(True,)]
        out = {t: sorted(map(repr, ws.sql(f"SELECT * {'EXCLUDE (loaded_at)' if t == 'sources' else ''} FROM {t}").rows()))
               for t in TABLES}
        assert out["messages"]
        return out

    assert tables(10**6) == tables(-1)


def test_a_load_leaves_no_reader_views_behind(tmp_path):
    """Every reader's temporary views (Reader.temp_views) are dropped after its file: envelopes and spans
    (samples), JSON-RPC lines (bare), HAR, inspector exports and Claude logs."""
    from mcptrace.ingest import readers

    assert all(r.temp_views() for r in readers.readers())
    ws = mcptrace.load(["data/samples", "data/bare", "data/har", "data/inspector", "data/claude"])
    assert set(ws.sql("SELECT format FROM sources").df()["format"]) >= {r.name for r in readers.readers()} - {"otlp_proto", "otlp_json_document"}
    assert ws.sql("SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").rows() == []
    assert ws.sql("SELECT count(*) FROM messages").rows()[0][0] > 0


def test_two_copies_of_a_span_in_one_line_keep_the_first_whatever_their_names(tmp_path):
    """Within one record the spans keep their order: the first copy stays, whichever copy's name the
    loader matched against the name patterns once for the batch and whichever it matched span by span
    (here a named copy after an unnamed one, beside 40 spans of other names)."""
    line = json.loads(read_lines(SAMPLES / "traces.otlp.jsonl")[0])
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    first = {k: v for k, v in span.items() if k != "name"}
    first["attributes"] = [{"key": "copy", "value": {"stringValue": "first"}}]
    second = dict(span, name="tools/call get_forecast", attributes=[{"key": "copy", "value": {"stringValue": "second"}}])
    others = [dict(span, spanId=f"{i + 1:016x}", name=f"GET /route/{i}", attributes=[]) for i in range(40)]
    line["resourceSpans"] = [dict(line["resourceSpans"][0], scopeSpans=[
        dict(line["resourceSpans"][0]["scopeSpans"][0], spans=[first, second, *others])])]
    ws = mcptrace.load([write_lines(tmp_path / "copies.otlp.jsonl", [json.dumps(line)])])
    assert ws.sql("SELECT name, attributes->>'$.copy' FROM spans WHERE span_id = ?", [span["spanId"]]).rows() == \
        [(None, "first")]
    (reason,) = [r[0] for r in ws.sql("SELECT reason FROM rejects").rows()]
    assert reason.startswith(f"line 1: span {span['traceId']}/{span['spanId']} has the trace-id and span-id"), reason
    assert ws.sql("SELECT count(*) FROM spans").rows() == [(41,)]
