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
import re
from dataclasses import dataclass


#: a line ending: CRLF, LF or a lone CR
_EOL = re.compile("\r\n?|\n")


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
    """Incremental SSE parser; see the module docstring.

    ``max_event_bytes`` bounds the characters of one line and of one event's data (``None``: no
    bound); ``feed``/``close`` raise ``ValueError`` beyond it. Time is linear in the input: each
    chunk is scanned once from where the previous line ended, and an unfinished line is kept as a
    list of pieces joined once, when its end arrives.
    """

    def __init__(self, max_event_bytes: int | None = 16 * 1024 * 1024) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []  # the unfinished line, in pieces
        self._parts_len = 0
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
        """The events completed by ``chunk`` (bytes of the stream, split anywhere)."""
        text = self._decoder.decode(chunk)
        return self._feed_text(text)

    def close(self) -> list[SSEEvent]:
        """End of stream: flush the decoder; an unterminated event is discarded (spec)."""
        events = self._feed_text(self._decoder.decode(b"", final=True))
        self._parts, self._parts_len = [], 0
        self._reset()
        return events

    def pending(self) -> tuple[list[str], str]:
        """What an unterminated end of stream would lose: the ``data:`` values of the event being
        built, and the text of the unfinished line (``""`` when none)."""
        return list(self._data), "".join(self._parts)

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
        if not text:
            return []
        if "\n" not in text and "\r" not in text:
            self._parts.append(text)
            self._parts_len += len(text)
            self._check_line()
            return []
        if self._parts:
            self._parts.append(text)
            text = "".join(self._parts)
            self._parts, self._parts_len = [], 0
        events: list[SSEEvent] = []
        pos = 0
        end = len(text)
        for m in _EOL.finditer(text):
            start, stop = m.span()
            if stop == end and text[start] == "\r":
                self._pending_cr = True  # maybe followed by LF in the next chunk
            ev = self._line(text[pos:start])
            pos = stop
            if ev is not None:
                events.append(ev)
        if pos < end:
            self._parts = [text[pos:]]
            self._parts_len = end - pos
            self._check_line()
        return events

    def _check_line(self) -> None:
        if self._max is not None and self._parts_len > self._max:
            raise ValueError("SSE line exceeds the size limit")

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
