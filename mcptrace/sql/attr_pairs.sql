-- Candidate pairs of the attribute join (call_spans.sql): a call and a server span of its method (its
-- request id when the span has one, its tool when both name one; a span whose instrumentation records no
-- request id matches on method, tool (required when the call has one) and the MCP session id when both
-- carry one) that starts from $window_ms before the request to $window_ms after the response, at most an
-- hour after the request; with what ranks them (inside, by_id, dist: the one-to-one order) and what
-- matched. Over the views _ap_calls (calls rows) and _ap_spans (spans rows): the calls and spans no exact
-- join took (call_spans.sql), or an append's scope and what lies around it (mcptrace.analysis.incremental).
-- Parameter: $window_ms (DOUBLE).
CREATE OR REPLACE TEMP TABLE _attr_pairs AS
WITH c AS (
    -- each call lists the buckets its window covers, so spans of other times never meet it (ids, methods
    -- and tools repeat in every session): 10 s buckets, or 10 min ones for a window over 2 min (a call
    -- nothing answered reaches an hour: 6-7 buckets, not 360)
    SELECT *, CASE WHEN hi_us - lo_us > 120000000 THEN 600000000 ELSE 10000000 END AS width,
           unnest(range(lo_us // width, hi_us // width + 1)) AS bucket
    FROM (SELECT *, coalesce((rpc_id::JSON)->>'$', rpc_id) AS rpc_text,
                 epoch_us(start_ts - to_microseconds(CAST($window_ms * 1000 AS BIGINT))) AS lo_us,
                 epoch_us(least(coalesce(end_ts, start_ts + INTERVAL 1 HOUR), start_ts + INTERVAL 1 HOUR)
                          + to_microseconds(CAST($window_ms * 1000 AS BIGINT))) AS hi_us
          FROM _ap_calls WHERE start_ts IS NOT NULL AND rpc_id IS NOT NULL)
), s AS (
    -- each span in its bucket of either width
    SELECT *, unnest([10000000, 600000000]) AS width, epoch_us(start_ts) // width AS bucket FROM _ap_spans
    WHERE mcp_side = 'server' AND mcp_method_name IS NOT NULL
), pairs AS (
    -- an equi-join on (id, method, bucket) for spans with a request id
    SELECT c.call_id, c.start_ts AS c_start, c.end_ts AS c_end, c.tool_name AS c_tool, c.trace_id AS c_trace,
           c.lo_us, c.hi_us, s.span_id, s.trace_id, s.start_ts AS s_start, s.end_ts AS s_end, true AS by_id,
           false AS by_session
    FROM c JOIN s ON s.jsonrpc_request_id = c.rpc_text AND s.mcp_method_name = c.method
                 AND s.width = c.width AND s.bucket = c.bucket
    WHERE (c.tool_name IS NULL OR s.gen_ai_tool_name IS NULL OR s.gen_ai_tool_name = c.tool_name)
    UNION ALL
    -- spans whose instrumentation records no request id (FastMCP, agentgateway, OpenLLMetry): method,
    -- tool (required when the call has one) and, when both carry it, the MCP session id
    SELECT c.call_id, c.start_ts, c.end_ts, c.tool_name, c.trace_id, c.lo_us, c.hi_us, s.span_id, s.trace_id,
           s.start_ts, s.end_ts, false, c.mcp_session_id IS NOT NULL AND s.mcp_session_id IS NOT NULL
    FROM c JOIN s ON s.jsonrpc_request_id IS NULL AND s.mcp_method_name = c.method
                 AND s.width = c.width AND s.bucket = c.bucket
    WHERE (c.tool_name IS NULL OR s.gen_ai_tool_name = c.tool_name)
      AND (c.mcp_session_id IS NULL OR s.mcp_session_id IS NULL OR s.mcp_session_id = c.mcp_session_id)
)
SELECT call_id, span_id, trace_id, by_id,
       s_start >= c_start - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
           AND c_end IS NOT NULL
           AND s_end <= c_end + to_microseconds(CAST($window_ms * 1000 AS BIGINT)) AS inside,
       abs(date_diff('microsecond', c_start, s_start)) + coalesce(abs(date_diff('microsecond', s_end, c_end)), 0) AS dist,
       abs(date_diff('microsecond', c_start, s_start)) AS start_dist,
       list_filter([CASE WHEN by_id THEN 'jsonrpc.request.id' END, 'mcp.method.name',
                    CASE WHEN c_tool IS NOT NULL THEN 'gen_ai.tool.name' END,
                    CASE WHEN by_session THEN 'mcp.session.id' END], lambda x: x IS NOT NULL) AS matched_on,
       c_trace AS expected_trace_id
FROM pairs
WHERE epoch_us(s_start) BETWEEN lo_us AND hi_us;

