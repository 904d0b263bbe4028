"""The HAR 1.2 record that ``mcptrace capture http --har FILE`` keeps beside the envelopes.

:class:`HarRecorder` makes one entry per proxied exchange (request and response headers with
credential values redacted, the request body as ``postData.text``, the response body as received,
event streams verbatim with ``_eventSourceMessages``, the timings, the client address as
``connection``) and appends it to the file when the exchange ends, from a writer thread: the file
is a valid HAR document after every entry (the closing ``]}}`` is rewritten after each one), never
rewritten whole. Entries are in the order the exchanges ended. HAR 1.2: http://www.softwareishard.com/blog/har-12-spec/
"""

from __future__ import annotations

import base64
import json
import os
import queue
import threading
from datetime import UTC, datetime
from typing import Any

from mcptrace.core.redact import RedactionPolicy

#: the default cap of a recorded body (bytes): request bodies, decoded response bodies, HAR texts
DEFAULT_MAX_BODY = 16 * 1024 * 1024
#: what one ``_eventSourceMessages`` item counts against the cap beside its data (bytes)
_EVENT_OVERHEAD = 128
_TRAILER = b"\n]}}\n"


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

    __slots__ = (
        "base64",
        "body",
        "decode_cut",
        "done",
        "entry",
        "events",
        "kept",
        "post",
        "post_size",
        "t0",
        "t_headers",
        "truncated",
    )

    def __init__(self, t0: datetime, entry: dict[str, Any]) -> None:
        self.t0 = t0
        self.t_headers: datetime | None = None
        self.body = bytearray()
        self.base64 = False
        self.truncated = False
        self.events: list[dict[str, Any]] | None = None
        self.kept = 0  # bytes counted against the cap: the body and the events
        self.entry = entry
        self.done = False
        self.post = b""  # the request body as recorded (at most the cap)
        self.post_size = 0  # the request body's size (bytes), when larger than what is recorded
        self.decode_cut: str | None = None  # why decoding stopped (the cap of a compressed response)


class HarRecorder:
    """Keeps a HAR 1.2 log of the proxied exchanges in ``path``, appending entries as exchanges end.

    The file is created (replaced if it exists) with mode ``0600``. Only the open exchanges are held in
    memory; a finished one is handed to a writer thread that redacts, serialises and appends it, so the
    event loop never writes the file. A body beyond ``max_body`` bytes (default
    :data:`DEFAULT_MAX_BODY`, 16 MiB) is cut: ``postData.comment`` / ``content.comment`` say so and
    give the size; an event stream's ``_eventSourceMessages`` stop at the same budget. Unless
    redaction is off, credential header values (``authorization``, ``cookie``, ``x-api-key``...),
    credential-looking query values and secret-keyed values in the bodies and event data
    (:meth:`~mcptrace.core.redact.RedactionPolicy.redact_json_text`) are ``[REDACTED]``; the
    ``cookies`` arrays stay empty. ``redaction`` says what is redacted; without it, ``redact``
    switches the default policy on or off.
    """

    def __init__(self, path: str, *, max_body: int = DEFAULT_MAX_BODY, redact: bool = True,
                 redaction: RedactionPolicy | None = None) -> None:
        self.path = path
        self.redaction = redaction if redaction is not None else RedactionPolicy(enabled=redact)
        self.max_body = max_body
        self.open: set[_HarExchange] = set()
        self.n_written = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
        os.fchmod(self._fd, 0o600)  # an existing file keeps its mode otherwise
        head = json.dumps({"version": "1.2", "creator": {"name": "mcptrace capture", "version": "0.1"},
                           "pages": []})
        head_b = ('{"log": ' + head[:-1] + ', "entries": [').encode()
        self._pos = len(head_b)  # where the next entry goes (the trailer follows it)
        self._pwrite(head_b + _TRAILER, 0)
        self._queue: queue.Queue[_HarExchange | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mcptrace-har-writer", daemon=True)
        self._thread.start()

    def start(self, ts: str, request: Any, body: bytes, connection: str) -> _HarExchange:
        """A request arrived at ``ts`` with ``body`` (what is recorded of it: at most ``max_body`` bytes)."""
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
            req["postData"] = {"mimeType": ctype, "text": ""}
        entry = {"startedDateTime": ts, "time": 0, "request": req,
                 "response": {"status": 0, "statusText": "", "httpVersion": "", "headers": [], "cookies": [],
                              "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "",
                              "headersSize": -1, "bodySize": -1},
                 "cache": {}, "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0,
                                          "wait": 0, "receive": 0},
                 "connection": connection}
        ex = _HarExchange(_parse_utc(ts), entry)
        ex.post = bytes(body[: self.max_body])
        self.open.add(ex)
        return ex

    def request_size(self, ex: _HarExchange, size: int) -> None:
        """The request body was ``size`` bytes, more than what :meth:`start` was given (it was cut)."""
        ex.post_size = size
        ex.entry["request"]["bodySize"] = size

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
        """Response body bytes (``decoded=False``: still content-encoded, kept as base64)."""
        if not data or ex.truncated:
            return
        if not decoded:
            ex.base64 = True
        room = self.max_body - len(ex.body)
        if len(data) > room:
            data, ex.truncated = data[:room], True
        ex.body += data

    def event(self, ex: _HarExchange, ts: str, ev: Any) -> None:
        if ex.events is None or ex.kept > self.max_body:
            return
        ex.kept += len(ev.data) + _EVENT_OVERHEAD
        if ex.kept > self.max_body:
            ex.truncated = True
            return
        t = _parse_utc(ts)
        ex.events.append({"time": round(t.timestamp(), 6), "eventName": ev.event, "eventId": ev.id or "",
                          "data": ev.data})

    def decoding_stopped(self, ex: _HarExchange, why: str) -> None:
        """The response is no longer decoded (``why``: the cap of a compressed body): say so in the entry."""
        ex.decode_cut = why

    def finish(self, ex: _HarExchange, ts: str, *, error: str | None = None, status: int | None = None,
               text: str | None = None) -> None:
        """The exchange ended at ``ts`` (``status``/``text``: a response the proxy made itself); its entry
        is queued for the writer thread."""
        if ex.done:
            return
        ex.done = True
        self.open.discard(ex)
        end = _parse_utc(ts)
        resp = ex.entry["response"]
        if status is not None:
            resp.update({"status": status, "statusText": "Bad Gateway" if status == 502 else ""})
            resp["content"]["mimeType"] = "text/plain"
            ex.body = bytearray((text or "").encode())
        headers_at = ex.t_headers or end
        ex.entry["timings"].update({"wait": _ms(ex.t0, headers_at), "receive": _ms(headers_at, end)})
        ex.entry["time"] = _ms(ex.t0, end)
        if error:
            resp["_error"] = error
        self._queue.put(ex)

    # -- the writer thread ---------------------------------------------------------------------
    def _complete(self, ex: _HarExchange) -> dict[str, Any]:
        """The entry with its texts (decoded, redacted): done on the writer thread."""
        red = self.redaction.redact_json_text
        req, resp = ex.entry["request"], ex.entry["response"]
        if "postData" in req:
            req["postData"]["text"] = red(ex.post.decode("utf-8", errors="replace"))
            if ex.post_size > len(ex.post):
                req["postData"]["comment"] = (f"truncated by mcptrace capture after {len(ex.post)} bytes "
                                              f"of {ex.post_size}")
        content = resp["content"]
        content["size"] = len(ex.body)
        if ex.body or resp["status"]:
            if ex.base64:
                content["text"], content["encoding"] = base64.b64encode(bytes(ex.body)).decode(), "base64"
            else:
                content["text"] = red(ex.body.decode("utf-8", errors="replace"))
        if ex.decode_cut:
            content["comment"] = ex.decode_cut
        elif ex.truncated:
            content["comment"] = f"truncated by mcptrace capture after {self.max_body} bytes"
        resp["bodySize"] = len(ex.body) if resp["status"] else -1
        if ex.events is not None:
            for item in ex.events:
                item["data"] = red(item["data"])
            ex.entry["_eventSourceMessages"] = ex.events
        ex.body, ex.post, ex.events = bytearray(), b"", None
        return ex.entry

    def _pwrite(self, data: bytes, pos: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, pos)
            view, pos = view[n:], pos + n

    def _run(self) -> None:
        while True:
            ex = self._queue.get()
            if ex is None:
                return
            try:
                entry = self._complete(ex)
                text = json.dumps(entry, ensure_ascii=False)
                body = text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (``"\\ud800"`` in a body): keep it escaped
                body = json.dumps(entry, ensure_ascii=True).encode("ascii")
            except Exception as exc:  # noqa: BLE001 - one bad entry must not end the record
                body = json.dumps({"startedDateTime": ex.entry.get("startedDateTime"), "comment": repr(exc)}).encode()
            lead = b",\n" if self.n_written else b"\n"
            if hasattr(os, "pwritev"):  # the entry, then the trailer again (valid after it): no copy
                n = os.pwritev(self._fd, [lead, body, _TRAILER], self._pos)
                if n < len(lead) + len(body) + len(_TRAILER):
                    self._pwrite((lead + body + _TRAILER)[n:], self._pos + n)
            else:  # pragma: no cover
                self._pwrite(lead + body + _TRAILER, self._pos)
            self._pos += len(lead) + len(body)
            del body
            self.n_written += 1

    def close(self) -> None:
        """End the record: the exchanges still open are written with ``_error``, then the file is closed."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for ex in list(self.open):
            self.finish(ex, now, error="the capture ended before the exchange did")
        if self._fd < 0:
            return
        self._queue.put(None)
        self._thread.join()
        os.close(self._fd)
        self._fd = -1
