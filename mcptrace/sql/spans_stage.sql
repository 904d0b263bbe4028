-- One batch of a span reader's rows (its view _batch_out, see ingest/readers/base.py) into _all, the
-- loader's staging table; spans_finish.sql moves them into spans, span_duplicates and rejects.
-- secret_hit: the cheap test of the load's redaction (mcptrace_secret_hit, RedactionPolicy.sql_macros)
-- over every text of the span; spans_redact.sql redacts those spans, and is not planned for a batch
-- without any (its rules' regular expressions are compiled for each text it redacts).
-- Parameters: $source_id.

-- the batch's most frequent span names (up to 64), each matched once against the name patterns, as a
-- map that read_otlp_json.sql looks the spans' names up in (a constant: no join, so the spans keep their
-- order); a line that is not JSON gives none. The names of a line are read once (unnested in the same
-- projection, a line is parsed again for every chunk of its names).
SET VARIABLE mcptrace_span_name_cache = (
    WITH l AS MATERIALIZED (
        SELECT try(json_extract_string(line, '$.resourceSpans[*].scopeSpans[*].spans[*].name')) AS names FROM _lines
    ), n AS (
        SELECT name, count(*) AS k FROM (SELECT unnest(names) AS name FROM l) WHERE name IS NOT NULL GROUP BY name
        ORDER BY k DESC, name LIMIT 64
    )
    SELECT map_from_entries(list(struct_pack(k := name, v := span_name_groups(name)))) FROM n);

INSERT INTO _all BY NAME
SELECT * EXCLUDE (raw), $source_id::INTEGER AS source_id, raw AS raw_reject, reject_reason IS NOT NULL AS from_reader,
       reject_reason IS NULL AND mcptrace_secret_hit(concat_ws(' ', name, status_message, attributes::VARCHAR,
                                                               resource_attributes::VARCHAR, events::VARCHAR,
                                                               links::VARCHAR)) AS secret_hit
FROM _batch_out;
