-- Findings (README: Findings): the gaps grouped by cause (the gap code) and responsible party, every gap
-- in exactly one finding, from the parties findings_party.sql gave each call and gap. The share is the
-- affected units (calls, sessions or spans) out of the eligible ones of that party (its requests, its
-- traced requests, its sessions, its spans). mcptrace.analysis.findings writes each finding's sentence
-- and remedy and ranks them.

-- the eligible units of each party, per kind of share (finding_rules.eligible)
CREATE OR REPLACE TEMP TABLE _eligible AS
SELECT 'requests_sent' AS eligible, 'client' AS party_kind, client_party AS party, count(*) AS n
FROM call_party WHERE direction = 'client_to_server' GROUP BY 3
UNION ALL
SELECT 'requests_sent', 'server', server_party, count(*) FROM call_party WHERE direction = 'server_to_client' GROUP BY 3
UNION ALL
SELECT 'stateless_requests', 'client', client_party, count(*) FROM call_party
WHERE direction = 'client_to_server' AND stateless GROUP BY 3
UNION ALL
SELECT 'traced_requests_received', 'server', server_party, count(*) FROM call_party
WHERE direction = 'client_to_server' AND traced GROUP BY 3
UNION ALL
SELECT 'requests_received', 'tool', server_party || ' · ' || tool, count(*) FROM call_party
WHERE direction = 'client_to_server' GROUP BY 3
UNION ALL
SELECT 'requests_received', 'client', client_party, count(*) FROM call_party WHERE direction = 'server_to_client' GROUP BY 3
UNION ALL
SELECT 'tool_calls', 'tool', server_party || ' · ' || tool, count(*) FROM call_party
WHERE direction = 'client_to_server' GROUP BY 3
UNION ALL
SELECT 'sessions_of_client', 'client', client_party(client_name, client_version), count(*) FROM sessions GROUP BY 3
UNION ALL
SELECT 'sessions_of_server', 'transport', server_party, count(DISTINCT session_id) FROM call_party GROUP BY 3
UNION ALL
SELECT 'service_spans', NULL, coalesce(service_name, 'unidentified service'), count(*) FROM spans GROUP BY 3;

CREATE OR REPLACE TEMP TABLE _finding_rows AS
WITH f AS (
    SELECT code, party_kind, party, any_value(severity) AS severity, any_value(unit) AS unit,
           any_value(eligible) AS eligible, any_value(tool_party) AS tool_party, any_value(server) AS server,
           any_value(tool) AS tool, any_value(downstream_service) AS downstream_service,
           count(*) AS n_gaps, count(DISTINCT call_id) AS n_calls, count(DISTINCT session_id) AS n_sessions,
           CASE any_value(unit) WHEN 'calls' THEN count(DISTINCT call_id) WHEN 'sessions' THEN count(DISTINCT session_id)
                ELSE count(*) END AS n_affected,
           min(ts) AS first_ts, max(ts) AS last_ts,
           CASE WHEN bool_or(inferred) THEN 'inferred' ELSE 'exact' END AS confidence,
           list(gap_id ORDER BY gap_id) AS gap_ids,
           -- the earliest gap's call and session (ties: the smallest call id, session id)
           arg_min(call_id, struct_pack(t := coalesce(epoch_us(ts), 9223372036854775807), c := call_id))
               FILTER (WHERE call_id IS NOT NULL) AS example_call_id,
           arg_min(session_id, struct_pack(t := coalesce(epoch_us(ts), 9223372036854775807), s := session_id))
               FILTER (WHERE session_id IS NOT NULL) AS example_session_id
    FROM gap_party GROUP BY code, party_kind, party
)
SELECT f.*, e.n AS n_eligible,
       CASE WHEN e.n > 0 THEN least(f.n_affected / e.n, 1.0) END AS share
FROM f LEFT JOIN _eligible e
  ON e.eligible = f.eligible
 AND e.party = coalesce(f.tool_party, f.party)
 AND e.party_kind IS NOT DISTINCT FROM CASE WHEN f.eligible = 'service_spans' THEN NULL
                                            WHEN f.tool_party IS NOT NULL THEN 'tool' ELSE f.party_kind END;
