"""OpenTelemetry SDK setup shared by the sample processes."""

from __future__ import annotations

import atexit
import os

from mcptrace.samples._deps import require_sample_deps

require_sample_deps()

from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

ENDPOINT_ENV = "MCPTRACE_SAMPLES_OTLP_ENDPOINT"


def setup_tracing(service_name: str, endpoint: str | None = None, **resource_attrs: str) -> TracerProvider:
    """Install a global TracerProvider exporting to ``endpoint`` (OTLP/HTTP protobuf, gzip).

    The batch processor's schedule delay is long on purpose: every process exports its spans in one
    request at shutdown, so the trace dump has the same shape (one line per process) on every run.
    """
    endpoint = endpoint or os.environ.get(ENDPOINT_ENV) or "http://127.0.0.1:4318/v1/traces"
    attrs = {"service.name": service_name, "service.version": "0.1.0", **resource_attrs}
    provider = TracerProvider(resource=Resource.create(attrs))
    exporter = OTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip, timeout=10)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=120_000, max_export_batch_size=4096, max_queue_size=8192)
    )
    trace.set_tracer_provider(provider)
    atexit.register(shutdown_tracing, provider)
    return provider


_done: set[int] = set()


def shutdown_tracing(provider: TracerProvider) -> None:
    """Flush and shut down once (idempotent; also registered with atexit)."""
    if id(provider) in _done:
        return
    _done.add(id(provider))
    provider.force_flush(timeout_millis=10_000)
    provider.shutdown()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def serve_uvicorn(app: object, host: str, port: int) -> None:
    """Run uvicorn so that SIGTERM/SIGINT end in a normal return (callers then flush their spans).

    uvicorn re-raises the captured signal after its graceful shutdown, with the handlers it found
    installed; without a Python-level handler the default action would kill the process before any
    ``finally`` could flush the span exporter.
    """
    import signal

    import uvicorn

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
    try:
        uvicorn.Server(config).run()
    except SystemExit:
        pass
