-- Keys the host recorded on spans rather than in _meta (README: How the correlation works), read from
-- the call's client span (the span its traceparent names) and that span's ancestors, nearest first, and
-- written into calls where the request carried none. All exact: the trace context names the spans.
--   session key   the nearest spans.conversation_id, else the one conversation id of the call's trace
--                 (request_session_key_source 'spans.conversation_id')
--   tool-call id  the nearest spans.tool_call_id up to the host's tool span (call_key_source 'spans.tool_call_id')
--   turn          the nearest spans.turn_id (calls.span_turn_id)
--   host span     the nearest span the conventions call the host's tool execution (spans.mcp_side 'host',
--                 calls.host_span_id) and its parent (calls.host_parent_span_id)
-- Ancestors are followed up to the server side of another call (a server's request to the client,
-- sampling/createMessage, belongs to the server's work, not to the host's tool call above it) and at
-- most 32 levels (a hostile dump may hold a cycle of parents).

-- (with no span there is nothing to read: the calls keep what calls.sql gave them)
IF ROWS IN spans;
CREATE OR REPLACE TEMP TABLE _keyed_traces AS
SELECT DISTINCT trace_id FROM spans
WHERE conversation_id IS NOT NULL OR turn_id IS NOT NULL OR tool_call_id IS NOT NULL OR mcp_side = 'host';

CREATE OR REPLACE TEMP TABLE _call_anc AS
WITH RECURSIVE up(call_id, trace_id, span_id, depth) AS (
    SELECT c.call_id, c.trace_id, c.parent_span_id, 0
    FROM calls c SEMI JOIN _keyed_traces k ON k.trace_id = c.trace_id
    WHERE c.parent_span_id IS NOT NULL
    UNION ALL
    SELECT up.call_id, up.trace_id, s.parent_span_id, up.depth + 1
    FROM up JOIN spans s ON s.trace_id = up.trace_id AND s.span_id = up.span_id
    WHERE s.parent_span_id IS NOT NULL AND s.mcp_side IS DISTINCT FROM 'server' AND up.depth < 32
)
SELECT u.call_id, u.depth, s.span_id, s.parent_span_id, s.conversation_id, s.turn_id, s.tool_call_id, s.mcp_side
FROM up u JOIN spans s ON s.trace_id = u.trace_id AND s.span_id = u.span_id
WHERE s.mcp_side IS DISTINCT FROM 'server';

CREATE OR REPLACE TEMP TABLE _call_span_keys AS
WITH h AS (
    SELECT call_id, min(depth) FILTER (WHERE mcp_side = 'host') AS host_depth FROM _call_anc GROUP BY 1
), one_conv AS (
    SELECT trace_id, min(conversation_id) AS conversation_id FROM spans
    WHERE conversation_id IS NOT NULL AND trace_id IN (SELECT trace_id FROM _keyed_traces)
    GROUP BY 1 HAVING count(DISTINCT conversation_id) = 1
), k AS (
    SELECT a.call_id,
           arg_min(a.conversation_id, a.depth) FILTER (WHERE a.conversation_id IS NOT NULL) AS conversation_id,
           arg_min(a.turn_id, a.depth) FILTER (WHERE a.turn_id IS NOT NULL) AS turn_id,
           arg_min(a.tool_call_id, a.depth) FILTER (WHERE a.tool_call_id IS NOT NULL
                                                    AND a.depth <= coalesce(h.host_depth, 32)) AS tool_call_id,
           arg_min(a.span_id, a.depth) FILTER (WHERE a.mcp_side = 'host') AS host_span_id,
           arg_min(a.parent_span_id, a.depth) FILTER (WHERE a.mcp_side = 'host') AS host_parent_span_id
    FROM _call_anc a JOIN h USING (call_id) GROUP BY 1
)
SELECT c.call_id, coalesce(k.conversation_id, o.conversation_id) AS conversation_id, k.turn_id, k.tool_call_id,
       k.host_span_id, k.host_parent_span_id
FROM calls c SEMI JOIN _keyed_traces t ON t.trace_id = c.trace_id
LEFT JOIN k USING (call_id) LEFT JOIN one_conv o ON o.trace_id = c.trace_id
WHERE coalesce(k.conversation_id, o.conversation_id, k.turn_id, k.tool_call_id, k.host_span_id) IS NOT NULL;

UPDATE calls SET
    request_session_key = CASE WHEN calls.request_session_key IS NULL AND k.conversation_id IS NOT NULL
                               THEN k.conversation_id ELSE calls.request_session_key END,
    request_session_key_source = CASE WHEN calls.request_session_key IS NULL AND k.conversation_id IS NOT NULL
                                      THEN 'spans.conversation_id' ELSE calls.request_session_key_source END,
    call_key = coalesce(calls.call_key, k.tool_call_id),
    call_key_source = CASE WHEN calls.call_key IS NULL AND k.tool_call_id IS NOT NULL THEN 'spans.tool_call_id'
                           ELSE calls.call_key_source END,
    span_turn_id = k.turn_id,
    host_span_id = k.host_span_id,
    host_parent_span_id = k.host_parent_span_id
FROM _call_span_keys k
WHERE calls.call_id = k.call_id;

END IF;
