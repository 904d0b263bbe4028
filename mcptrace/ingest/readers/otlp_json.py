"""OTLP/JSON trace dumps: OpenTelemetry Collector file exporter lines.

Each line is one ``ExportTraceServiceRequest`` in OTLP/JSON (opentelemetry-proto,
``opentelemetry/proto/collector/trace/v1``): ``resourceSpans[].scopeSpans[].spans[]``
(pre-2022 dumps: ``instrumentationLibrarySpans``). Ids are lowercase hex, 64-bit integers
decimal strings or numbers, enums integers or names. Exploded set-based in DuckDB
(``sql/read_otlp_json.sql``): child lists are extracted in their own step before each ``unnest``,
and each span is typed after its ``unnest`` (memory follows the spans in flight, not a record's).

Rows: the ``spans`` table columns (README: Tables). Attributes become a JSON object
``{key: value}``; array values become JSON arrays of scalars.
"""

from __future__ import annotations

import base64
import binascii
import re

from mcptrace.ingest.readers.base import Reader, first_json_line

# the first trace or span id of a head, as a key (not inside a string: a quote there is escaped)
_FIRST_ID_RE = re.compile(r'(?<!\\)"(traceId|spanId)"\s*:\s*"([^"\\]*)"')
_ID_BYTES = {"traceId": 16, "spanId": 8}
_HEX_RE = re.compile(r"[0-9a-fA-F]+")


#: OTLP ``KeyValue[]`` typed for ``json_transform`` (one parse); ``otlp_attr_list`` makes it a JSON object
ATTR_LIST = ('[{"key":"VARCHAR","value":{"stringValue":"JSON","intValue":"VARCHAR","boolValue":"JSON",'
             '"doubleValue":"JSON","bytesValue":"JSON","arrayValue":"JSON","kvlistValue":"JSON"}}]')


def ids_look_base64(text: str) -> bool:
    """Whether the first ``traceId``/``spanId`` of ``text`` (a head of OTLP/JSON) is base64, not hex.

    Collector file-exporter lines carry hex ids (OTLP/JSON); the query APIs (Tempo, Jaeger) and
    protobuf-JSON dumps carry base64 (standard or URL-safe alphabet, padded or not) of 16 / 8 bytes.
    ``False`` when no id is found in ``text``, or the first one is hex or neither (a bad id).
    """
    m = _FIRST_ID_RE.search(text)
    if m is None:
        return False
    value, n_bytes = m.group(2), _ID_BYTES[m.group(1)]
    if len(value) == 2 * n_bytes and _HEX_RE.fullmatch(value):
        return False
    padded = value.replace("-", "+").replace("_", "/")
    padded += "=" * (-len(padded) % 4)
    try:
        return len(base64.b64decode(padded, validate=True)) == n_bytes
    except (binascii.Error, ValueError):
        return False


class OtlpJsonReader(Reader):
    name = "otlp_json"
    kind = "spans"
    sql_scripts = ("read_otlp_json.sql",)

    def sniff(self, head: bytes) -> bool:
        """A first line that is an ``ExportTraceServiceRequest`` (``resourceSpans``) with hex ids.

        A request line whose ids are base64 is a query API's document (``otlp_json_document``).
        """
        value, text = first_json_line(head)
        if isinstance(value, dict):
            return "resourceSpans" in value and not ids_look_base64(text)
        return text.startswith("{") and '"resourceSpans"' in text[:200] and not ids_look_base64(text)
