"""The client side of the incident captures: one fake agent host per correlation situation.

Run by ``python -m mcptrace.samples.incidents``; each run is one real client process driving the
official SDK ``Client`` against real server processes (``mcptrace.samples.incident_server``,
launched through the stdio tee ``mcptrace.capture.stdio``, or over Streamable HTTP through the
logging proxy). Turns are root INTERNAL spans ``turn N`` whose tool calls run concurrently, as in
:mod:`mcptrace.samples.agent` (whose ``Call``/``Outcome``/``_run_call`` are reused).

    python -m mcptrace.samples.incident_agent SITUATION --service-name NAME \\
        [--tee-out F --connection-id ID --server-service-name S] [--url URL] \\
        [--session-key-name K --session-key V] [--no-tracing] [--ready-file F] [--downstream URL]

Prints one JSON summary line (call outcomes, connections) on stdout; exits 1 when an outcome is
not the expected one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
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
    parser.add_argument("--ready-file", default=None)
    parser.add_argument("--otlp-endpoint", default=os.environ.get(ENDPOINT_ENV, "http://127.0.0.1:4318/v1/traces"))
    args = parser.parse_args(argv)

    host = Host(args)
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
    print(json.dumps(summary), flush=True)
    return 1 if any(o.status != o.expect for o in host.outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
