-- Findings, the eligible units of each party (README: Findings), per kind of share (finding_rules.eligible),
-- counted over the views _ep_calls (call_party rows), _ep_sessions (sessions rows) and _ep_spans (spans
-- rows): the whole database for a full build, or the rows an append removes or adds, whose difference
-- mcptrace.analysis.findings applies to the table finding_eligible. Every count is a sum over calls,
-- sessions or spans (sessions_of_server counts a session once per server: an append's scope holds whole
-- sessions), so the differences add up.
CREATE OR REPLACE TEMP TABLE _eligible_part AS
SELECT 'requests_sent' AS eligible, 'client' AS party_kind, client_party AS party, count(*) AS n
FROM _ep_calls WHERE direction = 'client_to_server' GROUP BY 3
UNION ALL
SELECT 'requests_sent', 'server', server_party, count(*) FROM _ep_calls WHERE direction = 'server_to_client' GROUP BY 3
UNION ALL
SELECT 'stateless_requests', 'client', client_party, count(*) FROM _ep_calls
WHERE direction = 'client_to_server' AND stateless GROUP BY 3
UNION ALL
SELECT 'traced_requests_received', 'server', server_party, count(*) FROM _ep_calls
WHERE direction = 'client_to_server' AND traced GROUP BY 3
UNION ALL
SELECT 'requests_received', 'tool', server_party || ' · ' || tool, count(*) FROM _ep_calls
WHERE direction = 'client_to_server' GROUP BY 3
UNION ALL
SELECT 'requests_received', 'client', client_party, count(*) FROM _ep_calls WHERE direction = 'server_to_client' GROUP BY 3
UNION ALL
SELECT 'tool_calls', 'tool', server_party || ' · ' || tool, count(*) FROM _ep_calls
WHERE direction = 'client_to_server' GROUP BY 3
UNION ALL
SELECT 'sessions_of_client', 'client', client_party(client_name, client_version), count(*) FROM _ep_sessions GROUP BY 3
UNION ALL
SELECT 'sessions_of_server', 'transport', server_party, count(DISTINCT session_id) FROM _ep_calls GROUP BY 3
UNION ALL
SELECT 'service_spans', NULL, coalesce(service_name, 'unidentified service'), count(*) FROM _ep_spans GROUP BY 3;
