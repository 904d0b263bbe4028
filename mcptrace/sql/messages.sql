-- Normalise this load's wire rows (_wire_new) into messages.
-- Parameters: $base_id (BIGINT), $sk_paths/$sk_names, $ck_paths/$ck_names (VARCHAR[]).

-- JSON arrays: a 2025-03-26 batch when it holds at least one object; otherwise the whole
-- line is one reject (an array of a million numbers is one bad record, not a million).
CREATE OR REPLACE TEMP TABLE _batch AS
SELECT source_id, record_no, json_array_length(message) AS n_items,
       len(list_filter(json_extract(message, '$[*]'), lambda e: json_type(e) = 'OBJECT')) AS n_objects
FROM _wire_new WHERE json_type(message) = 'ARRAY';

CREATE OR REPLACE TEMP VIEW _msg_x AS
WITH w AS (
    SELECT w.*, json_type(message) AS mt FROM _wire_new w
    ANTI JOIN (SELECT * FROM _batch WHERE n_objects = 0) b USING (source_id, record_no)
), x AS (
    SELECT source_id, record_no, NULL::INTEGER AS batch_index, ts, direction, transport, connection_id, http, message AS m
    FROM w WHERE mt = 'OBJECT'
    UNION ALL
    SELECT source_id, record_no, unnest(range(json_array_length(message)::BIGINT))::INTEGER AS batch_index,
           ts, direction, transport, connection_id, http, unnest(json_extract(message, '$[*]')) AS m
    FROM w WHERE mt = 'ARRAY'
)
SELECT x.*,
       json_extract(m, ['$.id', '$.method', '$.params.name', '$.params._meta', '$.params.progressToken',
                        '$.params.requestId', '$.result.isError', '$.error.code', '$.error.message',
                        '$.params.clientInfo.name', '$.params.clientInfo.version', '$.params.protocolVersion',
                        '$.result.serverInfo.name', '$.result._meta."io.modelcontextprotocol/serverInfo".name',
                        '$.result.resultType', '$.result.requestState', '$.params.requestState']) AS v,
       json_exists(m, '$.result') AS has_result,
       json_exists(m, '$.error') AS has_error,
       json_extract_string(http, ['$.method', '$.path', '$.status', '$.sse_event_id',
                        '$.request_headers."mcp-session-id"', '$.request_headers."Mcp-Session-Id"',
                        '$.response_headers."mcp-session-id"', '$.response_headers."Mcp-Session-Id"',
                        '$.request_headers.traceparent', '$.request_headers.Traceparent',
                        '$.request_headers."mcp-protocol-version"', '$.request_headers."MCP-Protocol-Version"',
                        '$.request_headers."mcp-client-session-id"', '$.request_headers."Mcp-Client-Session-Id"']) AS h
FROM x;

CREATE OR REPLACE TEMP TABLE _msg_c AS
SELECT *,
       CASE
         WHEN json_type(m) <> 'OBJECT' THEN 'batch element is not a JSON object'
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
       CASE WHEN v[2] IS NOT NULL AND v[1] IS NOT NULL THEN 'request'
            WHEN v[2] IS NOT NULL THEN 'notification'
            WHEN has_error THEN 'error'
            ELSE 'response' END AS kind,
       v[2]->>'$' AS method,
       CASE WHEN json_type(v[4]) = 'OBJECT' THEN v[4] END AS meta_obj
FROM _msg_x;

INSERT INTO rejects
SELECT source_id, record_no,
       $record_label || ' ' || record_no || ': ' || reject_reason || CASE WHEN batch_index IS NOT NULL THEN ' (batch element ' || batch_index || ')' ELSE '' END,
       left(m::VARCHAR, 4096)
FROM _msg_c WHERE reject_reason IS NOT NULL;

INSERT INTO rejects
SELECT b.source_id, b.record_no,
       $record_label || ' ' || b.record_no || ': ' ||
       CASE WHEN b.n_items = 0 THEN 'empty JSON-RPC batch'
            ELSE 'JSON array of ' || b.n_items || ' items holds no JSON-RPC message' END,
       left(w.message::VARCHAR, 4096)
FROM _batch b JOIN _wire_new w USING (source_id, record_no) WHERE b.n_objects = 0;

INSERT INTO messages BY NAME
WITH c AS (
    SELECT *,
           CASE WHEN json_type(meta_obj, '$.traceparent') = 'VARCHAR' THEN meta_obj->>'$.traceparent' END AS tp,
           coalesce(h[9], h[10]) AS http_tp,
           list_filter(list_zip(json_extract_string(meta_obj, $sk_paths::VARCHAR[]), $sk_names::VARCHAR[]),
                       lambda p: p[1] IS NOT NULL)[1] AS sk,
           list_filter(list_zip(json_extract_string(meta_obj, $ck_paths::VARCHAR[]), $ck_names::VARCHAR[]),
                       lambda p: p[1] IS NOT NULL)[1] AS ck,
           coalesce(h[13], h[14]) AS client_session_header
    FROM _msg_c WHERE reject_reason IS NULL
), t AS (
    SELECT *, w3c_traceparent_valid(tp) AS tp_valid FROM c
)
SELECT $base_id + row_number() OVER (ORDER BY source_id, record_no, batch_index) AS message_id,
       source_id, record_no, ts,
       coalesce(direction, mcp_method_direction(method)) AS direction,
       transport, connection_id,
       coalesce(h[5], h[6], h[7], h[8], http->>'$.mcp_session_id',
                nullif(regexp_extract(h[2], '[?&]session_?[iI]d=([^&]+)', 1), '')) AS mcp_session_id,
       kind,
       CASE WHEN v[1] IS NOT NULL THEN v[1]::VARCHAR END AS rpc_id,
       method,
       CASE WHEN method = 'tools/call' THEN v[3]->>'$' END AS tool_name,
       meta_obj AS meta,
       tp AS traceparent,
       CASE WHEN tp_valid THEN substr(tp, 4, 32) END AS trace_id,
       CASE WHEN tp_valid THEN substr(tp, 37, 16) END AS parent_span_id,
       CASE WHEN method = 'notifications/progress' THEN v[5]::VARCHAR
            ELSE (meta_obj->'$.progressToken')::VARCHAR END AS progress_token,
       coalesce(sk[1], client_session_header) AS session_key,
       CASE WHEN sk[1] IS NOT NULL THEN sk[2] WHEN client_session_header IS NOT NULL THEN 'Mcp-Client-Session-Id' END
           AS session_key_source,
       ck[1] AS call_key,
       m AS raw,
       batch_index,
       CASE WHEN tp_valid THEN substr(tp, 54, 2) END AS trace_flags,
       meta_obj->>'$.tracestate' AS tracestate,
       tp_valid AS traceparent_valid,
       http_tp AS http_traceparent,
       h[1] AS http_method, http->'$.request_headers' AS http_request_headers,
       http->'$.response_headers' AS http_response_headers, h[2] AS http_path, try_cast(h[3] AS INTEGER) AS http_status, h[4] AS sse_event_id,
       coalesce(meta_obj->>'$."io.modelcontextprotocol/protocolVersion"', h[11], h[12],
                CASE WHEN method = 'initialize' THEN v[12]->>'$' END) AS protocol_version,
       ck[2] AS call_key_source,
       CASE WHEN method = 'notifications/cancelled' THEN v[6]::VARCHAR END AS cancel_request_id,
       coalesce(v[7]::VARCHAR = 'true', false) AS is_error,
       try_cast(v[8]->>'$' AS BIGINT) AS error_code,
       v[9]->>'$' AS error_message,
       coalesce(CASE WHEN method = 'initialize' THEN v[10]->>'$' END,
                meta_obj->>'$."io.modelcontextprotocol/clientInfo".name') AS client_name,
       coalesce(v[13]->>'$', v[14]->>'$') AS server_name,
       v[15]->>'$' AS result_type,
       coalesce(v[16]->>'$', v[17]->>'$') AS request_state,
       coalesce(CASE WHEN method = 'initialize' THEN v[11]->>'$' END,
                meta_obj->>'$."io.modelcontextprotocol/clientInfo".version') AS client_version
FROM t;

-- Bare captures carry no direction: a response goes opposite to the request it answers, a
-- cancel goes the way of the request it cancels, progress opposite to the request that gave the token.
UPDATE messages SET direction = d.dir
FROM (
    WITH ev AS (
        SELECT message_id, kind, method, direction, source_id, connection_id, record_no, batch_index,
               CASE WHEN kind IN ('request', 'response', 'error') THEN rpc_id
                    WHEN method = 'notifications/cancelled' THEN cancel_request_id END AS k
        FROM messages WHERE source_id IN (SELECT DISTINCT source_id FROM _wire_new)
    ), r AS (
        SELECT message_id, kind, method, direction,
               last_value(CASE WHEN kind = 'request' THEN direction END IGNORE NULLS) OVER (
                   PARTITION BY source_id, connection_id, k ORDER BY record_no, batch_index
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS req_dir
        FROM ev WHERE k IS NOT NULL
    )
    SELECT message_id,
           CASE WHEN method = 'notifications/cancelled' THEN req_dir
                WHEN req_dir = 'client_to_server' THEN 'server_to_client'
                WHEN req_dir = 'server_to_client' THEN 'client_to_server' END AS dir
    FROM r WHERE direction IS NULL AND kind <> 'request'
) d
WHERE messages.message_id = d.message_id AND d.dir IS NOT NULL;

UPDATE messages SET direction = d.dir
FROM (
    WITH ev AS (
        SELECT message_id, kind, method, direction, source_id, connection_id, record_no, batch_index, progress_token
        FROM messages WHERE source_id IN (SELECT DISTINCT source_id FROM _wire_new) AND progress_token IS NOT NULL
    ), r AS (
        SELECT message_id, method, direction,
               last_value(CASE WHEN kind = 'request' THEN direction END IGNORE NULLS) OVER (
                   PARTITION BY source_id, connection_id, progress_token ORDER BY record_no, batch_index
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS req_dir
        FROM ev
    )
    SELECT message_id, CASE req_dir WHEN 'client_to_server' THEN 'server_to_client'
                                    WHEN 'server_to_client' THEN 'client_to_server' END AS dir
    FROM r WHERE direction IS NULL AND method = 'notifications/progress'
) d
WHERE messages.message_id = d.message_id AND d.dir IS NOT NULL;

UPDATE messages SET direction = 'client_to_server'
WHERE direction IS NULL AND source_id IN (SELECT DISTINCT source_id FROM _wire_new) AND kind = 'request';

DROP TABLE _msg_c;

DROP VIEW _msg_x;

DROP TABLE _batch;
