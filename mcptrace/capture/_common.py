"""Helpers shared by the recorders: timestamps, envelope writing, loopback checks.

Credential redaction is :class:`mcptrace.core.redact.RedactionPolicy` (the loader's policy too).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

CLIENT_TO_SERVER = "client_to_server"
SERVER_TO_CLIENT = "server_to_client"

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> str:
    """Current time as RFC 3339 UTC with microseconds and a ``Z`` suffix."""
    return datetime.now(UTC).strftime(_TS_FORMAT)


def parse_json_message(text: str) -> tuple[Any, bool]:
    """Parse one JSON-RPC payload. Returns ``(value, ok)``; only objects and arrays count as messages."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None, False
    if not isinstance(value, dict | list):
        return None, False
    return value, True


def legacy_session_id(url: str) -> str | None:
    """The 2024-11-05 HTTP+SSE session id in a URL's query (``session_id=`` or ``sessionId=``)."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k.lower() in ("session_id", "sessionid") and v:
            return v
    return None


_RUNNERS = frozenset({"npx", "uvx", "uv", "bunx", "pnpx", "pnpm", "node", "deno", "bun", "pipx"})


def default_connection_id(command: list[str]) -> str:
    """``stdio:<command basename>:<8 hex>``: a fresh id per recorded process."""
    base = os.path.basename(command[0]) if command else "process"
    if base in _RUNNERS or base.startswith("python"):
        # ``python -m pkg.server``, ``npx -y @scope/server-x``, ``uv run server.py``: name what is run.
        for i, arg in enumerate(command[1:], start=1):
            if command[i - 1] == "-m" or arg.endswith((".py", ".js", ".mjs", ".ts")):
                base = os.path.basename(arg)
                break
        else:
            rest = [a for a in command[1:] if not a.startswith("-") and a != "run"]
            if rest:
                base = os.path.basename(rest[0].rstrip("/"))
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base)[:64] or "process"
    return f"stdio:{base}:{secrets.token_hex(4)}"


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def decodable_codings(accept_encoding: bytes) -> bytes:
    """``Accept-Encoding`` narrowed to the codings the proxy can undo to read the body (gzip, deflate)."""
    keep = [t.strip() for t in accept_encoding.split(b",")
            if t.split(b";")[0].strip().lower() in (b"gzip", b"x-gzip", b"deflate", b"identity")]
    return b", ".join(keep) or b"identity"


def parse_listen(value: str, allow_remote: bool = False) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``PORT`` (on 127.0.0.1); only loopback hosts unless ``allow_remote``."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        port_n = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {value!r}") from None
    if not 0 <= port_n <= 65535:
        raise argparse.ArgumentTypeError(f"bad port in {value!r}")
    if not allow_remote and not is_loopback(host):
        raise argparse.ArgumentTypeError(
            f"refusing to listen on non-loopback address {host!r} (pass --allow-remote to do it anyway)")
    return host, port_n


class UpstreamBroke(Exception):
    """The upstream body broke off: raised to uvicorn so that it aborts the client's response too."""


class QuietUpstreamBreaks(logging.Filter):
    """Drops uvicorn's tracebacks for what the capture records itself: an upstream break passed on to
    the client, and the streams cancelled when the capture stops."""

    def __init__(self, proxy: Any) -> None:
        super().__init__()
        self.proxy = proxy

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, UpstreamBroke) or (self.proxy.stopping and isinstance(exc, asyncio.CancelledError)):
                return False
            exc = exc.__context__
        return True


class JsonlWriter:
    """Thread-safe, append-only JSON Lines writer; every line is one ``write(2)`` on an ``O_APPEND`` file.

    Nothing is buffered in the process: a crash loses at most the line being written. An existing
    file is appended to, never truncated (new files are created ``0600``: captures hold private
    traffic). :meth:`write_now` takes the timestamp and writes under the same lock, so across all
    threads the file order of those lines is their timestamp order (the timestamp is also kept
    from going backwards if the wall clock steps back).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                                       0o600)
        self._lock = threading.Lock()
        self._last_ts = ""
        self.n_written = 0

    @staticmethod
    def encode(obj: Any) -> bytes:
        try:
            return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (``"\\ud800"`` in the JSON): keep it escaped
            return (json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")

    def _write_bytes(self, data: bytes) -> None:
        if self._fd is None:
            return  # closed (shutdown): nothing left to write to
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.n_written += 1

    def write(self, obj: Any) -> None:
        """Append one object (its ``ts``, if any, chosen by the caller)."""
        data = self.encode(obj)
        with self._lock:
            self._write_bytes(data)

    def write_now(self, build: Callable[[str], Iterable[Any]], after: Callable[[str], None] | None = None) -> str:
        """Take the timestamp, build the objects for it and append them, all under the writer's lock.

        ``after(ts)`` runs under the lock too (e.g. to write a companion file in the same order).
        Returns the timestamp used.
        """
        with self._lock:
            ts = utc_now()
            ts = max(ts, self._last_ts)  # the wall clock stepped back: keep file order = time order
            self._last_ts = ts
            for obj in build(ts):
                self._write_bytes(self.encode(obj))
            if after is not None:
                after(ts)
            return ts

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


__all__ = [
    "CLIENT_TO_SERVER",
    "SERVER_TO_CLIENT",
    "JsonlWriter",
    "QuietUpstreamBreaks",
    "UpstreamBroke",
    "decodable_codings",
    "default_connection_id",
    "is_loopback",
    "legacy_session_id",
    "parse_json_message",
    "parse_listen",
    "utc_now",
]
