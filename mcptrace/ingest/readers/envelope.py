"""mcptrace envelope JSONL: one captured JSON-RPC message per line with wire metadata.

Shape of a line (README: Inputs)::

    {"ts": "2026-11-22T02:11:49.123456Z", "direction": "client_to_server" | "server_to_client",
     "transport": "stdio" | "streamable_http" | "sse", "connection_id": "...",
     "http": {"method", "path", "status", "request_headers", "response_headers", "sse_event_id"},
     "message": <JSON-RPC object or batch array>}

A line whose ``message`` is null is an HTTP transport event when it has an ``http`` object and no
``raw`` text (an SSE priming event, a GET stream, a ``DELETE``, a stream reset noted by the recorder):
it goes to ``http_events``. With ``raw`` text (a body that was not JSON on the wire), or without
``http``, it is kept in ``rejects``.
"""

from __future__ import annotations

from mcptrace.ingest.readers.base import Reader, first_json_line

_SQL = """
WITH parsed AS (
    SELECT record_no, line, decode_error, json_valid(line) AS ok FROM _lines
), env AS (
    SELECT record_no, line, decode_error, ok,
           CASE WHEN ok AND json_type(line) = 'OBJECT' THEN json_transform(line,
             '{"ts":"VARCHAR","direction":"VARCHAR","transport":"VARCHAR","connection_id":"VARCHAR",
               "http":"JSON","message":"JSON","raw":"VARCHAR"}') END AS e
    FROM parsed
)
SELECT record_no,
       try_cast(e.ts AS TIMESTAMPTZ) AS ts,
       e.direction AS direction,
       coalesce(e.transport, 'stdio') AS transport,
       coalesce(e.connection_id, $connection_id) AS connection_id,
       CASE WHEN json_type(e.http) = 'OBJECT' THEN e.http END AS http,
       CASE WHEN json_type(e.message) <> 'NULL' THEN e.message END AS message,
       CASE
         WHEN decode_error IS NOT NULL THEN decode_error
         WHEN NOT ok THEN 'invalid JSON'
         WHEN e IS NULL THEN 'envelope is not a JSON object'
         WHEN (e.message IS NULL OR json_type(e.message) = 'NULL') AND (e.raw IS NOT NULL OR json_type(e.http) IS DISTINCT FROM 'OBJECT') THEN
              'not JSON on the wire: ' || coalesce(left(e.raw, 80), '(no message)')
         WHEN json_type(e.message) NOT IN ('OBJECT', 'ARRAY', 'NULL') THEN 'message is not a JSON object or array'
         WHEN e.ts IS NOT NULL AND try_cast(e.ts AS TIMESTAMPTZ) IS NULL THEN 'ts is not an RFC 3339 timestamp: ' || left(e.ts, 40)
         WHEN e.direction IS NOT NULL AND e.direction NOT IN ('client_to_server', 'server_to_client')
              THEN 'direction is neither client_to_server nor server_to_client'
       END AS reject_reason
FROM env
"""


class EnvelopeReader(Reader):
    name = "envelope_jsonl"
    kind = "messages"
    sql = _SQL

    def sniff(self, head: bytes) -> bool:
        value, text = first_json_line(head)
        if isinstance(value, dict):
            return "message" in value and ("direction" in value or "ts" in value)
        return text.startswith("{") and '"message"' in text and '"direction"' in text
