"""Correlation over the loaded tables (docs/ARCHITECTURE.md): :mod:`.rebuild` (calls, sessions,
call_spans, gaps from the SQL files), :mod:`.turns`, :mod:`.tree`, :mod:`.queries` (summary, gap
list, concurrency, coverage; the table macros), :mod:`.lanes` and :mod:`.skew`. Every function takes
a DuckDB connection."""
