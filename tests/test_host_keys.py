"""Keys hosts record outside the SDK's attributes: conversation ids in ``_meta.baggage`` and on spans,
tool-call ids on spans and in ``_meta``, turn ids (``vscode.requestId``, Codex's turn metadata), and
the host's tool spans (``execute_tool``, ``claude_code.tool``) joined to the calls they caused.

The traffic is a real capture of the official SDK (``data/incidents/reconnect_without_session_key``:
an agent whose stdio server is restarted, with no session key, so the reconnect splits the session),
rewritten the way each host writes its keys (sources in ``mcptrace/core/keys.py`` and
``mcptrace/core/conventions.py``).
"""

from __future__ import annotations

import copy
import json

import pytest

import mcptrace
from conftest import ROOT, read_json_lines

CAPTURE = ROOT / "data" / "incidents" / "reconnect_without_session_key.jsonl"
TRACES = ROOT / "data" / "incidents" / "reconnect_without_session_key.otlp.jsonl"


def _write(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _requests(records):
    return [r["message"] for r in records if r["direction"] == "client_to_server" and "id" in r["message"]
            and "method" in r["message"]]


def _with_meta(tmp_path, name, edit):
    """The capture with ``edit(message, meta, index)`` applied to every client request's ``_meta``."""
    records = read_json_lines(CAPTURE)
    for i, m in enumerate(_requests(records)):
        meta = m.setdefault("params", {}).setdefault("_meta", {})
        edit(m, meta, i)
    return _write(tmp_path / name, records)


def _spans(path=TRACES):
    reqs = read_json_lines(path)
    return reqs, [s for r in reqs for rs in r["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def _kv(d):
    return [{"key": k, "value": {"stringValue": v}} for k, v in d.items()]


@pytest.fixture(scope="module")
def original():
    ws = mcptrace.load([CAPTURE, TRACES])
    yield {
        "sessions": ws.sql("SELECT count(*) FROM sessions").rows()[0][0],
        "turns": sorted(ws.sql("SELECT call_id, turn_id, parallel_group FROM calls").rows()),
        "call_spans": sorted(ws.sql("SELECT call_id, span_id, role FROM call_spans").rows()),
        "gaps": sorted(ws.sql("SELECT code, call_id FROM gaps").rows()),
    }
    ws.close()


def test_the_capture_splits_without_a_key(original):
    assert original["sessions"] == 2
    assert ("session_split", None) in [(c, None) for c, _ in original["gaps"]]


def test_a_conversation_id_in_baggage_is_one_logical_session(tmp_path, original):
    """pydantic-ai's ``gen_ai.conversation.id`` travels in W3C baggage (percent-encoded, among other members
    and properties); it is the only key, and it joins the two transports."""
    capture = _with_meta(tmp_path, "baggage.jsonl", lambda m, meta, i: meta.update(
        baggage="gen_ai.agent.call.id=run-1, gen_ai.conversation.id = conv%2042;ttl=1 ,other=x"))
    ws = mcptrace.load([capture, TRACES])
    try:
        assert ws.sql("SELECT session_key_source, session_key, n_transport_sessions FROM sessions").rows() == [
            ("baggage gen_ai.conversation.id", "conv 42", 2)]
        assert "session_split" not in {c for c, in ws.sql("SELECT code FROM gaps").rows()}
        assert ws.sql("SELECT count(*) FROM messages WHERE session_key_source = 'baggage gen_ai.conversation.id'"
                      ).rows()[0][0] == len(_requests(read_json_lines(CAPTURE)))
    finally:
        ws.close()


def test_baggage_without_the_member_is_no_key(tmp_path, original):
    capture = _with_meta(tmp_path, "baggage_other.jsonl", lambda m, meta, i: meta.update(
        baggage="xgen_ai.conversation.id=a,gen_ai.conversation.idx=b,gen_ai.conversation.id="))
    ws = mcptrace.load([capture, TRACES])
    try:
        assert ws.sql("SELECT count(*) FROM sessions").rows()[0][0] == original["sessions"]
        assert ws.sql("SELECT count(*) FROM messages WHERE session_key IS NOT NULL").rows()[0][0] == 0
    finally:
        ws.close()


def test_a_conversation_id_on_the_agents_spans_is_one_logical_session(tmp_path, original):
    """The agent's turn spans carry ``gen_ai.conversation.id`` (as pydantic-ai's agent spans do); the
    calls under them take it as their session key and both transports are one session."""
    reqs, spans = _spans()
    for s in spans:
        if s["name"].startswith("turn "):
            s["attributes"] = s.get("attributes", []) + _kv({"gen_ai.conversation.id": "conv-7"})
    ws = mcptrace.load([CAPTURE, _write(tmp_path / "conv.otlp.jsonl", reqs)])
    try:
        assert ws.sql("SELECT session_key_source, session_key, n_transport_sessions FROM sessions").rows() == [
            ("spans.conversation_id", "conv-7", 2)]
        keyed = ws.sql("SELECT count(*) FROM calls WHERE request_session_key_source = 'spans.conversation_id'").rows()
        assert keyed[0][0] > 0
        # the joins do not change
        assert sorted(ws.sql("SELECT call_id, span_id, role FROM call_spans").rows()) == original["call_spans"]
    finally:
        ws.close()


def _insert_execute_tool(tmp_path, reparent=True):
    """An ``execute_tool {tool}`` span (pydantic-ai, ADK, Copilot Chat) between each tools/call client span
    and its parent, with the LLM's tool-call id; with ``reparent=False`` beside the client span instead (a
    sibling 50 ms longer on each side), as when the trace context names some other span of the host."""
    reqs, _ = _spans()
    ids = {}
    for r in reqs:
        for rs in r["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                extra = []
                for s in ss["spans"]:
                    if s["name"].startswith("MCP send tools/call "):
                        tool = s["name"].removeprefix("MCP send tools/call ")
                        host = copy.deepcopy(s)
                        host.update(spanId="e" + s["spanId"][1:], name=f"execute_tool {tool}", kind=1,
                                    attributes=_kv({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                                                    "gen_ai.tool.call.id": f"call_{s['spanId'][:6]}"}))
                        if reparent:
                            s["parentSpanId"] = host["spanId"]
                        else:
                            host["startTimeUnixNano"] = str(int(s["startTimeUnixNano"]) - 50_000_000)
                            host["endTimeUnixNano"] = str(int(s["endTimeUnixNano"]) + 50_000_000)
                        ids[(s["traceId"], s["spanId"])] = (host["spanId"], f"call_{s['spanId'][:6]}")
                        extra.append(host)
                ss["spans"] += extra
    return _write(tmp_path / "execute_tool.otlp.jsonl", reqs), ids


def test_execute_tool_spans_give_calls_their_tool_call_id_and_sit_above_them(tmp_path, original):
    traces, ids = _insert_execute_tool(tmp_path)
    ws = mcptrace.load([CAPTURE, traces])
    try:
        rows = ws.sql("SELECT c.call_id, c.call_key, c.call_key_source, h.span_id, h.matched_by, cl.trace_id, cl.span_id "
                      "FROM calls c JOIN call_spans cl ON cl.call_id = c.call_id AND cl.role = 'client' "
                      "LEFT JOIN call_spans h ON h.call_id = c.call_id AND h.role = 'host' "
                      "WHERE c.method = 'tools/call'").rows()
        assert rows and len(rows) == len(ids)
        for call_id, key, source, host, matched_by, trace, client in rows:
            assert (host, key) == ids[(trace, client)]
            assert (source, matched_by) == ("spans.tool_call_id", "parent")
        # the turn is the span above the host's tool span: the same turns and parallel groups as before
        assert sorted(ws.sql("SELECT call_id, turn_id, parallel_group FROM calls").rows()) == original["turns"]
        assert set(ws.sql("SELECT turn_source FROM calls WHERE method = 'tools/call'").rows()) == {("host_span",)}
        assert sorted(ws.sql("SELECT code, call_id FROM gaps").rows()) == original["gaps"]
        # the tree reads turn -> host tool span -> call
        sid = ws.sql("SELECT session_id FROM calls WHERE call_id = ?", [rows[0][0]]).rows()[0][0]
        tree = ws.tree(sid)
        df = tree.df() if hasattr(tree, "df") else tree
        call = df[df.node_id == f"call:{rows[0][0]}"].iloc[0]
        host = df[df.node_id == call.parent_id].iloc[0]
        assert (host.kind, host.role, host.span_id) == ("span", "host", rows[0][3])
        assert df[df.node_id == host.parent_id].iloc[0].kind == "turn"
    finally:
        ws.close()


def test_a_host_span_beside_the_call_in_its_trace_joins_by_time(tmp_path, original):
    """A host tool span of the call's trace that is not above its client span joins by the trace, its
    interval and the tool (``trace_time``, inferred, with its candidates), and gives the call its tool-call id,
    saying the join was by time."""
    traces, ids = _insert_execute_tool(tmp_path, reparent=False)
    ws = mcptrace.load([CAPTURE, traces])
    try:
        rows = ws.sql("SELECT h.span_id, h.matched_by, h.inferred, h.n_candidates, h.evidence, cl.trace_id, cl.span_id, "
                      "c.call_key FROM call_spans h JOIN calls c USING (call_id) "
                      "JOIN call_spans cl ON cl.call_id = h.call_id AND cl.role = 'client' WHERE h.role = 'host'").rows()
        assert len(rows) == len(ids)
        for host, by, inferred, n, evidence, trace, client, key in rows:
            assert (host, by, inferred, key) == (ids[(trace, client)][0], "trace_time", True, ids[(trace, client)][1])
            assert json.loads(evidence)["candidate_span_ids"][0] == host and n >= 1
        assert sorted(ws.sql("SELECT call_id, turn_id, parallel_group FROM calls").rows()) == original["turns"]
        assert set(ws.sql("SELECT call_key_source FROM calls WHERE method = 'tools/call'").rows()) == {
            ("spans.tool_call_id (trace_time)",)}
    finally:
        ws.close()


def test_claude_code_tool_spans_join_by_the_tool_use_id_on_the_wire(tmp_path, original):
    """Claude Code sends ``_meta["claudecode/toolUseId"]`` and exports ``claude_code.tool`` spans (its own
    trace, ``tool_use_id``, ``tool_name`` ``mcp__<server>__<tool>``): the span joins the call exactly."""
    def edit(m, meta, i):
        if m["method"] == "tools/call":
            meta["claudecode/toolUseId"] = f"toolu_{i:04d}"
    capture = _with_meta(tmp_path, "claude.jsonl", edit)
    tools = [(i, m["params"]["name"]) for i, m in enumerate(_requests(read_json_lines(CAPTURE)))
             if m["method"] == "tools/call"]
    spans = [{"traceId": "c1" * 16, "spanId": f"{i + 1:016x}", "name": "claude_code.tool", "kind": 1,
              "startTimeUnixNano": "1795316000000000000", "endTimeUnixNano": "1795316000500000000",
              "attributes": _kv({"tool_name": f"mcp__weather__{tool}", "tool_use_id": f"toolu_{i:04d}",
                                 "gen_ai.tool.call.id": f"toolu_{i:04d}", "session.id": "cc-session-1",
                                 "span.type": "tool"})} for i, tool in tools]
    # one more span carrying an id no request carries: joins nothing
    spans.append({**copy.deepcopy(spans[0]), "spanId": "f" * 16,
                  "attributes": _kv({"tool_name": "mcp__weather__divide", "tool_use_id": "toolu_none"})})
    req = {"resourceSpans": [{"resource": {"attributes": _kv({"service.name": "claude-code"})},
                              "scopeSpans": [{"scope": {"name": "com.anthropic.claude_code.tracing"}, "spans": spans}]}]}
    ws = mcptrace.load([capture, TRACES, _write(tmp_path / "claude.otlp.jsonl", [req])])
    try:
        assert ws.sql("SELECT DISTINCT mcp_side FROM spans WHERE name = 'claude_code.tool'").rows() == [("host",)]
        assert sorted(ws.sql("SELECT gen_ai_tool_name FROM spans WHERE name = 'claude_code.tool'").rows()) == sorted(
            [(t,) for _, t in tools] + [("divide",)])
        got = ws.sql("SELECT c.call_key, c.call_key_source, s.tool_call_id, h.matched_by, h.inferred "
                     "FROM call_spans h JOIN calls c USING (call_id) JOIN spans s ON s.trace_id = h.trace_id AND s.span_id = h.span_id "
                     "WHERE h.role = 'host'").rows()
        assert len(got) == len(tools)
        assert all(k == t and src == "claudecode/toolUseId" and by == "tool_call_id" and not inf
                   for k, src, t, by, inf in got)
        assert sorted(ws.sql("SELECT call_id, span_id, role FROM call_spans WHERE role <> 'host'").rows()) \
            == original["call_spans"]
    finally:
        ws.close()


def test_vscode_request_id_is_a_turn_not_a_call_id(tmp_path):
    """VS Code's ``vscode.requestId`` is its chat request: every tool call of one request shares it."""
    capture = _with_meta(tmp_path, "vscode.jsonl", lambda m, meta, i: meta.update(
        {"vscode.conversationId": "chat-1", "vscode.requestId": f"request-{'AB'[i // 4]}"}))
    ws = mcptrace.load([capture, TRACES])
    try:
        rows = ws.sql("SELECT turn_id, turn_source, count(*), count(call_key) FROM calls "
                      "WHERE direction = 'client_to_server' GROUP BY ALL ORDER BY 1").rows()
        assert rows == [("request-A", "vscode.requestId", 4, 0), ("request-B", "vscode.requestId", 4, 0)]
        assert ws.sql("SELECT session_key_source, n_transport_sessions FROM sessions").rows() == [
            ("vscode.conversationId", 2)]
        turns = ws.turns(ws.sql("SELECT session_id FROM sessions").rows()[0][0])
        names = (turns.df() if hasattr(turns, "df") else turns)["name"].tolist()
        assert names == ["vscode.requestId request-A", "vscode.requestId request-B"]
    finally:
        ws.close()


def test_codex_turn_metadata_and_call_id(tmp_path):
    """Codex sends ``x-codex-turn-metadata`` (an object: session_id, thread_id, turn_id, model, ...) and,
    in newer versions, ``callId``."""
    def edit(m, meta, i):
        meta["x-codex-turn-metadata"] = {"session_id": "sess-1", "thread_id": "thread-9", "turn_id": f"turn-{i // 4}",
                                         "model": "gpt-5-codex", "sandbox": "workspace-write"}
        if m["method"] == "tools/call":
            meta["callId"] = f"call_{i}"
    ws = mcptrace.load([_with_meta(tmp_path, "codex.jsonl", edit), TRACES])
    try:
        assert ws.sql("SELECT session_key_source, session_key, n_transport_sessions FROM sessions").rows() == [
            ("x-codex-turn-metadata.thread_id", "thread-9", 2)]
        assert sorted(set(ws.sql("SELECT turn_id, turn_source FROM calls").rows())) == [
            ("turn-0", "x-codex-turn-metadata.turn_id"), ("turn-1", "x-codex-turn-metadata.turn_id")]
        assert all(k.startswith("call_") and src == "callId" for k, src in ws.sql(
            "SELECT c.call_key, m.call_key_source FROM calls c JOIN messages m ON m.message_id = c.request_message_id "
            "WHERE c.method = 'tools/call'").rows())
    finally:
        ws.close()


def test_unprefixed_client_session_id_and_non_text_keys(tmp_path):
    """Draft SEP-2822's unprefixed ``clientSessionId`` is a session key; an object or a boolean where a key
    should be is none."""
    def edit(m, meta, i):
        meta["clientSessionId"] = "client-session-5" if i % 2 == 0 else {"nested": "no"}
        meta["claudecode/toolUseId"] = True
    ws = mcptrace.load([_with_meta(tmp_path, "csid.jsonl", edit), TRACES])
    try:
        assert ws.sql("SELECT session_key_source, session_key FROM sessions").rows() == [
            ("clientSessionId", "client-session-5")]
        assert ws.sql("SELECT count(*) FROM calls WHERE call_key IS NOT NULL").rows()[0][0] == 0
    finally:
        ws.close()


def test_keys_of_your_own_in_priority_order(tmp_path):
    """A KeyConfig of one's own: the first key of a role that holds a string or an integer is read, in
    the configuration's order (a nested member first, then a flat one); a role with no keys reads none."""
    def edit(m, meta, i):
        meta["tenant"] = {"conv": f"conv-{i % 2}"} if i < 4 else {"conv": {"not": "a key"}}
        meta["sess"] = 7
        meta["vscode.requestId"] = "not read: no turn keys"
        if m["method"] == "tools/call":
            meta["cid"] = f"c-{i}" if i % 2 else 1.5  # a float is no key
    keys = mcptrace.KeyConfig(session_meta_keys=(("tenant", "conv"), "sess"), call_meta_keys=("cid",),
                              turn_meta_keys=(), baggage_session_keys=())
    ws = mcptrace.load([_with_meta(tmp_path, "own.jsonl", edit), TRACES], keys=keys)
    try:
        rows = ws.sql("SELECT session_key, session_key_source, count(*) FROM messages "
                      "WHERE kind = 'request' AND direction = 'client_to_server' GROUP BY ALL ORDER BY 1").rows()
        assert rows == [("7", "sess", rows[0][2]), ("conv-0", "tenant.conv", 2), ("conv-1", "tenant.conv", 2)]
        assert rows[0][2] > 0
        calls = ws.sql("SELECT m.call_key, m.call_key_source, m.turn_key, m.turn_key_source FROM calls c "
                       "JOIN messages m ON m.message_id = c.request_message_id WHERE c.method = 'tools/call' "
                       "AND c.direction = 'client_to_server' ORDER BY c.call_id").rows()
        assert calls and all(t is None and ts is None for _, _, t, ts in calls)
        assert {(k is None, src) for k, src, _, _ in calls} <= {(True, None), (False, "cid")}
        assert any(k is not None for k, _, _, _ in calls) and any(k is None for k, _, _, _ in calls)
    finally:
        ws.close()
