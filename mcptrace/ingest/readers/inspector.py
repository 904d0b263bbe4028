"""MCP Inspector exports (github.com/modelcontextprotocol/inspector, the v2 web client).

The shapes follow the inspector's own code, read in the stored copy of repository
``modelcontextprotocol/inspector``: the v2 line (``clients/web`` - package
``@modelcontextprotocol/inspector-web`` 0.0.0, not yet released - and ``core/``), files at commits
useExportActions.ts 7d971c3, downloadFile.ts 121f875, core/mcp/types.ts 0e53f57,
messageLogState.ts 82edad8, messageTrackingTransport.ts 0ead1de, fetchTracking.ts 18deb24. (The
v1 client files read, ``client/src/components/History.tsx`` and ``HistoryAndNotifications.tsx``,
show the request history on screen with no export.)

- ``clients/web/src/hooks/useExportActions.ts`` (commit 7d971c3): *Export* on the Protocol
  (History) view downloads ``inspector-protocol-<server>-<time>.json`` =
  ``JSON.stringify(messages, null, 2)``, and on the Network view
  ``inspector-network-<server>-<time>.json`` = ``JSON.stringify(fetchRequests, null, 2)``
  (file names from ``clients/web/src/lib/downloadFile.ts``). Both are a JSON array.
- **protocol entries** are ``MessageEntry`` (``core/mcp/types.ts``)::

      {"id", "timestamp": ISO time (ms), "direction": "request" | "response" | "notification",
       "origin"?: "client" | "server", "message": <JSON-RPC>, "response"?: <JSON-RPC>, "duration"?: ms}

  ``core/mcp/state/messageLogState.ts`` pairs a response with the pending request of the same
  id: the request entry gets ``response`` and ``duration`` = response time - request time, and
  only an unmatched response stays an entry of its own. ``core/mcp/messageTrackingTransport.ts``
  records outgoing requests and incoming responses, requests and notifications (not the
  inspector's own notifications or its answers to server requests, so neither is in the file).
- **network entries** are ``FetchRequestEntry`` (``core/mcp/types.ts``, built by
  ``core/mcp/fetchTracking.ts``)::

      {"id", "timestamp": request start, "method", "url", "requestHeaders": {...}, "requestBody"?,
       "responseStatus"?, "responseStatusText"?, "responseHeaders"?: {...}, "responseBody"?,
       "duration"?: ms to the response headers, "error"?, "category": "transport" | "auth"}

  Header names are lower case (Fetch ``Headers``), credential headers already ``[REDACTED]``,
  and JSON bodies re-serialised with secret-named string fields masked. The body of a
  long-lived ``GET`` event stream is never read by the inspector.
- also read: ``RequestHistoryEntry`` from a v1 branch (``client/src/lib/types/requestHistory.ts``, 66642b0):
  ``{"request": "<JSON text>", "response"?: "<JSON text>", "requestedAt", "respondedAt"?,
  "durationMs"?}``.

How they load (``record_no`` = 1-based position in the array, rejects read ``entry 5: ...``;
``connection_id`` ``inspector:<file name>``):

- protocol: the request at ``timestamp``, its response at ``timestamp + duration`` (at
  ``timestamp`` when there is no duration); direction from ``origin`` (``client`` =
  ``client_to_server``), else inferred from the method like a bare capture. The export does not
  say which transport carried the messages, so ``transport`` is NULL, and has no HTTP headers, so
  no ``Mcp-Session-Id``: without a ``_meta`` session key the session is the file's connection.
  Times are milliseconds; a response attached to its request entry and a notification of another
  entry in the same millisecond sort response-first, so a last progress notification can show as
  ``unknown_progress_token``.
- network: like a HAR entry (:mod:`mcptrace.ingest.readers.har`, through the same
  :mod:`mcptrace.ingest.readers.http_entries` and redaction policy): the request body at ``timestamp``;
  the response body (JSON, or an event stream split into events) at ``timestamp + duration``,
  i.e. when the response *headers* arrived - the inspector keeps no later time, so every event of a
  stream gets that time. ``category: "auth"`` (OAuth) entries, entries that are not MCP traffic,
  and long-lived GET streams are skipped (``sources.n_skipped``). A failed fetch (``error``) keeps
  its request, which rebuilds as an unanswered call. A 2xx JSON/SSE response whose
  ``responseBody`` is missing (the inspector reads it after the fact) is a reject.

A protocol export and a network export of the same session hold the same messages twice: load one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from mcptrace.core.db import RAW_LIMIT
from mcptrace.core.redact import DEFAULT_REDACTION, RedactionPolicy
from mcptrace.ingest.readers.base import Reader
from mcptrace.ingest.readers.http_entries import (
    MULTI_SQL_SCRIPTS,
    RecordRows,
    exchange_elements,
    header_dict,
    is_json_mime,
    iso,
    mime_of,
    parse_body,
    parse_time,
    plus_ms,
    redact_path,
    reject_element,
    safe_snippet,
)
from mcptrace.ingest.readers.inputs import Input
from mcptrace.ingest.readers.json_stream import SURROGATE, JsonStream, JsonStreamError, message_problem

_DIRECTIONS = ("request", "response", "notification")
_OPPOSITE = {"client_to_server": "server_to_client", "server_to_client": "client_to_server", None: None}


def entry_kind(e: Any) -> str | None:
    if not isinstance(e, dict):
        return None
    if "message" in e and e.get("direction") in _DIRECTIONS:
        return "protocol"
    if isinstance(e.get("url"), str) and "method" in e and ("requestHeaders" in e or "timestamp" in e):
        return "network"
    if isinstance(e.get("request"), str) and "requestedAt" in e:
        return "history_v1"
    return None


def _origin_direction(origin: Any) -> str | None:
    return {"client": "client_to_server", "server": "server_to_client"}.get(origin) if isinstance(origin, str) else None


def _message(value: Any, what: str) -> tuple[Any, str | None]:
    if isinstance(value, list) and not (value and any(isinstance(x, dict) for x in value)):
        return None, f"{what} is a JSON array holding no JSON-RPC message"
    if not isinstance(value, dict | list):
        return None, f"{what} is not a JSON-RPC object"
    problem = message_problem(value)
    return (None, f"{what}: {problem}") if problem else (value, None)


def protocol_elements(e: dict, connection_id: str) -> tuple[list[dict] | None, str | None]:
    ts = parse_time(e.get("timestamp"))
    if ts is None:
        return None, f"timestamp is missing or not an ISO 8601 time: {str(e.get('timestamp'))[:40]!r}"
    # who sent the message; without ``origin`` (older exports) the loader infers it from the method
    direction = _origin_direction(e.get("origin"))
    kind = e["direction"]
    out: list[dict] = []

    def env(t, d, m) -> dict:
        return {"ts": iso(t), "direction": d, "transport": None, "connection_id": connection_id, "message": m}

    msg, why = _message(e.get("message"), "message")
    if why:
        out.append(reject_element(why, json.dumps(e.get("message"))[:RAW_LIMIT]))
    else:
        out.append(env(ts, direction, msg))
    if kind == "request" and e.get("response") is not None:
        resp, why = _message(e.get("response"), "response")
        if why:
            out.append(reject_element(why, json.dumps(e.get("response"))[:RAW_LIMIT]))
        else:
            t_resp = plus_ms(ts, e.get("duration")) or ts
            out.append(env(t_resp, _OPPOSITE[direction], resp))
    return out, None


def history_v1_elements(e: dict, connection_id: str) -> tuple[list[dict] | None, str | None]:
    ts = parse_time(e.get("requestedAt"))
    if ts is None:
        return None, f"requestedAt is missing or not an ISO 8601 time: {str(e.get('requestedAt'))[:40]!r}"
    out: list[dict] = []
    req, why = parse_body(e["request"], "request")
    out.append(reject_element(why, e["request"]) if why else
               {"ts": iso(ts), "direction": "client_to_server", "transport": None, "connection_id": connection_id,
                "message": req})
    if isinstance(e.get("response"), str) and e["response"].strip():
        resp, why = parse_body(e["response"], "response")
        t_resp = parse_time(e.get("respondedAt")) or plus_ms(ts, e.get("durationMs")) or ts
        out.append(reject_element(why, e["response"]) if why else
                   {"ts": iso(t_resp), "direction": "server_to_client", "transport": None,
                    "connection_id": connection_id, "message": resp})
    return out, None


def network_elements(e: dict, connection_id: str,
                     redaction: RedactionPolicy = DEFAULT_REDACTION) -> tuple[list[dict] | None, str | None]:
    """A network (``FetchRequestEntry``) entry like a HAR entry: headers and the URL's query redacted by
    ``redaction``; ``(elements, None)``, ``(None, None)`` to skip it, or ``(None, reject reason)``."""
    if e.get("category") == "auth":
        return None, None  # OAuth discovery/token traffic, not MCP messages
    ts = parse_time(e.get("timestamp"))
    if ts is None:
        return None, f"timestamp is missing or not an ISO 8601 time: {str(e.get('timestamp'))[:40]!r}"
    rq, rs = header_dict(e.get("requestHeaders"), redaction), header_dict(e.get("responseHeaders"), redaction)
    method = e.get("method") if isinstance(e.get("method"), str) else "?"
    status = e.get("responseStatus")
    status = status if isinstance(status, int) and not isinstance(status, bool) and status > 0 else None
    mime = mime_of(rs)
    body = e.get("responseBody") if isinstance(e.get("responseBody"), str) else None
    if method == "GET" and mime in ("text/event-stream", "application/x-ndjson") and body is None:
        return None, None  # the long-lived stream: fetchTracking.ts never reads its body
    missing = None  # an empty string is an empty body; no responseBody at all is a body never read
    if (status is not None and 200 <= status < 300 and status not in (202, 204) and not e.get("error")
            and body is None and (is_json_mime(mime) or mime == "text/event-stream")):
        missing = (f"HTTP {status} {mime} response body is not in the export "
                   "(the inspector reads it after the response headers; it was not read yet or could not be)")
    t_resp = plus_ms(ts, e.get("duration")) or ts
    body_in = e.get("requestBody")
    elements, _ = exchange_elements(
        method=method, url=e["url"], status=status, request_headers=rq, response_headers=rs,
        request_body=body_in if isinstance(body_in, str) else None, response_body=body, response_mime=None,
        t_request=ts, t_response=t_resp, connection_id=connection_id, missing_body_reason=missing,
        request_body_error=None if body_in is None or isinstance(body_in, str) else "requestBody is not a string",
        redaction=redaction)
    return elements, None


def _summary(e: Any, redaction: RedactionPolicy) -> str:
    if isinstance(e, dict):
        keep = {k: e.get(k) for k in ("id", "timestamp", "direction", "origin", "method", "responseStatus") if k in e}
        if isinstance(e.get("url"), str):
            keep["url"] = redact_path(e["url"], redaction)[0]
        return json.dumps(keep, ensure_ascii=False, default=str)[:1000]
    return safe_snippet(json.dumps(e, ensure_ascii=False, default=str), redaction)


class InspectorExportReader(Reader):
    name = "mcp_inspector_export"
    kind = "messages"
    record_label = "entry"
    sql_scripts = MULTI_SQL_SCRIPTS

    def sniff(self, head: bytes) -> bool:
        text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
        if not text.startswith("["):
            return False
        body = text[1:].lstrip()
        if not body.startswith("{"):
            return False
        try:
            first, _ = json.JSONDecoder().raw_decode(body)
        except ValueError:
            first = None
        if first is not None:
            return entry_kind(first) is not None
        # the first element is cut off by the end of the head: look at its keys
        return bool(
            (re.search(r'"direction"\s*:\s*"(?:request|response|notification)"', body)
             and re.search(r'"timestamp"\s*:', body) and re.search(r'"message"\s*:', body))
            or (re.search(r'"requestHeaders"\s*:', body) and re.search(r'"url"\s*:', body)
                and re.search(r'"timestamp"\s*:', body)))

    def batches(self, inp: Input, *, redaction: RedactionPolicy | None = None,
                max_record_bytes: int | None = None) -> Iterator[pa.Table]:
        """The export's entries as element rows; network entries' headers and query strings, and
        reject snippets, redacted by ``redaction`` (default :data:`~mcptrace.core.redact.DEFAULT_REDACTION`)."""
        redaction = DEFAULT_REDACTION if redaction is None else redaction
        connection_id = f"inspector:{os.path.basename(inp.path)}"
        rows = RecordRows()
        with inp.open() as f:
            js = JsonStream(f, max_value_chars=max_record_bytes, keyed=True)  # messages are embedded objects
            try:
                for n, entry, text, too_long in js.elements():
                    if too_long:  # read past: the next entries load
                        rows.add(n, None, too_long)
                    elif SURROGATE.search(text):
                        rows.add(n, _summary(entry, redaction), "invalid UTF-8 in the entry")
                    else:
                        kind = entry_kind(entry)
                        if kind is None:
                            rows.add(n, _summary(entry, redaction), "not an inspector protocol (MessageEntry) or network "
                                                         "(FetchRequestEntry) entry")
                        else:
                            if kind == "network":
                                els, why = network_elements(entry, connection_id, redaction)
                            else:
                                make = protocol_elements if kind == "protocol" else history_v1_elements
                                els, why = make(entry, connection_id)
                            if why:
                                rows.add(n, _summary(entry, redaction), why)
                            else:
                                rows.add_elements(n, els)
                    if rows.full():
                        yield rows.take()
            except JsonStreamError as e:
                # inside an entry the error is that entry's; between entries, a record of its own
                n = js.n_elements if js.in_element else js.n_elements + 1
                where = f"after entry {n - 1}" if n > 1 else "before the first entry"
                cause = f"{js.read_error}" if js.read_error else str(e)
                rows.add(n, safe_snippet(js.buf[js.pos:js.pos + 300], redaction) or None,
                         f"export is not readable {where}: {cause}")
        if rows.nos:
            yield rows.take()
