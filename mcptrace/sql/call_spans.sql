-- Spans of each call (DESIGN §4, §5), with how each was matched:
--   client      the span named by the traceparent's parent-id (matched_by 'parent')
--   server      a SERVER span whose parent is that client span ('parent'); else, for servers
--               that did not extract the context, a SERVER span linking to it ('link') or one
--               whose jsonrpc.request.id + mcp.method.name (+ gen_ai.tool.name) match within the
--               call's time window ('attributes', nearest start wins, one span per call)
--   downstream  descendants of the server span ('parent'), and roots of other services that
--               start inside a leaf CLIENT span of the server span, when only one call explains
--               them ('time_window'), with their descendants
-- Parameter: $window_ms (DOUBLE), slack around the call's interval for attribute matching.

CREATE OR REPLACE TEMP TABLE _cs_client AS
SELECT DISTINCT c.call_id, s.span_id, s.trace_id
FROM calls c JOIN spans s ON s.trace_id = c.trace_id AND s.span_id = c.parent_span_id;

CREATE OR REPLACE TEMP TABLE _cs_server_parent AS
SELECT c.call_id, s.span_id, s.trace_id, 'parent' AS matched_by, NULL::JSON AS evidence
FROM calls c JOIN spans s ON s.trace_id = c.trace_id AND s.parent_span_id = c.parent_span_id
WHERE s.kind = 'server';

CREATE OR REPLACE TEMP TABLE _cs_server_link AS
WITH l AS (
    SELECT trace_id, span_id, unnest(json_extract(links, '$[*]')) AS link
    FROM spans WHERE kind = 'server' AND json_array_length(links) > 0
)
SELECT c.call_id, l.span_id, l.trace_id, 'link' AS matched_by,
       json_object('link', l.link, 'expected_trace_id', c.trace_id, 'server_span_trace_id', l.trace_id) AS evidence
FROM calls c JOIN l ON l.link->>'$.trace_id' = c.trace_id AND l.link->>'$.span_id' = c.parent_span_id
ANTI JOIN _cs_server_parent p ON p.call_id = c.call_id;

CREATE OR REPLACE TEMP TABLE _cs_server_attr AS
WITH taken AS (
    SELECT call_id, span_id, trace_id FROM _cs_server_parent
    UNION ALL SELECT call_id, span_id, trace_id FROM _cs_server_link
), open_calls AS (
    SELECT c.* FROM calls c ANTI JOIN taken t ON t.call_id = c.call_id
    WHERE c.start_ts IS NOT NULL AND c.rpc_id IS NOT NULL
), free_spans AS (
    SELECT s.* FROM spans s ANTI JOIN taken t ON t.span_id = s.span_id AND t.trace_id = s.trace_id
    WHERE s.kind = 'server' AND s.jsonrpc_request_id IS NOT NULL
), cand AS (
    SELECT c.call_id, s.span_id, s.trace_id,
           abs(date_diff('microsecond', c.start_ts, s.start_ts)) AS dist,
           list_filter(['jsonrpc.request.id', 'mcp.method.name',
                        CASE WHEN c.tool_name IS NOT NULL THEN 'gen_ai.tool.name' END], lambda x: x IS NOT NULL) AS matched_on,
           c.trace_id AS expected_trace_id
    FROM open_calls c JOIN free_spans s
      ON s.jsonrpc_request_id = coalesce((c.rpc_id::JSON)->>'$', c.rpc_id)
     AND s.mcp_method_name = c.method
     AND (c.tool_name IS NULL OR s.gen_ai_tool_name IS NULL OR s.gen_ai_tool_name = c.tool_name)
     AND s.start_ts >= c.start_ts - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
     AND s.start_ts <= coalesce(c.end_ts, c.start_ts + INTERVAL 1 HOUR) + to_microseconds(CAST($window_ms * 1000 AS BIGINT))
), best AS (
    SELECT *, row_number() OVER (PARTITION BY call_id ORDER BY dist, span_id) AS r_call,
              row_number() OVER (PARTITION BY span_id, trace_id ORDER BY dist, call_id) AS r_span
    FROM cand
)
SELECT call_id, span_id, trace_id, 'attributes' AS matched_by,
       json_object('matched_on', matched_on, 'expected_trace_id', expected_trace_id,
                   'server_span_trace_id', trace_id, 'start_offset_ms', dist / 1000.0) AS evidence
FROM best WHERE r_call = 1 AND r_span = 1;

CREATE OR REPLACE TEMP TABLE _cs_server AS
SELECT * FROM _cs_server_parent UNION ALL SELECT * FROM _cs_server_link UNION ALL SELECT * FROM _cs_server_attr;

-- roots of other services explained only by one call: they start inside a CLIENT span that
-- descends from the call's server span and has no children in the dump
CREATE OR REPLACE TEMP TABLE _cs_down_parent AS
WITH RECURSIVE down(call_id, span_id, trace_id) AS (
    SELECT call_id, span_id, trace_id FROM _cs_server
    UNION
    SELECT d.call_id, s.span_id, s.trace_id
    FROM down d JOIN spans s ON s.trace_id = d.trace_id AND s.parent_span_id = d.span_id
)
SELECT d.* FROM down d ANTI JOIN _cs_server s ON s.call_id = d.call_id AND s.span_id = d.span_id;

CREATE OR REPLACE TEMP TABLE _cs_down_window AS
WITH leaf_clients AS (
    SELECT d.call_id, s.span_id, s.trace_id, s.start_ts, s.end_ts, s.service_name, s.name
    FROM _cs_down_parent d JOIN spans s ON s.span_id = d.span_id AND s.trace_id = d.trace_id
    WHERE s.kind = 'client'
      AND NOT EXISTS (SELECT 1 FROM spans k WHERE k.trace_id = s.trace_id AND k.parent_span_id = s.span_id)
), roots AS (
    SELECT * FROM spans r
    WHERE r.parent_span_id IS NULL AND r.kind IN ('server', 'consumer')
      AND NOT EXISTS (SELECT 1 FROM _cs_server x WHERE x.span_id = r.span_id AND x.trace_id = r.trace_id)
), cand AS (
    SELECT lc.call_id, r.span_id, r.trace_id, lc.span_id AS via_span_id, lc.trace_id AS via_trace_id,
           lc.name AS via_name, r.service_name, r.name,
           count(*) OVER (PARTITION BY r.span_id, r.trace_id) AS n_explanations
    FROM roots r JOIN leaf_clients lc
      ON r.start_ts >= lc.start_ts AND r.start_ts <= lc.end_ts AND r.service_name IS DISTINCT FROM lc.service_name
)
SELECT call_id, span_id, trace_id,
       json_object('client_span_id', via_span_id, 'client_span_trace_id', via_trace_id, 'client_span_name', via_name,
                   'downstream_service', service_name, 'downstream_span_name', name,
                   'downstream_trace_id', trace_id) AS evidence
FROM cand WHERE n_explanations = 1;

CREATE OR REPLACE TABLE call_spans AS
WITH RECURSIVE win_down(call_id, span_id, trace_id) AS (
    SELECT call_id, span_id, trace_id FROM _cs_down_window
    UNION
    SELECT d.call_id, s.span_id, s.trace_id
    FROM win_down d JOIN spans s ON s.trace_id = d.trace_id AND s.parent_span_id = d.span_id
)
SELECT call_id, span_id, trace_id, 'client' AS role, 'parent' AS matched_by, NULL::VARCHAR AS via_span_id FROM _cs_client
UNION ALL SELECT call_id, span_id, trace_id, 'server', matched_by, NULL FROM _cs_server
UNION ALL SELECT call_id, span_id, trace_id, 'downstream', 'parent', NULL FROM _cs_down_parent
UNION ALL SELECT d.call_id, d.span_id, d.trace_id, 'downstream', 'time_window', w.evidence->>'$.client_span_id'
FROM win_down d LEFT JOIN _cs_down_window w ON w.call_id = d.call_id AND w.span_id = d.span_id AND w.trace_id = d.trace_id;
