-- An append's scope, checked against what the downstream rule reads from the whole database
-- (call_spans.sql: the services of MCP spans, and the (MCP server service, downstream service) pairs
-- seen with propagated context). The scratch database mcptrace_scope holds the scope analysed anew; the
-- scope's old rows are still in place. _changed_services and _changed_pairs: what the scope's old and new
-- rows differ in; the last statement (run only when one of them has rows) keeps in _globals_changed what
-- nothing outside the scope holds: then the whole database is rebuilt.
CREATE OR REPLACE TEMP TABLE _changed_services AS
WITH old_services AS (
    SELECT DISTINCT s.service_name FROM call_spans x JOIN spans s USING (trace_id, span_id)
    WHERE x.call_id IN (SELECT call_id FROM _scope_old_calls) AND x.role IN ('server', 'client') AND s.service_name IS NOT NULL
    UNION SELECT DISTINCT service_name FROM spans
    WHERE trace_id IN (SELECT trace_id FROM _scope_trace) AND mcp_method_name IS NOT NULL AND service_name IS NOT NULL
), new_services AS (
    SELECT DISTINCT s.service_name FROM mcptrace_scope.call_spans x JOIN mcptrace_scope.spans s USING (trace_id, span_id)
    WHERE x.role IN ('server', 'client') AND s.service_name IS NOT NULL
    UNION SELECT DISTINCT service_name FROM mcptrace_scope.spans WHERE mcp_method_name IS NOT NULL AND service_name IS NOT NULL
)
(SELECT * FROM old_services EXCEPT SELECT * FROM new_services)
UNION (SELECT * FROM new_services EXCEPT SELECT * FROM old_services);

CREATE OR REPLACE TEMP TABLE _changed_pairs AS
WITH old_pairs AS (
    SELECT DISTINCT v.server_service, s.service_name AS downstream_service
    FROM call_spans x JOIN spans s USING (trace_id, span_id)
    JOIN (SELECT x2.call_id, arg_min(s2.service_name, s2.start_ts) AS server_service
          FROM call_spans x2 JOIN spans s2 USING (trace_id, span_id)
          WHERE x2.role = 'server' AND x2.call_id IN (SELECT call_id FROM _scope_old_calls) GROUP BY 1) v USING (call_id)
    WHERE x.role = 'downstream' AND x.matched_by = 'parent' AND s.service_name IS DISTINCT FROM v.server_service
), new_pairs AS (
    SELECT DISTINCT v.server_service, s.service_name AS downstream_service
    FROM mcptrace_scope.call_spans x JOIN mcptrace_scope.spans s USING (trace_id, span_id)
    JOIN (SELECT x2.call_id, arg_min(s2.service_name, s2.start_ts) AS server_service
          FROM mcptrace_scope.call_spans x2 JOIN mcptrace_scope.spans s2 USING (trace_id, span_id)
          WHERE x2.role = 'server' GROUP BY 1) v USING (call_id)
    WHERE x.role = 'downstream' AND x.matched_by = 'parent' AND s.service_name IS DISTINCT FROM v.server_service
)
(SELECT * FROM old_pairs EXCEPT SELECT * FROM new_pairs)
UNION (SELECT * FROM new_pairs EXCEPT SELECT * FROM old_pairs);

CREATE OR REPLACE TEMP TABLE _globals_changed AS
WITH outside_pairs AS (
    SELECT DISTINCT v.server_service, s.service_name AS downstream_service
    FROM call_spans x JOIN spans s USING (trace_id, span_id)
    JOIN (SELECT x2.call_id, arg_min(s2.service_name, s2.start_ts) AS server_service
          FROM call_spans x2 JOIN spans s2 USING (trace_id, span_id)
          WHERE x2.role = 'server' AND x2.call_id NOT IN (SELECT call_id FROM _scope_old_calls) GROUP BY 1) v
      USING (call_id)
    WHERE x.role = 'downstream' AND x.matched_by = 'parent' AND s.service_name IS DISTINCT FROM v.server_service
      AND s.service_name IN (SELECT downstream_service FROM _changed_pairs)
)
SELECT 'mcp service' AS what, c.service_name AS value FROM _changed_services c
WHERE NOT EXISTS (SELECT 1 FROM spans s WHERE s.service_name = c.service_name AND s.mcp_method_name IS NOT NULL
                  AND s.trace_id NOT IN (SELECT trace_id FROM _scope_trace))
  AND NOT EXISTS (SELECT 1 FROM call_spans x JOIN spans s USING (trace_id, span_id)
                  WHERE s.service_name = c.service_name AND x.role IN ('server', 'client')
                    AND x.call_id NOT IN (SELECT call_id FROM _scope_old_calls))
UNION ALL
SELECT 'known downstream', p.server_service || ' → ' || p.downstream_service FROM _changed_pairs p
WHERE NOT EXISTS (SELECT 1 FROM outside_pairs o WHERE o.server_service IS NOT DISTINCT FROM p.server_service
                  AND o.downstream_service IS NOT DISTINCT FROM p.downstream_service);
