-- An append's scope, its records (mcptrace.analysis.incremental): every message of the transport scopes of
-- the sessions in scope and of the new records; the HTTP events of those scopes, sessions and exchanges;
-- every span of the traces the scope's calls carry or were joined to, of the traces of host spans
-- carrying the tool-call id of a call in scope or of a new record (scope_grow.sql's _host_trace), of the
-- new spans' traces, and of the spans whose join an inferred rule may change (scope_grow.sql).
CREATE OR REPLACE TEMP TABLE _scope_calls AS
SELECT call_id FROM calls WHERE session_hash IN (SELECT key_hash(session_id) FROM _aff)
  AND session_id IN (SELECT session_id FROM _aff);

CREATE OR REPLACE TEMP TABLE _scope_scope AS
SELECT DISTINCT coalesce(mcp_session_id, connection_id) AS scope FROM calls
WHERE session_hash IN (SELECT key_hash(session_id) FROM _aff) AND session_id IN (SELECT session_id FROM _aff)
UNION SELECT scope FROM _seed_scope;

CREATE OR REPLACE TEMP TABLE _scope_msg AS
SELECT message_id, mcp_session_id, exchange_id, call_key FROM messages
WHERE scope_hash IN (SELECT key_hash(scope) FROM _scope_scope)
  AND coalesce(mcp_session_id, connection_id) IN (SELECT scope FROM _scope_scope);

CREATE OR REPLACE TEMP TABLE _scope_trace AS
SELECT trace_id FROM calls WHERE call_id IN (SELECT call_id FROM _scope_calls) AND trace_id IS NOT NULL
UNION SELECT trace_id FROM call_spans WHERE call_id IN (SELECT call_id FROM _scope_calls)
UNION SELECT trace_id FROM _seed_trace
UNION SELECT trace_id FROM _attr_trace
UNION SELECT trace_id FROM _down_root_cand
UNION SELECT trace_id FROM _host_trace;
