"""Logging reverse proxy for MCP Streamable HTTP (starlette + uvicorn + httpx).

    python -m mcptrace.capture.http --listen 127.0.0.1:PORT --upstream URL --out FILE

Every request is forwarded to ``URL`` + the request path (so ``--upstream http://127.0.0.1:9000``
and a client pointed at ``http://127.0.0.1:PORT/mcp`` reach ``http://127.0.0.1:9000/mcp``).
POST, GET and DELETE (and anything else) are forwarded; ``text/event-stream`` responses are
streamed through chunk by chunk as they arrive. One envelope per JSON-RPC message is appended to
``--out``::

    {"ts", "direction", "transport": "streamable_http", "connection_id": "<client host:port>",
     "http": {"method", "path", "status", "request_headers", "response_headers", "sse_event_id"},
     "message": <JSON-RPC object or batch array>}

Client->server envelopes carry the time the request body arrived and are written once the upstream
response headers are known. A JSON response body gives one server->client envelope; an event
stream gives one envelope per SSE event whose data is JSON, stamped when the event arrived (events
with empty data - priming events - are not messages and are skipped). Header names are lower-cased
and credential headers are redacted. The proxy only binds to loopback addresses.

With ``--har FILE`` the proxy also keeps a HAR 1.2 record of every exchange (see :class:`HarRecorder`):
request and response headers (credential values redacted), the request body as ``postData.text``, the
response body as received (content-encoding undone; event streams verbatim, priming events and
comments included) as ``response.content.text``, the timings, the client address as ``connection``,
and for event streams ``_eventSourceMessages`` (the event-stream sibling of Chrome's
``_webSocketMessages``) with each event's arrival time. The file is rewritten atomically (a temporary
file, then a rename) as exchanges complete - at most once a second, the last change at most a second
late - and once more on shutdown, with the exchanges still open marked by ``_error``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import logging
import os
import sys
import time
import zlib
from datetime import UTC, datetime
from collections.abc import AsyncIterator
from typing import Any

try:
    import anyio
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the HTTP capture proxy needs httpx, starlette and uvicorn ({_exc}); "
        "install them with: pip install 'mcptrace[samples]'"
    ) from _exc

from mcptrace.capture._common import (
    CLIENT_TO_SERVER,
    REDACTED,
    REDACTED_HEADERS,
    SERVER_TO_CLIENT,
    JsonlWriter,
    parse_json_message,
    redact_headers,
    utc_now,
)
from mcptrace.capture.sse import SSEParser

logger = logging.getLogger("mcptrace.capture.http")

# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded; host is set by httpx for the upstream.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_RESPONSE_DROP = frozenset(_HOP_BY_HOP - {"proxy-authenticate"}) | {"content-length"}


class _BodyDecoder:
    """Decode a content-encoded body incrementally for parsing (the raw bytes are what is forwarded)."""

    def __init__(self, encoding: str) -> None:
        enc = encoding.strip().lower()
        self.supported = enc in ("", "identity", "gzip", "x-gzip", "deflate")
        self._z = zlib.decompressobj(wbits=47) if enc in ("gzip", "x-gzip", "deflate") else None

    def feed(self, chunk: bytes) -> bytes:
        if self._z is None:
            return chunk
        try:
            return self._z.decompress(chunk)
        except zlib.error:
            self.supported = False
            return b""


def _parse_utc(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _ms(a: datetime, b: datetime) -> float:
    """Milliseconds from ``a`` to ``b``, exact to the microsecond."""
    delta = b - a
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) / 1000


def _har_headers(items: Any) -> list[dict[str, str]]:
    out = []
    for name, value in items:
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        value = value.decode("latin-1") if isinstance(value, bytes) else value
        out.append({"name": name, "value": REDACTED if name.lower() in REDACTED_HEADERS else value})
    return out


class _HarExchange:
    """One exchange being recorded; ``entry`` is the HAR entry, the rest is bookkeeping."""

    __slots__ = ("t0", "t_headers", "body", "base64", "truncated", "events", "entry", "done")

    def __init__(self, t0: datetime, entry: dict[str, Any]) -> None:
        self.t0 = t0
        self.t_headers: datetime | None = None
        self.body = bytearray()
        self.base64 = False
        self.truncated = False
        self.events: list[dict[str, Any]] | None = None
        self.entry = entry
        self.done = False


class HarRecorder:
    """Keeps a HAR 1.2 log of the proxied exchanges and writes it to ``path``.

    Entries are kept in memory for the whole run (a debugging proxy's traffic); a response body
    beyond ``max_body`` bytes is cut (``content.comment`` says so). Header values of
    ``authorization``, ``proxy-authorization``, ``cookie``, ``set-cookie`` and ``x-api-key`` are
    ``[REDACTED]``; the ``cookies`` arrays stay empty.
    """

    def __init__(self, path: str, *, max_body: int = 32 * 1024 * 1024, min_interval: float = 1.0) -> None:
        self.path = path
        self.max_body = max_body
        self.min_interval = min_interval
        self.exchanges: list[_HarExchange] = []
        self._last_write = 0.0
        self._dirty = False
        self._scheduled = False
        self.write()  # an empty, valid HAR from the start

    def start(self, ts: str, request: Any, body: bytes, connection: str) -> _HarExchange:
        headers = list(request.headers.raw)
        ctype = request.headers.get("content-type", "")
        req: dict[str, Any] = {
            "method": request.method,
            "url": str(request.url),
            "httpVersion": f"HTTP/{request.scope.get('http_version', '1.1')}",
            "headers": _har_headers(headers),
            "queryString": [{"name": k, "value": v} for k, v in request.query_params.multi_items()],
            "cookies": [],
            "headersSize": -1,
            "bodySize": len(body),
        }
        if body:
            req["postData"] = {"mimeType": ctype, "text": body.decode("utf-8", errors="replace")}
        entry = {"startedDateTime": ts, "time": 0, "request": req,
                 "response": {"status": 0, "statusText": "", "httpVersion": "", "headers": [], "cookies": [],
                              "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "",
                              "headersSize": -1, "bodySize": -1},
                 "cache": {}, "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0,
                                          "wait": 0, "receive": 0},
                 "connection": connection}
        ex = _HarExchange(_parse_utc(ts), entry)
        self.exchanges.append(ex)
        return ex

    def response(self, ex: _HarExchange, ts: str, status: int, reason: str, http_version: str,
                 headers: Any) -> None:
        ex.t_headers = _parse_utc(ts)
        ctype = next((v.decode("latin-1") for k, v in headers if k.lower() == b"content-type"), "")
        location = next((v.decode("latin-1") for k, v in headers if k.lower() == b"location"), "")
        ex.entry["response"].update({"status": status, "statusText": reason, "httpVersion": http_version,
                                     "headers": _har_headers(headers), "redirectURL": location})
        ex.entry["response"]["content"]["mimeType"] = ctype or "x-unknown"
        if ctype.split(";")[0].strip().lower() == "text/event-stream":
            ex.events = []

    def body(self, ex: _HarExchange, data: bytes, *, decoded: bool = True) -> None:
        if not data or ex.truncated:
            return
        if not decoded:
            ex.base64 = True
        room = self.max_body - len(ex.body)
        if len(data) > room:
            data, ex.truncated = data[:room], True
        ex.body += data

    def event(self, ex: _HarExchange, ts: str, ev: Any) -> None:
        if ex.events is not None and not ex.truncated:
            t = _parse_utc(ts)
            ex.events.append({"time": round(t.timestamp(), 6), "eventName": ev.event, "eventId": ev.id or "",
                              "data": ev.data})

    def finish(self, ex: _HarExchange, ts: str, *, error: str | None = None, status: int | None = None,
               text: str | None = None) -> None:
        """The exchange ended at ``ts`` (``status``/``text``: a response the proxy made itself)."""
        if ex.done:
            return
        ex.done = True
        end = _parse_utc(ts)
        resp = ex.entry["response"]
        if status is not None:
            resp.update({"status": status, "statusText": "Bad Gateway" if status == 502 else ""})
            resp["content"]["mimeType"] = "text/plain"
            ex.body = bytearray((text or "").encode())
        content = resp["content"]
        content["size"] = len(ex.body)
        if ex.body or resp["status"]:
            if ex.base64:
                content["text"], content["encoding"] = base64.b64encode(bytes(ex.body)).decode(), "base64"
            else:
                content["text"] = ex.body.decode("utf-8", errors="replace")
        if ex.truncated:
            content["comment"] = f"truncated by mcptrace capture after {self.max_body} bytes"
        resp["bodySize"] = len(ex.body) if resp["status"] else -1
        if ex.events is not None:
            ex.entry["_eventSourceMessages"] = ex.events
        headers_at = ex.t_headers or end
        ex.entry["timings"].update({"wait": _ms(ex.t0, headers_at), "receive": _ms(headers_at, end)})
        ex.entry["time"] = _ms(ex.t0, end)
        if error:
            resp["_error"] = error
        ex.body = bytearray()
        self._dirty = True
        wait = self.min_interval - (time.monotonic() - self._last_write)
        if wait <= 0:
            self.write()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.write()
            else:
                self._scheduled = True
                loop.call_later(wait, self._deferred_write)

    def _deferred_write(self) -> None:
        self._scheduled = False
        if self._dirty:
            self.write()

    def close(self) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for ex in self.exchanges:
            if not ex.done:
                self.finish(ex, now, error="the capture ended before the exchange did")
        self.write()

    def write(self) -> None:
        entries = sorted((ex.entry for ex in self.exchanges if ex.done), key=lambda e: e["startedDateTime"])
        doc = {"log": {"version": "1.2", "creator": {"name": "mcptrace capture", "version": "0.1"},
                       "pages": [], "entries": entries}}
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, self.path)
        self._last_write = time.monotonic()
        self._dirty = False


class LoggingProxy:
    def __init__(self, upstream: str, out: str, *, connect_timeout: float = 10.0, har: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.writer = JsonlWriter(out)
        self.har = HarRecorder(har) if har else None
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=connect_timeout, read=None, write=30.0, pool=None),
            follow_redirects=False,
        )

    # -- envelopes -------------------------------------------------------------------------------
    def _envelope(
        self, ts: str, direction: str, connection_id: str, http: dict[str, Any], message: Any
    ) -> dict[str, Any]:
        return {
            "ts": ts,
            "direction": direction,
            "transport": "streamable_http",
            "connection_id": connection_id,
            "http": http,
            "message": message,
        }

    def _write_c2s(self, ts: str, conn: str, http: dict[str, Any], body: bytes) -> None:
        if not body.strip():
            return
        message, ok = parse_json_message(body.decode("utf-8", errors="replace"))
        if ok:
            self.writer.write(self._envelope(ts, CLIENT_TO_SERVER, conn, dict(http, sse_event_id=None), message))

    # -- ASGI endpoint ---------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        body = await request.body()
        ts_req = utc_now()
        client = request.client
        conn = f"{client.host}:{client.port}" if client else "unknown"
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        req_headers_raw = [(k, v) for k, v in request.headers.raw]
        fwd_headers = [(k, v) for k, v in req_headers_raw if k.decode("latin-1").lower() not in _HOP_BY_HOP]
        http: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "status": None,
            "request_headers": redact_headers(req_headers_raw),
            "response_headers": {},
            "sse_event_id": None,
        }
        har = self.har.start(ts_req, request, body, conn) if self.har else None

        upstream_req = self.client.build_request(
            request.method, self.upstream + path, headers=fwd_headers, content=body or None
        )
        upstream: httpx.Response | None = None
        disconnected = False
        try:
            # Wait for the upstream response headers, but give up (closing the upstream connection) if the
            # client goes away first: under 2026-07-28 closing the stream *is* the cancellation, so it has
            # to reach the server.
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    nonlocal disconnected
                    while True:
                        message = await request.receive()
                        if message["type"] == "http.disconnect":
                            disconnected = True
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_disconnect)
                upstream = await self.client.send(upstream_req, stream=True)
                tg.cancel_scope.cancel()
        except httpx.HTTPError as exc:
            http["status"] = 502
            self._write_c2s(ts_req, conn, http, body)
            if har is not None:
                self.har.finish(har, utc_now(), status=502, text=f"upstream error: {type(exc).__name__}",
                                error=f"upstream error: {exc!r}")
            return Response(f"upstream error: {type(exc).__name__}", status_code=502, media_type="text/plain")
        finally:
            if upstream is None and not http["status"]:
                # Client disconnected (or we were cancelled) before any upstream response: the request
                # was still sent, so record it with no status.
                self._write_c2s(ts_req, conn, http, body)
                if har is not None:
                    self.har.finish(har, utc_now(), error="the client disconnected before the response")
        if upstream is None or disconnected:
            if upstream is not None:
                await upstream.aclose()
                if har is not None:
                    self.har.finish(har, utc_now(), error="the client disconnected before the response")
            return Response(status_code=499)
        if har is not None:
            self.har.response(har, utc_now(), upstream.status_code, upstream.reason_phrase,
                              upstream.http_version, upstream.headers.raw)

        http["status"] = upstream.status_code
        http["response_headers"] = redact_headers(upstream.headers.raw)
        self._write_c2s(ts_req, conn, http, body)

        out_headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in upstream.headers.raw
            if k.decode("latin-1").lower() not in _RESPONSE_DROP
        ]
        content_type = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
        decoder = _BodyDecoder(upstream.headers.get("content-encoding", ""))

        if content_type == "text/event-stream":
            return _StreamingPassThrough(
                self._relay_sse(upstream, decoder, conn, http, har),
                status_code=upstream.status_code,
                headers=out_headers,
            )

        # Anything else is read to the end (JSON bodies are small and complete) and sent back.
        chunks: list[bytes] = []
        body_error = None
        try:
            async for chunk in upstream.aiter_raw():  # raw: forwarded with its content-encoding intact
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            body_error = f"upstream body ended early: {exc!r}"
        finally:
            await upstream.aclose()
        raw = b"".join(chunks)
        ts_resp = utc_now()
        is_json = content_type in ("application/json", "application/json-rpc") or content_type.endswith("+json")
        decoded = decoder.feed(raw) if (is_json or har is not None) else b""
        if har is not None:
            if decoder.supported:
                self.har.body(har, decoded)
            else:
                self.har.body(har, raw, decoded=False)
            self.har.finish(har, ts_resp, error=body_error)
        if is_json:
            if decoder.supported and decoded.strip():
                message, ok = parse_json_message(decoded.decode("utf-8", errors="replace"))
                if ok:
                    self.writer.write(self._envelope(ts_resp, SERVER_TO_CLIENT, conn, dict(http), message))
        response = Response(raw, status_code=upstream.status_code)
        response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers]
        response.raw_headers.append((b"content-length", str(len(raw)).encode()))
        return response

    async def _relay_sse(
        self,
        upstream: httpx.Response,
        decoder: _BodyDecoder,
        conn: str,
        http: dict[str, Any],
        har: _HarExchange | None = None,
    ) -> AsyncIterator[bytes]:
        parser = SSEParser()
        har_error: str | None = "the client disconnected before the stream ended"
        try:
            async for chunk in upstream.aiter_raw():
                ts = utc_now()
                # Parse (cheap) before forwarding so a client that disconnects right after this chunk
                # cannot make us lose its events; the chunk itself is forwarded immediately after.
                if har is not None and not decoder.supported:
                    self.har.body(har, chunk, decoded=False)
                if decoder.supported:
                    try:
                        decoded = decoder.feed(chunk)
                        if har is not None:
                            self.har.body(har, decoded, decoded=decoder.supported)
                        events = parser.feed(decoded)
                    except ValueError:
                        decoder.supported = False
                        events = []
                    for ev in events:
                        if har is not None:
                            self.har.event(har, ts, ev)
                        if ev.data == "":
                            continue  # priming / keep-alive event: not a message
                        message, ok = parse_json_message(ev.data)
                        if ok:
                            env_http = dict(http, sse_event_id=ev.id)
                            self.writer.write(self._envelope(ts, SERVER_TO_CLIENT, conn, env_http, message))
                yield chunk
            har_error = None
        except httpx.HTTPError as exc:
            logger.debug("upstream stream ended with %r", exc)
            har_error = f"upstream stream ended early: {exc!r}"
        finally:
            if har is not None:
                self.har.finish(har, utc_now(), error=har_error)
            with anyio.CancelScope(shield=True):
                await upstream.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()
        self.writer.close()
        if self.har is not None:
            self.har.close()


class _StreamingPassThrough(StreamingResponse):
    """StreamingResponse whose headers are exactly the upstream's (minus hop-by-hop)."""

    def __init__(self, content: AsyncIterator[bytes], status_code: int, headers: list[tuple[str, str]]) -> None:
        super().__init__(content, status_code=status_code)
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def build_app(upstream: str, out: str, har: str | None = None) -> Starlette:
    proxy = LoggingProxy(upstream, out, har=har)
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]

    async def endpoint(request: Request) -> Response:
        return await proxy.handle(request)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await proxy.aclose()

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)], lifespan=lifespan)


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    try:
        is_loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if not is_loopback:
        raise argparse.ArgumentTypeError(f"refusing to bind to non-loopback address {host!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mcptrace.capture.http",
        description="Logging reverse proxy for MCP Streamable HTTP; writes envelope JSONL.",
    )
    parser.add_argument("--listen", required=True, type=_parse_listen, help="loopback HOST:PORT to listen on")
    parser.add_argument("--upstream", required=True, help="upstream base URL; the request path is appended")
    parser.add_argument("--out", required=True, help="envelope JSONL file (appended)")
    parser.add_argument("--har", default=None, metavar="FILE",
                        help="also write a HAR 1.2 file of every exchange (rewritten as exchanges complete)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    host, port = args.listen
    app = build_app(args.upstream, args.out, har=args.har)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=args.log_level, timeout_graceful_shutdown=3, lifespan="on"
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
