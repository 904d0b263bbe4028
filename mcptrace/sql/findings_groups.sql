-- Findings, the gaps grouped by code and party (README: Findings), over the view _fg_gaps (gap_party rows):
-- every gap for a full build, or the gaps of the groups an append touched. The rows go to the table
-- finding_rows (mcptrace.analysis.findings).
CREATE OR REPLACE TEMP TABLE _groups_part AS
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
FROM _fg_gaps GROUP BY code, party_kind, party;
