"""Recorders that write MCP traffic as envelope JSONL (stdio tee, Streamable HTTP reverse proxy)."""
