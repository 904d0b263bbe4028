-- One batch of a span reader's rows (its view _batch_out, see ingest/readers/base.py) into _all, the
-- loader's staging table; spans_finish.sql moves them into spans, span_duplicates and rejects.
-- secret_hit: the cheap test of the load's redaction (mcptrace_secret_hit, RedactionPolicy.sql_macros)
-- over every text of the span; spans_finish.sql redacts those spans, and is not planned for a batch
-- without any (its rules' regular expressions are compiled for each text it redacts).
-- Parameters: $source_id.

-- the batch's distinct span names, each matched once against the name patterns (read_otlp_json.sql
-- reads them; a line that is not JSON gives none)
DELETE FROM _span_names;

INSERT INTO _span_names
SELECT name, span_name_groups(name)
FROM (SELECT DISTINCT unnest(try(json_extract_string(line, '$.resourceSpans[*].scopeSpans[*].spans[*].name'))) AS name
      FROM _lines)
WHERE name IS NOT NULL;

INSERT INTO _all BY NAME
SELECT * EXCLUDE (raw), $source_id::INTEGER AS source_id, raw AS raw_reject, reject_reason IS NOT NULL AS from_reader,
       reject_reason IS NULL AND mcptrace_secret_hit(concat_ws(' ', name, status_message, attributes::VARCHAR,
                                                               resource_attributes::VARCHAR, events::VARCHAR,
                                                               links::VARCHAR)) AS secret_hit
FROM _batch_out;
