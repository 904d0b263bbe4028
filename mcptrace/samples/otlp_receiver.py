"""A minimal OTLP/HTTP trace receiver that writes OpenTelemetry Collector *file exporter* JSON lines.

Accepts ``POST /v1/traces`` with ``application/x-protobuf`` bodies (optionally ``gzip``/``deflate``
content-encoded) as sent by ``OTLPSpanExporter``, decodes them with ``opentelemetry-proto`` and
appends one line per request: ``MessageToDict(..., use_integers_for_enums=True)`` (camelCase keys,
int64 as decimal strings) with every ``traceId``/``spanId``/``parentSpanId`` (spans and links)
converted from protobuf-JSON base64 to lowercase hex, as OTLP/JSON requires. Replies with an empty
``ExportTraceServiceResponse``.

With ``proto_out_path`` it also appends every request body, exactly as the exporter sent it
(protobuf, after removing any ``Content-Encoding``), to a second file in the file exporter's
``format: proto`` framing: a 4-byte big-endian length, then the ``ExportTraceServiceRequest``.

With ``fail_first=N`` it behaves like an at-least-once pipeline whose acknowledgement gets lost: the
first N export requests are written to the file and then answered ``503 Service Unavailable`` (with
``Retry-After``), so the exporter sends the same batch again and its spans land in the file twice.

Run standalone with ``python -m mcptrace.samples.otlp_receiver --port 4318 --out traces.otlp.jsonl
[--proto-out traces.otlp.pb] [--fail-first N]``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ID_KEYS = ("traceId", "spanId", "parentSpanId")
MAX_BODY = 64 * 1024 * 1024


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def request_to_file_exporter_json(msg: ExportTraceServiceRequest) -> dict[str, Any]:
    """Convert a decoded request to the Collector file-exporter JSON shape (hex ids)."""
    doc = MessageToDict(msg, use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in _ID_KEYS:
                    if key in span:
                        span[key] = _b64_to_hex(span[key])
                for link in span.get("links", []):
                    for key in _ID_KEYS:
                        if key in link:
                            link[key] = _b64_to_hex(link[key])
    return doc


class OTLPReceiver:
    """OTLP/HTTP receiver on a background thread. ``port=0`` picks a free loopback port."""

    def __init__(self, out_path: str, host: str = "127.0.0.1", port: int = 0,
                 proto_out_path: str | None = None, fail_first: int = 0, retry_after: int = 1) -> None:
        self.out_path = out_path
        self.proto_out_path = proto_out_path
        self.fail_first = fail_first
        self.retry_after = retry_after
        self.n_failed = 0
        self._lock = threading.Lock()
        self.n_requests = 0
        self.n_spans = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._reply(413, b"too large", "text/plain")
                    return
                body = self.rfile.read(length)
                if self.path.split("?")[0] != "/v1/traces":
                    self._reply(404, b"not found", "text/plain")
                    return
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype != "application/x-protobuf":
                    self._reply(415, b"only application/x-protobuf is supported", "text/plain")
                    return
                encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    msg = ExportTraceServiceRequest()
                    msg.ParseFromString(body)
                except Exception as exc:  # noqa: BLE001 - any decode failure is a 400
                    self._reply(400, f"bad request: {type(exc).__name__}".encode(), "text/plain")
                    return
                if receiver._append(msg, body) <= receiver.fail_first:
                    # written, but the exporter is told it failed: it retries the same batch
                    self.send_response(503)
                    self.send_header("Retry-After", str(receiver.retry_after))
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "11")
                    self.end_headers()
                    self.wfile.write(b"unavailable")
                    return
                self._reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/v1/traces"

    def _append(self, msg: ExportTraceServiceRequest, body: bytes | None = None) -> int:
        """Write one request; returns its number (1 for the first request written)."""
        doc = request_to_file_exporter_json(msg)
        line = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        n = sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
        with self._lock:
            with open(self.out_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
            if self.proto_out_path is not None:
                if body is None:
                    body = msg.SerializeToString()
                with open(self.proto_out_path, "ab") as fh:
                    fh.write(struct.pack(">I", len(body)) + body)
            self.n_requests += 1
            self.n_spans += n
            if self.n_requests <= self.fail_first:
                self.n_failed += 1
            return self.n_requests

    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.otlp_receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--out", required=True)
    parser.add_argument("--proto-out", default=None, help="also write the protobuf requests, file-exporter framed")
    parser.add_argument("--fail-first", type=int, default=0, help="write, then answer 503 to, the first N requests")
    args = parser.parse_args(argv)
    receiver = OTLPReceiver(args.out, args.host, args.port, proto_out_path=args.proto_out, fail_first=args.fail_first)
    print(f"OTLP/HTTP receiver on {receiver.endpoint} -> {args.out}", flush=True)
    try:
        receiver._server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
