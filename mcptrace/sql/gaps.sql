-- Gap detection (DESIGN §5): every place where correlation was lost or is doubtful, with
-- the evidence in `detail`.

CREATE OR REPLACE TEMP TABLE _scope_session AS
SELECT transport_session AS scope, arg_max(session_id, n) AS session_id
FROM (SELECT transport_session, session_id, count(*) AS n FROM calls GROUP BY ALL) GROUP BY 1;

CREATE OR REPLACE TEMP TABLE _gap_rows AS
-- requests without any trace context
SELECT 'missing_trace_context' AS code, 'warning' AS severity, c.session_id, c.call_id, m.message_id,
       NULL::VARCHAR AS trace_id, NULL::VARCHAR AS span_id, m.ts,
       json_object('method', m.method, 'rpc_id', m.rpc_id, 'looked_in', ['params._meta.traceparent', 'HTTP traceparent header']) AS detail
FROM calls c JOIN messages m ON m.message_id = c.request_message_id
WHERE m.traceparent IS NULL AND m.http_traceparent IS NULL
UNION ALL
SELECT 'header_only_trace_context', 'warning', c.session_id, c.call_id, m.message_id, c.trace_id, c.parent_span_id, m.ts,
       json_object('method', m.method, 'rpc_id', m.rpc_id, 'http_traceparent', m.http_traceparent)
FROM calls c JOIN messages m ON m.message_id = c.request_message_id
WHERE m.traceparent IS NULL AND m.http_traceparent IS NOT NULL
UNION ALL
SELECT 'invalid_traceparent', 'error', c.session_id, c.call_id, m.message_id, NULL, NULL, m.ts,
       json_object('method', m.method, 'rpc_id', m.rpc_id, 'where', w.loc, 'value', left(w.val, 200))
FROM calls c JOIN messages m ON m.message_id = c.request_message_id,
     (SELECT '_meta.traceparent' AS loc, m.traceparent AS val WHERE m.traceparent IS NOT NULL AND NOT m.traceparent_valid
      UNION ALL
      SELECT 'HTTP traceparent header', m.http_traceparent WHERE m.http_traceparent IS NOT NULL
             AND NOT w3c_traceparent_valid(m.http_traceparent)) w
UNION ALL
SELECT 'trace_context_mismatch', 'warning', c.session_id, c.call_id, m.message_id, c.trace_id, c.parent_span_id, m.ts,
       json_object('meta_traceparent', m.traceparent, 'http_traceparent', m.http_traceparent)
FROM calls c JOIN messages m ON m.message_id = c.request_message_id
WHERE m.traceparent_valid AND w3c_traceparent_valid(m.http_traceparent)
  AND substr(m.traceparent, 4, 49) <> substr(m.http_traceparent, 4, 49)
UNION ALL
SELECT 'unanswered_request', 'error', c.session_id, c.call_id, c.request_message_id, c.trace_id, NULL, c.start_ts,
       json_object('method', c.method, 'rpc_id', c.rpc_id, 'stream', c.transport_session,
                   'capture_ends', (SELECT max(ts) FROM messages))
FROM calls c WHERE c.status = 'unanswered'
UNION ALL
SELECT 'cancelled', 'info', c.session_id, c.call_id, c.cancel_message_id, c.trace_id, NULL, m.ts,
       json_object('method', c.method, 'rpc_id', c.rpc_id, 'reason', m.raw->>'$.params.reason',
                   'answered_after_cancel', c.response_message_id IS NOT NULL)
FROM calls c JOIN messages m ON m.message_id = c.cancel_message_id WHERE c.status = 'cancelled'
UNION ALL
SELECT 'orphan_response', 'error', ss.session_id, NULL, m.message_id, NULL, NULL, m.ts,
       json_object('kind', m.kind, 'rpc_id', m.rpc_id, 'stream', e.scope, 'direction', m.direction,
                   'looked_for', 'an open request with this id on this stream in the opposite direction')
FROM _answer a JOIN messages m ON m.message_id = a.response_message_id
JOIN _ev e ON e.message_id = m.message_id
LEFT JOIN _scope_session ss ON ss.scope = e.scope
WHERE a.request_message_id IS NULL
UNION ALL
SELECT 'duplicate_request_id', 'error', c.session_id, c.call_id, c.request_message_id, c.trace_id, NULL, c.start_ts,
       json_object('rpc_id', c.rpc_id, 'open_request_message_id', d.open_request_message_id, 'stream', c.transport_session)
FROM _dup d JOIN calls c ON c.call_id = d.request_message_id
UNION ALL
SELECT 'unknown_cancel_target', 'warning', ss.session_id, NULL, m.message_id, NULL, NULL, m.ts,
       json_object('request_id', m.cancel_request_id, 'stream', e.scope)
FROM _cancel x JOIN messages m ON m.message_id = x.cancel_message_id
JOIN _ev e ON e.message_id = m.message_id
LEFT JOIN _scope_session ss ON ss.scope = e.scope
WHERE x.request_message_id IS NULL
UNION ALL
SELECT 'unknown_progress_token', 'warning', ss.session_id, NULL, p.message_id, NULL, NULL, p.ts,
       json_object('progress_token', p.progress_token, 'stream', p.scope)
FROM _ev p
LEFT JOIN _scope_session ss ON ss.scope = p.scope
WHERE p.method = 'notifications/progress' AND NOT EXISTS (
    SELECT 1 FROM _ev q JOIN calls c ON c.call_id = q.message_id
    WHERE q.kind = 'request' AND q.scope = p.scope AND q.progress_token = p.progress_token
      AND q.ord < p.ord AND coalesce(c.end_ord, 9223372036854775807) > p.ord)
UNION ALL
SELECT 'orphan_span', 'warning', cs.session_id, cs.call_id, NULL, s.trace_id, s.span_id, s.start_ts,
       json_object('parent_span_id', s.parent_span_id, 'service_name', s.service_name, 'name', s.name)
FROM spans s
LEFT JOIN (SELECT x.span_id, x.trace_id, any_value(c.call_id) AS call_id, any_value(c.session_id) AS session_id
           FROM call_spans x JOIN calls c ON c.call_id = x.call_id GROUP BY ALL) cs
       ON cs.span_id = s.span_id AND cs.trace_id = s.trace_id
WHERE s.parent_span_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id);

CREATE OR REPLACE TABLE gaps AS
SELECT row_number() OVER (ORDER BY ts NULLS LAST, code, message_id, span_id) AS gap_id,
       code, severity, session_id, call_id, message_id, trace_id, span_id, ts, detail::JSON AS detail
FROM _gap_rows;

UPDATE sessions SET n_gaps = g.n FROM (SELECT session_id, count(*) AS n FROM gaps GROUP BY 1) g
WHERE sessions.session_id = g.session_id;
