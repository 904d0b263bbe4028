-- The reader's rejects of one batch (records $lo..$hi of _all, the loader's staging table), with the
-- reason naming the record ($label: line, entry, frame) and the raw text redacted and cut at
-- $raw_limit characters (mcptrace.core.db.RAW_LIMIT); _json_reasons holds the JSON parser's message
-- for the lines that are not JSON. The loader raises on the first row with errors="raise", else
-- inserts them into rejects. Parameters: $label, $lo, $hi, $raw_limit; reason and raw are redacted by the
-- load's macro mcptrace_redact (RedactionPolicy.sql_macros).
CREATE OR REPLACE TEMP TABLE _batch_rejects AS
SELECT b.record_no, $label || ' ' || b.record_no || ': ' || mcptrace_redact(coalesce(j.reason, b.reject_reason)) AS reason,
       left(mcptrace_redact(left(coalesce(b.raw_reject, l.line), 65536)), $raw_limit) AS raw
FROM _all b JOIN _lines l USING (record_no) LEFT JOIN _json_reasons j USING (record_no)
WHERE b.from_reader AND b.record_no BETWEEN $lo AND $hi;
