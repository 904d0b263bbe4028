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
- ``get_alerts_plain(region)``: weather alerts from downstream-api fetched with a plain, uninstrumented
  ``httpx`` client after ~25 ms: no CLIENT span, no ``traceparent`` header, so downstream-api's SERVER
  span roots a new trace (its ``url.query`` names the region).
- ``resumable_report(label)`` (only with ``--resumable-tools``): closes its own SSE stream mid-call
  (``ctx.close_sse_stream()``), finishes while the client is away; the client resumes the stream
  with ``GET`` + ``Last-Event-ID`` and gets the rest (progress, result) replayed from the event store.
  The flag also gives every session its own event store (see :func:`_event_store_per_session`).

"Straight onto the wire": while it serves stdio, the 2.3 SDK points fd 1 at stderr (a stray ``print``
no longer corrupts the protocol) and writes the protocol on a private duplicate of the original
stdout; the buggy tools write their raw line with ``os.write`` on that descriptor.

Trace-context options:

- ``--trace-extraction off``: replace the SDK's ``OpenTelemetryMiddleware`` with a look-alike (same
  span names, kind SERVER, same ``mcp.method.name`` / ``jsonrpc.request.id`` / ``gen_ai.tool.name``
  attributes, plus ``gen_ai.tool.call.arguments`` as JSON) that ignores ``params._meta`` trace
  context: every SERVER span roots its own trace.
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
import httpx  # noqa: E402
from mcp.server import stdio as sdk_stdio  # noqa: E402
from mcp.server._otel import OpenTelemetryMiddleware  # noqa: E402
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext  # noqa: E402
from mcp.server.mcpserver import Context, Elicit, Resolve  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402
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


# made up front: creating it (its SSL context) in the first call would add tens of ms to that call
_plain_http = httpx.AsyncClient(timeout=10)


async def get_alerts_plain(region: str) -> str:
    """Weather alerts for a region (a plain HTTP client: no span, no trace context forwarded)."""
    await anyio.sleep(0.025)  # validation; concurrent calls on other servers are well under way by then
    resp = await _plain_http.get(f"{base._downstream_url}/alerts", params={"region": region})  # noqa: SLF001
    if resp.status_code == 404:
        raise ToolError(f"unknown region: {region}")
    resp.raise_for_status()
    return json.dumps(resp.json())


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
            arguments = ctx.params.get("arguments") if ctx.params else None
            if arguments is not None:
                # OTel GenAI semconv (opt-in): the call's arguments as JSON; carries the ground truth
                attributes["gen_ai.tool.call.arguments"] = json.dumps(arguments, separators=(",", ":"), sort_keys=True)
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
    base.weather.add_tool(get_alerts_plain)
    if args.trace_extraction == "off":
        links = frozenset(t for t in (args.link_tools or "").split(",") if t)
        chain = base.weather.middleware
        for i, mw in enumerate(chain):
            if isinstance(mw, OpenTelemetryMiddleware):
                chain[i] = NonExtractingOtelMiddleware(links)
                break
        else:  # pragma: no cover - depends on the SDK version
            raise SystemExit("incident_server: the SDK's OpenTelemetryMiddleware is not in the middleware chain")


# -- a tool whose SSE stream the server closes mid-call (resumability, SEP-1699) ----------------


async def resumable_report(label: str, ctx: Context) -> str:
    """A report that takes a while; the server closes its SSE stream mid-call (polling behaviour).

    Reports progress 1/2 on the POST's stream, closes that stream (``ctx.close_sse_stream()``: the
    connection ends cleanly, the call goes on), then after 0.2 s reports progress 2/2 and returns.
    Both land in the event store only; the client, after the ``retry`` its priming event announced
    (1 s), resumes with a GET carrying ``Last-Event-ID`` and gets them by replay. Only registered with
    ``--resumable-tools`` (Streamable HTTP with an event store; a no-op close elsewhere).
    """
    await ctx.report_progress(1, 2, f"{label}: half done")
    await anyio.sleep(0.05)  # the progress event is on the wire before the stream closes
    await ctx.close_sse_stream()
    await anyio.sleep(0.2)  # finishes while the client is away (it waits 1 s before resuming)
    await ctx.report_progress(2, 2, f"{label}: done")
    return f"report {label} ready"


def _event_store_per_session() -> None:
    """Give every session (each Streamable HTTP transport) a ``MemoryEventStore`` of its own.

    The SDK names a POST's event stream after the request's JSON-RPC id, and the sample server hands one
    store to all sessions: two sessions' requests with the same id share a stream id there, and a
    resumption (``Last-Event-ID``) would also replay the other session's events of that id. With a store
    per session, event ids also restart at ``e1`` in each session.
    """
    from mcp.server.streamable_http import StreamableHTTPServerTransport

    init = StreamableHTTPServerTransport.__init__

    def init_with_own_store(self: StreamableHTTPServerTransport, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("event_store") is not None:
            kwargs["event_store"] = base.MemoryEventStore()
        init(self, *args, **kwargs)

    StreamableHTTPServerTransport.__init__ = init_with_own_store  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.incident_server", add_help=True)
    parser.add_argument("--resumable-tools", action="store_true",
                        help="also register resumable_report; one event store per session")
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
    if args.resumable_tools:
        base.weather.add_tool(resumable_report)
        _event_store_per_session()
    return base.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
