-- The wire rows of a batch of multi-envelope records (after read_multi.sql and read_envelope_rows.sql):
-- the record number mapped back from the packed key, transport taken from the element as is (NULL when
-- a format does not know it), and a reject's raw text from the element, never the whole record.
CREATE OR REPLACE TEMP VIEW _batch_out AS
SELECT l.rec_no AS record_no, o.ts, o.direction, l.transport_in AS transport, o.connection_id, o.http, o.message,
       o.reject_reason, CASE WHEN o.reject_reason IS NOT NULL THEN l.raw END AS raw
FROM _envelope_rows o JOIN _envelope_src l ON l.record_no = o.record_no
ORDER BY l.record_no;
