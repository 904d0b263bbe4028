"""OTLP/JSON trace documents: one ``ExportTraceServiceRequest`` per file, and the query APIs' shapes.

Accepted top-level shapes (a file may hold several JSON values one after the other, for
example a streamed Jaeger response; a JSON array of them works too):

- ``{"resourceSpans": [...]}`` — an OTLP/JSON ``ExportTraceServiceRequest``, often pretty-printed
  over many lines (``otlp_json`` reads the compact one-request-per-line form);
- ``{"batches": [...]}`` — Tempo's ``/api/traces/{id}`` (ids base64);
- ``{"trace": {"resourceSpans": [...]}}`` — Tempo's ``/api/v2/traces/{id}``;
- ``{"result": {"resourceSpans": [...]}}`` — Jaeger's API v3 (``/api/v3/traces/{id}``).

Ids are normalised to lowercase hex, deciding per id: 32/16 hex digits are hex, 24/12 characters
(22/11 unpadded, standard or URL-safe alphabet) that decode to 16/8 bytes are base64; anything
else is passed on unchanged and rejected by the span SQL. Pre-2022 ``instrumentationLibrarySpans``
/ ``instrumentationLibrary`` are renamed ``scopeSpans`` / ``scope`` (the span SQL's fallback to the
old name does not fire under DuckDB 2.0, where a missing ``$.scopeSpans[*]`` is ``[]``).
Each ``resourceSpans`` entry becomes one record in the Collector file-exporter line form
``{"resourceSpans":[entry]}``, run through
the OTLP/JSON reader's SQL (``sql/read_otlp_json.sql``), so the ``spans``
rows are the same as from file-exporter lines.

Records are numbered by ``resourceSpans`` entry across the file (``record_label`` is
``"resource"``). A document larger than :attr:`OtlpJsonDocumentReader.max_bytes` (1 GiB,
decoded) is refused with one reject. A document that does not parse (truncated download, corrupt
gzip) keeps the entries that parse before the damage, then one reject says where it broke.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from mcptrace.core.db import RAW_LIMIT
from mcptrace.core.redact import RedactionPolicy
from mcptrace.ingest.readers.base import LINES_SCHEMA, Reader, first_json_line
from mcptrace.ingest.readers.inputs import DECODE_ERRORS, Input
from mcptrace.ingest.readers.otlp_json import OtlpJsonReader, ids_look_base64

MAX_DOCUMENT_BYTES = 1 << 30
BATCH_TEXT_BYTES = 8 * 1024 * 1024
#: characters of a broken document kept as a reject's raw text
RAW_SNIPPET = RAW_LIMIT

_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_WS_RE = re.compile(r"[ \t\n\r]*")
# the array of resource entries, as a key (not inside a string: a quote there is escaped)
_CONTAINER_RE = re.compile(r'(?<!\\)"(?:resourceSpans|batches)"\s*:\s*\[')
_LINE_REQUEST_RE = re.compile(r'\{\s*"resourceSpans"\s*:')
_SCOPE_LIST_RE = re.compile(r'(?<!\\)"(?:scopeSpans|instrumentationLibrarySpans)"\s*:\s*\[')
# how a query API's answer opens: Tempo's "batches", Jaeger v3's "result" / Tempo v2's "trace" wrapper
_API_START_RE = re.compile(r'\[?\s*\{\s*"(?:batches"\s*:\s*\[|(?:result|trace)"\s*:\s*\{\s*"(?:resourceSpans|batches)"\s*:\s*\[)')
_BATCHES_RE = re.compile(r'(?<!\\)"batches"\s*:\s*\[\s*\{\s*"(?:resource|scopeSpans|instrumentationLibrarySpans)"\s*:')


# -- ids ---------------------------------------------------------------------------------------------
def id_to_hex(value: Any, n_bytes: int) -> Any:
    """An OTLP id as lowercase hex when it is hex or base64 of ``n_bytes`` bytes, else unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if len(value) == 2 * n_bytes and _HEX_RE.fullmatch(value):
        return value.lower()
    b64_len = 4 * ((n_bytes + 2) // 3)
    unpadded = (4 * n_bytes + 2) // 3
    if len(value) in (b64_len, unpadded):
        s = value.replace("-", "+").replace("_", "/")
        s += "=" * (-len(s) % 4)
        try:
            raw = base64.b64decode(s, validate=True)
        except (binascii.Error, ValueError):
            return value
        if len(raw) == n_bytes:
            return raw.hex()
    return value


def b64_id_to_hex(value: Any, n_bytes: int = 0) -> Any:
    """A protobuf-JSON (base64) bytes value as lowercase hex, whatever its length."""
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return value


_ID_BYTES = (("traceId", 16), ("spanId", 8), ("parentSpanId", 8))


def _scope_lists(rs: dict) -> list:
    """The scope entries of a resource entry, with pre-2022 names moved to the current ones.

    ``instrumentationLibrarySpans``/``instrumentationLibrary`` become ``scopeSpans``/``scope``
    (appended when both are present), which is what the span SQL reads.
    """
    legacy = rs.get("instrumentationLibrarySpans")
    if legacy is not None:
        del rs["instrumentationLibrarySpans"]
        if isinstance(legacy, list):
            for ss in legacy:
                if isinstance(ss, dict) and "instrumentationLibrary" in ss and "scope" not in ss:
                    ss["scope"] = ss.pop("instrumentationLibrary")
            current = rs.get("scopeSpans")
            rs["scopeSpans"] = (current if isinstance(current, list) else []) + legacy
    scopes = rs.get("scopeSpans")
    return scopes if isinstance(scopes, list) else []


def normalize_ids(resource_spans: list, convert: Callable[[Any, int], Any] = id_to_hex) -> None:
    """Rewrite, in place, the ids of every span and link under a ``resourceSpans`` list (and
    move pre-2022 ``instrumentationLibrarySpans`` to ``scopeSpans``)."""
    for rs in resource_spans:
        if not isinstance(rs, dict):
            continue
        for ss in _scope_lists(rs):
            spans = ss.get("spans") if isinstance(ss, dict) else None
            if not isinstance(spans, list):
                continue
            for span in spans:
                if not isinstance(span, dict):
                    continue
                for k, n in _ID_BYTES:
                    if k in span:
                        span[k] = convert(span[k], n)
                links = span.get("links")
                if isinstance(links, list):
                    for link in links:
                        if isinstance(link, dict):
                            for k, n in _ID_BYTES[:2]:
                                if k in link:
                                    link[k] = convert(link[k], n)


def dumps_line(value: Any) -> str:
    """Compact JSON text as the file exporter writes it (UTF-8 kept; lone surrogates escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" in the input: keep it escaped, as it came
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return text


class RecordBuffer:
    """Collects ``(record_no, line, decode_error)`` rows and hands them out as Arrow tables."""

    def __init__(self, batch_bytes: int = BATCH_TEXT_BYTES) -> None:
        self.batch_bytes = batch_bytes
        self.clear()

    def clear(self) -> None:
        self.nos: list[int] = []
        self.lines: list[str | None] = []
        self.errors: list[str | None] = []
        self.size = 0

    def add(self, record_no: int, line: str | None, error: str | None = None) -> None:
        self.nos.append(record_no)
        self.lines.append(line)
        self.errors.append(error)
        self.size += len(line) if line else 0

    @property
    def full(self) -> bool:
        return self.size >= self.batch_bytes

    def take(self) -> pa.Table | None:
        if not self.nos:
            return None
        table = pa.table({"record_no": pa.array(self.nos, pa.int64()), "line": pa.array(self.lines, pa.string()),
                          "decode_error": pa.array(self.errors, pa.string())}, schema=LINES_SCHEMA)
        self.clear()
        return table


# -- shapes ------------------------------------------------------------------------------------------
def _entries(value: Any) -> tuple[list | None, str | None]:
    """The resource entries of one top-level JSON value, or why there are none."""
    if isinstance(value, dict):
        for key in ("resourceSpans", "batches"):
            if key in value:
                found = value[key]
                if found is None:
                    return [], None
                if not isinstance(found, list):
                    return None, f"{key} is not an array"
                return found, None
        for key in ("result", "trace"):  # Jaeger API v3, Tempo API v2
            inner = value.get(key)
            if isinstance(inner, dict) and ("resourceSpans" in inner or "batches" in inner):
                return _entries(inner)
        if "error" in value:
            return None, "an error response, not traces: " + json.dumps(value["error"], ensure_ascii=False)[:300]
        keys = ", ".join(list(map(str, value))[:8]) or "none"
        return None, ("not an OTLP trace document: no resourceSpans, batches, result.resourceSpans or "
                      f"trace.resourceSpans (top-level keys: {keys})")
    if isinstance(value, list):
        out: list = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                return None, f"not an OTLP trace document: array item {i} is a JSON {type(item).__name__}"
            found, why = _entries(item)
            if why:
                return None, f"array item {i}: {why}"
            out.extend(found or [])
        return out, None
    return None, f"not an OTLP trace document: a JSON {type(value).__name__}"


def _looks_like_traces(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, dict) for v in value[:8]) and _looks_like_traces(value[0])
    if not isinstance(value, dict):
        return False
    for key in ("result", "trace"):
        if isinstance(value.get(key), dict):
            value = value[key]
            break
    for key in ("resourceSpans", "batches"):
        found = value.get(key)
        if isinstance(found, list):
            return all(isinstance(rs, dict) for rs in found[:8]) and (
                not found or any(k in found[0] for k in ("resource", "scopeSpans", "instrumentationLibrarySpans")))
    return False


def _json_error(e: json.JSONDecodeError) -> str:
    return f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"


def _salvage(text: str, start: int) -> list:
    """The resource entries that parse, in order, from the first entry array after ``start``."""
    m = _CONTAINER_RE.search(text, start)
    if not m:
        return []
    dec = json.JSONDecoder()
    pos = m.end()
    out: list = []
    while True:
        pos = _WS_RE.match(text, pos).end()
        try:
            value, pos = dec.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return out
        out.append(value)
        pos = _WS_RE.match(text, pos).end()
        if text.startswith(",", pos):
            pos += 1
        else:
            return out


# -- reader ------------------------------------------------------------------------------------------
class OtlpJsonDocumentReader(Reader):
    """A whole-file OTLP/JSON trace document (or a few of them); see the module docstring."""

    name = "otlp_json_document"
    kind = "spans"
    sql_scripts = OtlpJsonReader.sql_scripts
    record_label = "resource"
    #: refuse (one reject) documents larger than this many decoded bytes
    max_bytes: int = MAX_DOCUMENT_BYTES

    def sniff(self, head: bytes) -> bool:
        """A document (or a few) in one of the shapes above; never Collector file-exporter lines.

        Lines are left to ``otlp_json`` so that this reader can be tried before it: a first line
        that is a complete request, or a first line that starts ``{"resourceSpans"`` and runs past
        the head (one huge request line), is not a document, unless its first id is base64 (what
        the query APIs return, as ``curl`` writes it: one line). A document on one line that runs
        past the head is recognised by how it opens (``{"batches":[``, ``{"result":{"resourceSpans":[``,
        ``{"trace":{"resourceSpans":[``) or by a ``"batches":[{"resource":`` key in it.
        """
        text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
        if not text.startswith(("{", "[")):
            return False
        first, line = first_json_line(head)
        if isinstance(first, dict) and "resourceSpans" in first:
            return ids_look_base64(line)
        if "\n" not in text.rstrip() and _LINE_REQUEST_RE.match(text):
            return ids_look_base64(text)
        dec = json.JSONDecoder()
        pos, values = 0, []
        try:
            while pos < len(text) and len(values) < 8:
                value, pos = dec.raw_decode(text, pos)
                values.append(value)
                pos = _WS_RE.match(text, pos).end()
        except (ValueError, RecursionError):
            if not values:  # cut at the end of the head: look for the structure instead
                return (bool(_API_START_RE.match(text)) or bool(_BATCHES_RE.search(text))
                        or (bool(_CONTAINER_RE.search(text)) and bool(_SCOPE_LIST_RE.search(text))))
        return bool(values) and _looks_like_traces(values[0])

    # -- reading ---------------------------------------------------------------------------------
    def _read(self, inp: Input, max_record_bytes: int | None = None) -> tuple[bytes | None, str | None]:
        """The decoded content (None when over the limit: :attr:`max_bytes`, or ``max_record_bytes`` when
        smaller) and the stream error, if any."""
        limit = self.max_bytes if max_record_bytes is None else min(self.max_bytes, max_record_bytes)
        if inp.compression is None:
            size = os.path.getsize(inp.path)
            if size > limit:
                return None, f"the document is {size} bytes, over the {limit}-byte limit for one JSON document"
        parts: list[bytes] = []
        total = 0
        error = None
        with inp.open() as f:
            while True:
                try:
                    chunk = f.read(min(1 << 20, limit + 1 - total))
                except DECODE_ERRORS as e:
                    error = f"{inp.compression or 'file'} stream is corrupt or truncated: {e}"
                    break
                if not chunk:
                    break
                parts.append(chunk)
                total += len(chunk)
                if total > limit:
                    return None, (f"the {inp.compression}-decompressed document is over the {limit}-byte "
                                  "limit for one JSON document")
        return b"".join(parts), error

    def batches(self, inp: Input, *, redaction: RedactionPolicy | None = None,
                max_record_bytes: int | None = None) -> Iterator[pa.Table]:
        buf = RecordBuffer()
        data, stream_error = self._read(inp, max_record_bytes)
        if data is None:
            buf.add(1, None, stream_error)
            yield buf.take()
            return
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            if stream_error is None or e.start < len(data) - 3:
                buf.add(1, data[max(0, e.start - 200):e.start + 200].decode("utf-8", errors="replace"),
                        f"invalid UTF-8 at byte {e.start}")
                yield buf.take()
                return
            text = data[:e.start].decode("utf-8")  # a character cut by the damage
        del data
        record_no = 0

        def emit_entries(entries: list) -> Iterator[pa.Table]:
            nonlocal record_no
            normalize_ids(entries)
            for rs in entries:
                record_no += 1
                if isinstance(rs, dict):
                    buf.add(record_no, dumps_line({"resourceSpans": [rs]}))
                else:
                    buf.add(record_no, dumps_line(rs)[:RAW_SNIPPET],
                            f"resourceSpans entry is a JSON {type(rs).__name__}, not an object")
                if buf.full:
                    yield buf.take()

        dec = json.JSONDecoder()
        pos = _WS_RE.match(text, 0).end()
        doc_no = 0
        failure: str | None = None
        while pos < len(text):
            doc_no += 1
            try:
                value, end = dec.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                kept = _salvage(text, pos)
                yield from emit_entries(kept)
                where = f"document {doc_no}: " if doc_no > 1 else ""
                failure = stream_error or f"{where}{_json_error(e)}"
                if kept:
                    failure += f" (kept the {len(kept)} resourceSpans entries before it)"
                raw = text[max(pos, e.pos - RAW_SNIPPET // 2):e.pos + RAW_SNIPPET // 2]
                break
            except RecursionError:
                failure, raw = f"document {doc_no}: invalid JSON: nested too deeply", text[pos:pos + RAW_SNIPPET]
                break
            entries, why = _entries(value)
            if why is not None:
                record_no += 1
                buf.add(record_no, text[pos:min(end, pos + RAW_SNIPPET)],
                        f"document {doc_no}: {why}" if doc_no > 1 or end < len(text.rstrip()) else why)
            else:
                yield from emit_entries(entries)
            del value, entries
            pos = _WS_RE.match(text, end).end()
        if failure is None and stream_error is not None:
            failure, raw = stream_error, text[-RAW_SNIPPET:]
        if failure is not None:
            record_no += 1
            buf.add(record_no, raw, failure)
        table = buf.take()
        if table is not None:
            yield table
