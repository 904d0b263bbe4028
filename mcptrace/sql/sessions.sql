-- The sessions table from calls whose session_id is set (assigned by mcptrace.analysis.rebuild).
-- Parameter-free; _session_keys(session_id, session_key, session_key_source) comes from Python.

CREATE OR REPLACE TABLE sessions AS
WITH ev AS (
    SELECT session_id, start_ord AS ord, 1 AS d FROM calls
    UNION ALL
    SELECT session_id, end_ord AS ord, -1 AS d FROM calls WHERE end_ord IS NOT NULL
), run AS (
    SELECT session_id, sum(d) OVER (PARTITION BY session_id ORDER BY ord, d ROWS UNBOUNDED PRECEDING) AS in_flight FROM ev
), par AS (
    SELECT session_id, max(in_flight) AS max_parallel FROM run GROUP BY 1
), agg AS (
    SELECT session_id,
           min(start_ts) AS first_ts,
           greatest(max(start_ts), max(end_ts)) AS last_ts,
           count(*) AS n_calls,
           count(DISTINCT transport_session) AS n_transport_sessions,
           count(*) FILTER (WHERE method = 'tools/call') AS n_tool_calls,
           count(*) FILTER (WHERE status IN ('error', 'tool_error')) AS n_errors,
           min(start_ord) AS first_ord
    FROM calls GROUP BY 1
), cl AS (
    SELECT c.session_id, arg_min(m.client_name, m.message_id) AS client_name,
           arg_min(m.client_version, m.message_id) AS client_version
    FROM calls c JOIN messages m ON m.message_id = c.request_message_id
    WHERE m.client_name IS NOT NULL GROUP BY 1
), sv AS (
    SELECT c.session_id, arg_min(m.server_name, m.message_id) AS server_name,
           arg_min(m.server_version, m.message_id) AS server_version
    FROM calls c JOIN messages m ON m.message_id = c.response_message_id
    WHERE m.server_name IS NOT NULL GROUP BY 1
)
SELECT k.session_id, k.session_key, k.session_key_source,
       agg.first_ts, agg.last_ts, agg.n_calls, agg.n_transport_sessions,
       par.max_parallel::BIGINT AS max_parallel,
       0::BIGINT AS n_gaps,
       agg.n_tool_calls, agg.n_errors, cl.client_name, sv.server_name, cl.client_version, sv.server_version
FROM _session_keys k
JOIN agg USING (session_id)
LEFT JOIN par USING (session_id)
LEFT JOIN cl USING (session_id)
LEFT JOIN sv USING (session_id)
ORDER BY agg.first_ord;
