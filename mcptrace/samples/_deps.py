"""Import guard for the optional ``samples`` dependencies."""

from __future__ import annotations

import importlib

_REQUIRED = (
    "mcp",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    "httpx",
    "starlette",
    "uvicorn",
)


class MissingSampleDependencies(ImportError):
    pass


def require_sample_deps() -> None:
    """Raise a helpful error when the ``mcptrace[samples]`` extra is not installed."""
    missing = []
    for name in _REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        raise MissingSampleDependencies(
            "the sample generator needs the MCP Python SDK and the OpenTelemetry SDK; "
            "install them with: pip install 'mcptrace[samples]'\nmissing: " + "; ".join(missing)
        )
    # Also check the major version: the generator targets the 2.x SDK.
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("mcp").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return
    if major < 2:
        raise MissingSampleDependencies(
            f"the sample generator needs mcp>=2.3 (found {version('mcp')}); "
            "install it with: pip install -U 'mcptrace[samples]'"
        )
