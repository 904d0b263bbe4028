"""Timestamps outside the accepted range and JSON-RPC messages with repeated keys.

A time DuckDB accepts but Python cannot hold (infinity, year -1, year 290309) or one outside the
accepted range (LoadOptions.ts_range, 1970..2200 by default) is a reject naming the range and the
value; a message that gives a key twice (which the analysis and the inspector would read
differently) is a reject naming the keys. Every valid neighbour loads, every record is accounted
for, and the commands and the explorer work on the result.
"""

from __future__ import annotations

import json
import pathlib

import duckdb

import mcptrace
from conftest import BARE, ROOT, SAMPLES, read_lines, write_lines
from mcptrace.cli import main
from mcptrace.core.db import connect
from mcptrace.explorer import ExplorerModel
from mcptrace.ingest.loader import Loader
from mcptrace.ingest.options import LoadOptions

HOSTILE_TS = ["infinity", "-0001-01-01T00:00:00Z", "290309-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
              "2201-01-01T00:00:00Z"]
RANGE = "1970-01-01 .. 2200-01-01"
CLAUDE_LOG = ROOT / "data" / "claude" / "mcp-server-weather.log"
HAR = ROOT / "data" / "har" / "ide_http.har"


def _n(ws, sql, params=None):
    return ws.sql(sql, params).rows()[0][0]


def _calls(ws):
    return ws.sql("SELECT rpc_id, method, tool_name, status, start_ts, end_ts FROM calls "
                  "ORDER BY request_message_id").rows()


def _accounted(ws, source_id=1):
    """Records of the source in messages, http_events or rejects (each once), and its n_records."""
    covered = _n(ws, "SELECT count(*) FROM (SELECT record_no FROM messages WHERE source_id = $s UNION "
                     "SELECT record_no FROM http_events WHERE source_id = $s UNION "
                     "SELECT record_no FROM rejects WHERE source_id = $s)", {"s": source_id})
    return covered, _n(ws, "SELECT n_records FROM sources WHERE source_id = ?", [source_id])


def _hostile_ts_file(tmp_path: pathlib.Path) -> tuple[pathlib.Path, list[tuple[int, str]], list[str]]:
    """agent_stdio.jsonl with, after each of its first lines, a copy of it stamped with a hostile time."""
    lines = read_lines(SAMPLES / "agent_stdio.jsonl")
    out, expected = [], []
    for i, line in enumerate(lines):
        out.append(line)
        if i < len(HOSTILE_TS):
            env = json.loads(line)
            env["ts"] = HOSTILE_TS[i]
            out.append(json.dumps(env))
            expected.append((len(out), f"line {len(out)}: ts is outside {RANGE}: {HOSTILE_TS[i]}"))
    return write_lines(tmp_path / "hostile_timestamps.jsonl", out), expected, lines


def _commands_work(db: str) -> None:
    """sessions, gaps, report, tree and export --chrome-trace exit 0 and write what they say."""
    out_dir = pathlib.Path(db).parent
    con = duckdb.connect(db, read_only=True)
    sid = con.execute("SELECT session_id FROM sessions ORDER BY n_calls DESC, session_id LIMIT 1").fetchone()[0]
    con.close()
    assert main(["sessions", "--db", db]) == 0
    assert main(["gaps", "--db", db]) == 0
    assert main(["report", "--db", db, "--out", str(out_dir / "report.html")]) == 0
    assert "<html" in (out_dir / "report.html").read_text(encoding="utf-8").lower()
    assert main(["tree", "--db", db, "--session", sid, "--out", str(out_dir / "tree.html")]) == 0
    assert (out_dir / "tree.html").stat().st_size > 0
    assert main(["export", "--db", db, "--chrome-trace", str(out_dir / "trace.json")]) == 0
    trace = json.loads((out_dir / "trace.json").read_text(encoding="utf-8"))
    assert trace["traceEvents"]


def _explorer_works(con) -> None:
    model = ExplorerModel(con)
    assert model.session_ids()
    for sid in model.session_ids():
        model.session_summary_html(sid)
        calls = model.calls(sid)
        assert calls
        for c in calls:
            d = model.inspect(c["call_id"])
            assert d.request_json != "(request not captured)"
        for g in model.gaps(sid):
            model.gap_detail(g["gap_id"])
        model.filter_choices(sid)
        model.timeline(sid)
        model.waterfall(sid)


def test_out_of_range_timestamps_are_rejected_with_the_reason(tmp_path):
    path, expected, lines = _hostile_ts_file(tmp_path)
    db = str(tmp_path / "hostile.duckdb")
    ws = mcptrace.load(path, db=db)
    assert [(r[1], r[2]) for r in ws.rejects().rows()] == expected
    assert _n(ws, "SELECT count(*) FROM messages") == len(lines)
    assert _accounted(ws) == (len(lines) + len(HOSTILE_TS),) * 2
    rep = ws.last_report.files[0]
    assert (rep.status, rep.n_records, rep.n_rejected) == ("loaded", len(lines) + len(HOSTILE_TS), len(HOSTILE_TS))
    # the valid neighbours give exactly the calls of the clean capture
    clean = mcptrace.load(SAMPLES / "agent_stdio.jsonl")
    assert _calls(ws) == _calls(clean)
    assert _n(ws, "SELECT count(*) FROM messages WHERE ts < '1970-01-01' OR ts > '2200-01-01' OR NOT isfinite(ts)") == 0
    _explorer_works(ws.con)
    ws.close()
    _commands_work(db)


def test_the_range_bounds_are_accepted_and_the_range_is_configurable(tmp_path):
    lines = read_lines(SAMPLES / "agent_stdio.jsonl")[:2]
    first, second = (json.loads(x) for x in lines)
    first["ts"], second["ts"] = "1970-01-01T00:00:00Z", "2200-01-01T00:00:00Z"
    path = write_lines(tmp_path / "range_bounds.jsonl", [json.dumps(first), json.dumps(second)])
    ws = mcptrace.load(path)
    assert ws.rejects().rows() == []
    assert _n(ws, "SELECT count(*) FROM messages") == 2
    # a narrower range, not at midnight: the reason names it to the microsecond
    con = connect(None)
    rep = Loader(con, LoadOptions(ts_range=("1970-01-01T12:30:00Z", "2200-01-01T00:00:00Z"))).load([path])
    assert rep.files[0].n_rejected == 1
    assert con.execute("SELECT record_no, reason FROM rejects").fetchall() == [
        (1, "line 1: ts is outside 1970-01-01T12:30:00.000000Z .. 2200-01-01: 1970-01-01T00:00:00Z")]
    assert con.execute("SELECT record_no FROM messages").fetchall() == [(2,)]
    con.close()


def test_out_of_range_times_from_claude_logs_and_har_are_rejected(tmp_path):
    log = read_lines(CLAUDE_LOG)
    i = next(k for k, x in enumerate(log) if "Message from client" in x and '"tools/call"' in x)
    stamp = log[i].split(" ", 1)[0]
    bad = log[i].replace(stamp, "2201" + stamp[4:], 1)
    ws = mcptrace.load(write_lines(tmp_path / "claude_log_year_2201.log", log[:i + 1] + [bad] + log[i + 1:]))
    clean = mcptrace.load(CLAUDE_LOG)
    assert [r[2] for r in ws.rejects().rows()] == [f"line {i + 2}: ts is outside {RANGE}: 2201{stamp[4:]}"]
    assert _n(ws, "SELECT count(*) FROM messages") == _n(clean, "SELECT count(*) FROM messages")
    assert _calls(ws) == _calls(clean)

    har = json.loads((HAR).read_text(encoding="utf-8"))
    k = next(n for n, e in enumerate(har["log"]["entries"]) if "tools/call" in json.dumps(e["request"]))
    har["log"]["entries"][k]["startedDateTime"] = "1969-07-20T20:17:40Z"
    path = tmp_path / "har_entry_of_1969.har"
    path.write_text(json.dumps(har), encoding="utf-8")
    ws = mcptrace.load(path)
    reasons = [r[2] for r in ws.rejects().rows()]
    assert reasons and all(r.startswith(f"entry {k + 1}: ts is outside {RANGE}: 1969-07-20T20:17:40") for r in reasons)
    assert _n(ws, "SELECT count(*) FROM messages WHERE ts < '1970-01-01'") == 0
    assert _n(ws, "SELECT count(*) FROM messages") > 0


def test_out_of_range_times_in_a_database_are_shown_as_no_time_by_the_inspector(tmp_path):
    """A database written before the loader rejected such times: the inspector still opens every call."""
    ws = mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=str(tmp_path / "old.duckdb"))
    ws.con.execute("UPDATE messages SET ts = 'infinity' WHERE message_id IN "
                   "(SELECT request_message_id FROM calls UNION SELECT response_message_id FROM calls)")
    model = ExplorerModel(ws.con)
    for sid in model.session_ids():
        for c in model.calls(sid):
            d = model.inspect(c["call_id"])
            assert json.loads(d.request_json)["id"] == json.loads(c["rpc_id"])
    assert model._message(model.calls(model.session_ids()[0])[0]["request_message_id"])["ts"] is None


# -- duplicate keys ----------------------------------------------------------------------------

def _with_duplicates(line: str, keys: dict[str, object]) -> str:
    """The message of a compact envelope ``line`` (or a bare message) with each of ``keys`` given a first,
    different value in front of the one it has (DuckDB reads that first one, Python's json the last)."""
    head = "".join(f"{json.dumps(k)}:{json.dumps(v)}," for k, v in keys.items())
    if '"message":{' in line:
        return line.replace('"message":{', '"message":{' + head, 1)
    return line.replace("{", "{" + head, 1)


def test_duplicate_keys_are_rejected_naming_the_keys(tmp_path):
    lines = read_lines(SAMPLES / "agent_stdio.jsonl")
    envs = [json.loads(x) for x in lines]
    i = next(k for k, e in enumerate(envs) if e["message"].get("method") == "tools/call")
    j = next(k for k, e in enumerate(envs) if k > i and "result" in e["message"])
    out = list(lines)
    # a second copy of the call with a different id and method first: the analysis would see one call,
    # the inspector another
    out.insert(i + 1, _with_duplicates(lines[i], {"id": 999, "method": "evil"}))
    out.insert(j + 2, _with_duplicates(lines[j], {"result": {"content": []}}))
    meta_dup = json.loads(lines[i])
    meta_dup["message"]["id"] = 4242
    text = json.dumps(meta_dup, separators=(",", ":"))
    tool = json.dumps(meta_dup["message"]["params"]["name"])
    out.append(text.replace(f'"name":{tool}', f'"name":"other_tool","name":{tool}', 1)
               .replace('"_meta":{', '"_meta":{"traceparent":"00-' + "1" * 32 + "-" + "2" * 16 + '-01",', 1))
    ping = {"jsonrpc": "2.0", "id": 77, "method": "ping"}
    batch = ('{"ts":"2026-11-22T02:55:44Z","direction":"client_to_server","message":[' + json.dumps(ping) + ","
             + '{"jsonrpc":"2.0","id":78,"id":79,"method":"ping","params":{"a":1,"a":2,"_meta":{"x":1,"x":2}}}]}')
    out.append(batch)
    db = str(tmp_path / "duplicate_keys.duckdb")
    ws = mcptrace.load(write_lines(tmp_path / "duplicate_keys.jsonl", out), db=db)
    n = len(out)
    assert [(r[1], r[2]) for r in ws.rejects().rows()] == [
        (i + 2, f"line {i + 2}: JSON-RPC message has duplicate keys: id, method"),
        (j + 3, f"line {j + 3}: JSON-RPC message has duplicate keys: result"),
        (n - 1, f"line {n - 1}: JSON-RPC message has duplicate keys: params.name, params._meta.traceparent"),
        (n, f"line {n}: JSON-RPC message has duplicate keys: id, params.a, params._meta.x (batch element 1)"),
    ]
    # the raw text of the reject keeps both values: the ambiguity is on record
    raw = ws.sql("SELECT raw FROM rejects WHERE record_no = ?", [i + 2]).rows()[0][0]
    assert '"evil"' in raw and '"tools/call"' in raw
    # every neighbour loaded (the first element of the batch too), every record accounted for
    assert _n(ws, "SELECT count(*) FROM messages") == len(lines) + 1
    assert ws.sql("SELECT rpc_id, method FROM messages WHERE record_no = ?", [n]).rows() == [("77", "ping")]
    assert _accounted(ws) == (n, n)
    assert _n(ws, "SELECT count(*) FROM messages WHERE method = 'evil' OR rpc_id IN ('999', '4242', '78', '79')") == 0
    clean = mcptrace.load(SAMPLES / "agent_stdio.jsonl")
    assert [c for c in _calls(ws) if c[0] != "77"] == _calls(clean)
    _explorer_works(ws.con)
    ws.close()
    _commands_work(db)


def test_duplicate_keys_in_bare_ndjson(tmp_path):
    lines = read_lines(BARE / "agent_stdio.ndjson")
    i = next(k for k, x in enumerate(lines) if '"tools/call"' in x)
    out = lines[:i + 1] + [_with_duplicates(lines[i], {"method": "evil"})] + lines[i + 1:]
    ws = mcptrace.load(write_lines(tmp_path / "duplicate_method.ndjson", out))
    assert [(r[1], r[2]) for r in ws.rejects().rows()] == [
        (i + 2, f"line {i + 2}: JSON-RPC message has duplicate keys: method")]
    assert _n(ws, "SELECT count(*) FROM messages") == len(lines)
    assert _accounted(ws) == (len(out), len(out))


DUP_CALL = ('{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","method":"evil",'
            '"params":{"name":"x","name":"y","_meta":{"traceparent":"a","traceparent":"b"}}}')
DUP_KEYS = "JSON-RPC message has duplicate keys: id, method, params.name, params._meta.traceparent"
OK_CALL = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ok"}}'


def _har_entry(second: int, request: str, sse: str = "") -> dict:
    ctype = [{"name": "Content-Type", "value": "text/event-stream"}] if sse else []
    return {"startedDateTime": f"2026-01-01T00:00:0{second}Z", "time": 1,
            "request": {"method": "POST", "url": "http://h/mcp", "headers": [],
                        "postData": {"mimeType": "application/json", "text": request}},
            "response": {"status": 200 if sse else 202, "headers": ctype,
                         "content": {"mimeType": "text/event-stream" if sse else "", "text": sse}}}


def test_duplicate_keys_follow_one_rule_in_har_and_inspector_exports(tmp_path):
    """Readers that parse messages in Python (HAR, inspector exports) reject a repeated key like the
    JSON lines readers: the analysis and the inspector never tell two stories."""
    dup_result = '{"jsonrpc":"2.0","id":3,"result":{"content":[]},"result":{"isError":true}}'
    har = tmp_path / "dup.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "t"}, "entries": [
        _har_entry(1, DUP_CALL), _har_entry(2, OK_CALL, f"event: message\ndata: {dup_result}\n\n"),
        _har_entry(3, '[' + OK_CALL.replace('"id":3', '"id":4') + ',' + DUP_CALL + ']')]}}))
    ws = mcptrace.load(har)
    assert [r[2] for r in ws.rejects().rows()] == [
        f"entry 1: request body: {DUP_KEYS}",
        "entry 2: response SSE event 1 data: JSON-RPC message has duplicate keys: result",
        f"entry 3: request body: {DUP_KEYS} (batch element 1)"]
    assert ws.sql("SELECT rpc_id, method FROM messages").rows() == [("3", "tools/call")]

    t = "2026-03-01T12:00:00.000Z"
    protocol = tmp_path / "inspector-protocol-dup.json"
    protocol.write_text(f'[{{"id":"1-a","timestamp":"{t}","direction":"request","origin":"client","message":{DUP_CALL}}},'
                        f'{{"id":"2-a","timestamp":"{t}","direction":"request","origin":"client","message":{OK_CALL}}}]')
    network = tmp_path / "inspector-network-dup.json"
    network.write_text(json.dumps([{"id": "1-a", "timestamp": t, "method": "POST", "url": "http://h/mcp",
                                    "requestHeaders": {"content-type": "application/json"}, "requestBody": body,
                                    "responseStatus": 202, "responseHeaders": {}} for body in (DUP_CALL, OK_CALL)]))
    for path in (protocol, network):
        ws = mcptrace.load(path)
        what = "message" if path == protocol else "request body"
        assert [r[2] for r in ws.rejects().rows()] == [f"entry 1: {what}: {DUP_KEYS}"], path
        assert ws.sql("SELECT rpc_id, method FROM messages").rows() == [("3", "tools/call")]
    # the JSON lines readers name the same keys
    env = tmp_path / "dup.jsonl"
    env.write_text('{"ts":"2026-01-01T00:00:00Z","direction":"client_to_server","message":' + DUP_CALL + "}\n")
    assert [r[2] for r in mcptrace.load(env).rejects().rows()] == [f"line 1: {DUP_KEYS}"]


def test_the_inspector_reads_a_repeated_key_as_the_analysis_did(tmp_path):
    """A database written before such messages were rejected: the inspector shows the first value of a
    repeated key, the one the calls were built from."""
    ws = mcptrace.load(SAMPLES / "agent_stdio.jsonl")
    call_id, rpc_id, req = ws.sql("SELECT call_id, rpc_id, request_message_id FROM calls "
                                  "WHERE method = 'tools/call' ORDER BY call_id LIMIT 1").rows()[0]
    raw = ws.sql("SELECT raw FROM messages WHERE message_id = ?", [req]).rows()[0][0]
    assert raw.startswith("{")
    ws.con.execute("UPDATE messages SET raw = ? WHERE message_id = ?",
                   [raw[:-1] + ',"id":999,"method":"evil"}', req])
    d = ExplorerModel(ws.con).inspect(call_id)
    shown = json.loads(d.request_json)
    assert (json.dumps(shown["id"]), shown["method"]) == (rpc_id, "tools/call")
    assert d.title.startswith(f"call {call_id}: ")


def test_a_database_holding_out_of_range_times_still_works(tmp_path):
    from mcptrace.analysis.rebuild import rebuild

    db = str(tmp_path / "old.duckdb")
    ws = mcptrace.load(SAMPLES, db=db)
    ws.con.execute("UPDATE messages SET ts = 'infinity' WHERE message_id % 5 = 0").fetchall()
    ws.con.execute("UPDATE http_events SET ts = '290309-01-01' WHERE record_no % 2 = 0").fetchall()
    rebuild(ws.con)
    _explorer_works(ws.con)
    ws.close()
    _commands_work(db)
