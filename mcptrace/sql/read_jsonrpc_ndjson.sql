-- Bare JSON-RPC NDJSON (a stdio tee): one message or batch array per line, no times, no direction.
-- Created when a file of that format starts loading, after the loader registered the relation
-- _lines(record_no, line, decode_error) and set the variable mcptrace_connection_id (the default
-- connection id from the file name). Temporary: it lives with the connection.
CREATE OR REPLACE TEMP VIEW _batch_out AS
SELECT record_no,
       NULL::TIMESTAMPTZ AS ts,
       NULL::VARCHAR AS direction,
       'stdio' AS transport,
       getvariable('mcptrace_connection_id') AS connection_id,
       NULL::JSON AS http,
       CASE WHEN json_valid(line) THEN line::JSON END AS message,
       CASE
         WHEN decode_error IS NOT NULL THEN decode_error
         WHEN NOT json_valid(line) THEN 'invalid JSON'
         WHEN json_type(line) NOT IN ('OBJECT', 'ARRAY') THEN 'not a JSON-RPC message (a JSON ' || lower(json_type(line)) || ')'
       END AS reject_reason,
       NULL::VARCHAR AS raw
FROM _lines;
