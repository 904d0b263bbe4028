"""Calls, sessions, traces, parallel groups, span joins and gaps rebuilt from the real-SDK samples.

The samples (data/samples, made by `python -m mcptrace.samples`) hold three scenarios:
A  agent-host over stdio (2026-07-28 mode), `_meta["anthropic/session"]` on every call, 4 turns;
B  ide-client over Streamable HTTP (legacy handshake, Mcp-Session-Id), no session key, 3 turns;
C  plain-host over stdio without tracing: no traceparent, one all-zero traceparent, and a
   server process that dies mid-call.
Expected values are either the scenario's exact numbers or read from the raw files with plain
`json` (an oracle independent of the SQL under test).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict

import pytest

import mcptrace
from conftest import BARE, SAMPLES, read_json_lines, read_lines, write_lines

A, B, C = "agent_stdio.jsonl", "ide_http.jsonl", "plain_stdio.jsonl"
TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def calls_of(ws, name: str) -> list[dict]:
    """Calls whose request came from sample file `name`, in start order, with tool/method."""
    df = ws.sql("""
        SELECT c.*, m.record_no AS request_record_no, s.path
        FROM calls c JOIN messages m ON m.message_id = c.request_message_id JOIN sources s USING (source_id)
        WHERE s.path LIKE ? ORDER BY c.start_ord""", ["%/" + name])
    return df.arrow().to_pylist()


def label(c: dict) -> str:
    return c["tool_name"] or c["method"]


def test_sessions(samples_ws):
    rows = samples_ws.sql("SELECT session_key_source, session_key, client_name, n_calls, n_transport_sessions, "
                          "max_parallel FROM sessions ORDER BY first_ts").rows()
    a_key = next(e["message"]["params"]["_meta"]["anthropic/session"] for e in read_json_lines(SAMPLES / A)
                 if e["message"].get("method") == "tools/call")
    b_sid = next(e["http"]["response_headers"]["mcp-session-id"] for e in read_json_lines(SAMPLES / B)
                 if e["message"].get("method") == "initialize")
    c_conn = read_json_lines(SAMPLES / C)[0]["connection_id"]
    assert rows == [
        ("anthropic/session", a_key, "agent-host", 14, 1, 4),   # 4 calls in flight in turn 3
        ("Mcp-Session-Id", b_sid, "ide-client", 9, 1, 3),
        ("connection", c_conn, "plain-host", 5, 1, 2),
    ]


def test_calls_per_status(samples_ws):
    got = {name: Counter(c["status"] for c in calls_of(samples_ws, name)) for name in (A, B, C)}
    assert got == {
        A: Counter(ok=11, tool_error=1, cancelled=1, error=1),
        B: Counter(ok=8, error=1),
        C: Counter(ok=4, unanswered=1),
    }
    by_label = {label(c): c for c in calls_of(samples_ws, A)}
    assert by_label["slow_report"]["status"] == "cancelled"
    assert by_label["resources/read"]["status"] == "error"
    assert by_label["resources/read"]["error_code"] == -32602
    assert [c["status"] for c in calls_of(samples_ws, A) if c["tool_name"] == "divide"].count("tool_error") == 1
    crash = [c for c in calls_of(samples_ws, C) if c["tool_name"] == "crash_worker"]
    assert [(c["status"], c["end_ts"], c["duration_ms"]) for c in crash] == [("unanswered", None, None)]


def test_each_calls_trace_id_is_its_requests_traceparent(samples_ws):
    n = 0
    for name in (A, B, C):
        lines = read_json_lines(SAMPLES / name)
        for c in calls_of(samples_ws, name):
            msg = lines[c["request_record_no"] - 1]["message"]
            tp = (msg.get("params") or {}).get("_meta", {}).get("traceparent")
            m = TP.match(tp or "")
            valid = bool(m) and m.group(1) != "0" * 32 and m.group(2) != "0" * 16
            assert c["trace_id"] == (m.group(1) if valid else None), (name, label(c))
            assert c["parent_span_id"] == (m.group(2) if valid else None)
            n += 1
    assert n == 14 + 9 + 5


def _turns_from_spans() -> dict[tuple[str, str], list[str]]:
    """(service, turn span name) -> jsonrpc request ids of the client spans under it, from the raw OTLP file."""
    spans = []
    for req in read_json_lines(SAMPLES / "traces.otlp.jsonl"):
        for rs in req["resourceSpans"]:
            svc = next(a["value"]["stringValue"] for a in rs["resource"]["attributes"] if a["key"] == "service.name")
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    attrs = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                    spans.append((svc, s, attrs))
    turn_names = {s["spanId"]: (svc, s["name"]) for svc, s, _ in spans if s["name"].startswith("turn ")}
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for svc, s, attrs in spans:
        if s.get("parentSpanId") in turn_names and s["kind"] == 3:
            out[turn_names[s["parentSpanId"]]].append(attrs["jsonrpc.request.id"])
    return out


def test_parallel_groups_are_the_turns(samples_ws):
    turns = _turns_from_spans()
    expected = {
        ("agent-host", "turn 1"): ["get_alerts", "get_forecast", "search"],
        ("agent-host", "turn 2"): ["divide", "divide", "long_task"],
        ("agent-host", "turn 3"): ["divide", "get_forecast", "search", "slow_report"],
        ("agent-host", "turn 4"): ["get_alerts", "resources/read"],
        ("ide-client", "turn 1"): ["get_forecast", "search"],
        ("ide-client", "turn 2"): ["divide", "get_alerts", "long_task"],
        ("ide-client", "turn 3"): ["get_forecast", "search"],
    }
    assert sorted(turns) == sorted(expected)
    for name, svc in ((A, "agent-host"), (B, "ide-client")):
        calls = calls_of(samples_ws, name)
        by_id = {json.loads(c["rpc_id"]): c for c in calls}
        in_turns = set()
        for (s, turn), ids in turns.items():
            if s != svc:
                continue
            members = [by_id[int(i)] for i in ids]
            assert sorted(label(c) for c in members) == expected[(s, turn)]
            assert len({c["parallel_group"] for c in members}) == 1, (s, turn)
            assert len({c["turn_id"] for c in members}) == 1
            in_turns |= {c["call_id"] for c in members}
        # each turn is its own group; calls outside turns (discovery, listing) are alone in theirs
        groups = Counter(c["parallel_group"] for c in calls)
        for c in calls:
            if c["call_id"] not in in_turns:
                assert groups[c["parallel_group"]] == 1, label(c)
        assert len({c["parallel_group"] for c in calls if c["call_id"] in in_turns}) == \
            sum(1 for (s, _t) in turns if s == svc)
    # without trace context the turn is the run of overlapping calls (turn_source 'overlap'): the
    # plain host's concurrent search + get_forecast are one group, every other call is alone
    plain = calls_of(samples_ws, C)
    assert {c["turn_source"] for c in plain} == {"overlap"}
    groups = [[label(c) for c in plain if c["parallel_group"] == g]
              for g in sorted({c["parallel_group"] for c in plain})]
    assert sorted(map(sorted, groups)) == sorted([["initialize"], ["tools/list"], ["get_forecast", "search"],
                                                  ["crash_worker"]])
    assert all(c["turn_id"] == f"overlap:{min(d['call_id'] for d in plain if d['parallel_group'] == c['parallel_group'])}"
               for c in plain)


def test_call_spans(samples_ws):
    rows = samples_ws.sql("""
        SELECT c.tool_name, cs.role, cs.matched_by, s.service_name, s.name, c.connection_id
        FROM call_spans cs JOIN calls c ON c.call_id = cs.call_id
        JOIN spans s ON s.trace_id = cs.trace_id AND s.span_id = cs.span_id
        WHERE c.method = 'tools/call'""").rows()
    traced = [c for name in (A, B) for c in calls_of(samples_ws, name) if c["method"] == "tools/call"]
    roles = Counter((role, by) for _t, role, by, *_ in rows)
    # A and B carry trace context: client and server spans joined by parentage; C's server
    # (no context to extract) is matched on jsonrpc.request.id + method + tool instead; the
    # crash_worker server span died with its process
    assert roles[("client", "parent")] == len(traced) == 11 + 7
    assert roles[("server", "parent")] == len(traced)
    plain = [(t, n) for t, role, by, _s, n, conn in rows if role == "server" and by == "attributes"]
    assert sorted(plain) == [("get_forecast", "tools/call get_forecast"), ("search", "tools/call search")]
    assert all(n == f"MCP send tools/call {t}" for t, role, _b, _s, n, _c in rows if role == "client")
    assert all(n == f"tools/call {t}" for t, role, _b, _s, n, _c in rows if role == "server")
    # get_forecast propagates the trace downstream; get_alerts does not (SEP-2028): the
    # downstream-api span of get_alerts roots a new trace and is joined by its time window only
    down = Counter((t, by, svc, n) for t, role, by, svc, n, _c in rows if role == "downstream")
    assert down == Counter({("get_forecast", "parent", "downstream-api", "GET /forecast"): 5,
                            ("get_forecast", "parent", "weather-mcp-stdio", "GET /forecast"): 2,
                            ("get_forecast", "parent", "weather-mcp-http", "GET /forecast"): 2,
                            ("get_forecast", "parent", "weather-mcp-plain", "GET /forecast"): 1,
                            ("get_alerts", "parent", "weather-mcp-stdio", "GET /alerts"): 2,
                            ("get_alerts", "parent", "weather-mcp-http", "GET /alerts"): 1,
                            ("get_alerts", "time_window", "downstream-api", "GET /alerts"): 3})


def test_gap_rows(samples_ws):
    rows = samples_ws.sql("""
        SELECT g.code, g.severity, coalesce(c.tool_name, c.method), s.path
        FROM gaps g LEFT JOIN calls c USING (call_id)
        LEFT JOIN messages m ON m.message_id = g.message_id LEFT JOIN sources s ON s.source_id = m.source_id
        ORDER BY g.gap_id""").rows()
    got = Counter((code, sev, what, path.rsplit("/", 1)[-1] if path else None) for code, sev, what, path in rows)
    assert got == Counter({
        ("cancelled", "info", "slow_report", A): 1,
        ("missing_trace_context", "warning", "initialize", C): 1,
        ("missing_trace_context", "warning", "tools/list", C): 1,
        ("missing_trace_context", "warning", "search", C): 1,
        ("missing_trace_context", "warning", "crash_worker", C): 1,
        ("invalid_traceparent", "error", "get_forecast", C): 1,
        ("unanswered_request", "error", "crash_worker", C): 1,
        # the 2026-07-28 host sends its session key on tools/call only
        ("missing_session_key", "warning", "server/discover", A): 1,
        ("missing_session_key", "warning", "tools/list", A): 1,
        # get_alerts' downstream call roots a new trace (no message: the evidence is spans)
        ("downstream_unlinked", "error", "get_alerts", None): 3,
    })
    detail = json.loads(samples_ws.gaps(code="invalid_traceparent").rows()[0][-1])
    assert detail["value"].startswith("00-" + "0" * 32)
    assert detail["where"] == "_meta.traceparent"
    # every gap row names its session, and sessions.n_gaps agrees
    assert samples_ws.sql("SELECT count(*) FROM gaps WHERE session_id IS NULL").rows() == [(0,)]
    assert samples_ws.sql("SELECT sum(n_gaps) FROM sessions").rows()[0][0] == len(rows)


def test_bare_capture_rebuilds_the_same_calls():
    bare = mcptrace.load(BARE)
    env = mcptrace.load(SAMPLES / A)
    q = ("SELECT c.session_id, c.direction, c.rpc_id, c.method, c.tool_name, c.status, c.trace_id "
         "FROM calls c ORDER BY c.start_ord")
    assert bare.sql(q).rows() == env.sql(q).rows()
    # parallel groups: the bare tee wrote lines in the order its two reader threads got the
    # lock, so a fast response may come before a sibling request; without times the overlap
    # can only be finer than the envelope's, never cross turns
    def partition(ws):
        groups = defaultdict(set)
        for rpc_id, g in ws.sql("SELECT rpc_id, parallel_group FROM calls").rows():
            groups[g].add(rpc_id)
        return list(groups.values())
    env_groups = partition(env)
    for g in partition(bare):
        assert any(g <= e for e in env_groups), g
    # directions inferred from shape match the envelope's
    qd = "SELECT kind, method, rpc_id, direction FROM messages ORDER BY record_no"
    assert sorted(bare.sql(qd).rows(), key=repr) == sorted(env.sql(qd).rows(), key=repr)


def test_response_whose_request_was_not_captured_is_an_orphan(tmp_path):
    lines = read_lines(SAMPLES / A)
    envs = [json.loads(x) for x in lines]
    i = next(k for k, e in enumerate(envs) if e["message"].get("params", {}).get("name") == "search")
    rpc_id = envs[i]["message"]["id"]
    ws = mcptrace.load(write_lines(tmp_path / "capture_started_after_request.jsonl", lines[:i] + lines[i + 1:]))
    gaps = ws.gaps(code="orphan_response").rows()
    assert len(gaps) == 1
    detail = json.loads(gaps[0][-1])
    assert detail["rpc_id"] == json.dumps(rpc_id) and detail["direction"] == "server_to_client"
    assert ws.sql("SELECT count(*) FROM calls WHERE rpc_id = ?", [json.dumps(rpc_id)]).rows() == [(0,)]


def test_id_reused_while_open_is_flagged(tmp_path):
    lines = read_lines(SAMPLES / A)
    envs = [json.loads(x) for x in lines]
    i = next(k for k, e in enumerate(envs) if e["message"].get("params", {}).get("name") == "slow_report")
    dup = dict(envs[i])
    dup["ts"] = envs[i]["ts"][:-2] + str((int(envs[i]["ts"][-2]) + 1) % 10) + "Z"  # a microsecond-ish later
    ws = mcptrace.load(write_lines(tmp_path / "request_id_reused_while_open.jsonl",
                                   lines[: i + 1] + [json.dumps(dup)] + lines[i + 1:]))
    assert [r[1] for r in ws.gaps(code="duplicate_request_id").rows()] == ["duplicate_request_id"]


@pytest.mark.parametrize("key", ["openai/session", "vscode.conversationId", "io.modelcontextprotocol/clientSessionId"])
def test_other_session_keys_decide_the_session(tmp_path, key):
    lines = []
    for x in read_lines(SAMPLES / A):
        e = json.loads(x)
        meta = (e["message"].get("params") or {}).get("_meta")
        if meta and "anthropic/session" in meta:
            meta[key] = meta.pop("anthropic/session")
        lines.append(json.dumps(e))
    ws = mcptrace.load(write_lines(tmp_path / f"session_key_{key.replace('/', '_')}.jsonl", lines))
    assert ws.sql("SELECT session_key_source, n_calls FROM sessions").rows() == [(key, 14)]
