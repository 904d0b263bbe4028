"""Reading JSON for the readers of HTTP logs and exports: one element at a time from a stream
(:class:`JsonStream`, memory bounded by the largest element, elements over the limit read past),
and the repeated-key rule for JSON-RPC messages parsed in Python (:class:`KeyedObject`,
:func:`message_problem`), the same rule ``sql/messages.sql`` applies to messages DuckDB reads.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any

from mcptrace.ingest.readers.inputs import DECODE_ERRORS

#: the largest JSON value read by default (characters of decoded text)
MAX_RECORD_CHARS = 256 * 1024 * 1024


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class KeyedObject(dict):
    """A JSON object as the readers parse it: the last value of a repeated key (as Python's json and
    ``JSON.parse`` read it), and ``repeated``, the keys its text gave more than once."""

    repeated: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> KeyedObject:
    obj = KeyedObject(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        obj.repeated = tuple(dict.fromkeys(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


#: The objects of a JSON-RPC message whose members the analysis reads, as ``sql/messages.sql``
#: checks them for repeated keys (a record read by DuckDB there, by the readers here: one rule).
CHECKED_OBJECTS = ("", "params", "params._meta", "params.clientInfo", "result", "result._meta",
                   "result.serverInfo", "error")


def repeated_keys(message: Any) -> str | None:
    """The keys a JSON-RPC message (parsed with :data:`STRICT_JSON` or :class:`JsonStream`) gives
    twice in one of :data:`CHECKED_OBJECTS`, named by path (``id, params.name``); ``None`` when none.

    Readers disagree on such a message (DuckDB reads the first value, Python and JavaScript the
    last): it could show one method or id and be analysed as another, so it is rejected."""
    names: list[str] = []
    for path in CHECKED_OBJECTS:
        obj = message
        for part in path.split(".") if path else ():
            obj = obj.get(part) if isinstance(obj, dict) else None
        if isinstance(obj, KeyedObject):
            names += [f"{path}.{k}" if path else k for k in obj.repeated]
    return ", ".join(names) or None


def message_problem(value: Any) -> str | None:
    """Why a parsed JSON-RPC message or batch must be rejected for repeated keys, else ``None``."""
    if isinstance(value, list):
        for i, item in enumerate(value):  # numbered from 0, as the loader names batch elements
            keys = repeated_keys(item)
            if keys:
                return f"JSON-RPC message has duplicate keys: {keys} (batch element {i})"
        return None
    keys = repeated_keys(value)
    return f"JSON-RPC message has duplicate keys: {keys}" if keys else None


#: Python's json accepts NaN and Infinity; JSON (and DuckDB) do not. Objects are :class:`KeyedObject`.
STRICT_JSON = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_object)


class JsonStreamError(ValueError):
    pass


class JsonValueTooLong(JsonStreamError):
    """A value over the size limit, read past: the stream stands after it and reading can go on."""

    def __init__(self, n_chars: int, at: int, limit: int) -> None:
        super().__init__(f"record of {n_chars} characters exceeds the limit of {limit}")
        self.n_chars, self.at = n_chars, at


_STRING_STOP = re.compile(r'["\\]')
_VALUE_STOP = re.compile(r'["{}\[\]]')
_SCALAR_END = re.compile(r"[\s,\]}]")


class JsonStream:
    """Reads the values of one JSON document from a binary stream, one element at a time.

    Only structure is walked by hand (objects' keys, array separators); every value is parsed by
    :meth:`json.JSONDecoder.raw_decode`, so memory is bounded by the largest single value read,
    itself bounded by ``max_value_chars`` (characters of decoded text; ``None``:
    :data:`MAX_RECORD_CHARS`): :meth:`value` raises :class:`JsonStreamError` giving the size once
    a value is longer, having read no more than that (plus one ``chunk``). Reading is linear: the
    buffer is extended by joining the pieces of each refill once. Invalid UTF-8 is kept as lone
    surrogates so callers can reject the element that holds it. ``keyed``: objects are read as
    :class:`KeyedObject` (for JSON-RPC messages embedded as objects, checked by :func:`message_problem`).
    """

    def __init__(self, f, chunk: int = 1 << 20, max_value_chars: int | None = None, keyed: bool = False) -> None:
        self.f = f
        self.chunk = chunk
        self.max_value_chars = MAX_RECORD_CHARS if max_value_chars is None else max_value_chars
        self.dec = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.consumed = 0  # characters dropped from the front of buf
        self.read_error: BaseException | None = None
        self._raw = json.JSONDecoder(object_pairs_hook=_object) if keyed else json.JSONDecoder()
        self.n_elements, self.in_element = 0, False  # see elements()

    def _more(self, want: int | None = None) -> bool:
        if self.eof:
            return False
        wanted = max(want or self.chunk, self.chunk)
        parts: list[str] = []
        got = 0
        while got < wanted:
            try:
                data = self.f.read(self.chunk)
            except DECODE_ERRORS as e:
                self.read_error, data = e, b""
            if not data:
                parts.append(self.dec.decode(b"", final=True))
                self.eof = True
                break
            text = self.dec.decode(data)
            parts.append(text)
            got += len(text)
        if self.pos > (1 << 20):
            self.consumed += self.pos
            self.buf = "".join([self.buf[self.pos:], *parts])
            self.pos = 0
        else:
            self.buf = "".join([self.buf, *parts])
        return True

    def skip_ws(self) -> str:
        """The next non-blank character (not consumed), ``""`` at the end."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n\ufeff":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, chars: str) -> str:
        c = self.skip_ws()
        if not c or c not in chars:
            raise JsonStreamError(f"expected {' or '.join(repr(x) for x in chars)} at character "
                                  f"{self.consumed + self.pos}, found {c or 'the end of the file'!r}")
        self.pos += 1
        return c

    def value(self) -> tuple[Any, str]:
        """The next JSON value and its text."""
        self.skip_ws()
        while True:
            try:
                v, end = self._raw.raw_decode(self.buf, self.pos)
            except RecursionError as e:
                raise JsonStreamError(f"value at character {self.consumed + self.pos} is nested too deeply") from e
            except json.JSONDecodeError as e:
                truncated = e.msg.startswith("Unterminated") or e.pos >= len(self.buf) - 64
                have, limit = len(self.buf) - self.pos, self.max_value_chars
                if truncated and have > limit:
                    at = self.consumed + self.pos
                    raise JsonValueTooLong(self.skip_value(), at, limit) from e
                if truncated and self._more(max(1, min(have, limit + 1 - have))):
                    continue
                where = "the file ends" if self.eof and truncated else f"{e.msg} at character {self.consumed + e.pos}"
                raise JsonStreamError(f"not valid JSON: {where}") from e
            if end >= len(self.buf) and not self.eof and not isinstance(v, dict | list | str) and self._more():
                continue  # a number or literal cut by the end of the buffer
            if end - self.pos > self.max_value_chars:
                at, n_chars = self.consumed + self.pos, end - self.pos
                self.pos = end
                raise JsonValueTooLong(n_chars, at, self.max_value_chars)
            text = self.buf[self.pos:end]
            self.pos = end
            return v, text

    def skip_value(self) -> int:
        """Read past the value starting here without parsing or holding it (the buffer is dropped
        as it goes: memory stays at one ``chunk``); the number of characters skipped.

        Only strings (their escapes) and brackets are followed: the value is not validated, the
        structure after it is. Raises :class:`JsonStreamError` when the file ends inside it.
        """
        start = self.consumed + self.pos
        depth = 0
        while True:
            c = self.skip_ws() if depth == 0 else self._char()
            if not c:
                raise JsonStreamError(f"not valid JSON: the file ends inside the value at character {start}")
            if c == '"':
                self._skip_string()
            elif c in "{[":
                depth += 1
                self.pos += 1
            elif c in "}]" and depth:
                depth -= 1
                self.pos += 1
            elif depth == 0:  # a number or literal
                while True:
                    m = _SCALAR_END.search(self.buf, self.pos)
                    if m:
                        self.pos = m.start()
                        break
                    self.pos = len(self.buf)
                    if not self._more():
                        break
            if depth == 0:
                return self.consumed + self.pos - start
            m = None
            while m is None:  # on to the next string or bracket inside the value
                m = _VALUE_STOP.search(self.buf, self.pos)
                if m is None:
                    self.pos = len(self.buf)
                    if not self._more():
                        raise JsonStreamError(f"not valid JSON: the file ends inside the value at character {start}")
            self.pos = m.start()

    def _char(self) -> str:
        """The character at the read position (not consumed), ``""`` at the end."""
        while self.pos >= len(self.buf):
            if not self._more():
                return ""
        return self.buf[self.pos]

    def _skip_string(self) -> None:
        """Read past the string starting here (at its quote)."""
        self.pos += 1
        while True:
            m = _STRING_STOP.search(self.buf, self.pos)
            if m is None:
                self.pos = len(self.buf)
            elif m.group() == '"':
                self.pos = m.end()
                return
            elif m.end() < len(self.buf):  # an escape and the character it escapes
                self.pos = m.end() + 1
                continue
            else:
                self.pos = m.start()  # the escaped character is in the next read
            if not self._more():
                raise JsonStreamError("not valid JSON: the file ends inside a string")

    def object_keys(self) -> Iterator[str]:
        """Iterate the keys of the object starting here; the caller reads or skips each value."""
        self.expect("{")
        if self.skip_ws() == "}":
            self.pos += 1
            return
        while True:
            key, _ = self.value()
            if not isinstance(key, str):
                raise JsonStreamError(f"object key is not a string at character {self.consumed + self.pos}")
            self.expect(":")
            yield key
            if self.expect(",}") == "}":
                return

    def elements(self) -> Iterator[tuple[int, Any, str | None, str | None]]:
        """The values of the array starting here, numbered from 1: ``(n, value, text, None)``, or
        ``(n, None, None, reason)`` for a value over the size limit (read past: the next ones follow).
        ``n_elements`` is the number of the last value started; ``in_element`` says whether reading
        stopped inside it (a :class:`JsonStreamError` raised there belongs to that value)."""
        self.n_elements, self.in_element = 0, False
        for _ in self.array_items():
            self.n_elements += 1
            self.in_element = True
            try:
                value, text = self.value()
            except JsonValueTooLong as e:
                self.in_element = False
                yield self.n_elements, None, None, str(e)
                continue
            self.in_element = False
            yield self.n_elements, value, text, None

    def array_items(self) -> Iterator[None]:
        """Iterate the array starting here; the caller reads one value per step."""
        self.expect("[")
        if self.skip_ws() == "]":
            self.pos += 1
            return
        while True:
            yield None
            if self.expect(",]") == "]":
                return


SURROGATE = re.compile("[\udc80-\udcff]")
"""Matches the lone surrogates :class:`JsonStream` leaves for invalid UTF-8."""
