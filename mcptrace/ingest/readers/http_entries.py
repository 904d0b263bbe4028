"""The HTTP/HAR toolkit shared by the readers of recorded HTTP exchanges (HAR, MCP Inspector exports).

A record of those formats (a HAR entry, an export element) holds several messages. It becomes a
JSON array of *elements* (envelope objects as :mod:`mcptrace.ingest.readers.envelope` reads
them, or reject elements ``{"_reject": reason, "_raw": text}``), run through :data:`MULTI_SQL_SCRIPTS`.
Here: the element rows (:class:`RecordRows`), one HTTP exchange turned into elements
(:func:`exchange_elements`: request body, JSON or event-stream response body, HTTP metadata
with credentials redacted by a :class:`~mcptrace.core.redact.RedactionPolicy`), time and body
parsing, and :class:`JsonStream`, which reads one large JSON document element by element.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa

from mcptrace.core.db import RAW_LIMIT
from mcptrace.core.redact import DEFAULT_REDACTION, RedactionPolicy
from mcptrace.core.sse import SSEParser
from mcptrace.ingest.readers.base import LINES_SCHEMA
from mcptrace.ingest.readers.json_stream import STRICT_JSON, message_problem

MCP_HEADERS = ("mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-client-session-id")

#: messages from one record (the low bits of the packed key in ``sql/read_multi.sql``)
KEY_BITS = 20
MAX_ELEMENTS = (1 << KEY_BITS) - 1
BATCH_CHARS = 16 * 1024 * 1024
BATCH_ROWS = 4096

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: the readers whose records hold several envelopes: a record's line is a JSON array of envelope
#: objects (plus ``_k``, their position) or ``{"_k", "_reject": reason, "_raw": text}``, read by
#: ``sql/read_multi.sql`` as envelope lines with the packed record number ``(record_no << KEY_BITS) + _k``
MULTI_SQL_SCRIPTS = ("read_multi.sql", "read_envelope_rows.sql", "read_multi_batch.sql")


class RecordRows:
    """Accumulates ``(record_no, line, decode_error)`` rows and hands out Arrow batches."""

    def __init__(self) -> None:
        self.nos: list[int] = []
        self.lines: list[str | None] = []
        self.errs: list[str | None] = []
        self.chars = 0

    def add(self, no: int, line: str | None, err: str | None = None) -> None:
        if line is not None:
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates from invalid UTF-8 input
                line = line.encode("utf-8", "replace").decode("utf-8")
        self.nos.append(no)
        self.lines.append(line)
        self.errs.append(err)
        self.chars += len(line) if line else 0

    def add_elements(self, no: int, elements: list[dict] | None) -> None:
        """A record's elements; ``None`` or ``[]`` is a skipped record (not traffic / no message)."""
        if not elements:
            self.add(no, None, None)
            return
        if len(elements) > MAX_ELEMENTS:
            elements = elements[:MAX_ELEMENTS - 1] + [reject_element(
                f"more than {MAX_ELEMENTS - 1} messages in one record; the rest were not read")]
        for k, el in enumerate(elements):
            el["_k"] = k
        try:
            line = json.dumps(elements, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except ValueError:
            self.add(no, None, "the record holds NaN or Infinity, which is not JSON")
            return
        self.add(no, line, None)

    def full(self) -> bool:
        return len(self.nos) >= BATCH_ROWS or self.chars >= BATCH_CHARS

    def take(self) -> pa.Table:
        t = pa.table({"record_no": pa.array(self.nos, pa.int64()), "line": pa.array(self.lines, pa.string()),
                      "decode_error": pa.array(self.errs, pa.string())}, schema=LINES_SCHEMA)
        self.__init__()
        return t


# -- small helpers -------------------------------------------------------------------------------

def reject_element(reason: str, raw: str | None = None) -> dict:
    return {"_reject": reason, "_raw": raw[:RAW_LIMIT] if raw else None}


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt is not None else None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 / RFC 3339 time with an offset (``Z`` or ``+hh:mm``), else ``None``."""
    if not isinstance(value, str) or not (10 <= len(value) <= 64):
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else None


def plus_ms(dt: datetime, ms: Any) -> datetime | None:
    """``dt`` + ``ms`` milliseconds (rounded to the microsecond), ``None`` when ``ms`` is unusable."""
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms) or ms < 0:
        return None
    try:
        return dt + timedelta(microseconds=round(ms * 1000))
    except OverflowError:
        return None


def epoch_seconds(value: Any) -> datetime | None:
    """A wall-clock time in seconds since the epoch (Chrome's ``_eventSourceMessages[].time``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 1e9:
        return None  # not set, or a monotonic clock reading
    try:
        return EPOCH + timedelta(microseconds=round(value * 1_000_000))
    except OverflowError:
        return None


def json_error(e: ValueError) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    return str(e)


def looks_jsonrpc(v: Any) -> bool:
    if isinstance(v, list):
        return any(looks_jsonrpc(x) for x in v[:64] if isinstance(x, dict))
    if not isinstance(v, dict):
        return False
    return "jsonrpc" in v or ("method" in v and ("params" in v or "id" in v)) or (
        "id" in v and ("result" in v or "error" in v))


def parse_body(text: str, what: str) -> tuple[Any, str | None]:
    """Parse a body holding one JSON-RPC message or a batch; ``(value, None)``, or a reject reason:
    ``(None, reason)``, or ``(value, reason)`` for a message that gives a key twice (:func:`message_problem`)."""
    try:
        value = STRICT_JSON.decode(text)
    except RecursionError:
        return None, f"{what} is nested too deeply"
    except ValueError as e:
        return None, f"{what} is not JSON ({json_error(e)})"
    if isinstance(value, list):
        if not value:
            return None, f"{what} is an empty JSON-RPC batch"
        if not any(isinstance(x, dict) for x in value):
            return None, f"{what} is a JSON array of {len(value)} items holding no JSON-RPC message"
    if not isinstance(value, dict | list):
        kind = "null" if value is None else type(value).__name__.replace("str", "string").replace("bool", "boolean")
        return None, f"{what} is a JSON {kind}, not a JSON-RPC message"
    problem = message_problem(value)
    return (value, f"{what}: {problem}") if problem else (value, None)


def header_dict(items: Any, redaction: RedactionPolicy = DEFAULT_REDACTION) -> dict[str, str]:
    """HAR ``[{"name", "value"}]`` (or an already flat mapping) -> lower-cased names, credentials redacted.

    Repeated headers are joined with ``", "``; see :meth:`RedactionPolicy.redact_headers`.
    """
    if not isinstance(items, dict | list):
        return {}
    return redaction.redact_headers(items)


def url_path(url: str) -> tuple[str, bool]:
    """``(path?query, legacy_sse_query)`` of a URL: its path (``/`` when empty) and query as written
    (no scheme, host or fragment), and whether the query names a 2024-11-05 HTTP+SSE session
    (``session_id=`` or ``sessionId=``). A URL that does not parse is cut to 2048 characters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url[:2048], False
    path = parts.path or "/"
    legacy = False
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        legacy = any(k.lower() in ("session_id", "sessionid") for k, _ in pairs)
        path += "?" + parts.query
    return path, legacy


def redact_path(url: str, redaction: RedactionPolicy = DEFAULT_REDACTION) -> tuple[str, bool]:
    """:func:`url_path` with the values of secret-named query parameters redacted
    (:meth:`RedactionPolicy.redact_query`)."""
    path, legacy = url_path(url)
    return redaction.redact_query(path), legacy


def mime_of(headers: dict[str, str], fallback: Any = None) -> str:
    ct = headers.get("content-type") or (fallback if isinstance(fallback, str) else "") or ""
    return ct.split(";")[0].strip().lower()


def is_json_mime(mime: str) -> bool:
    return mime in ("application/json", "application/json-rpc") or mime.endswith("+json")


def split_sse(text: str) -> tuple[list[Any], str | None]:
    """Events of a complete event-stream body, and the text of an event left unterminated at the end.

    Raises ``ValueError`` when an event exceeds the parser's size limit.
    """
    parser = SSEParser()
    events = parser.feed(text.encode("utf-8", "surrogatepass"))
    data, line = parser.pending()
    left = None
    if data or line.strip():
        left = "\n".join(["data: " + d for d in data] + ([line] if line.strip() else []))
    return events, left


def _sse_event_label(i: int, ev_id: str | None) -> str:
    return f"SSE event {i}" + (f" (id {ev_id!r})" if ev_id else "")


def exchange_elements(*, method: str, url: str, status: int | None, request_headers: dict[str, str],
                      response_headers: dict[str, str], request_body: str | None, response_body: str | None,
                      response_mime: Any, t_request: datetime, t_response: datetime, connection_id: str,
                      event_source: list | None = None, missing_body_reason: str | None = None,
                      request_body_error: str | None = None,
                      redaction: RedactionPolicy = DEFAULT_REDACTION) -> tuple[list[dict], bool]:
    """Envelope elements of one HTTP exchange and whether it is MCP traffic at all.

    ``request_headers``/``response_headers`` are already lower-cased and redacted
    (:func:`header_dict`); the query of ``url`` is redacted here by ``redaction``.
    ``event_source``: Chrome-style ``[{"time", "eventName", "eventId", "data"}]`` used for
    per-event times (and as the events when there is no body text).
    """
    path, legacy = redact_path(url, redaction)
    http = {"method": method, "path": path, "status": status, "request_headers": request_headers,
            "response_headers": response_headers, "sse_event_id": None}
    relevant = any(h in request_headers or h in response_headers for h in MCP_HEADERS)
    out: list[dict] = []
    transport = "sse" if legacy else "streamable_http"

    def envelope(ts: datetime, direction: str, message: Any, sse_event_id: str | None = None) -> dict:
        return {"ts": iso(ts), "direction": direction, "transport": transport, "connection_id": connection_id,
                "http": dict(http, sse_event_id=sse_event_id) if sse_event_id is not None else http,
                "message": message}

    if request_body_error:
        out.append(reject_element(request_body_error))
    elif request_body is not None and request_body.strip():
        value, why = parse_body(request_body, "request body")
        relevant = relevant or (value is not None and looks_jsonrpc(value))
        if why:
            out.append(reject_element(why, request_body))
        else:
            out.append(envelope(t_request, "client_to_server", value))

    mime = mime_of(response_headers, response_mime)
    body = response_body if response_body is not None and response_body.strip() else None
    if body is None and isinstance(event_source, list) and event_source and mime in ("text/event-stream", ""):
        body = "".join(_render_event(m) for m in event_source if isinstance(m, dict))
        mime = "text/event-stream"
    if body is None:
        if missing_body_reason:
            out.append(reject_element(missing_body_reason))
    elif mime == "text/event-stream" or (not mime and body.lstrip()[:5] in ("data:", "event", "id:", ":", "retry")):
        try:
            events, left = split_sse(body)
        except ValueError as e:
            events, left = [], None
            out.append(reject_element(f"event stream: {e}", body))
        times = _event_times(events, event_source)
        n_rejected = 0
        for i, ev in enumerate(events, 1):
            if ev.data == "":
                continue  # priming event / keep-alive: not a message
            try:
                value = STRICT_JSON.decode(ev.data)
                why = None
            except RecursionError:
                value, why = None, "nested too deeply"
            except ValueError as e:
                value, why = None, f"not JSON ({json_error(e)})"
            if why is None and not isinstance(value, dict | list):
                why = "not a JSON-RPC message"
            if why is None and isinstance(value, list) and not any(isinstance(x, dict) for x in value):
                why = "a JSON array holding no JSON-RPC message"
            problem = message_problem(value) if why is None else None
            if problem:
                relevant = relevant or looks_jsonrpc(value)
                n_rejected += 1
                out.append(reject_element(f"response {_sse_event_label(i, ev.id)} data: {problem}", ev.data))
                continue
            if why is not None:
                if ev.event == "endpoint":
                    transport = "sse"  # 2024-11-05 HTTP+SSE: the POST endpoint announcement, not a message
                    continue
                n_rejected += 1
                out.append(reject_element(f"response {_sse_event_label(i, ev.id)} data is {why}", ev.data))
                continue
            relevant = relevant or looks_jsonrpc(value)
            out.append(envelope(times.get(i, t_response), "server_to_client", value, ev.id if ev.id is not None else None))
        if left is not None:
            out.append(reject_element("event stream ends inside an event (no blank line after it); "
                                      "the SSE rules discard it", left))
    elif is_json_mime(mime) or body.lstrip()[:1] in ("{", "["):
        value, why = parse_body(body, "response body")
        relevant = relevant or (value is not None and looks_jsonrpc(value))
        if why:
            out.append(reject_element(why, body))
        else:
            out.append(envelope(t_response, "server_to_client", value))
    else:
        snippet = " ".join(body.split())[:80]
        out.append(reject_element(f"HTTP {status if status is not None else '?'} response body is "
                                  f"{mime or 'untyped'}, not JSON-RPC: {snippet!r}", body))
    if transport == "sse":
        for el in out:
            if "transport" in el:
                el["transport"] = "sse"
    return (out if relevant else []), relevant


def _render_event(m: dict) -> str:
    lines = []
    if m.get("eventName") not in (None, "", "message"):
        lines.append(f"event: {m['eventName']}")
    if m.get("eventId") not in (None, ""):
        lines.append(f"id: {m['eventId']}")
    data = m.get("data")
    for piece in ("" if data is None else str(data)).split("\n"):
        lines.append(f"data: {piece}")
    return "\n".join(lines) + "\n\n"


def _event_times(events: list, event_source: Any) -> dict[int, datetime]:
    """Event number -> time, from ``_eventSourceMessages`` when its data-bearing events match the body's."""
    if not isinstance(event_source, list) or not event_source:
        return {}
    src = [m for m in event_source if isinstance(m, dict) and str(m.get("data") or "") != ""]
    ours = [(i, ev) for i, ev in enumerate(events, 1) if ev.data != ""]
    if len(src) != len(ours) or any(str(m.get("data")) != ev.data for m, (_, ev) in zip(src, ours, strict=True)):
        return {}
    out = {}
    for m, (i, _) in zip(src, ours, strict=True):
        t = epoch_seconds(m.get("time"))
        if t is not None:
            out[i] = t
    return out


# -- streaming a large JSON document ----------------------------------------------------------------

def safe_snippet(text: str, redaction: RedactionPolicy = DEFAULT_REDACTION, limit: int = 300) -> str:
    """A short piece of raw HAR/export text for a reject, credential values masked
    (:meth:`RedactionPolicy.redact_json_text`: ``"<secret key>": ...`` and HAR's
    ``{"name": "<secret name>", "value": ...}`` pairs)."""
    return redaction.redact_json_text(text[:limit * 4])[:limit]
