"""Span conventions: which span attributes and span names say an MCP call's method, tool, JSON-RPC
request id and MCP session id, and which spans are the server side of a call (README: How the
correlation works).

Instrumentations name these differently (the official Python SDK, Sentry, Logfire, OpenLLMetry, ...).
The table is plain data, like :class:`mcptrace.KeyConfig`: pass your own
``mcptrace.load(..., conventions=SpanConventions(...))`` for another instrumentation. The span reader
(``sql/read_otlp_json.sql``) fills the ``spans`` columns ``mcp_method_name``, ``jsonrpc_request_id``,
``gen_ai_tool_name``, ``mcp_session_id``, ``conversation_id``, ``turn_id``, ``tool_call_id``,
``mcp_server_name`` and ``mcp_side`` from it: the first attribute present in priority order, else what
the first matching span-name pattern captured.

Each entry names its upstream source as ``repository path @commit``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcptrace.core.keys import json_path

#: an MCP method in a span name: ``initialize``, ``ping`` or slash-separated words under one of the
#: protocol's method families (``tools/call``, ``notifications/initialized``, ``resources/templates/list``,
#: 2026-07-28 ``server/discover``), so that another service's ``users/list`` is not taken for MCP
#: (modelcontextprotocol/modelcontextprotocol schema/2026-07-28/schema.ts)
METHOD_FAMILIES = ("tools", "prompts", "resources", "notifications", "sampling", "roots", "elicitation",
                   "completion", "logging", "tasks", "server")
METHOD_RE = rf"initialize|ping|(?:{'|'.join(METHOD_FAMILIES)})(?:/[A-Za-z_]+)+"
_M = rf"(?P<method>{METHOD_RE})"

# --- canonical fields: span attribute names, highest priority first ---------------------------------
#: method. ``mcp.method.name``: modelcontextprotocol/python-sdk src/mcp/server/_otel.py and
#: src/mcp/shared/jsonrpc_dispatcher.py @57394b05; getsentry/sentry-python sentry_sdk/consts.py
#: (SPANDATA.MCP_METHOD_NAME) @064542dd; getsentry/sentry-javascript
#: packages/core/src/integrations/mcp-server/attributes.ts @f7a6cc0c.
#: ``mcp.request.method``: traceloop/openllmetry-js packages/instrumentation-mcp/src/instrumentation.ts @804c6a43.
METHOD_ATTRIBUTES: tuple[str, ...] = ("mcp.method.name", "mcp.request.method")
#: JSON-RPC request id. ``jsonrpc.request.id``: python-sdk src/mcp/server/_otel.py @57394b05 (``str(id)``);
#: ``mcp.request.id``: sentry-python sentry_sdk/consts.py @064542dd, sentry-javascript
#: .../mcp-server/attributeExtraction.ts @f7a6cc0c (``String(request.id)``), traceloop/openllmetry
#: packages/opentelemetry-semantic-conventions-ai/opentelemetry/semconv_ai/__init__.py @93429cfb
#: (OpenLLMetry sets it on its ``ResponseStreamWriter`` span only).
#: ``rpc.jsonrpc.request_id``: the OTel RPC semantic conventions before ``jsonrpc.request.id`` (deprecated).
REQUEST_ID_ATTRIBUTES: tuple[str, ...] = ("jsonrpc.request.id", "mcp.request.id", "rpc.jsonrpc.request_id")
#: tool name. ``gen_ai.tool.name``: python-sdk src/mcp/server/_otel.py @57394b05; ``mcp.tool.name``:
#: sentry-python sentry_sdk/consts.py @064542dd, sentry-javascript .../mcp-server/attributes.ts @f7a6cc0c.
#: ``tool.name``: openai/codex codex-rs/core/src/mcp_tool_call.rs @002500f2; ``tool_name``: Claude Code's
#: ``claude_code.tool`` (``mcp__<server>__<tool>``, see :data:`TOOL_NAME_PREFIX`).
TOOL_ATTRIBUTES: tuple[str, ...] = ("gen_ai.tool.name", "mcp.tool.name", "tool.name", "tool_name")
#: MCP session id. ``mcp.session.id``: sentry-python sentry_sdk/consts.py @064542dd (HTTP
#: ``mcp-session-id``), sentry-javascript .../mcp-server/attributes.ts @f7a6cc0c, PrefectHQ/fastmcp
#: src/fastmcp/server/telemetry.py @743ddffd, agentgateway crates/agentgateway/src/telemetry/log.rs @75b4e6ce.
SESSION_ATTRIBUTES: tuple[str, ...] = ("mcp.session.id",)
#: the host's conversation (joins logical sessions), most common first. ``gen_ai.conversation.id``: OTel
#: GenAI semantic conventions; pydantic/pydantic-ai pydantic_ai/_instrumentation.py @4fda3898 (agent and
#: tool spans), microsoft/vscode-copilot-chat src/platform/otel/common/genAiAttributes.ts @31acd00a,
#: google/adk-python src/google/adk/telemetry/tracing.py @692af950. ``session.id``: Claude Code (every
#: span; code.claude.com/docs/en/monitoring-usage), OpenInference, Langfuse v4 (langfuse/langfuse
#: packages/shared/src/server/otel/OtelIngestionProcessor.ts). ``conversation.id``: openai/codex
#: codex-rs/core/src/mcp_tool_call.rs @002500f2 (span ``mcp.tools.call``). ``langfuse.session.id``:
#: Langfuse SDKs, IBM/mcp-context-forge @ecba50e4. ``gcp.vertex.agent.session_id``: adk-python @692af950.
CONVERSATION_ATTRIBUTES: tuple[str, ...] = ("gen_ai.conversation.id", "session.id", "conversation.id",
                                            "langfuse.session.id", "gcp.vertex.agent.session_id")
#: the host's turn (one user request). ``turn.id``: codex mcp_tool_call.rs @002500f2; ``gen_ai.agent.call.id``
#: (one agent run): pydantic-ai _instrumentation.py @4fda3898.
TURN_ATTRIBUTES: tuple[str, ...] = ("turn.id", "gen_ai.agent.call.id")
#: the LLM's tool-call id. ``gen_ai.tool.call.id``: GenAI semantic conventions; pydantic-ai, Copilot Chat,
#: ADK (above), Claude Code ``claude_code.tool``; ``tool_use_id``: Claude Code (monitoring-usage doc);
#: ``tool.call_id``: codex mcp_tool_call.rs @002500f2.
TOOL_CALL_ATTRIBUTES: tuple[str, ...] = ("gen_ai.tool.call.id", "tool_use_id", "tool.call_id")
#: the MCP server. ``mcp.server.name``: sentry-javascript attributes.ts @f7a6cc0c, codex @002500f2,
#: docker/mcp-gateway pkg/telemetry/telemetry.go @2bd20fe8; ``mcp.target``: agentgateway
#: crates/agentgateway/src/telemetry/log.rs @75b4e6ce; ``mcp.backend.name``: envoyproxy/ai-gateway
#: internal/tracing/mcp.go @c217da8a; ``fastmcp.server.name``: fastmcp @743ddffd;
#: ``traceloop.workflow.name`` (``{server}.mcp``, suffix dropped): openllmetry .../fastmcp_instrumentation.py @93429cfb.
SERVER_NAME_ATTRIBUTES: tuple[str, ...] = ("mcp.server.name", "mcp.target", "mcp.backend.name", "fastmcp.server.name",
                                           "traceloop.workflow.name")
#: kept as data (not read yet): ``error.type``: python-sdk src/mcp/server/_otel.py @57394b05;
#: ``mcp.tool.result.is_error``: sentry-javascript attributes.ts @f7a6cc0c.
ERROR_ATTRIBUTES: tuple[str, ...] = ("error.type", "mcp.tool.result.is_error")
#: removed from the start of a tool name read from any attribute: Claude Code names MCP tools
#: ``mcp__<server>__<tool>`` (``tool_name`` of ``claude_code.tool``; monitoring-usage doc)
TOOL_NAME_PREFIX = r"^mcp__.+?__"
#: removed from the end of a server name: OpenLLMetry's workflow name is ``{server}.mcp``
SERVER_NAME_SUFFIX = r"\.mcp$"
#: (attribute, value, side): a span with that attribute value is that side of an MCP call when no name
#: pattern gives it a side and it is not an MCP span of kind SERVER or CLIENT (first match wins).
#: ``gen_ai.operation.name``=execute_tool: the host's tool execution in the GenAI semantic conventions
#: (pydantic-ai, Copilot Chat, ADK, the OpenAI Agents instrumentation, LangSmith's OTel export);
#: ``sentry.op``: Sentry's MCP server spans have no span kind (INTERNAL in OTLP): ``mcp.server`` for a
#: request, ``mcp.notification.client_to_server`` received, ``.server_to_client`` sent
#: (getsentry/sentry-javascript packages/core/src/integrations/mcp-server/spans.ts @f7a6cc0c,
#: getsentry/sentry-python sentry_sdk/integrations/mcp.py @064542dd).
SIDE_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("gen_ai.operation.name", "execute_tool", "host"),
    ("sentry.op", "mcp.server", "server"),
    ("sentry.op", "mcp.notification.client_to_server", "server"),
    ("sentry.op", "mcp.notification.server_to_client", "client"),
)
#: a request id written ``{id}``: Go's ``%v`` of the go-sdk ``jsonrpc.ID`` struct (envoyproxy/ai-gateway
#: internal/tracing/mcp_otel.go and mcp_legacy.go @c217da8a: ``fmt.Sprintf("%v", req.ID)``, asserted as
#: ``{test-id}`` in internal/tracing/mcp_test.go); group 1 is the id
REQUEST_ID_WRAPPER = r"^\{([^{}]*)\}$"


@dataclass(frozen=True)
class NamePattern:
    """A span-name pattern: ``regex`` must match the whole name (Python ``re`` and DuckDB's RE2 both
    accept it) and may capture the named groups ``method`` and ``tool`` (a captured ``tool`` counts for
    ``tools/call`` and host spans only; for other methods the target is a prompt or resource). ``method`` is
    the method when the name does not carry it. ``side``: ``'server'`` or ``'client'`` when a matching span
    is that side of the call whatever its kind, ``'host'`` for the agent's tool-execution span that causes
    calls, None to go by the span kind. ``requires``: (attribute, value)
    pairs that must hold too (value None: present). ``json_attribute``: an attribute holding the
    JSON-RPC request as JSON text, read at :attr:`SpanConventions.json_paths`. ``source``: where the
    instrumentation writes such names (repository, file, commit)."""

    regex: str
    method: str | None = None
    side: str | None = None
    requires: tuple[tuple[str, str | None], ...] = ()
    json_attribute: str | None = None
    source: str = ""


#: Docker MCP Gateway span names and the MCP method each stands for (docker/mcp-gateway
#: pkg/telemetry/telemetry.go @2bd20fe8)
DOCKER_GATEWAY_SPANS = {"mcp.tool.call": "tools/call", "mcp.prompt.get": "prompts/get",
                        "mcp.resource.read": "resources/read", "mcp.initialize": "initialize",
                        "mcp.list.tools": "tools/list"}

#: span-name patterns, first match wins
NAME_PATTERNS: tuple[NamePattern, ...] = (
    NamePattern(rf"MCP send {_M}(?: (?P<tool>.+))?", side="client",
                source="modelcontextprotocol/python-sdk src/mcp/shared/jsonrpc_dispatcher.py @57394b05"),
    NamePattern(rf"MCP handle {_M}(?: (?P<tool>.+))?", side="server",
                source="modelcontextprotocol/python-sdk src/mcp/server/_otel.py @ad81ca23 (v2 pre-release)"),
    NamePattern(rf"MCP server handle request: {_M}", side="server", json_attribute="request",
                source="pydantic/logfire logfire/_internal/integrations/mcp.py @e484a6b5"),
    # the client answering a server-to-client request is the receiving (server) side of that call
    NamePattern(rf"MCP client handle request: {_M}", side="server", json_attribute="request",
                source="pydantic/logfire logfire/_internal/integrations/mcp.py @e484a6b5"),
    NamePattern(rf"MCP request: {_M}(?: (?P<tool>.+))?", side="client",
                source="pydantic/logfire logfire/_internal/integrations/mcp.py @e484a6b5"),
    # the host's tool execution: GenAI semantic conventions ``execute_tool {gen_ai.tool.name}``
    # (pydantic-ai, ADK, Copilot Chat), Claude Code's ``claude_code.tool``
    NamePattern(r"execute_tool (?P<tool>.+)", side="host",
                source="pydantic/pydantic-ai pydantic_ai/_instrumentation.py @4fda3898; google/adk-python "
                       "src/google/adk/telemetry/tracing.py @692af950; microsoft/vscode-copilot-chat "
                       "src/extension/tools/vscode-node/toolsService.ts @31acd00a"),
    NamePattern(r"claude_code\.tool", side="host", source="code.claude.com/docs/en/monitoring-usage (Claude Code traces)"),
    # FastMCP server tool span (a child of ``mcp.server``), with the server's workflow name
    NamePattern(r"(?P<tool>.+)\.tool", method="tools/call", side="server",
                requires=(("traceloop.span.kind", "tool"), ("traceloop.workflow.name", None)),
                source="traceloop/openllmetry packages/opentelemetry-instrumentation-mcp/"
                       "opentelemetry/instrumentation/mcp/fastmcp_instrumentation.py @93429cfb"),
    NamePattern(r"mcp\.server", method="tools/call", side="server", requires=(("traceloop.span.kind", "server"),),
                source="traceloop/openllmetry .../instrumentation/mcp/fastmcp_instrumentation.py @93429cfb"),
    # the sender's span (BaseSession.send_request)
    NamePattern(r"(?P<tool>.+)\.tool", method="tools/call", side="client", requires=(("traceloop.span.kind", "tool"),),
                source="traceloop/openllmetry .../instrumentation/mcp/instrumentation.py @93429cfb"),
    NamePattern(rf"{_M}\.mcp", side="client",
                source="traceloop/openllmetry .../instrumentation/mcp/instrumentation.py @93429cfb"),
    # Codex's client span (Rust tracing, otel.kind client)
    NamePattern(r"mcp\.tools\.call", method="tools/call", side="client",
                source="openai/codex codex-rs/core/src/mcp_tool_call.rs @002500f2"),
    # Docker MCP Gateway's spans toward its servers
    *(NamePattern(re.escape(name), method=method, side="client",
                  source="docker/mcp-gateway pkg/telemetry/telemetry.go @2bd20fe8")
      for name, method in DOCKER_GATEWAY_SPANS.items()),
    # OpenTelemetry semantic conventions ``{mcp.method.name} {target}``: the SDK's server span,
    # Sentry, FastMCP, agentgateway (there the target is the backend)
    NamePattern(rf"{_M}(?: (?P<tool>.+))?",
                source="modelcontextprotocol/python-sdk src/mcp/server/_otel.py @57394b05; getsentry/sentry-python "
                       "sentry_sdk/integrations/mcp.py @064542dd; getsentry/sentry-javascript "
                       "packages/core/src/integrations/mcp-server/spans.ts @f7a6cc0c"),
)

#: where a ``json_attribute`` holds (request id, method, tool name): Logfire's ``request`` attribute is
#: the request model dumped to JSON, ``id`` included on the receiving side (pydantic/logfire
#: tests/otel_integrations/test_pydantic_ai_mcp.py @e484a6b5)
JSON_PATHS: tuple[str, str, str] = ("$.id", "$.method", "$.params.name")


def normalise_request_id(value: object) -> str | None:
    """A JSON-RPC id (int or str, or its JSON text) as the text ``spans.jsonrpc_request_id`` holds and
    ``call_spans.sql`` compares with ``coalesce((rpc_id::JSON)->>'$', rpc_id)``: an integer in decimal,
    a string unquoted. ``1``, ``"1"`` and ``'1'`` all give ``'1'``; None gives None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _renumber(regex: str, i: int) -> tuple[str, list[str]]:
    """``regex`` with its named groups renamed ``m{i}``/``t{i}``, and the names it has."""
    names = [g for g in ("method", "tool") if f"(?P<{g}>" in regex]
    for g in names:
        regex = regex.replace(f"(?P<{g}>", f"(?P<{g[0]}{i}>")
    return regex, [f"{g[0]}{i}" for g in names]


#: The DuckDB types of :meth:`SpanConventions.sql_variables`.
SQL_VARIABLE_TYPES = {
    "mcptrace_span_attr_paths": "VARCHAR[]",
    "mcptrace_span_fields": "STRUCT(m INTEGER[], r INTEGER[], t INTEGER[], s INTEGER[], c INTEGER[], u INTEGER[], "
                            "k INTEGER[], n INTEGER[])",
    "mcptrace_span_side_pos": "INTEGER[]", "mcptrace_span_side_val": "VARCHAR[]", "mcptrace_span_side": "VARCHAR[]",
    "mcptrace_span_id_wrapper": "VARCHAR",
    "mcptrace_span_tool_prefix": "VARCHAR", "mcptrace_span_server_suffix": "VARCHAR",
    "mcptrace_span_name_re": "VARCHAR", "mcptrace_span_name_groups": "VARCHAR[]",
    "mcptrace_span_name_group_paths": "VARCHAR[]", "mcptrace_span_json_paths": "VARCHAR[]",
    "mcptrace_span_name_alts": "STRUCT(p INTEGER, m INTEGER, t INTEGER, method VARCHAR, side VARCHAR, "
                               "req_pos INTEGER[], req_val VARCHAR[], j INTEGER)[]",
}


@dataclass(frozen=True)
class SpanConventions:
    """The span attributes (priority order) and span-name patterns read for each canonical field.
    Defaults are the module constants; see each one's source."""

    method_attributes: tuple[str, ...] = METHOD_ATTRIBUTES
    request_id_attributes: tuple[str, ...] = REQUEST_ID_ATTRIBUTES
    tool_attributes: tuple[str, ...] = TOOL_ATTRIBUTES
    session_attributes: tuple[str, ...] = SESSION_ATTRIBUTES
    conversation_attributes: tuple[str, ...] = CONVERSATION_ATTRIBUTES
    turn_attributes: tuple[str, ...] = TURN_ATTRIBUTES
    tool_call_attributes: tuple[str, ...] = TOOL_CALL_ATTRIBUTES
    server_name_attributes: tuple[str, ...] = SERVER_NAME_ATTRIBUTES
    error_attributes: tuple[str, ...] = ERROR_ATTRIBUTES
    name_patterns: tuple[NamePattern, ...] = NAME_PATTERNS
    json_paths: tuple[str, str, str] = JSON_PATHS
    tool_name_prefix: str = TOOL_NAME_PREFIX
    server_name_suffix: str = SERVER_NAME_SUFFIX
    side_attributes: tuple[tuple[str, str, str], ...] = SIDE_ATTRIBUTES
    request_id_wrapper: str = REQUEST_ID_WRAPPER

    def parse_name(self, name: str, attributes: dict | None = None) -> tuple[str, str | None, str | None] | None:
        """Python reference of the SQL: ``(method, tool, side)`` from the first pattern matching the
        whole ``name`` whose ``requires`` hold in ``attributes``; None when none matches. As in SQL, where the
        patterns are one alternation, only patterns with the same regex as the first whose regex matches are
        tried (patterns differing only in ``requires`` share one alternative)."""
        attributes = attributes or {}
        first = next((p.regex for p in self.name_patterns if re.fullmatch(p.regex, name)), None)
        for p in self.name_patterns:
            m = re.fullmatch(p.regex, name) if p.regex == first else None
            if m is None or not all(k in attributes and (v is None or str(attributes[k]) == v) for k, v in p.requires):
                continue
            g = m.groupdict()
            method = g.get("method") or p.method
            tool = g.get("tool") if method == "tools/call" or p.side == "host" else None
            return method, tool, p.side
        return None

    def sql_variables(self) -> dict[str, tuple[object, str]]:
        """The DuckDB variables ``sql/read_otlp_json.sql`` reads with ``getvariable``, as
        ``{name: (value, DuckDB type)}`` (:data:`SQL_VARIABLE_TYPES`; the loader sets each with ``SET VARIABLE``):
        ``mcptrace_span_attr_paths`` (VARCHAR[]: the attribute paths, read in one ``json_extract_string``),
        ``mcptrace_span_fields`` (STRUCT of 1-based [from, to) slices of that list: m method, r request id,
        t tool, s session, c conversation, u turn, k tool call, n server name),
        ``mcptrace_span_name_re`` (the patterns as one alternation, groups renamed ``p{i}``, ``m{i}``, ``t{i}``),
        ``mcptrace_span_name_groups`` (its group names) and ``_paths`` (their JSON paths),
        ``mcptrace_span_name_alts`` (per pattern: positions of its groups in that list, fixed method,
        side, required attribute positions and values, JSON attribute position),
        ``mcptrace_span_json_paths`` (:attr:`json_paths`), ``mcptrace_span_side_pos``/``_val`` and
        ``mcptrace_span_side`` (the attribute positions, values and sides of :attr:`side_attributes`),
        ``mcptrace_span_tool_prefix`` and ``mcptrace_span_server_suffix`` (patterns removed from tool and
        server names), ``mcptrace_span_id_wrapper`` (:attr:`request_id_wrapper`)."""
        paths: list[str] = []
        bounds = {}
        for key, attrs in (("m", self.method_attributes), ("r", self.request_id_attributes),
                           ("t", self.tool_attributes), ("s", self.session_attributes),
                           ("c", self.conversation_attributes), ("u", self.turn_attributes),
                           ("k", self.tool_call_attributes), ("n", self.server_name_attributes)):
            lo = len(paths) + 1
            paths += [json_path(a) for a in attrs]
            bounds[key] = [lo, len(paths) + 1]

        def attr_pos(a: str) -> int:
            if json_path(a) not in paths:
                paths.append(json_path(a))
            return paths.index(json_path(a)) + 1

        alts, groups, parts, seen = [], [], [], {}
        for n, p in enumerate(self.name_patterns):
            i = seen.setdefault(p.regex, n)  # patterns with one regex share its alternative
            regex, names = _renumber(p.regex, i)
            if i == n:
                parts.append(f"(?P<p{i}>{regex})")
                groups += [f"p{i}", *names]
            alts.append({
                "p": groups.index(f"p{i}") + 1,
                "m": groups.index(f"m{i}") + 1 if f"m{i}" in names else 0,
                "t": groups.index(f"t{i}") + 1 if f"t{i}" in names else 0,
                "method": p.method, "side": p.side,
                "req_pos": [attr_pos(k) for k, _ in p.requires], "req_val": [v for _, v in p.requires],
                "j": attr_pos(p.json_attribute) if p.json_attribute else 0,
            })
        values = {
            "mcptrace_span_attr_paths": paths,
            "mcptrace_span_fields": bounds,
            "mcptrace_span_name_re": "^(?:" + "|".join(parts) + ")$",
            "mcptrace_span_name_groups": groups,
            "mcptrace_span_name_group_paths": [f"$.{g}" for g in groups],
            "mcptrace_span_name_alts": alts,
            "mcptrace_span_json_paths": list(self.json_paths),
            "mcptrace_span_side_pos": [attr_pos(k) for k, _, _ in self.side_attributes],
            "mcptrace_span_side_val": [v for _, v, _ in self.side_attributes],
            "mcptrace_span_side": [side for _, _, side in self.side_attributes],
            "mcptrace_span_id_wrapper": self.request_id_wrapper or "^$x",
            "mcptrace_span_tool_prefix": self.tool_name_prefix or "^$x",
            "mcptrace_span_server_suffix": self.server_name_suffix or "^$x",
        }
        return {name: (value, SQL_VARIABLE_TYPES[name]) for name, value in values.items()}
