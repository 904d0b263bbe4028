-- Move one batch of staged spans (_all) into spans. Parameters: $record_label. Redaction comes first
-- (spans_redact.sql, run before it for a batch whose cheap test hit), so that a span's content is
-- compared as it would be stored. A span is identified by (trace-id, span-id): seen again with
-- the same content (an exporter's retry, two overlapping dumps) it is stored once, each further
-- copy a row of span_duplicates (counted in sources.n_duplicate_spans); seen again with different
-- content it is a reject naming the first copy, and the first copy stays.

CREATE OR REPLACE TEMP TABLE _span_seen AS
WITH s AS (
    SELECT rowid AS rid, source_id, record_no, trace_id, span_id,
           count(*) OVER (PARTITION BY trace_id, span_id) AS n_batch
    FROM _all WHERE reject_reason IS NULL
), e AS (
    SELECT p.trace_id, p.span_id, min(p.source_id) AS source_id, min(p.record_no) AS record_no,
           any_value(span_content_hash(p.parent_span_id, p.name, p.kind, p.service_name, p.start_unix_nano,
                                       p.end_unix_nano, p.status_code, p.status_message, p.attributes,
                                       p.resource_attributes, p.events, p.links, p.scope_name)) AS h
    FROM spans p SEMI JOIN s ON s.trace_id = p.trace_id AND s.span_id = p.span_id
    GROUP BY ALL
), c AS (
    -- only spans whose ids repeat (in the batch, or of a span already stored) have their content hashed
    SELECT s.rid, s.source_id, s.record_no, s.trace_id, s.span_id,
           span_content_hash(a.parent_span_id, a.name, a.kind, a.service_name, a.start_unix_nano, a.end_unix_nano,
                             a.status_code, a.status_message, a.attributes, a.resource_attributes, a.events, a.links,
                             a.scope_name) AS h
    FROM s JOIN _all a ON a.rowid = s.rid
    WHERE s.n_batch > 1 OR EXISTS (SELECT 1 FROM e WHERE e.trace_id = s.trace_id AND e.span_id = s.span_id)
), f AS (
    SELECT *, row_number() OVER w AS rn, first_value(h) OVER w AS first_h, first_value(record_no) OVER w AS first_record
    FROM c WINDOW w AS (PARTITION BY trace_id, span_id ORDER BY record_no, rid)
)
SELECT f.rid, f.trace_id, f.span_id, f.record_no,
       coalesce(e.h, f.first_h) = f.h AS same_content,
       coalesce(e.source_id, f.source_id) AS first_source_id,
       coalesce(e.record_no, f.first_record) AS first_record_no
FROM f LEFT JOIN e USING (trace_id, span_id)
WHERE f.rn > 1 OR e.trace_id IS NOT NULL;

INSERT INTO rejects
SELECT a.source_id, a.record_no,
       $record_label || ' ' || a.record_no || ': span ' || a.trace_id || '/' || a.span_id
           || ' has the trace-id and span-id of a span already loaded (source ' || d.first_source_id || ', '
           || $record_label || ' ' || d.first_record_no || ') but different content; the first copy is kept',
       left(json_object('name', a.name, 'kind', a.kind, 'service_name', a.service_name, 'parent_span_id', a.parent_span_id,
                        'start_unix_nano', a.start_unix_nano, 'end_unix_nano', a.end_unix_nano,
                        'status_code', a.status_code, 'attributes', a.attributes)::VARCHAR, 4096)
FROM _all a JOIN _span_seen d ON d.rid = a.rowid
WHERE NOT d.same_content;

INSERT INTO span_duplicates
SELECT a.source_id, d.record_no, d.trace_id, d.span_id, d.first_source_id, d.first_record_no
FROM _all a JOIN _span_seen d ON d.rid = a.rowid
WHERE d.same_content;

INSERT INTO spans BY NAME
SELECT a.* EXCLUDE (reject_reason, raw_reject, from_reader, secret_hit) REPLACE (stored_key_hash(a.trace_id) AS trace_hash)
FROM _all a ANTI JOIN _span_seen d ON d.rid = a.rowid
WHERE a.reject_reason IS NULL;
