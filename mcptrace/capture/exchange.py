"""Recording the exchanges of the HTTP capture proxy (:mod:`mcptrace.capture.http`) as envelopes.

The proxy forwards; an :class:`ExchangeRecorder` turns what passes through into envelope JSONL
(and HAR entries): the request's envelope once the response headers are known, one envelope per
JSON body or SSE event as it completes, an HTTP event record for a GET stream or DELETE, and a
note when an exchange ends abnormally. The envelope shapes and the rules for what is recorded are
those of :mod:`mcptrace.capture.http`. Nothing here needs the proxy's optional dependencies.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from mcptrace.capture._common import (
    CLIENT_TO_SERVER,
    SERVER_TO_CLIENT,
    JsonlWriter,
    legacy_session_id,
    parse_json_message,
)
from mcptrace.capture.har import HarRecorder, _HarExchange
from mcptrace.core.sse import SSEParser


class BodyDecoder:
    """Decode a content-encoded body incrementally for parsing (the raw bytes are what is forwarded)."""

    def __init__(self, encoding: str) -> None:
        enc = encoding.strip().lower()
        self.supported = enc in ("", "identity", "gzip", "x-gzip", "deflate")
        self._z = zlib.decompressobj(wbits=47) if enc in ("gzip", "x-gzip", "deflate") else None
        self.identity = self._z is None and self.supported

    def feed(self, chunk: bytes) -> bytes:
        if self._z is None:
            return chunk
        try:
            return self._z.decompress(chunk)
        except zlib.error:
            self.supported = False
            return b""


#: bodies larger than this are forwarded but not parsed for messages
MAX_PARSED_BODY = 16 * 1024 * 1024
#: characters of a body or event that is not JSON-RPC kept as ``raw``
RAW_NOTE = 4096


def is_jsonrpc(value: Any) -> bool:
    """A JSON-RPC message, or a batch holding at least one (what the envelope's ``message`` is for)."""
    if isinstance(value, dict):
        # (an OAuth error body {"error": "invalid_token"} has no id: not JSON-RPC)
        return "jsonrpc" in value or "method" in value or ("id" in value and ("result" in value or "error" in value))
    if isinstance(value, list):
        return any(is_jsonrpc(v) for v in value if isinstance(v, dict))
    return False


def message_ids(value: Any, *, requests: bool) -> set[str]:
    """JSON texts of the ids of the requests (or of the responses) in a message or batch."""
    items = value if isinstance(value, list) else [value]
    out = set()
    for m in items:
        if isinstance(m, dict) and m.get("id") is not None and (("method" in m) == requests):
            out.add(json.dumps(m["id"]))
    return out


class Exchange:
    """One proxied HTTP exchange: what its envelopes carry, and what is still unanswered on it."""

    __slots__ = ("transport", "conn", "http", "mcp", "pending", "sse", "parser", "decoder", "body", "body_cut",
                 "har", "proxy_origin", "parsed_ok", "c2s_written", "deferred_ts")

    def __init__(self, transport: str, conn: str, http: dict[str, Any]) -> None:
        self.transport = transport
        self.conn = conn
        self.http = http
        self.mcp = False  # the exchange carries MCP traffic (so odd bodies are worth a record)
        self.pending: set[str] = set()  # ids of requests sent on this exchange and not answered on it
        self.sse = False
        self.parser: SSEParser | None = None
        self.decoder: BodyDecoder | None = None
        self.body = bytearray()
        self.body_cut = False
        self.har: _HarExchange | None = None
        self.proxy_origin = ""
        self.parsed_ok = False
        self.c2s_written = False
        self.deferred_ts: str | None = None  # a GET stream's record, held until its stream says which transport

    def envelope(self, ts: str, direction: str, message: Any, **http_extra: Any) -> dict[str, Any]:
        return {
            "ts": ts,
            "direction": direction,
            "transport": self.transport,
            "connection_id": self.conn,
            "http": dict(self.http, **http_extra) if http_extra else dict(self.http),
            "message": message,
        }


class ExchangeRecorder:
    """Writes the envelopes (and HAR entries) of the proxied exchanges.

    ``writer``: the envelope file; ``har``: the HAR recorder or ``None``; ``upstream_origin``:
    ``scheme://host[:port]`` of the upstream, so that a 2024-11-05 ``endpoint`` announcement naming
    it can be rewritten to the proxy's origin.
    """

    def __init__(self, writer: JsonlWriter, har: HarRecorder | None, upstream_origin: str) -> None:
        self.writer = writer
        self.har = har
        self.upstream_origin = upstream_origin

    def record_body(self, ex: Exchange, ts: str, direction: str, text: str, status_floor: int = 0) -> list[dict]:
        """Envelopes for one HTTP body (request or JSON response) received at ``ts``."""
        if not text.strip():
            return []
        value, ok = parse_json_message(text)
        if ok and is_jsonrpc(value):
            ex.mcp = True
            return [ex.envelope(ts, direction, value)]
        status = ex.http.get("status") or 0
        if ex.mcp and status >= status_floor:
            # Not JSON-RPC on an MCP exchange (a broken body, an error page): keep what was said.
            return [dict(ex.envelope(ts, direction, None), raw=text[:RAW_NOTE])]
        return []

    def write_c2s(self, ex: Exchange, ts: str | None, body_text: str, **http_extra: Any) -> None:
        """Write the request's envelope (``ts=None``: stamped now, in file order) with ``http_extra``
        merged into its metadata; once written, a later failure becomes a note instead."""
        ex.http.update(http_extra)
        if ex.c2s_written:
            if http_extra.get("error") or (ex.http.get("status") or 0) >= 400:
                self.note(ex, http_extra.get("error") or f"http_error: HTTP {ex.http['status']}")
            return
        ex.c2s_written = True
        if not body_text.strip() and ex.http["method"] in ("GET", "DELETE"):
            self.write_http_event(ex, ts)
            return
        ctype = ex.http["request_headers"].get("content-type", "")
        if not body_text.strip() or not (ex.parsed_ok or "json" in ctype.lower()):
            return  # no body, or not one the MCP transports send (a form POST to an OAuth endpoint...)
        if ts is None:
            self.writer.write_now(lambda now: self.record_body(ex, now, CLIENT_TO_SERVER, body_text))
        else:
            for env in self.record_body(ex, ts, CLIENT_TO_SERVER, body_text):
                self.writer.write(env)

    def write_http_event(self, ex: Exchange, ts: str | None) -> None:
        """The record of a GET or DELETE on an MCP endpoint: no message, what happened is in ``http``.

        A GET stream with neither ``Mcp-Session-Id`` nor ``Last-Event-ID`` may be a 2024-11-05 ``GET /sse``,
        whose transport and session its first event (``endpoint``) announces: its record waits for that
        event (or the stream's end), keeping the time the request arrived.
        """
        headers = ex.http["request_headers"]
        named = "mcp-session-id" in headers or "last-event-id" in headers
        if not (named or ex.sse):
            return  # a health check, an OAuth metadata GET...: forwarded, not recorded
        if ts is not None and ex.sse and ex.http["method"] == "GET" and not named:
            ex.deferred_ts = ts
            return
        if ts is None:
            self.writer.write_now(lambda now: [ex.envelope(now, CLIENT_TO_SERVER, None)])
        else:
            self.writer.write(ex.envelope(ts, CLIENT_TO_SERVER, None))

    def take_deferred(self, ex: Exchange) -> list[dict[str, Any]]:
        """The held record of a GET stream (see :meth:`write_http_event`), once."""
        ts, ex.deferred_ts = ex.deferred_ts, None
        return [ex.envelope(ts, CLIENT_TO_SERVER, None)] if ts is not None else []

    def note(self, ex: Exchange, error: str) -> None:
        """An exchange ended abnormally after its headers: a record with no message, the error in ``http``."""
        if ex.pending:
            error += f" (no response yet to id {', '.join(sorted(ex.pending))})"
        self.writer.write_now(lambda ts: [ex.envelope(ts, SERVER_TO_CLIENT, None, error=error)])

    def on_events(self, ex: Exchange, events: list[Any]) -> bytes | None:
        """Record the SSE events completed by one chunk (stamped now); returns a replacement for an
        ``endpoint`` announcement that names the upstream's origin, else ``None``."""
        rewrite: bytes | None = None
        envs: list[tuple[Any, Any, str | None]] = []
        for ev in events:
            if ev.event == "endpoint":
                # 2024-11-05 HTTP+SSE: the stream announces where to POST; its session_id names the session.
                sid = legacy_session_id(ev.data)
                if sid:
                    ex.transport, ex.conn, ex.mcp = "sse", sid, True
                    ex.http["mcp_session_id"] = sid
                if ev.data.startswith(self.upstream_origin + "/") and ex.proxy_origin:
                    rewrite = self.upstream_origin.encode()
                continue
            if ev.data == "":
                # A priming event (id and/or retry, empty data: where to resume from, how soon) is an HTTP
                # event of the stream, recorded without a message; a bare keep-alive is not recorded.
                if ex.mcp and (ev.id is not None or ev.retry is not None):
                    envs.append((ev, None, None))
                continue
            value, ok = parse_json_message(ev.data)
            if ok and is_jsonrpc(value):
                ex.mcp = True
                ex.pending -= message_ids(value, requests=False)
                envs.append((ev, value, None))
            elif ex.mcp:
                envs.append((ev, None, ev.data[:RAW_NOTE]))

        def build(ts: str) -> list[dict[str, Any]]:
            if ex.har is not None and self.har is not None:
                for ev in events:
                    self.har.event(ex.har, ts, ev)
            out = self.take_deferred(ex)
            for ev, value, raw in envs:
                extra: dict[str, Any] = {"sse_event_id": ev.id}
                if ev.retry is not None:
                    extra["sse_retry_ms"] = ev.retry
                env = ex.envelope(ts, SERVER_TO_CLIENT, value, **extra)
                if raw is not None:
                    env["raw"] = raw
                out.append(env)
            return out

        if envs or ex.deferred_ts is not None or (ex.har is not None and events):
            self.writer.write_now(build)
        return rewrite

    def on_chunk(self, ex: Exchange, chunk: bytes) -> bytes:
        """Parse one chunk of the response body before it is forwarded; returns the bytes to forward."""
        har = ex.har
        decoder = ex.decoder
        assert decoder is not None
        if har is not None and not decoder.supported:
            self.har.body(har, chunk, decoded=False)
            return chunk
        decoded = decoder.feed(chunk)
        if har is not None:
            self.har.body(har, decoded, decoded=decoder.supported)
        if ex.sse:
            assert ex.parser is not None
            try:
                events = ex.parser.feed(decoded)
            except ValueError:
                decoder.supported = False  # an event over the size limit: stop parsing, keep forwarding
                return chunk
            if events:
                origin = self.on_events(ex, events)
                if origin is not None and decoder.identity:
                    return chunk.replace(origin, ex.proxy_origin.encode())
        elif not ex.body_cut:
            if len(ex.body) + len(decoded) > MAX_PARSED_BODY:
                ex.body_cut = True
                ex.body.clear()
            else:
                ex.body += decoded
        return chunk

    def on_body_end(self, ex: Exchange) -> str | None:
        """A non-stream body is complete: one envelope for its message, stamped now (the time returned)."""
        if ex.sse or ex.body_cut or not ex.decoder or not ex.decoder.supported:
            return None
        text = bytes(ex.body).decode("utf-8", errors="replace")
        ex.body.clear()
        value, ok = parse_json_message(text) if text.strip() else (None, False)
        if ok:
            ex.pending -= message_ids(value, requests=False)
        return self.writer.write_now(lambda ts: self.record_body(ex, ts, SERVER_TO_CLIENT, text, status_floor=400))

