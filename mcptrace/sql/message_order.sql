-- The position of every message in event order (time, then file order: source, record, place in a
-- batch), numbered from 1 over the narrow sort key only (a window over the wide rows would sort all of
-- them). calls.start_ord / end_ord are these positions. Internal: not a contract table.
CREATE OR REPLACE TABLE message_order AS
SELECT message_id, row_number() OVER (ORDER BY ts, source_id, record_no, batch_index, message_id) AS ord
FROM messages;
