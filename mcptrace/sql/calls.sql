-- Rebuild calls from messages (README: How the correlation works, Calls): a request is paired with the next
-- response or error carrying its id on the same stream (Mcp-Session-Id, else connection)
-- in the opposite direction while it is open; a notifications/cancelled from the same
-- sender cancels the latest request with that id. Event order is time, then file order.

-- message order: message_order(message_id, ord), written by message_order.sql over every message (or
-- by an append for its new messages: mcptrace.analysis.incremental)
CREATE OR REPLACE TEMP TABLE _ev AS
SELECT m.message_id, m.source_id, m.record_no, m.batch_index, m.ts, m.direction, m.connection_id,
       m.mcp_session_id, m.kind, m.rpc_id, m.method, m.tool_name, m.trace_id, m.parent_span_id,
       m.progress_token, m.session_key, m.session_key_source, m.call_key, m.http_traceparent,
       m.cancel_request_id, m.is_error, m.truncated, m.error_code, m.error_message, m.transport, m.protocol_version,
       m.result_type, m.request_state, m.call_key_source, m.turn_key, m.turn_key_source,
       coalesce(mcp_session_id, connection_id) AS scope,
       o.ord
FROM messages m JOIN message_order o USING (message_id);

CREATE OR REPLACE TEMP TABLE _rr AS
WITH e AS (
    SELECT message_id, ord, ts, scope, kind, is_error,
           CASE WHEN kind = 'notification' THEN cancel_request_id ELSE rpc_id END AS k,
           CASE WHEN kind IN ('request', 'notification') THEN direction
                WHEN direction = 'client_to_server' THEN 'server_to_client'
                WHEN direction = 'server_to_client' THEN 'client_to_server' END AS req_dir,
           CASE WHEN kind = 'notification' THEN 'cancel' ELSE kind END AS ev
    FROM _ev
    WHERE (kind IN ('request', 'response', 'error') AND rpc_id IS NOT NULL)
       OR (method = 'notifications/cancelled' AND cancel_request_id IS NOT NULL)
)
SELECT *,
       last_value(CASE WHEN ev = 'request' THEN message_id END IGNORE NULLS) OVER w AS last_req,
       last_value(CASE WHEN ev = 'request' THEN ord END IGNORE NULLS) OVER w AS last_req_ord,
       last_value(CASE WHEN ev IN ('response', 'error') THEN ord END IGNORE NULLS) OVER w AS last_resp_ord
FROM e
WINDOW w AS (PARTITION BY scope, req_dir, k ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING);

-- response -> request it answers (NULL: orphan response)
CREATE OR REPLACE TEMP TABLE _answer AS
SELECT message_id AS response_message_id, ord AS response_ord,
       CASE WHEN last_req IS NOT NULL AND last_req_ord > coalesce(last_resp_ord, 0) THEN last_req END AS request_message_id
FROM _rr WHERE ev IN ('response', 'error');

-- cancel -> request it names (NULL: unknown target)
CREATE OR REPLACE TEMP TABLE _cancel AS
SELECT message_id AS cancel_message_id, ord AS cancel_ord, last_req AS request_message_id
FROM _rr WHERE ev = 'cancel';

-- requests reusing an id while the previous request with it is still open
CREATE OR REPLACE TEMP TABLE _dup AS
SELECT message_id AS request_message_id, last_req AS open_request_message_id
FROM _rr WHERE ev = 'request' AND last_req IS NOT NULL AND last_req_ord > coalesce(last_resp_ord, 0);

CREATE OR REPLACE TABLE calls AS
WITH c AS (
    SELECT request_message_id, min(cancel_message_id) AS cancel_message_id, min(cancel_ord) AS cancel_ord
    FROM _cancel WHERE request_message_id IS NOT NULL GROUP BY 1
), a AS (
    SELECT request_message_id, min(response_message_id) AS response_message_id, min(response_ord) AS response_ord
    FROM _answer WHERE request_message_id IS NOT NULL GROUP BY 1
), http_tc AS (
    SELECT message_id, CASE WHEN w3c_traceparent_valid(http_traceparent) THEN substr(http_traceparent, 4, 32) END AS h_trace,
           CASE WHEN w3c_traceparent_valid(http_traceparent) THEN substr(http_traceparent, 37, 16) END AS h_parent
    FROM _ev WHERE kind = 'request'
)
SELECT q.message_id AS call_id,
       NULL::VARCHAR AS session_id,
       q.connection_id, q.mcp_session_id, q.direction, q.rpc_id, q.method, q.tool_name,
       q.ts AS start_ts,
       coalesce(r.ts, cx.ts) AS end_ts,
       date_diff('microsecond', q.ts, coalesce(r.ts, cx.ts)) / 1000.0 AS duration_ms,
       CASE WHEN c.cancel_message_id IS NOT NULL AND (a.response_ord IS NULL OR c.cancel_ord < a.response_ord) THEN 'cancelled'
            WHEN r.kind = 'error' THEN 'error'
            WHEN r.kind = 'response' AND r.is_error THEN 'tool_error'
            -- answered, but the capture cut the result: whether the tool succeeded cannot be read
            WHEN r.kind = 'response' AND r.truncated THEN 'truncated'
            WHEN r.kind = 'response' THEN 'ok'
            ELSE 'unanswered' END AS status,
       r.error_code,
       coalesce(q.trace_id, h.h_trace) AS trace_id,
       CASE WHEN q.trace_id IS NOT NULL THEN q.parent_span_id ELSE h.h_parent END AS parent_span_id,
       q.call_key,
       NULL::BIGINT AS parallel_group,
       q.message_id AS request_message_id,
       r.message_id AS response_message_id,
       -- extras
       CASE WHEN q.trace_id IS NOT NULL THEN 'meta' WHEN h.h_trace IS NOT NULL THEN 'http_header' END AS trace_context_source,
       q.session_key AS request_session_key, q.session_key_source AS request_session_key_source,
       -- stateless Streamable HTTP (2026-07-28, no Mcp-Session-Id) has no transport session:
       -- each POST may ride a new TCP connection
       CASE WHEN q.transport = 'streamable_http' AND q.mcp_session_id IS NULL THEN NULL ELSE q.scope END
           AS transport_session,
       q.protocol_version,
       c.cancel_message_id,
       r.error_message,
       NULL::VARCHAR AS turn_id,
       q.ord AS start_ord,
       coalesce(a.response_ord, c.cancel_ord) AS end_ord,
       r.result_type,
       q.request_state AS request_state_in,
       CASE WHEN r.result_type = 'input_required' THEN r.request_state END AS request_state_out,
       NULL::BIGINT AS retry_of,
       q.message_id AS chain_id,
       q.call_key_source,
       q.turn_key, q.turn_key_source,
       -- filled by span_keys.sql from the call's client span and its ancestors
       NULL::VARCHAR AS span_turn_id,
       NULL::VARCHAR AS host_span_id,
       NULL::VARCHAR AS host_parent_span_id
FROM _ev q
LEFT JOIN a ON a.request_message_id = q.message_id
LEFT JOIN _ev r ON r.message_id = a.response_message_id
LEFT JOIN c ON c.request_message_id = q.message_id
LEFT JOIN _ev cx ON cx.message_id = c.cancel_message_id
LEFT JOIN http_tc h ON h.message_id = q.message_id
WHERE q.kind = 'request'
ORDER BY q.ord;


-- 2026-07-28 retry chains: a request echoing the requestState of an input_required result is
-- the same logical call re-issued with a new id; link it to the call it retries, and give every
-- call of a chain the chain's first call_id.
UPDATE calls SET retry_of = p.call_id
FROM (SELECT call_id, transport_session, request_state_out, start_ord FROM calls WHERE request_state_out IS NOT NULL) p
WHERE calls.request_state_in = p.request_state_out AND calls.start_ord > p.start_ord
  AND calls.transport_session IS NOT DISTINCT FROM p.transport_session;

UPDATE calls SET chain_id = r.root
FROM (
    WITH RECURSIVE up(call_id, root, depth) AS (
        SELECT call_id, call_id, 0 FROM calls WHERE retry_of IS NULL
        UNION ALL
        SELECT c.call_id, up.root, up.depth + 1 FROM calls c JOIN up ON c.retry_of = up.call_id WHERE up.depth < 64
    )
    SELECT call_id, root FROM up
) r
WHERE calls.call_id = r.call_id;
