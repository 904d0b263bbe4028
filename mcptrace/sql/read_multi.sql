-- The readers whose records hold several envelopes (HAR, MCP Inspector exports): a record's line is a JSON
-- array of envelope objects (plus _k, their position) or {"_k", "_reject": reason, "_raw": text}. The
-- elements become _envelope_src, read by read_envelope_rows.sql exactly as envelope lines, with a packed
-- record number (record_no << 20) + _k (20 = mcptrace.ingest.readers.http_entries.KEY_BITS, checked by a
-- test); read_multi_batch.sql maps it back. Created when such a file starts loading, after the loader
-- registered _lines(record_no, line, decode_error). Temporary: it lives with the connection.
CREATE OR REPLACE TEMP VIEW _envelope_src AS
WITH _rec AS (
    SELECT record_no AS rec_no, line AS rec_line, decode_error AS rec_error FROM _lines
), _el AS (
    SELECT rec_no, unnest(json_extract(rec_line, '$[*]'))::VARCHAR AS el FROM _rec WHERE rec_error IS NULL
), _src AS (
    SELECT (rec_no << 20) + CAST(el->>'$._k' AS BIGINT) AS record_no, el AS line,
           el->>'$._reject' AS decode_error, rec_no,
           CASE WHEN el->>'$._reject' IS NOT NULL THEN el->>'$._raw' ELSE el END AS raw,
           el->>'$.transport' AS transport_in
    FROM _el
    UNION ALL
    SELECT rec_no << 20, rec_line, rec_error, rec_no, rec_line, NULL FROM _rec WHERE rec_error IS NOT NULL
)
SELECT * FROM _src;
