"""Incident captures: ``python -m mcptrace.samples.incidents [TARGET_DIR] [--jobs N] [--json]``.

One small real capture per correlation situation (see ``SITUATIONS``), each a pair of files named
after the situation:

- ``TARGET/<situation>.jsonl``       envelope JSONL, from the stdio tee or the Streamable HTTP proxy
- ``TARGET/<situation>.otlp.jsonl``  OTLP/JSON (Collector file exporter lines) of every process of the
  situation, as their real OTLP/HTTP exporters sent them to a receiver of its own

and ``TARGET/README.md`` describing them. Everything comes from real processes: the official MCP SDK
``Client`` (``mcptrace.samples.incident_agent``) and ``MCPServer`` (``mcptrace.samples.incident_server``,
the sample weather server plus a few buggy tools and a non-extracting OpenTelemetry middleware), the
downstream HTTP service, the recorders ``mcptrace.capture.stdio`` / ``mcptrace.capture.http``. The
misbehaviour is the processes' own (a server that dies or is SIGKILLed mid-call, a tool that writes a
raw line onto the wire, a client that times out), never an edit of the files afterwards.

Situations run in parallel (``--jobs``, default 4), each with its own OTLP receiver, ports and
processes; every process a situation started is ended when it finishes. ``fingerprint(TARGET)``
gives the structure (envelope counts per direction/method, span counts per service/kind, stdio
connection count) that must be identical between runs; ``verify(TARGET)`` checks that each capture
shows what its situation is about.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE_LIMIT = 1024 * 1024
PID_DIR_ENV = "MCPTRACE_INCIDENT_PID_DIR"
ENDPOINT_ENV = "MCPTRACE_SAMPLES_OTLP_ENDPOINT"
KIND = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
AGENT_TIMEOUT = 60


@dataclass(frozen=True)
class Situation:
    name: str
    title: str
    wire: str
    processes: str
    gaps: tuple[str, ...]
    clients: tuple[str, ...]
    server: str
    """OTel service.name of the MCP server process(es)."""
    notes: str = ""
    maybe_gaps: tuple[str, ...] = ()
    """Codes that a run may or may not add, depending on timing (explained in ``notes``)."""
    agent_args: tuple[str, ...] = ()
    transport: str = "stdio"
    downstream: bool = False
    key_names: tuple[str | None, ...] = (None,)
    no_tracing: tuple[bool, ...] = (False,)
    otlp_fail_first: int = 0
    """The OTLP receiver writes the first N export requests, then answers them 503 (the exporter retries)."""


SITUATIONS: tuple[Situation, ...] = (
    Situation(
        name="reconnect_with_session_key",
        title="stdio reconnect, the session key carries over",
        clients=("desk-agent",),
        server="weather-reconnect-keyed",
        key_names=("anthropic/session",),
        agent_args=("--numbered-connections",),
        processes=(
            "client `desk-agent` (traced); stdio tee + server process 1 (`--crash-export`, connection `…-1`); "
            "stdio tee + server process 2 (connection `…-2`)"
        ),
        wire=(
            "Legacy stdio. Connection 1: `initialize`, `notifications/initialized`, `tools/list`; turn 1 sends "
            "`search` and `export_report` concurrently; `search` is answered, then server process 1 dies in "
            "`export_report` (os._exit 137 after flushing its finished spans): no response, the tee sees EOF. "
            "Still inside turn 1 (same trace) the host starts server process 2 (connection 2): `initialize`, "
            "`notifications/initialized`, `tools/list`, then retries `export_report` (answered). Turn 2 "
            "(`divide`, `search`) runs on connection 2. Every `tools/call` carries the same "
            "`_meta[\"anthropic/session\"]` and a `traceparent`; JSON-RPC ids restart at 1 on connection 2."
        ),
        gaps=("session_reconnect", "unanswered_request", "server_span_missing"),
        notes=(
            "The lost `export_report` SERVER span was still open when process 1 died, so it is not in the dump "
            "(`server_span_missing`); both server processes share service.name and differ in the resource "
            "attribute `mcptrace.sample.process` (server-1 / server-2)."
        ),
    ),
    Situation(
        name="reconnect_without_session_key",
        title="stdio reconnect, nothing links the two connections",
        clients=("relay-agent",),
        server="weather-reconnect-unkeyed",
        agent_args=("--numbered-connections",),
        processes="client `relay-agent` (traced); tee + server process 1 (`--crash-export`); tee + server process 2",
        wire=(
            "Legacy stdio, no session key. Connection 1: `initialize`, `notifications/initialized`, `tools/list`; "
            "turn 1 (`search`, `export_report`): `search` answered, the server dies in `export_report` "
            "(unanswered). Turn 1 ends. Within about a second the same host (same clientInfo name) opens "
            "connection 2 to a new server process: `initialize`, `notifications/initialized`, `tools/list`, and "
            "turn 2 — a new trace — sends `export_report` and `divide` (both answered)."
        ),
        gaps=("session_split", "unanswered_request", "server_span_missing"),
        notes="Each turn is its own trace and the handshake CLIENT spans root their own traces too.",
    ),
    Situation(
        name="server_without_trace_extraction",
        title="the server ignores the incoming trace context",
        clients=("trace-agent",),
        server="weather-no-extract",
        agent_args=(),
        processes="client `trace-agent` (traced); tee + server (`--trace-extraction off --link-tools divide`)",
        wire=(
            "Legacy stdio. `initialize`, `notifications/initialized`, `tools/list`, then one turn with three "
            "concurrent `tools/call` (`search` ×2, `divide`), every request carrying a valid `_meta.traceparent`."
        ),
        gaps=("server_span_unlinked",),
        notes=(
            "The server's OpenTelemetry middleware was replaced by one that starts every SERVER span from an "
            "empty context (same names and `mcp.method.name`/`jsonrpc.request.id`/`gen_ai.tool.name` "
            "attributes): each server span roots its own trace. The `divide` span carries a span LINK to the "
            "client's context instead of a parent (a server that only links); the others carry nothing."
        ),
    ),
    Situation(
        name="downstream_without_propagation",
        title="a tool calls a downstream service without forwarding the trace",
        clients=("forecast-agent",),
        server="weather-downstream",
        downstream=True,
        processes="client `forecast-agent` (traced); tee + server; `downstream-api` HTTP service",
        wire=(
            "Legacy stdio. `initialize`, `notifications/initialized`, `tools/list`, then one turn with "
            "`get_forecast` and `get_alerts` concurrently; both answered."
        ),
        gaps=("downstream_unlinked",),
        notes=(
            "`get_forecast` forwards `traceparent` to downstream-api (its downstream SERVER span continues the "
            "trace); `get_alerts` does not, so its downstream span roots a new trace while lying inside the "
            "server's `GET /alerts` CLIENT span in time."
        ),
    ),
    Situation(
        name="stateless_three_clients",
        title="2026-07-28 stateless Streamable HTTP, three clients, three session-key conventions",
        clients=("host-anthropic", "host-openai", "host-vscode"),
        server="weather-stateless",
        transport="streamable_http",
        key_names=("anthropic/session", "openai/session", "vscode.conversationId"),
        no_tracing=(False, False, True),
        processes=(
            "three client processes started together (`host-anthropic` and `host-openai` traced, `host-vscode` "
            "with NO TracerProvider); the logging reverse proxy; the MCP server over Streamable HTTP"
        ),
        wire=(
            "Modern mode (`mode=\"2026-07-28\"`): no `initialize`, no `Mcp-Session-Id`; protocol version, "
            "clientInfo and capabilities ride in every request's `_meta` (`io.modelcontextprotocol/*`) and the "
            "`Mcp-Protocol-Version`/`Mcp-Method`/`Mcp-Name` headers. Each client sends `tools/list`, then two "
            "turns of two concurrent `tools/call` (`search`, `divide`), every call with its session key in "
            "`_meta` (`anthropic/session`, `openai/session`, `vscode.conversationId`; `tools/list` carries it too). "
            "Every POST is answered with one JSON body (`application/json`). `connection_id` is the client's TCP "
            "connection (host:port seen by the proxy): the SDK's httpx pool reuses it across sequential requests "
            "and opens another for concurrent ones, so it identifies neither a client nor a session."
        ),
        gaps=("missing_trace_context",),
        notes=(
            "`host-vscode` installs no TracerProvider: its requests carry no `traceparent` (and it exports no "
            "spans); the server's SERVER spans for them root their own traces. No client sends a `traceparent` "
            "HTTP header: trace context travels in `_meta` only."
        ),
    ),
    Situation(
        name="server_killed_mid_call",
        title="the server process is killed while a call is in flight",
        clients=("ops-agent",),
        server="weather-killed",
        processes="client `ops-agent` (traced); tee + server (killed with SIGKILL during `hang`)",
        wire=(
            "Legacy stdio. `initialize`, `notifications/initialized`, `tools/list`; turn 1 (`search`, `divide`) "
            "answered; turn 2 sends `hang`; the server flushes its finished spans and writes its pid, the host's "
            "watchdog SIGKILLs it: `hang` is never answered, the tee sees EOF, the client fails the call with "
            "CONNECTION_CLOSED and exits. No `notifications/cancelled`."
        ),
        gaps=("unanswered_request", "server_span_missing"),
    ),
    Situation(
        name="cancelled_call",
        title="a client-side timeout cancels a call",
        clients=("impatient-agent",),
        server="weather-cancel",
        processes="client `impatient-agent` (traced); tee + server",
        wire=(
            "Legacy stdio. `initialize`, `notifications/initialized`, `tools/list`; turn 1 sends `slow_report` "
            "(≈3 s of work, client timeout 0.5 s) and `search`; `search` is answered; after 0.5 s the client "
            "sends `notifications/cancelled` with `requestId` of `slow_report`, which is never answered. Turn 2 "
            "(`divide`) answered."
        ),
        gaps=("cancelled",),
        maybe_gaps=("clock_skew_suspected",),
        notes=(
            "The client ends its `slow_report` CLIENT span when the timeout fires; the server ends the SERVER span "
            "when the cancel arrives and its handler unwinds, a few milliseconds later. When that exceeds the "
            "loader's 5 ms tolerance (it depends on load) the child span ends after its parent and "
            "`clock_skew_suspected` is reported too, although both processes share one clock."
        ),
    ),
    Situation(
        name="unknown_progress_token",
        title="progress for a token nobody issued",
        clients=("progress-agent",),
        server="weather-progress",
        processes="client `progress-agent` (traced); tee + server",
        wire=(
            "Legacy stdio. `initialize`, `notifications/initialized`, `tools/list`; one turn with `long_task` "
            "(progressToken = its request id; 3 `notifications/progress` with that token) and `leaky_progress`, "
            "whose tool writes a raw `notifications/progress` line with progressToken `\"upload-42\"` onto the "
            "server's stdout, bypassing the SDK. The client drops it; both calls are answered."
        ),
        gaps=("unknown_progress_token",),
    ),
    Situation(
        name="response_with_unknown_id",
        title="a response whose id matches no request",
        clients=("ghost-agent",),
        server="weather-ghost",
        processes="client `ghost-agent` (traced); tee + server",
        wire=(
            "Legacy stdio. `initialize`, `notifications/initialized`, `tools/list`; one turn with `ghost_reply` "
            "and `search`; the `ghost_reply` tool writes the raw line `{\"jsonrpc\":\"2.0\",\"id\":4242,"
            "\"result\":{}}` onto the server's stdout (no request 4242 was ever sent), the client drops it; both "
            "real calls are answered."
        ),
        gaps=("orphan_response",),
    ),
    Situation(
        name="input_required_retry",
        title="2026-07-28 input_required: the retry is a new request id",
        clients=("booking-agent",),
        server="weather-input-required",
        key_names=("anthropic/session",),
        processes="client `booking-agent` (traced, with an elicitation callback); tee + server",
        wire=(
            "Modern stdio (`mode=\"2026-07-28\"`, no `initialize`). `tools/list`; one turn with `book_trip` and "
            "`search` concurrently. `book_trip` is answered with `resultType: \"input_required\"`, an "
            "`inputRequests` map holding one `elicitation/create` form and an opaque `requestState`; the "
            "client's elicitation callback accepts and the SDK re-issues `tools/call book_trip` with a NEW "
            "JSON-RPC id carrying `inputResponses` and the echoed `requestState`; that one completes. Both "
            "rounds carry `_meta[\"anthropic/session\"]` and the same turn's trace (two CLIENT spans, two "
            "SERVER spans)."
        ),
        gaps=(),
        notes=(
            "No gap is expected: the two `book_trip` requests are separate calls (the first with an "
            "input_required result), linked by the session key, the shared trace and the echoed "
            "`requestState`, not by their JSON-RPC ids."
        ),
    ),
    Situation(
        name="untraced_parallel_turn",
        title="tracing stops after turn 1: parallel calls without trace context",
        clients=("parallel-host",),
        server="weather-untraced-turns",
        processes="client `parallel-host` (traced in turn 1, then its tracers disabled); tee + server",
        wire=(
            "Legacy stdio. `initialize`, `notifications/initialized`, `tools/list`; three turns 0.15 s apart, "
            "each sending `search(query=\"turn N a\")`, `divide(a=N, b=1)` and `search(query=\"turn N b\")` "
            "concurrently (N = 1, 2, 3); all answered. The handshake and turn 1 carry `_meta.traceparent`; "
            "before turn 2 the host disables its tracers (the OTel SDK's TracerConfigurator), so the six "
            "`tools/call` of turns 2 and 3 carry no `traceparent` and have no CLIENT (or turn) span."
        ),
        gaps=("missing_trace_context",),
        notes=(
            "Only the arguments (`turn 2 …`, `a=2`) and the times tell turns 2 and 3 apart: their calls share "
            "one connection and no trace, and their SERVER spans each root a trace of their own."
        ),
    ),
    Situation(
        name="downstream_untraced_client",
        title="one host, two servers: a downstream request without trace context while both are busy",
        clients=("dual-agent",),
        server="weather-plain",
        downstream=True,
        processes=(
            "client `dual-agent` (traced); tee + `weather-plain` server (connection `…-weather-plain`); tee + "
            "`notes-mcp` server (connection `…-notes-mcp`), both incident server processes; `downstream-api` "
            "HTTP service"
        ),
        wire=(
            "Legacy stdio, two connections of one host: `initialize`, `notifications/initialized`, `tools/list` "
            "on weather-plain, then on notes-mcp. Turn 1: `get_forecast(city=Paris)` on weather-plain. Turn 2: "
            "`get_alerts_plain(region=IDF)` on weather-plain and `search(query=\"turn 2 agenda\")` on "
            "notes-mcp concurrently. Turn 3: `get_alerts_plain(region=BBG)` on weather-plain with "
            "`search(query=\"turn 3 agenda\")` and `divide(a=3, b=1)` on notes-mcp. Turn 4: "
            "`get_alerts_plain(region=kanto)` alone. Every `tools/call` carries its turn's `traceparent`; all "
            "answered."
        ),
        gaps=("downstream_unlinked",),
        notes=(
            "`get_forecast` forwards `traceparent` (weather-plain CLIENT span `GET /forecast`, downstream-api "
            "SERVER span in the same trace): the evidence that weather-plain calls downstream-api. "
            "`get_alerts_plain` waits 25 ms, then calls downstream-api with a plain httpx client (no CLIENT "
            "span, no header), so each `GET /alerts` SERVER span roots its own trace; its `url.query` "
            "(`region=IDF` / `BBG` / `kanto`) names the call it serves. In turns 2 and 3 the notes-mcp "
            "`search` (147 / 137 ms) is in flight during the whole downstream request (`divide` ends before "
            "it starts), so time alone does not tell which server made it; in turn 4 only weather-plain's "
            "call is open."
        ),
    ),
    Situation(
        name="colliding_ids_no_extraction",
        title="two sessions send the same ids to a server that does not extract trace context",
        clients=("ide-amber", "ide-blue"),
        server="weather-colliding",
        transport="streamable_http",
        processes=(
            "two traced client processes (`ide-amber`, `ide-blue`) waiting at a start line and released 30 ms "
            "apart; the logging reverse proxy; the MCP server over Streamable HTTP (`--trace-extraction off`)"
        ),
        wire=(
            "Legacy Streamable HTTP, one `Mcp-Session-Id` per client. Each client: `initialize`, "
            "`notifications/initialized`, `tools/list`; turn 1 with two concurrent `search` "
            "(`amber turn 1 caching` / `amber turn 1 auth`; `blue turn 1 caching` / `blue turn 1 cancellation`); "
            "turn 2 with `search` (`amber turn 2 logs` / `blue turn 2 logs`) and `divide` (`a=10, b=4` / "
            "`a=20, b=4`). Both sessions send the same JSON-RPC ids for the same methods and tools, ~30 ms "
            "apart, their calls overlapping in time; every request carries a `traceparent` in `_meta`; all "
            "answered."
        ),
        gaps=("server_span_unlinked",),
        notes=(
            "The server's non-extracting middleware starts every SERVER span as a root with "
            "`mcp.method.name`, `jsonrpc.request.id`, `gen_ai.tool.name` and `gen_ai.tool.call.arguments` "
            "but no session id: by id, method and tool each `tools/call` span fits a call of both sessions; "
            "its arguments (and the offset) tell which. Each host runs its steps on a fixed schedule from its "
            "start (`initialize` at +0, `tools/list` at +0.2 s, turn 1 at +0.5 s, turn 2 at +0.9 s); the "
            "offset is 30 ms by design and CPU load moves it by tens of ms (between 5 and 200 ms, `verify()` "
            "checks)."
        ),
    ),
    Situation(
        name="spans_twice",
        title="the same spans delivered twice: an exporter retry after a lost acknowledgement",
        clients=("quiet-host",),
        server="weather-twice",
        agent_args=("--no-export",),
        otlp_fail_first=1,
        processes=(
            "client `quiet-host` (traced, but its TracerProvider has no exporter); tee + server; the OTLP "
            "receiver writes the first export request, then answers it 503 (`Retry-After: 1`)"
        ),
        wire=(
            "Legacy stdio. `initialize`, `notifications/initialized`, `tools/list`; one turn with "
            "`search(query=\"spans twice\")` and `divide(a=6, b=3)` concurrently; all answered, every request "
            "with `_meta.traceparent`."
        ),
        gaps=("orphan_span",),
        notes=(
            "The server exports its five spans in one request at shutdown; the receiver wrote it and answered "
            "503, the exporter sent the same request again a second later: two identical lines, every server "
            "span twice. The host's spans are in no dump, so each server span's parent (the CLIENT span its "
            "request's `traceparent` names) is missing."
        ),
    ),
    Situation(
        name="resumable_http_server",
        title="Streamable HTTP sessions on a resumable server: priming events, GET streams, a resumed call",
        clients=("studio-agent", "notebook-agent"),
        server="weather-resumable",
        transport="streamable_http",
        processes=(
            "two traced client processes started together (`studio-agent`, `notebook-agent`); the logging "
            "reverse proxy; the MCP server over Streamable HTTP with sessions and an event store "
            "(`MemoryEventStore`, one per session, `retry` 1000 ms; `--resumable-tools`)"
        ),
        wire=(
            "Legacy Streamable HTTP, one `Mcp-Session-Id` per client, the two sessions concurrent. Each "
            "client: `initialize`, `notifications/initialized` (202), the SDK's GET stream (200, "
            "`text/event-stream`, no event), `tools/list`; turn 1 `search(query=\"<client>: release notes\")` "
            "and `divide(a=12, b=4)` concurrently; turn 2 `long_task(steps=3)` with 3 "
            "`notifications/progress`; turn 3 `resumable_report(label=\"<client>: weekly\")` with progress: "
            "the server sends progress 1/2, then closes that POST's SSE stream (`ctx.close_sse_stream()`, a "
            "clean end, the call still running), finishes 0.2 s later into its event store; the client waits "
            "the announced `retry` (1 s) and resumes with a GET carrying `Last-Event-ID` (the last id it saw): "
            "progress 2/2 and the result are replayed on that GET, then the server primes the resumed stream. "
            "Leaving the `Client` sends DELETE (200). Every POST's SSE response opens with a priming event "
            "(`id`, empty data, `retry: 1000`), recorded as a message-less envelope; GET and DELETE are "
            "message-less `client_to_server` envelopes. Every call is answered."
        ),
        gaps=(),
        notes=(
            "The arguments name the client (`studio-agent: …`, `notebook-agent: …`); each client's summary "
            "lists its `Mcp-Session-Id`. The resumed call's request and result are on different HTTP "
            "exchanges (`http.exchange_id`) of the same session; no stream breaks, so there is no reset."
        ),
    ),
    Situation(
        name="lookalike_clients_reconnect",
        title="two look-alike clients lose their server mid-call and reconnect, nothing links the sessions",
        clients=("twin-agent", "twin-agent"),
        server="weather-lookalike",
        transport="streamable_http",
        no_tracing=(True, True),
        processes=(
            "two client processes with the same clientInfo (`twin-agent` 2.0.0), NO TracerProvider, no "
            "session key (labels A and B in their tool arguments only); the logging reverse proxy; server "
            "process 1 over Streamable HTTP (`--crash-export`), later server process 2 on the same port"
        ),
        wire=(
            "Legacy Streamable HTTP. Session 1 of each client: `initialize`, `notifications/initialized`, the "
            "GET stream, `tools/list`. B's turn 1 sends `search(query=\"client-B: hotels in Oslo\")` "
            "(answered) and `slow_report(days=7)` (3 s); once that reached the server, A's turn 1 sends "
            "`search(query=\"client-A: flights to Oslo\")` (answered) and `export_report(fmt=\"A-pdf\")`, "
            "which kills server process 1 after 0.3 s (os._exit 137): `export_report` and `slow_report` are "
            "never answered; the proxy records `upstream_reset` on both POST streams and both GET streams. "
            "Each SDK client retries its GET stream once and resumes its call's stream twice with "
            "`Last-Event-ID` (1 s apart, the announced `retry`), all answered 502 by the proxy "
            "(`upstream_error`), gives up (the call fails CONNECTION_CLOSED) and leaves the session with "
            "DELETE (502). Then server process 2 starts on the same port and each client opens session 2 (a "
            "new `Mcp-Session-Id`): `initialize`, `notifications/initialized`, GET stream, `tools/list`, "
            "turn 2 (A: `export_report(fmt=\"A-pdf\")`, `search(query=\"client-A: after reconnect\")`; B: "
            "`search(query=\"client-B: after reconnect\")`, `export_report(fmt=\"B-csv\")`), all answered, "
            "DELETE (200)."
        ),
        gaps=("session_split", "unanswered_request", "missing_trace_context"),
        notes=(
            "Nothing in the protocol links a session 2 to its session 1: same clientInfo, no session key, no "
            "trace context, JSON-RPC ids restart, and each session's `connection_id` is a TCP connection of "
            "the moment. Only the arguments (`client-A: …`, `A-pdf` / `client-B: …`, `B-csv`) carry the "
            "ground truth, and each client's summary lists its two `Mcp-Session-Id` in order. Server "
            "process 1's SERVER spans of the two lost calls died with it; the processes differ in "
            "`mcptrace.sample.process` (server-1 / server-2)."
        ),
    ),
)
BY_NAME = {s.name: s for s in SITUATIONS}


# -- process plumbing -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(otlp_endpoint: str, pid_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env[ENDPOINT_ENV] = otlp_endpoint
    env[PID_DIR_ENV] = str(pid_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("OTEL_RESOURCE_ATTRIBUTES", None)
    return env


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    from mcptrace.samples.__main__ import _wait_http as wait

    wait(url, proc, timeout)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _belongs_to(pid: int, pid_dir: Path) -> bool:
    """Whether ``pid`` is still one of this situation's processes (its environment names ``pid_dir``)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{PID_DIR_ENV}={pid_dir}".encode() in environ


def _reap_stragglers(pid_dir: Path) -> list[int]:
    """SIGKILL the recorded server processes (and their tees) of this situation that are still alive.

    Each incident server writes ``<pid> <parent pid (the tee)>`` into ``pid_dir``; a pid is only killed
    while its environment still carries this situation's ``pid_dir`` (so a recycled pid is left alone).
    """
    killed = []
    for f in sorted(pid_dir.iterdir()):
        for pid in map(int, f.read_text().split()):
            if _belongs_to(pid, pid_dir):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
    return killed


@dataclass
class _Run:
    """One situation's run: its files, receiver endpoint and the processes it started."""

    sit: Situation
    target: Path
    work: Path
    run_id: str
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def envelopes(self) -> Path:
        return self.target / f"{self.sit.name}.jsonl"

    @property
    def otlp(self) -> Path:
        return self.target / f"{self.sit.name}.otlp.jsonl"

    def popen(self, *args: str, capture: bool = False, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``python ARGS`` in its own session (``env`` added to the run's environment); stderr (and
        stdout unless captured) go to a log file."""
        log = self.work / f"{len(self.procs)}-{args[1].rsplit('.', 1)[-1]}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, *args], env={**self.env, **(env or {})}, cwd=str(REPO_ROOT),
                stdout=subprocess.PIPE if capture else fh, stderr=fh, start_new_session=True,
            )
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def http_server(self, port: int, *flags: str, process: str | None = None) -> subprocess.Popen[bytes]:
        """The incident server over Streamable HTTP on ``port`` (``flags`` before its ``--``); ``process``
        names it in the resource attribute ``mcptrace.sample.process``."""
        env = {"OTEL_RESOURCE_ATTRIBUTES": f"mcptrace.sample.process={process}"} if process else None
        return self.popen("-m", "mcptrace.samples.incident_server", *flags, "--", "--transport", "http",
                          "--port", str(port), "--service-name", self.sit.server, env=env)

    def http_proxy(self, proxy_port: int, mcp_port: int) -> subprocess.Popen[bytes]:
        """The recording proxy on ``proxy_port`` in front of the server on ``mcp_port``, writing the envelopes."""
        return self.popen("-m", "mcptrace.capture.http", "--listen", f"127.0.0.1:{proxy_port}",
                          "--upstream", f"http://127.0.0.1:{mcp_port}", "--out", str(self.envelopes))

    def serve_http(self, services: list[subprocess.Popen[bytes]], *flags: str,
                   process: str | None = None) -> tuple[str, int, subprocess.Popen[bytes]]:
        """Start the HTTP server and the proxy in front of it (added to ``services``), wait until both
        answer; returns (the proxy's MCP URL, the server's port, the server process)."""
        mcp_port, proxy_port = _free_port(), _free_port()
        server = self.http_server(mcp_port, *flags, process=process)
        services.append(server)
        proxy = self.http_proxy(proxy_port, mcp_port)
        services.append(proxy)
        _wait_http(f"http://127.0.0.1:{mcp_port}/", server)
        _wait_http(f"http://127.0.0.1:{proxy_port}/healthz", proxy)
        return f"http://127.0.0.1:{proxy_port}/mcp", mcp_port, server

    @staticmethod
    def log_tail(proc: subprocess.Popen[bytes], n: int = 3000) -> str:
        try:
            return Path(proc.log).read_text(errors="replace")[-n:]  # type: ignore[attr-defined]
        except OSError:
            return ""

    def agent(self, i: int, *extra: str) -> subprocess.Popen[bytes]:
        sit = self.sit
        client = sit.clients[i]
        key_name = sit.key_names[i] if i < len(sit.key_names) else None
        args = ["-m", "mcptrace.samples.incident_agent", sit.name if sit.transport == "stdio" else "stateless_client",
                "--service-name", client, "--server-service-name", sit.server, *sit.agent_args, *extra]
        if sit.transport == "stdio":
            args += ["--tee-out", str(self.envelopes), "--connection-id", f"stdio:{client}:{self.run_id}"]
        if key_name:
            args += ["--session-key-name", key_name, "--session-key", str(uuid.uuid4())]
        if i < len(sit.no_tracing) and sit.no_tracing[i]:
            args.append("--no-tracing")
        return self.popen(*args, capture=True)

    def finish_agents(self, agents: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
        summaries = []
        for proc in agents:
            try:
                out, _ = proc.communicate(timeout=AGENT_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=10)
                raise RuntimeError(f"{self.sit.name}: client timed out\n{self.log_tail(proc)}") from None
            lines = out.decode("utf-8", errors="replace").strip().splitlines()
            try:
                summary = json.loads(lines[-1]) if lines else {}
            except ValueError:
                summary = {}
            if proc.returncode != 0:
                bad = [c for c in summary.get("calls", []) if c["status"] != c["expect"]]
                raise RuntimeError(
                    f"{self.sit.name}: client exited {proc.returncode}; unexpected outcomes {bad}\n"
                    + self.log_tail(proc)
                )
            summaries.append(summary)
        return summaries


def _run_situation(sit: Situation, target: Path, work_root: Path, run_id: str) -> dict[str, Any]:
    from mcptrace.samples.otlp_receiver import OTLPReceiver

    run = _Run(sit, target, work_root / sit.name, run_id)
    pid_dir = run.work / "pids"
    pid_dir.mkdir(parents=True)
    for p in (run.envelopes, run.otlp):
        p.write_bytes(b"")  # the recorders and the receiver append
    t0 = time.monotonic()
    receiver = OTLPReceiver(str(run.otlp), fail_first=sit.otlp_fail_first).start()
    run.env = _env(receiver.endpoint, pid_dir)
    services: list[subprocess.Popen[bytes]] = []
    try:
        extra: list[str] = []
        if sit.downstream:
            port = _free_port()
            down = run.popen("-m", "mcptrace.samples.downstream", "--port", str(port))
            services.append(down)
            _wait_http(f"http://127.0.0.1:{port}/healthz", down)
            extra += ["--downstream", f"http://127.0.0.1:{port}"]
        if sit.name == "server_killed_mid_call":
            extra += ["--ready-file", str(run.work / "hang.ready")]
        from mcptrace.samples.incidents_http import RUNNERS as HTTP_RUNNERS
        from mcptrace.samples.incidents_partial import RUNNERS

        if sit.name in RUNNERS:
            summaries = RUNNERS[sit.name](run, services)
        elif sit.name in HTTP_RUNNERS:
            summaries = HTTP_RUNNERS[sit.name](run, services)
        elif sit.transport == "stdio":
            summaries = run.finish_agents([run.agent(0, *extra)])
        else:
            url, _port, _server = run.serve_http(services)
            summaries = run.finish_agents([run.agent(i, "--url", url) for i in range(len(sit.clients))])
    finally:
        # the proxy first, then the server (flushes its spans on SIGTERM), then downstream
        for proc in reversed(services):
            _stop(proc)
        for proc in run.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        stragglers = _reap_stragglers(pid_dir)
        receiver.stop()
    return {"situation": sit.name, "seconds": round(time.monotonic() - t0, 1), "clients": summaries,
            "stragglers_killed": stragglers}


# -- structure -----------------------------------------------------------------------------------


from mcptrace.samples.check import _attrs  # noqa: E402 - OTLP attribute lists as plain dicts


def load_spans(path: Path) -> list[dict[str, Any]]:
    """The spans of an OTLP/JSON file-exporter dump, flattened (service, kind name, attrs as a dict)."""
    spans = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            for rs in json.loads(line).get("resourceSpans", []):
                res = _attrs(rs.get("resource", {}).get("attributes"))
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        spans.append({
                            "service": res.get("service.name"),
                            "process": res.get("mcptrace.sample.process"),
                            "trace_id": s["traceId"],
                            "span_id": s["spanId"],
                            "parent": s.get("parentSpanId", ""),
                            "name": s["name"],
                            "kind": KIND.get(s.get("kind", 0), "UNSPECIFIED"),
                            "start": int(s["startTimeUnixNano"]),
                            "end": int(s["endTimeUnixNano"]),
                            "attrs": _attrs(s.get("attributes")),
                            "links": s.get("links", []),
                        })
    return spans


def load_envelopes(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def message_kind(msg: Any) -> str:
    """``method`` for requests/notifications, ``result`` / ``result[input_required]`` / ``error`` else."""
    if isinstance(msg, list):
        return "batch"
    if not isinstance(msg, dict):
        return "raw"
    if "method" in msg:
        return str(msg["method"])
    if "error" in msg:
        return "error"
    rtype = (msg.get("result") or {}).get("resultType") if isinstance(msg.get("result"), dict) else None
    return f"result[{rtype}]" if rtype not in (None, "complete") else "result"


def fingerprint(target: Path) -> dict[str, dict[str, Any]]:
    """Per situation: envelope counts per ``direction kind``, span counts per ``service KIND``, stdio connections.

    The kind of an envelope is its message's (:func:`message_kind`); the HTTP proxy's message-less records
    count as what they are (``GET``, ``DELETE``, ``sse_priming``, ``error:upstream_reset``...: see
    :func:`mcptrace.samples.incidents_http.envelope_kind`)."""
    out: dict[str, dict[str, Any]] = {}
    for sit in SITUATIONS:
        env_path, otlp_path = target / f"{sit.name}.jsonl", target / f"{sit.name}.otlp.jsonl"
        if not env_path.exists() or not otlp_path.exists():
            out[sit.name] = {"missing": True}
            continue
        envs = load_envelopes(env_path)
        spans = load_spans(otlp_path)
        from mcptrace.samples.incidents_http import envelope_kind  # message-less HTTP records by what they are

        out[sit.name] = {
            "envelopes": dict(sorted(Counter(
                f"{e['direction']} {envelope_kind(e)}" for e in envs).items())),
            "spans": dict(sorted(Counter(f"{s['service']} {s['kind']}" for s in spans).items())),
            "stdio_connections": len({e["connection_id"] for e in envs if e.get("transport") == "stdio"}),
        }
    return out


def wire_sequence(path: Path) -> list[str]:
    """The capture in ts order as ``> method #id`` (client to server) / ``< result #id`` (server to client)."""
    seq = []
    for e in sorted(load_envelopes(path), key=lambda e: e["ts"]):
        msg = e.get("message")
        arrow = ">" if e["direction"] == "client_to_server" else "<"
        from mcptrace.samples.incidents_http import envelope_kind

        kind = envelope_kind(e)
        if isinstance(msg, dict):
            if msg.get("method") == "tools/call":
                kind += f" {msg['params'].get('name')}"
            if "id" in msg:
                kind += f" #{msg['id']}"
        seq.append(f"{arrow} {kind}")
    return seq


# -- verification ------------------------------------------------------------------------------------


def _meta(msg: dict[str, Any]) -> dict[str, Any]:
    params = msg.get("params")
    return (params.get("_meta") or {}) if isinstance(params, dict) else {}


def _requests(envs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Client requests, each with ``_conn`` (its connection id) added to a copy of the message."""
    return [{**e["message"], "_conn": e["connection_id"]} for e in envs
            if e["direction"] == "client_to_server" and isinstance(e.get("message"), dict)
            and "method" in e["message"] and "id" in e["message"]]


def _responses(envs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e["message"], "_conn": e["connection_id"]} for e in envs
            if e["direction"] == "server_to_client" and isinstance(e.get("message"), dict)
            and "method" not in e["message"] and "id" in e["message"]]


def _key(msg: dict[str, Any]) -> tuple[str, str]:
    """Where a request/response pair meets: its connection and its JSON-RPC id (ids restart per connection)."""
    return msg["_conn"], json.dumps(msg.get("id"))


def _tp(msg: dict[str, Any]) -> tuple[str, str] | None:
    tp = _meta(msg).get("traceparent")
    parts = tp.split("-") if isinstance(tp, str) else []
    return (parts[1], parts[2]) if len(parts) == 4 else None


def _same_trace(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ta, tb = _tp(a), _tp(b)
    return ta is not None and tb is not None and ta[0] == tb[0]


def verify(target: Path) -> list[str]:
    """Check that every capture shows its situation; returns the problems found (empty when all is well)."""
    problems: list[str] = []

    def need(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    for sit in SITUATIONS:
        name = sit.name
        env_path, otlp_path = target / f"{name}.jsonl", target / f"{name}.otlp.jsonl"
        if not env_path.exists() or not otlp_path.exists():
            problems.append(f"{name}: files missing")
            continue
        envs, spans = load_envelopes(env_path), load_spans(otlp_path)
        # (the HTTP proxy's message-less records of HTTP events - priming events, GET/DELETE, a stream's
        # reset or disconnect - are not lines of the wire; a record with ``raw`` is; the situation's own
        # checks say which HTTP events it expects)
        need(all(isinstance(e.get("message"), dict) for e in envs
                 if not (e.get("message") is None and "raw" not in e and e.get("transport") != "stdio"
                         and isinstance(e.get("http"), dict))),
             f"{name}: every line is one JSON-RPC object")
        reqs, resps = _requests(envs), _responses(envs)
        calls = [m for m in reqs if m["method"] == "tools/call"]
        answered = {_key(m) for m in resps}
        by_tool: dict[str, list[dict[str, Any]]] = {}
        for m in calls:
            by_tool.setdefault(m["params"]["name"], []).append(m)
        conns = [e["connection_id"] for e in envs]
        server_spans = [s for s in spans if s["service"] == sit.server and s["kind"] == "SERVER"]
        sspan = {(s["process"], s["attrs"].get("jsonrpc.request.id")): s for s in server_spans}
        has_init = any(m["method"] == "initialize" for m in reqs)
        need(has_init == (name not in ("stateless_three_clients", "input_required_retry")),
             f"{name}: initialize on the wire only in legacy mode")
        traced = [m for m in calls if _tp(m)]

        if name.startswith("reconnect"):
            need(len(set(conns)) == 2 and len([m for m in reqs if m["method"] == "initialize"]) == 2,
                 f"{name}: two stdio connections, each with its initialize")
            exp = by_tool.get("export_report", [])
            need(len(exp) == 2 and _key(exp[0]) not in answered and _key(exp[1]) in answered,
                 f"{name}: first export_report unanswered, the retry answered")
            need({s["process"] for s in server_spans} == {"server-1", "server-2"}, f"{name}: spans of both servers")
            need(bool(exp) and ("server-1", str(exp[0]["id"])) not in sspan,
                 f"{name}: the lost export_report's SERVER span died with its process")
            ends = {c: max(e["ts"] for e in envs if e["connection_id"] == c) for c in set(conns)}
            starts = {c: min(e["ts"] for e in envs if e["connection_id"] == c) for c in set(conns)}
            if len(ends) == 2:
                c1, c2 = sorted(ends, key=lambda c: starts[c])
                gap = datetime.fromisoformat(starts[c2].replace("Z", "+00:00")) - datetime.fromisoformat(
                    ends[c1].replace("Z", "+00:00"))
                need(0 < gap.total_seconds() < 5, f"{name}: connection 2 begins within seconds of connection 1's end")
            keys = {_meta(m).get("anthropic/session") for m in calls}
            if name == "reconnect_with_session_key":
                need(len(keys) == 1 and None not in keys, f"{name}: one anthropic/session key on every tools/call")
                need(len(traced) == len(calls), f"{name}: every tools/call has a traceparent")
                need(len(exp) == 2 and _same_trace(exp[0], exp[1]),
                     f"{name}: the retry continues the lost call's trace (same turn)")
            else:
                need(keys == {None}, f"{name}: no session key")
                first_conn = conns[0]
                tr1 = {_tp(m)[0] for m in reqs if _tp(m) and m["_conn"] == first_conn}
                tr2 = {_tp(m)[0] for m in reqs if _tp(m) and m["_conn"] != first_conn}
                need(bool(tr1) and bool(tr2) and not tr1 & tr2,
                     f"{name}: no trace id on connection 2 that connection 1 used")
                clients = {(m.get("params") or {}).get("clientInfo", {}).get("name")
                           for m in reqs if m["method"] == "initialize"}
                need(clients == {sit.clients[0]}, f"{name}: same clientInfo name on both connections")
        elif name == "server_without_trace_extraction":
            need(len(traced) == len(calls) == 3, f"{name}: three traced tools/call")
            client_traces = {_tp(m)[0] for m in reqs if _tp(m)}
            need(all(s["parent"] == "" and s["trace_id"] not in client_traces for s in server_spans),
                 f"{name}: every server SERVER span roots its own trace")
            linked = [s for s in server_spans if s["links"]]
            div = by_tool.get("divide", [{}])[0]
            need(len(linked) == 1 and linked[0]["attrs"].get("gen_ai.tool.name") == "divide"
                 and _tp(div) == (linked[0]["links"][0]["traceId"], linked[0]["links"][0]["spanId"]),
                 f"{name}: exactly the divide SERVER span links to the client span it should be a child of")
        elif name == "downstream_without_propagation":
            down = [s for s in spans if s["service"] == "downstream-api"]
            by_route = {s["name"]: s for s in down}
            srv_traces = {s["trace_id"] for s in server_spans}
            need(len(down) == 2 and by_route.get("GET /forecast", {}).get("trace_id") in srv_traces
                 and by_route.get("GET /alerts", {}).get("parent") == ""
                 and by_route.get("GET /alerts", {}).get("trace_id") not in srv_traces,
                 f"{name}: /forecast continues the server trace, /alerts roots a new trace")
        elif name == "stateless_three_clients":
            need(not any("mcp-session-id" in (e.get("http") or {}).get("request_headers", {})
                         or "mcp-session-id" in (e.get("http") or {}).get("response_headers", {}) for e in envs),
                 f"{name}: no Mcp-Session-Id anywhere")
            by_client: dict[str, list[dict[str, Any]]] = {}
            for m in calls:
                by_client.setdefault(_meta(m).get("io.modelcontextprotocol/clientInfo", {}).get("name"), []).append(m)
            need(sorted(by_client) == sorted(sit.clients) and all(len(v) == 4 for v in by_client.values()),
                 f"{name}: three clients with four tools/call each")
            for client, key_name, untraced in zip(sit.clients, sit.key_names, sit.no_tracing, strict=True):
                ms = by_client.get(client, [])
                keys = {_meta(m).get(key_name) for m in ms}
                need(len(keys) == 1 and None not in keys, f"{name}: {client} sends one {key_name} key")
                need(all((_tp(m) is None) == untraced for m in ms), f"{name}: {client} traceparent iff traced")
            need(not any(s["service"] == sit.clients[2] for s in spans), f"{name}: {sit.clients[2]} exports no spans")
        elif name == "server_killed_mid_call":
            hang = by_tool.get("hang", [{}])[0]
            need(bool(hang) and _key(hang) not in answered, f"{name}: hang never answered")
            need(not any(m.get("method") == "notifications/cancelled" for m in (e["message"] for e in envs)),
                 f"{name}: nothing cancelled")
            need(("server-1", str(hang.get("id"))) not in sspan and len(server_spans) >= 4,
                 f"{name}: finished server spans flushed, hang's span lost")
        elif name == "cancelled_call":
            slow = by_tool.get("slow_report", [{}])[0]
            cancels = [e["message"] for e in envs if e["message"].get("method") == "notifications/cancelled"]
            need(len(cancels) == 1 and cancels[0]["params"].get("requestId") == slow.get("id")
                 and bool(slow) and _key(slow) not in answered, f"{name}: slow_report cancelled, never answered")
        elif name == "unknown_progress_token":
            prog = [e["message"] for e in envs if e["message"].get("method") == "notifications/progress"]
            lt = by_tool.get("long_task", [{}])[0]
            tokens = Counter(p["params"]["progressToken"] for p in prog)
            need(tokens == Counter({_meta(lt).get("progressToken"): 3, "upload-42": 1}),
                 f"{name}: 3 progress for long_task's token, 1 for the unknown token upload-42")
        elif name == "response_with_unknown_id":
            sent = {_key(m) for m in reqs}
            orphans = [m for m in resps if _key(m) not in sent]
            need(len(orphans) == 1 and orphans[0]["id"] == 4242, f"{name}: one response with the unknown id 4242")
            need(all(_key(m) in answered for m in calls), f"{name}: the real calls are answered")
        elif name == "input_required_retry":
            bt = by_tool.get("book_trip", [])
            rmap = {_key(m): m for m in resps}
            first = rmap.get(_key(bt[0])) if bt else None
            need(len(bt) == 2 and bt[0]["id"] != bt[1]["id"], f"{name}: book_trip sent twice with different ids")
            need(first is not None and first["result"].get("resultType") == "input_required"
                 and "requestState" in first["result"] and first["result"].get("inputRequests"),
                 f"{name}: the first book_trip is answered input_required with inputRequests and requestState")
            if len(bt) == 2 and first is not None:
                p2 = bt[1]["params"]
                need(p2.get("requestState") == first["result"].get("requestState")
                     and set(p2.get("inputResponses") or {}) == set(first["result"].get("inputRequests") or {}),
                     f"{name}: the retry carries inputResponses and echoes requestState")
                need(_same_trace(bt[0], bt[1]), f"{name}: both rounds in the same trace")
                need(rmap.get(_key(bt[1]), {}).get("result", {}).get("resultType") == "complete",
                     f"{name}: the retry completes")
        from mcptrace.samples.incidents_partial import CHECKS

        if name in CHECKS:
            CHECKS[name](sit, envs, spans, need)
        from mcptrace.samples.incidents_http import CHECKS as HTTP_CHECKS

        if name in HTTP_CHECKS:
            HTTP_CHECKS[name](sit, envs, spans, need)
        # the servers' SERVER spans carry the semconv attributes for every tools/call they finished
        for s in server_spans:
            if s["attrs"].get("mcp.method.name") == "tools/call":
                need(s["attrs"].get("jsonrpc.request.id") is not None and s["attrs"].get("gen_ai.tool.name"),
                     f"{name}: server span {s['name']} has jsonrpc.request.id and gen_ai.tool.name")
    return problems


# -- README -------------------------------------------------------------------------------------------


def render_readme(fp: dict[str, dict[str, Any]]) -> str:
    """The README of the incident directory: deterministic (prose and structure counts, nothing per run)."""
    lines = [
        "# Incident captures",
        "",
        "Generated by `python -m mcptrace.samples.incidents data/incidents` (do not edit by hand). One small "
        "real capture per correlation situation: real MCP Python SDK (2.x) client and server processes with "
        "OpenTelemetry on, recorded by mcptrace's stdio tee (`mcptrace.capture.stdio`) or Streamable HTTP "
        "logging proxy (`mcptrace.capture.http`); each process exports its spans with the OTLP/HTTP exporter "
        "to a receiver that writes Collector file-exporter JSON lines. Misbehaviour comes from the processes "
        "themselves (killed servers, buggy tools writing raw lines to stdout, a non-extracting middleware, a "
        "client timeout), never from editing the files.",
        "",
        "Per situation `<name>.jsonl` is the envelope JSONL capture and `<name>.otlp.jsonl` holds the spans of "
        "every process of that situation. Load one pair, or the whole directory, with `mcptrace.load(...)`.",
        "Timestamps, ids, trace ids and session keys change on every run; the structure below does not "
        "(`tests/test_incidents_generator.py` regenerates and compares it; `verify()` in "
        "`mcptrace/samples/incidents.py` checks each property stated here).",
        "",
        "| situation | expected gap codes (the README's gap codes) |",
        "| --- | --- |",
    ]
    for sit in SITUATIONS:
        maybe = f" (depending on timing also {', '.join(f'`{g}`' for g in sit.maybe_gaps)})" if sit.maybe_gaps else ""
        lines.append(f"| [`{sit.name}`](#{sit.name}) | {', '.join(f'`{g}`' for g in sit.gaps) or '— (none)'}{maybe} |")
    for sit in SITUATIONS:
        f = fp.get(sit.name, {})
        lines += ["", f"## {sit.name}", "", f"**{sit.title}.**", "",
                  f"- Files: `{sit.name}.jsonl`, `{sit.name}.otlp.jsonl`",
                  f"- Processes: {sit.processes}",
                  f"- On the wire: {sit.wire}"]
        if sit.notes:
            lines.append(f"- Notes: {sit.notes}")
        maybe = f"; depending on timing also {', '.join(f'`{g}`' for g in sit.maybe_gaps)}" if sit.maybe_gaps else ""
        lines.append(f"- Expected gap codes: {', '.join(f'`{g}`' for g in sit.gaps) or 'none'}{maybe}")
        env_counts = ", ".join(f"{k.replace('client_to_server ', '→ ').replace('server_to_client ', '← ')} ×{n}"
                               for k, n in f.get("envelopes", {}).items())
        span_counts = ", ".join(f"{k} ×{n}" for k, n in f.get("spans", {}).items())
        lines.append(f"- Messages: {env_counts}")
        lines.append(f"- Spans: {span_counts}")
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------------------


#: times a situation whose own checks fail is run again, alone (see :func:`generate`)
RERUNS = 2


def generate(target: Path, jobs: int = 4, only: list[str] | None = None) -> dict[str, Any]:
    from mcptrace.samples._deps import require_sample_deps

    require_sample_deps()
    target.mkdir(parents=True, exist_ok=True)
    sits = [s for s in SITUATIONS if not only or s.name in only]
    run_id = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mcptrace-incidents-"))
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {s.name: pool.submit(_run_situation, s, target, work, run_id) for s in sits}
            results = {name: fut.result() for name, fut in futures.items()}
        problems = verify(target) if not only else []
        # A situation whose capture misses its point because of timing (a 0.5 s client timeout that
        # fires late while parallel runs start their processes) runs again, alone on the machine.
        for attempt in range(1, RERUNS + 1):
            again = [s for s in sits if any(p.startswith(f"{s.name}: ") for p in problems)]
            if not again:
                break
            for sit in again:
                results[sit.name] = _run_situation(sit, target, work / f"rerun-{attempt}", run_id)
                results[sit.name]["reruns"] = attempt
            problems = verify(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fp = fingerprint(target)
    sequences = {s.name: wire_sequence(target / f"{s.name}.jsonl") for s in SITUATIONS
                 if (target / f"{s.name}.jsonl").exists()}
    if not only:
        (target / "README.md").write_text(render_readme(fp), encoding="utf-8")
    total = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
    if total > SIZE_LIMIT:
        problems.append(f"{target} holds {total} bytes (> 1 MB)")
    return {"seconds": round(time.monotonic() - t0, 1), "bytes": total, "runs": results, "fingerprint": fp,
            "sequences": sequences, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.incidents", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default="data/incidents")
    parser.add_argument("--jobs", type=int, default=4, help="situations run in parallel (default 4)")
    parser.add_argument("--only", action="append", choices=[s.name for s in SITUATIONS],
                        help="run only this situation (repeatable; no README, no verify)")
    parser.add_argument("--json", action="store_true", help="print the full summary as JSON")
    parser.add_argument("--fingerprint", action="store_true", help="print the fingerprint of TARGET and exit")
    args = parser.parse_args(argv)
    target = Path(args.target)
    if args.fingerprint:
        print(json.dumps(fingerprint(target), indent=1, sort_keys=True))
        return 0
    result = generate(target, args.jobs, args.only)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print(f"generated in {result['seconds']} s ({result['bytes']} bytes in {target})")
        for name, f in result["fingerprint"].items():
            if args.only and name not in args.only:
                continue
            n_env = sum(f.get("envelopes", {}).values())
            n_spans = sum(f.get("spans", {}).values())
            print(f"  {name}: {n_env} messages, {n_spans} spans ({result['runs'][name]['seconds']} s)")
    for p in result["problems"]:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
