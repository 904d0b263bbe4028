"""The correlation situations of the incident captures: what each one runs, what its capture shows
on the wire, and the gap codes it must yield (the README of ``data/incidents`` is written from them).

Run by :mod:`mcptrace.samples.incidents`; the clients are :mod:`mcptrace.samples.incident_agent`, the
servers :mod:`mcptrace.samples.incident_server`.
"""

from __future__ import annotations

from dataclasses import dataclass


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
