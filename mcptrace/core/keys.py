"""Correlation keys looked up in ``params._meta`` and HTTP headers (README: How the correlation works).

The lists are ordered by priority: the first key present decides. They are plain data so
callers can pass their own (``mcptrace.load(..., session_keys=[...])``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``_meta`` keys naming a host's logical session (conversation), highest priority first.
SESSION_META_KEYS: tuple[str, ...] = (
    "anthropic/session",
    "openai/session",
    "vscode.conversationId",
    "io.modelcontextprotocol/clientSessionId",
    "sessionID",  # OpenCode
    "threadId",   # Codex
)
#: ``_meta`` keys naming the host's tool call (the LLM tool-use id).
CALL_META_KEYS: tuple[str, ...] = (
    "claudecode/toolUseId",
    "copilot/toolCallId",
    "vscode.requestId",
    "gen_ai.tool.call.id",
)


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
    from the first of ``session_meta_keys`` a request carries, the host's tool-call id from
    ``call_meta_keys``. Pass your own to ``mcptrace.load(..., keys=KeyConfig(...))`` for other hosts."""

    session_meta_keys: tuple[str, ...] = SESSION_META_KEYS
    call_meta_keys: tuple[str, ...] = CALL_META_KEYS

    def message_params(self) -> dict[str, object]:
        """Parameters of ``sql/messages.sql``: the message paths, then session-key and call-key paths;
        the HTTP paths."""
        meta = [("$.params._meta" + json_path(k)[1:]) for k in (*self.session_meta_keys, *self.call_meta_keys)]
        return {"paths": [*MESSAGE_PATHS, *meta], "http_paths": list(HTTP_PATHS), "n_sk": len(self.session_meta_keys),
                "sk_names": list(self.session_meta_keys), "ck_names": list(self.call_meta_keys)}
