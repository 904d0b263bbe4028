-- An append's scope, first step (mcptrace.analysis.incremental): what the new records (scope_new.sql)
-- name, and the sessions that holds. Parameter: $max_message_id (BIGINT).

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

-- the new requests, as the calls they will be: answered by the first later response or error with their
-- id among the new messages of their scope, else open (call_spans.sql gives an open call an hour's reach)
CREATE OR REPLACE TEMP TABLE _new_req AS
WITH m AS (
    SELECT message_id, ts, kind, method, rpc_id, tool_name, direction,
           coalesce(mcp_session_id, connection_id) AS scope
    FROM messages WHERE message_id > $max_message_id AND ts IS NOT NULL
)
SELECT q.message_id AS call_id, q.method, coalesce((q.rpc_id::JSON)->>'$', q.rpc_id) AS rpc_text, q.tool_name,
       q.ts AS start_ts,
       (SELECT min(r.ts) FROM m r WHERE r.kind IN ('response', 'error') AND r.rpc_id = q.rpc_id
          AND r.scope IS NOT DISTINCT FROM q.scope AND r.direction IS DISTINCT FROM q.direction AND r.ts >= q.ts)
           AS end_ts
FROM m q WHERE q.kind = 'request';

-- the logical sessions the new records reach by what they name
CREATE OR REPLACE TEMP TABLE _aff AS
SELECT session_id FROM calls WHERE coalesce(mcp_session_id, connection_id) IN (SELECT scope FROM _seed_scope)
UNION SELECT session_id FROM calls WHERE trace_id IN (SELECT trace_id FROM _seed_trace)
UNION SELECT session_id FROM calls WHERE call_key IN (SELECT k FROM _seed_call_key)
UNION SELECT c.session_id FROM calls c JOIN _seed_key k
        ON k.family = session_key_family(c.request_session_key_source) AND k.key = c.request_session_key
UNION SELECT c.session_id FROM call_spans x JOIN calls c USING (call_id)
      WHERE x.trace_id IN (SELECT trace_id FROM _seed_trace)
UNION SELECT c.session_id FROM calls c JOIN messages m ON m.message_id = c.request_message_id
      WHERE m.exchange_id IN (SELECT exchange_id FROM _seed_exchange);

-- the clients the new records name (their islands take the new records' time: scope_grow.sql)
CREATE OR REPLACE TEMP TABLE _seed_client AS
SELECT DISTINCT client_name FROM messages WHERE message_id > $max_message_id AND client_name IS NOT NULL
UNION SELECT client_name FROM sessions WHERE session_id IN (SELECT session_id FROM _aff) AND client_name IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _attr_trace (trace_id VARCHAR);
