-- OTLP/JSON ExportTraceServiceRequest records (Collector file exporter lines; the document and protobuf
-- readers hand their records over in the same form) as span rows, or rejects with their reason.
-- Created when a file of that format starts loading, after the loader registered the relation
-- _lines(record_no, line, decode_error) and set the variable mcptrace_connection_id (the default
-- connection id from the file name) and the span conventions' variables mcptrace_span_*
-- (mcptrace.core.conventions.SpanConventions.sql_variables). Temporary: it lives with the connection.
--
-- A request is parsed with each span kept as JSON text and each span is typed after the unnest, so
-- memory follows the spans in flight, not the spans of a record: one line of 3M empty spans typed
-- whole takes gigabytes of struct vectors. A rejected span's raw text is the span as it came.
--
-- The name patterns are matched once for each frequent span name of a batch (span names repeat: a method
-- and a tool, a route), not once for each span: spans_stage.sql sets the variable
-- mcptrace_span_name_cache from the batch's lines before the batch is staged; a name it does not hold
-- (a rare one, another layout, a name that is not a string) is matched where the span is typed.
SET VARIABLE mcptrace_span_name_cache = NULL::MAP(VARCHAR, VARCHAR[]);

CREATE OR REPLACE TEMP VIEW _batch_out AS
WITH req AS MATERIALIZED (
    SELECT record_no, line, decode_error,
           CASE WHEN decode_error IS NULL THEN try(json_transform(line, '{"resourceSpans":[{"resource":{"attributes":[{"key":"VARCHAR","value":{"stringValue":"JSON","intValue":"VARCHAR","boolValue":"JSON","doubleValue":"JSON","bytesValue":"JSON","arrayValue":"JSON","kvlistValue":"JSON"}}]},"scopeSpans":[{"scope":{"name":"VARCHAR"},"spans":["JSON"]}],"instrumentationLibrarySpans":[{"instrumentationLibrary":{"name":"VARCHAR"},"spans":["JSON"]}]}]}')) END AS r
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
    SELECT record_no, rattrs, ss.scope.name AS scope_name, unnest(ss.spans) AS sj FROM ss
    UNION ALL
    SELECT record_no, rattrs, ss.instrumentationLibrary.name AS scope_name, unnest(ss.spans) AS sj FROM ils
), sp2 AS (
    SELECT record_no, rattrs, scope_name, sj, json_transform(sj, '{"traceId":"VARCHAR","spanId":"VARCHAR","parentSpanId":"VARCHAR","name":"VARCHAR","kind":"VARCHAR","startTimeUnixNano":"VARCHAR","endTimeUnixNano":"VARCHAR","attributes":[{"key":"VARCHAR","value":{"stringValue":"JSON","intValue":"VARCHAR","boolValue":"JSON","doubleValue":"JSON","bytesValue":"JSON","arrayValue":"JSON","kvlistValue":"JSON"}}],"events":"JSON","links":"JSON","status":{"code":"VARCHAR","message":"VARCHAR"}}') AS s FROM sp
),
v AS (
    SELECT record_no, scope_name, s, sj, rattrs,
           lower(s.traceId) AS trace_id, lower(s.spanId) AS span_id,
           nullif(lower(s.parentSpanId), '') AS parent_span_id,
           try_cast(s.startTimeUnixNano AS HUGEINT) AS start_h, try_cast(s.endTimeUnixNano AS BIGINT) AS end_ns,
           otlp_attr_list(s.attributes) AS attrs, s.name AS sname
    FROM sp2
), vr AS (
    -- startTimeUnixNano is a fixed64 (0 .. 2^64-1); a start outside the loader's accepted range
    -- (the variables mcptrace_ts_min / mcptrace_ts_max, default 1970 .. 2200) is a reject
    SELECT *, start_h BETWEEN 0 AND 18446744073709551615 AS start_u64,
           start_h // 1000 BETWEEN epoch_us(coalesce(getvariable('mcptrace_ts_min'), TIMESTAMPTZ '1970-01-01 00:00:00+00'))
                               AND epoch_us(coalesce(getvariable('mcptrace_ts_max'), TIMESTAMPTZ '2200-01-01 00:00:00+00'))
               AS start_ok
    FROM v
), vs AS (
    SELECT * EXCLUDE (start_h), CASE WHEN start_ok THEN start_h::BIGINT END AS start_ns, start_h FROM vr
), w0 AS (
    -- the span conventions (mcptrace.core.conventions.SpanConventions.sql_variables): every attribute
    -- read in one json_extract_string; the name patterns as one alternation, matched once
    SELECT *, json_extract_string(attrs, getvariable('mcptrace_span_attr_paths')) AS a,
           CASE WHEN map_contains(getvariable('mcptrace_span_name_cache'), sname)
                THEN getvariable('mcptrace_span_name_cache')[sname] ELSE span_name_groups(sname) END AS g
    FROM vs
), w1 AS (
    -- the pattern that matched (first alternative with its group set) and whose required attributes hold
    SELECT *, CASE WHEN g IS NOT NULL THEN getvariable('mcptrace_span_name_alts')[list_position(
               list_transform(getvariable('mcptrace_span_name_alts'), lambda p: g[p.p] <> '' AND
                   len(list_filter(range(1, len(p.req_pos) + 1), lambda k: a[p.req_pos[k]] IS NULL
                       OR (p.req_val[k] IS NOT NULL AND a[p.req_pos[k]] <> p.req_val[k]))) = 0), true)] END AS alt
    FROM w0
), w2 AS (
    SELECT *, CASE WHEN alt.j > 0 AND json_valid(a[alt.j])
                   THEN json_extract_string(a[alt.j], getvariable('mcptrace_span_json_paths')) END AS j,
           list_filter(a[getvariable('mcptrace_span_fields').m[1]:getvariable('mcptrace_span_fields').m[2] - 1],
                       lambda x: x IS NOT NULL)[1] AS a_method
    FROM w1
), w AS (
    SELECT *, coalesce(a_method, j[2], nullif(g[alt.m], ''), alt.method) AS f_method,
           CASE otlp_kind(s.kind) WHEN 'server' THEN 'server' WHEN 'client' THEN 'client' END AS kind_side
    FROM w2
)
SELECT * EXCLUDE (s, sj), CASE WHEN reject_reason IS NOT NULL THEN sj::VARCHAR END AS raw FROM (
SELECT record_no, s, sj,
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
       f_method AS mcp_method_name,
       -- an id as the wire carried it: unwrapped from {id} (Go's %v), an integral float (1.0) as its integer
       regexp_replace(coalesce(nullif(regexp_extract(coalesce(span_first(a, getvariable('mcptrace_span_fields').r), j[1]),
                                                     getvariable('mcptrace_span_id_wrapper'), 1), ''),
                               span_first(a, getvariable('mcptrace_span_fields').r), j[1]),
                      '^(-?[0-9]+)\.0+$', '\1') AS jsonrpc_request_id,
       regexp_replace(coalesce(span_first(a, getvariable('mcptrace_span_fields').t),
                               CASE WHEN f_method = 'tools/call' OR alt.side = 'host' THEN coalesce(j[3], nullif(g[alt.t], '')) END),
                      getvariable('mcptrace_span_tool_prefix'), '') AS gen_ai_tool_name,
       span_first(a, getvariable('mcptrace_span_fields').s) AS mcp_session_id,
       -- the side: a name pattern's (an execute_tool span the MCP SDK wrote its client attributes on, as the
       -- C# SDK does, is the client side); the kind of an MCP span; an attribute rule; the kind
       coalesce(CASE WHEN alt.side = 'host' AND a_method IS NOT NULL THEN 'client' END, alt.side,
                CASE WHEN f_method IS NOT NULL THEN kind_side END,
                getvariable('mcptrace_span_side')[list_position(list_transform(
                    range(1, len(getvariable('mcptrace_span_side_pos')) + 1),
                    lambda k: a[getvariable('mcptrace_span_side_pos')[k]] = getvariable('mcptrace_span_side_val')[k]), true)],
                kind_side) AS mcp_side,
       span_first(a, getvariable('mcptrace_span_fields').c) AS conversation_id,
       span_first(a, getvariable('mcptrace_span_fields').u) AS turn_id,
       span_first(a, getvariable('mcptrace_span_fields').k) AS tool_call_id,
       regexp_replace(span_first(a, getvariable('mcptrace_span_fields').n), getvariable('mcptrace_span_server_suffix'), '')
           AS mcp_server_name,
       scope_name, start_ns AS start_unix_nano, end_ns AS end_unix_nano,
       CASE
         WHEN sj IS NULL OR json_type(sj) <> 'OBJECT' THEN 'span is not a JSON object: ' || coalesce(left(sj, 40), 'null')
         WHEN NOT regexp_full_match(coalesce(trace_id, ''), '[0-9a-f]{32}') OR trace_id = repeat('0', 32)
              THEN 'span traceId is not 32 hex digits: ' || coalesce(left(s.traceId, 40), 'missing')
         WHEN NOT regexp_full_match(coalesce(span_id, ''), '[0-9a-f]{16}') OR span_id = repeat('0', 16)
              THEN 'span spanId is not 16 hex digits: ' || coalesce(left(s.spanId, 40), 'missing')
         WHEN parent_span_id IS NOT NULL AND NOT regexp_full_match(parent_span_id, '[0-9a-f]{16}')
              THEN 'span parentSpanId is not 16 hex digits: ' || left(s.parentSpanId, 40)
         WHEN start_h IS NULL THEN 'span startTimeUnixNano is missing or not an integer'
         WHEN NOT start_u64 THEN 'span startTimeUnixNano is out of range (a fixed64: 0 to 18446744073709551615): '
              || left(s.startTimeUnixNano, 40)
         WHEN NOT start_ok THEN 'span startTimeUnixNano ' || s.startTimeUnixNano || ' is outside the accepted time range ('
              || strftime(coalesce(getvariable('mcptrace_ts_min'), TIMESTAMPTZ '1970-01-01 00:00:00+00'), '%Y-%m-%dT%H:%M:%SZ') || ' to '
              || strftime(coalesce(getvariable('mcptrace_ts_max'), TIMESTAMPTZ '2200-01-01 00:00:00+00'), '%Y-%m-%dT%H:%M:%SZ') || ')'
       END AS reject_reason
FROM w)

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
FROM req WHERE r IS NULL OR r.resourceSpans IS NULL;
