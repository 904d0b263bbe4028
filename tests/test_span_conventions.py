"""Span conventions (mcptrace.core.conventions): the real SDK sample spans rewritten the way other
instrumentations write their server spans join their calls as the originals do.

The rewrites follow the instrumentations' own code (sources in mcptrace/core/conventions.py):
  sentry     getsentry/sentry-python sentry_sdk/integrations/mcp.py @064542dd, getsentry/sentry-javascript
             packages/core/src/integrations/mcp-server/ @f7a6cc0c: span ``{method}[ {target}]``,
             ``mcp.method.name``, ``mcp.request.id`` (text), ``mcp.tool.name``; kind kept (SERVER).
  sentry_no_method  the same without ``mcp.method.name`` (the method comes from the span name).
  logfire    pydantic/logfire logfire/_internal/integrations/mcp.py @e484a6b5: INTERNAL span
             ``MCP server handle request: {method}`` whose only MCP data is the ``request`` attribute
             (the JSON-RPC request as JSON text, ``id`` included: tests/otel_integrations/
             test_pydantic_ai_mcp.py there).
  openllmetry  traceloop/openllmetry .../instrumentation/mcp/fastmcp_instrumentation.py @93429cfb:
             INTERNAL ``{tool}.tool`` with ``traceloop.span.kind``=tool, ``traceloop.entity.name``,
             ``traceloop.workflow.name``=``{server}.mcp``; it has no request id, and only tools/call
             gets a span there, so other server spans stay as the SDK wrote them.
"""

from __future__ import annotations

import json
import re

import duckdb
import pytest

import mcptrace
from conftest import ROOT, SAMPLES, read_json_lines
from mcptrace.core.conventions import NAME_PATTERNS, SpanConventions, normalise_request_id

TRACES = SAMPLES / "traces.otlp.jsonl"
MESSAGES = sorted(p for p in SAMPLES.glob("*.jsonl") if p != TRACES)


def _attrs(span: dict) -> dict:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


def _kv(d: dict) -> list[dict]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in d.items()]


def _rewrite_span(span: dict, style: str, service: str) -> None:
    a = _attrs(span)
    method, rid, tool = a["mcp.method.name"], a.get("jsonrpc.request.id"), a.get("gen_ai.tool.name")
    if style in ("sentry", "sentry_no_method"):
        new = {} if style == "sentry_no_method" else {"mcp.method.name": method}
        if rid is not None:
            new["mcp.request.id"] = rid
        if tool is not None:
            new["mcp.tool.name"] = tool
        new["mcp.transport"] = "stdio"
        span["attributes"] = _kv(new)
    elif style == "logfire":
        request = {"method": method, "params": {"name": tool} if tool else None, "jsonrpc": "2.0",
                   "id": int(rid) if rid and rid.isdigit() else rid}
        name = f"MCP server handle request: {method}"
        span.update(name=name, kind=1, attributes=_kv({
            "request": json.dumps(request), "logfire.msg_template": name, "logfire.msg": name,
            "logfire.span_type": "span"}))
    elif style == "fastmcp":
        new = {"mcp.method.name": method, "fastmcp.server.name": service, "mcp.protocol.version": "2026-07-28"}
        if tool is not None:
            new.update({"gen_ai.tool.name": tool, "fastmcp.component.type": "tool",
                        "fastmcp.component.key": f"tool:{tool}@"})
        span["attributes"] = _kv(new)
    elif style == "agentgateway":
        # the gateway's span toward its backend (target): ``{method} {target}``, for a multiplexed tool
        # ``{method} {target}_{tool}``; the tool attribute holds the backend's own name
        new = {"mcp.method.name": method, "mcp.target": service}
        if tool is not None:
            new["gen_ai.tool.name"] = tool
            new["mcp.resource.type"] = "tool"
        span.update(name=f"{method} {service}_{tool}" if tool else f"{method} {service}", attributes=_kv(new))
    elif style == "openllmetry" and method == "tools/call":
        span.update(name=f"{tool}.tool", kind=1, attributes=_kv({
            "traceloop.span.kind": "tool", "traceloop.entity.name": tool,
            "traceloop.workflow.name": f"{service}.mcp"}))


def rewritten(tmp_path, style: str, traces=None):
    """The trace file (the samples' by default) with the official SDK's server spans written in ``style``."""
    traces = traces or TRACES
    lines = []
    for req in read_json_lines(traces):
        for rs in req["resourceSpans"]:
            service = next((a["value"]["stringValue"] for a in rs["resource"]["attributes"]
                            if a["key"] == "service.name"), "")
            for ss in rs["scopeSpans"]:
                if ss["scope"].get("name") != "mcp-python-sdk":
                    continue
                for s in ss["spans"]:
                    if s.get("kind") == 2:
                        _rewrite_span(s, style, service)
        lines.append(json.dumps(req))
    path = tmp_path / f"{traces.name.removesuffix('.otlp.jsonl')}_{style}.otlp.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _joins(ws) -> dict:
    return {
        "call_spans": sorted(ws.sql("SELECT call_id, span_id, role, matched_by FROM call_spans").rows()),
        "traces": sorted(ws.sql("SELECT call_id, trace_id FROM call_spans").rows()),
        "gaps": sorted(map(str, ws.sql("SELECT * EXCLUDE (gap_id) FROM gaps").rows()))
        if "gap_id" in ws.sql("SELECT * FROM gaps LIMIT 0").columns else
        sorted(map(str, ws.sql("SELECT * FROM gaps").rows())),
    }


@pytest.fixture(scope="module")
def original():
    ws = mcptrace.load([*MESSAGES, TRACES])
    yield _joins(ws), ws.sql("SELECT c.call_id, c.method, s.matched_by FROM call_spans s JOIN calls c USING (call_id) "
                             "WHERE s.role = 'server'").rows()
    ws.close()


@pytest.mark.parametrize("style", ["sentry", "sentry_no_method", "logfire", "fastmcp", "agentgateway", "openllmetry"])
def test_rewritten_server_spans_join_as_the_originals(tmp_path, original, style):
    """Every instrumentation's server spans give the same joins, trace ids and gaps: those without a
    request id (FastMCP, OpenLLMetry) join by parent where the server continued the ``_meta`` context and
    by method, tool and time where it did not."""
    ws = mcptrace.load([*MESSAGES, rewritten(tmp_path, style)])
    try:
        got = _joins(ws)
        assert got["call_spans"] == original[0]["call_spans"]
        assert got["traces"] == original[0]["traces"]
        assert got["gaps"] == original[0]["gaps"]
        if style in ("fastmcp", "agentgateway", "openllmetry"):
            # OpenLLMetry writes tools/call spans only; the other server spans keep the SDK's request id
            idless = [json.loads(e)["matched_on"] for e, m in ws.sql(
                "SELECT s.evidence, c.method FROM call_spans s JOIN calls c USING (call_id) "
                "WHERE s.matched_by = 'attributes'").rows() if style in ("fastmcp", "agentgateway") or m == "tools/call"]
            assert idless and all("jsonrpc.request.id" not in m and "mcp.method.name" in m for m in idless)
        if style == "openllmetry":  # INTERNAL server tool spans continuing the _meta context join by parent
            assert ws.sql("SELECT count(*) FROM call_spans s JOIN spans p USING (span_id, trace_id) "
                          "WHERE s.role = 'server' AND p.kind = 'internal' AND s.matched_by = 'parent'").rows()[0][0] > 0
    finally:
        ws.close()


INCIDENTS = ROOT / "data" / "incidents"


def _incident_joins(ws) -> dict:
    """Joins and gaps of a load; the gaps without what differs by design: the span names their evidence
    quotes (the instrumentation's own) and, for an attribute join, what matched and the candidates weighed
    (a span without a request id has more candidates)."""
    drop = json.dumps(dict.fromkeys(["name", "matched_on", "rule", "candidate_span_ids", "n_candidate_spans",
                                     "n_calls_fitting_span"]))
    gaps = ws.sql("SELECT code, session_id, call_id, message_id, trace_id, span_id, "
                  "json_merge_patch(detail, ?::JSON)::VARCHAR FROM gaps", [drop]).rows()
    return {"call_spans": sorted(ws.sql("SELECT call_id, span_id, role, matched_by FROM call_spans").rows()),
            "traces": sorted(ws.sql("SELECT call_id, trace_id FROM calls").rows()), "gaps": sorted(map(str, gaps))}


@pytest.fixture(scope="module")
def incidents():
    traces = sorted(INCIDENTS.glob("*.otlp.jsonl"))
    messages = [p.with_name(p.name.removesuffix(".otlp.jsonl") + ".jsonl") for p in traces]
    ws = mcptrace.load([*messages, *traces])
    yield messages, traces, _incident_joins(ws)
    ws.close()


@pytest.mark.parametrize("style", ["sentry", "logfire", "fastmcp", "agentgateway", "openllmetry"])
def test_every_incident_capture_joins_the_same_in_every_convention(tmp_path, incidents, style):
    """All incident captures (servers that do and do not extract the trace context, colliding request ids
    across concurrent sessions, reconnects, resumable HTTP, spans exported twice) with their server spans
    rewritten: the same joins, trace ids and gaps as with the SDK's attributes."""
    messages, traces, want = incidents
    ws = mcptrace.load([*messages, *(rewritten(tmp_path, style, t) for t in traces)])
    try:
        got = _incident_joins(ws)
        assert got["call_spans"] == want["call_spans"]
        assert got["traces"] == want["traces"]
        assert got["gaps"] == want["gaps"]
    finally:
        ws.close()


# -- the name patterns: Python and DuckDB agree ------------------------------------------------------
NAMES = [
    ("tools/call get_forecast", {}, ("tools/call", "get_forecast", None)),
    ("prompts/get greet", {}, ("prompts/get", None, None)),
    ("initialize", {}, ("initialize", None, None)),
    ("MCP send tools/call divide", {}, ("tools/call", "divide", "client")),
    ("MCP send tools/list", {}, ("tools/list", None, "client")),
    ("MCP handle tools/call divide", {}, ("tools/call", "divide", "server")),
    ("MCP server handle request: tools/call", {}, ("tools/call", None, "server")),
    ("MCP client handle request: sampling/createMessage", {}, ("sampling/createMessage", None, "server")),
    ("MCP request: tools/call joker", {}, ("tools/call", "joker", "client")),
    ("get_weather.tool", {"traceloop.span.kind": "tool", "traceloop.workflow.name": "w.mcp"},
     ("tools/call", "get_weather", "server")),
    ("get_weather.tool", {"traceloop.span.kind": "tool"}, ("tools/call", "get_weather", "client")),
    ("get_weather.tool", {}, None),
    ("mcp.server", {"traceloop.span.kind": "server"}, ("tools/call", None, "server")),
    ("mcp.server", {}, None),
    ("tools/list.mcp", {}, ("tools/list", None, "client")),
    ("GET /forecast", {}, None),
    ("users/list", {}, None),
    ("billing/charge card", {}, None),
    ("server/discover", {}, ("server/discover", None, None)),
    ("resources/templates/list", {}, ("resources/templates/list", None, None)),
    ("execute_tool get_forecast", {}, (None, "get_forecast", "host")),
    ("claude_code.tool", {}, (None, None, "host")),
    ("claude_code.tool.execution", {}, None),
    ("mcp.tools.call", {}, ("tools/call", None, "client")),
    ("mcp.tool.call", {}, ("tools/call", None, "client")),
    ("mcp.list.tools", {}, ("tools/list", None, "client")),
    ("turn 1", {}, None),
    ("session", {}, None),
]


@pytest.mark.parametrize("name,attrs,want", NAMES)
def test_name_patterns_in_python(name, attrs, want):
    assert SpanConventions().parse_name(name, attrs) == want


def test_name_patterns_in_duckdb_agree_with_python(tmp_path):
    """The reader's SQL on one span per name gives what the Python reference gives."""
    spans = [{"traceId": "%032x" % (i + 1), "spanId": "%016x" % (i + 1), "name": n, "kind": 1,
              "startTimeUnixNano": "1795316142468549835", "endTimeUnixNano": "1795316142468837930",
              "attributes": _kv(a)} for i, (n, a, _) in enumerate(NAMES)]
    req = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}
    p = tmp_path / "names.otlp.jsonl"
    p.write_text(json.dumps(req) + "\n")
    w = mcptrace.load([p])
    rows = {int(sid, 16) - 1: r for sid, *r in w.sql(
        "SELECT span_id, mcp_method_name, gen_ai_tool_name, mcp_side FROM spans").rows()}
    w.close()
    for i, (name, attrs, want) in enumerate(NAMES):
        side = want[2] if want else None
        assert tuple(rows[i]) == ((want[0], want[1], side) if want else (None, None, None)), name


def test_every_pattern_compiles_in_python_and_re2():
    con = duckdb.connect()
    for p in NAME_PATTERNS:
        re.compile(p.regex)
        con.execute("SELECT regexp_full_match('x', ?)", [p.regex])
        assert p.source


@pytest.mark.parametrize("value,want", [(1, "1"), ("1", "1"), (1.0, "1"), ("abc", "abc"), (None, None)])
def test_request_ids_normalise_as_the_join_compares_them(value, want):
    assert normalise_request_id(value) == want
    if value is not None:
        rpc_id = json.dumps(value if not isinstance(value, float) else int(value))
        assert duckdb.connect().execute("SELECT coalesce((?::JSON)->>'$', ?)", [rpc_id, rpc_id]).fetchone()[0] == want


def test_the_conventions_reach_the_load_through_the_library_facade():
    """``conventions=`` of mcptrace.load and Workspace.load is the table the span reader uses: a table
    without the request-id attributes leaves the spans without one."""
    from mcptrace import SpanConventions, load

    default = load(SAMPLES / "traces.otlp.jsonl")
    no_ids = load(SAMPLES / "traces.otlp.jsonl", conventions=SpanConventions(request_id_attributes=()))
    q = "SELECT count(*) FROM spans WHERE jsonrpc_request_id IS NOT NULL"
    assert default.sql(q).rows()[0][0] > 0 and no_ids.sql(q).rows()[0][0] == 0
