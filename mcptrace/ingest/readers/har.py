"""HAR 1.2 of MCP Streamable HTTP (browser devtools, mitmproxy, Charles, ``mcptrace capture --har``).

A HAR file is one JSON document ``{"log": {"entries": [...]}}``; each entry is one HTTP exchange.
The entries are read one at a time from a stream (memory is bounded by the largest entry, not
the file), and every entry becomes envelope rows (:mod:`mcptrace.ingest.readers.envelope`), so the same
traffic gives the same ``messages``/``calls``/``sessions`` whether it was captured as envelope
JSONL or as HAR. ``record_no`` is the entry's 1-based position in ``log.entries``; reject
reasons read ``entry 7: ...``.

Per entry:

- **request**: ``request.postData.text`` parsed as JSON (one message, or a JSON-RPC batch
  array), ``client_to_server``, stamped ``startedDateTime``. No body (GET, DELETE): no message.
- **response**: ``response.content.text`` (base64 when ``content.encoding`` says so).
  ``application/json`` (and ``+json``): one message or a batch. ``text/event-stream``: split
  into events per the WHATWG SSE rules (:mod:`mcptrace.core.sse`: CRLF/LF/CR, ``:``
  comment keep-alives, ``event:``, ``id:``, ``retry:``, several ``data:`` lines joined with
  ``\\n``); events with empty data (priming events) are not messages, and the legacy
  (2024-11-05) ``event: endpoint`` announcement is not either. Messages are
  ``server_to_client`` and carry the event's ``id:`` as ``http.sse_event_id``.
- **times**: the request at ``startedDateTime``; the response at ``startedDateTime + time``
  (or the sum of the non-negative ``timings`` when ``time`` is absent), i.e. when the body
  was complete. **HAR has no per-event times**, so every event of one stream gets that same
  response time - unless the entry carries ``_eventSourceMessages``
  (``[{"time": epoch seconds, "eventName", "eventId", "data"}]``, the event-stream sibling of
  Chrome's ``_webSocketMessages`` that some HAR exporters write, and ``mcptrace.capture.http
  --har`` does) whose data-bearing events match the body's one for one, in which case each event
  gets its own time. Events of one entry keep their order in the file.
- **HTTP metadata**: ``http.method``, ``http.path`` (path and query of ``request.url``),
  ``http.status`` (``None`` for an aborted exchange), header names lower-cased into
  ``http.request_headers`` / ``http.response_headers`` (so ``mcp-session-id``,
  ``mcp-client-session-id``, ``traceparent``, ``mcp-protocol-version``, ``mcp-method`` are found).
  Unless the load's redaction is off (``redact=False``), credential headers (``authorization``,
  ``proxy-authorization``, ``cookie``, ``set-cookie``, ``x-api-key`` and every name the load's
  ``secret_keys`` pattern matches) become ``"[REDACTED]"`` here, before anything reaches the
  database, and so do the values of query parameters with such names (the
  :class:`~mcptrace.core.redact.RedactionPolicy` that ``mcptrace capture`` uses too); the query is
  otherwise kept as written. The HAR's ``cookies`` arrays are not read.
- **transport**: ``streamable_http``; ``sse`` for the 2024-11-05 HTTP+SSE transport (a stream
  announcing ``event: endpoint``, or a ``session_id``/``sessionId`` query parameter).
- **connection_id**: ``har:<file name>``, plus ``:<connection>`` when the entry has HAR's
  ``connection`` field. (The field alone is not used as the id: Chrome writes the *server*
  port there, so two unrelated HAR files would otherwise share ``"443"`` and their JSON-RPC ids
  could pair across files.)
- **aborted exchanges** (``response.status`` 0, ``_error``, no response): the request still
  becomes a message; with no response it rebuilds as an ``unanswered`` call.
  ``202 Accepted`` with an empty body: just the request.

Field use was checked against the writers' code: Chrome DevTools ``front_end/models/har/Log.ts``
(``connection`` = server port in newer builds, ``_connectionId``, ``response._error``, timings of
-1), mitmproxy ``addons/savehar.py`` (``status: 0`` and ``_error`` for a flow without a response,
``null`` timings, ``+00:00`` times). mitmproxy's zlib-compressed ``.zhar`` is not read (gzip and
zstd are).

Entries that are not MCP traffic (no JSON-RPC body, no ``Mcp-*`` header: the page, its
scripts, analytics) are skipped and counted in ``sources.n_skipped``, as are MCP exchanges that
carry no message (a ``DELETE`` ending the session, a ``GET`` stream that only sent priming
events). In an MCP exchange, whatever cannot be used becomes a reject naming the entry and the
part: a request or response body that is not JSON, an SSE event whose data is not JSON, a stream
that ends inside an event, a 2xx JSON/SSE response whose body the HAR does not hold, an error
page instead of JSON-RPC. An entry that is not an object, lacks ``request`` or a valid
``startedDateTime``, or holds invalid UTF-8 is one reject; a HAR that stops being valid JSON
keeps every entry before the damage and adds one reject saying where it broke.
"""


from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from mcptrace.core.redact import DEFAULT_REDACTION, RedactionPolicy
from mcptrace.ingest.readers.base import Reader
from mcptrace.ingest.readers.http_entries import (
    MULTI_SQL_SCRIPTS,
    RecordRows,
    exchange_elements,
    header_dict,
    is_json_mime,
    mime_of,
    parse_time,
    plus_ms,
    redact_path,
    safe_snippet,
)
from mcptrace.ingest.readers.inputs import Input
from mcptrace.ingest.readers.json_stream import SURROGATE, JsonStream, JsonStreamError

# -- the reader -------------------------------------------------------------------------------

def har_entry_elements(entry: Any, connection_base: str,
                       redaction: RedactionPolicy = DEFAULT_REDACTION) -> tuple[list[dict] | None, str | None]:
    """``(elements, None)`` for a usable entry (``None``/``[]``: skip it) or ``(None, reject reason)``.

    Headers and the URL's query are redacted by ``redaction``.
    """
    if not isinstance(entry, dict):
        return None, "entry is not a JSON object"
    req = entry.get("request")
    if not isinstance(req, dict):
        return None, "entry has no request object"
    started = parse_time(entry.get("startedDateTime"))
    if started is None:
        return None, f"startedDateTime is missing or not an ISO 8601 time with an offset: {str(entry.get('startedDateTime'))[:40]!r}"
    resp = entry.get("response") if isinstance(entry.get("response"), dict) else {}
    t_resp = plus_ms(started, entry.get("time"))
    if t_resp is None:
        timings = entry.get("timings") if isinstance(entry.get("timings"), dict) else {}
        total = sum(v for k, v in timings.items() if k in ("blocked", "dns", "connect", "send", "wait", "receive")
                    and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0)
        t_resp = plus_ms(started, total) or started
    status = resp.get("status")
    status = status if isinstance(status, int) and not isinstance(status, bool) and status > 0 else None
    error = resp.get("_error") or entry.get("_error")
    conn = entry.get("connection")
    connection_id = f"{connection_base}:{conn}" if isinstance(conn, str | int) and not isinstance(conn, bool) and str(conn) else connection_base

    post = req.get("postData") if isinstance(req.get("postData"), dict) else {}
    request_body, request_why = _text_of(post, "request body")
    content = resp.get("content") if isinstance(resp.get("content"), dict) else {}
    response_body, why = _text_of(content, "response body")
    rq, rs = header_dict(req.get("headers"), redaction), header_dict(resp.get("headers"), redaction)
    missing = None
    mime = mime_of(rs, content.get("mimeType"))
    if why:
        missing = why
    elif (status is not None and 200 <= status < 300 and status not in (202, 204) and not error
          and not (response_body or "").strip() and (is_json_mime(mime) or mime == "text/event-stream")):
        size = content.get("size")
        if not (isinstance(size, int) and not isinstance(size, bool) and size == 0):
            missing = (f"HTTP {status} {mime} response body is not in the HAR "
                       "(content.text missing: captured before the body ended, or not saved)")
    method = req.get("method") if isinstance(req.get("method"), str) else "?"
    url = req.get("url") if isinstance(req.get("url"), str) else ""
    elements, _ = exchange_elements(
        method=method, url=url, status=status, request_headers=rq, response_headers=rs,
        request_body=request_body, response_body=response_body, response_mime=content.get("mimeType"),
        t_request=started, t_response=t_resp, connection_id=connection_id,
        event_source=entry.get("_eventSourceMessages"), missing_body_reason=missing,
        request_body_error=request_why, redaction=redaction)
    return elements, None


def _text_of(part: dict, what: str) -> tuple[str | None, str | None]:
    text = part.get("text")
    if text is None:
        return None, None
    if not isinstance(text, str):
        return None, f"{what} text is not a string"
    if str(part.get("encoding") or "").lower() == "base64":
        try:
            raw = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError):
            return None, f"{what} is not valid base64"
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError as e:
            return None, f"{what} is binary (base64 content, invalid UTF-8 at byte {e.start})"
    return text, None


def _entry_summary(entry: Any, redaction: RedactionPolicy) -> str:
    if not isinstance(entry, dict):
        return safe_snippet(json.dumps(entry, ensure_ascii=False)[:400] if entry is not None else "null", redaction)
    req = entry.get("request") if isinstance(entry.get("request"), dict) else {}
    url = req.get("url") if isinstance(req.get("url"), str) else ""
    resp = entry.get("response") if isinstance(entry.get("response"), dict) else {}
    return json.dumps({"startedDateTime": str(entry.get("startedDateTime"))[:64], "method": req.get("method"),
                       "url": redact_path(url, redaction)[0], "status": resp.get("status")}, ensure_ascii=False, default=str)


class HarReader(Reader):
    name = "har"
    kind = "messages"
    record_label = "entry"
    sql_scripts = MULTI_SQL_SCRIPTS

    def sniff(self, head: bytes) -> bool:
        text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
        if not text.startswith("{"):
            return False
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            log = doc.get("log")
            return isinstance(log, dict) and isinstance(log.get("entries"), list)
        # cut off inside: `{"log": {` first, then the entries array (or HAR's other log keys)
        return re.match(r'\{\s*"log"\s*:\s*\{', text) is not None and (
            re.search(r'"entries"\s*:\s*\[', text) is not None
            or re.search(r'"creator"\s*:\s*\{', text) is not None)

    def batches(self, inp: Input, *, redaction: RedactionPolicy | None = None,
                max_record_bytes: int | None = None) -> Iterator[pa.Table]:
        """The entries as element rows; headers, query strings and reject snippets redacted by
        ``redaction`` (default :data:`~mcptrace.core.redact.DEFAULT_REDACTION`)."""
        redaction = DEFAULT_REDACTION if redaction is None else redaction
        base = f"har:{os.path.basename(inp.path)}"
        rows = RecordRows()
        with inp.open() as f:
            js = JsonStream(f, max_value_chars=max_record_bytes)
            try:
                found = False
                for key in js.object_keys():
                    if key != "log":
                        js.skip_value()  # not read: whatever its size
                        continue
                    if js.skip_ws() != "{":
                        raise JsonStreamError("log is not an object")
                    for lkey in js.object_keys():
                        if lkey != "entries":
                            js.skip_value()
                            continue
                        if js.skip_ws() != "[":
                            raise JsonStreamError("log.entries is not an array")
                        found = True
                        for n, entry, text, too_long in js.elements():
                            if too_long:  # read past: the next entries load
                                rows.add(n, None, too_long)
                            elif SURROGATE.search(text):
                                rows.add(n, _entry_summary(entry, redaction), "invalid UTF-8 in the entry")
                            else:
                                els, why = har_entry_elements(entry, base, redaction)
                                if why:
                                    rows.add(n, _entry_summary(entry, redaction), why)
                                else:
                                    rows.add_elements(n, els)
                            if rows.full():
                                yield rows.take()
                        break  # nothing after log.entries matters
                    break
                if not found:
                    raise JsonStreamError("the document has no log.entries array")
            except JsonStreamError as e:
                # inside an entry the error is that entry's; between entries, a record of its own
                n = js.n_elements if js.in_element else js.n_elements + 1
                where = f"after entry {n - 1}" if n > 1 else "before the first entry"
                cause = f"{js.read_error}" if js.read_error else str(e)
                rows.add(n, safe_snippet(js.buf[js.pos:js.pos + 300], redaction) or None,
                         f"HAR is not readable {where}: {cause}")
        if rows.nos:
            yield rows.take()
