-- An append's scope, merged back (mcptrace.analysis.incremental): the scope's calls, span joins,
-- sessions, gaps and parties (call_party, gap_party) are replaced by those the scratch database
-- mcptrace_scope computed; scope_old.sql said which rows go. New gaps are numbered after the last gap_id
-- there was.
DELETE FROM call_spans WHERE call_id IN (SELECT call_id FROM _scope_old_calls);

DELETE FROM call_party WHERE call_id IN (SELECT call_id FROM _scope_old_calls);

DELETE FROM calls WHERE call_id IN (SELECT call_id FROM _scope_old_calls);

DELETE FROM gaps WHERE gap_id IN (SELECT gap_id FROM _scope_old_gaps);

DELETE FROM gap_party WHERE gap_id IN (SELECT gap_id FROM _scope_old_gaps);

DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM _scope_old_sessions);

INSERT INTO calls BY NAME SELECT * FROM mcptrace_scope.calls;

INSERT INTO call_spans BY NAME SELECT * FROM mcptrace_scope.call_spans;

INSERT INTO sessions BY NAME SELECT * FROM mcptrace_scope.sessions;

INSERT INTO gaps BY NAME
SELECT * REPLACE (gap_id + (SELECT n FROM _gap_offset) AS gap_id) FROM mcptrace_scope.gaps;

INSERT INTO call_party BY NAME SELECT * FROM mcptrace_scope.call_party;

INSERT INTO gap_party BY NAME
SELECT * REPLACE (gap_id + (SELECT n FROM _gap_offset) AS gap_id) FROM mcptrace_scope.gap_party;
