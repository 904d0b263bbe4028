"""The sample "weather" server with the misbehaviours the incident captures need.

Wraps :mod:`mcptrace.samples.server` (same ``MCPServer``, same tools, same OpenTelemetry setup and
transports) and adds, for ``python -m mcptrace.samples.incidents``:

Tools (always registered here, never in the regular samples):

- ``export_report(fmt)``: ~50 ms of work. With ``--crash-export`` the process instead dies mid-call
  (after 0.3 s it force-flushes its finished spans, then ``os._exit(137)``): the request is never
  answered and its own SERVER span, still open, is lost.
- ``hang(job)``: force-flushes the finished spans, writes this process's pid to ``--ready-file`` and
  waits (60 s). Something outside kills the process meanwhile (SIGKILL: no flush, no response).
- ``leaky_progress(items)``: a buggy tool that writes a ``notifications/progress`` line for a
  progress token nobody issued (``"upload-42"``) straight onto the wire, bypassing the SDK.
- ``ghost_reply(note)``: a buggy tool that writes a JSON-RPC response with an id nobody sent
  (``4242``) straight onto the wire, bypassing the SDK.
- ``book_trip(city)``: needs the user's confirmation, asked through a ``Resolve``/``Elicit``
  resolver; on a 2026-07-28 connection the SDK answers the first ``tools/call`` with an
  ``input_required`` result and finishes the retry that carries ``inputResponses``.

"Straight onto the wire": while it serves stdio, the 2.3 SDK points fd 1 at stderr (a stray ``print``
no longer corrupts the protocol) and writes the protocol on a private duplicate of the original
stdout; the buggy tools write their raw line with ``os.write`` on that descriptor.

Trace-context options:

- ``--trace-extraction off``: replace the SDK's ``OpenTelemetryMiddleware`` with a look-alike (same
  span names, kind SERVER, same ``mcp.method.name`` / ``jsonrpc.request.id`` / ``gen_ai.tool.name``
  attributes) that ignores ``params._meta`` trace context: every SERVER span roots its own trace.
- ``--link-tools NAME[,NAME]``: with extraction off, the SERVER span of a ``tools/call`` of these tools
  carries a span LINK to the incoming context (still a root span, no parent): a server that only links.

    python -m mcptrace.samples.incident_server [--crash-export] [--ready-file F] \\
        [--trace-extraction on|off] [--link-tools divide] -- <mcptrace.samples.server options>
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Annotated, Any

from mcptrace.samples import server as base

import anyio  # noqa: E402
from mcp.server import stdio as sdk_stdio  # noqa: E402
from mcp.server._otel import OpenTelemetryMiddleware  # noqa: E402
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext  # noqa: E402
from mcp.server.mcpserver import Elicit, Resolve  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402
from mcp_types import CallToolResult  # noqa: E402
from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.propagate import extract  # noqa: E402
from opentelemetry.trace import Link, SpanKind, StatusCode  # noqa: E402
from pydantic import BaseModel  # noqa: E402

_tracer = trace.get_tracer("mcptrace.samples.incident_server")
_crash_export = False
_ready_file: str | None = None

PID_DIR_ENV = "MCPTRACE_INCIDENT_PID_DIR"
UNKNOWN_PROGRESS_TOKEN = "upload-42"
UNKNOWN_RESPONSE_ID = 4242


def _flush_spans() -> None:
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_millis=10_000)


def _write_raw_line(obj: dict[str, Any]) -> None:
    """Write one JSON-RPC line on the protocol's stdout descriptor, bypassing the SDK's writer."""
    claim = sdk_stdio._claims.get(1)  # noqa: SLF001 - the buggy server reaches into the transport on purpose
    fd = claim.private_fd if claim is not None and claim.private_fd is not None else 1
    os.write(fd, (json.dumps(obj, separators=(",", ":")) + "\n").encode())


# -- tools --------------------------------------------------------------------------------------


async def export_report(fmt: str) -> str:
    """Export the current report (the first server process of a reconnect incident dies here)."""
    if _crash_export:
        await anyio.sleep(0.3)
        _flush_spans()  # ship what already ended; this call's SERVER span is still open and is lost
        os._exit(137)  # like an OOM kill: no response, no atexit, no flush
    await anyio.sleep(0.05)
    return f"report exported as {fmt}"


async def hang(job: str) -> str:
    """Wait for a lock that never frees (the process is killed from outside meanwhile)."""
    _flush_spans()
    if _ready_file:
        tmp = Path(_ready_file + ".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(_ready_file)
    await anyio.sleep(60)
    return f"{job}: lock acquired"


async def leaky_progress(items: int) -> str:
    """Upload items, reporting progress under a token that no request carried (a server bug)."""
    await anyio.sleep(0.03)
    _write_raw_line(
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": UNKNOWN_PROGRESS_TOKEN, "progress": 1, "total": items, "message": "uploading"},
        }
    )
    await anyio.sleep(0.03)
    return f"uploaded {items} items"


async def ghost_reply(note: str) -> str:
    """Store a note; a buggy cache also replays a stale response for a request id nobody sent."""
    await anyio.sleep(0.03)
    _write_raw_line({"jsonrpc": "2.0", "id": UNKNOWN_RESPONSE_ID, "result": {}})
    await anyio.sleep(0.03)
    return f"noted: {note}"


class TripConfirmation(BaseModel):
    confirm: bool
    seats: int


async def ask_confirmation(city: str) -> Elicit[TripConfirmation]:
    return Elicit(f"Book a trip to {city}? How many seats?", TripConfirmation)


async def book_trip(city: str, confirmation: Annotated[TripConfirmation, Resolve(ask_confirmation)]) -> str:
    """Book a trip (asks the user to confirm first)."""
    if not confirmation.confirm:
        return f"trip to {city} not booked"
    return f"booked {confirmation.seats} seat(s) to {city}"


# -- a server that does not extract trace context ---------------------------------------------


class NonExtractingOtelMiddleware(ServerMiddleware[Any]):
    """Like the SDK's ``OpenTelemetryMiddleware``, but it never continues the incoming ``_meta`` context.

    Every SERVER span starts from an empty context (a new trace). For ``tools/call`` of a tool in
    ``link_tools`` the incoming context, when valid, is attached as a span LINK instead of a parent.
    """

    def __init__(self, link_tools: frozenset[str] = frozenset()) -> None:
        self.link_tools = link_tools

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        name = ctx.params.get("name") if ctx.params else None
        target = name if isinstance(name, str) else None
        attributes: dict[str, Any] = {"mcp.method.name": ctx.method, "mcp.protocol.version": ctx.protocol_version}
        if ctx.request_id is not None:
            attributes["jsonrpc.request.id"] = str(ctx.request_id)
        if ctx.method == "tools/call":
            attributes["gen_ai.operation.name"] = "execute_tool"
            if target is not None:
                attributes["gen_ai.tool.name"] = target
        links: list[Link] = []
        if ctx.method == "tools/call" and target in self.link_tools and ctx.meta:
            incoming = trace.get_current_span(extract(dict(ctx.meta))).get_span_context()
            if incoming.is_valid:
                links.append(Link(incoming, {"mcptrace.sample.link": "incoming _meta.traceparent"}))
        with _tracer.start_as_current_span(
            f"{ctx.method}{f' {target}' if target else ''}",
            context=otel_context.Context(),  # empty: root span, whatever came in
            kind=SpanKind.SERVER,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                result = await call_next(ctx)
            except MCPError as e:
                span.set_attributes({"error.type": str(e.error.code), "rpc.response.status_code": str(e.error.code)})
                span.set_status(StatusCode.ERROR, e.error.message)
                raise
            except Exception as e:
                span.set_attribute("error.type", type(e).__qualname__)
                span.record_exception(e)
                span.set_status(StatusCode.ERROR, str(e))
                raise
            if ctx.method == "tools/call" and isinstance(result, CallToolResult) and result.is_error:
                span.set_attribute("error.type", "tool_error")
                span.set_status(StatusCode.ERROR)
            return result


def _install(args: argparse.Namespace) -> None:
    global _crash_export, _ready_file
    _crash_export = args.crash_export
    _ready_file = args.ready_file
    for fn in (export_report, hang, leaky_progress, ghost_reply, book_trip):
        base.weather.add_tool(fn)
    if args.trace_extraction == "off":
        links = frozenset(t for t in (args.link_tools or "").split(",") if t)
        chain = base.weather.middleware
        for i, mw in enumerate(chain):
            if isinstance(mw, OpenTelemetryMiddleware):
                chain[i] = NonExtractingOtelMiddleware(links)
                break
        else:  # pragma: no cover - depends on the SDK version
            raise SystemExit("incident_server: the SDK's OpenTelemetryMiddleware is not in the middleware chain")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.incident_server", add_help=True)
    parser.add_argument("--crash-export", action="store_true", help="export_report kills this process mid-call")
    parser.add_argument("--ready-file", default=None, help="hang writes the pid here once it is waiting")
    parser.add_argument("--trace-extraction", choices=["on", "off"], default="on")
    parser.add_argument("--link-tools", default="", help="with extraction off: tools whose SERVER span links")
    args, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    pid_dir = os.environ.get(PID_DIR_ENV)
    if pid_dir:
        # the generator kills whatever of its process tree is left at the end (this pid and the tee's)
        Path(pid_dir, str(os.getpid())).write_text(f"{os.getpid()} {os.getppid()}\n")
    _install(args)
    return base.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
