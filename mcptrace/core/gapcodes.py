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


@dataclass(frozen=True)
class GapCode:
    """One gap code: ``severity`` is one of :data:`SEVERITIES`; ``unlinked`` marks a span that
    could not be joined to its call by the data itself (the waterfall counts these as "unlinked")."""

    code: str
    severity: str
    meaning: str
    unlinked: bool = False

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.code}: severity {self.severity!r} is not one of {SEVERITIES}")


_CODES = (
    GapCode("missing_trace_context", "warning",
            "a request carries no trace context, neither `params._meta.traceparent` nor an HTTP `traceparent` header"),
    GapCode("header_only_trace_context", "warning",
            "a request's trace context is only in the HTTP `traceparent` header, not in `params._meta`"),
    GapCode("invalid_traceparent", "error",
            "a request's `_meta.traceparent` or HTTP `traceparent` header is not a valid W3C traceparent"),
    GapCode("trace_context_mismatch", "warning",
            "a request's `_meta.traceparent` and HTTP `traceparent` header name different trace or parent ids"),
    GapCode("server_span_missing", "warning",
            "a traced request has no server span although that transport's server spans are loaded",
            unlinked=True),
    GapCode("server_span_unlinked", "error",
            "a traced request's server span does not continue its trace: joined by a span link or by attributes",
            unlinked=True),
    GapCode("downstream_unlinked", "error",
            "a downstream root span is in no call's trace: joined to a call by time, or to none",
            unlinked=True),
    GapCode("orphan_span", "warning",
            "a span's parent span is not in the loaded data"),
    GapCode("session_split", "error",
            "an abnormally ended session and a later one of the same client nothing links: one reconnect, inferred"),
    GapCode("session_reconnect", "info",
            "a logical session moved to a new transport session; a session key or trace carried it across"),
    GapCode("missing_session_key", "warning",
            "a stateless (2026-07-28) request carries no session key in `_meta` or `Mcp-Client-Session-Id`"),
    GapCode("unanswered_request", "error",
            "a request got no response or error before the capture ended"),
    GapCode("orphan_response", "error",
            "a response or error answers no open request with its id on its stream"),
    GapCode("duplicate_request_id", "error",
            "a request reuses the id of a request still open on the same stream"),
    GapCode("unknown_progress_token", "warning",
            "a progress notification names a token no open request on its stream carries"),
    GapCode("unknown_cancel_target", "warning",
            "`notifications/cancelled` names a request id its sender has not sent on that stream"),
    GapCode("cancelled", "info",
            "a request was cancelled by `notifications/cancelled` from its sender"),
    GapCode("clock_skew_suspected", "warning",
            "a server span lies outside its call on the wire, or a span outside its parent of another service, "
            "beyond the tolerance"),
)

#: code -> :class:`GapCode`, in the README's order
GAP_CODES = MappingProxyType({c.code: c for c in _CODES})
#: the codes of spans not joined by the data itself (``server_span_unlinked``, ``downstream_unlinked``,
#: ``server_span_missing``): the waterfall's "unlinked" count
UNLINKED_CODES = frozenset(c.code for c in _CODES if c.unlinked)


def severity(code: str) -> str:
    """The severity of ``code``; KeyError for a code that is not in the registry."""
    return GAP_CODES[code].severity


def rows(codes: Mapping[str, GapCode] = GAP_CODES) -> list[tuple[str, str, str]]:
    """``(code, severity, meaning)`` per code: the rows of the ``gap_codes`` table."""
    return [(c.code, c.severity, c.meaning) for c in codes.values()]


def markdown_table() -> str:
    """The README's gap-code table."""
    out = ["| code | severity | meaning |", "| --- | --- | --- |"]
    out += [f"| `{c.code}` | {c.severity} | {c.meaning} |" for c in _CODES]
    return "\n".join(out)
