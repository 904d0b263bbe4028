"""Incremental Server-Sent Events parser (WHATWG HTML "event stream interpretation").

Feed it bytes as they arrive; it returns the events completed by each chunk. Handles CRLF/LF/CR
line endings (also split across chunks), a leading BOM, ``:`` comments, ``data:`` lines joined with
``\\n``, ``event:``, ``id:`` (ignored when it contains NUL) and ``retry:`` (digits only). A blank
line dispatches the event. Per the spec an event with no ``data:`` line at all is not dispatched
(its ``id`` still updates ``last_event_id``), while a bare ``data:`` line dispatches an event with
empty data - that is how priming events (``id: X\\ndata:\\n\\n``) look; callers decide to skip
them. An incomplete event at end of stream is discarded.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str
    """The ``event:`` field, ``"message"`` when absent."""
    id: str | None
    """The ``id:`` field of this event itself (``None`` when the event had none)."""
    last_event_id: str
    """The stream's last-event-ID buffer at dispatch (persists across events, per the spec)."""
    retry: int | None
    """A ``retry:`` value seen while this event was being built, if any."""


class SSEParser:
    def __init__(self, max_event_bytes: int | None = 16 * 1024 * 1024) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._started = False
        self._pending_cr = False
        self._max = max_event_bytes
        self.last_event_id = ""
        self.retry: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._data_len = 0
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        return self._feed_text(text)

    def close(self) -> list[SSEEvent]:
        """End of stream: flush the decoder; an unterminated event is discarded (spec)."""
        events = self._feed_text(self._decoder.decode(b"", final=True))
        self._buf = ""
        self._reset()
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if not text:
            return []
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across chunks
        self._pending_cr = False
        self._buf += text
        events: list[SSEEvent] = []
        while True:
            i_cr = self._buf.find("\r")
            i_lf = self._buf.find("\n")
            if i_cr < 0 and i_lf < 0:
                break
            if i_cr >= 0 and (i_lf < 0 or i_cr < i_lf):
                line = self._buf[:i_cr]
                if i_cr + 1 < len(self._buf):
                    skip = 2 if self._buf[i_cr + 1] == "\n" else 1
                else:
                    skip = 1
                    self._pending_cr = True  # maybe followed by LF in the next chunk
                self._buf = self._buf[i_cr + skip :]
            else:
                line = self._buf[:i_lf]
                self._buf = self._buf[i_lf + 1 :]
            ev = self._line(line)
            if ev is not None:
                events.append(ev)
        if self._max is not None and len(self._buf) > self._max:
            raise ValueError("SSE line exceeds the size limit")
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
            self._data_len += len(value) + 1
            if self._max is not None and self._data_len > self._max:
                raise ValueError("SSE event exceeds the size limit")
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry = self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._reset()
            return None
        ev = SSEEvent(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._id,
            last_event_id=self.last_event_id,
            retry=self._retry,
        )
        self._reset()
        return ev
