-- An append's scope, checked against what the downstream rule reads from the whole database
-- (call_spans.sql: the services of MCP spans, and the (MCP server service, downstream service) pairs
-- seen with propagated context), over the views _kp_call_spans and _kp_spans (call_spans and spans
-- rows): the scope's old rows, its new rows (the scratch database mcptrace_scope), or the rows outside
-- it. mcptrace.analysis.incremental runs it for each and compares: a service or pair the scope adds
-- or takes that nothing outside the scope holds means the whole database is rebuilt.
CREATE OR REPLACE TEMP TABLE _kp_services AS
SELECT DISTINCT s.service_name FROM _kp_call_spans x JOIN _kp_spans s USING (trace_id, span_id)
WHERE x.role IN ('server', 'client') AND s.service_name IS NOT NULL
UNION SELECT DISTINCT service_name FROM _kp_spans WHERE mcp_method_name IS NOT NULL AND service_name IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _kp_pairs AS
SELECT DISTINCT v.server_service, s.service_name AS downstream_service
FROM _kp_call_spans x JOIN _kp_spans s USING (trace_id, span_id)
JOIN (SELECT x2.call_id, arg_min(s2.service_name, s2.start_ts) AS server_service
      FROM _kp_call_spans x2 JOIN _kp_spans s2 USING (trace_id, span_id)
      WHERE x2.role = 'server' GROUP BY 1) v USING (call_id)
WHERE x.role = 'downstream' AND x.matched_by = 'parent' AND s.service_name IS DISTINCT FROM v.server_service;
