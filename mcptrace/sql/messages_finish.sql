-- Move one batch of normalised rows (_all, filled by messages.sql) into
-- rejects and messages. Parameters: $record_label, $base_id (message ids continue from it).

INSERT INTO rejects
SELECT source_id, record_no,
       $record_label || ' ' || record_no || ': ' || reject_reason || CASE WHEN batch_index IS NOT NULL THEN ' (batch element ' || batch_index || ')' ELSE '' END,
       left(raw_reject, 4096)
FROM _all WHERE reject_reason IS NOT NULL AND NOT from_reader;

-- message ids in capture order: a narrow numbering joined back by rowid (a window over the
-- wide rows would sort all of them); rowid breaks ties between messages of one record
CREATE OR REPLACE TEMP TABLE _ids AS
SELECT rowid AS rid, $base_id + row_number() OVER (ORDER BY record_no, batch_index, rowid) AS message_id
FROM _all WHERE reject_reason IS NULL;

INSERT INTO messages BY NAME
SELECT a.* EXCLUDE (reject_reason, raw_reject, from_reader, message_id), i.message_id
FROM _all a JOIN _ids i ON i.rid = a.rowid
WHERE a.reject_reason IS NULL;

DROP TABLE _ids;
