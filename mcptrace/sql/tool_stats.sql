-- Per-tool statistics (mcptrace.analysis.toolstats.tool_stats): the calls of one request method ($method,
-- NULL: every method) grouped by the dimensions $by names (VARCHAR[]: any of 'server', 'client', 'tool',
-- 'session_id', 'method', in the order to sort by). A dimension $by does not name is NULL in every row and
-- groups nothing; the caller keeps the named ones. No SQL text is built from the arguments.
-- Parties come from call_party (sql/findings_party.sql): the server's name alone (serverInfo name, else the
-- service.name of its spans), the client's name and version, the tool (tools/call: the tool's name; another
-- request: its method). Latency is over answered calls only (a response or error was seen); bytes are the
-- UTF-8 length of messages.raw, the message as stored (credentials redacted at load).
WITH c AS (
    SELECT coalesce(p.server_name, 'unidentified server') AS server, p.client_party AS client, p.tool,
           c.session_id, c.method, c.status, c.error_code, c.start_ts, coalesce(c.end_ts, c.start_ts) AS seen_ts,
           CASE WHEN c.response_message_id IS NOT NULL THEN c.duration_ms END AS answered_ms,
           strlen(q.raw) AS request_bytes, strlen(r.raw) AS response_bytes
    FROM calls c
    JOIN call_party p USING (call_id)
    LEFT JOIN messages q ON q.message_id = c.request_message_id
    LEFT JOIN messages r ON r.message_id = c.response_message_id
    WHERE $method::VARCHAR IS NULL OR c.method = $method::VARCHAR
), g AS (
    SELECT CASE WHEN list_contains($by::VARCHAR[], 'server') THEN server END AS server,
           CASE WHEN list_contains($by::VARCHAR[], 'client') THEN client END AS client,
           CASE WHEN list_contains($by::VARCHAR[], 'tool') THEN tool END AS tool,
           CASE WHEN list_contains($by::VARCHAR[], 'session_id') THEN session_id END AS session_id,
           CASE WHEN list_contains($by::VARCHAR[], 'method') THEN method END AS method,
           count(*) AS calls,
           count(*) FILTER (WHERE status = 'ok') AS ok,
           count(*) FILTER (WHERE status = 'error') AS errors,
           count(*) FILTER (WHERE status = 'tool_error') AS tool_errors,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status = 'unanswered') AS unanswered,
           count(*) FILTER (WHERE status = 'truncated') AS truncated,
           quantile_cont(answered_ms, [0.5, 0.95, 0.99]) AS q,
           avg(answered_ms) AS mean_ms,
           max(answered_ms) AS max_ms,
           histogram(error_code)::MAP(BIGINT, BIGINT) AS codes,
           coalesce(sum(request_bytes), 0)::BIGINT AS request_bytes,
           coalesce(sum(response_bytes), 0)::BIGINT AS response_bytes,
           avg(request_bytes) AS mean_request_bytes,
           avg(response_bytes) AS mean_response_bytes,
           min(start_ts) AS first_seen,
           max(seen_ts) AS last_seen
    FROM c
    GROUP BY ALL
)
SELECT server, client, tool, session_id, method,
       calls, ok, errors, tool_errors, cancelled, unanswered, truncated,
       errors / calls AS error_rate,
       tool_errors / calls AS tool_error_rate,
       q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, mean_ms, max_ms,
       -- the codes, most frequent first (then by code): '-32602×3, -32603×1'
       CASE WHEN codes IS NOT NULL THEN array_to_string(list_transform(
           list_sort(list_transform(map_entries(codes), lambda e: {'n': -e.value, 'code': e.key})),
           lambda e: e.code::VARCHAR || '×' || (-e.n)::VARCHAR), ', ') END AS error_codes,
       coalesce(codes, MAP {}::MAP(BIGINT, BIGINT)) AS error_code_counts,
       request_bytes, response_bytes, mean_request_bytes, mean_response_bytes, first_seen, last_seen
FROM g
ORDER BY calls DESC,
         list_transform($by::VARCHAR[], lambda k: CASE k WHEN 'server' THEN server WHEN 'client' THEN client
                                                        WHEN 'tool' THEN tool WHEN 'session_id' THEN session_id
                                                        WHEN 'method' THEN method END);
