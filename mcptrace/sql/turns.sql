-- Turns and parallel groups (README: How the correlation works). A call's turn, by the first rule that applies
-- (calls.turn_source says which):
--   <_meta key>  the host's turn id on the request (core.keys.TURN_META_KEYS: vscode.requestId, Codex's
--                x-codex-turn-metadata.turn_id): turn_id is that id, turn_source the key's name
--   spans.turn_id  the host's turn id on the call's client span or an ancestor (turn.id, gen_ai.agent.call.id)
--   host_span    the parent of the host's tool span above the call's client span (execute_tool,
--                claude_code.tool; calls.host_span_id): turn_id '<trace-id>/<parent span-id>'
--   client_span  the parent of its client span (the span the traceparent's parent-id names), when
--                the client's spans are loaded: turn_id '<trace-id>/<parent span-id>'
--   trace        else its trace: turn_id '<trace-id>'
--   overlap      a client-to-server call without trace context: the run of such calls of its
--                logical session whose request/response intervals overlap (an unanswered call
--                lasts until the last message of its transport): turn_id 'overlap:<first call_id>'
-- All but overlap are exact. Within a session and turn, calls whose request/response intervals overlap
-- form one parallel_group. Intervals are in message order (start_ord/end_ord: time, then file order), so
-- bare captures without times use the order of the messages.

CREATE OR REPLACE TEMP TABLE _turn AS
WITH cs AS (
    SELECT trace_id, span_id, any_value(parent_span_id) AS parent_span_id FROM spans GROUP BY ALL
)
SELECT c.call_id,
       CASE WHEN c.turn_key IS NOT NULL THEN c.turn_key
            WHEN c.span_turn_id IS NOT NULL THEN c.span_turn_id
            WHEN c.trace_id IS NULL THEN NULL
            WHEN c.host_parent_span_id IS NOT NULL THEN c.trace_id || '/' || c.host_parent_span_id
            WHEN cs.parent_span_id IS NOT NULL THEN c.trace_id || '/' || cs.parent_span_id
            ELSE c.trace_id END AS turn_id,
       CASE WHEN c.turn_key IS NOT NULL THEN c.turn_key_source
            WHEN c.span_turn_id IS NOT NULL THEN 'spans.turn_id'
            WHEN c.trace_id IS NULL THEN NULL
            WHEN c.host_parent_span_id IS NOT NULL THEN 'host_span'
            WHEN cs.parent_span_id IS NOT NULL THEN 'client_span'
            ELSE 'trace' END AS turn_source
FROM calls c LEFT JOIN cs ON cs.trace_id = c.trace_id AND cs.span_id = c.parent_span_id;

-- untraced client requests: overlap runs per logical session
INSERT INTO _turn
WITH scope_end AS (
    SELECT scope, max(ord) AS last_ord FROM _ev GROUP BY 1
), t AS (
    SELECT c.call_id, c.session_id, c.start_ord,
           coalesce(c.end_ord, e.last_ord, c.start_ord) AS end_ord
    FROM calls c JOIN _turn u USING (call_id)
    LEFT JOIN _ev q ON q.message_id = c.request_message_id
    LEFT JOIN scope_end e ON e.scope = q.scope
    WHERE u.turn_id IS NULL AND c.direction = 'client_to_server'
), g AS (
    SELECT *, max(end_ord) OVER (PARTITION BY session_id ORDER BY start_ord
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM t
), h AS (
    SELECT *, sum(CASE WHEN prev_end IS NULL OR start_ord > prev_end THEN 1 ELSE 0 END)
                  OVER (PARTITION BY session_id ORDER BY start_ord ROWS UNBOUNDED PRECEDING) AS run
    FROM g
)
SELECT call_id, 'overlap:' || first_value(call_id) OVER (PARTITION BY session_id, run ORDER BY start_ord), 'overlap'
FROM h;

DELETE FROM _turn WHERE turn_id IS NULL
  AND call_id IN (SELECT call_id FROM _turn GROUP BY 1 HAVING count(*) > 1);

CREATE OR REPLACE TEMP TABLE _pgroup AS
WITH t AS (
    SELECT c.call_id, c.session_id, tu.turn_id, c.start_ord,
           coalesce(c.end_ord, 9223372036854775807) AS end_ord
    FROM calls c JOIN _turn tu USING (call_id) WHERE tu.turn_id IS NOT NULL
), g AS (
    SELECT *, max(end_ord) OVER (PARTITION BY session_id, turn_id ORDER BY start_ord
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM t
), h AS (
    SELECT *, sum(CASE WHEN prev_end IS NULL OR start_ord > prev_end THEN 1 ELSE 0 END)
                  OVER (PARTITION BY session_id, turn_id ORDER BY start_ord) AS gno
    FROM g
), k AS (
    SELECT *, min(start_ord) OVER (PARTITION BY session_id, turn_id, gno) AS gfirst FROM h
)
-- a group is named by its first call (as calls.chain_id names a retry chain): the id stays when other
-- sessions change (an append)
SELECT call_id, turn_id, arg_min(call_id, start_ord) OVER (PARTITION BY session_id, turn_id, gno) AS parallel_group FROM k;

-- one rewrite of calls rather than two UPDATEs (updating every row of a wide table is slower)
CREATE OR REPLACE TABLE calls AS
SELECT c.* REPLACE (t.turn_id AS turn_id, p.parallel_group::BIGINT AS parallel_group), t.turn_source,
       -- the lookup hashes of the keys an append finds calls by (macros.sql's key_hash)
       stored_key_hash(coalesce(c.mcp_session_id, c.connection_id)) AS scope_hash,
       stored_key_hash(c.trace_id) AS trace_hash, stored_key_hash(c.session_id) AS session_hash
FROM calls c LEFT JOIN _turn t USING (call_id) LEFT JOIN _pgroup p USING (call_id)
ORDER BY c.call_id;
