"""The registry of gap codes (README: gap codes): each code ``gaps.sql`` can emit, its severity and
a one-line meaning.

The rebuild hands the registry to the SQL as the TEMP table ``gap_codes(code, severity, meaning)``
(:func:`rows`); ``gaps.sql`` takes every gap's severity from it and fails on a code that is not
here. Views that group codes read the flags (:data:`UNLINKED_CODES`) instead of listing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: the severities, worst first
SEVERITIES = ("error", "warning", "info")


#: who a finding holds responsible, from the data (``findings.party_kind``)
PARTY_KINDS = ("client", "server", "tool", "downstream_service", "transport", "capture")
#: how a gap's party is read (``sql/findings.sql``): ``client`` the session's client (clientInfo name and
#: version); ``server`` the session's server (serverInfo, else its server spans' service.name); ``sender``
#: / ``receiver`` the side that sent / got the request or message (a client-to-server request's receiver
#: is the server and its tool); ``downstream`` the server and tool whose call reached an untraced
#: downstream service, naming it; ``transport`` the server a transport led to; ``orphan_service`` the
#: service whose spans lost their parent (a capture gap); ``span_service`` the service of the span (a
#: server span's service is a server, another one a downstream service)
PARTY_RULES = ("client", "server", "sender", "receiver", "downstream", "transport", "orphan_service", "span_service")
#: what a finding's share counts its affected units among (``findings.eligible``)
ELIGIBLE = ("requests_sent", "stateless_requests", "traced_requests_received", "requests_received", "tool_calls",
            "sessions_of_client", "sessions_of_server", "service_spans")


@dataclass(frozen=True)
class GapCode:
    """One gap code: ``severity`` is one of :data:`SEVERITIES`; ``unlinked`` marks a span that
    could not be joined to its call by the data itself (the waterfall counts these as "unlinked").

    Findings (``findings`` table, README: Findings): ``party`` is how a gap's responsible party is read
    (:data:`PARTY_RULES`), ``unit`` what its affected count counts (``calls``, ``sessions``, ``spans`` or
    ``gaps``), ``eligible`` what the share is out of (:data:`ELIGIBLE`, None: no share), ``inferred``
    whether the gaps are found by inference (time windows, one-to-one assignment) rather than read from the
    data, ``summary`` a sentence with the placeholders ``{party} {n} {eligible} {share} {server} {tool}
    {downstream}``, and ``remedy`` what to change, citing the specification or convention."""

    code: str
    severity: str
    meaning: str
    unlinked: bool = False
    party: str = "client"
    unit: str = "calls"
    eligible: str | None = "requests_sent"
    inferred: bool = False
    summary: str = ""
    remedy: str = ""
    database_wide: bool = False

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.code}: severity {self.severity!r} is not one of {SEVERITIES}")
        if self.party not in PARTY_RULES:
            raise ValueError(f"{self.code}: party {self.party!r} is not one of {PARTY_RULES}")
        if self.eligible is not None and self.eligible not in ELIGIBLE:
            raise ValueError(f"{self.code}: eligible {self.eligible!r} is not one of {ELIGIBLE}")
        if self.unit not in ("calls", "sessions", "spans", "gaps"):
            raise ValueError(f"{self.code}: unit {self.unit!r} is not calls, sessions, spans or gaps")


_SEP414 = ("SEP-414 (`params._meta.traceparent`, in the MCP specification since 2026-07-28: basic/index, "
           "\"_meta\")")
_LIST_CHANGED = ("MCP server/{what}: a server that declared `listChanged` SHOULD send "
                 "`notifications/{what}/list_changed` when the list changes")
_TOOL_SAFETY = ("MCP specification, Security and Trust & Safety: descriptions of tool behavior are untrusted unless "
                "obtained from a trusted server, and users should understand what each tool does before "
                "authorizing its use")
_SEP2822 = ("`Mcp-Client-Session-Id` / `_meta.clientSessionId` (draft SEP-2822), or a host key such as "
            "`vscode.conversationId` or `openai/session`")

_CODES = (
    GapCode("missing_trace_context", "warning",
            "a request carries no trace context, neither `params._meta.traceparent` nor an HTTP `traceparent` header",
            summary="{party} sent {n} of its {eligible} request{se} without trace context ({share}): no "
                    "`_meta.traceparent`, no HTTP `traceparent`.",
            remedy=f"Send W3C Trace Context (`traceparent`, `tracestate`) in `params._meta` of every request: {_SEP414}."),
    GapCode("header_only_trace_context", "warning",
            "a request's trace context is only in the HTTP `traceparent` header, not in `params._meta`",
            summary="{party} put trace context only in the HTTP `traceparent` header on {n} of its {eligible} "
                    "request{se} ({share}).",
            remedy=f"Send it in `params._meta.traceparent` too ({_SEP414}): a header does not cross stdio, "
                   "gateways or proxies that re-issue the request."),
    GapCode("invalid_traceparent", "error",
            "a request's `_meta.traceparent` or HTTP `traceparent` header is not a valid W3C traceparent",
            summary="{party} sent {n} of its {eligible} request{se} with a `traceparent` that is not valid W3C "
                    "Trace Context ({share}).",
            remedy="Send `00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`, lower-case hex, ids not all "
                   "zero (W3C Trace Context, traceparent header)."),
    GapCode("trace_context_mismatch", "warning",
            "a request's `_meta.traceparent` and HTTP `traceparent` header name different trace or parent ids",
            summary="{party} sent {n} of its {eligible} request{se} whose `_meta.traceparent` and HTTP `traceparent` "
                    "name different parents ({share}).",
            remedy=f"Send one trace context: the same `traceparent` in `_meta` and in the header ({_SEP414}; "
                   "SEP-2028 maps `_meta` to HTTP headers)."),
    GapCode("server_span_missing", "warning",
            "a traced request has no server span although that transport's server spans are loaded",
            unlinked=True, party="server", eligible="traced_requests_received",
            summary="{party} exported no server span for {n} of the {eligible} traced request{se} it received ({share}).",
            remedy="Export a server span for every request (OpenTelemetry MCP semantic conventions: span "
                   "`{mcp.method.name} {target}` with `mcp.method.name`, `jsonrpc.request.id`), and flush the "
                   "exporter before the process exits."),
    GapCode("server_span_unlinked", "error",
            "a traced request's server span does not continue its trace: joined by a span link or by attributes",
            unlinked=True, party="server", eligible="traced_requests_received",
            summary="{party} started the server spans of {n} of the {eligible} traced request{se} it received outside "
                    "the caller's trace ({share}): it does not continue `_meta.traceparent`.",
            remedy=f"Extract the trace context from `params._meta` ({_SEP414}) and start the server span as its "
                   "child, as the OpenTelemetry MCP semantic conventions ask of servers."),
    GapCode("downstream_unlinked", "error",
            "a downstream root span is in no call's trace: joined to a call by time, or to none",
            unlinked=True, party="downstream", unit="gaps", eligible="tool_calls", inferred=True,
            summary="{tool} on {server} calls {downstream} without forwarding trace context: {n} span{s} of "
                    "{downstream} in no call's trace, during {eligible} call{se} of the tool.",
            remedy="Forward the trace context on the tool's outgoing calls: inject `traceparent` into the HTTP "
                   "request (OpenTelemetry HTTP client instrumentation, or the propagator's `inject`); SEP-2028 "
                   "proposes this forwarding for MCP servers."),
    GapCode("orphan_span", "warning",
            "a span's parent span is not in the loaded data",
            party="orphan_service", unit="spans", eligible="service_spans",
            summary="{n} of the {eligible} span{se} of {party} name a parent span that is not in the loaded data ({share}).",
            remedy="Load the spans of every service of these traces: the parent's exporter is missing from the "
                   "capture, sampled the parent out, or had not flushed it."),
    GapCode("session_split", "error",
            "an abnormally ended session and a later one of the same client nothing links: one reconnect, inferred",
            unit="sessions", eligible="sessions_of_client", inferred=True,
            summary="{party}: {n} of its {eligible} session{se} are parts of conversations split by a reconnect "
                    "that nothing links (inferred from the client's identity and the time).",
            remedy=f"Send a stable session key on every request, so a reconnect continues the session: {_SEP2822}."),
    GapCode("session_reconnect", "info",
            "a logical session moved to a new transport session; a session key or trace carried it across",
            party="transport", unit="sessions", eligible="sessions_of_server",
            summary="{n} of the {eligible} session{se} with {party} moved to a new transport session; a session key "
                    "or trace carried them across.",
            remedy="Nothing to change for correlation; the transport events and unanswered requests of the gaps "
                   "show why the transport ended."),
    GapCode("missing_session_key", "warning",
            "a stateless (2026-07-28) request carries no session key in `_meta` or `Mcp-Client-Session-Id`",
            eligible="stateless_requests",
            summary="{party} sent {n} of its {eligible} stateless (2026-07-28) request{se} without a session key "
                    "({share}): with no transport session, nothing groups them into a conversation.",
            remedy=f"Send a session key on every 2026-07-28 request: {_SEP2822}."),
    GapCode("unanswered_request", "error",
            "a request got no response or error before the capture ended",
            party="receiver", eligible="requests_received",
            summary="{party} left {n} of the {eligible} request{se} it received unanswered ({share}).",
            remedy="Answer or fail every request (JSON-RPC 2.0, section 5); the transport events in the gaps' "
                   "detail show a crash, a timeout or a dropped stream."),
    GapCode("orphan_response", "error",
            "a response or error answers no open request with its id on its stream",
            party="sender", unit="gaps", eligible=None,
            summary="{party} sent {n} response{s} to no open request on the stream.",
            remedy="Answer with the id of an open request, on the stream the request came on (JSON-RPC 2.0, "
                   "section 5; MCP transports)."),
    GapCode("duplicate_request_id", "error",
            "a request reuses the id of a request still open on the same stream",
            party="sender",
            summary="{party} reused the id of a request still open in {n} of its {eligible} request{se} ({share}).",
            remedy="Give every request a new id while earlier ones are open (MCP basic: a request id MUST NOT be "
                   "reused by the requestor within the same session)."),
    GapCode("unknown_progress_token", "warning",
            "a progress notification names a token no open request on its stream carries",
            party="sender", unit="gaps", eligible=None,
            summary="{party} sent {n} progress notification{s} with a `progressToken` no open request carries.",
            remedy="Send `notifications/progress` only with the `progressToken` an open request carried in "
                   "`_meta` (MCP utilities/progress)."),
    GapCode("unknown_cancel_target", "warning",
            "`notifications/cancelled` names a request id its sender has not sent on that stream",
            party="sender", unit="gaps", eligible=None,
            summary="{party} sent {n} `notifications/cancelled` for request ids it has not sent on that stream.",
            remedy="Cancel only requests this side sent and that are still open (MCP utilities/cancellation)."),
    GapCode("cancelled", "info",
            "a request was cancelled by `notifications/cancelled` from its sender",
            party="sender",
            summary="{party} cancelled {n} of its {eligible} request{se} ({share}).",
            remedy="Nothing to change for correlation; a cancel often follows a client timeout: compare it with "
                   "the tool's durations."),
    GapCode("clock_skew_suspected", "warning",
            "a server span lies outside its call on the wire, or a span outside its parent of another service, "
            "beyond the tolerance",
            party="span_service", unit="spans", eligible="service_spans", inferred=True,
            summary="{n} of the {eligible} span{se} of {party} lie outside their call or parent by more than the "
                    "tolerance ({share}): its clock differs from the capture's or its caller's.",
            remedy="Synchronise the clocks (NTP); `Workspace.adjust_clock_skew()` shifts the spans for viewing "
                   "and keeps the raw times."),
    GapCode("tool_definition_changed", "warning",
            "a server listed a tool under a name it had listed before with another definition: description, input "
            "or output schema, annotations",
            party="server", unit="gaps", eligible=None, database_wide=True,
            summary="{party} changed {n} tool definition{s} after clients had listed the earlier one: what the user "
                    "or host approved is not what the model now reads.",
            remedy="Keep a tool's name bound to one definition: publish a changed description or schema under a new "
                   "tool name, and send `notifications/tools/list_changed` when it changes ("
                   + _LIST_CHANGED.format(what="tools") + "). Hosts: pin the definition the user approved (its "
                   "digest) and ask again when `tools/list` returns another (" + _TOOL_SAFETY + ")."),
    GapCode("prompt_definition_changed", "warning",
            "a server listed a prompt under a name it had listed before with another definition: description, "
            "arguments",
            party="server", unit="gaps", eligible=None, database_wide=True,
            summary="{party} changed {n} prompt definition{s} after clients had listed the earlier one.",
            remedy="Keep a prompt's name bound to one definition, and send `notifications/prompts/list_changed` "
                   "when it changes (" + _LIST_CHANGED.format(what="prompts") + "). Hosts: show the user the "
                   "changed prompt before using it again: prompts are user-controlled (MCP server/prompts), and the "
                   "user chose the earlier one."),
    GapCode("resource_definition_changed", "warning",
            "a server listed a resource (by URI) or a resource template (by URI template) it had listed before "
            "with another definition: name, description, MIME type, annotations",
            party="server", unit="gaps", eligible=None, database_wide=True,
            summary="{party} changed {n} resource or resource template definition{s} after clients had listed "
                    "the earlier one.",
            remedy="Keep a resource's URI bound to one description, and send `notifications/resources/list_changed` "
                   "when the list changes (" + _LIST_CHANGED.format(what="resources") + "). Hosts: treat the "
                   "changed description as untrusted text, as they do the first one (" + _TOOL_SAFETY + ")."),
)

#: code -> :class:`GapCode`, in the README's order
GAP_CODES = MappingProxyType({c.code: c for c in _CODES})
#: the codes of spans not joined by the data itself (``server_span_unlinked``, ``downstream_unlinked``,
#: ``server_span_missing``): the waterfall's "unlinked" count
UNLINKED_CODES = frozenset(c.code for c in _CODES if c.unlinked)
#: the codes found over the whole database after every rebuild and append, not by ``sql/gaps.sql``
#: (definition drift: :mod:`mcptrace.analysis.drift`)
DATABASE_WIDE_CODES = frozenset(c.code for c in _CODES if c.database_wide)


def severity(code: str) -> str:
    """The severity of ``code``; KeyError for a code that is not in the registry."""
    return GAP_CODES[code].severity


def rows(codes: Mapping[str, GapCode] = GAP_CODES) -> list[tuple[str, str, str]]:
    """``(code, severity, meaning)`` per code: the rows of the ``gap_codes`` table."""
    return [(c.code, c.severity, c.meaning) for c in codes.values()]


def finding_rule_rows(codes: Mapping[str, GapCode] = GAP_CODES) -> list[tuple]:
    """``(code, party, unit, eligible, inferred)`` per code: the rows of the TEMP table ``finding_rules``
    that ``sql/findings.sql`` joins."""
    return [(c.code, c.party, c.unit, c.eligible, c.inferred) for c in codes.values()]


def markdown_table() -> str:
    """The README's gap-code table."""
    out = ["| code | severity | meaning |", "| --- | --- | --- |"]
    out += [f"| `{c.code}` | {c.severity} | {c.meaning} |" for c in _CODES]
    return "\n".join(out)
