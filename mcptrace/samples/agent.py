"""The client side of the samples: a fake agent host driving the official SDK ``Client``.

Each LLM turn is a root INTERNAL span ``turn N``; the turn's tool calls run CONCURRENTLY in an anyio
task group under it, so the SDK's CLIENT spans (``MCP send tools/call NAME``) are siblings and the
``traceparent`` the SDK injects into ``params._meta`` carries the turn's trace.

    python -m mcptrace.samples.agent stdio --tee-out F --bare F --connection-id ID --session-key UUID ...
    python -m mcptrace.samples.agent http --url http://127.0.0.1:PORT/mcp ...
    python -m mcptrace.samples.agent plain --tee-out F --connection-id ID --downstream URL ...

``stdio`` (scenario A) and ``http`` (scenario B) run with OpenTelemetry on. ``plain`` (scenario C) is
a host that forgot tracing: it installs NO TracerProvider, so the SDK's inject writes no
``traceparent`` (the turn and CLIENT spans are no-ops); one call carries a host-made ``traceparent``
with an all-zero trace-id, which the SDK leaves as is; the last call (``crash_worker``) kills the
server process, so it is never answered and the client sees the connection close.

Prints one JSON summary line (call outcomes) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcptrace.samples._otel import ENDPOINT_ENV, setup_tracing, shutdown_tracing

import anyio  # noqa: E402
# The SDK client imports jsonschema on the first tool result it validates, inside the event loop, which
# would hold a 0.5 s client timeout until after the answer came on a busy machine: a host process has
# imported it long before its first turn, so these do at start. jsonschema's optional IRI format checker
# (rfc3987_syntax, which Jupyter's extras install) compiles its grammars at that import, 2-3 s of CPU per
# host; the sample tools declare no IRI formats, so the sample hosts go without it.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
import jsonschema  # noqa: E402,F401
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, Implementation  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
_tracer = trace.get_tracer("mcptrace.samples.agent")


@dataclass(frozen=True)
class Call:
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    resource: str | None = None
    timeout: float | None = None
    progress: bool = False
    meta: dict[str, Any] | None = None
    """Extra ``_meta`` keys the host itself puts on this call (merged over the scenario's meta)."""
    expect: str = "ok"
    """What the scenario expects: ok | tool_error | error | cancelled | unanswered."""


# Scenario A: stdio, host "agent-host", a session key in _meta of every turn request.
STDIO_TURNS: list[list[Call]] = [
    [
        Call("search", {"query": "mcp tracing"}),
        Call("get_forecast", {"city": "Paris"}),
        Call("get_alerts", {"region": "IDF"}),
    ],
    [
        Call("divide", {"a": 10, "b": 4}),
        Call("divide", {"a": 1, "b": 0}, expect="tool_error"),
        Call("long_task", {"steps": 5}, progress=True),
    ],
    [
        Call("slow_report", {"days": 7}, timeout=0.5, expect="cancelled"),
        Call("search", {"query": "otel semconv"}),
        Call("get_forecast", {"city": "Tokyo"}),
        Call("divide", {"a": 9, "b": 3}),
    ],
    [
        Call(resource="weather://stations/atlantis", expect="error"),
        Call("get_alerts", {"region": "Kanto"}),
    ],
]

# Scenario B: Streamable HTTP through the logging proxy, host "ide-client", no session key.
HTTP_TURNS: list[list[Call]] = [
    [
        Call("search", {"query": "streamable http"}),
        Call("get_forecast", {"city": "Berlin"}),
    ],
    [
        Call("long_task", {"steps": 3}, progress=True),
        Call("get_alerts", {"region": "BBG"}),
        Call("divide", {"a": 6, "b": 3}),
    ],
    [
        Call("get_forecast", {"city": "Atlantis"}, expect="error"),
        Call("search", {"query": "session ids"}),
    ],
]


# Scenario C: stdio, host "plain-host" with no tracing, legacy handshake, no session key; the server
# process dies during turn 2. The all-zero trace-id makes the traceparent invalid per W3C.
ZERO_TRACEPARENT = "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
PLAIN_TURNS: list[list[Call]] = [
    [
        Call("search", {"query": "stdio crash"}),  # ~147 ms: answered after get_forecast
        Call("get_forecast", {"city": "Lisbon"}, meta={"traceparent": ZERO_TRACEPARENT}),
    ],
    [
        Call("crash_worker", {"reason": "oom-killed"}, expect="unanswered"),
    ],
]


@dataclass
class Outcome:
    turn: int
    target: str
    status: str
    expect: str
    progress_events: int = 0
    detail: str = ""


async def _run_call(
    client: Client, turn: int, call: Call, meta: dict[str, Any] | None, outcomes: list[Outcome]
) -> None:
    target = call.tool or f"resources/read {call.resource}"
    outcome = Outcome(turn=turn, target=target, status="ok", expect=call.expect)
    outcomes.append(outcome)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        outcome.progress_events += 1

    call_meta = {**(meta or {}), **(call.meta or {})}
    try:
        if call.tool is not None:
            result = await client.call_tool(
                call.tool,
                call.args,
                read_timeout_seconds=call.timeout,
                progress_callback=on_progress if call.progress else None,
                meta=call_meta or None,
            )
            if result.is_error:
                outcome.status = "tool_error"
                outcome.detail = " ".join(getattr(c, "text", "") for c in result.content)[:120]
        else:
            assert call.resource is not None
            await client.read_resource(call.resource, meta=call_meta or None)
    except MCPError as exc:
        if exc.code == REQUEST_TIMEOUT:
            outcome.status = "cancelled"
        elif exc.code == CONNECTION_CLOSED:
            outcome.status = "unanswered"  # the transport closed with the request still pending
        else:
            outcome.status = "error"
        outcome.detail = f"{exc.code}: {exc.error.message}"[:120]


async def run_turns(
    client: Client, turns: list[list[Call]], meta: dict[str, Any] | None, conversation: str | None
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    # What a host does first: discover the tools (outside any turn, so it roots its own trace).
    await client.list_tools()
    for n, calls in enumerate(turns, start=1):
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "mcptrace.sample.turn": n}
        if conversation:
            attrs["gen_ai.conversation.id"] = conversation
        with _tracer.start_as_current_span(f"turn {n}", kind=SpanKind.INTERNAL, attributes=attrs) as span:
            turn_outcomes: list[Outcome] = []
            async with anyio.create_task_group() as tg:
                for call in calls:
                    tg.start_soon(_run_call, client, n, call, meta, turn_outcomes)
            if any(o.status != "ok" for o in turn_outcomes):
                span.set_status(StatusCode.ERROR)
            outcomes.extend(turn_outcomes)
        await anyio.sleep(0.15)  # the "model" thinks before the next turn
    return outcomes


def _child_env(otlp_endpoint: str) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": pythonpath, ENDPOINT_ENV: otlp_endpoint, "PYTHONUNBUFFERED": "1"}
    return env


def _tee_server_params(args: argparse.Namespace, *server_extra: str) -> StdioServerParameters:
    """The stdio tee wrapping ``mcptrace.samples.server --transport stdio`` (server OTel always on)."""
    tee = [
        sys.executable,
        "-m",
        "mcptrace.capture.stdio",
        "--out",
        args.tee_out,
        "--connection-id",
        args.connection_id,
    ]
    if args.bare:
        tee += ["--bare", args.bare]
    server = [
        sys.executable,
        "-m",
        "mcptrace.samples.server",
        "--transport",
        "stdio",
        "--service-name",
        args.server_service_name,
        "--otlp-endpoint",
        args.otlp_endpoint,
        "--downstream",
        args.downstream,
        *server_extra,
    ]
    return StdioServerParameters(
        command=tee[0], args=[*tee[1:], "--", *server], env=_child_env(args.otlp_endpoint), cwd=str(REPO_ROOT)
    )


async def scenario_stdio(args: argparse.Namespace) -> list[Outcome]:
    params = _tee_server_params(args)
    meta = {"anthropic/session": args.session_key} if args.session_key else None
    client = Client(params, mode=args.mode, client_info=Implementation(name=args.service_name, version="1.4.2"))
    async with client:
        return await run_turns(client, STDIO_TURNS, meta, args.session_key)


async def scenario_http(args: argparse.Namespace) -> list[Outcome]:
    client = Client(args.url, mode=args.mode, client_info=Implementation(name=args.service_name, version="0.9.0"))
    async with client:
        return await run_turns(client, HTTP_TURNS, None, None)


async def scenario_plain(args: argparse.Namespace) -> list[Outcome]:
    """Scenario C: no tracing here, no session key; the server (with ``crash_worker``) dies in turn 2."""
    params = _tee_server_params(args, "--crash-tool")
    client = Client(params, mode=args.mode, client_info=Implementation(name=args.service_name, version="3.0.1"))
    async with client:
        # After crash_worker the connection is closed: the SDK fails the pending call with
        # CONNECTION_CLOSED and leaving the ``async with`` just reaps the (already dead) tee.
        return await run_turns(client, PLAIN_TURNS, None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.agent")
    sub = parser.add_subparsers(dest="scenario", required=True)
    a = sub.add_parser("stdio", help="scenario A: launch the server through the stdio tee")
    a.add_argument("--service-name", default="agent-host")
    a.add_argument("--tee-out", required=True)
    a.add_argument("--bare", default=None)
    a.add_argument("--connection-id", required=True)
    a.add_argument("--session-key", default=None, help="value of _meta['anthropic/session']")
    a.add_argument("--server-service-name", default="weather-mcp-stdio")
    a.add_argument("--downstream", required=True)
    a.add_argument("--mode", default="auto", help="SDK connect mode: auto (default), legacy, or 2026-07-28")
    b = sub.add_parser("http", help="scenario B: Streamable HTTP (through the logging proxy)")
    b.add_argument("--service-name", default="ide-client")
    b.add_argument("--url", required=True)
    b.add_argument("--mode", default="legacy")
    c = sub.add_parser("plain", help="scenario C: stdio through the tee, NO client tracing, the server crashes")
    c.add_argument("--service-name", default="plain-host")
    c.add_argument("--tee-out", required=True)
    c.add_argument("--connection-id", required=True)
    c.add_argument("--server-service-name", default="weather-mcp-plain")
    c.add_argument("--downstream", required=True)
    c.add_argument("--mode", default="legacy")
    c.set_defaults(bare=None)
    for p in (a, b, c):
        p.add_argument("--otlp-endpoint", default=os.environ.get(ENDPOINT_ENV, "http://127.0.0.1:4318/v1/traces"))
    args = parser.parse_args(argv)

    runner = {"stdio": scenario_stdio, "http": scenario_http, "plain": scenario_plain}[args.scenario]
    # Scenario C's host forgot tracing: no TracerProvider at all (the API stays a no-op), so the SDK
    # injects no traceparent. The server processes keep theirs (the URL still goes to them).
    provider = setup_tracing(args.service_name, args.otlp_endpoint) if args.scenario != "plain" else None
    try:
        outcomes = anyio.run(runner, args)
    finally:
        if provider is not None:
            shutdown_tracing(provider)
    summary = {
        "scenario": args.scenario,
        "service": args.service_name,
        "calls": [o.__dict__ for o in outcomes],
    }
    print(json.dumps(summary), flush=True)
    unexpected = [o for o in outcomes if o.status != o.expect]
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
