"""OTLP/JSON trace dumps: OpenTelemetry Collector file exporter lines.

Each line is one ``ExportTraceServiceRequest`` in OTLP/JSON (opentelemetry-proto,
``opentelemetry/proto/collector/trace/v1``): ``resourceSpans[].scopeSpans[].spans[]``
(pre-2022 dumps: ``instrumentationLibrarySpans``). Ids are lowercase hex, 64-bit integers
decimal strings or numbers, enums integers or names. Exploded set-based in DuckDB
(``sql/read_otlp_json.sql``): child lists are extracted in their own step before each ``unnest``.

Rows: the ``spans`` table columns (README: Tables). Attributes become a JSON object
``{key: value}``; array values become JSON arrays of scalars.
"""

from __future__ import annotations

from mcptrace.ingest.readers.base import Reader, first_json_line


#: OTLP ``KeyValue[]`` typed for ``json_transform`` (one parse); ``otlp_attr_list`` makes it a JSON object
ATTR_LIST = ('[{"key":"VARCHAR","value":{"stringValue":"JSON","intValue":"VARCHAR","boolValue":"JSON",'
             '"doubleValue":"JSON","bytesValue":"JSON","arrayValue":"JSON","kvlistValue":"JSON"}}]')
class OtlpJsonReader(Reader):
    name = "otlp_json"
    kind = "spans"
    sql_scripts = ("read_otlp_json.sql",)

    def sniff(self, head: bytes) -> bool:
        value, text = first_json_line(head)
        if isinstance(value, dict):
            return "resourceSpans" in value
        return text.startswith("{") and '"resourceSpans"' in text[:200]
