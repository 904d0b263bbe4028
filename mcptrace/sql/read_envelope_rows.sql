-- Envelope JSONL records (README: Inputs) as wire rows: _envelope_rows over _envelope_src (the records:
-- record_no, line, decode_error), shared by the envelope, Claude log, HAR and inspector readers.
-- Created when a file of that format starts loading, after the loader registered the relation
-- _lines(record_no, line, decode_error) and set the variable mcptrace_connection_id (the default
-- connection id from the file name) and the variables mcptrace_ts_min and mcptrace_ts_max (TIMESTAMPTZ: the
-- timestamps accepted, LoadOptions.ts_range). Temporary: it lives with the connection.
CREATE OR REPLACE TEMP VIEW _envelope_rows AS
WITH parsed AS (
    SELECT record_no, line, decode_error, json_valid(line) AS ok FROM _envelope_src
), env AS (
    SELECT record_no, line, decode_error, ok,
           CASE WHEN ok AND json_type(line) = 'OBJECT' THEN json_transform(line,
             '{"ts":"VARCHAR","direction":"VARCHAR","transport":"VARCHAR","connection_id":"VARCHAR",
               "http":"JSON","message":"JSON","raw":"VARCHAR"}') END AS e
    FROM parsed
), lim AS (
    -- the accepted range, and how a reject names it (a date when it is midnight UTC)
    SELECT ts_min, ts_max,
           list_transform([ts_min, ts_max], lambda t: CASE WHEN timezone('UTC', t)::TIME = TIME '00:00:00'
               THEN strftime(timezone('UTC', t), '%Y-%m-%d') ELSE strftime(timezone('UTC', t), '%Y-%m-%dT%H:%M:%S.%fZ') END)
               AS ts_label
    FROM (SELECT getvariable('mcptrace_ts_min') AS ts_min, getvariable('mcptrace_ts_max') AS ts_max)
), env_ts AS (
    -- infinity, BC years and years past 9999 cast to TIMESTAMPTZ too: outside the accepted range is a reject
    SELECT env.*, try_cast(e.ts AS TIMESTAMPTZ) AS ts_value, lim.*
    FROM env CROSS JOIN lim
)
SELECT record_no,
       ts_value AS ts,
       e.direction AS direction,
       coalesce(e.transport, 'stdio') AS transport,
       coalesce(e.connection_id, getvariable('mcptrace_connection_id')) AS connection_id,
       CASE WHEN json_type(e.http) = 'OBJECT' THEN e.http END AS http,
       CASE WHEN json_type(e.message) <> 'NULL' THEN e.message END AS message,
       CASE
         WHEN decode_error IS NOT NULL THEN decode_error
         WHEN NOT ok THEN 'invalid JSON'
         WHEN e IS NULL THEN 'envelope is not a JSON object'
         WHEN (e.message IS NULL OR json_type(e.message) = 'NULL') AND (e.raw IS NOT NULL OR json_type(e.http) IS DISTINCT FROM 'OBJECT') THEN
              'not JSON on the wire: ' || coalesce(left(e.raw, 80), '(no message)')
         WHEN json_type(e.message) NOT IN ('OBJECT', 'ARRAY', 'NULL') THEN 'message is not a JSON object or array'
         WHEN e.ts IS NOT NULL AND ts_value IS NULL THEN 'ts is not an RFC 3339 timestamp: ' || left(e.ts, 40)
         WHEN ts_value < ts_min OR ts_value > ts_max THEN
              'ts is outside ' || ts_label[1] || ' .. ' || ts_label[2] || ': ' || left(e.ts, 40)
         WHEN e.direction IS NOT NULL AND e.direction NOT IN ('client_to_server', 'server_to_client')
              THEN 'direction is neither client_to_server nor server_to_client'
       END AS reject_reason
FROM env_ts;
