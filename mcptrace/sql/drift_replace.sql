-- Definition drift, the gaps replaced (mcptrace.analysis.drift): every earlier gap of the drift codes
-- (_drift_kinds) and its gap_party row goes, the changes of drift.sql come in with their detail
-- (_drift_detail, written in Python) and the registry's severity, unit, share and inference
-- (_drift_rules), numbered after the last gap_id there was; the changed sessions' n_gaps are counted again.
-- The party is the server of the later listing's call, as findings_party.sql reads the rule 'server'.

CREATE OR REPLACE TEMP TABLE _drift_sessions AS
SELECT session_id FROM gaps WHERE code IN (SELECT code FROM _drift_kinds) AND session_id IS NOT NULL
UNION
SELECT session_id FROM _drift_changes WHERE session_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _drift_offset AS SELECT coalesce(max(gap_id), 0) AS n FROM gaps;

DELETE FROM gaps WHERE code IN (SELECT code FROM _drift_kinds);

DELETE FROM gap_party WHERE code IN (SELECT code FROM _drift_kinds);

INSERT INTO gaps BY NAME
SELECT (SELECT n FROM _drift_offset) + c.seq AS gap_id, c.code, r.severity, c.session_id, c.call_id, c.message_id,
       c.trace_id, NULL::VARCHAR AS span_id, c.ts, d.detail::JSON AS detail
FROM _drift_changes c JOIN _drift_detail d USING (seq) JOIN _drift_rules r USING (code);

INSERT INTO gap_party BY NAME
SELECT g.gap_id, g.code, g.severity, g.session_id, g.call_id, g.ts, r.unit, r.eligible, r.inferred,
       'server' AS party_kind, p.server_party AS party, NULL::VARCHAR AS tool_party, p.server_party AS server,
       NULL::VARCHAR AS tool, NULL::VARCHAR AS downstream_service
FROM gaps g JOIN _drift_rules r USING (code) JOIN call_party p USING (call_id);

UPDATE sessions SET n_gaps = x.n
FROM (SELECT s.session_id, count(g.gap_id) AS n FROM _drift_sessions s LEFT JOIN gaps g USING (session_id) GROUP BY 1) x
WHERE sessions.session_id = x.session_id AND sessions.n_gaps IS DISTINCT FROM x.n;
