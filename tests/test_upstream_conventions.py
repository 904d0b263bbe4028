"""Span fixtures built from other projects' own tests (``tests/conventions/``, provenance in its README):
Logfire + pydantic-ai + FastMCP, the OTel MCP semantic conventions' examples, the C# SDK, FastMCP,
Envoy AI Gateway, Sentry, Claude Code (Langfuse's ingestion test and the documented tool span) and
agentgateway. Each span's canonical fields, as ``expected.json`` lists them from the upstream
snapshots and assertions, are what the span reader lifts into ``spans``; the Logfire fixture's wire
messages join its spans end to end.
"""

from __future__ import annotations

import collections
import json

import pytest

import mcptrace
from conftest import ROOT, read_json_lines

FIXTURES = ROOT / "tests" / "conventions"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
COLUMNS = {"method": "mcp_method_name", "tool": "gen_ai_tool_name", "request_id": "jsonrpc_request_id",
           "session_id": "mcp_session_id", "side": "mcp_side", "conversation_id": "conversation_id",
           "turn_id": "turn_id", "tool_call_id": "tool_call_id", "server_name": "mcp_server_name"}


def _span_ids(path) -> dict:
    """(name, occurrence) -> (trace-id, span-id), in file order."""
    seen: collections.Counter = collections.Counter()
    out = {}
    for req in read_json_lines(path):
        for rs in req["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    out[(s["name"], seen[s["name"]])] = (s["traceId"].lower(), s["spanId"].lower())
                    seen[s["name"]] += 1
    return out


def test_every_fixture_is_listed_with_its_provenance():
    files = sorted(p.name for p in FIXTURES.glob("*.otlp.jsonl"))
    assert files == sorted(EXPECTED) and len(files) == 8
    readme = (FIXTURES / "README.md").read_text()
    for name in files:
        assert f"`{name}`" in readme or f"`{name}`," in readme


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spans_carry_the_canonical_fields_their_instrumentation_recorded(name):
    path = FIXTURES / name
    ids = _span_ids(path)
    ws = mcptrace.load([path])
    try:
        assert ws.sql("SELECT count(*) FROM rejects").rows()[0][0] == 0
        assert ws.sql("SELECT count(*) FROM spans").rows()[0][0] == len(EXPECTED[name]) == len(ids)
        for row in EXPECTED[name]:
            trace_id, span_id = ids[(row["span"], row["index"])]
            got = dict(zip(["kind", *COLUMNS], ws.sql(
                f"SELECT kind, {', '.join(COLUMNS.values())} FROM spans WHERE trace_id = ? AND span_id = ?",
                [trace_id, span_id]).rows()[0]))
            for field in COLUMNS:
                want = None if row[field] is None else str(row[field])
                if field == "side" and want is None and got["method"] is None:
                    # a span that is no part of an MCP call keeps the side of its kind (a SERVER span
                    # continuing a call's trace joins it as its server side)
                    assert got["side"] == (got["kind"] if got["kind"] in ("server", "client") else None), row
                else:
                    assert got[field] == want, (row["span"], row["index"], field)
    finally:
        ws.close()


def test_the_logfire_pydantic_ai_capture_joins_end_to_end():
    """pydantic-ai's agent calls a FastMCP tool through Logfire's MCP instrumentation, and the server
    samples the client's model inside it (logfire tests/otel_integrations/test_pydantic_ai_mcp.py)."""
    base = FIXTURES / "logfire-pydantic-ai-mcp"
    ws = mcptrace.load([base.with_suffix(".messages.jsonl"), base.with_suffix(".otlp.jsonl")])
    try:
        spans = dict(ws.sql("SELECT span_id, name FROM spans").rows())
        roles = collections.defaultdict(dict)
        for call_id, role, matched_by, span_id in ws.sql(
                "SELECT call_id, role, matched_by, span_id FROM call_spans WHERE role <> 'downstream'").rows():
            roles[call_id][role] = (spans[span_id], matched_by)
        calls = {m: c for c, m in ws.sql("SELECT call_id, method FROM calls").rows()}
        assert roles[calls["tools/call"]] == {
            "client": ("tools/call joker", "parent"),
            "server": ("MCP server handle request: tools/call", "parent"),
            "host": ("execute_tool joker", "parent")}
        assert roles[calls["tools/list"]] == {
            "client": ("MCP request: tools/list", "parent"),
            "server": ("MCP server handle request: tools/list", "parent")}
        # the server's request to the client is answered by Logfire's "MCP client handle request" span;
        # it belongs to the server's work, not to the host's tool call above it
        assert roles[calls["sampling/createMessage"]] == {
            "client": ("MCP request: sampling/createMessage", "parent"),
            "server": ("MCP client handle request: sampling/createMessage", "parent")}
        # the LLM's tool-call id from the execute_tool span; the conversation from the baggage the
        # instrumentation put in _meta, the same id as on the agent's spans; the agent run as the turn
        tool_call_id, conversation = ws.sql(
            "SELECT tool_call_id, conversation_id FROM spans WHERE name = 'execute_tool joker'").rows()[0]
        assert ws.sql("SELECT call_key, call_key_source, request_session_key, request_session_key_source, turn_source "
                      "FROM calls WHERE method = 'tools/call'").rows() == [
            (tool_call_id, "spans.tool_call_id", conversation, "baggage gen_ai.conversation.id", "spans.turn_id")]
        assert ws.sql("SELECT count(*), min(session_key) FROM sessions").rows() == [(1, conversation)]
        assert ws.sql("SELECT count(*) FROM gaps").rows()[0][0] == 0
    finally:
        ws.close()


def test_claude_code_spans_from_langfuse_and_the_documentation():
    """Langfuse's Claude Code span loads as the plain INTERNAL span it is; the documented tool span is the
    host side, its MCP tool name without the ``mcp__<server>__`` prefix, its ``session.id`` a conversation."""
    ws = mcptrace.load([FIXTURES / "claude-code.otlp.jsonl"])
    try:
        rows = ws.sql("SELECT name, mcp_side, gen_ai_tool_name, tool_call_id, conversation_id, scope_name "
                      "FROM spans WHERE name IN ('claude_code.tool', 'claude_code.llm_request') ORDER BY start_ts").rows()
        tool = [r for r in rows if r[0] == "claude_code.tool"][0]
        assert tool[1:3] == ("host", "get_forecast") and tool[3].startswith("toolu_") and tool[4]
        assert all(r[5] == "com.anthropic.claude_code.tracing" for r in rows)
    finally:
        ws.close()
