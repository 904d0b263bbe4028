"""Figures and files from the tables (docs/ARCHITECTURE.md): :mod:`.timeline` and :mod:`.waterfall`
(plotly figures, ``highlight=``), :mod:`.report` (self-contained HTML) and :mod:`.export` (images,
Chrome Trace Event JSON, tables, Parquet datasets). Every function takes a DuckDB connection."""
