"""The bottom layer (docs/ARCHITECTURE.md): the DuckDB connection and its macros (:mod:`.db`), the SQL
files (:mod:`.sqlfiles`), correlation keys (:mod:`.keys`), the redaction policy (:mod:`.redact`), the
gap-code registry (:mod:`.gapcodes`), errors, query results, the SSE parser and Parquet datasets.
Nothing here imports another layer."""
