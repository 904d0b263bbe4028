-- Gap detection (README: gap codes): every place where correlation was lost or is doubtful, with
-- the evidence in `detail`. Each rule emits its code only; the severity comes from the TEMP table
-- gap_codes(code, severity, meaning) the rebuild fills from the registry (mcptrace/core/gapcodes.py),
-- and a code that is not in it stops the rebuild.

CREATE OR REPLACE TEMP TABLE _scope_session AS
SELECT transport_session AS scope, arg_max(session_id, n) AS session_id
FROM (SELECT transport_session, session_id, count(*) AS n FROM calls GROUP BY ALL) GROUP BY 1;

-- the call and session a span belongs to: its call_spans row, else a call of its trace
CREATE OR REPLACE TEMP TABLE _span_session AS
WITH joined AS (
    SELECT x.trace_id, x.span_id, any_value(c.call_id) AS call_id, any_value(c.session_id) AS session_id
    FROM call_spans x JOIN calls c ON c.call_id = x.call_id GROUP BY ALL
), by_trace AS (
    SELECT trace_id, any_value(session_id) AS session_id FROM calls WHERE trace_id IS NOT NULL GROUP BY 1
)
SELECT s.trace_id, s.span_id, j.call_id, coalesce(j.session_id, t.session_id) AS session_id
FROM spans s LEFT JOIN joined j USING (trace_id, span_id) LEFT JOIN by_trace t USING (trace_id);

-- HTTP transport events that explain an unanswered request: those of its exchange (the POST and
-- its SSE stream), else of its transport session from its start on
CREATE OR REPLACE TEMP TABLE _call_events AS
WITH u AS (
    SELECT c.call_id, c.mcp_session_id, c.start_ts, m.exchange_id
    FROM calls c JOIN messages m ON m.message_id = c.request_message_id WHERE c.status = 'unanswered'
), ev AS (
    SELECT * FROM http_events WHERE event NOT IN ('sse_priming', 'get_stream', 'other')
), by_exchange AS (
    SELECT u.call_id, e.* FROM u JOIN ev e ON e.exchange_id = u.exchange_id
), by_session AS (
    SELECT u.call_id, e.* FROM u JOIN ev e ON e.mcp_session_id = u.mcp_session_id AND e.ts >= u.start_ts
    WHERE u.call_id NOT IN (SELECT call_id FROM by_exchange)
), both_ AS (
    SELECT * FROM by_exchange UNION ALL SELECT * FROM by_session
)
SELECT call_id,
       list(json_object('event', event, 'ts', ts, 'http_method', http_method, 'http_status', http_status,
                        'error', error, 'exchange_id', exchange_id, 'last_event_id', last_event_id)
            ORDER BY ts, record_no)[:10] AS events
FROM both_ GROUP BY 1;

CREATE OR REPLACE TEMP TABLE _gap_rows AS
-- requests without any trace context
SELECT 'missing_trace_context' AS code, c.session_id, c.call_id, m.message_id,
       NULL::VARCHAR AS trace_id, NULL::VARCHAR AS span_id, m.ts,
       json_object('method', m.method, 'rpc_id', m.rpc_id, 'looked_in', ['params._meta.traceparent', 'HTTP traceparent header']) AS detail
FROM calls c JOIN messages m ON m.message_id = c.request_message_id
WHERE m.traceparent IS NULL AND m.http_traceparent IS NULL
UNION ALL
SELECT 'header_only_trace_context', c.session_id, c.call_id, m.message_id, c.trace_id, c.parent_span_id, m.ts,
       json_object('method', m.method, 'rpc_id', m.rpc_id, 'http_traceparent', m.http_traceparent)
FROM calls c JOIN messages m ON m.message_id = c.request_message_id
WHERE m.traceparent IS NULL AND m.http_traceparent IS NOT NULL
UNION ALL
SELECT 'invalid_traceparent', c.session_id, c.call_id, m.message_id, NULL, NULL, m.ts,
       json_object('method', m.method, 'rpc_id', m.rpc_id, 'where', w.loc, 'value', left(w.val, 200))
FROM calls c JOIN messages m ON m.message_id = c.request_message_id,
     (SELECT '_meta.traceparent' AS loc, m.traceparent AS val WHERE m.traceparent IS NOT NULL AND NOT m.traceparent_valid
      UNION ALL
      SELECT 'HTTP traceparent header', m.http_traceparent WHERE m.http_traceparent IS NOT NULL
             AND NOT w3c_traceparent_valid(m.http_traceparent)) w
UNION ALL
SELECT 'trace_context_mismatch', c.session_id, c.call_id, m.message_id, c.trace_id, c.parent_span_id, m.ts,
       json_object('meta_traceparent', m.traceparent, 'http_traceparent', m.http_traceparent)
FROM calls c JOIN messages m ON m.message_id = c.request_message_id
WHERE m.traceparent_valid AND w3c_traceparent_valid(m.http_traceparent)
  AND substr(m.traceparent, 4, 49) <> substr(m.http_traceparent, 4, 49)
UNION ALL
SELECT 'unanswered_request', c.session_id, c.call_id, c.request_message_id, c.trace_id, NULL, c.start_ts,
       json_object('method', c.method, 'rpc_id', c.rpc_id, 'stream', c.transport_session,
                   'stream_ends', se.last_ts, 'transport_events', coalesce(ce.events, []))
FROM calls c LEFT JOIN _call_events ce USING (call_id)
-- the last message of the call's stream (Mcp-Session-Id, else connection): no answer came before it
LEFT JOIN (SELECT scope, max(ts) AS last_ts FROM _ev GROUP BY 1) se ON se.scope = coalesce(c.mcp_session_id, c.connection_id)
WHERE c.status = 'unanswered'
UNION ALL
SELECT 'cancelled', c.session_id, c.call_id, c.cancel_message_id, c.trace_id, NULL, m.ts,
       json_object('method', c.method, 'rpc_id', c.rpc_id, 'reason', m.raw->>'$.params.reason',
                   'answered_after_cancel', c.response_message_id IS NOT NULL)
FROM calls c JOIN messages m ON m.message_id = c.cancel_message_id WHERE c.status = 'cancelled'
UNION ALL
SELECT 'orphan_response', ss.session_id, NULL, m.message_id, NULL, NULL, m.ts,
       json_object('kind', m.kind, 'rpc_id', m.rpc_id, 'stream', e.scope, 'direction', m.direction,
                   'looked_for', 'an open request with this id on this stream in the opposite direction')
FROM _answer a JOIN messages m ON m.message_id = a.response_message_id
JOIN _ev e ON e.message_id = m.message_id
LEFT JOIN _scope_session ss ON ss.scope = e.scope
WHERE a.request_message_id IS NULL
UNION ALL
SELECT 'duplicate_request_id', c.session_id, c.call_id, c.request_message_id, c.trace_id, NULL, c.start_ts,
       json_object('rpc_id', c.rpc_id, 'open_request_message_id', d.open_request_message_id, 'stream', c.transport_session)
FROM _dup d JOIN calls c ON c.call_id = d.request_message_id
UNION ALL
SELECT 'unknown_cancel_target', ss.session_id, NULL, m.message_id, NULL, NULL, m.ts,
       json_object('request_id', m.cancel_request_id, 'stream', e.scope)
FROM _cancel x JOIN messages m ON m.message_id = x.cancel_message_id
JOIN _ev e ON e.message_id = m.message_id
LEFT JOIN _scope_session ss ON ss.scope = e.scope
WHERE x.request_message_id IS NULL
UNION ALL
SELECT 'unknown_progress_token', ss.session_id, NULL, p.message_id, NULL, NULL, p.ts,
       json_object('progress_token', p.progress_token, 'stream', p.scope)
FROM _ev p
LEFT JOIN _scope_session ss ON ss.scope = p.scope
WHERE p.method = 'notifications/progress' AND NOT EXISTS (
    SELECT 1 FROM _ev q JOIN calls c ON c.call_id = q.message_id
    WHERE q.kind = 'request' AND q.scope = p.scope AND q.progress_token = p.progress_token
      AND q.ord < p.ord AND coalesce(c.end_ord, 9223372036854775807) > p.ord)
UNION ALL
SELECT 'orphan_span', cs.session_id, cs.call_id, NULL, s.trace_id, s.span_id, s.start_ts,
       json_object('parent_span_id', s.parent_span_id, 'service_name', s.service_name, 'name', s.name)
FROM spans s
LEFT JOIN _span_session cs ON cs.span_id = s.span_id AND cs.trace_id = s.trace_id
WHERE s.parent_span_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id);

-- trace joins (call_spans.sql) and spans' clocks: with no span there are none
IF ROWS IN spans;

INSERT INTO _gap_rows
SELECT 'server_span_unlinked', c.session_id, c.call_id, c.request_message_id, c.trace_id, x.span_id, c.start_ts,
       json_merge_patch(x.evidence, json_object('matched_by', x.matched_by, 'rpc_id', c.rpc_id, 'method', c.method))
FROM _cs_server x JOIN calls c ON c.call_id = x.call_id
WHERE x.matched_by IN ('link', 'attributes') AND c.trace_id IS NOT NULL;

INSERT INTO _gap_rows
WITH served AS (SELECT DISTINCT c.transport_session FROM _cs_server x JOIN calls c ON c.call_id = x.call_id)
SELECT 'server_span_missing', c.session_id, c.call_id, c.request_message_id, c.trace_id, NULL, c.start_ts,
       json_object('rpc_id', c.rpc_id, 'method', c.method, 'expected_parent_span_id', c.parent_span_id,
                   'looked_for', ['SERVER span with this parent', 'SERVER span linking to it',
                                  'SERVER span with this jsonrpc.request.id and mcp.method.name'],
                   'server_spans_loaded_for', c.transport_session)
FROM calls c
WHERE c.trace_id IS NOT NULL AND c.direction = 'client_to_server'
  AND c.transport_session IN (SELECT transport_session FROM served)
  AND NOT EXISTS (SELECT 1 FROM _cs_server x WHERE x.call_id = c.call_id);

-- one row per downstream root joined by time: the chosen call when one fits best, else none (the
-- candidates are in detail); the session is the chosen call's, else the earliest candidate's
INSERT INTO _gap_rows
SELECT 'downstream_unlinked', r.session_id, r.call_id, NULL, r.trace_id, r.span_id, r.start_ts,
       json_object('rule', r.rule, 'candidates', r.candidates[:20], 'n_candidates', r.n_candidates,
                   'chosen_call_id', r.call_id,
                   'client_span_id', r.via.span_id, 'client_span_trace_id', r.via.trace_id, 'client_span_name', r.via.name,
                   'downstream_service', r.downstream_service, 'downstream_span_name', r.downstream_span_name,
                   'downstream_trace_id', r.trace_id, 'call_trace_id', c.trace_id)
FROM _cs_down_root r LEFT JOIN calls c ON c.call_id = r.call_id;

-- clock skew: a server span outside its request/response interval on the capture's clock, or a
-- span of another service outside its parent, by more than $skew_ms
INSERT INTO _gap_rows
SELECT 'clock_skew_suspected', c.session_id, c.call_id, NULL, s.trace_id, s.span_id, s.start_ts,
       json_object('compared', 'server span vs request/response on the wire',
                   'request_ts', c.start_ts, 'response_ts', c.end_ts, 'span_start_ts', s.start_ts, 'span_end_ts', s.end_ts,
                   'starts_before_request_ms', date_diff('microsecond', s.start_ts, c.start_ts) / 1000.0,
                   'ends_after_response_ms', date_diff('microsecond', c.end_ts, s.end_ts) / 1000.0,
                   'tolerance_ms', $skew_ms)
FROM _cs_server x JOIN calls c ON c.call_id = x.call_id JOIN spans s ON s.span_id = x.span_id AND s.trace_id = x.trace_id
WHERE c.start_ts IS NOT NULL
  AND (date_diff('microsecond', s.start_ts, c.start_ts) > $skew_ms * 1000
       OR (c.status IN ('ok', 'error', 'tool_error', 'truncated') AND date_diff('microsecond', c.end_ts, s.end_ts) > $skew_ms * 1000));

INSERT INTO _gap_rows
SELECT 'clock_skew_suspected', cs.session_id, cs.call_id, NULL, s.trace_id, s.span_id, s.start_ts,
       json_object('compared', 'span vs its parent span of another service',
                   'parent_span_id', p.span_id, 'parent_service', p.service_name, 'service', s.service_name,
                   'starts_before_parent_ms', date_diff('microsecond', s.start_ts, p.start_ts) / 1000.0,
                   'ends_after_parent_ms', date_diff('microsecond', p.end_ts, s.end_ts) / 1000.0,
                   'tolerance_ms', $skew_ms)
FROM spans s JOIN spans p ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id
LEFT JOIN _span_session cs ON cs.span_id = s.span_id AND cs.trace_id = s.trace_id
WHERE s.service_name IS DISTINCT FROM p.service_name
  AND (date_diff('microsecond', s.start_ts, p.start_ts) > $skew_ms * 1000
       OR date_diff('microsecond', p.end_ts, s.start_ts) > $skew_ms * 1000
       -- ending late is skew only for a child shorter than its parent: a longer one is work
       -- that outlived its caller (a cancelled or timed-out request)
       OR (date_diff('microsecond', p.end_ts, s.end_ts) > $skew_ms * 1000 AND s.duration_ms <= p.duration_ms));

END IF;

-- 2026-07-28 stateless requests carrying no session key at all
INSERT INTO _gap_rows
SELECT 'missing_session_key', c.session_id, c.call_id, c.request_message_id, c.trace_id, NULL, c.start_ts,
       json_object('method', c.method, 'rpc_id', c.rpc_id, 'protocol_version', c.protocol_version,
                   'looked_in', ['params._meta session keys', 'Mcp-Client-Session-Id header'])
FROM calls c
WHERE c.direction = 'client_to_server' AND c.protocol_version >= '2026-07-28' AND c.mcp_session_id IS NULL
  AND c.request_session_key IS NULL;

-- a logical session whose transport session changed: a key carried it across. A transport is a
-- reconnect of the latest earlier one of the session that had ended (its last message) before it
-- began; transports open side by side (a host talking to two servers) are not reconnects.
INSERT INTO _gap_rows
WITH t AS (
    SELECT c.session_id, c.transport_session, min(c.start_ord) AS first_ord, min(c.start_ts) AS first_ts,
           arg_min(c.call_id, c.start_ord) AS first_call
    FROM calls c WHERE c.transport_session IS NOT NULL GROUP BY 1, 2
), t_end AS (
    SELECT t.*, e.last_ord FROM t JOIN (SELECT scope, max(ord) AS last_ord FROM _ev GROUP BY 1) e
      ON e.scope = t.transport_session
), r AS (
    SELECT b.*, (SELECT arg_max(a.transport_session, a.last_ord) FROM t_end a
                 WHERE a.session_id = b.session_id AND a.last_ord < b.first_ord) AS prev
    FROM t_end b
)
SELECT 'session_reconnect', r.session_id, r.first_call, NULL, NULL, NULL, r.first_ts,
       json_object('previous_transport', r.prev, 'new_transport', r.transport_session,
                   'carried_by', s.session_key_source, 'session_key', s.session_key,
                   'previous_transport_events', coalesce(ev.events, []))
FROM r JOIN sessions s USING (session_id)
LEFT JOIN (SELECT mcp_session_id, list(json_object('event', event, 'ts', ts, 'http_status', http_status, 'error', error)
                                       ORDER BY ts, record_no)[:10] AS events
           FROM http_events WHERE event NOT IN ('sse_priming', 'get_stream', 'other') GROUP BY 1) ev
       ON ev.mcp_session_id = r.prev
WHERE r.prev IS NOT NULL;

-- Reconnects nothing links (session_split): a logical session that ended abnormally (requests
-- left unanswered, or its transport reset, failed a resumption or could not reach the server;
-- not one whose transport ended with a successful DELETE) pairs with at most one logical session
-- of the same client (clientInfo name and version, same server) that began within $reconnect_s
-- after it ended, and each such later session with at most one earlier: one to one, nearest
-- first (ONE_TO_ONE below). Every earlier part with a candidate gets a 'before' row
-- (other_session_id: its pair, NULL when every candidate went to another), every paired later
-- part an 'after' row; `candidates` lists every pairing that fitted. A transport reset, failed
-- resumption or unreachable server counts when it is on the session's last transport; a DELETE
-- ends it cleanly when the server answered it with a 2xx or 3xx status.
CREATE OR REPLACE TEMP TABLE _sess_events AS
SELECT c.session_id, e.event, e.ts, e.http_status, e.error, e.mcp_session_id
FROM (SELECT DISTINCT session_id, mcp_session_id FROM calls WHERE mcp_session_id IS NOT NULL) c
JOIN http_events e ON e.mcp_session_id = c.mcp_session_id
WHERE e.event NOT IN ('sse_priming', 'get_stream', 'other');

CREATE OR REPLACE TEMP TABLE _split_cand AS
WITH agg AS (
    SELECT session_id, count(*) FILTER (WHERE status = 'unanswered') AS n_unanswered,
           arg_max(call_id, start_ord) AS last_call, arg_min(call_id, start_ord) AS first_call,
           arg_max(mcp_session_id, start_ord) AS last_mcp_session_id
    FROM calls GROUP BY 1
), ev AS (
    SELECT x.session_id,
           count(*) FILTER (WHERE x.event IN ('reset', 'resumption_failed', 'upstream_error', 'client_disconnected')) AS n_bad,
           list(DISTINCT x.event ORDER BY x.event) AS events
    FROM _sess_events x JOIN agg a USING (session_id) WHERE x.mcp_session_id = a.last_mcp_session_id GROUP BY 1
), clean AS (
    SELECT DISTINCT x.session_id FROM _sess_events x JOIN agg a USING (session_id)
    WHERE x.event = 'delete' AND x.http_status BETWEEN 200 AND 399 AND x.mcp_session_id = a.last_mcp_session_id
), st AS (
    SELECT s.session_id, s.client_name, s.client_version, s.server_name, s.first_ts, s.last_ts,
           coalesce(a.n_unanswered, 0) AS n_unanswered, coalesce(ev.n_bad, 0) AS n_bad_events, ev.events,
           a.last_call, a.first_call, s.session_id IN (SELECT session_id FROM clean) AS ended_clean
    FROM sessions s LEFT JOIN agg a USING (session_id) LEFT JOIN ev USING (session_id)
    WHERE s.client_name IS NOT NULL
), ended AS (
    SELECT * FROM st WHERE (n_unanswered > 0 OR n_bad_events > 0) AND NOT ended_clean AND last_ts IS NOT NULL
)
SELECT a.session_id AS a_id, b.session_id AS b_id, a.client_name, a.client_version, a.last_ts AS a_last,
       b.first_ts AS b_first, a.n_unanswered, a.events AS a_events, a.last_call, b.first_call,
       date_diff('microsecond', a.last_ts, b.first_ts) AS dist_us
-- an equi-join on (client, time bucket of $reconnect_s): a's bucket and the next hold every b in reach
FROM (SELECT *, unnest([0, 1]) + (epoch_us(last_ts) // CAST($reconnect_s * 1e6 AS BIGINT)) AS bucket FROM ended) a
JOIN (SELECT *, epoch_us(first_ts) // CAST($reconnect_s * 1e6 AS BIGINT) AS bucket FROM st WHERE first_ts IS NOT NULL) b
  ON b.client_name = a.client_name AND b.bucket = a.bucket
 AND b.client_version IS NOT DISTINCT FROM a.client_version
 AND (a.server_name IS NULL OR b.server_name IS NULL OR a.server_name = b.server_name)
 AND b.session_id <> a.session_id AND b.first_ts >= a.last_ts
 AND date_diff('microsecond', a.last_ts, b.first_ts) <= $reconnect_s * 1e6;

ONE_TO_ONE _split_cand -> _split_pair LEFT (a_id) RIGHT (b_id) ORDER BY dist_us, a_id, b_id;

INSERT INTO _gap_rows
WITH ca AS (
    SELECT a_id, list(b_id ORDER BY dist_us, b_id) AS candidates FROM _split_cand GROUP BY 1
), cb AS (
    SELECT b_id, list(a_id ORDER BY dist_us, a_id) AS candidates FROM _split_cand GROUP BY 1
), ev AS (
    SELECT session_id, list(json_object('event', event, 'ts', ts, 'http_status', http_status, 'error', error,
                                        'mcp_session_id', mcp_session_id) ORDER BY ts)[:20] AS events
    FROM _sess_events GROUP BY 1
), one_a AS (
    SELECT DISTINCT ON (a_id) * FROM _split_cand ORDER BY a_id
), one_b AS (
    SELECT DISTINCT ON (b_id) * FROM _split_cand ORDER BY b_id
), rows AS (
    SELECT a.a_id AS session_id, p.b_id AS other, a.last_call AS call_id, a.a_last AS ts, 'before' AS part,
           ca.candidates, a.client_name, a.client_version, a.n_unanswered, a.a_id
    FROM one_a a JOIN ca USING (a_id) LEFT JOIN _split_pair p USING (a_id)
    UNION ALL
    SELECT p.b_id, p.a_id, b.first_call, b.b_first, 'after', cb.candidates, b.client_name, b.client_version,
           a.n_unanswered, p.a_id
    FROM _split_pair p JOIN one_b b USING (b_id) JOIN cb USING (b_id) JOIN one_a a ON a.a_id = p.a_id
)
SELECT 'session_split', r.session_id, r.call_id, NULL, NULL, NULL, r.ts,
       json_object('other_session_id', r.other, 'part', r.part, 'client_name', r.client_name,
                   'client_version', r.client_version,
                   'seconds_between', date_diff('microsecond', x.a_last, x.b_first) / 1e6,
                   'unanswered_in_first_part', r.n_unanswered,
                   'candidates', r.candidates[:20], 'n_candidates', len(r.candidates),
                   'assignment', CASE WHEN r.other IS NULL THEN 'every candidate went to a nearer earlier part'
                                      WHEN len(r.candidates) > 1 THEN 'one to one, nearest start; other pairings fitted'
                                      ELSE 'the only pairing that fitted' END,
                   'transport_events', coalesce(ev.events, []),
                   'keys_compared', ['session keys in _meta', 'Mcp-Client-Session-Id', 'trace id', 'Mcp-Session-Id'])
FROM rows r
LEFT JOIN _split_cand x ON x.a_id = CASE r.part WHEN 'before' THEN r.session_id ELSE r.other END
                       AND x.b_id = CASE r.part WHEN 'before' THEN r.other ELSE r.session_id END
LEFT JOIN ev ON ev.session_id = r.a_id;

-- every code emitted must be in the registry: the first one that is not fails the rebuild
SELECT error('gap code ' || g.code || ' is not in the registry of gap codes (mcptrace/core/gapcodes.py)')
FROM (SELECT DISTINCT code FROM _gap_rows) g ANTI JOIN gap_codes k USING (code);

-- one row per code, call, message and span (and part of a split, place of an invalid traceparent,
-- comparison of a skew): evidence reached twice (a span in two dumps, two rules finding the same
-- thing) is one gap; the severity is the registry's
CREATE OR REPLACE TABLE gaps AS
WITH r AS (
    -- the detail's distinguishing members, read in one pass over its text
    SELECT *, json_extract_string(detail, ['$.part', '$.where', '$.compared']) AS detail_key FROM _gap_rows
)
SELECT row_number() OVER (ORDER BY ts NULLS LAST, code, message_id, span_id, call_id) AS gap_id,
       code, k.severity, session_id, call_id, message_id, trace_id, span_id, ts, detail::JSON AS detail
FROM r JOIN gap_codes k USING (code)
QUALIFY row_number() OVER (PARTITION BY code, call_id, message_id, trace_id, span_id, session_id, detail_key
                           ORDER BY ts NULLS LAST, detail::VARCHAR) = 1;

UPDATE sessions SET n_gaps = g.n FROM (SELECT session_id, count(*) AS n FROM gaps GROUP BY 1) g
WHERE sessions.session_id = g.session_id;
