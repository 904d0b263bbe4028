-- Findings, first step (README: Findings): every call's and every gap's parties (the internal tables
-- call_party and gap_party; an append recomputes them for its scope only: mcptrace.analysis.incremental).
-- findings.sql then groups the gaps by cause (the gap code) and responsible party, every gap
-- in exactly one finding. A gap's party is read from the data by its code's rule (TEMP table
-- finding_rules(code, party, unit, eligible, inferred), from mcptrace.core.gapcodes): the session's client
-- (clientInfo name and version), its server (serverInfo name and version, else the service.name of its
-- server spans), the sender or receiver of the request, the tool and the downstream service, or a span's
-- service. Nothing is guessed: a party the data does not name is 'unidentified client' / 'unidentified
-- server'. The share is the affected units (calls, sessions or spans) out of the eligible ones of that
-- party (its requests, its traced requests, its sessions, its spans). mcptrace.analysis.findings writes
-- each finding's sentence and remedy and ranks them.

-- A call's server: the serverInfo of its transport (the initialize result on its Mcp-Session-Id or
-- connection) or of its own result (2026-07-28 _meta serverInfo), and the service.name of its server span,
-- else the most common one of its transport's server spans. A logical session may reach several servers.
CREATE OR REPLACE TEMP TABLE _call_server AS
WITH c AS (
    SELECT c.call_id, c.session_id, coalesce(c.mcp_session_id, c.connection_id) AS scope, m.server_name, m.server_version
    FROM calls c LEFT JOIN messages m ON m.message_id = c.response_message_id
), scope_info AS (
    SELECT scope, arg_min(server_name, call_id) AS server_name, arg_min(server_version, call_id) AS server_version
    FROM c WHERE server_name IS NOT NULL AND scope IS NOT NULL GROUP BY 1
), own_service AS (
    SELECT cs.call_id, min(s.service_name) AS service_name
    FROM call_spans cs JOIN spans s ON s.trace_id = cs.trace_id AND s.span_id = cs.span_id
    WHERE cs.role = 'server' AND s.service_name IS NOT NULL GROUP BY 1
), scope_service AS (
    SELECT scope, arg_max(service_name, (n, service_name)) AS service_name
    FROM (SELECT c.scope, o.service_name, count(*) AS n FROM c JOIN own_service o USING (call_id)
          WHERE c.scope IS NOT NULL GROUP BY 1, 2)
    GROUP BY 1
)
SELECT c.call_id, coalesce(c.server_name, i.server_name) AS server_name,
       CASE WHEN c.server_name IS NOT NULL THEN c.server_version ELSE i.server_version END AS server_version,
       coalesce(o.service_name, v.service_name) AS service_name
FROM c LEFT JOIN scope_info i USING (scope) LEFT JOIN own_service o USING (call_id) LEFT JOIN scope_service v USING (scope);

CREATE OR REPLACE TEMP TABLE _session_party AS
SELECT session_id, client_party(client_name, client_version) AS client_party FROM sessions;

-- every call with the parties it has: its session's client; its server, named by serverInfo with the
-- deployment's service.name beside it when its spans give one (servers of one implementation, the same
-- serverInfo, run as different services), else by the service.name alone
CREATE OR REPLACE TABLE call_party AS
SELECT c.call_id, c.session_id, c.direction, c.trace_id IS NOT NULL AS traced,
       coalesce(c.protocol_version >= '2026-07-28', false) AND c.mcp_session_id IS NULL AS stateless,
       coalesce(p.client_party, 'unidentified client') AS client_party,
       coalesce(v.server_name || coalesce(' ' || v.server_version, '')
                || coalesce(' (service ' || nullif(v.service_name, v.server_name) || ')', ''),
                v.service_name, 'unidentified server') AS server_party,
       coalesce(c.tool_name, c.method, '(no method)') AS tool,
       -- the server's name alone (serverInfo name, else the service.name of its spans) and its version:
       -- what tool definitions are compared under (mcptrace.analysis.definitions)
       coalesce(v.server_name, v.service_name) AS server_name, v.server_version
FROM calls c LEFT JOIN _session_party p USING (session_id) LEFT JOIN _call_server v USING (call_id);

-- the server of a transport scope and of a session: the one most of their calls reached
CREATE OR REPLACE TEMP TABLE _scope_server AS
SELECT scope, arg_max(server_party, (n, server_party)) AS server_party
FROM (SELECT coalesce(c.mcp_session_id, c.connection_id) AS scope, p.server_party, count(*) AS n
      FROM calls c JOIN call_party p USING (call_id) WHERE coalesce(c.mcp_session_id, c.connection_id) IS NOT NULL
      GROUP BY 1, 2)
GROUP BY 1;

CREATE OR REPLACE TEMP TABLE _session_server AS
SELECT session_id, arg_max(server_party, (n, server_party)) AS server_party
FROM (SELECT session_id, server_party, count(*) AS n FROM call_party GROUP BY 1, 2) GROUP BY 1;

CREATE OR REPLACE TABLE gap_party AS
WITH gm AS (
    -- the message of a gap without a call, and the span of a gap whose party is its span's service: joined
    -- for those gaps only
    SELECT g.gap_id, m.direction, coalesce(m.mcp_session_id, m.connection_id) AS scope
    FROM gaps g JOIN messages m ON m.message_id = g.message_id WHERE g.call_id IS NULL
), gs AS (
    SELECT g.gap_id, s.service_name, s.mcp_side
    FROM gaps g JOIN finding_rules r USING (code) JOIN spans s ON s.trace_id = g.trace_id AND s.span_id = g.span_id
    WHERE r.party IN ('orphan_service', 'span_service')
), g AS (
    SELECT g.gap_id, g.code, g.severity, g.session_id, g.call_id, g.ts, g.detail, r.party AS rule, r.unit,
           r.eligible, r.inferred
               -- a server span joined by a span link is exact; by attributes, inferred
               OR (g.code = 'server_span_unlinked' AND g.detail->>'$.matched_by' = 'attributes') AS inferred,
           coalesce(cp.direction, gm.direction) AS direction,
           cp.tool, coalesce(cp.client_party, sp.client_party, 'unidentified client') AS client_party,
           coalesce(cp.server_party, sc.server_party, ss.server_party, 'unidentified server') AS server_party,
           gs.service_name AS span_service, gs.mcp_side AS span_side,
           g.detail->>'$.downstream_service' AS downstream
    FROM gaps g JOIN finding_rules r USING (code)
    LEFT JOIN call_party cp ON cp.call_id = g.call_id
    LEFT JOIN _session_party sp ON sp.session_id = g.session_id
    LEFT JOIN gm ON gm.gap_id = g.gap_id
    LEFT JOIN _scope_server sc ON sc.scope = gm.scope
    LEFT JOIN _session_server ss ON ss.session_id = g.session_id
    LEFT JOIN gs ON gs.gap_id = g.gap_id
), gt AS (
    SELECT *, server_party || ' · ' || coalesce(tool, '(no call)') AS server_tool FROM g
)
SELECT gap_id, code, severity, session_id, call_id, ts, unit, eligible, inferred,
       CASE rule
         WHEN 'client' THEN 'client'
         WHEN 'server' THEN 'server'
         WHEN 'sender' THEN CASE WHEN direction = 'server_to_client' THEN 'server' ELSE 'client' END
         WHEN 'receiver' THEN CASE WHEN direction = 'server_to_client' THEN 'client' ELSE 'tool' END
         WHEN 'downstream' THEN 'tool'
         WHEN 'transport' THEN 'transport'
         WHEN 'orphan_service' THEN 'capture'
         WHEN 'span_service' THEN CASE WHEN span_side = 'server' THEN 'server' ELSE 'downstream_service' END
       END AS party_kind,
       CASE rule
         WHEN 'client' THEN client_party
         WHEN 'server' THEN server_party
         WHEN 'sender' THEN CASE WHEN direction = 'server_to_client' THEN server_party ELSE client_party END
         WHEN 'receiver' THEN CASE WHEN direction = 'server_to_client' THEN client_party
                                   ELSE server_tool END
         WHEN 'downstream' THEN server_tool || ' → ' || coalesce(downstream, 'unidentified service')
         WHEN 'transport' THEN server_party
         ELSE coalesce(span_service, 'unidentified service')
       END AS party,
       -- the party the share is counted over (a downstream finding's: its server and tool)
       CASE WHEN rule IN ('downstream', 'receiver') AND direction IS DISTINCT FROM 'server_to_client'
            THEN server_tool END AS tool_party,
       CASE WHEN rule IN ('downstream', 'receiver', 'server', 'transport') THEN server_party END AS server,
       CASE WHEN rule IN ('downstream', 'receiver') THEN tool END AS tool,
       CASE WHEN rule = 'downstream' THEN coalesce(downstream, 'unidentified service') END AS downstream_service
FROM gt;

