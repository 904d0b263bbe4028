-- The rejects of one batch of normalised rows (_all, filled by messages.sql): its rows with a reason
-- that the reader did not reject. The loader runs it only for a batch with such rows (planning it is
-- most of a small batch's time). Parameters: $record_label.

INSERT INTO rejects
SELECT source_id, record_no,
       $record_label || ' ' || record_no || ': ' || mcptrace_redact(reject_reason)
           || CASE WHEN batch_index IS NOT NULL THEN ' (batch element ' || batch_index || ')' ELSE '' END,
       left(mcptrace_redact(left(raw_reject, 65536)), 4096)
FROM _all WHERE reject_reason IS NOT NULL AND NOT from_reader;
