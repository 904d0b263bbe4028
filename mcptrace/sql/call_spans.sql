-- Spans of each call (README: How the correlation works, gap codes), with how each was matched (call_spans.matched_by) and
-- whether the join was inferred (call_spans.inferred, n_candidates, evidence):
--   client      the span named by the traceparent's parent-id ('parent', exact)
--   server      a server-side span (spans.mcp_side = 'server': a SERVER span, or a span the span conventions
--               recognise as the server side, e.g. Logfire's or OpenLLMetry's INTERNAL spans) whose
--               parent is that client span ('parent', exact); else, for servers
--               that did not extract the context, a SERVER span linking to it ('link', exact) or one
--               whose jsonrpc.request.id + mcp.method.name (+ gen_ai.tool.name) match within the
--               call's time window (from $window_ms before the request to $window_ms after the
--               response, at most an hour after the request) ('attributes', inferred); a span whose
--               instrumentation records no request id (FastMCP, agentgateway, OpenLLMetry) matches on
--               mcp.method.name, gen_ai.tool.name (required for a tool call) and mcp.session.id when both
--               carry one. When several such spans fit several calls they are assigned one to one, nearest
--               first (a span lying inside the call's request→response interval before one that does not,
--               one matching the request id before one without any, then the smallest distance
--               |span start - request| + |response - span end|); evidence.matched_on names what matched
--   host        the host's tool-execution span that caused the call (spans.mcp_side 'host': execute_tool,
--               claude_code.tool): the nearest such ancestor of the client span (calls.host_span_id,
--               'parent', exact), else a host span carrying the tool-call id the request carried in
--               _meta (claudecode/toolUseId = tool_use_id; 'tool_call_id', exact, any trace; the earliest
--               when several carry it, n_candidates says how many), else a host span of the call's trace
--               holding its request, with its tool ('trace_time', inferred; one to one, nearest start)
--   downstream  descendants of the server span ('parent', exact); and root spans of other services
--               that start inside the server-side interval of one or more calls ('time_window',
--               inferred; see _cs_down_cand below for the rule), with their descendants
-- Parameters: $window_ms (DOUBLE), slack around the call's interval for attribute matching;
-- $nearest_margin_ms (DOUBLE), how much nearer the nearest start must be to decide a downstream root.
-- _attr_extra (attr_pairs.sql's columns) holds the attribute join's candidate pairs of an append's scope
-- with calls and spans outside it (mcptrace.analysis.incremental; empty for a full build): they take no
-- part in the assignment, but count among the candidates.

-- spans of a database written before spans.mcp_side existed: their side is their kind
UPDATE spans SET mcp_side = kind WHERE mcp_side IS NULL AND kind IN ('server', 'client');

-- with no span every join below is empty: call_spans is made empty instead (the other tables below are
-- read by gaps.sql's span gaps only, which it skips without spans)
IF NO ROWS IN spans;

CREATE OR REPLACE TABLE call_spans (call_id BIGINT, span_id VARCHAR, trace_id VARCHAR, role VARCHAR,
                                    matched_by VARCHAR, via_span_id VARCHAR, inferred BOOLEAN, n_candidates BIGINT,
                                    evidence JSON, trace_hash UBIGINT);

END IF;

IF ROWS IN spans;

CREATE OR REPLACE TEMP TABLE _cs_client AS
SELECT DISTINCT c.call_id, s.span_id, s.trace_id
FROM calls c JOIN spans s ON s.trace_id = c.trace_id AND s.span_id = c.parent_span_id;

CREATE OR REPLACE TEMP TABLE _cs_server_parent AS
SELECT c.call_id, s.span_id, s.trace_id, 'parent' AS matched_by, NULL::JSON AS evidence
FROM calls c JOIN spans s ON s.trace_id = c.trace_id AND s.parent_span_id = c.parent_span_id
WHERE s.mcp_side = 'server';

CREATE OR REPLACE TEMP TABLE _cs_server_link AS
WITH l AS (
    SELECT trace_id, span_id, unnest(json_extract(links, '$[*]')) AS link
    FROM spans WHERE mcp_side = 'server' AND json_array_length(links) > 0
)
SELECT c.call_id, l.span_id, l.trace_id, 'link' AS matched_by,
       json_object('link', l.link, 'expected_trace_id', c.trace_id, 'server_span_trace_id', l.trace_id) AS evidence
FROM calls c JOIN l ON l.link->>'$.trace_id' = c.trace_id AND l.link->>'$.span_id' = c.parent_span_id
ANTI JOIN _cs_server_parent p ON p.call_id = c.call_id;

-- what no exact join took is left to the attribute join: its candidate pairs (attr_pairs.sql)
CREATE OR REPLACE TEMP TABLE _attr_taken AS
SELECT call_id, span_id, trace_id FROM _cs_server_parent
UNION ALL SELECT call_id, span_id, trace_id FROM _cs_server_link;

CREATE OR REPLACE TEMP VIEW _attr_open_calls AS
SELECT c.* FROM calls c ANTI JOIN _attr_taken t ON t.call_id = c.call_id;

CREATE OR REPLACE TEMP VIEW _attr_free_spans AS
SELECT s.* FROM spans s ANTI JOIN _attr_taken t ON t.span_id = s.span_id AND t.trace_id = s.trace_id;

ATTR_PAIRS _attr_open_calls, _attr_free_spans;

DROP VIEW _attr_open_calls;

DROP VIEW _attr_free_spans;

-- one to one, nearest first: a span inside the call's interval before one that is not, a span matching
-- the request id before one without any, then the smallest distance (mcptrace.analysis.rebuild.one_to_one:
-- one sort, one pass)
ONE_TO_ONE _attr_pairs -> _attr_pick LEFT (call_id) RIGHT (span_id, trace_id)
ORDER BY NOT inside, NOT by_id, dist, span_id, trace_id, call_id;

CREATE OR REPLACE TEMP TABLE _cs_server_attr AS
WITH cand AS (
    SELECT call_id, span_id, trace_id, inside, by_id, dist FROM _attr_pairs
    UNION ALL
    -- a pair with a call or span outside an append's scope counts when its side inside is one no exact join took
    SELECT x.call_id, x.span_id, x.trace_id, x.inside, x.by_id, x.dist FROM _attr_extra x
    WHERE x.call_id NOT IN (SELECT call_id FROM _attr_taken)
      AND NOT EXISTS (SELECT 1 FROM _attr_taken t WHERE t.span_id = x.span_id AND t.trace_id = x.trace_id)
), n AS (
    SELECT call_id, count(*) AS n_spans, list(span_id ORDER BY NOT inside, NOT by_id, dist, span_id)[:10] AS span_ids
    FROM cand GROUP BY 1
), m AS (
    SELECT span_id, trace_id, count(*) AS n_calls FROM cand GROUP BY 1, 2
)
SELECT r.call_id, r.span_id, r.trace_id, 'attributes' AS matched_by,
       json_object('matched_on', r.matched_on, 'expected_trace_id', r.expected_trace_id,
                   'server_span_trace_id', r.trace_id, 'start_offset_ms', r.start_dist / 1000.0,
                   'inside_call', r.inside, 'distance_ms', r.dist / 1000.0,
                   'rule', CASE WHEN r.by_id THEN 'attributes, one to one, nearest first'
                                ELSE 'attributes without a request id, one to one, nearest first' END,
                   'candidate_span_ids', n.span_ids, 'n_candidate_spans', n.n_spans,
                   'n_calls_fitting_span', m.n_calls) AS evidence,
       n.n_spans::INTEGER AS n_candidates
FROM _attr_pick r JOIN n USING (call_id) JOIN m USING (span_id, trace_id);

CREATE OR REPLACE TEMP TABLE _cs_server AS
SELECT call_id, span_id, trace_id, matched_by, evidence, 1 AS n_candidates FROM _cs_server_parent
UNION ALL SELECT call_id, span_id, trace_id, matched_by, evidence, 1 FROM _cs_server_link
UNION ALL SELECT call_id, span_id, trace_id, matched_by, evidence, n_candidates FROM _cs_server_attr;

CREATE OR REPLACE TEMP TABLE _cs_down_parent AS
WITH RECURSIVE down(call_id, span_id, trace_id) AS (
    SELECT call_id, span_id, trace_id FROM _cs_server
    UNION
    SELECT d.call_id, s.span_id, s.trace_id
    FROM down d JOIN spans s ON s.trace_id = d.trace_id AND s.parent_span_id = d.span_id
)
SELECT d.* FROM down d ANTI JOIN _cs_server s ON s.call_id = d.call_id AND s.span_id = d.span_id;

-- Downstream roots joined by time (inferred). A candidate root is a SERVER or CONSUMER span with
-- no parent, or a parent not in the dump, of a service that is neither an MCP client nor an MCP
-- server (no span of that service is joined to a call as client or server, nor carries
-- mcp.method.name), in a trace that no call's spans are in. Its candidate calls are the
-- client-to-server calls whose server-side interval (the server span, else request→response on
-- the wire; an unanswered call lasts until the last message of its transport, at least
-- $window_ms) contains the root's start. One candidate is chosen when one fits best, by the first
-- rule that leaves exactly one:
--   client_span       the root starts inside a leaf CLIENT span under that call's server span (when
--                     several calls have one, only those stay candidates for the rules below)
--   containment       only that call's interval holds the whole root span
--   only_candidate    it is the only candidate (the root outlasts it)
--   known_downstream  among those left, only that call's MCP server (service.name of its server span)
--                     has spans of the root's service as trace children elsewhere in the data
--   nearest_start     among those left, that call's server-side start is the nearest before the
--                     root's, nearer than the next by at least $nearest_margin_ms
-- Otherwise no call is chosen and the gap lists the candidates.
CREATE OR REPLACE TEMP TABLE _down_roots AS
WITH mcp_services AS (
    SELECT DISTINCT s.service_name FROM spans s
    JOIN (SELECT span_id, trace_id FROM _cs_server UNION ALL SELECT span_id, trace_id FROM _cs_client) j
      ON j.span_id = s.span_id AND j.trace_id = s.trace_id
    WHERE s.service_name IS NOT NULL
    UNION
    SELECT DISTINCT service_name FROM spans WHERE mcp_method_name IS NOT NULL AND service_name IS NOT NULL
), joined_traces AS (
    SELECT DISTINCT trace_id FROM _cs_server UNION SELECT trace_id FROM _cs_client UNION SELECT trace_id FROM _cs_down_parent
), roots AS (
    SELECT r.* FROM spans r
    WHERE r.kind IN ('server', 'consumer') AND r.start_ts IS NOT NULL
      AND (r.parent_span_id IS NULL
           OR NOT EXISTS (SELECT 1 FROM spans p WHERE p.trace_id = r.trace_id AND p.span_id = r.parent_span_id))
      AND r.service_name IS NOT NULL AND r.service_name NOT IN (SELECT service_name FROM mcp_services)
      AND r.trace_id NOT IN (SELECT trace_id FROM joined_traces)
)
SELECT * FROM roots;

CREATE OR REPLACE TEMP TABLE _down_iv AS
WITH srv AS (
    SELECT x.call_id, arg_min(s.start_ts, s.start_ts) AS s_start, arg_min(s.end_ts, s.start_ts) AS s_end,
           arg_min(s.service_name, s.start_ts) AS server_service
    FROM _cs_server x JOIN spans s ON s.span_id = x.span_id AND s.trace_id = x.trace_id GROUP BY 1
), scope_end AS (
    SELECT scope, max(ts) AS last_ts FROM _ev GROUP BY 1
), iv AS (
    SELECT c.call_id, c.session_id, c.start_ts AS call_start,
           coalesce(v.s_start, c.start_ts) AS iv_start,
           coalesce(v.s_end, c.end_ts,
                    greatest(e.last_ts, c.start_ts + to_microseconds(CAST($window_ms * 1000 AS BIGINT)))) AS iv_end,
           v.server_service
    FROM calls c LEFT JOIN srv v USING (call_id)
    LEFT JOIN _ev q ON q.message_id = c.request_message_id
    LEFT JOIN scope_end e ON e.scope = q.scope
    WHERE c.direction = 'client_to_server' AND c.start_ts IS NOT NULL
)
SELECT * FROM iv;

CREATE OR REPLACE TEMP TABLE _down_pairs AS
SELECT r.trace_id, r.span_id, r.start_ts AS r_start, r.end_ts AS r_end, r.service_name AS r_service, r.name AS r_name,
       iv.call_id, iv.session_id, iv.iv_start, iv.iv_end, iv.call_start, iv.server_service
FROM _down_roots r JOIN _down_iv iv ON r.start_ts >= iv.iv_start AND r.start_ts <= iv.iv_end;

CREATE OR REPLACE TEMP TABLE _cs_down_cand AS
WITH leaf_clients AS (
    SELECT d.call_id, s.span_id, s.trace_id, s.start_ts, s.end_ts, s.service_name, s.name
    FROM _cs_down_parent d JOIN spans s ON s.span_id = d.span_id AND s.trace_id = d.trace_id
    WHERE s.kind = 'client'
      AND NOT EXISTS (SELECT 1 FROM spans k WHERE k.trace_id = s.trace_id AND k.parent_span_id = s.span_id)
), known AS (
    -- (MCP server service, downstream service) pairs seen with propagated context
    SELECT DISTINCT v.server_service, s.service_name AS downstream_service
    FROM _cs_down_parent d JOIN spans s ON s.span_id = d.span_id AND s.trace_id = d.trace_id
    JOIN _down_iv v USING (call_id)
    WHERE s.service_name IS DISTINCT FROM v.server_service
), vias AS (
    SELECT p.trace_id, p.span_id, p.call_id,
           arg_min(struct_pack(span_id := lc.span_id, trace_id := lc.trace_id, name := lc.name), lc.start_ts) AS via
    FROM _down_pairs p JOIN leaf_clients lc ON lc.call_id = p.call_id
     AND p.r_start >= lc.start_ts AND p.r_start <= lc.end_ts AND lc.service_name IS DISTINCT FROM p.r_service
    GROUP BY ALL
), c0 AS (
    SELECT p.*, p.r_end IS NOT NULL AND p.r_end <= p.iv_end AS contains,
           k.server_service IS NOT NULL AS known,
           date_diff('microsecond', p.iv_start, p.r_start) AS start_gap_us,
           v.via
    FROM _down_pairs p
    LEFT JOIN known k ON k.server_service = p.server_service AND k.downstream_service = p.r_service
    LEFT JOIN vias v USING (trace_id, span_id, call_id)
), c1 AS (
    SELECT *, count(*) OVER w AS n, count(*) FILTER (WHERE via IS NOT NULL) OVER w AS n_cs,
              count(*) FILTER (WHERE contains) OVER w AS n_ct
    FROM c0 WINDOW w AS (PARTITION BY trace_id, span_id)
), c1b AS (
    -- calls with a CLIENT span holding the root's start come first; containment among those
    SELECT *, count(*) FILTER (WHERE contains AND (n_cs = 0 OR via IS NOT NULL)) OVER w AS n_ct0
    FROM c1 WINDOW w AS (PARTITION BY trace_id, span_id)
), c2 AS (
    SELECT *, (n_cs = 0 OR via IS NOT NULL) AND (n_ct0 = 0 OR contains) AS in1 FROM c1b
), c3 AS (
    SELECT *, count(*) FILTER (WHERE in1) OVER w AS n1, count(*) FILTER (WHERE in1 AND known) OVER w AS n1k
    FROM c2 WINDOW w AS (PARTITION BY trace_id, span_id)
), c4 AS (
    SELECT *, in1 AND (n1k = 0 OR known) AS in2 FROM c3
), c5 AS (
    SELECT *, count(*) FILTER (WHERE in2) OVER w AS n2,
           row_number() OVER (PARTITION BY trace_id, span_id ORDER BY NOT in2, start_gap_us, call_id) AS near_rank,
           lead(start_gap_us) OVER (PARTITION BY trace_id, span_id ORDER BY NOT in2, start_gap_us, call_id) AS next_gap_us,
           lead(in2) OVER (PARTITION BY trace_id, span_id ORDER BY NOT in2, start_gap_us, call_id) AS next_in2
    FROM c4 WINDOW w AS (PARTITION BY trace_id, span_id)
)
SELECT *,
       CASE WHEN n_cs = 1 AND via IS NOT NULL THEN 'client_span'
            WHEN n_cs = 1 THEN NULL
            WHEN n1 = 1 AND in1 THEN CASE WHEN n_ct0 = 1 THEN 'containment' ELSE 'only_candidate' END
            WHEN n1 = 1 THEN NULL
            WHEN n2 = 1 AND in2 THEN 'known_downstream'
            WHEN n2 = 1 THEN NULL
            WHEN in2 AND near_rank = 1 AND next_in2
                 AND next_gap_us - start_gap_us >= $nearest_margin_ms * 1000 THEN 'nearest_start'
       END AS rule
FROM c5;

CREATE OR REPLACE TEMP TABLE _cs_down_root AS
SELECT trace_id, span_id, any_value(r_service) AS downstream_service, any_value(r_name) AS downstream_span_name,
       any_value(r_start) AS start_ts,
       list(call_id ORDER BY call_start, call_id) AS candidates, count(*) AS n_candidates,
       any_value(call_id) FILTER (WHERE rule IS NOT NULL) AS call_id,
       any_value(rule) FILTER (WHERE rule IS NOT NULL) AS rule,
       any_value(via) FILTER (WHERE rule IS NOT NULL) AS via,
       coalesce(any_value(session_id) FILTER (WHERE rule IS NOT NULL), arg_min(session_id, call_start)) AS session_id
FROM _cs_down_cand GROUP BY 1, 2;

CREATE OR REPLACE TEMP TABLE _cs_down_window AS
SELECT call_id, span_id, trace_id, n_candidates,
       json_object('rule', rule, 'candidates', candidates[:20], 'n_candidates', n_candidates, 'chosen_call_id', call_id,
                   'client_span_id', via.span_id, 'client_span_trace_id', via.trace_id, 'client_span_name', via.name,
                   'downstream_service', downstream_service, 'downstream_span_name', downstream_span_name,
                   'downstream_trace_id', trace_id) AS evidence
FROM _cs_down_root WHERE call_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _cs_host_exact AS
SELECT call_id, host_span_id AS span_id, trace_id, 'parent' AS matched_by, 1 AS n_candidates, NULL::JSON AS evidence
FROM calls WHERE host_span_id IS NOT NULL
UNION ALL
SELECT c.call_id, arg_min(s.span_id, (s.start_ts, s.trace_id, s.span_id)), arg_min(s.trace_id, (s.start_ts, s.trace_id, s.span_id)),
       'tool_call_id', count(*)::INTEGER,
       json_object('tool_call_id', c.call_key, 'carried_by', c.call_key_source, 'n_host_spans', count(*),
                   'host_span_ids', list(s.span_id ORDER BY s.start_ts, s.trace_id, s.span_id)[:10])
FROM calls c JOIN spans s ON s.mcp_side = 'host' AND s.tool_call_id = c.call_key
WHERE c.host_span_id IS NULL AND c.call_key IS NOT NULL AND c.call_key_source <> 'spans.tool_call_id'
GROUP BY c.call_id, c.call_key, c.call_key_source;

-- else a host span of the call's trace (the trace context named some other span of the host) whose
-- interval holds the request, with the call's tool when it names one: one to one, nearest start first
CREATE OR REPLACE TEMP TABLE _host_cand AS
SELECT c.call_id, s.span_id, s.trace_id, abs(date_diff('microsecond', s.start_ts, c.start_ts)) AS dist,
       s.gen_ai_tool_name IS NOT NULL AS same_tool
FROM calls c JOIN spans s ON s.trace_id = c.trace_id AND s.mcp_side = 'host'
WHERE c.method = 'tools/call' AND c.start_ts BETWEEN s.start_ts AND s.end_ts
  AND (s.gen_ai_tool_name IS NULL OR s.gen_ai_tool_name = c.tool_name)
  AND c.call_id NOT IN (SELECT call_id FROM _cs_host_exact)
  AND (s.trace_id, s.span_id) NOT IN (SELECT (trace_id, span_id) FROM _cs_host_exact);

ONE_TO_ONE _host_cand -> _host_pick LEFT (call_id) RIGHT (span_id, trace_id)
ORDER BY NOT same_tool, dist, span_id, call_id;

CREATE OR REPLACE TEMP TABLE _cs_host AS
SELECT *, false AS inferred FROM _cs_host_exact
UNION ALL
SELECT p.call_id, p.span_id, p.trace_id, 'trace_time', n.n::INTEGER,
       json_object('rule', 'host span of the call''s trace holding the request, one to one, nearest start first',
                   'same_tool', p.same_tool, 'start_offset_ms', p.dist / 1000.0, 'candidate_span_ids', n.ids,
                   'n_candidate_spans', n.n),
       true
FROM _host_pick p
JOIN (SELECT call_id, count(*) AS n, list(span_id ORDER BY NOT same_tool, dist, span_id)[:10] AS ids
      FROM _host_cand GROUP BY 1) n USING (call_id);

CREATE OR REPLACE TABLE call_spans AS
WITH RECURSIVE win_down(call_id, span_id, trace_id, root_span_id) AS (
    SELECT call_id, span_id, trace_id, span_id FROM _cs_down_window
    UNION
    SELECT d.call_id, s.span_id, s.trace_id, d.root_span_id
    FROM win_down d JOIN spans s ON s.trace_id = d.trace_id AND s.parent_span_id = d.span_id
)
SELECT *, stored_key_hash(trace_id) AS trace_hash FROM (
SELECT call_id, span_id, trace_id, 'client' AS role, 'parent' AS matched_by, NULL::VARCHAR AS via_span_id,
       false AS inferred, 1 AS n_candidates, NULL::JSON AS evidence
FROM _cs_client
UNION ALL
SELECT call_id, span_id, trace_id, 'server', matched_by, NULL, matched_by = 'attributes', n_candidates, evidence
FROM _cs_server
UNION ALL
SELECT call_id, span_id, trace_id, 'downstream', 'parent', NULL, false, 1, NULL FROM _cs_down_parent
UNION ALL
SELECT call_id, span_id, trace_id, 'host', matched_by, NULL, inferred, n_candidates, evidence FROM _cs_host
UNION ALL
SELECT d.call_id, d.span_id, d.trace_id, 'downstream', 'time_window', w.evidence->>'$.client_span_id', true,
       w.n_candidates, w.evidence
FROM win_down d JOIN _cs_down_window w ON w.call_id = d.call_id AND w.span_id = d.root_span_id AND w.trace_id = d.trace_id
);

-- a host span joined by time gives its tool-call id to a call that has none, saying so
UPDATE calls SET call_key = s.tool_call_id, call_key_source = 'spans.tool_call_id (trace_time)'
FROM _cs_host h JOIN spans s ON s.trace_id = h.trace_id AND s.span_id = h.span_id
WHERE calls.call_id = h.call_id AND h.matched_by = 'trace_time' AND calls.call_key IS NULL
  AND s.tool_call_id IS NOT NULL;

END IF;
