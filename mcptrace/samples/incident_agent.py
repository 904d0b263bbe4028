"""The client side of the incident captures: one fake agent host per correlation situation.

Run by ``python -m mcptrace.samples.incidents``; each run is one real client process driving the
official SDK ``Client`` against real server processes (``mcptrace.samples.incident_server``,
launched through the stdio tee ``mcptrace.capture.stdio``, or over Streamable HTTP through the
logging proxy). Turns are root INTERNAL spans ``turn N`` whose tool calls run concurrently, as in
:mod:`mcptrace.samples.agent` (whose ``Call``/``Outcome``/``_run_call`` are reused).

    python -m mcptrace.samples.incident_agent SITUATION --service-name NAME \\
        [--tee-out F --connection-id ID --server-service-name S] [--url URL] \\
        [--session-key-name K --session-key V] [--no-tracing] [--ready-file F] [--downstream URL] \\
        [--no-export] [--start-file F --start-delay S]

Prints one JSON summary line (call outcomes, connections) on stdout; exits 1 when an outcome is
not the expected one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from mcptrace.samples._otel import ENDPOINT_ENV, setup_tracing, shutdown_tracing
from mcptrace.samples.agent import Call, Outcome, _run_call

import anyio  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp_types import ElicitResult, Implementation  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.trace import Span, SpanKind, StatusCode  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
PID_DIR_ENV = "MCPTRACE_INCIDENT_PID_DIR"
_tracer = trace.get_tracer("mcptrace.samples.incident_agent")

# search's "work" is (60 + crc32(query) % 91) ms; "relay" takes 63 ms, well before export_report kills
# its server at 300 ms.
QUICK_QUERY = "relay"


class Host:
    """A host process: its options, its connections and the outcomes of its calls."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.outcomes: list[Outcome] = []
        self.connections: list[str] = []
        name, key = args.session_key_name, args.session_key
        self.meta: dict[str, Any] | None = {name: key} if name and key else None

    def client_info(self) -> Implementation:
        return Implementation(name=self.args.service_name, version="2.0.0")

    def stdio(self, *server_flags: str, mode: str = "legacy", **client_kw: Any) -> Client:
        """A Client that launches ``tee -- incident_server``: a new process (and connection id) each time."""
        a = self.args
        n = len(self.connections) + 1
        conn = f"{a.connection_id}-{n}" if a.numbered_connections else a.connection_id
        self.connections.append(conn)
        tee = ["-m", "mcptrace.capture.stdio", "--out", a.tee_out, "--connection-id", conn, "--"]
        server = [
            sys.executable,
            "-m",
            "mcptrace.samples.incident_server",
            *server_flags,
            "--",
            "--transport",
            "stdio",
            "--service-name",
            a.server_service_name,
            "--otlp-endpoint",
            a.otlp_endpoint,
            "--downstream",
            a.downstream,
        ]
        env = {
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
            ENDPOINT_ENV: a.otlp_endpoint,
            "PYTHONUNBUFFERED": "1",
            # tells the processes of a reconnect apart in the trace dump (resource attribute)
            "OTEL_RESOURCE_ATTRIBUTES": f"mcptrace.sample.process=server-{n}",
        }
        if os.environ.get(PID_DIR_ENV):
            env[PID_DIR_ENV] = os.environ[PID_DIR_ENV]
        params = StdioServerParameters(command=sys.executable, args=[*tee, *server], env=env, cwd=str(REPO_ROOT))
        return Client(params, mode=mode, client_info=self.client_info(), **client_kw)

    def http(self, mode: str = "2026-07-28") -> Client:
        self.connections.append(self.args.url)
        return Client(self.args.url, mode=mode, client_info=self.client_info())

    async def list_tools(self, client: Client) -> None:
        """What a host does first on a connection (with the session key, when it has one)."""
        await client.list_tools(meta=self.meta)

    def start_turn(self, n: int) -> Span:
        """Start (not activate) the root INTERNAL span of turn ``n``."""
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "mcptrace.sample.turn": n}
        if self.args.session_key:
            attrs["gen_ai.conversation.id"] = self.args.session_key
        return _tracer.start_span(f"turn {n}", kind=SpanKind.INTERNAL, attributes=attrs)

    async def calls(
        self, client: Client, n: int, calls: list[Call], *extra: Callable[[], Awaitable[None]]
    ) -> list[Outcome]:
        """Run ``calls`` concurrently (plus ``extra`` tasks, e.g. a killer) and record their outcomes."""
        got: list[Outcome] = []
        async with anyio.create_task_group() as tg:
            for call in calls:
                tg.start_soon(_run_call, client, n, call, self.meta, got)
            for task in extra:
                tg.start_soon(task)
        self.outcomes.extend(got)
        if any(o.status != "ok" for o in got):
            trace.get_current_span().set_status(StatusCode.ERROR)
        return got

    async def turn(self, client: Client, n: int, calls: list[Call], *extra: Callable[[], Awaitable[None]]) -> None:
        with trace.use_span(self.start_turn(n), end_on_exit=True):
            await self.calls(client, n, calls, *extra)
        await anyio.sleep(0.15)  # the "model" thinks before the next turn


# -- situations ----------------------------------------------------------------------------------

LOST = [Call("search", {"query": QUICK_QUERY}), Call("export_report", {"fmt": "pdf"}, expect="unanswered")]


async def reconnect_with_session_key(host: Host) -> None:
    """Turn 1 loses its server mid-call; the host reconnects and retries INSIDE turn 1 (same trace).

    Every tools/call carries ``_meta["anthropic/session"]``; turn 2 then runs on the new connection.
    """
    turn1 = host.start_turn(1)
    async with host.stdio("--crash-export") as c1:
        await host.list_tools(c1)
        with trace.use_span(turn1, end_on_exit=False):
            await host.calls(c1, 1, LOST)
    # c1 is closed (its server died): start a new server process and continue the conversation
    async with AsyncExitStack() as stack:
        with trace.use_span(turn1, end_on_exit=True):
            c2 = await stack.enter_async_context(host.stdio())
            await host.list_tools(c2)
            await host.calls(c2, 1, [Call("export_report", {"fmt": "pdf"})])
        await anyio.sleep(0.15)
        await host.turn(c2, 2, [Call("divide", {"a": 9, "b": 3}), Call("search", {"query": "after reconnect"})])


async def reconnect_without_session_key(host: Host) -> None:
    """Turn 1 loses its server mid-call and ends; turn 2 (a new trace) runs on a new server process."""
    async with host.stdio("--crash-export") as c1:
        await host.list_tools(c1)
        await host.turn(c1, 1, LOST)
    async with host.stdio() as c2:
        await host.list_tools(c2)
        await host.turn(c2, 2, [Call("export_report", {"fmt": "pdf"}), Call("divide", {"a": 9, "b": 3})])


async def server_without_trace_extraction(host: Host) -> None:
    async with host.stdio("--trace-extraction", "off", "--link-tools", "divide") as c:
        await host.list_tools(c)
        await host.turn(
            c,
            1,
            [
                Call("search", {"query": "trace context"}),
                Call("divide", {"a": 8, "b": 2}),
                Call("search", {"query": "context lost"}),
            ],
        )


async def downstream_without_propagation(host: Host) -> None:
    async with host.stdio() as c:
        await host.list_tools(c)
        await host.turn(c, 1, [Call("get_forecast", {"city": "Paris"}), Call("get_alerts", {"region": "IDF"})])


async def stateless_client(host: Host) -> None:
    """One of the three 2026-07-28 HTTP clients: two turns of two concurrent calls."""
    me = host.args.service_name
    async with host.http() as c:
        await host.list_tools(c)
        await host.turn(c, 1, [Call("search", {"query": f"{me} 1"}), Call("divide", {"a": 10, "b": 4})])
        await host.turn(c, 2, [Call("search", {"query": f"{me} 2"}), Call("divide", {"a": 6, "b": 3})])


async def server_killed_mid_call(host: Host) -> None:
    ready = Path(host.args.ready_file)

    async def killer() -> None:
        # "The OOM killer": once the server sits in hang (it wrote its pid), SIGKILL it.
        with anyio.fail_after(20):
            while not ready.exists():
                await anyio.sleep(0.02)
        os.kill(int(ready.read_text()), signal.SIGKILL)

    async with host.stdio("--ready-file", str(ready)) as c:
        await host.list_tools(c)
        await host.turn(c, 1, [Call("search", {"query": "stateless"}), Call("divide", {"a": 1, "b": 4})])
        await host.turn(c, 2, [Call("hang", {"job": "nightly-backup"}, expect="unanswered")], killer)


async def cancelled_call(host: Host) -> None:
    async with host.stdio() as c:
        await host.list_tools(c)
        await host.turn(
            c,
            1,
            [Call("slow_report", {"days": 30}, timeout=0.5, expect="cancelled"), Call("search", {"query": "ghost"})],
        )
        await host.turn(c, 2, [Call("divide", {"a": 7, "b": 2})])


async def unknown_progress_token(host: Host) -> None:
    async with host.stdio() as c:
        await host.list_tools(c)
        await host.turn(c, 1, [Call("long_task", {"steps": 3}, progress=True), Call("leaky_progress", {"items": 3})])


async def response_with_unknown_id(host: Host) -> None:
    async with host.stdio() as c:
        await host.list_tools(c)
        await host.turn(c, 1, [Call("ghost_reply", {"note": "cache warm"}), Call("search", {"query": "ghost"})])


async def _confirm(_ctx: Any, params: Any) -> ElicitResult:
    """The "user" accepts the booking form with 2 seats."""
    return ElicitResult(action="accept", content={"confirm": True, "seats": 2})


async def input_required_retry(host: Host) -> None:
    async with host.stdio(mode="2026-07-28", elicitation_callback=_confirm) as c:
        await host.list_tools(c)
        await host.turn(c, 1, [Call("book_trip", {"city": "Oslo"}), Call("search", {"query": "context lost"})])


SITUATIONS: dict[str, Callable[[Host], Awaitable[None]]] = {
    "reconnect_with_session_key": reconnect_with_session_key,
    "reconnect_without_session_key": reconnect_without_session_key,
    "server_without_trace_extraction": server_without_trace_extraction,
    "downstream_without_propagation": downstream_without_propagation,
    "stateless_client": stateless_client,
    "server_killed_mid_call": server_killed_mid_call,
    "cancelled_call": cancelled_call,
    "unknown_progress_token": unknown_progress_token,
    "response_with_unknown_id": response_with_unknown_id,
    "input_required_retry": input_required_retry,
}


# -- situations: propagation that stops, two servers, colliding sessions, spans twice --------------


def _stop_tracing() -> None:
    """The host turns its tracing off at runtime (e.g. a sampling/feature-flag reload).

    Every tracer of its provider (its own and the SDK's ``mcp-python-sdk``) is disabled through the
    OTel SDK's TracerConfigurator (a development API): a disabled tracer returns a non-recording span
    carrying its parent's context, which outside any span is INVALID, so the SDK creates no CLIENT
    span and ``inject`` writes no ``traceparent`` into ``_meta``. Spans already ended are still exported.
    """
    from opentelemetry.sdk.trace import _disable_tracer_configurator

    provider = trace.get_tracer_provider()
    configure = getattr(provider, "_set_tracer_configurator", None)
    if configure is None:  # pragma: no cover - depends on the OTel SDK version
        raise SystemExit("incident_agent: this OpenTelemetry SDK cannot disable its tracers at runtime")
    configure(tracer_configurator=_disable_tracer_configurator)


def _tracing_without_export(service_name: str) -> Any:
    """A TracerProvider with no span processor: the host propagates ``traceparent`` but exports nothing."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": service_name, "service.version": "0.1.0"}))
    trace.set_tracer_provider(provider)
    return provider


async def untraced_parallel_turn(host: Host) -> None:
    """Turn 1 is traced; then the host stops tracing: turns 2 and 3 (three concurrent calls each) carry
    no ``traceparent`` and have no CLIENT span. Every call's arguments name its turn."""
    async with host.stdio() as c:
        await host.list_tools(c)
        for n in (1, 2, 3):
            if n == 2:
                _stop_tracing()
            calls = [
                Call("search", {"query": f"turn {n} a"}),
                Call("divide", {"a": n, "b": 1}),
                Call("search", {"query": f"turn {n} b"}),
            ]
            await host.turn(c, n, calls)


NOTES_SERVICE = "notes-mcp"


def _stdio_named(host: Host, service: str) -> Client:
    """``host.stdio()`` for a server process with service.name ``service``, on connection
    ``<connection-id>-<service>`` (one host, several MCP servers at once)."""
    a = host.args
    args = argparse.Namespace(**{**vars(a), "server_service_name": service, "numbered_connections": False,
                                 "connection_id": f"{a.connection_id}-{service}"})
    other = Host(args)
    client = other.stdio()
    host.connections.extend(other.connections)
    return client


async def _turn_across(host: Host, n: int, calls: list[tuple[Client, Call]]) -> None:
    """One turn whose concurrent calls go to different servers."""
    with trace.use_span(host.start_turn(n), end_on_exit=True):
        got: list[Outcome] = []
        async with anyio.create_task_group() as tg:
            for client, call in calls:
                tg.start_soon(_run_call, client, n, call, host.meta, got)
        host.outcomes.extend(got)
        if any(o.status != "ok" for o in got):
            trace.get_current_span().set_status(StatusCode.ERROR)
    await anyio.sleep(0.15)  # the "model" thinks before the next turn


async def downstream_untraced_client(host: Host) -> None:
    """One traced host, two servers: weather-plain (``--server-service-name``) and notes-mcp.

    Turn 1's ``get_forecast`` forwards trace context to downstream-api; the ``get_alerts_plain`` calls
    of turns 2-4 reach it with a plain HTTP client (no span, no traceparent). In turns 2 and 3 a
    notes-mcp ``search`` (147/137 ms) is in flight meanwhile; turn 4's call is alone.
    """
    weather, notes = _stdio_named(host, host.args.server_service_name), _stdio_named(host, NOTES_SERVICE)
    async with weather, notes:
        await host.list_tools(weather)
        await host.list_tools(notes)
        await _turn_across(host, 1, [(weather, Call("get_forecast", {"city": "Paris"}))])
        await _turn_across(host, 2, [(weather, Call("get_alerts_plain", {"region": "IDF"})),
                                     (notes, Call("search", {"query": "turn 2 agenda"}))])
        await _turn_across(host, 3, [(weather, Call("get_alerts_plain", {"region": "BBG"})),
                                     (notes, Call("search", {"query": "turn 3 agenda"})),
                                     (notes, Call("divide", {"a": 3, "b": 1}))])
        await _turn_across(host, 4, [(weather, Call("get_alerts_plain", {"region": "kanto"}))])


# Two hosts on one Streamable HTTP server: the same ids, methods and tools, distinct arguments (the
# searches of a turn take about as long for both: 105/128 ms and 98/128 ms, then 132/133 ms). Each host
# runs on the same schedule from its own start (initialize at +0, tools/list at +0.2 s, turn 1 at +0.5 s,
# turn 2 at +0.9 s), so the second stays its start delay (~30 ms) behind the first whatever the load.
COLLIDING_SCHEDULE = (0.0, 0.2, 0.5, 0.9)
COLLIDING_TURNS: dict[str, list[list[Call]]] = {
    "ide-amber": [
        [Call("search", {"query": "amber turn 1 caching"}), Call("search", {"query": "amber turn 1 auth"})],
        [Call("search", {"query": "amber turn 2 logs"}), Call("divide", {"a": 10, "b": 4})],
    ],
    "ide-blue": [
        [Call("search", {"query": "blue turn 1 caching"}), Call("search", {"query": "blue turn 1 cancellation"})],
        [Call("search", {"query": "blue turn 2 logs"}), Call("divide", {"a": 20, "b": 4})],
    ],
}


async def _start_together(host: Host) -> float:
    """Write ``<start-file>.<service>.ready``, wait for the start file (an epoch time), then sleep until
    that time plus ``--start-delay`` and return it: hosts start at controlled offsets, whatever their
    import times."""
    # A host that has been running for a while has the SDK's lazy imports done; a cold one would stall
    # ~1 s (more under load) on its first tool result while importing jsonschema, and 0.2-0.5 s before
    # its first request building its HTTP client (httpcore2, SSL context). Warm both up, sending nothing.
    import jsonschema  # noqa: F401
    from mcp.shared._httpx_utils import create_mcp_http_client

    await create_mcp_http_client().aclose()

    a = host.args
    Path(f"{a.start_file}.{a.service_name}.ready").write_text(str(os.getpid()))
    start = Path(a.start_file)
    with anyio.fail_after(30):
        while not start.exists():
            await anyio.sleep(0.002)
    t0 = float(start.read_text()) + a.start_delay
    await anyio.sleep(max(0.0, t0 - time.time()))
    return t0


async def colliding_ids_no_extraction(host: Host) -> None:
    """One of two legacy Streamable HTTP hosts (own ``Mcp-Session-Id``) started ~30 ms apart."""
    turns = COLLIDING_TURNS[host.args.service_name]
    t0 = await _start_together(host) if host.args.start_file else time.time()
    async with host.http(mode="legacy") as c:
        await anyio.sleep(max(0.0, t0 + COLLIDING_SCHEDULE[1] - time.time()))
        await host.list_tools(c)
        for n, calls in enumerate(turns, start=1):
            await anyio.sleep(max(0.0, t0 + COLLIDING_SCHEDULE[n + 1] - time.time()))  # the "model" thinks
            with trace.use_span(host.start_turn(n), end_on_exit=True):
                await host.calls(c, n, calls)


async def spans_twice(host: Host) -> None:
    """A traced host (run with ``--no-export``) and one turn of two concurrent calls."""
    async with host.stdio() as c:
        await host.list_tools(c)
        await host.turn(c, 1, [Call("search", {"query": "spans twice"}), Call("divide", {"a": 6, "b": 3})])


SITUATIONS.update({
    "untraced_parallel_turn": untraced_parallel_turn,
    "downstream_untraced_client": downstream_untraced_client,
    "colliding_ids_no_extraction": colliding_ids_no_extraction,
    "spans_twice": spans_twice,
})


# -- situations: Streamable HTTP sessions (resumption, look-alike clients losing their server) ------


@asynccontextmanager
async def _http_session(host: Host, url: str) -> AsyncIterator[Client]:
    """A legacy-mode (``initialize``, ``Mcp-Session-Id``) Streamable HTTP ``Client`` whose HTTP client
    notes every new ``Mcp-Session-Id`` the server answers with, in order (``host.mcp_session_ids``)."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    seen: list[str] = getattr(host, "mcp_session_ids", [])
    host.mcp_session_ids = seen  # type: ignore[attr-defined]

    async def note(response: Any) -> None:
        sid = response.headers.get("mcp-session-id")
        if sid and sid not in seen:
            seen.append(sid)

    host.connections.append(url)
    async with create_mcp_http_client() as http:
        http.event_hooks = {"request": [], "response": [note]}
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode="legacy", client_info=host.client_info()) as client:
            yield client


async def _wait_for(path: Path, timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not path.exists():
            await anyio.sleep(0.01)


async def resumable_http_client(host: Host) -> None:
    """One of two traced clients of a resumable Streamable HTTP server (own session each).

    Turn 1: ``search`` and ``divide`` concurrently; turn 2: ``long_task`` with progress; turn 3:
    ``resumable_report``, whose SSE stream the server closes mid-call: the SDK resumes it with a GET
    carrying ``Last-Event-ID`` and gets progress and result replayed. Leaving the ``Client`` sends DELETE.
    Arguments carry ``--label``.
    """
    label = host.args.label or host.args.service_name
    async with _http_session(host, host.args.url) as c:
        await host.list_tools(c)
        await host.turn(c, 1, [Call("search", {"query": f"{label}: release notes"}),
                               Call("divide", {"a": 12, "b": 4})])
        await host.turn(c, 2, [Call("long_task", {"steps": 3}, progress=True)])
        await host.turn(c, 3, [Call("resumable_report", {"label": f"{label}: weekly"}, progress=True)])


# Look-alike clients: same clientInfo, no tracing, no session key; only the arguments say who is who.
# search takes 73 ms ("client-A: flights to Oslo") / 131 ms ("client-B: hotels in Oslo"): answered
# long before export_report kills the server (0.3 s after it arrived).
LOOKALIKE_TURNS: dict[str, tuple[list[Call], list[Call]]] = {
    "A": ([Call("search", {"query": "client-A: flights to Oslo"}),
           Call("export_report", {"fmt": "A-pdf"}, expect="unanswered")],
          [Call("export_report", {"fmt": "A-pdf"}), Call("search", {"query": "client-A: after reconnect"})]),
    "B": ([Call("search", {"query": "client-B: hotels in Oslo"}),
           Call("slow_report", {"days": 7}, expect="unanswered")],
          [Call("search", {"query": "client-B: after reconnect"}), Call("export_report", {"fmt": "B-csv"})]),
}


async def lookalike_client(host: Host) -> None:
    """Client ``--label`` A or B of ``lookalike_clients_reconnect`` (files in ``--sync-dir`` order the two).

    Session 1: ``initialize``, ``tools/list``, then ``ready-<label>`` and turn 1 once ``go-<label>``
    exists: the generator releases B first (its ``slow_report`` runs 3 s) and A once B's ``slow_report``
    reached the server; A's ``export_report`` kills the server: both in-flight calls stay unanswered
    (the SDK retries the stream with ``Last-Event-ID`` twice, then gives up), and leaving the ``Client``
    sends DELETE. Then ``closed-<label>``; once ``go-2`` exists (a new server process on the same port),
    session 2: ``initialize``, ``tools/list``, turn 2.
    """
    label = host.args.label
    sync = Path(host.args.sync_dir)
    turn1, turn2 = LOOKALIKE_TURNS[label]
    async with _http_session(host, host.args.url) as c1:
        await host.list_tools(c1)
        (sync / f"ready-{label}").write_text(str(os.getpid()))
        await _wait_for(sync / f"go-{label}")
        await host.turn(c1, 1, turn1)
    (sync / f"closed-{label}").write_text(str(os.getpid()))
    await _wait_for(sync / "go-2", timeout=60)
    async with _http_session(host, host.args.url) as c2:
        await host.list_tools(c2)
        await host.turn(c2, 2, turn2)


SITUATIONS.update({
    "resumable_http_client": resumable_http_client,
    "lookalike_client": lookalike_client,
})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.incident_agent")
    parser.add_argument("situation", choices=sorted(SITUATIONS))
    parser.add_argument("--service-name", required=True, help="clientInfo.name and OTel service.name")
    parser.add_argument("--tee-out", default=None)
    parser.add_argument("--connection-id", default=None)
    parser.add_argument("--numbered-connections", action="store_true", help="suffix -1, -2... per connection")
    parser.add_argument("--server-service-name", default="weather-mcp")
    parser.add_argument("--downstream", default="http://127.0.0.1:9")
    parser.add_argument("--url", default=None)
    parser.add_argument("--session-key-name", default=None, help="the _meta key, e.g. anthropic/session")
    parser.add_argument("--session-key", default=None)
    parser.add_argument("--no-tracing", action="store_true", help="install no TracerProvider (no traceparent)")
    parser.add_argument("--no-export", action="store_true", help="a TracerProvider without exporter (traceparent only)")
    parser.add_argument("--start-file", default=None, help="wait for this file (an epoch time) before connecting")
    parser.add_argument("--start-delay", type=float, default=0.0, help="seconds after the start file's time")
    parser.add_argument("--ready-file", default=None)
    parser.add_argument("--label", default=None, help="tags the tool arguments (who is who in the data)")
    parser.add_argument("--sync-dir", default=None, help="files the generator and the clients order steps with")
    parser.add_argument("--otlp-endpoint", default=os.environ.get(ENDPOINT_ENV, "http://127.0.0.1:4318/v1/traces"))
    args = parser.parse_args(argv)

    host = Host(args)
    if args.no_export:  # like a host without a collector: it propagates, nobody receives its spans
        provider = _tracing_without_export(args.service_name)
    else:
        provider = None if args.no_tracing else setup_tracing(args.service_name, args.otlp_endpoint)
    try:
        anyio.run(SITUATIONS[args.situation], host)
    finally:
        if provider is not None:
            shutdown_tracing(provider)
    summary = {
        "situation": args.situation,
        "service": args.service_name,
        "connections": host.connections,
        "calls": [o.__dict__ for o in host.outcomes],
    }
    if getattr(host, "mcp_session_ids", None) is not None:
        summary["mcp_session_ids"] = host.mcp_session_ids  # in the order the server assigned them
    print(json.dumps(summary), flush=True)
    return 1 if any(o.status != o.expect for o in host.outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
