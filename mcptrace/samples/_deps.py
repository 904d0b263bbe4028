"""Import guard for the optional ``samples`` dependencies."""

from __future__ import annotations

import importlib

from mcptrace.core.errors import MissingDependencyError

_REQUIRED = (
    "mcp",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    "httpx",
    "starlette",
    "uvicorn",
)


def require_sample_deps() -> None:
    """Raise a helpful error when the ``mcptrace[samples]`` extra is not installed."""
    missing = []
    for name in _REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        raise MissingDependencyError("the MCP Python SDK and the OpenTelemetry SDK", "samples",
                                     "missing: " + "; ".join(missing))
    # Also check the major version: the generator targets the 2.x SDK.
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("mcp").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return
    if major < 2:
        raise MissingDependencyError(f"mcp>=2.3 (found {version('mcp')})", "samples")
