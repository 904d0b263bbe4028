"""OTLP trace dumps in every shape give the same ``spans`` table.

The real spans are the sample generator's: ``data/samples/traces.otlp.jsonl`` (Collector
file-exporter JSON lines) and ``data/otlp/traces.otlp.pb`` (the same requests, as the OTLP/HTTP
exporters sent them, in the file exporter's protobuf framing: frame i is line i). Every other shape
is derived here from those.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import struct
import subprocess
import sys
import tracemalloc
import zlib

import pytest
import zstandard
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import mcptrace
from conftest import ROOT, SAMPLES, read_json_lines
from mcptrace.ingest import readers
from mcptrace.core.errors import RecordError
from mcptrace.ingest.readers.otlp_doc import OtlpJsonDocumentReader, id_to_hex

LINES = SAMPLES / "traces.otlp.jsonl"
FRAMED = ROOT / "data" / "otlp" / "traces.otlp.pb"

SPANS_Q = "SELECT * EXCLUDE ({}) FROM spans ORDER BY trace_id, span_id"


# -- deriving the shapes from the real requests ----------------------------------------------------
def frames_of(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode()


def with_ids(resource_spans: list, convert, keys=("traceId", "spanId", "parentSpanId")) -> list:
    out = copy.deepcopy(resource_spans)
    for rs in out:
        for ss in rs.get("scopeSpans", []):
            for span in ss["spans"]:
                for k in keys:
                    if span.get(k):
                        span[k] = convert(span[k])
                for link in span.get("links", []):
                    for k in keys:
                        if link.get(k):
                            link[k] = convert(link[k])
    return out


def as_instrumentation_library(resource_spans: list) -> list:
    """The pre-2022 OTLP/JSON names: instrumentationLibrarySpans / instrumentationLibrary."""
    out = []
    for rs in resource_spans:
        rs = dict(rs)
        scopes = []
        for ss in rs.pop("scopeSpans"):
            ss = dict(ss)
            ss["instrumentationLibrary"] = ss.pop("scope")
            scopes.append(ss)
        rs["instrumentationLibrarySpans"] = scopes
        out.append(rs)
    return out


def legacy_zstd_frames(messages: list[bytes]) -> bytes:
    """The Collector file exporter's old ``compression: zstd``: each message its own length-prefixed zstd frame."""
    c = zstandard.ZstdCompressor()
    return b"".join(frame(c.compress(m)) for m in messages)


@pytest.fixture(scope="module")
def real_requests() -> list[dict]:
    return read_json_lines(LINES)


@pytest.fixture(scope="module")
def real_frames() -> list[bytes]:
    return frames_of(FRAMED.read_bytes())


@pytest.fixture(scope="module")
def all_resource_spans(real_requests) -> list:
    return [rs for req in real_requests for rs in req["resourceSpans"]]


def _write(d, name: str, data: bytes | str):
    path = d / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, real_frames, all_resource_spans):
    """name -> (path, expected reader, whether records are the same requests as the lines')."""
    d = tmp_path_factory.mktemp("otlp_shapes")
    lines = LINES.read_bytes()
    pb = FRAMED.read_bytes()
    line_list = [x for x in lines.split(b"\n") if x]
    rs = all_resource_spans
    s = {
        "collector_json_lines.jsonl": (LINES, "otlp_json", True),
        "collector_proto_framed.pb": (FRAMED, "otlp_proto", True),
        "bare_protobuf_request.pb": (_write(d, "bare_protobuf_request.pb", b"".join(real_frames)), "otlp_proto", False),
        "collector_json_lines.jsonl.gz": (_write(d, "collector_json_lines.jsonl.gz", gzip.compress(lines)),
                                          "otlp_json", True),
        "collector_proto_framed.pb.gz": (_write(d, "collector_proto_framed.pb.gz", gzip.compress(pb)),
                                         "otlp_proto", True),
        "collector_json_lines.jsonl.zst": (_write(d, "collector_json_lines.jsonl.zst",
                                                  zstandard.ZstdCompressor().compress(lines)), "otlp_json", True),
        "collector_proto_framed.pb.zst": (_write(d, "collector_proto_framed.pb.zst",
                                                 zstandard.ZstdCompressor().compress(pb)), "otlp_proto", True),
        "legacy_zstd_frames_json.jsonl": (_write(d, "legacy_zstd_frames_json.jsonl", legacy_zstd_frames(line_list)),
                                          "otlp_json", True),
        "legacy_zstd_frames_proto.pb": (_write(d, "legacy_zstd_frames_proto.pb", legacy_zstd_frames(real_frames)),
                                        "otlp_proto", True),
        "pretty_export_request.json": (_write(d, "pretty_export_request.json", json.dumps({"resourceSpans": rs}, indent=2)),
                                       "otlp_json_document", False),
        # Tempo /api/traces/{id}: base64 ids under "batches" (older Tempo: instrumentationLibrarySpans)
        "tempo_v1_batches.json": (_write(d, "tempo_v1_batches.json", json.dumps(
            {"batches": as_instrumentation_library(with_ids(rs, hex_to_b64))})), "otlp_json_document", False),
        # Tempo /api/v2/traces/{id}; trace and span ids base64, parent ids left hex: decided per id
        "tempo_v2_trace.json": (_write(d, "tempo_v2_trace.json", json.dumps(
            {"trace": {"resourceSpans": with_ids(rs, hex_to_b64, ("traceId", "spanId"))}}, indent=1)),
            "otlp_json_document", False),
        "jaeger_v3_response.json": (_write(d, "jaeger_v3_response.json", json.dumps(
            {"result": {"resourceSpans": rs}}, indent=2)), "otlp_json_document", False),
        # Jaeger v3 streams one {"result": ...} chunk after another
        "jaeger_v3_stream.json": (_write(d, "jaeger_v3_stream.json", "\n".join(
            json.dumps({"result": {"resourceSpans": [x]}}) for x in rs) + "\n"), "otlp_json_document", False),
    }
    return s


@pytest.fixture(scope="module")
def reference_spans():
    ws = mcptrace.load(LINES)
    assert ws.rejects().rows() == []
    rows = {cols: ws.sql(SPANS_Q.format(cols)).rows() for cols in ("source_id", "source_id, record_no")}
    ws.close()
    return rows


# -- the same spans from every shape ----------------------------------------------------------------
SHAPE_NAMES = ["collector_json_lines.jsonl", "collector_proto_framed.pb", "bare_protobuf_request.pb",
               "collector_json_lines.jsonl.gz", "collector_proto_framed.pb.gz", "collector_json_lines.jsonl.zst",
               "collector_proto_framed.pb.zst", "legacy_zstd_frames_json.jsonl", "legacy_zstd_frames_proto.pb",
               "pretty_export_request.json", "tempo_v1_batches.json", "tempo_v2_trace.json",
               "jaeger_v3_response.json", "jaeger_v3_stream.json"]


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_every_shape_gives_the_same_spans_table(name, shapes, reference_spans, real_requests):
    path, expected_format, same_records = shapes[name]
    assert readers.sniff(readers.read_head(str(path))).name == expected_format
    ws = mcptrace.load(path)
    (f,) = ws.last_report.files
    assert (f.status, f.format, f.n_rejected) == ("loaded", expected_format, 0)
    assert ws.rejects().rows() == []
    n_spans = sum(len(ss["spans"]) for req in real_requests for rs in req["resourceSpans"] for ss in rs["scopeSpans"])
    assert f.n_rows == n_spans > 50
    # record_no is a position in the file: it matches the lines' where a record is one request
    # (line i = frame i); a document or one merged message numbers its records differently
    cols = "source_id" if same_records else "source_id, record_no"
    assert ws.sql(SPANS_Q.format(cols)).rows() == reference_spans[cols]
    ws.close()


def test_span_ids_are_lowercase_hex_whatever_the_shape(shapes):
    ws = mcptrace.load([shapes[n][0] for n in ("tempo_v1_batches.json", "collector_proto_framed.pb")])
    bad = ws.sql("SELECT count(*) FROM spans WHERE NOT regexp_full_match(trace_id, '[0-9a-f]{32}') "
                 "OR NOT regexp_full_match(span_id, '[0-9a-f]{16}') "
                 "OR NOT regexp_full_match(coalesce(parent_span_id, '0000000000000001'), '[0-9a-f]{16}')").rows()
    assert bad == [(0,)]
    links = ws.sql("SELECT links FROM spans WHERE json_array_length(links) > 0").rows()
    for (value,) in links:
        for link in json.loads(value):
            assert len(link["trace_id"]) == 32 and len(link["span_id"]) == 16
    ws.close()


@pytest.mark.parametrize("value,n,expected", [
    ("0961CB2C6B44CDCC6919A1CF7BD91B1E", 16, "0961cb2c6b44cdcc6919a1cf7bd91b1e"),   # hex, any case
    (hex_to_b64("0961cb2c6b44cdcc6919a1cf7bd91b1e"), 16, "0961cb2c6b44cdcc6919a1cf7bd91b1e"),   # 24 chars base64
    (hex_to_b64("19651c2f26deb662"), 8, "19651c2f26deb662"),                      # 12 chars base64
    (hex_to_b64("19651c2f26deb662").rstrip("="), 8, "19651c2f26deb662"),          # unpadded
    (base64.urlsafe_b64encode(bytes.fromhex("fbff" * 8)).decode(), 16, "fbff" * 8),   # URL-safe alphabet
    ("deadbeefcafe1234", 8, "deadbeefcafe1234"),       # 16 chars that are also base64 (of 12 bytes): hex wins
    ("not-an-id", 8, "not-an-id"),                     # neither: unchanged, the span SQL rejects it
    ("", 8, ""),
])
def test_ids_are_decided_hex_or_base64_one_by_one(value, n, expected):
    assert id_to_hex(value, n) == expected


# -- sniffing ------------------------------------------------------------------------------------------
def test_sniffing_leaves_the_mcp_captures_and_other_files_alone(tmp_path):
    for p in sorted(SAMPLES.iterdir()) + [ROOT / "data" / "bare" / "agent_stdio.ndjson"]:
        r = readers.sniff(readers.read_head(str(p)))
        assert r is not None and r.name in ("envelope_jsonl", "jsonrpc_ndjson", "otlp_json"), p
    assert readers.sniff(b"\x00\x01\x02 not a capture") is None
    assert readers.sniff(b"\x89PNG\r\n\x1a\n" + bytes(range(256))) is None
    assert readers.sniff(b'{"data": [{"traceID": "abc", "spans": []}]}') is None   # Jaeger v1 JSON is not OTLP
    assert readers.sniff(b'{"error": {"code": 5, "message": "trace not found"}}') is None


def test_otlp_metrics_in_protobuf_are_not_taken_for_traces():
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "svc"
    m = rm.scope_metrics.add().metrics.add(name="http.server.time", description="duration", unit="ms")
    m.gauge.data_points.add(as_double=1.5, time_unix_nano=1)
    body = req.SerializeToString()
    assert readers.sniff(frame(body)) is None
    assert readers.sniff(body) is None


def test_a_first_frame_larger_than_the_sniffed_head_is_recognised(tmp_path, real_frames):
    merged = ExportTraceServiceRequest.FromString(b"".join(real_frames) * 20)  # one request of ~400 KB
    body = merged.SerializeToString()
    assert len(body) > 200_000
    assert readers.sniff(readers.read_head(str(_write(tmp_path, "big_first_frame.pb", frame(body) * 2)))).name \
        == "otlp_proto"
    bare = _write(tmp_path, "big_bare_request.pb", body)
    assert readers.sniff(readers.read_head(str(bare))).name == "otlp_proto"
    ws = mcptrace.load(bare)
    # the same spans 20 times in one request: stored once, the other 19 copies counted
    n_distinct = ws.sql("SELECT count(DISTINCT (trace_id, span_id)) FROM spans").rows()[0][0]
    assert ws.sql("SELECT count(*), n_duplicate_spans FROM spans, sources GROUP BY ALL").rows() == \
        [(n_distinct, 19 * n_distinct)]
    ws.close()


def _compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def test_document_sniff_leaves_collector_lines_to_the_line_reader(all_resource_spans):
    """The document reader's sniff is safe to try before ``otlp_json``: it never claims lines."""
    doc = OtlpJsonDocumentReader()
    rs = all_resource_spans
    assert not doc.sniff(LINES.read_bytes())
    huge_line = _compact({"resourceSpans": rs * 4}) + b"\n"   # one request line longer than the head
    assert len(huge_line) > 65536 and not doc.sniff(huge_line[:65536])
    # ... and claims the documents that otlp_json cannot read
    key_on_first_line = ('{"resourceSpans": [\n' + ",\n".join(json.dumps(x) for x in rs) + "\n]}\n").encode()
    assert doc.sniff(key_on_first_line[:65536])
    for big in ({"result": {"resourceSpans": rs * 4}}, {"trace": {"resourceSpans": rs * 4}}, {"batches": rs * 4},
                [{"resourceSpans": rs * 4}]):
        data = _compact(big)
        assert len(data) > 65536 and doc.sniff(data[:65536]), list(big)[0] if isinstance(big, dict) else "array"


# Shapes the line reader and the document reader must tell apart.
def test_pre_2022_instrumentation_library_lines(tmp_path, real_requests, reference_spans):
    """The pre-2022 layout gives the spans table of today's, MCP columns included (the loader matches
    the name patterns once per distinct name it finds under scopeSpans; these names it matches span by
    span)."""
    lines = [json.dumps({"resourceSpans": as_instrumentation_library(r["resourceSpans"])}) for r in real_requests]
    ws = mcptrace.load(_write(tmp_path, "instrumentation_library_lines.jsonl", "\n".join(lines) + "\n"))
    assert ws.last_report.files[0].n_rows == sum(len(s["spans"]) for r in real_requests
                                                  for rs in r["resourceSpans"] for s in rs["scopeSpans"])
    assert ws.sql(SPANS_Q.format("source_id")).rows() == reference_spans["source_id"]
    assert ws.sql("SELECT count(*) FROM spans WHERE mcp_method_name IS NOT NULL").rows()[0][0] > 0


def test_one_line_jaeger_response_over_64_kib(tmp_path, all_resource_spans):
    path = _write(tmp_path, "jaeger_v3_one_line.json", _compact({"result": {"resourceSpans": all_resource_spans * 4}}))
    ws = mcptrace.load(path)
    f = ws.last_report.files[0]
    assert (f.format, f.n_rejected) == ("otlp_json_document", 0)
    n_spans = sum(len(ss["spans"]) for rs in all_resource_spans for ss in rs["scopeSpans"])
    assert (f.n_rows, f.n_duplicate_spans) == (n_spans, 3 * n_spans)  # the four copies of each span: stored once


def test_pretty_document_with_the_key_on_its_first_line(tmp_path, all_resource_spans):
    text = '{"resourceSpans": [\n' + ",\n".join(json.dumps(x) for x in all_resource_spans) + "\n]}\n"
    ws = mcptrace.load(_write(tmp_path, "key_on_first_line.json", text))
    assert ws.last_report.files[0].format == "otlp_json_document"


# -- damage ------------------------------------------------------------------------------------------
def test_length_prefix_larger_than_the_file_keeps_the_frames_before_it(tmp_path, real_frames, reference_spans):
    path = _write(tmp_path, "length_prefix_past_the_end.pb",
                  b"".join(map(frame, real_frames)) + b"\xff\xff\xff\xff" + b"\x0a" * 12)
    ws = mcptrace.load(path)
    rejects = [(r[1], r[2]) for r in ws.rejects().rows()]
    k = len(real_frames) + 1
    assert rejects == [(k, f"frame {k}: length 4294967295 exceeds the 12 bytes left in the file")]
    assert ws.sql(SPANS_Q.format("source_id")).rows() == reference_spans["source_id"]
    assert ws.sql("SELECT n_records, n_rejected FROM sources").rows() == [(k, 1)]
    ws.close()


def test_length_prefix_past_the_end_of_a_gzip_stream_is_not_allocated(tmp_path, real_frames, reference_spans):
    data = b"".join(map(frame, real_frames)) + b"\xff\xff\xff\xf0" + b"\x0a" * 12
    path = _write(tmp_path, "length_prefix_past_the_end.pb.gz", gzip.compress(data))
    tracemalloc.start()
    try:
        ws = mcptrace.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024
    k = len(real_frames) + 1
    assert [r[2] for r in ws.rejects().rows()] == \
        [f"frame {k}: length 4294967280 exceeds the 12 bytes left in the gzip-decompressed file"]
    assert ws.sql(SPANS_Q.format("source_id")).rows() == reference_spans["source_id"]
    ws.close()


def test_a_frame_of_garbage_is_rejected_by_number_and_reading_goes_on(tmp_path, real_frames):
    frames = real_frames[:3] + [b"\xff" * 40] + real_frames[3:]
    ws = mcptrace.load(_write(tmp_path, "garbage_frame.pb", b"".join(map(frame, frames))))
    rejects = ws.rejects().rows()
    assert len(rejects) == 1
    assert rejects[0][1:3] == (4, "frame 4: not an OTLP ExportTraceServiceRequest (protobuf: Wire format was corrupt)")
    assert rejects[0][3] == "ff" * 40  # the raw frame, hex
    per_frame = dict(ws.sql("SELECT record_no, count(*) FROM spans GROUP BY 1").rows())
    expected = {i + 1: sum(len(ss.spans) for rs in ExportTraceServiceRequest.FromString(b).resource_spans
                           for ss in rs.scope_spans) for i, b in enumerate(frames) if i != 3}
    assert per_frame == expected
    ws.close()


def test_a_span_with_a_bad_id_in_protobuf_is_one_reject_the_rest_loads(tmp_path, real_frames):
    msg = ExportTraceServiceRequest.FromString(real_frames[0])
    spans = msg.resource_spans[0].scope_spans[0].spans
    spans[0].span_id = b"x" * 12
    data = frame(msg.SerializeToString()) + b"".join(map(frame, real_frames[1:]))
    path = _write(tmp_path, "twelve_byte_span_id.pb", data)
    # one odd first span is not enough to refuse the file
    assert readers.sniff(readers.read_head(str(path))).name == "otlp_proto"
    ws = mcptrace.load(path)
    assert [r[2] for r in ws.rejects().rows()] == ["frame 1: span spanId is not 16 hex digits: " + "78" * 12]
    n_all = sum(len(ss.spans) for b in real_frames for rs in ExportTraceServiceRequest.FromString(b).resource_spans
                for ss in rs.scope_spans)
    assert ws.sql("SELECT count(*) FROM spans").rows() == [(n_all - 1,)]
    ws.close()


def test_truncated_length_prefix_at_the_end(tmp_path, real_frames):
    ws = mcptrace.load(_write(tmp_path, "truncated_prefix.pb", b"".join(map(frame, real_frames)) + b"\x00\x00"))
    k = len(real_frames) + 1
    assert [r[2] for r in ws.rejects().rows()] == \
        [f"frame {k}: truncated length prefix: 2 of 4 bytes at the end of the file"]
    ws.close()


def test_record_error_names_the_frame_when_errors_raise(tmp_path, real_frames):
    data = b"".join(map(frame, real_frames[:2])) + b"\x7f\x00\x00\x00"
    path = _write(tmp_path, "length_prefix_past_the_end.pb", data)
    with pytest.raises(RecordError) as e:
        mcptrace.load(path, errors="raise")
    assert e.value.record_no == 3 and "length 2130706432 exceeds the 0 bytes left in the file" in str(e.value)


def _renumbered(requests: list[dict], n: int) -> list[dict]:
    """``n`` copies of real OTLP/JSON requests, each copy's trace-ids changed in their last hex
    digits (parents and links within a trace stay intact): n times the spans, none a duplicate."""
    out = []
    for i in range(n):
        for req in requests:
            text = json.dumps(req)
            for rs in req["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for sp in ss["spans"]:
                        text = text.replace(sp["traceId"], sp["traceId"][:-4] + f"{i:04x}")
            out.append(json.loads(text))
    return out


def _renumbered_frames(frames: list[bytes], n: int) -> list[bytes]:
    """As :func:`_renumbered` for protobuf requests (the last two bytes of each trace-id)."""
    out = []
    for i in range(n):
        for body in frames:
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        sp.trace_id = sp.trace_id[:-2] + i.to_bytes(2, "big")
            out.append(req.SerializeToString())
    return out


def _spans_per_record(ws) -> dict[int, int]:
    return dict(ws.sql("SELECT record_no, count(*) FROM spans GROUP BY 1").rows())


def _cut_gzip(data: bytes, keep: float) -> bytes:
    """gzip of ``data`` cut off where about ``keep`` of ``data`` has been decompressed."""
    gz = gzip.compress(data, mtime=0)
    lo, hi = 0, len(gz)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(zlib.decompressobj(wbits=31).decompress(gz[:mid])) < keep * len(data):
            lo = mid + 1
        else:
            hi = mid
    return gz[:lo]


@pytest.mark.parametrize("shape", ["json_lines", "proto_frames"])
def test_corrupt_gzip_keeps_the_records_before_the_damage(tmp_path, shape, real_requests, real_frames):
    n = 8  # enough requests for the damage to fall well inside the stream
    if shape == "json_lines":
        data = b"".join(json.dumps(r).encode() + b"\n" for r in _renumbered(real_requests, n))
    else:
        data = b"".join(map(frame, _renumbered_frames(real_frames, n)))
    ws = mcptrace.load(_write(tmp_path, f"truncated_{shape}.gz", _cut_gzip(data, 0.6)))
    rejects = ws.rejects().rows()
    last_no, last_reason = rejects[-1][1], rejects[-1][2]
    label = "line" if shape == "json_lines" else "frame"
    assert last_reason == (f"{label} {last_no}: gzip stream is corrupt or truncated: "
                           "compressed file ended before the end-of-stream marker")
    per_request = [sum(len(ss["spans"]) for rs in r["resourceSpans"] for ss in rs["scopeSpans"]) for r in real_requests]
    kept = _spans_per_record(ws)
    # every record before the damage is complete; the one cut short is a reject (a line's tail as
    # invalid JSON, a frame's as the stream error)
    assert kept == {i + 1: (per_request * n)[i] for i in range(len(kept))}
    assert len(real_requests) * n // 3 < len(kept) < len(real_requests) * n
    assert max(kept) + len(rejects) == last_no
    ws.close()


def test_truncated_pretty_document_keeps_the_entries_before_the_damage(tmp_path, all_resource_spans):
    rs = [x for req in _renumbered([{"resourceSpans": all_resource_spans}], 4) for x in req["resourceSpans"]]
    data = json.dumps({"resourceSpans": rs}, indent=2).encode()
    ws = mcptrace.load(_write(tmp_path, "truncated_pretty_document.json.gz", _cut_gzip(data, 0.7)))
    assert ws.last_report.files[0].format == "otlp_json_document"
    rejects = ws.rejects().rows()
    assert len(rejects) == 1
    k = rejects[0][1]
    assert rejects[0][2] == (f"resource {k}: gzip stream is corrupt or truncated: compressed file ended before "
                             f"the end-of-stream marker (kept the {k - 1} resourceSpans entries before it)")
    assert len(rs) // 3 < k - 1 < len(rs)
    n_expected = sum(len(ss["spans"]) for x in rs[:k - 1] for ss in x["scopeSpans"])
    assert ws.sql("SELECT count(*) FROM spans").rows() == [(n_expected,)]
    ws.close()


def test_invalid_document_says_where(tmp_path, all_resource_spans):
    rs = all_resource_spans[:3]
    text = json.dumps({"resourceSpans": rs}, indent=2)
    at = text.rindex('"spans":')  # in the third entry: drop that colon
    broken = text[:at] + '"spans" ' + text[at + len('"spans":'):]
    line = text[:at].count("\n") + 1
    column = len('"spans"  [') + at - text.rindex("\n", 0, at) - 1  # at the [
    ws = mcptrace.load(_write(tmp_path, "missing_colon.json", broken))
    assert [r[2] for r in ws.rejects().rows()] == [
        f"resource 3: invalid JSON at line {line} column {column}: Expecting ':' delimiter "
        "(kept the 2 resourceSpans entries before it)"]
    n_expected = sum(len(ss["spans"]) for x in rs[:2] for ss in x["scopeSpans"])
    assert ws.sql("SELECT count(*) FROM spans").rows() == [(n_expected,)]
    ws.close()


def test_document_over_the_size_limit_is_one_clear_reject(tmp_path, monkeypatch, all_resource_spans):
    monkeypatch.setattr(OtlpJsonDocumentReader, "max_bytes", 10_000)
    path = _write(tmp_path, "huge_document.json", json.dumps({"resourceSpans": all_resource_spans}, indent=2))
    ws = mcptrace.load(path)
    size = path.stat().st_size
    assert [r[2] for r in ws.rejects().rows()] == \
        [f"resource 1: the document is {size} bytes, over the 10000-byte limit for one JSON document"]
    assert ws.sql("SELECT count(*) FROM spans").rows() == [(0,)]
    ws.close()


def test_document_that_is_not_traces_is_rejected_with_its_keys(tmp_path):
    path = _write(tmp_path, "jaeger_error.json", '{\n  "error": {"httpCode": 404, "message": "not found"}\n}\n')
    ws = mcptrace.load(path, format="otlp_json_document")
    assert [r[2] for r in ws.rejects().rows()] == \
        ['resource 1: an error response, not traces: {"httpCode": 404, "message": "not found"}']
    ws.close()


# -- the CLI -----------------------------------------------------------------------------------------
def run(*args):
    return subprocess.run([sys.executable, "-m", "mcptrace", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_cli_load_exit_codes(tmp_path, shapes, real_frames):
    d = tmp_path / "dumps"
    d.mkdir()
    for name in ("collector_proto_framed.pb", "tempo_v1_batches.json", "collector_proto_framed.pb.zst"):
        (d / name).write_bytes(shapes[name][0].read_bytes())
    _write(d, "length_prefix_past_the_end.pb", b"".join(map(frame, real_frames[:2])) + b"\xff\xff\xff\xff")
    r = run("load", d, "--db", tmp_path / "a.duckdb")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "collector_proto_framed.pb  [otlp_proto]" in r.stdout
    assert "tempo_v1_batches.json  [otlp_json_document]" in r.stdout
    assert "length_prefix_past_the_end.pb  [otlp_proto]  3 records" in r.stdout and "1 rejected" in r.stdout
    # a file nothing recognises still makes the exit code 1; the OTLP files load anyway
    _write(d, "junk.bin", b"\x00\x00\x00\x05hello")
    r = run("load", d, "--db", tmp_path / "b.duckdb")
    assert r.returncode == 1 and "junk.bin" in r.stderr and "otlp_proto" in r.stderr
    assert "Traceback" not in r.stderr
    assert "[otlp_proto]" in r.stdout
