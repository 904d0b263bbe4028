"""Recording the exchanges of the HTTP capture proxy (:mod:`mcptrace.capture.http`) as envelopes.

The proxy forwards; an :class:`ExchangeRecorder` turns what passes through into envelope JSONL
(and HAR entries): the request's envelope once the response headers are known, one envelope per
JSON body or SSE event as it completes, an HTTP event record for a GET stream or DELETE, and a
note when an exchange ends abnormally. The envelope shapes and the rules for what is recorded are
those of :mod:`mcptrace.capture.http`. Nothing here needs the proxy's optional dependencies.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mcptrace.capture._common import (
    CLIENT_TO_SERVER,
    SERVER_TO_CLIENT,
    JsonlWriter,
    legacy_session_id,
    parse_json_message,
)
from mcptrace.capture.har import DEFAULT_MAX_BODY, HarRecorder, _HarExchange
from mcptrace.core.redact import DEFAULT_REDACTION, RedactionPolicy
from mcptrace.core.sse import SSEParser


class BodyDecoder:
    """Decode a content-encoded body incrementally for recording (the raw bytes are what is forwarded).

    ``cap``: the most decoded bytes produced for a compressed body (``None``: no cap); past it
    decoding stops for good (:attr:`capped`), so a decompression bomb costs at most ``cap`` bytes of
    work. Each :meth:`feed` decodes at most ``piece`` bytes (default 256 KiB); what is left of the input
    waits in the decoder (:attr:`has_more`: call ``feed(b"")`` again, yielding to the event loop in between).
    An identity body is passed through, uncapped (its bytes are the wire's).
    """

    def __init__(self, encoding: str, cap: int | None = None, piece: int = 256 * 1024) -> None:
        enc = encoding.strip().lower()
        self.encoding = enc
        self.supported = enc in ("", "identity", "gzip", "x-gzip", "deflate")
        self._z = zlib.decompressobj(wbits=47) if enc in ("gzip", "x-gzip", "deflate") else None
        self.identity = self._z is None and self.supported
        self.cap = cap
        self.piece = piece
        self.capped = False
        self.decoded = 0  # decoded bytes produced so far
        self.received = 0  # encoded bytes fed so far
        self._tail = b""

    @property
    def has_more(self) -> bool:
        return bool(self._tail) and self.supported and not self.capped

    def feed(self, chunk: bytes) -> bytes:
        self.received += len(chunk)
        if self._z is None:
            self.decoded += len(chunk)
            return chunk
        if self.capped or not self.supported:
            return b""
        data = self._tail + chunk if self._tail else chunk
        room = self.piece if self.cap is None else min(self.piece, self.cap - self.decoded)
        if room <= 0:
            if data:
                self.capped, self._tail = True, b""
            return b""
        try:
            out = self._z.decompress(data, room)
        except zlib.error:
            self.supported, self._tail = False, b""
            return b""
        self._tail = self._z.unconsumed_tail
        self.decoded += len(out)
        return out


#: bodies larger than this (bytes) are forwarded but not parsed for messages, by default
MAX_PARSED_BODY = DEFAULT_MAX_BODY
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


class ClientGone(Exception):
    """The client disconnected while its request body was being read."""


class BodyAborted(Exception):
    """The client's request body stopped while it was streamed upstream (:attr:`RequestBody.error` says why)."""


class RequestBody:
    """The client's request body, read from the ASGI ``receive``: up to ``cap`` bytes read ahead (what is
    recorded), then, for a longer body, the rest streamed upstream as it arrives (:meth:`stream`);
    ``idle`` seconds without a byte end it (``TimeoutError`` ahead, :class:`BodyAborted` while streaming).
    Runs on asyncio (uvicorn's loop)."""

    def __init__(self, receive: Callable[[], Awaitable[dict[str, Any]]], cap: int, idle: float) -> None:
        self._receive = receive
        self.cap, self.idle = cap, idle
        self.head = bytearray()
        self.size = 0  # bytes received so far
        self.complete = False
        self.error: str | None = None
        self.done = asyncio.Event()  # nothing more will be read (the disconnect watcher may read then)

    async def _next(self) -> bytes:
        async with asyncio.timeout(self.idle):  # TimeoutError
            message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body = message.get("body", b"")
        self.size += len(body)
        self.complete = not message.get("more_body", False)
        return body

    async def read_head(self) -> bytes:
        """Read ahead up to the cap; returns what is recorded. Raises ClientGone or TimeoutError."""
        while not self.complete and len(self.head) <= self.cap:
            self.head += await self._next()
        if self.complete and len(self.head) <= self.cap:
            self.done.set()
            return bytes(self.head)
        return bytes(self.head[: self.cap])

    @property
    def cut(self) -> bool:
        """The body is longer than the cap (or still arriving past it): it is streamed, recorded cut."""
        return not self.done.is_set() or self.size > self.cap

    async def stream(self) -> AsyncIterator[bytes]:
        data, self.head = bytes(self.head), bytearray()
        try:
            yield data
            del data
            while not self.complete:
                chunk = await self._next()
                if chunk:
                    yield chunk
        except ClientGone:
            self.error = "client_disconnected: while sending the request body"
            raise BodyAborted(self.error) from None
        except TimeoutError:
            self.error = f"client_timeout: no request body bytes for {self.idle:g} s"
            raise BodyAborted(self.error) from None
        finally:
            self.done.set()


class Exchange:
    """One proxied HTTP exchange: what its envelopes carry, and what is still unanswered on it."""

    __slots__ = (
        "body",
        "body_cut",
        "body_size",
        "c2s_written",
        "conn",
        "decoder",
        "deferred_ts",
        "har",
        "http",
        "mcp",
        "parsed_ok",
        "parser",
        "pending",
        "proxy_origin",
        "req_cut",
        "sse",
        "transport",
    )

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
        self.req_cut: dict[str, Any] | None = None  # the request body was cut: ``{"bytes": size}``
        self.body_size = 0  # bytes of the (decoded) response body seen, cut or not

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
    it can be rewritten to the proxy's origin. ``redaction``: what is redacted in the bodies and SSE
    data written (:meth:`~mcptrace.core.redact.RedactionPolicy.redact_json_text`; default: the default
    policy). ``max_body``: the largest body parsed for its message (bytes; default 16 MiB), and the
    most decoded bytes of a compressed response (past them it is forwarded, not recorded).
    """

    def __init__(self, writer: JsonlWriter, har: HarRecorder | None, upstream_origin: str, *,
                 redaction: RedactionPolicy = DEFAULT_REDACTION, max_body: int = MAX_PARSED_BODY) -> None:
        self.writer = writer
        self.har = har
        self.upstream_origin = upstream_origin
        self.redaction = redaction
        self.max_body = max_body

    def raw_note(self, text: str) -> str:
        """The first :data:`RAW_NOTE` characters of a body that is not a message, redacted (a secret
        whose value runs on past 64 KiB is not seen whole, and is kept)."""
        return self.redaction.redact_json_text(text[: RAW_NOTE * 16])[:RAW_NOTE]

    def record_body(self, ex: Exchange, ts: str, direction: str, text: str, status_floor: int = 0) -> list[dict]:
        """Envelopes for one HTTP body (request or JSON response) received at ``ts``."""
        if not text.strip():
            return []
        cut = ex.req_cut if direction == CLIENT_TO_SERVER else None
        if cut is None:
            value, ok = parse_json_message(self.redaction.redact_json_text(text))
            if ok and is_jsonrpc(value):
                ex.mcp = True
                return [ex.envelope(ts, direction, value)]
        status = ex.http.get("status") or 0
        if ex.mcp and status >= status_floor:
            # Not JSON-RPC on an MCP exchange (a broken body, an error page, a body over the cap): keep
            # what was said.
            extra = {"body_truncated": cut} if cut is not None else {}
            return [dict(ex.envelope(ts, direction, None, **extra), raw=self.raw_note(text))]
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
            value, ok = parse_json_message(self.redaction.redact_json_text(ev.data))
            if ok and is_jsonrpc(value):
                ex.mcp = True
                ex.pending -= message_ids(value, requests=False)
                envs.append((ev, value, None))
            elif ex.mcp:
                envs.append((ev, None, self.raw_note(ev.data)))

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
        """Parse one chunk of the response body before it is forwarded; returns the bytes to forward.

        At most one piece of a compressed chunk is decoded per call: while ``ex.decoder.has_more``, call
        again with ``b""`` (after yielding to the event loop)."""
        har = ex.har
        decoder = ex.decoder
        assert decoder is not None
        if har is not None and not decoder.supported:
            self.har.body(har, chunk, decoded=False)
            return chunk
        if decoder.capped:
            return chunk
        decoded = decoder.feed(chunk)
        if decoder.capped:
            self.decode_capped(ex)
            return chunk
        ex.body_size += len(decoded)
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
            if len(ex.body) + len(decoded) > self.max_body:
                ex.body_cut = True
                del ex.body[RAW_NOTE * 16:]  # what the record keeps of it
            else:
                ex.body += decoded
        return chunk

    def decode_capped(self, ex: Exchange) -> None:
        """A compressed response decoded past ``max_body`` bytes: the rest is forwarded, not decoded nor
        recorded; one record says so (``http.body_truncated``: the encoding and the bytes decoded)."""
        assert ex.decoder is not None
        why = (f"body_truncated: the {ex.decoder.encoding} response decoded past {self.max_body} bytes; "
               "the rest is forwarded, not recorded")
        if ex.har is not None and self.har is not None:
            self.har.decoding_stopped(ex.har, why)
        if not ex.mcp:
            return
        error = why + (f" (no response yet to id {', '.join(sorted(ex.pending))})" if ex.pending else "")
        cut = {"encoding": ex.decoder.encoding, "decoded_bytes": ex.decoder.decoded}
        self.writer.write_now(lambda ts: [ex.envelope(ts, SERVER_TO_CLIENT, None, error=error, body_truncated=cut)])

    def on_body_end(self, ex: Exchange) -> str | None:
        """A non-stream body is complete: one envelope for its message, stamped now (the time returned).

        A body over ``max_body`` (or decoded past it) on an MCP exchange is one message-less record
        with its first characters as ``raw`` and ``http.body_truncated: {"bytes": size}``."""
        if ex.sse or not ex.decoder or not ex.decoder.supported or ex.decoder.capped:
            return None
        text = bytes(ex.body).decode("utf-8", errors="replace")
        ex.body.clear()
        if ex.body_cut:
            if not ex.mcp:
                return None
            cut = {"bytes": ex.body_size}
            return self.writer.write_now(lambda ts: [dict(ex.envelope(ts, SERVER_TO_CLIENT, None, body_truncated=cut),
                                                          raw=self.raw_note(text))])
        value, ok = parse_json_message(text) if text.strip() else (None, False)
        if ok:
            ex.pending -= message_ids(value, requests=False)
        return self.writer.write_now(lambda ts: self.record_body(ex, ts, SERVER_TO_CLIENT, text, status_floor=400))
