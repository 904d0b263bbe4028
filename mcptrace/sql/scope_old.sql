-- An append's scope, the rows it replaces (mcptrace.analysis.incremental; scope_merge.sql removes them):
-- the scope's calls before and after, its sessions before and after, and its gaps (a gap is the
-- scope's when its session, call, message or trace is); _gap_offset: the last gap_id there was.
CREATE OR REPLACE TEMP TABLE _scope_old_calls AS
SELECT call_id FROM _scope_calls UNION SELECT call_id FROM mcptrace_scope.calls;

CREATE OR REPLACE TEMP TABLE _scope_old_sessions AS
SELECT session_id FROM _aff UNION SELECT session_id FROM mcptrace_scope.sessions;

CREATE OR REPLACE TEMP TABLE _scope_old_gaps AS
SELECT gap_id FROM gaps WHERE session_id IN (SELECT session_id FROM _scope_old_sessions)
    OR call_id IN (SELECT call_id FROM _scope_old_calls)
    OR message_id IN (SELECT message_id FROM _scope_msg)
    OR trace_id IN (SELECT trace_id FROM _scope_trace);

CREATE OR REPLACE TEMP TABLE _gap_offset AS SELECT coalesce(max(gap_id), 0) AS n FROM gaps;
