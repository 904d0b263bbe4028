-- Direction of messages a capture did not record (bare JSON-RPC NDJSON), for one source.
-- Parameter: $source_id. Run after all of the source's batches are in messages.

-- Bare captures carry no direction: a response goes opposite to the request it answers, a
-- cancel goes the way of the request it cancels, progress opposite to the request that gave the token.
UPDATE messages SET direction = d.dir
FROM (
    WITH ev AS (
        SELECT message_id, kind, method, direction, source_id, connection_id, record_no, batch_index,
               CASE WHEN kind IN ('request', 'response', 'error') THEN rpc_id
                    WHEN method = 'notifications/cancelled' THEN cancel_request_id END AS k
        FROM messages WHERE source_id = $source_id
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
        FROM messages WHERE source_id = $source_id AND progress_token IS NOT NULL
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
WHERE direction IS NULL AND source_id = $source_id AND kind = 'request';
