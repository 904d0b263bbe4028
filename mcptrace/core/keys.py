"""Correlation keys looked up in ``params._meta`` and HTTP headers (README: How the correlation works).

The lists are ordered by priority: the first key present decides. They are plain data so
callers can pass their own (``mcptrace.load(..., session_keys=[...])``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A key is a top-level ``_meta`` member (``"threadId"``) or a path of members into an object held
#: there (``("x-codex-turn-metadata", "thread_id")``). Each list is ordered by priority: the first key a
#: request carries decides; its name (members joined by ``.``) is the key's source in the tables.
MetaKey = str | tuple[str, ...]

#: ``_meta`` keys naming a host's logical session (conversation), highest priority first.
SESSION_META_KEYS: tuple[MetaKey, ...] = (
    # VS Code's chat session (microsoft/vscode src/vs/workbench/contrib/mcp/common/mcpServer.ts)
    "vscode.conversationId",
    # ChatGPT / OpenAI Apps SDK hosts; servers read it (openai/openai-apps-sdk-examples)
    "openai/session",
    # Codex: with_mcp_tool_call_thread_id_meta, and the turn metadata object of
    # build_mcp_tool_call_request_meta (openai/codex codex-rs/core/src/mcp_tool_call.rs @002500f2,
    # codex-rs/core/src/turn_metadata.rs: an object, not a string)
    "threadId",
    ("x-codex-turn-metadata", "thread_id"),
    ("x-codex-turn-metadata", "session_id"),
    # OpenCode (prefixed and bare forms are both quoted by servers that read it)
    "ai.opencode/sessionID",
    "sessionID",
    # draft SEP-2822 (client session id, header Mcp-Client-Session-Id): unprefixed, and the prefixed
    # form some early clients sent
    "clientSessionId",
    "io.modelcontextprotocol/clientSessionId",
    # no producer found in public code; kept for hosts that follow the openai/session pattern
    "anthropic/session",
)
#: W3C ``baggage`` members (in ``_meta.baggage``, SEP-414) naming the logical session. pydantic-ai puts
#: ``gen_ai.conversation.id`` in OTel baggage (pydantic/pydantic-ai pydantic_ai/_instrumentation.py
#: @4fda3898, CONVERSATION_ID_BAGGAGE_KEY), and Logfire, OpenInference and agentgateway inject baggage
#: into ``_meta``. The same id on spans (``gen_ai.conversation.id``) joins the same session.
BAGGAGE_SESSION_KEYS: tuple[str, ...] = ("gen_ai.conversation.id",)
#: ``_meta`` keys naming the host's tool call (the LLM tool-use id).
CALL_META_KEYS: tuple[MetaKey, ...] = (
    # Claude Code tools/call (not documented; equals its span attribute tool_use_id)
    "claudecode/toolUseId",
    # Codex, newest versions: the model's call id (openai/codex build_mcp_tool_call_request_meta)
    "callId",
    ("_codex_apps", "call_id"),
    # no producer found in public code; harmless fallbacks
    "copilot/toolCallId",
    "gen_ai.tool.call.id",
)
#: ``_meta`` keys naming the host's turn (one user request; every tool call it causes shares it).
TURN_META_KEYS: tuple[MetaKey, ...] = (
    # VS Code's chat request id: one per request, shared by its tool calls (mcpServer.ts)
    "vscode.requestId",
    # Codex's turn (openai/codex codex-rs/core/src/turn_metadata.rs)
    ("x-codex-turn-metadata", "turn_id"),
)


def key_name(key: MetaKey) -> str:
    """The name a key's source is given in the tables: the member, or the members joined by ``.``."""
    return key if isinstance(key, str) else ".".join(key)


def meta_path(key: MetaKey) -> str:
    """The DuckDB JSON path of ``key`` under ``params._meta``."""
    members = (key,) if isinstance(key, str) else key
    return "$.params._meta" + "".join(json_path(m)[1:] for m in members)


def baggage_pattern(member: str) -> str:
    """An RE2 pattern whose group 1 is the (percent-encoded) value of ``member`` in a W3C ``baggage``
    header value (``key=value;property,key2=value2``, optional whitespace around ``,`` ``=`` ``;``)."""
    return r"(?:^|,)[ \t]*" + re.escape(member) + r"[ \t]*=[ \t]*([^,;]*?)[ \t]*(?:[;,]|$)"


#: Paths every message is read at, in the order ``sql/messages.sql`` numbers them.
MESSAGE_PATHS: tuple[str, ...] = (
    "$.id", "$.method", "$.params.name", "$.params._meta", "$.params.progressToken",
    "$.params.requestId", "$.result.isError", "$.error.code", "$.error.message",
    "$.params.clientInfo.name", "$.params.clientInfo.version", "$.params.protocolVersion",
    "$.result.serverInfo.name", '$.result._meta."io.modelcontextprotocol/serverInfo".name',
    "$.result.resultType", "$.result.requestState", "$.params.requestState",
    "$.params._meta.traceparent", "$.params._meta.tracestate", "$.params._meta.progressToken",
    '$.params._meta."io.modelcontextprotocol/protocolVersion"',
    '$.params._meta."io.modelcontextprotocol/clientInfo".name',
    '$.params._meta."io.modelcontextprotocol/clientInfo".version',
    "$.params._meta.baggage",
    "$.result.serverInfo.version", '$.result._meta."io.modelcontextprotocol/serverInfo".version',
)

#: Envelope ``http`` fields read as text by ``sql/messages.sql`` (``h[1..]`` there, in this order):
#: 1 method, 2 path, 3 status, 4 sse_event_id, 5-8 ``Mcp-Session-Id`` request/response headers,
#: 9-10 ``traceparent``, 11-12 ``MCP-Protocol-Version``, 13-14 ``Mcp-Client-Session-Id``,
#: 15 ``mcp_session_id`` (a recorder's own field), 16 ``exchange_id``, 17 ``error`` (a recorder's note on a
#: failed exchange), 18 ``sse_retry_ms``, 19-20 ``Last-Event-ID`` request header.
HTTP_PATHS: tuple[str, ...] = (
    "$.method", "$.path", "$.status", "$.sse_event_id",
    '$.request_headers."mcp-session-id"', '$.request_headers."Mcp-Session-Id"',
    '$.response_headers."mcp-session-id"', '$.response_headers."Mcp-Session-Id"',
    "$.request_headers.traceparent", "$.request_headers.Traceparent",
    '$.request_headers."mcp-protocol-version"', '$.request_headers."MCP-Protocol-Version"',
    '$.request_headers."mcp-client-session-id"', '$.request_headers."Mcp-Client-Session-Id"',
    "$.mcp_session_id", "$.exchange_id", "$.error", "$.sse_retry_ms",
    '$.request_headers."last-event-id"', '$.request_headers."Last-Event-ID"',
)


def json_path(key: str) -> str:
    """A DuckDB JSON path selecting the top-level member ``key`` verbatim (dots and slashes included)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class KeyConfig:
    """The ``_meta`` keys read as correlation keys (README: How the correlation works): a session key
    from the first of ``session_meta_keys`` a request carries, else from the first of
    ``baggage_session_keys`` in its ``_meta.baggage``; the host's tool-call id from ``call_meta_keys``;
    the host's turn from ``turn_meta_keys``. A key is a ``_meta`` member or a tuple of members (a path
    into an object). Pass your own to ``mcptrace.load(..., keys=KeyConfig(...))`` for other hosts."""

    session_meta_keys: tuple[MetaKey, ...] = SESSION_META_KEYS
    call_meta_keys: tuple[MetaKey, ...] = CALL_META_KEYS
    turn_meta_keys: tuple[MetaKey, ...] = TURN_META_KEYS
    baggage_session_keys: tuple[str, ...] = BAGGAGE_SESSION_KEYS

    def names(self) -> dict[str, list[str]]:
        """The keys by role as the tables name their sources (``key_name``): ``{"session": [...],
        "baggage": [...], "call": [...], "turn": [...]}``, each in priority order."""
        return {"session": [key_name(k) for k in self.session_meta_keys],
                "baggage": ["baggage " + k for k in self.baggage_session_keys],
                "call": [key_name(k) for k in self.call_meta_keys],
                "turn": [key_name(k) for k in self.turn_meta_keys]}

    def message_params(self) -> dict[str, object]:
        """Parameters of ``sql/messages.sql``: the message paths, then the session-key, call-key and
        turn-key paths (``$paths``); the key names by position in ``$paths`` (``$key_names``: NULL at the
        message paths); the baggage members and their patterns; the HTTP paths."""
        keys = (*self.session_meta_keys, *self.call_meta_keys, *self.turn_meta_keys)
        return {"paths": [*MESSAGE_PATHS, *(meta_path(k) for k in keys)], "http_paths": list(HTTP_PATHS),
                "key_names": [None] * len(MESSAGE_PATHS) + [key_name(k) for k in keys],
                "bk_names": ["baggage " + k for k in self.baggage_session_keys],
                "bk_patterns": [baggage_pattern(k) for k in self.baggage_session_keys]}

    def sql_macros(self) -> list[str]:
        """DuckDB statements creating the temporary macros of ``sql/messages.sql`` for these keys:
        ``mcptrace_session_key_at(v)``, ``mcptrace_call_key_at(v)`` and ``mcptrace_turn_key_at(v)``,
        where ``v`` is the ``json_extract`` of :meth:`message_params`' ``paths`` (JSON[]). Each gives the
        1-based position in ``v`` of its role's first key, in priority order, whose value is a string or
        an integer (an object, array, float, boolean or null there is no key), NULL when none is; the
        key's name is ``key_names`` at the same position. Unrolled for this configuration (list positions
        only, no key text): one ``CASE`` over fixed positions instead of a lambda over the list, which
        costs three to four times as much per message."""
        def at(first: int, n: int) -> str:
            if not n:
                return "NULL::INTEGER"
            return "CASE " + " ".join(f"WHEN json_type(v[{first + k}]) IN ('VARCHAR', 'BIGINT', 'UBIGINT') "
                                      f"THEN {first + k}" for k in range(n)) + " END"
        first = len(MESSAGE_PATHS) + 1
        n_sk, n_ck, n_tk = len(self.session_meta_keys), len(self.call_meta_keys), len(self.turn_meta_keys)
        return [f"CREATE OR REPLACE TEMP MACRO mcptrace_session_key_at(v) AS {at(first, n_sk)}",
                f"CREATE OR REPLACE TEMP MACRO mcptrace_call_key_at(v) AS {at(first + n_sk, n_ck)}",
                f"CREATE OR REPLACE TEMP MACRO mcptrace_turn_key_at(v) AS {at(first + n_sk + n_ck, n_tk)}"]
