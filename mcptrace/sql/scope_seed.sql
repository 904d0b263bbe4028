-- An append's scope, first step (mcptrace.analysis.incremental): what the new records (scope_new.sql)
-- name, and the sessions that holds. Parameters: $max_message_id (BIGINT), $new_from_ts (TIMESTAMPTZ, the
-- first new message's time).

-- what they name: transport scopes (Mcp-Session-Id, else the connection), HTTP exchanges, session keys
-- (by namespace), traces and host tool-call ids
CREATE OR REPLACE TEMP TABLE _seed_scope AS
SELECT DISTINCT scope FROM (SELECT scope FROM _new_msg UNION ALL SELECT scope FROM _new_event) WHERE scope IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _seed_exchange AS
SELECT DISTINCT exchange_id FROM (SELECT exchange_id FROM _new_msg UNION ALL SELECT exchange_id FROM _new_event)
WHERE exchange_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _seed_key AS
SELECT DISTINCT session_key_family(session_key_source) AS family, session_key AS key FROM _new_msg
WHERE session_key IS NOT NULL
UNION SELECT 'conversation', conversation_id FROM _new_span WHERE conversation_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _seed_trace AS
SELECT DISTINCT t AS trace_id FROM (SELECT trace_id AS t FROM _new_msg UNION ALL SELECT h_trace FROM _new_msg
                                    UNION ALL SELECT trace_id FROM _new_span
                                    UNION ALL SELECT unnest(link_traces) FROM _new_span) WHERE t IS NOT NULL;

-- a server that only links joins its span to the call whose client span it links to, whatever their
-- times (call_spans.sql): the traces of the new server spans' links (above), and the traces of server
-- spans linking to a trace the new records carry
INSERT INTO _seed_trace
SELECT DISTINCT l.trace_id
FROM (SELECT trace_id, unnest(json_extract_string(links, '$[*].trace_id')) AS linked FROM spans
      WHERE mcp_side = 'server' AND json_array_length(links) > 0) l
SEMI JOIN _seed_trace t ON t.trace_id = l.linked
EXCEPT SELECT trace_id FROM _seed_trace;

CREATE OR REPLACE TEMP TABLE _seed_call_key AS
SELECT DISTINCT k FROM (SELECT call_key AS k FROM _new_msg UNION ALL SELECT tool_call_id FROM _new_span)
WHERE k IS NOT NULL;

-- the time the new records cover
CREATE OR REPLACE TEMP TABLE _seed_time AS
SELECT min(lo) AS lo, max(hi) AS hi
FROM (SELECT ts AS lo, ts AS hi FROM _new_msg UNION ALL SELECT start_ts, end_ts FROM _new_span
      UNION ALL SELECT ts, ts FROM _new_event);

-- the new requests, as the calls they will be, with the latest their end can be: calls.sql pairs a
-- response with the latest open request with its id before it, so the first later response with its id in
-- its transport scope answers it unless another request with its id comes between (then, or with no such
-- response, its end is unknown: NULL, an hour's reach in call_spans.sql). That end is the call's own
-- (exact_end) unless a response with its id has its very time (it may come before or after it).
CREATE OR REPLACE TEMP TABLE _new_req AS
WITH q AS (
    SELECT message_id, ts, method, rpc_id, tool_name, direction, mcp_session_id, trace_id,
           coalesce(mcp_session_id, connection_id) AS scope
    FROM messages WHERE message_id > $max_message_id AND ts IS NOT NULL AND kind = 'request'
), m AS (
    -- the messages from the first new request on (the scan skips the row groups of earlier times), in
    -- calls.sql's partitions (a request's direction, the opposite of a response's)
    SELECT message_id, ts, kind, rpc_id, coalesce(mcp_session_id, connection_id) AS scope,
           CASE WHEN kind = 'request' THEN direction
                WHEN direction = 'client_to_server' THEN 'server_to_client'
                WHEN direction = 'server_to_client' THEN 'client_to_server' END AS req_dir
    FROM messages
    WHERE ts >= $new_from_ts AND coalesce(mcp_session_id, connection_id) IN (SELECT scope FROM q)
      AND rpc_id IS NOT NULL AND kind IN ('request', 'response', 'error')
), r AS (
    SELECT q.message_id,
           (SELECT min(r.ts) FROM m r WHERE r.kind IN ('response', 'error') AND r.rpc_id = q.rpc_id
              AND r.scope IS NOT DISTINCT FROM q.scope AND r.req_dir IS NOT DISTINCT FROM q.direction
              AND r.ts > q.ts) AS first_answer,
           EXISTS (SELECT 1 FROM m r WHERE r.kind IN ('response', 'error') AND r.rpc_id = q.rpc_id
                     AND r.scope IS NOT DISTINCT FROM q.scope AND r.req_dir IS NOT DISTINCT FROM q.direction
                     AND r.ts = q.ts) AS answer_at_start
    FROM q
), e AS (
    SELECT q.*, r.answer_at_start,
           CASE WHEN NOT EXISTS (SELECT 1 FROM m o WHERE o.kind = 'request' AND o.rpc_id = q.rpc_id
                                   AND o.scope IS NOT DISTINCT FROM q.scope AND o.req_dir IS NOT DISTINCT FROM q.direction
                                   AND o.message_id <> q.message_id AND o.ts BETWEEN q.ts AND r.first_answer)
                THEN r.first_answer END AS end_ts
    FROM q JOIN r USING (message_id)
)
SELECT message_id AS call_id, method, rpc_id, tool_name, mcp_session_id, trace_id, ts AS start_ts, end_ts,
       end_ts IS NOT NULL AND NOT answer_at_start AS exact_end
FROM e;

-- the logical sessions the new records reach by what they name (transport scopes and traces by their hashes,
-- macros.sql's key_hash: a key sharing the hash of one named only adds its sessions to the scope, analysed
-- again like the others, and comparing the strings too would read them for every call)
CREATE OR REPLACE TEMP TABLE _aff AS
SELECT session_id FROM calls WHERE scope_hash IN (SELECT key_hash(scope) FROM _seed_scope)
UNION SELECT session_id FROM calls WHERE trace_hash IN (SELECT key_hash(trace_id) FROM _seed_trace)
UNION SELECT session_id FROM calls WHERE call_key IN (SELECT k FROM _seed_call_key)
UNION SELECT c.session_id FROM calls c JOIN _seed_key k
        ON k.family = session_key_family(c.request_session_key_source) AND k.key = c.request_session_key
UNION SELECT c.session_id FROM call_spans x JOIN calls c USING (call_id)
      WHERE x.trace_hash IN (SELECT key_hash(trace_id) FROM _seed_trace)
UNION SELECT c.session_id FROM calls c JOIN messages m ON m.message_id = c.request_message_id
      WHERE m.exchange_hash IN (SELECT key_hash(exchange_id) FROM _seed_exchange);

-- the clients the new records name (their islands take the new records' time: scope_grow.sql)
CREATE OR REPLACE TEMP TABLE _seed_client AS
SELECT DISTINCT client_name FROM messages WHERE message_id > $max_message_id AND client_name IS NOT NULL
UNION SELECT client_name FROM sessions WHERE session_id IN (SELECT session_id FROM _aff) AND client_name IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _attr_trace (trace_id VARCHAR);

-- The attribute join's one-to-one assignment (call_spans.sql) takes pairs best first in one strict order, so
-- it is the stable matching of that order: a call or span keeps the pair it holds unless a pair of it
-- ranking before that one, or the pair itself, changes. The calls and server spans whose pairs may change
-- (d0) start the dirty ones (scope_grow.sql grows them): the new requests (their ends from _new_req); the
-- calls of the transport scopes the new records reach that a new message may answer or pair anew (all but
-- those a response answered before the scope's first new message: calls.sql pairs a response with the
-- latest open request with its id before it, which only a message at or before the response can change),
-- whose end is then unknown (NULL: an hour's reach); the calls and server spans of the seed traces, which
-- an exact join may take; and the new server spans. The pairs of a call whose end is not known yet
-- (open_end) rank at best as if inside, with their start's distance.
CREATE OR REPLACE TEMP TABLE _dirty_call AS
WITH first_new AS (
    -- each transport scope's first new message (untimed messages come after every timed one)
    SELECT scope, min(ts) AS ts FROM _new_msg GROUP BY scope
)
SELECT call_id, method, rpc_id, tool_name, mcp_session_id, trace_id, start_ts, end_ts, true AS d0,
       NOT exact_end AS open_end, false AS done
FROM _new_req
UNION ALL
SELECT call_id, method, rpc_id, tool_name, mcp_session_id, trace_id, start_ts,
       CASE WHEN NOT open_end THEN end_ts END, true, open_end, false
FROM (SELECT c.*, coalesce(c.mcp_session_id, c.connection_id) IN (SELECT scope FROM _seed_scope)
                  AND NOT (c.response_message_id IS NOT NULL AND c.end_ts < coalesce(f.ts, 'infinity'::TIMESTAMPTZ))
                  AS open_end
      FROM calls c LEFT JOIN first_new f ON f.scope = coalesce(c.mcp_session_id, c.connection_id)
      WHERE c.start_ts IS NOT NULL AND c.rpc_id IS NOT NULL
        -- the calls of those scopes and traces, found by their hashes
        AND c.call_id IN (SELECT call_id FROM calls WHERE scope_hash IN (SELECT key_hash(scope) FROM _seed_scope)
                          UNION ALL
                          SELECT call_id FROM calls WHERE trace_hash IN (SELECT key_hash(trace_id) FROM _seed_trace)))
WHERE open_end OR trace_id IN (SELECT trace_id FROM _seed_trace);

-- the spans of the seed traces, by their hashes (a span of a trace sharing one is dirty too: it only widens the
-- scope), in a statement of their own: the other conditions, in the same statement, would go into the scan
-- and be tested on every span before the hashes
CREATE OR REPLACE TEMP TABLE _seed_trace_span AS
SELECT trace_id, span_id, start_ts, end_ts, mcp_side, mcp_method_name, jsonrpc_request_id, gen_ai_tool_name,
       mcp_session_id
FROM spans
WHERE trace_hash IN (SELECT key_hash(trace_id) FROM _seed_trace);

CREATE OR REPLACE TEMP TABLE _dirty_span AS
SELECT *, true AS d0, false AS done FROM _seed_trace_span
WHERE mcp_side = 'server' AND mcp_method_name IS NOT NULL AND start_ts IS NOT NULL;

-- calls whose attribute evidence (their candidates, or the calls fitting the span they hold) d0 pairs change
CREATE OR REPLACE TEMP TABLE _attr_evid (call_id BIGINT);
