"""The HAR 1.2 record that ``mcptrace capture http --har FILE`` keeps beside the envelopes.

:class:`HarRecorder` holds one entry per proxied exchange (request and response headers with
credential values redacted, the request body as ``postData.text``, the response body as received,
event streams verbatim with ``_eventSourceMessages``, the timings, the client address as
``connection``) and rewrites the file atomically (a temporary file, then a rename) at most once a
second while the proxy runs, and once more at shutdown. HAR 1.2: http://www.softwareishard.com/blog/har-12-spec/
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from mcptrace.core.redact import RedactionPolicy


def _parse_utc(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _ms(a: datetime, b: datetime) -> float:
    """Milliseconds from ``a`` to ``b``, exact to the microsecond."""
    delta = b - a
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) / 1000


def _har_headers(items: Any, redaction: RedactionPolicy) -> list[dict[str, str]]:
    """``(name, value)`` pairs (str or bytes) as HAR ``[{"name", "value"}]``, names as sent, secrets redacted."""
    out = []
    for name, value in items:
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        value = value.decode("latin-1") if isinstance(value, bytes) else value
        out.append({"name": name, "value": redaction.redact_value(name, value)})
    return out


class _HarExchange:
    """One exchange being recorded; ``entry`` is the HAR entry, the rest is bookkeeping."""

    __slots__ = ("t0", "t_headers", "body", "base64", "truncated", "events", "entry", "done")

    def __init__(self, t0: datetime, entry: dict[str, Any]) -> None:
        self.t0 = t0
        self.t_headers: datetime | None = None
        self.body = bytearray()
        self.base64 = False
        self.truncated = False
        self.events: list[dict[str, Any]] | None = None
        self.entry = entry
        self.done = False


class HarRecorder:
    """Keeps a HAR 1.2 log of the proxied exchanges and writes it to ``path``.

    Entries are kept in memory for the whole run (a debugging proxy's traffic); a response body
    beyond ``max_body`` bytes is cut (``content.comment`` says so). Unless ``redact`` is false,
    credential header values (``authorization``, ``proxy-authorization``, ``cookie``, ``set-cookie``,
    ``x-api-key``...) and credential-looking query values are ``[REDACTED]``; the ``cookies`` arrays
    stay empty. ``redaction`` (a :class:`~mcptrace.core.redact.RedactionPolicy`) says what is
    redacted; without it, ``redact`` switches the default policy on or off.
    """

    def __init__(self, path: str, *, max_body: int = 32 * 1024 * 1024, min_interval: float = 1.0,
                 redact: bool = True, redaction: RedactionPolicy | None = None) -> None:
        self.path = path
        self.redaction = redaction if redaction is not None else RedactionPolicy(enabled=redact)
        self.max_body = max_body
        self.min_interval = min_interval
        self.exchanges: list[_HarExchange] = []
        self._last_write = 0.0
        self._dirty = False
        self._scheduled = False
        self.write()  # an empty, valid HAR from the start

    def start(self, ts: str, request: Any, body: bytes, connection: str) -> _HarExchange:
        headers = list(request.headers.raw)
        ctype = request.headers.get("content-type", "")
        req: dict[str, Any] = {
            "method": request.method,
            "url": self.redaction.redact_query(str(request.url)),
            "httpVersion": f"HTTP/{request.scope.get('http_version', '1.1')}",
            "headers": _har_headers(headers, self.redaction),
            "queryString": [{"name": k, "value": self.redaction.redact_value(k, v)}
                            for k, v in request.query_params.multi_items()],
            "cookies": [],
            "headersSize": -1,
            "bodySize": len(body),
        }
        if body:
            req["postData"] = {"mimeType": ctype, "text": body.decode("utf-8", errors="replace")}
        entry = {"startedDateTime": ts, "time": 0, "request": req,
                 "response": {"status": 0, "statusText": "", "httpVersion": "", "headers": [], "cookies": [],
                              "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "",
                              "headersSize": -1, "bodySize": -1},
                 "cache": {}, "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0,
                                          "wait": 0, "receive": 0},
                 "connection": connection}
        ex = _HarExchange(_parse_utc(ts), entry)
        self.exchanges.append(ex)
        return ex

    def response(self, ex: _HarExchange, ts: str, status: int, reason: str, http_version: str,
                 headers: Any) -> None:
        ex.t_headers = _parse_utc(ts)
        ctype = next((v.decode("latin-1") for k, v in headers if k.lower() == b"content-type"), "")
        location = next((v.decode("latin-1") for k, v in headers if k.lower() == b"location"), "")
        ex.entry["response"].update({"status": status, "statusText": reason, "httpVersion": http_version,
                                     "headers": _har_headers(headers, self.redaction), "redirectURL": location})
        ex.entry["response"]["content"]["mimeType"] = ctype or "x-unknown"
        if ctype.split(";")[0].strip().lower() == "text/event-stream":
            ex.events = []

    def body(self, ex: _HarExchange, data: bytes, *, decoded: bool = True) -> None:
        if not data or ex.truncated:
            return
        if not decoded:
            ex.base64 = True
        room = self.max_body - len(ex.body)
        if len(data) > room:
            data, ex.truncated = data[:room], True
        ex.body += data

    def event(self, ex: _HarExchange, ts: str, ev: Any) -> None:
        if ex.events is not None and not ex.truncated:
            t = _parse_utc(ts)
            ex.events.append({"time": round(t.timestamp(), 6), "eventName": ev.event, "eventId": ev.id or "",
                              "data": ev.data})

    def finish(self, ex: _HarExchange, ts: str, *, error: str | None = None, status: int | None = None,
               text: str | None = None) -> None:
        """The exchange ended at ``ts`` (``status``/``text``: a response the proxy made itself)."""
        if ex.done:
            return
        ex.done = True
        end = _parse_utc(ts)
        resp = ex.entry["response"]
        if status is not None:
            resp.update({"status": status, "statusText": "Bad Gateway" if status == 502 else ""})
            resp["content"]["mimeType"] = "text/plain"
            ex.body = bytearray((text or "").encode())
        content = resp["content"]
        content["size"] = len(ex.body)
        if ex.body or resp["status"]:
            if ex.base64:
                content["text"], content["encoding"] = base64.b64encode(bytes(ex.body)).decode(), "base64"
            else:
                content["text"] = ex.body.decode("utf-8", errors="replace")
        if ex.truncated:
            content["comment"] = f"truncated by mcptrace capture after {self.max_body} bytes"
        resp["bodySize"] = len(ex.body) if resp["status"] else -1
        if ex.events is not None:
            ex.entry["_eventSourceMessages"] = ex.events
        headers_at = ex.t_headers or end
        ex.entry["timings"].update({"wait": _ms(ex.t0, headers_at), "receive": _ms(headers_at, end)})
        ex.entry["time"] = _ms(ex.t0, end)
        if error:
            resp["_error"] = error
        ex.body = bytearray()
        self._dirty = True
        wait = self.min_interval - (time.monotonic() - self._last_write)
        if wait <= 0:
            self.write()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.write()
            else:
                self._scheduled = True
                loop.call_later(wait, self._deferred_write)

    def _deferred_write(self) -> None:
        self._scheduled = False
        if self._dirty:
            self.write()

    def close(self) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for ex in self.exchanges:
            if not ex.done:
                self.finish(ex, now, error="the capture ended before the exchange did")
        self.write()

    def write(self) -> None:
        entries = sorted((ex.entry for ex in self.exchanges if ex.done), key=lambda e: e["startedDateTime"])
        doc = {"log": {"version": "1.2", "creator": {"name": "mcptrace capture", "version": "0.1"},
                       "pages": [], "entries": entries}}
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, self.path)
        self._last_write = time.monotonic()
        self._dirty = False
