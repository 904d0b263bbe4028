"""Correlation keys looked up in ``params._meta`` and HTTP headers (DESIGN §4).

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
#: HTTP request header carrying a client-generated session id (SEP-2822 style).
SESSION_HEADER = "mcp-client-session-id"

#: ``_meta`` keys naming the host's tool call (the LLM tool-use id).
CALL_META_KEYS: tuple[str, ...] = (
    "claudecode/toolUseId",
    "copilot/toolCallId",
    "vscode.requestId",
    "gen_ai.tool.call.id",
)


def json_path(key: str) -> str:
    """A DuckDB JSON path selecting the top-level member ``key`` verbatim (dots and slashes included)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class KeyConfig:
    session_meta_keys: tuple[str, ...] = SESSION_META_KEYS
    call_meta_keys: tuple[str, ...] = CALL_META_KEYS

    def params(self) -> dict[str, list[str]]:
        return {
            "sk_paths": [json_path(k) for k in self.session_meta_keys],
            "sk_names": list(self.session_meta_keys),
            "ck_paths": [json_path(k) for k in self.call_meta_keys],
            "ck_names": list(self.call_meta_keys),
        }
