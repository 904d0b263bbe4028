-- Normalise one batch of wire rows (the reader's view _batch_out, see ingest/readers/base.py) into _all (created by the
-- loader with the columns of messages plus reject_reason, raw_reject, from_reader and the
-- http_events columns); messages_finish.sql then moves the batch's rows into messages and
-- http_events, and messages_rejects.sql its rejects, in one insert each. A wire row without a message
-- (the reader left `message` NULL without rejecting it) is an HTTP transport event (kind 'http_event').
-- Parameters: $source_id, $paths (VARCHAR[]: the message paths below, then the session-key, call-key
-- and turn-key paths of params._meta), $http_paths (VARCHAR[]: keys.HTTP_PATHS, h[1..] below),
-- $key_names (VARCHAR[]: the name of the key at each position of $paths), $bk_names and $bk_patterns
-- (the baggage members read as session keys, and the patterns whose group 1 is each one's
-- percent-encoded value: keys.baggage_pattern). The load's macros mcptrace_session_key_at,
-- mcptrace_call_key_at and mcptrace_turn_key_at (KeyConfig.sql_macros) give the position in $paths of
-- the first key of each role a message holds. Credentials are redacted by the load's macros
-- mcptrace_secret_hit and mcptrace_redact (RedactionPolicy.sql_macros: the same rules as the readers
-- and the recorders). Every message and header is parsed once: one json_extract over all message
-- paths, one json_extract_string over all header paths.
--
-- $paths[1..]: 1 id, 2 method, 3 params.name, 4 params._meta, 5 params.progressToken,
-- 6 params.requestId, 7 result.isError, 8 error.code, 9 error.message, 10 clientInfo.name,
-- 11 clientInfo.version, 12 params.protocolVersion, 13 result.serverInfo.name,
-- 14 result._meta serverInfo name, 15 result.resultType, 16 result.requestState,
-- 17 params.requestState, 18 _meta.traceparent, 19 _meta.tracestate, 20 _meta.progressToken,
-- 21 _meta protocolVersion, 22 _meta clientInfo.name, 23 _meta clientInfo.version, 24 _meta.baggage,
-- 25 result.serverInfo.version, 26 result._meta serverInfo version, then session keys, call keys and turn keys. Whether result and error are present (and the truncation note of a cut message,
-- _meta."mcptrace/truncated" of params, result or error) is json_exists: extracting them would write
-- out a whole result (a 50 MB screenshot: DuckDB reserves six times a string's length to write it).
-- h[16..20]: exchange_id, the recorder's error note, sse_retry_ms, Last-Event-ID (two spellings).

INSERT INTO _all BY NAME
WITH w AS MATERIALIZED (
    -- the redaction rules (and the re-parse of their output) only where the cheap test hits; every
    -- branch below reads these rows, so the rules appear once in the statement (their regular
    -- expressions are compiled when it is planned, for each place they appear)
    SELECT record_no, ts, direction, transport, connection_id, reader_reason, reader_raw,
           CASE WHEN hit THEN mcptrace_redact(http::VARCHAR)::JSON ELSE http END AS http,
           CASE WHEN hit THEN mcptrace_redact(message::VARCHAR)::JSON ELSE message END AS message,
           left(ltrim(message::VARCHAR, E' \t\n\r'), 1) AS mt
    FROM (SELECT record_no, ts, direction, transport, connection_id, http, message, reject_reason AS reader_reason,
                 raw AS reader_raw,  -- a reject's own text (NULL: the record's line is kept)
                 reject_reason IS NULL AND mcptrace_secret_hit(coalesce(http::VARCHAR, '') || message::VARCHAR) AS hit
          FROM _batch_out)
), ev AS (
    -- HTTP transport events: classified from the method, the Last-Event-ID header, the SSE fields
    -- and the recorder's error note
    SELECT record_no, ts, direction, transport, connection_id, http, h,
           upper(h[1]) AS hm, try_cast(h[3] AS INTEGER) AS st, coalesce(h[19], h[20]) AS lei
    FROM (SELECT *, json_extract_string(http, $http_paths::VARCHAR[]) AS h FROM w
          WHERE reader_reason IS NULL AND message IS NULL AND http IS NOT NULL)
), arr AS (
    SELECT *, json_extract(message, '$[*]') AS items FROM w WHERE reader_reason IS NULL AND mt = '['
), arr2 AS (
    SELECT *, len(items) AS n_items, len(list_filter(items, lambda e: json_type(e) = 'OBJECT')) AS n_objects FROM arr
), x AS (
    SELECT record_no, NULL::INTEGER AS batch_index, ts, direction, transport, connection_id, http, message AS m,
           mt = '{' AS is_obj, NULL::VARCHAR AS array_reason
    FROM w WHERE reader_reason IS NULL AND mt <> '[' AND message IS NOT NULL
    UNION ALL
    -- a 2025-03-26 batch when it holds at least one object
    SELECT record_no, unnest(range(n_items))::INTEGER, ts, direction, transport, connection_id, http,
           unnest(items), NULL, NULL
    FROM arr2 WHERE n_objects > 0
    UNION ALL
    -- otherwise the whole line is one reject (an array of a million numbers is one bad record)
    SELECT record_no, NULL, ts, direction, transport, connection_id, http, message, false,
           CASE WHEN n_items = 0 THEN 'empty JSON-RPC batch'
                ELSE 'JSON array of ' || n_items || ' items holds no JSON-RPC message' END
    FROM arr2 WHERE n_objects = 0
), e AS (
    SELECT *, coalesce(is_obj, json_type(m) = 'OBJECT') AS obj,
           json_extract(m, $paths::VARCHAR[]) AS v, json_exists(m, ['$.result', '$.error', '$.params._meta."mcptrace/truncated"',
                                   '$.result._meta."mcptrace/truncated"', '$.error._meta."mcptrace/truncated"']) AS present,
           json_extract_string(http, $http_paths::VARCHAR[]) AS h,
           json_extract(http, ['$.request_headers', '$.response_headers']) AS hj
    FROM x
), c AS (
    SELECT *,
           v[2]->>'$' AS method,
           present[1] AS has_result, present[2] AS has_error,
           json_type(v[4]) = 'OBJECT' AS meta_ok,
           CASE WHEN json_type(v[18]) = 'VARCHAR' THEN v[18]->>'$' END AS tp,
           -- a key is a string or an integer; an object or array there is no key: the position of the
           -- first key that holds one, in each role's priority order (KeyConfig.sql_macros)
           mcptrace_session_key_at(v) AS ski, mcptrace_call_key_at(v) AS cki, mcptrace_turn_key_at(v) AS tki,
           CASE WHEN json_type(v[24]) = 'VARCHAR' AND len($bk_names::VARCHAR[]) > 0 THEN
                list_filter(list_zip(list_transform($bk_patterns::VARCHAR[], lambda b: nullif(url_decode(
                    regexp_extract(v[24]->>'$', b, 1)), '')), $bk_names::VARCHAR[]), lambda p: p[1] IS NOT NULL)[1]
           END AS bk,
           coalesce(h[13], h[14]) AS client_session_header,
           -- the keys of every object the analysis reads members of (NULL where it is absent)
           CASE WHEN obj THEN json_keys(m, ['$', '$.params', '$.params._meta', '$.params.clientInfo', '$.result',
                                            '$.result._meta', '$.result.serverInfo', '$.error']) END AS jk
    FROM e
), d AS (
    -- a key given twice: DuckDB reads the first value, JSON.parse and Python's json the last, so the
    -- message is rejected, naming every repeated key (the names are listed only when a count differs)
    SELECT *,
           CASE WHEN len(list_filter(jk, lambda k: len(k) > len(list_distinct(k)))) > 0 THEN
                array_to_string(flatten(list_transform(jk, lambda k, j: list_transform(
                    list_filter(k, lambda x, i: list_position(k, x) = i AND len(list_filter(k, lambda y: y = x)) > 1),
                    lambda x: ['', 'params.', 'params._meta.', 'params.clientInfo.', 'result.', 'result._meta.',
                               'result.serverInfo.', 'error.'][j] || x))), ', ') END AS dup_keys
    FROM c
), r AS (
    SELECT *,
           CASE
             WHEN array_reason IS NOT NULL THEN array_reason
             WHEN NOT obj THEN 'batch element is not a JSON object'
             WHEN dup_keys IS NOT NULL THEN 'JSON-RPC message has duplicate keys: ' || dup_keys
             WHEN v[2] IS NOT NULL AND json_type(v[2]) <> 'VARCHAR' THEN 'message.method is not a string'
             WHEN v[1] IS NOT NULL AND json_type(v[1]) NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT', 'NULL') THEN
                  'message.id is ' || CASE json_type(v[1]) WHEN 'OBJECT' THEN 'an object' WHEN 'ARRAY' THEN 'an array'
                                       WHEN 'DOUBLE' THEN 'a float' WHEN 'BOOLEAN' THEN 'a boolean'
                                       ELSE lower(json_type(v[1])) END
             WHEN v[2] IS NOT NULL AND json_type(v[1]) = 'NULL' THEN 'message.id is null (MCP requires a string or integer id)'
             WHEN v[2] IS NULL AND NOT has_result AND NOT has_error THEN 'not a JSON-RPC message (no method, result or error)'
             WHEN v[2] IS NULL AND v[1] IS NULL THEN 'response without id'
             WHEN v[2] IS NULL AND NOT has_error AND json_type(v[1]) = 'NULL' THEN 'message.id is null in a result'
           END AS reject_reason,
           w3c_traceparent_valid(tp) AS tp_valid
    FROM d
)
SELECT record_no, batch_index, reject_reason, CASE WHEN reject_reason IS NOT NULL THEN m::VARCHAR END AS raw_reject,
       false AS from_reader,
       $source_id::INTEGER AS source_id, ts,
       coalesce(direction, mcp_method_direction(method)) AS direction,
       transport, connection_id,
       coalesce(h[5], h[6], h[7], h[8], h[15],
                nullif(regexp_extract(h[2], '[?&]session_?[iI]d=([^&]+)', 1), '')) AS mcp_session_id,
       CASE WHEN v[2] IS NOT NULL AND v[1] IS NOT NULL THEN 'request'
            WHEN v[2] IS NOT NULL THEN 'notification'
            WHEN has_error THEN 'error'
            ELSE 'response' END AS kind,
       CASE WHEN v[1] IS NOT NULL THEN v[1]::VARCHAR END AS rpc_id,
       method,
       CASE WHEN method = 'tools/call' THEN v[3]->>'$' END AS tool_name,
       CASE WHEN meta_ok THEN v[4] END AS meta,
       tp AS traceparent,
       CASE WHEN tp_valid THEN substr(tp, 4, 32) END AS trace_id,
       CASE WHEN tp_valid THEN substr(tp, 37, 16) END AS parent_span_id,
       CASE WHEN method = 'notifications/progress' THEN v[5]::VARCHAR
            WHEN meta_ok THEN v[20]::VARCHAR END AS progress_token,
       CASE WHEN meta_ok THEN coalesce(meta_key_text(v[ski]), bk[1], client_session_header)
            ELSE client_session_header END AS session_key,
       CASE WHEN meta_ok AND ski IS NOT NULL THEN ($key_names::VARCHAR[])[ski]
            WHEN meta_ok AND bk[1] IS NOT NULL THEN bk[2]
            WHEN client_session_header IS NOT NULL THEN 'Mcp-Client-Session-Id' END AS session_key_source,
       CASE WHEN meta_ok THEN meta_key_text(v[cki]) END AS call_key,
       CASE WHEN meta_ok THEN meta_key_text(v[tki]) END AS turn_key,
       CASE WHEN meta_ok THEN ($key_names::VARCHAR[])[tki] END AS turn_key_source,
       CASE WHEN reject_reason IS NULL THEN m END AS raw,
       CASE WHEN tp_valid THEN substr(tp, 54, 2) END AS trace_flags,
       CASE WHEN meta_ok THEN v[19]->>'$' END AS tracestate,
       tp_valid AS traceparent_valid,
       coalesce(h[9], h[10]) AS http_traceparent,
       h[1] AS http_method, hj[1] AS http_request_headers, hj[2] AS http_response_headers,
       h[2] AS http_path, try_cast(h[3] AS INTEGER) AS http_status, h[4] AS sse_event_id,
       coalesce(CASE WHEN meta_ok THEN v[21]->>'$' END, h[11], h[12],
                CASE WHEN method = 'initialize' THEN v[12]->>'$' END) AS protocol_version,
       CASE WHEN meta_ok THEN ($key_names::VARCHAR[])[cki] END AS call_key_source,
       CASE WHEN method = 'notifications/cancelled' THEN v[6]::VARCHAR END AS cancel_request_id,
       coalesce(v[7]::VARCHAR = 'true', false) AS is_error,
       try_cast(v[8]->>'$' AS BIGINT) AS error_code,
       v[9]->>'$' AS error_message,
       coalesce(CASE WHEN method = 'initialize' THEN v[10]->>'$' END,
                CASE WHEN meta_ok THEN v[22]->>'$' END) AS client_name,
       coalesce(v[13]->>'$', v[14]->>'$') AS server_name,
       CASE WHEN v[13] IS NOT NULL THEN v[25]->>'$' ELSE v[26]->>'$' END AS server_version,
       v[15]->>'$' AS result_type,
       coalesce(v[16]->>'$', v[17]->>'$') AS request_state,
       coalesce(CASE WHEN method = 'initialize' THEN v[11]->>'$' END,
                CASE WHEN meta_ok THEN v[23]->>'$' END) AS client_version,
       h[16] AS exchange_id,
       -- cut in the capture (Claude Desktop's "...[N chars truncated]...", recovered by its reader)
       present[3] OR present[4] OR present[5] AS truncated
FROM r
UNION ALL BY NAME
SELECT record_no, NULL AS reject_reason, false AS from_reader, $source_id::INTEGER AS source_id, ts, direction,
       transport, connection_id, 'http_event' AS kind,
       coalesce(h[5], h[6], h[7], h[8], h[15],
                nullif(regexp_extract(h[2], '[?&]session_?[iI]d=([^&]+)', 1), '')) AS mcp_session_id,
       h[1] AS http_method, h[2] AS http_path, st AS http_status, h[4] AS sse_event_id, h[16] AS exchange_id,
       try_cast(h[18] AS BIGINT) AS sse_retry_ms, lei AS last_event_id, h[17] AS http_error,
       json_extract(http, '$.request_headers') AS http_request_headers,
       json_extract(http, '$.response_headers') AS http_response_headers,
       CASE WHEN hm = 'GET' AND lei IS NOT NULL AND (st >= 400 OR h[17] IS NOT NULL) THEN 'resumption_failed'
            WHEN h[17] IS NOT NULL THEN
                 CASE WHEN starts_with(h[17], 'upstream_reset') THEN 'reset'
                      WHEN starts_with(h[17], 'client_disconnected') THEN 'client_disconnected'
                      WHEN starts_with(h[17], 'proxy_shutdown') THEN 'capture_stopped'
                      WHEN starts_with(h[17], 'upstream_error') THEN 'upstream_error'
                      ELSE 'error' END
            WHEN direction = 'server_to_client' AND (h[4] IS NOT NULL OR h[18] IS NOT NULL) THEN 'sse_priming'
            WHEN hm = 'DELETE' THEN 'delete'
            WHEN hm = 'GET' AND lei IS NOT NULL THEN 'resumption'
            WHEN hm = 'GET' THEN 'get_stream'
            WHEN st >= 400 THEN 'http_error'
            ELSE 'other' END AS event
FROM ev
UNION ALL BY NAME
-- the reader's rejects (the loader takes them with their lines)
SELECT record_no, reader_reason AS reject_reason, reader_raw AS raw_reject, true AS from_reader,
       $source_id::INTEGER AS source_id
FROM w WHERE reader_reason IS NOT NULL;
