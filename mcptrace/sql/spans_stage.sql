-- One batch of a span reader's rows (its view _batch_out, see ingest/readers/base.py) into _all, the
-- loader's staging table; spans_finish.sql moves them into spans, span_duplicates and rejects.
-- Parameters: $source_id.
INSERT INTO _all BY NAME
SELECT * EXCLUDE (raw), $source_id::INTEGER AS source_id, raw AS raw_reject, reject_reason IS NOT NULL AS from_reader
FROM _batch_out;
