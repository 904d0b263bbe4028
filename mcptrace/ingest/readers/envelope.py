"""mcptrace envelope JSONL: one captured JSON-RPC message per line with wire metadata.

Shape of a line (README: Inputs)::

    {"ts": "2026-11-22T02:11:49.123456Z", "direction": "client_to_server" | "server_to_client",
     "transport": "stdio" | "streamable_http" | "sse", "connection_id": "...",
     "http": {"method", "path", "status", "request_headers", "response_headers", "sse_event_id"},
     "message": <JSON-RPC object or batch array>}

A line whose ``message`` is null is an HTTP transport event when it has an ``http`` object and no
``raw`` text (an SSE priming event, a GET stream, a ``DELETE``, a stream reset noted by the recorder):
it goes to ``http_events``. With ``raw`` text (a body that was not JSON on the wire), or without
``http``, it is kept in ``rejects``. The SQL is ``sql/read_envelope*.sql``.
"""

from __future__ import annotations

from mcptrace.ingest.readers.base import Reader, first_json_line

class EnvelopeReader(Reader):
    name = "envelope_jsonl"
    kind = "messages"
    sql_scripts = ("read_envelope.sql", "read_envelope_rows.sql", "read_envelope_batch.sql")

    def sniff(self, head: bytes) -> bool:
        value, text = first_json_line(head)
        if isinstance(value, dict):
            return "message" in value and ("direction" in value or "ts" in value)
        return text.startswith("{") and '"message"' in text and '"direction"' in text
