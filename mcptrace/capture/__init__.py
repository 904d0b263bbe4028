"""Recorders that append MCP traffic to envelope JSONL: ``mcptrace capture stdio`` (a tee put in the
host's config in place of the server command, :mod:`mcptrace.capture.stdio`) and ``mcptrace capture
http`` (a reverse proxy for Streamable HTTP and the 2024-11-05 HTTP+SSE transport,
:mod:`mcptrace.capture.http`). Both write what ``mcptrace load`` reads."""
