-- An append's scope, grown to a fixed point (mcptrace.analysis.incremental runs scope_island.sql, then this,
-- until this adds nothing to _aff and the dirty calls and spans).
-- Parameters: $window_ms (DOUBLE).

-- the calls in scope, the requests among the new records, and when each transport scope in scope has
-- messages (an unanswered call lasts until the last message of its transport)
CREATE OR REPLACE TEMP TABLE _grow_calls AS
SELECT call_id, method, coalesce((rpc_id::JSON)->>'$', rpc_id) AS rpc_text, tool_name, start_ts, end_ts, direction,
       trace_id, call_key,
       response_message_id IS NOT NULL AS answered,
       coalesce(mcp_session_id, connection_id) AS scope
FROM calls WHERE session_hash IN (SELECT key_hash(session_id) FROM _aff) AND session_id IN (SELECT session_id FROM _aff);

-- server spans joined by attributes (call_spans.sql): the dirty calls and spans (scope_seed.sql) grow by
-- what their change may move. A call or span whose pair with a dirty one ranks before the pair it holds,
-- or that holds nothing, or whose partner is dirty, may change: it is dirty too. A call or span whose
-- pairs d0 ones change keeps what it holds, but its evidence counts change: its session is in scope
-- (_attr_evid). Spans and calls joined exactly (parent, link) never take part. Ranks are the one-to-one
-- order's (NOT inside, NOT by_id, dist, span_id, trace_id, call_id); the held pairs' come from their
-- evidence.
-- each round expands the dirty calls and spans it has not expanded yet: a call or span that becomes dirty
-- later is found by expanding its partner or the one that made it dirty
CREATE OR REPLACE TEMP TABLE _p1_calls AS SELECT * FROM _dirty_call WHERE NOT done;

UPDATE _dirty_call SET done = true WHERE NOT done;

IF ROWS IN _p1_calls;

-- the server spans those calls may meet: of their methods, in the 10-minute buckets their windows cover
-- (from $window_ms before the first to an hour and $window_ms after the last)
CREATE OR REPLACE TEMP TABLE _p1_spans AS
WITH b AS (
    SELECT DISTINCT method, unnest(attr_call_buckets(start_ts, end_ts, CAST($window_ms * 1000 AS BIGINT))) AS bucket
    FROM _p1_calls
)
SELECT s.trace_id, s.span_id, s.start_ts, s.end_ts, s.mcp_side, s.mcp_method_name, s.jsonrpc_request_id,
       s.gen_ai_tool_name, s.mcp_session_id
FROM spans s SEMI JOIN b ON b.method = s.mcp_method_name AND b.bucket = epoch_us(s.start_ts) // 600000000
WHERE s.mcp_side = 'server'
  AND s.start_ts BETWEEN (SELECT min(start_ts) FROM _p1_calls) - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
                     AND (SELECT max(start_ts) FROM _p1_calls) + INTERVAL 1 HOUR
                         + to_microseconds(CAST($window_ms * 1000 AS BIGINT));

ATTR_PAIRS _p1_calls, _p1_spans;

CREATE OR REPLACE TEMP TABLE _p1 AS
SELECT p.call_id, p.trace_id, p.span_id, d.d0,
       -- a pair of a call whose end is not known yet ranks at best as if inside, with its start's distance
       (NOT (p.inside OR d.open_end), NOT p.by_id, CASE WHEN d.open_end THEN p.start_dist ELSE p.dist END,
        p.span_id, p.trace_id, p.call_id) AS rank
FROM _attr_pairs p JOIN _p1_calls d USING (call_id);

CREATE OR REPLACE TEMP TABLE _p1_held AS
SELECT x.call_id, x.trace_id, x.span_id, x.matched_by,
       attr_held_rank(x.evidence, x.span_id, x.trace_id, x.call_id) AS rank
FROM call_spans x SEMI JOIN _p1 p ON p.trace_id = x.trace_id AND p.span_id = x.span_id
WHERE x.role = 'server';

INSERT INTO _dirty_span
SELECT s.trace_id, s.span_id, s.start_ts, s.end_ts, s.mcp_side, s.mcp_method_name, s.jsonrpc_request_id,
       s.gen_ai_tool_name, s.mcp_session_id, false, false
FROM _p1_spans s
SEMI JOIN (SELECT p.trace_id, p.span_id FROM _p1 p LEFT JOIN _p1_held h USING (trace_id, span_id)
           WHERE h.call_id IS NULL OR h.matched_by = 'attributes'
             AND (p.rank < h.rank OR h.call_id IN (SELECT call_id FROM _dirty_call))) n USING (trace_id, span_id)
WHERE NOT EXISTS (SELECT 1 FROM _dirty_span d WHERE d.trace_id = s.trace_id AND d.span_id = s.span_id)
  AND NOT EXISTS (SELECT 1 FROM _p1_held h WHERE h.trace_id = s.trace_id AND h.span_id = s.span_id
                    AND h.matched_by <> 'attributes');

INSERT INTO _attr_evid
SELECT h.call_id FROM _p1 p JOIN _p1_held h USING (trace_id, span_id)
WHERE p.d0 AND h.matched_by = 'attributes'
EXCEPT SELECT call_id FROM _attr_evid;

END IF;

CREATE OR REPLACE TEMP TABLE _p2_spans AS SELECT * FROM _dirty_span WHERE NOT done;

UPDATE _dirty_span SET done = true WHERE NOT done;

IF ROWS IN _p2_spans;

-- the calls those spans may meet: of their methods, starting in the 10-minute buckets from an hour and
-- $window_ms before one to $window_ms after it
CREATE OR REPLACE TEMP TABLE _p2_calls AS
WITH b AS (
    SELECT DISTINCT mcp_method_name AS method,
           unnest(attr_span_call_buckets(start_ts, CAST($window_ms * 1000 AS BIGINT))) AS bucket
    FROM _p2_spans
)
SELECT c.call_id, c.method, c.rpc_id, c.tool_name, c.mcp_session_id, c.trace_id, c.start_ts, c.end_ts
FROM calls c SEMI JOIN b ON b.method = c.method AND b.bucket = epoch_us(c.start_ts) // 600000000
WHERE c.start_ts BETWEEN (SELECT min(start_ts) FROM _p2_spans) - INTERVAL 1 HOUR
                         - to_microseconds(CAST($window_ms * 1000 AS BIGINT))
                     AND (SELECT max(start_ts) FROM _p2_spans) + to_microseconds(CAST($window_ms * 1000 AS BIGINT))
  AND c.rpc_id IS NOT NULL AND c.call_id NOT IN (SELECT call_id FROM _dirty_call);

ATTR_PAIRS _p2_calls, _p2_spans;

CREATE OR REPLACE TEMP TABLE _p2 AS
SELECT p.call_id, p.trace_id, p.span_id, d.d0,
       (NOT p.inside, NOT p.by_id, p.dist, p.span_id, p.trace_id, p.call_id) AS rank
FROM _attr_pairs p JOIN _p2_spans d USING (trace_id, span_id);

CREATE OR REPLACE TEMP TABLE _p2_held AS
SELECT x.call_id, x.trace_id, x.span_id, x.matched_by,
       attr_held_rank(x.evidence, x.span_id, x.trace_id, x.call_id) AS rank
FROM call_spans x SEMI JOIN _p2 p ON p.call_id = x.call_id
WHERE x.role = 'server';

INSERT INTO _dirty_call
SELECT c.call_id, c.method, c.rpc_id, c.tool_name, c.mcp_session_id, c.trace_id, c.start_ts, c.end_ts, false, false,
       false
FROM _p2_calls c
SEMI JOIN (SELECT p.call_id FROM _p2 p LEFT JOIN _p2_held h USING (call_id)
           WHERE h.call_id IS NULL OR h.matched_by = 'attributes'
             AND (p.rank < h.rank OR EXISTS (SELECT 1 FROM _dirty_span d
                                             WHERE d.trace_id = h.trace_id AND d.span_id = h.span_id))) n
     USING (call_id)
WHERE NOT EXISTS (SELECT 1 FROM _p2_held h WHERE h.call_id = c.call_id AND h.matched_by <> 'attributes');

INSERT INTO _attr_evid
SELECT p.call_id FROM _p2 p WHERE p.d0
  AND NOT EXISTS (SELECT 1 FROM _p2_held h WHERE h.call_id = p.call_id AND h.matched_by <> 'attributes')
EXCEPT SELECT call_id FROM _attr_evid;

END IF;

INSERT INTO _attr_trace SELECT DISTINCT trace_id FROM _dirty_span EXCEPT SELECT trace_id FROM _attr_trace;

-- the traces the calls in scope carry or were joined to as servers, and their spans (by the traces' hashes: a
-- trace sharing one only widens the windows below; the hash, not the trace id, is read: the spans found lie
-- scattered, and reading a string column for them costs about as much as reading all of it; in a statement of
-- their own: a condition on the spans' side in the same statement would go into the scan and be tested on
-- every span before the hashes)
CREATE OR REPLACE TEMP TABLE _grow_trace_span AS
WITH tr AS (
    SELECT trace_id FROM _grow_calls WHERE trace_id IS NOT NULL
    UNION SELECT x.trace_id FROM call_spans x SEMI JOIN _grow_calls g USING (call_id) WHERE x.role = 'server'
    UNION SELECT trace_id FROM _seed_trace UNION SELECT trace_id FROM _attr_trace
)
SELECT trace_hash, start_ts, end_ts, mcp_side FROM spans WHERE trace_hash IN (SELECT key_hash(trace_id) FROM tr);

-- downstream roots joined by time (call_spans.sql) may go to any client-to-server call whose server-side
-- interval (its server span's, else request to response on the wire) holds their start: the roots that
-- start while a transport scope in scope has messages or a server span a call in scope may be joined to
-- runs, the new ones, and every call that may hold them, are in scope
CREATE OR REPLACE TEMP TABLE _down_root_cand AS
WITH w AS (
    -- the calls in scope from request to response, the new messages, the whole transport of a call
    -- nothing answered, and the server spans of the traces the calls in scope carry, were joined to or may
    -- be joined to (their clocks may be off the wire's by more than $window_ms), each widened by $window_ms
    SELECT min(start_ts) AS lo, max(greatest(end_ts, start_ts)) AS hi FROM _grow_calls
    WHERE start_ts IS NOT NULL GROUP BY scope
    UNION ALL SELECT min(s.start_ts), max(greatest(s.end_ts, s.start_ts)) FROM _grow_trace_span s
    WHERE s.mcp_side = 'server' AND s.start_ts IS NOT NULL GROUP BY s.trace_hash
    UNION ALL SELECT min(ts), max(ts) FROM _new_msg WHERE ts IS NOT NULL GROUP BY scope
    UNION ALL SELECT min(ts), max(ts) FROM messages
    WHERE EXISTS (SELECT 1 FROM _grow_calls WHERE end_ts IS NULL)
      AND scope_hash IN (SELECT key_hash(scope) FROM _grow_calls WHERE end_ts IS NULL)
      AND coalesce(mcp_session_id, connection_id) IN (SELECT scope FROM _grow_calls WHERE end_ts IS NULL)
      AND ts IS NOT NULL GROUP BY coalesce(mcp_session_id, connection_id)
), wp AS (
    SELECT lo - to_microseconds(CAST($window_ms * 1000 AS BIGINT)) AS lo,
           hi + to_microseconds(CAST($window_ms * 1000 AS BIGINT)) AS hi FROM w
), r AS (
    SELECT s.trace_id, s.span_id, s.start_ts, s.kind, s.service_name, s.mcp_method_name FROM spans s
    WHERE s.start_ts BETWEEN (SELECT min(lo) FROM wp) AND (SELECT max(hi) FROM wp)
      AND EXISTS (SELECT 1 FROM wp WHERE s.start_ts BETWEEN wp.lo AND wp.hi)
    UNION ALL
    SELECT trace_id, span_id, start_ts, kind, service_name, mcp_method_name FROM _new_span
)
SELECT DISTINCT r.trace_id, r.span_id, r.start_ts FROM r
WHERE r.start_ts IS NOT NULL AND r.kind IN ('server', 'consumer') AND r.service_name IS NOT NULL
  AND r.mcp_method_name IS NULL;

-- without candidate roots no call may hold one
IF NO ROWS IN _down_root_cand;

CREATE OR REPLACE TEMP TABLE _down_root_calls (session_id VARCHAR);

END IF;

IF ROWS IN _down_root_cand;

-- a root's trace holds no call and no span joined to a call as its client or server side
DELETE FROM _down_root_cand WHERE trace_id IN (
    SELECT c.trace_id FROM calls c WHERE c.trace_hash IN (SELECT key_hash(trace_id) FROM _down_root_cand)
      AND c.trace_id IN (SELECT trace_id FROM _down_root_cand)
    UNION SELECT x.trace_id FROM call_spans x WHERE x.trace_hash IN (SELECT key_hash(trace_id) FROM _down_root_cand)
      AND x.trace_id IN (SELECT trace_id FROM _down_root_cand) AND x.role <> 'downstream');

CREATE OR REPLACE TEMP TABLE _down_root_calls AS
WITH open_end AS (
    -- the last message of the transport of each unanswered call that began before a root
    SELECT coalesce(m.mcp_session_id, m.connection_id) AS scope, max(m.ts) AS last_ts FROM messages m
    SEMI JOIN (SELECT c.scope_hash, coalesce(c.mcp_session_id, c.connection_id) AS scope FROM calls c
               WHERE c.end_ts IS NULL AND c.direction = 'client_to_server'
                 AND c.start_ts <= (SELECT max(start_ts) FROM _down_root_cand)
                 + to_microseconds(CAST($window_ms * 1000 AS BIGINT))) o
      ON o.scope_hash = m.scope_hash AND o.scope = coalesce(m.mcp_session_id, m.connection_id)
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

END IF;

-- the traces of host spans carrying the tool-call id of a call in scope or of a new record (the scratch
-- database copies them: scope_inputs.sql)
CREATE OR REPLACE TEMP TABLE _host_trace AS
SELECT DISTINCT trace_id FROM spans
WHERE mcp_side = 'host' AND tool_call_id IN (SELECT call_key FROM _grow_calls WHERE call_key IS NOT NULL
                                             UNION SELECT k FROM _seed_call_key);

-- every trace the scratch database copies (scope_inputs.sql) brings every call that carries it or was joined
-- to one of its spans: a span there held by a call outside would look free (transport scopes and traces by
-- their hashes, as in scope_seed.sql: a key sharing one only adds sessions)
CREATE OR REPLACE TEMP TABLE _aff AS
WITH sc AS (
    SELECT DISTINCT scope FROM _grow_calls
), tr AS (
    SELECT trace_id FROM _grow_calls WHERE trace_id IS NOT NULL
    UNION SELECT x.trace_id FROM call_spans x SEMI JOIN _grow_calls c USING (call_id)
    UNION SELECT trace_id FROM _attr_trace
    UNION SELECT trace_id FROM _down_root_cand
    UNION SELECT trace_id FROM _host_trace
)
SELECT session_id FROM _aff
UNION SELECT session_id FROM calls WHERE scope_hash IN (SELECT key_hash(scope) FROM sc)
UNION SELECT session_id FROM calls WHERE trace_hash IN (SELECT key_hash(trace_id) FROM tr)
UNION SELECT c.session_id FROM call_spans x JOIN calls c USING (call_id)
      WHERE x.trace_hash IN (SELECT key_hash(trace_id) FROM tr)
UNION SELECT session_id FROM calls
      WHERE call_id IN (SELECT call_id FROM _dirty_call UNION SELECT call_id FROM _attr_evid)
UNION SELECT session_id FROM _down_root_calls;
