-- Scalar macros of the OTLP readers (OTLP/JSON AnyValue, KeyValue lists, span kinds and status codes).
-- Temporary: created on every connection by mcptrace.core.db.install_macros, never stored in a database.
CREATE OR REPLACE TEMP MACRO otlp_scalar(v) AS coalesce(
    v->'$.stringValue', v->'$.boolValue', try_cast(v->>'$.intValue' AS BIGINT)::JSON,
    v->'$.doubleValue', v->'$.bytesValue');
CREATE OR REPLACE TEMP MACRO otlp_value(v) AS coalesce(
    otlp_scalar(v),
    CASE WHEN json_exists(v, '$.arrayValue') THEN
         to_json(list_transform(coalesce(json_extract(v, '$.arrayValue.values[*]'), []), lambda x: otlp_scalar(x))) END,
    v->'$.kvlistValue');
CREATE OR REPLACE TEMP MACRO otlp_attrs(a) AS (
    CASE WHEN a IS NULL OR json_type(a) <> 'ARRAY' THEN '{}'::JSON ELSE
        ('{' || array_to_string(list_transform(json_extract(a, '$[*]'),
            lambda e: to_json(coalesce(e->>'$.key', '')) || ':' || coalesce(otlp_value(e->'$.value')::VARCHAR, 'null')), ',')
         || '}')::JSON
    END);
CREATE OR REPLACE TEMP MACRO otlp_attr_list(l) AS coalesce(('{' || array_to_string(list_transform(l, lambda e:
    to_json(coalesce(e.key, '')) || ':' || coalesce(
        e.value.stringValue::VARCHAR, try_cast(e.value.intValue AS BIGINT)::VARCHAR, e.value.boolValue::VARCHAR,
        e.value.doubleValue::VARCHAR, e.value.bytesValue::VARCHAR,
        CASE WHEN e.value.arrayValue IS NOT NULL THEN to_json(list_transform(
            coalesce(json_extract(e.value.arrayValue, '$.values[*]'), []), lambda x: otlp_scalar(x)))::VARCHAR END,
        e.value.kvlistValue::VARCHAR, 'null')), ',') || '}')::JSON, '{}'::JSON);
CREATE OR REPLACE TEMP MACRO otlp_kind(k) AS CASE upper(k)
    WHEN '0' THEN 'unspecified' WHEN 'SPAN_KIND_UNSPECIFIED' THEN 'unspecified'
    WHEN '1' THEN 'internal' WHEN 'SPAN_KIND_INTERNAL' THEN 'internal'
    WHEN '2' THEN 'server'   WHEN 'SPAN_KIND_SERVER' THEN 'server'
    WHEN '3' THEN 'client'   WHEN 'SPAN_KIND_CLIENT' THEN 'client'
    WHEN '4' THEN 'producer' WHEN 'SPAN_KIND_PRODUCER' THEN 'producer'
    WHEN '5' THEN 'consumer' WHEN 'SPAN_KIND_CONSUMER' THEN 'consumer'
    ELSE CASE WHEN k IS NULL THEN 'unspecified' ELSE lower(k) END END;
CREATE OR REPLACE TEMP MACRO otlp_status(c) AS CASE upper(coalesce(c, '0'))
    WHEN '0' THEN 'unset' WHEN 'STATUS_CODE_UNSET' THEN 'unset'
    WHEN '1' THEN 'ok' WHEN 'STATUS_CODE_OK' THEN 'ok'
    WHEN '2' THEN 'error' WHEN 'STATUS_CODE_ERROR' THEN 'error' ELSE lower(c) END;
CREATE OR REPLACE TEMP MACRO otlp_ts(nanos) AS make_timestamp(nanos // 1000)::TIMESTAMPTZ;
-- The first value present among the attributes a[f[1]] .. a[f[2] - 1] (a slice of the span conventions'
-- attribute list, mcptrace.core.conventions.SpanConventions.sql_variables).
CREATE OR REPLACE TEMP MACRO span_first(a, f) AS list_filter(a[f[1]:f[2] - 1], lambda x: x IS NOT NULL)[1];
-- The groups of the span conventions' name patterns that a span name matches (the variables
-- mcptrace_span_name_*, mcptrace.core.conventions.SpanConventions.sql_variables), by group position;
-- NULL when no pattern matches the whole name.
CREATE OR REPLACE TEMP MACRO span_name_groups(n) AS CASE WHEN regexp_full_match(coalesce(n, ''), getvariable('mcptrace_span_name_re'))
    THEN json_extract_string(to_json(regexp_extract(n, getvariable('mcptrace_span_name_re'), getvariable('mcptrace_span_name_groups'))),
                             getvariable('mcptrace_span_name_group_paths')) END;
