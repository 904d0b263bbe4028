-- Move one batch of normalised rows (_all, filled by messages.sql) into http_events and messages
-- (messages_rejects.sql, run before it for a batch with rejects, writes its rejects).
-- Parameters: $base_id (message ids continue from it).

INSERT INTO http_events BY NAME
SELECT source_id, record_no, ts, event, direction, transport, connection_id, mcp_session_id, exchange_id,
       http_method, http_path, http_status, sse_event_id, sse_retry_ms, last_event_id, http_error AS error,
       http_request_headers, http_response_headers,
       stored_key_hash(coalesce(mcp_session_id, connection_id)) AS scope_hash,
       stored_key_hash(exchange_id) AS exchange_hash
FROM _all WHERE reject_reason IS NULL AND kind = 'http_event';

-- message ids in capture order: a narrow numbering joined back by rowid (a window over the
-- wide rows would sort all of them); rowid breaks ties between messages of one record
CREATE OR REPLACE TEMP TABLE _ids AS
SELECT rowid AS rid, $base_id + row_number() OVER (ORDER BY record_no, batch_index, rowid) AS message_id
FROM _all WHERE reject_reason IS NULL AND kind <> 'http_event';

INSERT INTO messages BY NAME
SELECT a.* EXCLUDE (reject_reason, raw_reject, from_reader, message_id, event, sse_retry_ms, last_event_id, http_error)
           REPLACE (stored_key_hash(coalesce(a.mcp_session_id, a.connection_id)) AS scope_hash,
                    stored_key_hash(a.exchange_id) AS exchange_hash),
       i.message_id
FROM _all a JOIN _ids i ON i.rid = a.rowid
WHERE a.reject_reason IS NULL AND a.kind <> 'http_event';

DROP TABLE _ids;
