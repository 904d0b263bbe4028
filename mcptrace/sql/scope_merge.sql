-- An append's scope, merged back (mcptrace.analysis.incremental): the scope's calls, span joins,
-- sessions, gaps and parties (call_party, gap_party) are replaced by those the scratch database
-- mcptrace_scope computed. _scope_old_calls holds the scope's calls before and after; a gap is the
-- scope's when its session, call, message or trace is. New gaps are numbered after the last gap_id there was.
CREATE OR REPLACE TEMP TABLE _gap_offset AS SELECT coalesce(max(gap_id), 0) AS n FROM gaps;

DELETE FROM call_spans WHERE call_id IN (SELECT call_id FROM _scope_old_calls);

DELETE FROM call_party WHERE call_id IN (SELECT call_id FROM _scope_old_calls);

DELETE FROM calls WHERE call_id IN (SELECT call_id FROM _scope_old_calls);

CREATE OR REPLACE TEMP TABLE _scope_old_gaps AS
SELECT gap_id FROM gaps WHERE session_id IN (SELECT session_id FROM _aff)
    OR session_id IN (SELECT session_id FROM mcptrace_scope.sessions)
    OR call_id IN (SELECT call_id FROM _scope_old_calls)
    OR message_id IN (SELECT message_id FROM _scope_msg)
    OR trace_id IN (SELECT trace_id FROM _scope_trace);

DELETE FROM gaps WHERE gap_id IN (SELECT gap_id FROM _scope_old_gaps);

DELETE FROM gap_party WHERE gap_id IN (SELECT gap_id FROM _scope_old_gaps);

DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM _aff)
    OR session_id IN (SELECT session_id FROM mcptrace_scope.sessions);

INSERT INTO calls BY NAME SELECT * FROM mcptrace_scope.calls;

INSERT INTO call_spans BY NAME SELECT * FROM mcptrace_scope.call_spans;

INSERT INTO sessions BY NAME SELECT * FROM mcptrace_scope.sessions;

INSERT INTO gaps BY NAME
SELECT * REPLACE (gap_id + (SELECT n FROM _gap_offset) AS gap_id) FROM mcptrace_scope.gaps;

INSERT INTO call_party BY NAME SELECT * FROM mcptrace_scope.call_party;

INSERT INTO gap_party BY NAME
SELECT * REPLACE (gap_id + (SELECT n FROM _gap_offset) AS gap_id) FROM mcptrace_scope.gap_party;
