"""Bare JSON-RPC NDJSON: a stdio tee without envelopes.

One JSON-RPC message (or a 2025-03-26 batch array) per line, no times. The direction is
inferred from the message shape by the loader (method names of the MCP spec; a response
goes the opposite way of the request it answers). The connection id is taken from the
file name (``stdio:<file name>``).
"""

from __future__ import annotations

from mcptrace.ingest.readers.base import Reader, first_json_line

_SQL = """
SELECT record_no,
       NULL::TIMESTAMPTZ AS ts,
       NULL::VARCHAR AS direction,
       'stdio' AS transport,
       $connection_id AS connection_id,
       NULL::JSON AS http,
       CASE WHEN json_valid(line) THEN line::JSON END AS message,
       CASE
         WHEN decode_error IS NOT NULL THEN decode_error
         WHEN NOT json_valid(line) THEN 'invalid JSON'
         WHEN json_type(line) NOT IN ('OBJECT', 'ARRAY') THEN 'not a JSON-RPC message (a JSON ' || lower(json_type(line)) || ')'
       END AS reject_reason
FROM _lines
"""


def _looks_jsonrpc(v: object) -> bool:
    if isinstance(v, list):
        return bool(v) and all(isinstance(x, dict) and ("jsonrpc" in x or "method" in x) for x in v[:8])
    return isinstance(v, dict) and ("jsonrpc" in v or ("method" in v and "params" in v))


class JsonRpcNdjsonReader(Reader):
    name = "jsonrpc_ndjson"
    kind = "messages"
    sql = _SQL

    def sniff(self, head: bytes) -> bool:
        value, text = first_json_line(head)
        if value is not None:
            return _looks_jsonrpc(value)
        return text.startswith(("{", "[")) and '"jsonrpc"' in text[:200]
