"""The sample MCP server ("weather"), built on the official SDK's ``MCPServer``, with OpenTelemetry on.

The SDK's built-in ``OpenTelemetryMiddleware`` emits one SERVER span per inbound message (continuing
the ``traceparent`` found in ``params._meta``); this process only installs a TracerProvider.

    python -m mcptrace.samples.server --transport stdio --service-name weather-mcp-stdio \\
        --downstream http://127.0.0.1:8001 [--otlp-endpoint URL]
    python -m mcptrace.samples.server --transport http --port 8002 ...
    python -m mcptrace.samples.server --transport stdio --service-name weather-mcp-plain --crash-tool ...

Tools: ``search`` (60-150 ms, deterministic per query), ``get_forecast`` (calls the downstream
service forwarding W3C trace context), ``get_alerts`` (calls it WITHOUT forwarding context, like a
server that forgot SEP-2028), ``divide`` (b=0 -> ``isError: true``), ``slow_report`` (~3 s, meant
to be timed out and cancelled by the client), ``long_task`` (progress notifications). Resource
``weather://stations``; reading an unknown ``weather://`` URI is a JSON-RPC error (-32602).

``--crash-tool`` (scenario C only, so A and B list the same tools as before) also registers
``crash_worker``: it sleeps 0.2 s, force-flushes this process's finished spans to the OTLP endpoint,
then ends the process with ``os._exit(137)`` (as if OOM-killed), so its request is never answered.
Its own SERVER span is still open at that point, so it is never exported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import zlib
from typing import Any

from mcptrace.samples._otel import serve_uvicorn, setup_tracing, shutdown_tracing

import anyio  # noqa: E402
import httpx  # noqa: E402
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402
from mcp_types import INVALID_PARAMS  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.propagate import inject  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

_tracer = trace.get_tracer("mcptrace.samples.server")

weather = MCPServer("weather", version="0.1.0", instructions="Sample weather server for mcptrace.", log_level="WARNING")
_downstream_url = "http://127.0.0.1:8001"
_http: httpx.AsyncClient | None = None


def _client() -> httpx.AsyncClient:
    global _http
    if _http is None:
        _http = httpx.AsyncClient(base_url=_downstream_url, timeout=10)
    return _http


async def _downstream_get(route: str, params: dict[str, str], *, propagate: bool) -> httpx.Response:
    """GET the downstream service inside a CLIENT span; ``propagate`` decides whether traceparent goes out."""
    attrs = {
        "http.request.method": "GET",
        "url.full": f"{_downstream_url}{route}",
        "server.address": httpx.URL(_downstream_url).host,
        "server.port": httpx.URL(_downstream_url).port or 80,
    }
    with _tracer.start_as_current_span(f"GET {route}", kind=SpanKind.CLIENT, attributes=attrs) as span:
        headers: dict[str, str] = {}
        if propagate:
            inject(headers)  # W3C traceparent/tracestate of the CLIENT span
        resp = await _client().get(route, params=params, headers=headers)
        span.set_attribute("http.response.status_code", resp.status_code)
        if resp.status_code >= 400:
            span.set_status(StatusCode.ERROR)
        return resp


@weather.tool()
async def search(query: str) -> str:
    """Search the (fake) knowledge base."""
    await anyio.sleep((60 + zlib.crc32(query.encode()) % 91) / 1000)
    return f"3 results for {query!r}: intro, spec, faq"


@weather.tool()
async def get_forecast(city: str) -> str:
    """Weather forecast for a city (calls downstream-api, forwarding trace context)."""
    resp = await _downstream_get("/forecast", {"city": city}, propagate=True)
    if resp.status_code == 404:
        # An unknown city is treated as a protocol-level invalid-params error (JSON-RPC error response).
        raise MCPError(code=INVALID_PARAMS, message=f"unknown city: {city}", data={"city": city})
    resp.raise_for_status()
    return json.dumps(resp.json())


@weather.tool()
async def get_alerts(region: str) -> str:
    """Weather alerts for a region (calls downstream-api but forgets to forward trace context)."""
    resp = await _downstream_get("/alerts", {"region": region}, propagate=False)
    if resp.status_code == 404:
        raise ToolError(f"unknown region: {region}")
    resp.raise_for_status()
    return json.dumps(resp.json())


@weather.tool()
async def divide(a: float, b: float) -> float:
    """Divide a by b."""
    if b == 0:
        raise ToolError("division by zero")
    return a / b


@weather.tool()
async def slow_report(days: int) -> str:
    """A slow report (about 3 s)."""
    await anyio.sleep(3.0)
    return f"report over {days} days: nothing unusual"


@weather.tool()
async def long_task(steps: int, ctx: Context) -> str:
    """A multi-step task that reports progress after each step."""
    for i in range(steps):
        await anyio.sleep(0.04)
        await ctx.report_progress(i + 1, steps, f"step {i + 1}/{steps}")
    return f"done in {steps} steps"


async def crash_worker(reason: str) -> str:
    """Do some work, then die mid-call (the process is killed; the call is never answered)."""
    await anyio.sleep(0.2)
    # A real kill gives no chance to flush; here, ship the spans that already ended (everything but
    # this call's still-open SERVER span) so the trace dump shows what the server did before dying.
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_millis=10_000)
    os._exit(137)  # like a kill: no finally, no atexit, no response


@weather.resource("weather://stations", name="stations", mime_type="application/json")
def stations() -> str:
    """Known weather stations."""
    return json.dumps(["paris", "tokyo", "berlin", "lisbon"])


class MemoryEventStore(EventStore):
    """In-memory resumability store: makes the server send SSE event ids and priming events.

    Event ids are sequential (``e1``, ``e2``...) so captures have the same shape on every run.
    """

    def __init__(self, max_events: int = 10_000) -> None:
        self._events: list[tuple[str, str, Any]] = []  # (event_id, stream_id, message or None)
        self._n = 0
        self._max = max_events

    async def store_event(self, stream_id: str, message: Any) -> str:
        self._n += 1
        event_id = f"e{self._n}"
        self._events.append((event_id, stream_id, message))
        del self._events[: -self._max]
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        ids = [e[0] for e in self._events]
        if last_event_id not in ids:
            return None
        idx = ids.index(last_event_id)
        stream_id = self._events[idx][1]
        for event_id, sid, message in self._events[idx + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    global _downstream_url
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.server")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--service-name", default="weather-mcp")
    parser.add_argument("--otlp-endpoint", default=None)
    parser.add_argument("--downstream", default=_downstream_url)
    parser.add_argument("--crash-tool", action="store_true", help="also register crash_worker (scenario C)")
    args = parser.parse_args(argv)
    _downstream_url = args.downstream.rstrip("/")
    if args.crash_tool:
        weather.add_tool(crash_worker)
    logging.getLogger("mcp").setLevel(logging.WARNING)

    provider = setup_tracing(args.service_name, args.otlp_endpoint, **{"service.instance.id": args.transport})
    try:
        if args.transport == "stdio":
            # SIGTERM (e.g. the client's kill escalation) must still flush spans.
            signal.signal(signal.SIGTERM, _raise_interrupt)
            try:
                anyio.run(weather.run_stdio_async)
            except KeyboardInterrupt:
                pass
        else:
            app = weather.streamable_http_app(host=args.host, event_store=MemoryEventStore(), retry_interval=1000)
            serve_uvicorn(app, args.host, args.port)
    finally:
        # The stdio client escalates to SIGTERM 2 s after closing our stdin; do not let that abort the flush.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shutdown_tracing(provider)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
