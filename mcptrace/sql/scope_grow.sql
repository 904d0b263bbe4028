-- An append's scope, grown to a fixed point (run until _aff stops growing, mcptrace.analysis.incremental).
-- Parameters: $window_ms (DOUBLE), $reconnect_s (DOUBLE).

-- split sessions (gaps.sql) pair sessions of one client at most $reconnect_s apart: sessions of a client
-- whose [first, last + $reconnect_s] intervals overlap, in a chain, form an island; the new records' time is
-- in the islands of the clients they name and of the sessions they reach. Only the islands of the
-- clients of sessions in scope matter.
CREATE OR REPLACE TEMP TABLE _client_island AS
WITH cl AS (
    SELECT client_name FROM _seed_client
    UNION SELECT client_name FROM sessions WHERE session_id IN (SELECT session_id FROM _aff) AND client_name IS NOT NULL
), iv AS (
    SELECT session_id, client_name, first_ts AS lo,
           last_ts + to_microseconds(CAST($reconnect_s * 1e6 AS BIGINT)) AS hi
    FROM sessions WHERE client_name IN (SELECT client_name FROM cl) AND first_ts IS NOT NULL
    UNION ALL
    SELECT NULL, n.client_name, t.lo - to_microseconds(CAST($reconnect_s * 1e6 AS BIGINT)),
           t.hi + to_microseconds(CAST($reconnect_s * 1e6 AS BIGINT))
    FROM _seed_time t, _seed_client n
    WHERE t.lo IS NOT NULL
), o AS (
    SELECT *, max(hi) OVER (PARTITION BY client_name ORDER BY lo, hi
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_hi FROM iv
)
SELECT session_id, client_name,
       sum(CASE WHEN prev_hi IS NULL OR lo > prev_hi THEN 1 ELSE 0 END)
           OVER (PARTITION BY client_name ORDER BY lo, hi ROWS UNBOUNDED PRECEDING) AS island
FROM o;

-- the calls in scope, the requests among the new records, and when each transport scope in scope has
-- messages (an unanswered call lasts until the last message of its transport)
CREATE OR REPLACE TEMP TABLE _grow_calls AS
SELECT call_id, method, coalesce((rpc_id::JSON)->>'$', rpc_id) AS rpc_text, tool_name, start_ts, end_ts, direction,
       trace_id,
       response_message_id IS NOT NULL AS answered,
       coalesce(mcp_session_id, connection_id) AS scope
FROM calls WHERE session_id IN (SELECT session_id FROM _aff);

-- server spans joined by attributes (call_spans.sql) pair a call with a server span of its method (its
-- request id when the span has one, its tool when both name one) that starts from $window_ms before
-- the request to $window_ms after the response, at most an hour after the request; the pairs are
-- assigned one to one, so every call and span linked through such pairs to one in scope is in scope.
-- Spans and calls joined exactly (parent, link) never take part.
CREATE OR REPLACE TEMP TABLE _attr_span AS
WITH first_new AS (
    -- each transport scope's first new message (untimed messages come after every timed one)
    SELECT scope, min(ts) AS ts FROM _new_msg GROUP BY scope
), c AS (
    -- a call of a transport scope the new records reach may be answered or paired anew, so it reaches an
    -- hour, unless a response answered it before the scope's first new message: calls.sql pairs a
    -- response with the latest open request with its id before it, which only a message at or before the
    -- response can change
    SELECT g.method, g.rpc_text, g.tool_name, g.start_ts,
           CASE WHEN g.scope IN (SELECT scope FROM _seed_scope)
                 AND NOT (g.answered AND g.end_ts < coalesce(f.ts, 'infinity'::TIMESTAMPTZ))
                THEN NULL ELSE g.end_ts END AS end_ts
    FROM _grow_calls g LEFT JOIN first_new f USING (scope) WHERE g.start_ts IS NOT NULL
    UNION ALL SELECT method, rpc_text, tool_name, start_ts, end_ts FROM _new_req
), cand AS MATERIALIZED (
    SELECT DISTINCT s.trace_id, s.span_id, s.mcp_method_name, s.jsonrpc_request_id, s.gen_ai_tool_name, s.start_ts
    FROM c JOIN spans s ON s.mcp_method_name = c.method
    WHERE s.mcp_side = 'server'
      AND (s.jsonrpc_request_id IS NULL OR s.jsonrpc_request_id = c.rpc_text)
      AND (c.tool_name IS NULL OR s.gen_ai_tool_name IS NULL OR s.gen_ai_tool_name = c.tool_name)
      AND s.start_ts BETWEEN c.start_ts - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
                         AND least(coalesce(c.end_ts, c.start_ts + INTERVAL 1 HOUR), c.start_ts + INTERVAL 1 HOUR)
                             + to_microseconds(CAST($window_ms * 1000 AS BIGINT))
), exact AS (
    -- the candidates joined exactly (the join's hash table is built on the few candidates, not on
    -- call_spans)
    SELECT x.trace_id, x.span_id FROM call_spans x SEMI JOIN cand c ON c.trace_id = x.trace_id AND c.span_id = x.span_id
    WHERE x.role = 'server' AND x.matched_by IN ('parent', 'link')
)
SELECT * FROM cand ANTI JOIN exact USING (trace_id, span_id)
UNION
SELECT s.trace_id, s.span_id, s.mcp_method_name, s.jsonrpc_request_id, s.gen_ai_tool_name, s.start_ts
FROM _new_span_rows s
WHERE s.mcp_side = 'server' AND s.mcp_method_name IS NOT NULL AND s.start_ts IS NOT NULL;

INSERT INTO _attr_trace SELECT DISTINCT trace_id FROM _attr_span EXCEPT SELECT trace_id FROM _attr_trace;

-- downstream roots joined by time (call_spans.sql) may go to any client-to-server call whose server-side
-- interval (its server span's, else request to response on the wire) holds their start: the roots that
-- start while a transport scope in scope has messages or a server span a call in scope may be joined to
-- runs, the new ones, and every call that may hold them, are in scope
CREATE OR REPLACE TEMP TABLE _down_root_cand AS
WITH tr AS MATERIALIZED (
    SELECT trace_id FROM _grow_calls WHERE trace_id IS NOT NULL
    UNION SELECT x.trace_id FROM call_spans x SEMI JOIN _grow_calls g USING (call_id) WHERE x.role = 'server'
    UNION SELECT trace_id FROM _seed_trace UNION SELECT trace_id FROM _attr_trace
), w AS (
    -- the calls in scope from request to response, the new messages, the whole transport of a call
    -- nothing answered, and the server spans of the traces the calls in scope carry, were joined to or may
    -- be joined to (their clocks may be off the wire's by more than $window_ms), each widened by $window_ms
    SELECT min(start_ts) AS lo, max(greatest(end_ts, start_ts)) AS hi FROM _grow_calls
    WHERE start_ts IS NOT NULL GROUP BY scope
    UNION ALL SELECT min(s.start_ts), max(greatest(s.end_ts, s.start_ts)) FROM spans s SEMI JOIN tr USING (trace_id)
    WHERE s.mcp_side = 'server' AND s.start_ts IS NOT NULL GROUP BY s.trace_id
    UNION ALL SELECT min(ts), max(ts) FROM _new_msg WHERE ts IS NOT NULL GROUP BY scope
    UNION ALL SELECT min(ts), max(ts) FROM messages
    WHERE EXISTS (SELECT 1 FROM _grow_calls WHERE end_ts IS NULL)
      AND coalesce(mcp_session_id, connection_id) IN (SELECT scope FROM _grow_calls WHERE end_ts IS NULL)
      AND ts IS NOT NULL GROUP BY coalesce(mcp_session_id, connection_id)
), wp AS (
    SELECT lo - to_microseconds(CAST($window_ms * 1000 AS BIGINT)) AS lo,
           hi + to_microseconds(CAST($window_ms * 1000 AS BIGINT)) AS hi FROM w
), r AS (
    SELECT s.* FROM spans s
    WHERE s.start_ts BETWEEN (SELECT min(lo) FROM wp) AND (SELECT max(hi) FROM wp)
      AND EXISTS (SELECT 1 FROM wp WHERE s.start_ts BETWEEN wp.lo AND wp.hi)
    UNION ALL
    SELECT * FROM _new_span_rows
)
SELECT DISTINCT r.trace_id, r.span_id, r.start_ts FROM r
WHERE r.start_ts IS NOT NULL AND r.kind IN ('server', 'consumer') AND r.service_name IS NOT NULL
  AND r.mcp_method_name IS NULL;

-- a root's trace holds no call and no span joined to a call as its client or server side
DELETE FROM _down_root_cand WHERE trace_id IN (
    SELECT c.trace_id FROM calls c SEMI JOIN _down_root_cand d ON d.trace_id = c.trace_id
    UNION SELECT x.trace_id FROM call_spans x SEMI JOIN _down_root_cand d ON d.trace_id = x.trace_id
    WHERE x.role <> 'downstream');

CREATE OR REPLACE TEMP TABLE _down_root_calls AS
WITH open_end AS (
    -- the last message of the transport of each unanswered call that began before a root
    SELECT coalesce(mcp_session_id, connection_id) AS scope, max(ts) AS last_ts FROM messages
    WHERE coalesce(mcp_session_id, connection_id) IN (
        SELECT coalesce(c.mcp_session_id, c.connection_id) FROM calls c
        WHERE c.end_ts IS NULL AND c.direction = 'client_to_server'
          AND c.start_ts <= (SELECT max(start_ts) FROM _down_root_cand)
          + to_microseconds(CAST($window_ms * 1000 AS BIGINT)))
    GROUP BY 1
)
SELECT DISTINCT c.session_id FROM _down_root_cand r JOIN calls c
  ON c.direction = 'client_to_server'
 AND r.start_ts >= c.start_ts - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
 AND r.start_ts <= greatest(c.end_ts, c.start_ts) + to_microseconds(CAST($window_ms * 1000 AS BIGINT))
UNION
SELECT DISTINCT c.session_id FROM _down_root_cand r JOIN calls c
  ON c.direction = 'client_to_server' AND c.end_ts IS NULL
 AND r.start_ts >= c.start_ts - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
JOIN open_end e ON e.scope = coalesce(c.mcp_session_id, c.connection_id)
 AND r.start_ts <= greatest(e.last_ts, c.start_ts) + to_microseconds(CAST($window_ms * 1000 AS BIGINT))
UNION
-- the calls whose server span holds a root (its clock may be off the wire's)
SELECT DISTINCT c.session_id FROM _down_root_cand r JOIN spans s
  ON s.mcp_side = 'server' AND r.start_ts >= s.start_ts - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
 AND r.start_ts <= greatest(s.end_ts, s.start_ts) + to_microseconds(CAST($window_ms * 1000 AS BIGINT))
JOIN call_spans x ON x.role = 'server' AND x.trace_id = s.trace_id AND x.span_id = s.span_id
JOIN calls c ON c.call_id = x.call_id AND c.direction = 'client_to_server';

CREATE OR REPLACE TEMP TABLE _aff AS
WITH isl AS (
    SELECT DISTINCT client_name, island FROM _client_island
    WHERE session_id IS NULL OR session_id IN (SELECT session_id FROM _aff)
), sc AS (
    SELECT DISTINCT scope FROM _grow_calls
), tr AS (
    SELECT DISTINCT x.trace_id FROM call_spans x JOIN _grow_calls c USING (call_id)
    UNION SELECT trace_id FROM _attr_trace
)
SELECT session_id FROM _aff
UNION SELECT i.session_id FROM _client_island i JOIN isl USING (client_name, island) WHERE i.session_id IS NOT NULL
UNION SELECT session_id FROM calls WHERE coalesce(mcp_session_id, connection_id) IN (SELECT scope FROM sc)
UNION SELECT session_id FROM calls WHERE trace_id IN (SELECT trace_id FROM tr)
UNION SELECT c.session_id FROM call_spans x JOIN calls c USING (call_id) WHERE x.trace_id IN (SELECT trace_id FROM tr)
UNION SELECT c.session_id FROM _attr_span s JOIN calls c
        ON c.method = s.mcp_method_name AND c.start_ts IS NOT NULL AND c.rpc_id IS NOT NULL
       AND (s.jsonrpc_request_id IS NULL OR s.jsonrpc_request_id = coalesce((c.rpc_id::JSON)->>'$', c.rpc_id))
       AND (c.tool_name IS NULL OR s.gen_ai_tool_name IS NULL OR s.gen_ai_tool_name = c.tool_name)
       AND s.start_ts BETWEEN c.start_ts - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
                          AND least(coalesce(c.end_ts, c.start_ts + INTERVAL 1 HOUR), c.start_ts + INTERVAL 1 HOUR)
                              + to_microseconds(CAST($window_ms * 1000 AS BIGINT))
UNION SELECT session_id FROM _down_root_calls;
