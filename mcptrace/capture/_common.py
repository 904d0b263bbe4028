"""Helpers shared by the recorders: timestamps, envelope writing, header redaction."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import IO, Any

CLIENT_TO_SERVER = "client_to_server"
SERVER_TO_CLIENT = "server_to_client"

REDACTED = "[REDACTED]"
REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})


def utc_now() -> str:
    """Current time as RFC 3339 UTC with microseconds and a ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_json_message(text: str) -> tuple[Any, bool]:
    """Parse one JSON-RPC payload. Returns ``(value, ok)``; only objects and arrays count as messages."""
    try:
        value = json.loads(text)
    except ValueError:
        return None, False
    if not isinstance(value, dict | list):
        return None, False
    return value, True


def redact_headers(items: Any) -> dict[str, str]:
    """Lower-case header names and redact credential-bearing values.

    ``items`` is an iterable of ``(name, value)`` pairs (str or bytes). Repeated headers are joined
    with ``", "`` (``set-cookie`` is redacted anyway).
    """
    out: dict[str, str] = {}
    for name, value in items:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        key = name.lower()
        if key in REDACTED_HEADERS:
            value = REDACTED
        out[key] = f"{out[key]}, {value}" if key in out and key not in REDACTED_HEADERS else value
    return out


class JsonlWriter:
    """Thread-safe append-only JSON Lines writer that flushes after every line."""

    def __init__(self, path: str) -> None:
        self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()

    def write(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()
