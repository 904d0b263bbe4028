"""Bare JSON-RPC NDJSON: a stdio tee without envelopes.

One JSON-RPC message (or a 2025-03-26 batch array) per line, no times. The direction is
inferred from the message shape by the loader (method names of the MCP spec; a response
goes the opposite way of the request it answers). The connection id is taken from the
file name (``stdio:<file name>``).
"""

from __future__ import annotations

from mcptrace.ingest.readers.base import Reader, first_json_line

def _looks_jsonrpc(v: object) -> bool:
    if isinstance(v, list):
        return bool(v) and all(isinstance(x, dict) and ("jsonrpc" in x or "method" in x) for x in v[:8])
    return isinstance(v, dict) and ("jsonrpc" in v or ("method" in v and "params" in v))


class JsonRpcNdjsonReader(Reader):
    name = "jsonrpc_ndjson"
    kind = "messages"
    sql_scripts = ("read_jsonrpc_ndjson.sql",)

    def sniff(self, head: bytes) -> bool:
        value, text = first_json_line(head)
        if value is not None:
            return _looks_jsonrpc(value)
        return text.startswith(("{", "[")) and '"jsonrpc"' in text[:200]
