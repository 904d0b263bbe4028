"""OTLP/JSON trace dumps: OpenTelemetry Collector file exporter lines.

Each line is one ``ExportTraceServiceRequest`` in OTLP/JSON (opentelemetry-proto,
``opentelemetry/proto/collector/trace/v1``): ``resourceSpans[].scopeSpans[].spans[]``
(pre-2022 dumps: ``instrumentationLibrarySpans``). Ids are lowercase hex, 64-bit integers
decimal strings or numbers, enums integers or names. Exploded set-based in DuckDB: child
lists are extracted in their own step before each ``unnest`` (PERFORMANCE.md).

Rows: the ``spans`` table columns (README: Tables). Attributes become a JSON object
``{key: value}``; array values become JSON arrays of scalars.
"""

from __future__ import annotations

from mcptrace.ingest.readers.base import Reader, first_json_line

# DuckDB macros used by the OTLP readers; created once per connection by the loader.
MACROS = r"""
CREATE OR REPLACE MACRO otlp_scalar(v) AS coalesce(
    v->'$.stringValue', v->'$.boolValue', try_cast(v->>'$.intValue' AS BIGINT)::JSON,
    v->'$.doubleValue', v->'$.bytesValue');
CREATE OR REPLACE MACRO otlp_value(v) AS coalesce(
    otlp_scalar(v),
    CASE WHEN json_exists(v, '$.arrayValue') THEN
         to_json(list_transform(coalesce(json_extract(v, '$.arrayValue.values[*]'), []), lambda x: otlp_scalar(x))) END,
    v->'$.kvlistValue');
CREATE OR REPLACE MACRO otlp_attrs(a) AS (
    CASE WHEN a IS NULL OR json_type(a) <> 'ARRAY' THEN '{}'::JSON ELSE
        ('{' || array_to_string(list_transform(json_extract(a, '$[*]'),
            lambda e: to_json(coalesce(e->>'$.key', '')) || ':' || coalesce(otlp_value(e->'$.value')::VARCHAR, 'null')), ',')
         || '}')::JSON
    END);
CREATE OR REPLACE MACRO otlp_attr_list(l) AS coalesce(('{' || array_to_string(list_transform(l, lambda e:
    to_json(coalesce(e.key, '')) || ':' || coalesce(
        e.value.stringValue::VARCHAR, try_cast(e.value.intValue AS BIGINT)::VARCHAR, e.value.boolValue::VARCHAR,
        e.value.doubleValue::VARCHAR, e.value.bytesValue::VARCHAR,
        CASE WHEN e.value.arrayValue IS NOT NULL THEN to_json(list_transform(
            coalesce(json_extract(e.value.arrayValue, '$.values[*]'), []), lambda x: otlp_scalar(x)))::VARCHAR END,
        e.value.kvlistValue::VARCHAR, 'null')), ',') || '}')::JSON, '{}'::JSON);
CREATE OR REPLACE MACRO otlp_kind(k) AS CASE upper(k)
    WHEN '0' THEN 'unspecified' WHEN 'SPAN_KIND_UNSPECIFIED' THEN 'unspecified'
    WHEN '1' THEN 'internal' WHEN 'SPAN_KIND_INTERNAL' THEN 'internal'
    WHEN '2' THEN 'server'   WHEN 'SPAN_KIND_SERVER' THEN 'server'
    WHEN '3' THEN 'client'   WHEN 'SPAN_KIND_CLIENT' THEN 'client'
    WHEN '4' THEN 'producer' WHEN 'SPAN_KIND_PRODUCER' THEN 'producer'
    WHEN '5' THEN 'consumer' WHEN 'SPAN_KIND_CONSUMER' THEN 'consumer'
    ELSE CASE WHEN k IS NULL THEN 'unspecified' ELSE lower(k) END END;
CREATE OR REPLACE MACRO otlp_status(c) AS CASE upper(coalesce(c, '0'))
    WHEN '0' THEN 'unset' WHEN 'STATUS_CODE_UNSET' THEN 'unset'
    WHEN '1' THEN 'ok' WHEN 'STATUS_CODE_OK' THEN 'ok'
    WHEN '2' THEN 'error' WHEN 'STATUS_CODE_ERROR' THEN 'error' ELSE lower(c) END;
CREATE OR REPLACE MACRO otlp_ts(nanos) AS make_timestamp(nanos // 1000)::TIMESTAMPTZ;
"""

#: OTLP ``KeyValue[]`` typed for ``json_transform`` (one parse); ``otlp_attr_list`` makes it a JSON object
ATTR_LIST = ('[{"key":"VARCHAR","value":{"stringValue":"JSON","intValue":"VARCHAR","boolValue":"JSON",'
             '"doubleValue":"JSON","bytesValue":"JSON","arrayValue":"JSON","kvlistValue":"JSON"}}]')
SPAN_STRUCT = (
    '{"traceId":"VARCHAR","spanId":"VARCHAR","parentSpanId":"VARCHAR","name":"VARCHAR","kind":"VARCHAR",'
    '"startTimeUnixNano":"VARCHAR","endTimeUnixNano":"VARCHAR","attributes":' + ATTR_LIST + ',"events":"JSON",'
    '"links":"JSON","status":{"code":"VARCHAR","message":"VARCHAR"}}'
)
#: a whole ExportTraceServiceRequest typed for one ``json_transform``: every line is parsed once
#: (PERFORMANCE.md's explode parses each level again); pre-2022 names kept beside the new ones
REQUEST_STRUCT = (
    '{"resourceSpans":[{"resource":{"attributes":' + ATTR_LIST + '},'
    '"scopeSpans":[{"scope":{"name":"VARCHAR"},"spans":[' + SPAN_STRUCT + ']}],'
    '"instrumentationLibrarySpans":[{"instrumentationLibrary":{"name":"VARCHAR"},"spans":[' + SPAN_STRUCT + ']}]}]}'
)

# Turns ``sp(record_no, rattrs JSON, scope_name, s STRUCT)`` into span rows; ``rattrs`` is the
# resource's attributes already as a JSON object (converted once per resource, not per span).
SPAN_ROWS_SQL = """
v AS (
    SELECT record_no, scope_name, s, rattrs,
           lower(s.traceId) AS trace_id, lower(s.spanId) AS span_id,
           nullif(lower(s.parentSpanId), '') AS parent_span_id,
           try_cast(s.startTimeUnixNano AS BIGINT) AS start_ns, try_cast(s.endTimeUnixNano AS BIGINT) AS end_ns,
           otlp_attr_list(s.attributes) AS attrs
    FROM sp
), w AS (
    SELECT *, json_extract_string(attrs, ['$."mcp.method.name"', '$."jsonrpc.request.id"', '$."mcp.request.id"',
                                          '$."gen_ai.tool.name"', '$."mcp.tool.name"', '$."mcp.session.id"']) AS a
    FROM v
)
SELECT * EXCLUDE (s), CASE WHEN reject_reason IS NOT NULL THEN to_json(s)::VARCHAR END AS raw FROM (
SELECT record_no, s,
       trace_id, span_id, parent_span_id, s.name AS name, otlp_kind(s.kind) AS kind,
       rattrs->>'$."service.name"' AS service_name,
       otlp_ts(start_ns) AS start_ts, otlp_ts(end_ns) AS end_ts,
       (end_ns - start_ns) / 1e6 AS duration_ms,
       otlp_status(s.status.code) AS status_code, s.status.message AS status_message,
       attrs AS attributes, rattrs AS resource_attributes,
       CASE WHEN s.events IS NULL THEN '[]'::JSON ELSE
       to_json(list_transform(coalesce(json_extract(s.events, '$[*]'), []), lambda e: struct_pack(
           name := e->>'$.name', time_unix_nano := try_cast(e->>'$.timeUnixNano' AS BIGINT),
           attributes := otlp_attrs(e->'$.attributes')))) END AS events,
       CASE WHEN s.links IS NULL THEN '[]'::JSON ELSE
       to_json(list_transform(coalesce(json_extract(s.links, '$[*]'), []), lambda l: struct_pack(
           trace_id := lower(l->>'$.traceId'), span_id := lower(l->>'$.spanId'),
           attributes := otlp_attrs(l->'$.attributes')))) END AS links,
       a[1] AS mcp_method_name,
       coalesce(a[2], a[3]) AS jsonrpc_request_id,
       coalesce(a[4], a[5]) AS gen_ai_tool_name,
       a[6] AS mcp_session_id,
       scope_name, start_ns AS start_unix_nano, end_ns AS end_unix_nano,
       CASE
         WHEN NOT regexp_full_match(coalesce(trace_id, ''), '[0-9a-f]{32}') OR trace_id = repeat('0', 32)
              THEN 'span traceId is not 32 hex digits: ' || coalesce(left(s.traceId, 40), 'missing')
         WHEN NOT regexp_full_match(coalesce(span_id, ''), '[0-9a-f]{16}') OR span_id = repeat('0', 16)
              THEN 'span spanId is not 16 hex digits: ' || coalesce(left(s.spanId, 40), 'missing')
         WHEN parent_span_id IS NOT NULL AND NOT regexp_full_match(parent_span_id, '[0-9a-f]{16}')
              THEN 'span parentSpanId is not 16 hex digits: ' || left(s.parentSpanId, 40)
         WHEN start_ns IS NULL THEN 'span startTimeUnixNano is missing or not an integer'
       END AS reject_reason
FROM w)
"""

_SQL = f"""
WITH req AS MATERIALIZED (
    SELECT record_no, line, decode_error,
           CASE WHEN decode_error IS NULL THEN try(json_transform(line, '{REQUEST_STRUCT}')) END AS r
    FROM _lines
), rs AS (
    SELECT record_no, unnest(r.resourceSpans) AS rs FROM req WHERE len(r.resourceSpans) > 0
), rs2 AS MATERIALIZED (
    SELECT record_no, otlp_attr_list(rs.resource.attributes) AS rattrs, rs.scopeSpans AS ss_list,
           rs.instrumentationLibrarySpans AS ils_list
    FROM rs
), ss AS (
    SELECT record_no, rattrs, unnest(ss_list) AS ss FROM rs2 WHERE ss_list IS NOT NULL
), ils AS (
    SELECT record_no, rattrs, unnest(ils_list) AS ss FROM rs2 WHERE ss_list IS NULL AND ils_list IS NOT NULL
), sp AS (
    SELECT record_no, rattrs, ss.scope.name AS scope_name, unnest(ss.spans) AS s FROM ss
    UNION ALL
    SELECT record_no, rattrs, ss.instrumentationLibrary.name AS scope_name, unnest(ss.spans) AS s FROM ils
), {SPAN_ROWS_SQL}
UNION ALL BY NAME
SELECT record_no, 'resourceSpans entry has neither scopeSpans nor instrumentationLibrarySpans' AS reject_reason,
       NULL AS raw
FROM rs2 WHERE ss_list IS NULL AND ils_list IS NULL
UNION ALL BY NAME
SELECT record_no,
       CASE WHEN decode_error IS NOT NULL THEN decode_error
            WHEN NOT json_valid(line) THEN 'invalid JSON'
            ELSE 'not an OTLP ExportTraceServiceRequest (no resourceSpans array)' END AS reject_reason,
       line AS raw
FROM req WHERE r IS NULL OR r.resourceSpans IS NULL
"""


class OtlpJsonReader(Reader):
    name = "otlp_json"
    kind = "spans"
    sql = _SQL

    def sniff(self, head: bytes) -> bool:
        value, text = first_json_line(head)
        if isinstance(value, dict):
            return "resourceSpans" in value
        return text.startswith("{") and '"resourceSpans"' in text[:200]
