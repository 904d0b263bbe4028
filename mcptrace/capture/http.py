"""Logging reverse proxy for MCP over HTTP: Streamable HTTP and the 2024-11-05 HTTP+SSE transport.

    mcptrace capture http --listen 127.0.0.1:PORT --upstream URL --out FILE [--har FILE] [--no-redact]
    python -m mcptrace.capture.http (same options)

Where a request goes depends on whether ``URL`` names a path. Without one (``--upstream
http://127.0.0.1:9000``), every request is forwarded to ``URL`` + the request path and query (a
client pointed at ``http://127.0.0.1:PORT/mcp`` reaches ``http://127.0.0.1:9000/mcp``). With one
(``--upstream http://127.0.0.1:9000/mcp``; or with a query), ``URL`` is the MCP endpoint: every request goes to
exactly that URL (the request's query string, if any, appended), whatever path the client used,
except a well-known URI (``/.well-known/...``, e.g. OAuth discovery) and a 2024-11-05 POST carrying
its ``session_id`` (to the message endpoint the server announced), which go to the upstream's
origin + the request path. Any method (POST, GET, DELETE...). Response bodies are forwarded
chunk by chunk as they arrive, never held to the end: ``text/event-stream`` responses (a POST's
SSE response, the GET stream resumed with ``Last-Event-ID``, the legacy ``GET /sse`` stream) and
JSON bodies alike. One envelope per JSON-RPC message (a JSON-RPC batch array is one envelope), and
one per HTTP-level event of an MCP exchange (``"message": null``, see below), is appended to
``--out``::

    {"ts", "direction", "transport": "streamable_http"|"sse", "connection_id",
     "http": {"method", "path", "status", "request_headers", "response_headers", "sse_event_id",
              "sse_retry_ms"?, "mcp_session_id", "exchange_id", "error"?},
     "message": <JSON-RPC object or batch array> | null, "raw"?}

- **Client to server**: the POST body, stamped when it arrived, written once the upstream response
  headers are known (so ``status`` and the ``Mcp-Session-Id`` the server assigns at ``initialize``
  are in it), before any of its response's envelopes.
- **Server to client**: a JSON body gives one envelope stamped when it was complete; an event
  stream gives one envelope per SSE event, stamped when the chunk completing it arrived and written
  before that chunk is forwarded. Stream envelopes are taken and written under one lock, so their
  file order is their time order; within one exchange the request always precedes its responses.
- **HTTP events** (``"message": null``, no ``raw``): a *priming* event of a stream (empty data with an
  ``id:`` and/or a ``retry:``, what a resumable server sends first) gives one ``server_to_client``
  envelope with ``http.sse_event_id`` (``null`` when it had no id) and, when it set one,
  ``http.sse_retry_ms`` (an integer; also set on a message event that carried ``retry:``). Events with
  empty data and neither id nor retry, and comments (keep-alives), are not recorded. A GET or DELETE
  on an MCP endpoint (the request carries ``Mcp-Session-Id`` or ``Last-Event-ID``, or the response
  is ``text/event-stream``; a health check is none of these) gives one ``client_to_server``
  envelope, stamped when the request arrived and written once the response headers are known, with
  ``http.method``, ``status``, and the request and response headers (a resumption's ``last-event-id``
  is there); a GET stream's events follow it as usual. (A GET stream with neither session nor
  ``Last-Event-ID`` header, which may be a 2024-11-05 ``GET /sse``, is written when its first event
  arrives, so that it carries the transport and session that event announces.)
- **HTTP metadata**: header names lower-cased; credential headers (``Authorization``, ``Cookie``,
  ``Set-Cookie``, ``X-Api-Key`` and every name matching :data:`mcptrace.core.redact.DEFAULT_SECRET_KEYS`)
  and the values of query parameters with such names are ``[REDACTED]`` unless ``--no-redact``: the
  :class:`~mcptrace.core.redact.RedactionPolicy` that ``mcptrace load`` applies to HAR files.
  ``mcp_session_id`` is lifted from the ``Mcp-Session-Id`` request or response header, or the
  legacy ``session_id``.
- **connection_id**: the client's TCP connection (``host:port`` as the proxy sees it) for Streamable
  HTTP; for the legacy transport the session id announced by the ``endpoint`` event (and carried
  by the POSTs' ``session_id`` query), so that the stream's responses and the POSTed requests share
  one pairing scope.
- **exchange_id**: ``<proxy run>-<n>``, the same on the request and on every response envelope
  of one HTTP exchange (a POST and its SSE stream, a GET stream).
- **Failures** never take the proxy down and are recorded: an unreachable upstream answers the
  client 502 and the request's envelope carries ``status: 502`` and ``http.error``
  (``upstream_error: ConnectError: ...``); a client that disconnects before the headers leaves the
  request with ``status: null`` and ``error: client_disconnected: ...``; a stream that breaks after
  its headers (``upstream_reset: ...``), or that the client closes (or the capture stops) while a
  request sent on it is still unanswered (``client_disconnected`` / ``proxy_shutdown``), adds one
  ``server_to_client`` record with ``"message": null`` and the reason in ``http.error``. A GET or
  DELETE that fails before its headers is its own record, with ``status`` 502 or ``null`` and
  ``http.error``. Non-JSON-RPC bodies of MCP exchanges (an HTML error page, a broken SSE event) are
  kept as ``"message": null, "raw": "<first 4 KiB>"`` (``raw`` only ever marks such a body);
  non-MCP exchanges (health checks, OAuth) are forwarded but not recorded.

Legacy HTTP+SSE: the ``endpoint`` event is forwarded as is when it is a path (what the SDKs send);
an absolute URL naming the upstream's origin is rewritten to the proxy's so the client keeps
posting through it. The proxy binds to loopback unless ``--allow-remote``; it prints where it
listens and writes on stderr. The capture file is appended to, never truncated.

With ``--har FILE`` the proxy also keeps a HAR 1.2 record (:class:`mcptrace.capture.har.HarRecorder`, mode
``0600``, entries appended as exchanges complete, the file valid after each one).

**Limits** (``--max-body BYTES``, default 16 MiB; ``--idle-timeout SECONDS``, default 60): request bodies
stream upstream as they arrive and their first ``max-body`` bytes are recorded; a longer request or
JSON response body is one ``"message": null`` record with ``raw`` (its first 4 KiB) and
``http.body_truncated: {"bytes": N}`` (``"incomplete": true``: not read to its end). A compressed
response is decoded for recording in 256 KiB pieces, yielding between them, and stops past ``max-body``
decoded bytes (one record: ``http.error: "body_truncated: ..."``, ``body_truncated: {"encoding",
"decoded_bytes"}``); the client always gets the upstream's bytes unchanged. A client silent for
``idle-timeout`` seconds mid-headers or mid-body is disconnected (``client_timeout``); idle keep-alive
connections close after it too. Bodies and SSE data are redacted (``RedactionPolicy.redact_json_text``).

This module is the proxy (forwarding, the ASGI app, the server); what is written for each exchange
is :class:`mcptrace.capture.exchange.ExchangeRecorder`. Without httpx, starlette and uvicorn (the
``capture`` extra) importing it raises :class:`mcptrace.MissingDependencyError`.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcptrace.core.errors import MissingDependencyError

try:
    import anyio
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(_exc.name or "httpx, starlette and uvicorn", "capture") from _exc

import anyio.lowlevel

from mcptrace.capture._common import (
    JsonlWriter,
    QuietUpstreamBreaks,
    UpstreamBroke,
    decodable_codings,
    legacy_session_id,
    parse_json_message,
    parse_listen,
    utc_now,
)
from mcptrace.capture.exchange import (
    RAW_NOTE,
    BodyAborted,
    BodyDecoder,
    ClientGone,
    Exchange,
    ExchangeRecorder,
    RequestBody,
    is_jsonrpc,
    message_ids,
)
from mcptrace.capture.har import DEFAULT_MAX_BODY, HarRecorder
from mcptrace.capture.options import add_http_arguments, redaction_from_args
from mcptrace.core.redact import RedactionPolicy
from mcptrace.core.sse import SSEParser

logger = logging.getLogger("mcptrace.capture.http")

# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded; host is set by httpx for the upstream.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                         "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
_RESPONSE_DROP = frozenset(_HOP_BY_HOP - {"proxy-authenticate"}) | {"content-length"}


#: seconds a client may send nothing while its request headers or body are due (default of --idle-timeout)
DEFAULT_IDLE_TIMEOUT = 60.0
#: seconds an idle connection to the upstream is kept for the next request: under the keep-alive timeout of
#: common servers (uvicorn, Hypercorn and Node 5 s, gunicorn 2 s), so that no request goes out on a
#: connection the upstream is closing at that moment (with httpx's default of 5 s against uvicorn's 5 s, a
#: request now and then failed with ReadError: a 502 for its client)
UPSTREAM_KEEPALIVE_S = 1.0
__all__ = ["DEFAULT_IDLE_TIMEOUT", "LoggingProxy", "build_app", "parse_listen", "serve"]


class LoggingProxy:
    """The reverse proxy: forwards every request upstream (:meth:`upstream_url`) and records the MCP messages.

    ``max_body``: bytes of a body recorded, parsed or decoded (default 16 MiB); ``idle_timeout``:
    seconds a request body may send nothing (default 60); ``connect_timeout``: seconds (default 10).
    """

    def __init__(self, upstream: str, out: str, *, connect_timeout: float = 10.0, har: str | None = None,
                 redact: bool = True, redaction: RedactionPolicy | None = None, max_body: int = DEFAULT_MAX_BODY,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        parts = httpx.URL(upstream)
        self.upstream_origin = f"{parts.scheme}://{parts.netloc.decode('ascii')}"
        #: True when the upstream URL names a path (or a query): it is then the endpoint itself
        self.endpoint = parts.path not in ("", "/") or bool(parts.query)
        self.upstream = upstream if self.endpoint else upstream.rstrip("/")
        #: what is redacted in headers and query strings (``redaction``, else the default policy, off
        #: when ``redact`` is false), in the envelopes and the HAR alike
        self.redaction = redaction if redaction is not None else RedactionPolicy(enabled=redact)
        self.writer = JsonlWriter(out)
        self.max_body, self.idle_timeout = max_body, idle_timeout
        self.har = HarRecorder(har, redaction=self.redaction, max_body=max_body) if har else None
        self.recorder = ExchangeRecorder(self.writer, self.har, self.upstream_origin, redaction=self.redaction,
                                         max_body=max_body)
        self.stopping = False
        self._run_id = secrets.token_hex(4)
        self._n_exchanges = 0
        self._open: set[object] = set()  # exchanges not yet recorded to their end
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=connect_timeout, read=None, write=30.0, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64,
                                keepalive_expiry=UPSTREAM_KEEPALIVE_S),
            follow_redirects=False,
            trust_env=False,  # never send loopback traffic through an HTTP(S)_PROXY from the environment
        )

    def upstream_url(self, target: str) -> str:
        """The upstream URL of a request for ``target`` (the request's raw path and query, ``/mcp?x=1``).

        Without a path in the upstream URL: the upstream + ``target``. With one, the upstream URL
        itself, with ``target``'s query appended (after the upstream's own, with ``&``); but a
        well-known URI (``/.well-known/...``) and a 2024-11-05 message POST (``session_id`` in the
        query) go to the upstream's origin + ``target``.
        """
        if not self.endpoint:
            return self.upstream + target
        path, sep, query = target.partition("?")
        if path.startswith("/.well-known/") or legacy_session_id(target):
            return self.upstream_origin + target
        if not sep or not query:
            return self.upstream
        return self.upstream + ("&" if "?" in self.upstream else "?") + query

    def _next_exchange_id(self) -> str:
        self._n_exchanges += 1
        return f"{self._run_id}-{self._n_exchanges}"

    # -- ASGI endpoint ---------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        token = object()
        self._open.add(token)
        relayed = False
        try:
            response = await self._handle(request, token)
            relayed = isinstance(response, _StreamingPassThrough)
            return response
        finally:
            if not relayed:
                self._open.discard(token)

    async def _handle(self, request: Request, token: object) -> Response:
        reader = RequestBody(request.receive, self.max_body, self.idle_timeout)
        try:
            body = await reader.read_head()
        except ClientGone:
            return Response(status_code=499)  # the request never arrived whole: nothing was sent upstream
        except TimeoutError:
            return Response(f"mcptrace capture: no request body bytes for {self.idle_timeout:g} s\n",
                            status_code=408, media_type="text/plain", headers={"connection": "close"})
        ts_req = utc_now()
        scope = request.scope
        raw_target = scope.get("raw_path") or request.url.path.encode()
        query = scope.get("query_string") or b""
        target = raw_target.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        client = request.client
        req_raw = list(request.headers.raw)
        fwd_headers = [
            (k, decodable_codings(v) if k.lower() == b"accept-encoding" else v)
            for k, v in req_raw
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        ]
        req_headers = self.redaction.redact_headers(req_raw)
        session = req_headers.get("mcp-session-id")
        legacy_sid = None if session else legacy_session_id(target)
        http: dict[str, Any] = {
            "method": request.method,
            "path": self.redaction.redact_query(target),
            "status": None,
            "request_headers": req_headers,
            "response_headers": {},
            "sse_event_id": None,
            "mcp_session_id": session or legacy_sid,
            "exchange_id": self._next_exchange_id(),
        }
        if legacy_sid:  # a POST to a 2024-11-05 message endpoint: the session is the connection
            ex = Exchange("sse", legacy_sid, http)
            ex.mcp = True
        else:
            ex = Exchange("streamable_http", f"{client.host}:{client.port}" if client else "unknown", http)
            ex.mcp = session is not None or "mcp-protocol-version" in req_headers or "last-event-id" in req_headers
        host = request.headers.get("host")
        ex.proxy_origin = f"{request.url.scheme}://{host}" if host else ""
        if reader.cut:  # streamed upstream; its first bytes are what is recorded
            body_text = body[: RAW_NOTE * 16].decode("utf-8", errors="replace")
            ex.req_cut = {"bytes": reader.size}
            ok, content = False, reader.stream()
            if "content-length" in request.headers:
                fwd_headers.append((b"content-length", request.headers["content-length"].encode("latin-1")))
        else:
            body_text = body.decode("utf-8", errors="replace") if body else ""
            content = body or None
        parsed, ok = parse_json_message(body_text) if body_text.strip() and not reader.cut else (None, False)
        if ok and is_jsonrpc(parsed):
            ex.mcp = ex.parsed_ok = True
            ex.pending = message_ids(parsed, requests=True)
        if self.har is not None:
            ex.har = self.har.start(ts_req, request, body, ex.conn)
        if legacy_sid and not reader.cut:
            # 2024-11-05: the response comes back on the GET stream, possibly before this POST's own
            # "202 Accepted" does, so the request is written now (its status stays null; a failure of
            # the POST adds a record with the status and error).
            self.recorder.write_c2s(ex, None, body_text)

        upstream_req = self.client.build_request(
            request.method, self.upstream_url(target), headers=fwd_headers, content=content
        )
        upstream: httpx.Response | None = None
        send_error: httpx.HTTPError | None = None
        disconnected = False
        try:
            # Wait for the upstream response headers, but give up (closing the upstream connection) if the
            # client goes away first: under 2026-07-28 closing the stream *is* the cancellation, so it has
            # to reach the server.
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    nonlocal disconnected
                    await reader.done.wait()  # (the body stream reads the client until then)
                    while True:
                        message = await request.receive()
                        if message["type"] == "http.disconnect":
                            disconnected = True
                            tg.cancel_scope.cancel()
                            return

                async def send_upstream() -> None:
                    nonlocal upstream, send_error
                    try:
                        upstream = await self.client.send(upstream_req, stream=True)
                    except (httpx.HTTPError, BodyAborted) as exc:
                        send_error = exc
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_disconnect)
                tg.start_soon(send_upstream)
        finally:
            if ex.req_cut is not None:
                ex.req_cut = {"bytes": reader.size, **({} if reader.complete else {"incomplete": True})}
                if ex.har is not None:
                    self.har.request_size(ex.har, reader.size)
            if upstream is None and send_error is None:
                # The client went away (or we were cancelled) before any upstream response: the request
                # was still sent, so record it, with no status.
                reason = "proxy_shutdown" if self.stopping else "client_disconnected"
                self.recorder.write_c2s(ex, ts_req, body_text, error=f"{reason}: before the response headers")
                if ex.har is not None:
                    self.har.finish(ex.har, utc_now(), error="the client disconnected before the response")
        if reader.error is not None:  # the client's body stopped: nothing to answer it with
            self.recorder.write_c2s(ex, ts_req, body_text, error=reader.error)
            if ex.har is not None:
                self.har.finish(ex.har, utc_now(), error=reader.error)
            return Response(status_code=408 if "timeout" in reader.error else 499, headers={"connection": "close"})
        if send_error is not None:
            exc = send_error
            error = f"upstream_error: {type(exc).__name__}: {exc}".rstrip(": ")
            self.recorder.write_c2s(ex, ts_req, body_text, status=502, error=error)
            if ex.har is not None:
                self.har.finish(ex.har, utc_now(), status=502, text=f"upstream error: {type(exc).__name__}",
                                error=error)
            return Response(f"mcptrace capture: upstream error: {type(exc).__name__}\n", status_code=502,
                            media_type="text/plain")
        if upstream is None or disconnected:
            if upstream is not None:
                http["status"] = upstream.status_code
                with anyio.CancelScope(shield=True):
                    await upstream.aclose()
                self.recorder.write_c2s(ex, ts_req, body_text, error="client_disconnected: before the response headers")
                if ex.har is not None:
                    self.har.finish(ex.har, utc_now(), error="the client disconnected before the response")
            return Response(status_code=499)

        resp_raw = upstream.headers.raw
        if ex.har is not None:
            self.har.response(ex.har, utc_now(), upstream.status_code, upstream.reason_phrase,
                              upstream.http_version, resp_raw)
        resp_headers = self.redaction.redact_headers(resp_raw)
        if not http["mcp_session_id"] and resp_headers.get("mcp-session-id"):
            http["mcp_session_id"] = resp_headers["mcp-session-id"]  # initialize: the server assigns it here
            ex.mcp = True
        content_type = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
        ex.sse = content_type == "text/event-stream"
        if ex.sse:
            ex.parser = SSEParser()
            ex.mcp = True  # an event stream through an MCP proxy: a POST's response, a GET stream
        encoding = upstream.headers.get("content-encoding", "")
        ex.decoder = BodyDecoder(encoding, cap=self.max_body)
        # The request is written now, with the outcome's metadata (status, the session id the server
        # assigned): before any of its response's envelopes, with the time it arrived.
        self.recorder.write_c2s(ex, ts_req, body_text, status=upstream.status_code, response_headers=resp_headers)
        if not ex.decoder.supported and (ex.mcp or ex.sse):
            # (Accept-Encoding is narrowed to what we can undo, so a server should not do this.)
            self.recorder.note(ex, f"unreadable_body: content-encoding {encoding!r} cannot be decoded; its messages "
                           "are forwarded but not recorded")

        keep_length = not ex.sse and "transfer-encoding" not in upstream.headers
        out_headers = [
            (k, v) for k, v in resp_raw
            if k.decode("latin-1").lower() not in _RESPONSE_DROP or (keep_length and k.lower() == b"content-length")
        ]
        return _StreamingPassThrough(self._relay(upstream, ex, token), status_code=upstream.status_code,
                                     headers=out_headers)

    async def _relay(self, upstream: httpx.Response, ex: Exchange, token: object) -> AsyncIterator[bytes]:
        """Forward the upstream body chunk by chunk as it arrives, recording as it goes."""
        outcome: str | None = "client_disconnected: the client closed the stream"
        broke: BaseException | None = None
        ended: str | None = None
        try:
            decoder = ex.decoder
            assert decoder is not None
            async for chunk in upstream.aiter_raw():
                out = self.recorder.on_chunk(ex, chunk)
                while decoder.has_more:  # a compressed chunk decodes in pieces, other connections between
                    await anyio.lowlevel.checkpoint()
                    self.recorder.on_chunk(ex, b"")
                yield out
            outcome = None
            ended = self.recorder.on_body_end(ex)  # the HAR entry ends when the envelope says the body did
        except httpx.HTTPError as exc:
            logger.debug("upstream stream ended with %r", exc)
            outcome = f"upstream_reset: {type(exc).__name__}: {exc}".rstrip(": ")
            broke = exc
        except Exception as exc:  # a bug of ours must not take the proxy down, nor go unnoticed
            logger.exception("relaying %s %s failed", ex.http["method"], ex.http["path"])
            outcome = f"proxy_error: {type(exc).__name__}: {exc}"
        finally:
            for env in self.recorder.take_deferred(ex):  # a GET stream that ended before its first event
                self.writer.write(env)
            if outcome is not None and self.stopping and outcome.startswith("client_disconnected"):
                outcome = "proxy_shutdown: the capture stopped while the stream was open"
            if outcome is not None and ex.mcp and (ex.pending or not outcome.startswith(("client_disc", "proxy_sh"))):
                # A stream the client itself closed with nothing outstanding is a normal end (GET streams,
                # a POST stream read to its response); anything else is worth a record.
                self.recorder.note(ex, outcome)
            if ex.har is not None:
                self.har.finish(ex.har, ended or utc_now(), error=outcome)
            self._open.discard(token)  # recorded: shutdown need not wait for the rest
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
        if broke is not None:
            # Pass the break on: the client's connection is aborted (no clean end of the body), as if
            # it were talking to the upstream itself.
            raise UpstreamBroke(outcome) from broke

    async def aclose(self) -> None:
        """Shut down: let the exchanges uvicorn just cancelled record how they ended, then close."""
        self.stopping = True
        deadline = time.monotonic() + 2.0
        while self._open and time.monotonic() < deadline:
            await anyio.sleep(0.01)
        await self.client.aclose()
        self.writer.close()
        if self.har is not None:
            self.har.close()


class _StreamingPassThrough(StreamingResponse):
    """StreamingResponse whose headers are exactly the upstream's (minus hop-by-hop)."""

    def __init__(self, content: AsyncIterator[bytes], status_code: int, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(content, status_code=status_code)
        self.raw_headers = [(k.lower(), v) for k, v in headers]


def build_app(upstream: str, out: str, har: str | None = None, *, redact: bool = True,
              proxy: LoggingProxy | None = None, redaction: RedactionPolicy | None = None) -> Starlette:
    """The ASGI app of the proxy (``proxy``, else a new :class:`LoggingProxy` of these arguments)."""
    proxy = proxy or LoggingProxy(upstream, out, har=har, redact=redact, redaction=redaction)
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]

    async def endpoint(request: Request) -> Response:
        return await proxy.handle(request)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await proxy.aclose()

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)], lifespan=lifespan)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, proxy: LoggingProxy) -> None:
        super().__init__(config)
        self._proxy = proxy

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._proxy.stopping = True
        super().handle_exit(sig, frame)


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request's headers are not all in within
    ``deadline`` seconds of the connection (or the previous response): a trickling client is cut off."""

    deadline = DEFAULT_IDLE_TIMEOUT

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def _arm(self) -> None:
        self.loop.call_later(self.deadline, self._check, self.cycle)

    def _check(self, cycle: Any) -> None:
        if self.cycle is cycle and (cycle is None or cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def serve(listen: tuple[str, int], upstream: str, out: str, *, har: str | None = None, redact: bool = True,
          log_level: str = "warning", banner: bool = True, redaction: RedactionPolicy | None = None,
          max_body: int = DEFAULT_MAX_BODY, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> int:
    """Bind ``listen``, print where it listens and writes, and proxy until SIGTERM/SIGINT.

    ``redaction`` (else the default policy, off when ``redact`` is false) applies to the envelopes
    and the HAR; ``max_body`` (bytes, default 16 MiB) and ``idle_timeout`` (seconds, default 60): see
    the module's Limits. Returns the exit status: 0 after a signal, 1 when ``listen`` cannot be bound.
    """
    host, port = listen
    proxy = LoggingProxy(upstream, out, har=har, redact=redact, redaction=redaction, max_body=max_body,
                         idle_timeout=idle_timeout)
    app = build_app(upstream, out, proxy=proxy)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so, and without it small
    # SSE writes wait on the client's delayed ACKs (Nagle), ~40 ms each.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        print(f"mcptrace capture http: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    # listening before the banner: a client that connects as soon as it reads it waits in the backlog
    # until uvicorn accepts instead of being refused
    sock.listen(2048)
    sock.set_inheritable(True)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
    if banner:
        print(f"mcptrace capture http: listening on http://{shown}:{bound[1]} -> {proxy.upstream}, "
              f"recording to {os.path.abspath(out)}" + (f" (HAR: {os.path.abspath(har)})" if har else ""),
              file=sys.stderr, flush=True)
    protocol = type("_Protocol", (_HeaderDeadline,), {"deadline": idle_timeout})
    config = uvicorn.Config(app, host=host, port=bound[1], log_level=log_level, timeout_graceful_shutdown=3,
                            lifespan="on", http=protocol, timeout_keep_alive=max(1, int(idle_timeout)))
    logging.getLogger("uvicorn.error").addFilter(QuietUpstreamBreaks(proxy))  # recorded, not a proxy failure
    # uvicorn re-raises the signal it caught after its graceful shutdown, with the handlers it found:
    # make that a normal exit (status 0) rather than death by SIGTERM.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    try:
        _Server(config, proxy).run(sockets=[sock])
    except SystemExit:
        pass
    return 0


def run_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        listen = parse_listen(args.listen, allow_remote=args.allow_remote)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if not args.upstream.startswith(("http://", "https://")):
        parser.error(f"--upstream must be an http:// or https:// URL, got {args.upstream!r}")
    try:
        redaction = redaction_from_args(args)
    except ValueError as exc:
        parser.error(f"--secret-keys: {exc}")
    try:
        return serve(listen, args.upstream, args.out, har=args.har, redaction=redaction,
                     log_level=args.log_level, banner=not args.quiet, max_body=args.max_body,
                     idle_timeout=args.idle_timeout)
    except OSError as exc:
        print(f"mcptrace capture http: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mcptrace.capture.http",
        description="Logging reverse proxy for MCP Streamable HTTP and HTTP+SSE; writes envelope JSONL.",
    )
    add_http_arguments(parser)
    return run_args(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
