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
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
import zlib
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


class LoggingProxy:
    def __init__(self, upstream: str, out: str, *, connect_timeout: float = 10.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.writer = JsonlWriter(out)
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
            return Response(f"upstream error: {type(exc).__name__}", status_code=502, media_type="text/plain")
        finally:
            if upstream is None and not http["status"]:
                # Client disconnected (or we were cancelled) before any upstream response: the request
                # was still sent, so record it with no status.
                self._write_c2s(ts_req, conn, http, body)
        if upstream is None or disconnected:
            if upstream is not None:
                await upstream.aclose()
            return Response(status_code=499)

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
                self._relay_sse(upstream, decoder, conn, http), status_code=upstream.status_code, headers=out_headers
            )

        # Anything else is read to the end (JSON bodies are small and complete) and sent back.
        chunks: list[bytes] = []
        try:
            async for chunk in upstream.aiter_raw():  # raw: forwarded with its content-encoding intact
                chunks.append(chunk)
        except httpx.HTTPError:
            pass
        finally:
            await upstream.aclose()
        raw = b"".join(chunks)
        ts_resp = utc_now()
        if content_type in ("application/json", "application/json-rpc") or content_type.endswith("+json"):
            decoded = decoder.feed(raw)
            if decoder.supported and decoded.strip():
                message, ok = parse_json_message(decoded.decode("utf-8", errors="replace"))
                if ok:
                    self.writer.write(self._envelope(ts_resp, SERVER_TO_CLIENT, conn, dict(http), message))
        response = Response(raw, status_code=upstream.status_code)
        response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers]
        response.raw_headers.append((b"content-length", str(len(raw)).encode()))
        return response

    async def _relay_sse(
        self, upstream: httpx.Response, decoder: _BodyDecoder, conn: str, http: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        parser = SSEParser()
        try:
            async for chunk in upstream.aiter_raw():
                ts = utc_now()
                # Parse (cheap) before forwarding so a client that disconnects right after this chunk
                # cannot make us lose its events; the chunk itself is forwarded immediately after.
                if decoder.supported:
                    try:
                        events = parser.feed(decoder.feed(chunk))
                    except ValueError:
                        decoder.supported = False
                        events = []
                    for ev in events:
                        if ev.data == "":
                            continue  # priming / keep-alive event: not a message
                        message, ok = parse_json_message(ev.data)
                        if ok:
                            env_http = dict(http, sse_event_id=ev.id)
                            self.writer.write(self._envelope(ts, SERVER_TO_CLIENT, conn, env_http, message))
                yield chunk
        except httpx.HTTPError as exc:
            logger.debug("upstream stream ended with %r", exc)
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()
        self.writer.close()


class _StreamingPassThrough(StreamingResponse):
    """StreamingResponse whose headers are exactly the upstream's (minus hop-by-hop)."""

    def __init__(self, content: AsyncIterator[bytes], status_code: int, headers: list[tuple[str, str]]) -> None:
        super().__init__(content, status_code=status_code)
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def build_app(upstream: str, out: str) -> Starlette:
    proxy = LoggingProxy(upstream, out)
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
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    host, port = args.listen
    app = build_app(args.upstream, args.out)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=args.log_level, timeout_graceful_shutdown=3, lifespan="on"
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
