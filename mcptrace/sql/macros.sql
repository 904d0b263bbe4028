-- Scalar macros shared by the loader and the analysis. Temporary: created on every connection by
-- mcptrace.core.db.install_macros, never stored in a database.

-- W3C Trace Context traceparent (https://www.w3.org/TR/trace-context/#traceparent-header):
-- version 00 is exactly 55 chars; later versions may append fields; version ff is invalid;
-- all-zero trace-id or parent-id is invalid; hex must be lowercase.
CREATE OR REPLACE TEMP MACRO w3c_traceparent_valid(tp) AS CASE WHEN tp IS NULL THEN NULL ELSE
    regexp_full_match(tp, '[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?')
    AND substr(tp, 1, 2) <> 'ff'
    AND (substr(tp, 1, 2) <> '00' OR length(tp) = 55)
    AND substr(tp, 4, 32) <> repeat('0', 32)
    AND substr(tp, 37, 16) <> repeat('0', 16) END;

-- The direction a request or notification travels, from the MCP method name; NULL when
-- either side may send it (ping, notifications/cancelled, notifications/progress).
CREATE OR REPLACE TEMP MACRO mcp_method_direction(method) AS CASE
    WHEN method IS NULL THEN NULL
    WHEN method IN ('ping', 'notifications/cancelled', 'notifications/progress') THEN NULL
    WHEN method IN ('sampling/createMessage', 'roots/list', 'elicitation/create', 'notifications/message',
                    'notifications/resources/updated', 'notifications/resources/list_changed',
                    'notifications/tools/list_changed', 'notifications/prompts/list_changed',
                    'notifications/elicitation/complete') THEN 'server_to_client'
    ELSE 'client_to_server' END;

-- A key (transport scope, exchange, trace-id, session id) as a 64-bit number: the first half of its MD5, the
-- same in every DuckDB version. Appends find the rows of the keys they reach by these (the *_hash columns of
-- messages, http_events, spans, calls and call_spans; core.db.LOOKUP_HASHES): a scan of an integer column,
-- several times faster than one of the strings. Two keys may share a hash, so a lookup by hash keeps only the
-- rows whose key itself matches, or takes in more than it needs (a larger append scope).
CREATE OR REPLACE TEMP MACRO key_hash(k) AS (md5_number(k) >> 64)::UBIGINT;
-- What a *_hash column holds: the key's hash, 0 for a NULL key (no lookup asks for 0: key_hash(NULL) is NULL),
-- so that NULL means only "not computed yet" (core.db.fill_lookup_hashes) and a table whose rows all have
-- their hash holds none.
CREATE OR REPLACE TEMP MACRO stored_key_hash(k) AS coalesce(key_hash(k), 0::UBIGINT);

-- A span's content apart from where it was read (source, line): equal for the copies of one span
-- that an exporter's retry or two overlapping dumps deliver.
CREATE OR REPLACE TEMP MACRO span_content_hash(parent, name, kind, service, start_ns, end_ns, status_code, status_message,
                                          attributes, resource_attributes, events, links, scope_name) AS
    md5(to_json([parent::VARCHAR, name, kind, service, start_ns::VARCHAR, end_ns::VARCHAR, status_code, status_message,
                 attributes::VARCHAR, resource_attributes::VARCHAR, events::VARCHAR, links::VARCHAR, scope_name])::VARCHAR);

-- Text for HTML (plotly hover and labels): '&', '<' and '>' escaped (quotes need no escaping
-- there), NULL as ''. Same as Python's html.escape(str(v), quote=False).
CREATE OR REPLACE TEMP MACRO html_text(v) AS
    replace(replace(replace(coalesce((v)::VARCHAR, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;');

-- A correlation key read from _meta (JSON): a string as its text, an integer in decimal; anything
-- else (an object, an array, a float, a boolean, null) is no key.
CREATE OR REPLACE TEMP MACRO meta_key_text(j) AS CASE json_type(j)
    WHEN 'VARCHAR' THEN j->>'$' WHEN 'BIGINT' THEN j::VARCHAR WHEN 'UBIGINT' THEN j::VARCHAR END;

-- The namespace a session key's value lives in (mcptrace.analysis.rebuild.key_family): its source, except
-- that a conversation id read from _meta.baggage ('baggage <member>') or from spans
-- ('spans.conversation_id') is one namespace, 'conversation'.
CREATE OR REPLACE TEMP MACRO session_key_family(src) AS
    CASE WHEN src = 'spans.conversation_id' OR starts_with(src, 'baggage ') THEN 'conversation' ELSE src END;

-- A session's client as a finding names it: clientInfo name and version, else 'unidentified client'.
CREATE OR REPLACE TEMP MACRO client_party(name, version) AS
    coalesce(name || coalesce(' ' || version, ''), 'unidentified client');

-- The attribute join's 10-minute buckets (epoch microseconds // 600,000,000; attr_pairs.sql): those the window
-- of a call covers (from window_us before its start to window_us after its end, at most an hour after its
-- start), and those in which a call starts whose window may hold a span starting at start_ts. An append's
-- scope reads the spans and calls around it by them (scope_grow.sql, mcptrace.analysis.incremental).
CREATE OR REPLACE TEMP MACRO attr_call_buckets(start_ts, end_ts, window_us) AS
    range((epoch_us(start_ts) - window_us) // 600000000,
          (epoch_us(least(coalesce(end_ts, start_ts + INTERVAL 1 HOUR), start_ts + INTERVAL 1 HOUR)) + window_us)
              // 600000000 + 1);

CREATE OR REPLACE TEMP MACRO attr_span_call_buckets(start_ts, window_us) AS
    range((epoch_us(start_ts) - 3600000000 - window_us) // 600000000, (epoch_us(start_ts) + window_us) // 600000000 + 1);

-- The one-to-one order's rank (call_spans.sql: NOT inside, NOT by_id, distance, span_id, trace_id, call_id)
-- of a pair the attribute join assigned, from its call_spans evidence.
CREATE OR REPLACE TEMP MACRO attr_held_rank(evidence, span_id, trace_id, call_id) AS
    (NOT (evidence->>'inside_call')::BOOLEAN,
     NOT list_contains(json_extract_string(evidence, '$.matched_on[*]'), 'jsonrpc.request.id'),
     round((evidence->>'distance_ms')::DOUBLE * 1000)::BIGINT, span_id, trace_id, call_id);
