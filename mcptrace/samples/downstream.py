"""A tiny downstream HTTP service (``downstream-api``) that the sample MCP server calls.

``GET /forecast?city=`` and ``GET /alerts?region=``: each request extracts W3C trace context from the
incoming headers (``opentelemetry.propagate.extract``) and runs in a SERVER span, so a caller that
forwards ``traceparent`` gets the span in its trace and one that does not starts a new trace.

    python -m mcptrace.samples.downstream --port 8001 [--otlp-endpoint URL]
"""

from __future__ import annotations

import argparse
import zlib

from mcptrace.samples._otel import serve_uvicorn, setup_tracing, shutdown_tracing

import anyio  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.propagate import extract  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

SERVICE_NAME = "downstream-api"

FORECASTS = {
    "paris": {"city": "Paris", "temp_c": 14, "sky": "overcast"},
    "tokyo": {"city": "Tokyo", "temp_c": 21, "sky": "clear"},
    "berlin": {"city": "Berlin", "temp_c": 9, "sky": "rain"},
    "lisbon": {"city": "Lisbon", "temp_c": 19, "sky": "sunny"},
}
ALERTS = {
    "idf": [{"level": "yellow", "event": "wind"}],
    "kanto": [],
    "bbg": [{"level": "orange", "event": "flood"}],
}


def _delay(key: str) -> float:
    """Deterministic 20-45 ms of 'work' per key."""
    return (20 + zlib.crc32(key.encode()) % 26) / 1000


async def _serve(request: Request, route: str, key_param: str, table: dict) -> JSONResponse | PlainTextResponse:
    tracer = trace.get_tracer("mcptrace.samples.downstream")
    ctx = extract(request.headers)  # starts a new trace when no (valid) traceparent came in
    key = request.query_params.get(key_param, "")
    attrs = {
        "http.request.method": "GET",
        "http.route": route,
        "url.path": request.url.path,
        "url.query": f"{key_param}={key}",
        "server.address": request.url.hostname or "",
        "server.port": request.url.port or 0,
        "client.address": request.client.host if request.client else "",
    }
    with tracer.start_as_current_span(f"GET {route}", context=ctx, kind=SpanKind.SERVER, attributes=attrs) as span:
        await anyio.sleep(_delay(route + key))
        value = table.get(key.lower())
        if value is None:
            span.set_attribute("http.response.status_code", 404)
            span.set_status(StatusCode.ERROR, f"unknown {key_param}")
            return PlainTextResponse(f"unknown {key_param} {key!r}", status_code=404)
        span.set_attribute("http.response.status_code", 200)
        return JSONResponse(value if isinstance(value, dict) else {key_param: key, "alerts": value})


async def forecast(request: Request) -> JSONResponse | PlainTextResponse:
    return await _serve(request, "/forecast", "city", FORECASTS)


async def alerts(request: Request) -> JSONResponse | PlainTextResponse:
    return await _serve(request, "/alerts", "region", ALERTS)


async def healthz(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/forecast", forecast, methods=["GET"]),
        Route("/alerts", alerts, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.downstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--otlp-endpoint", default=None)
    parser.add_argument("--service-name", default=SERVICE_NAME)
    args = parser.parse_args(argv)
    provider = setup_tracing(args.service_name, args.otlp_endpoint)
    try:
        serve_uvicorn(app, args.host, args.port)
    finally:
        shutdown_tracing(provider)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
