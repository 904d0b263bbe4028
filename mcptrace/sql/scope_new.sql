-- The records a load added (mcptrace.analysis.incremental): messages after $max_message_id (BIGINT);
-- spans and HTTP events of the sources in _grown(source_id, from_record): a file loaded by this load
-- (from record 1), or a followed file from the line it had reached.
CREATE OR REPLACE TEMP TABLE _new_msg AS
SELECT message_id, ts, coalesce(mcp_session_id, connection_id) AS scope, exchange_id, session_key,
       session_key_source, call_key, trace_id,
       CASE WHEN w3c_traceparent_valid(http_traceparent) THEN substr(http_traceparent, 4, 32) END AS h_trace
FROM messages WHERE message_id > $max_message_id;

-- the new spans, read by source (the scan skips the row groups of other sources; a join on the spans' keys
-- would read every row's), with what the scope's rules read of them
CREATE OR REPLACE TEMP TABLE _new_span AS
SELECT s.trace_id, s.span_id, s.start_ts, s.end_ts, s.conversation_id, s.tool_call_id, s.kind, s.service_name,
       s.mcp_side, s.mcp_method_name, s.jsonrpc_request_id, s.gen_ai_tool_name,
       CASE WHEN s.mcp_side = 'server' AND json_array_length(s.links) > 0
            THEN json_extract_string(s.links, '$[*].trace_id') END AS link_traces
FROM spans s JOIN _grown g ON g.source_id = s.source_id AND (g.from_record = 1 OR s.record_no >= g.from_record);

CREATE OR REPLACE TEMP TABLE _new_event AS
SELECT e.ts, coalesce(e.mcp_session_id, e.connection_id) AS scope, e.exchange_id
FROM http_events e JOIN _grown g ON g.source_id = e.source_id AND e.record_no >= g.from_record;
