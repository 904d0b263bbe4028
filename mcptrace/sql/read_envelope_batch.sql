-- The wire rows of a batch of envelope lines (after read_envelope.sql and read_envelope_rows.sql).
CREATE OR REPLACE TEMP VIEW _batch_out AS SELECT *, NULL::VARCHAR AS raw FROM _envelope_rows;
