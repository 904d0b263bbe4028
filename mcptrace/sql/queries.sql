-- Table macros over the analysis tables, shared by the library, the CLI, the charts and the explorer
-- (README: How the correlation works). Temporary: created on each connection once the tables exist
-- (mcptrace.analysis.queries.install); DuckDB binds a table macro's tables when it is created.

-- The turn key of each call of session p_session: its turn_id, or for calls without a turn
-- 'untraced:<first call_id of its run>' (consecutive turnless calls in wire order, at most p_run per run).
CREATE OR REPLACE TEMP MACRO turn_keys(p_session, p_run) AS TABLE
WITH c AS (
    SELECT call_id, turn_id, start_ord,
           sum(CASE WHEN turn_id IS NOT NULL THEN 1 ELSE 0 END) OVER (ORDER BY start_ord ROWS UNBOUNDED PRECEDING) AS run
    FROM calls WHERE session_id = p_session
), u AS (
    SELECT *, (row_number() OVER (PARTITION BY turn_id IS NULL, run ORDER BY start_ord) - 1) // p_run AS chunk FROM c
)
SELECT call_id, turn_id,
       coalesce(turn_id, 'untraced:' || first_value(call_id) OVER (PARTITION BY turn_id IS NULL, run, chunk
                                                                  ORDER BY start_ord)) AS turn
FROM u;

-- The calls of one turn of session p_session (every call of the session when p_turn is NULL).
CREATE OR REPLACE TEMP MACRO turn_calls(p_session, p_run, p_turn) AS TABLE
SELECT call_id FROM turn_keys(p_session, p_run) WHERE p_turn IS NULL OR turn = p_turn;

-- One row per turn of session p_session in wire order (mcptrace.analysis.turns.turns documents the columns).
CREATE OR REPLACE TEMP MACRO session_turns(p_session, p_run) AS TABLE
WITH k AS (SELECT * FROM turn_keys(p_session, p_run)),
g AS (SELECT call_id, count(*) AS n, list(DISTINCT code ORDER BY code) AS codes,
             min(CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END) AS sev
      FROM gaps WHERE session_id = p_session AND call_id IS NOT NULL GROUP BY call_id),
ts AS (SELECT trace_id, span_id, any_value(name) AS name FROM spans GROUP BY ALL),
t AS (
    SELECT k.turn, any_value(k.turn_id) AS turn_id, any_value(c.turn_source) AS turn_source, min(c.start_ts) AS first_ts,
           max(coalesce(c.end_ts, c.start_ts)) AS last_ts, count(*) AS n_calls,
           count(*) FILTER (WHERE c.status IN ('error', 'tool_error')) AS n_errors,
           count(*) FILTER (WHERE c.status = 'cancelled') AS n_cancelled,
           count(*) FILTER (WHERE c.status = 'unanswered') AS n_unanswered,
           coalesce(sum(g.n), 0)::BIGINT AS n_gaps,
           coalesce(list_sort(list_distinct(flatten(list(g.codes) FILTER (WHERE g.codes IS NOT NULL)))),
                    []::VARCHAR[]) AS gap_codes,
           ['error', 'warning', 'info'][min(g.sev) + 1] AS gap_severity,
           min(c.start_ord) AS first_ord, max(coalesce(c.end_ord, c.start_ord)) AS last_ord,
           min(c.call_id) AS first_call_id,
           list_sort(list_distinct(list(coalesce(c.tool_name, c.method)))) AS tools
    FROM k JOIN calls c USING (call_id) LEFT JOIN g USING (call_id)
    GROUP BY k.turn
)
SELECT t.turn, t.turn_id,
       coalesce(ts.name, CASE WHEN t.turn_id IS NULL THEN 'untraced calls'
                              WHEN t.turn_source = 'overlap' THEN 'overlapping calls (no trace context)'
                              WHEN t.turn_source IN ('trace', 'client_span', 'host_span') THEN 'trace ' || left(t.turn_id, 8)
                              -- the host's own turn id (a _meta key or spans.turn_id)
                              ELSE t.turn_source || ' ' || t.turn_id END) AS name,
       t.first_ts, t.last_ts, date_diff('microsecond', t.first_ts, t.last_ts) / 1000.0 AS duration_ms,
       t.n_calls, t.n_errors, t.n_cancelled, t.n_unanswered, t.n_gaps, t.gap_codes, t.gap_severity, t.tools,
       t.first_ord, t.last_ord, t.first_call_id
FROM t LEFT JOIN ts ON t.turn_source IN ('client_span', 'host_span') AND ts.trace_id = split_part(t.turn_id, '/', 1)
                   AND ts.span_id = split_part(t.turn_id, '/', 2)
ORDER BY t.first_ord;

-- The gaps, optionally of one code and/or session, in gap_id order, with the tool (or method) and
-- JSON-RPC id of the call each points at (call_name, call_rpc_id; NULL without a call).
CREATE OR REPLACE TEMP MACRO gap_rows(p_code, p_session) AS TABLE
SELECT g.*, coalesce(c.tool_name, c.method) AS call_name, c.rpc_id AS call_rpc_id
FROM gaps g LEFT JOIN calls c USING (call_id)
WHERE (p_code IS NULL OR g.code = p_code) AND (p_session IS NULL OR g.session_id = p_session)
ORDER BY g.gap_id;

-- Row counts of the contract tables: the one-line summary of a database.
CREATE OR REPLACE TEMP MACRO table_counts() AS TABLE
SELECT (SELECT count(*) FROM sources) AS sources, (SELECT count(*) FROM messages) AS messages,
       (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM calls) AS calls,
       (SELECT count(*) FROM spans) AS spans, (SELECT count(*) FROM gaps) AS gaps,
       (SELECT count(*) FROM rejects) AS rejects;
