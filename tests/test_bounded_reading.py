"""Bounded, linear-time reading: the record size limit, decompression bombs, linear splitting and parsing.

Every hostile file is built in ``tmp_path`` at test time. Limits are small (``LoadOptions(max_record_bytes=...)``)
so the files stay small; memory is measured in a subprocess (``resource.getrusage``); linearity is
checked as "4x the input takes less than 10x the time" (best of a few runs), which a linear reader
passes with room to spare and a quadratic one fails.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import textwrap
import time

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import mcptrace
from conftest import ROOT
from mcptrace.core.sse import SSEParser
from mcptrace.ingest import readers
from mcptrace.ingest.options import LoadOptions
from mcptrace.ingest.readers.base import iter_lines
from mcptrace.ingest.readers.json_stream import JsonStream
from mcptrace.ingest.readers.inputs import Input


def _msg(i: int, method: str = "ping") -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": method}).encode()


def _load(path, limit: int):
    ws = mcptrace.open()
    ws.load(path, options=LoadOptions(max_record_bytes=limit))
    return ws


def _rejects(ws) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in ws.sql("SELECT record_no, reason FROM rejects ORDER BY record_no").rows()]


def _ids(ws) -> list[str]:
    return [r[0] for r in ws.sql("SELECT rpc_id FROM messages ORDER BY record_no").rows()]


def _sources(ws) -> tuple[int, int]:
    return ws.sql("SELECT n_records, n_rejected FROM sources").rows()[0]


def _linear(run, small, large, tries: int = 3) -> tuple[float, float]:
    """Best-of-``tries`` CPU times of this process for ``run(small)`` and ``run(large)``: what other
    processes on the machine do (the tests beside this one) does not count."""
    best = []
    for arg in (small, large):
        times = []
        for _ in range(tries):
            t = time.process_time()
            run(arg)
            times.append(time.process_time() - t)
        best.append(min(times))
    return best[0], best[1]


# -- the record size limit ------------------------------------------------------------------------

@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_line_over_the_limit_is_rejected_with_its_size_and_neighbours_load(tmp_path, compression):
    big = b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"blob":"' + b"x" * 200_000 + b'"}}'
    content = b"\n".join([_msg(1), big, _msg(3), b"", _msg(5)]) + b"\n"
    path = tmp_path / "big_line.ndjson"
    if compression == "gzip":
        content, path = gzip.compress(content), tmp_path / "big_line.ndjson.gz"
    elif compression == "zstd":
        content, path = zstandard.ZstdCompressor().compress(content), tmp_path / "big_line.ndjson.zst"
    path.write_bytes(content)
    ws = _load(path, 100_000)
    assert _rejects(ws) == [(2, f"line 2: record of {len(big)} bytes exceeds the limit of 100000 bytes")]
    assert _ids(ws) == ["1", "3", "5"]
    assert _sources(ws) == (4, 1)
    # the reject keeps the start of the line as its raw text
    raw = ws.sql("SELECT raw FROM rejects").rows()[0][0]
    assert raw.startswith('{"jsonrpc":"2.0","id":2') and len(raw) <= 4096


def test_limit_applies_to_lines_cut_anywhere_by_reads(tmp_path):
    # lines shorter and longer than the limit, across read and block boundaries (tiny blocks)
    lines = [b"a" * n for n in (5, 50, 9, 10, 11, 0, 300, 10)]
    path = tmp_path / "lines.txt"
    path.write_bytes(b"\n".join(lines))  # no newline at the end: the last line still counts
    for chunk in (3, 7, 64, 1 << 20):
        rows = [r for t in iter_lines(Input(str(path)), chunk, max_record_bytes=10) for r in t.to_pylist()]
        assert [(r["record_no"], r["decode_error"]) for r in rows] == [
            (1, None), (2, "record of 50 bytes exceeds the limit of 10 bytes"), (3, None), (4, None),
            (5, "record of 11 bytes exceeds the limit of 10 bytes"),
            (7, "record of 300 bytes exceeds the limit of 10 bytes"), (8, None)], chunk
        assert [r["line"] for r in rows if r["decode_error"] is None] == ["a" * 5, "a" * 9, "a" * 10, "a" * 10]


def test_line_over_the_limit_followed_by_blank_lines_in_a_compressed_file(tmp_path):
    path = tmp_path / "skip_then_blank.ndjson.gz"
    path.write_bytes(gzip.compress(_msg(1) + b"\n" + b"x" * 200_000 + b"\n" * 200_000 + _msg(2) + b"\n"))
    rows = [r for t in iter_lines(Input(str(path)), max_record_bytes=100_000) for r in t.to_pylist()]
    assert [(r["record_no"], r["decode_error"]) for r in rows] == [
        (1, None), (2, "record of 200000 bytes exceeds the limit of 100000 bytes"), (200_002, None)]


def test_otlp_frame_over_the_limit_is_rejected_and_the_next_frames_load(tmp_path):
    small = [_request(3, seed=k) for k in range(3)]
    big = _request(1, seed=9, blob=200_000)
    path = tmp_path / "frames.pb"
    path.write_bytes(_framed([small[0], big, small[1], small[2]]))
    ws = _load(path, 100_000)
    assert _rejects(ws) == [(2, f"frame 2: record of {len(big)} bytes exceeds the limit of 100000 bytes")]
    assert ws.sql("SELECT count(*) FROM spans").rows()[0][0] == 9


@pytest.mark.parametrize("reframed", [False, True])
def test_collector_zstd_frame_over_the_limit(tmp_path, reframed):
    """The legacy per-message zstd frames: JSON lines and protobuf; a frame over the limit is read
    past in pieces and rejected, the frames after it load."""
    if reframed:
        msgs = [_request(2, seed=1), _request(1, seed=2, blob=300_000), _request(2, seed=3)]
    else:
        msgs = [_msg(1), b'{"jsonrpc":"2.0","id":2,"method":"x","params":{"b":"' + b"y" * 300_000 + b'"}}', _msg(3)]
    cctx = zstandard.ZstdCompressor()
    frames = [cctx.compress(m) for m in msgs]
    path = tmp_path / "framed.zst"
    path.write_bytes(b"".join(struct.pack(">I", len(f)) + f for f in frames))
    ws = _load(path, 100_000)
    label = "frame" if reframed else "line"
    assert _rejects(ws) == [(2, f"{label} 2: record of {len(msgs[1])} bytes exceeds the limit of 100000 bytes")]
    if reframed:
        assert ws.sql("SELECT count(*) FROM spans").rows()[0][0] == 4
    else:
        assert _ids(ws) == ["1", "3"]


def test_har_entry_over_the_limit_is_a_reject_giving_the_size(tmp_path):
    bodies = [_msg(1).decode(), json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                            "params": {"name": "t", "arguments": {"blob": "x" * 300_000}}})]
    entries = [{"startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
                "request": {"method": "POST", "url": "http://h/mcp", "headers": [],
                            "postData": {"mimeType": "application/json", "text": body}},
                "response": {"status": 202, "headers": [], "content": {"mimeType": "", "text": ""}}}
               for body in bodies]
    path = tmp_path / "big_entry.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    ws = _load(path, 100_000)
    [(no, reason)] = _rejects(ws)
    assert no == 2 and "exceeds the limit of 100000" in reason, reason
    assert _ids(ws) == ["1"]


def _call(i: int, blob: int = 0) -> dict:
    # quotes, backslashes and brackets inside the strings: what reading past a value must follow
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "t", "arguments": {"blob": '[{"x\\"}]' * blob}}}


def test_har_entries_over_the_limit_are_read_past_and_the_next_entries_load(tmp_path):
    entries = [{"startedDateTime": f"2026-01-01T00:00:0{i}Z", "time": 1,
                "request": {"method": "POST", "url": "http://h/mcp", "headers": [],
                            "postData": {"mimeType": "application/json", "text": json.dumps(_call(i, 30_000 * (i % 2 == 0)))}},
                "response": {"status": 202, "headers": [], "content": {"mimeType": "", "text": ""}}}
               for i in range(1, 6)]
    path = tmp_path / "big_entries.har"
    # a log member before the entries over the limit too (read past, never parsed)
    path.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "t"},
                                        "pages": [{"title": "[p\\" * 50_000}], "entries": entries}}))
    ws = _load(path, 100_000)
    assert [(no, r.split(" exceeds")[0]) for no, r in _rejects(ws)] == [
        (2, f"entry 2: record of {len(json.dumps(entries[1]))} characters"),
        (4, f"entry 4: record of {len(json.dumps(entries[3]))} characters")]
    assert _ids(ws) == ["1", "3", "5"]


def test_inspector_entries_over_the_limit_are_read_past_and_the_next_entries_load(tmp_path):
    entries = [{"id": f"{i}-a", "timestamp": f"2026-03-01T12:00:0{i}.000Z", "direction": "request", "origin": "client",
                "message": _call(i, 30_000 if i == 2 else 0)} for i in range(1, 4)]
    path = tmp_path / "inspector-protocol-big.json"
    path.write_text(json.dumps(entries, indent=2))
    ws = _load(path, 100_000)
    [(no, reason)] = _rejects(ws)
    assert no == 2 and reason.startswith("entry 2: record of ") and reason.endswith("exceeds the limit of 100000")
    assert _ids(ws) == ["1", "3"]


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                          lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids), max_leaves=30),
       chunk=st.integers(1, 17), indent=st.sampled_from([None, 1]))
def test_reading_past_a_value_stops_exactly_after_it_wherever_the_reads_cut_it(value, chunk, indent):
    doc = json.dumps([value, "after"], indent=indent, ensure_ascii=False)
    js = JsonStream(io.BytesIO(doc.encode()), chunk=chunk)
    items = js.array_items()
    next(items)
    assert js.skip_value() == len(json.dumps(value, indent=indent, ensure_ascii=False).replace("\n", "\n" + " " * (indent or 0)))
    next(items)
    assert js.value()[0] == "after"


# -- decompression bombs and huge lines: bounded memory, a clear reject ------------------------------

def _peak(script: str) -> tuple[list[str], int]:
    """Run ``script`` in a fresh interpreter; its printed lines and its peak RSS in MB."""
    code = textwrap.dedent(script) + "\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    return lines[:-1], int(lines[-1])


def _baseline_mb() -> int:
    return _peak("import mcptrace\nmcptrace.open().sql('SELECT 1').rows()")[1]


LOAD_SCRIPT = """
    import json, mcptrace
    from mcptrace.ingest.options import LoadOptions
    ws = mcptrace.open()
    ws.load({path!r}, options=LoadOptions(max_record_bytes={limit}))
    print(json.dumps([r[1] for r in ws.sql("SELECT record_no, reason FROM rejects ORDER BY 1").rows()]))
    print(json.dumps([r[0] for r in ws.sql("SELECT rpc_id FROM messages ORDER BY record_no").rows()]))
"""


@pytest.mark.slow
def test_gzip_expanding_to_a_huge_line_is_rejected_in_bounded_memory(tmp_path):
    size = 1 << 30  # 1 GiB of one line from about 1 MB of gzip (members: the line runs across them)
    member = gzip.compress(b"x" * (64 << 20), 9)
    path = tmp_path / "bomb.ndjson.gz"
    with open(path, "wb") as f:
        f.write(gzip.compress(_msg(1) + b"\n"))
        for _ in range(size >> 26):
            f.write(member)
        f.write(gzip.compress(b"\n" + _msg(3) + b"\n"))
    assert path.stat().st_size < 2 << 20
    base = _baseline_mb()
    t = time.perf_counter()
    (reasons, ids), peak = _peak(LOAD_SCRIPT.format(path=str(path), limit=8 << 20))
    elapsed = time.perf_counter() - t
    assert json.loads(reasons) == [f"line 2: record of {size} bytes exceeds the limit of {8 << 20} bytes"]
    assert json.loads(ids) == ["1", "3"]
    assert peak - base < 300, f"peak RSS {peak} MB, {base} MB without loading"
    assert elapsed < 120


@pytest.mark.slow
def test_zstd_bomb_is_rejected_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.ndjson.zst"
    cctx = zstandard.ZstdCompressor(level=3).compressobj()
    with open(path, "wb") as f:
        f.write(cctx.compress(_msg(1) + b"\n"))
        zeros = b"\0" * (1 << 20)
        for _ in range(768):  # under the decoded-size budget (1 GiB): the record limit stops it
            f.write(cctx.compress(zeros))
        f.write(cctx.compress(b"\n" + _msg(3) + b"\n"))
        f.write(cctx.flush())
    assert path.stat().st_size < 100_000
    base = _baseline_mb()
    (reasons, ids), peak = _peak(LOAD_SCRIPT.format(path=str(path), limit=8 << 20))
    assert json.loads(reasons) == [f"line 2: record of {768 << 20} bytes exceeds the limit of {8 << 20} bytes"]
    assert json.loads(ids) == ["1", "3"]
    assert peak - base < 300, f"peak RSS {peak} MB, {base} MB without loading"


def test_decoded_size_budget_stops_a_bomb_with_a_reason(tmp_path, monkeypatch):
    from mcptrace.ingest.readers import inputs

    monkeypatch.setattr(inputs, "MIN_DECODED_BYTES", 1 << 20)
    monkeypatch.setattr(inputs, "MAX_RATIO", 50)
    content = b"\n".join(_msg(i) for i in range(1, 4)) + b"\n" + b"\n" * (4 << 20)
    path = tmp_path / "ratio.ndjson.gz"
    path.write_bytes(gzip.compress(content))
    ws = _load(path, 1 << 20)
    [(no, reason)] = _rejects(ws)
    assert "decodes to more than" in reason and "decompression bomb" in reason, reason
    assert _ids(ws) == ["1", "2", "3"]


@pytest.mark.slow
def test_collector_zstd_frame_of_512_mib_is_read_past_in_bounded_memory(tmp_path):
    zeros = b"\0" * (1 << 20)
    cctx = zstandard.ZstdCompressor(level=3).compressobj()
    big = b"".join([cctx.compress(zeros) for _ in range(512)] + [cctx.flush()])
    frames = [zstandard.ZstdCompressor().compress(_request(2, seed=1)), big,
              zstandard.ZstdCompressor().compress(_request(2, seed=2))]
    path = tmp_path / "framed_bomb.pb.zst"
    path.write_bytes(b"".join(struct.pack(">I", len(f)) + f for f in frames))
    assert path.stat().st_size < 100_000
    base = _baseline_mb()
    t = time.perf_counter()
    (reasons, _ids_), peak = _peak(LOAD_SCRIPT.format(path=str(path), limit=16 << 20))
    assert time.perf_counter() - t < 120
    assert json.loads(reasons) == [f"frame 2: record of {512 << 20} bytes exceeds the limit of {16 << 20} bytes"]
    assert peak - base < 300, f"peak RSS {peak} MB, {base} MB without loading"


@pytest.mark.slow
def test_one_otlp_line_of_three_million_spans_loads_within_half_a_gibibyte(tmp_path):
    """Memory follows the spans in flight, not the spans of a record: each span is typed after its
    unnest (typed whole, the line took over 2 GiB of DuckDB memory)."""
    path = tmp_path / "empty_spans.otlp.jsonl"
    path.write_text('{"resourceSpans":[{"scopeSpans":[{"spans":[' + ",".join(["{}"] * 3_000_000) + "]}]}]}\n")
    (counts,), _peak_mb = _peak(f"""
        import json, os
        os.environ["MCPTRACE_MEMORY_LIMIT_MAX"] = "512MiB"  # no retry with more memory
        from mcptrace.core.db import connect
        from mcptrace.workspace import Workspace
        ws = Workspace(connect({str(tmp_path / "s.duckdb")!r}, memory_limit="512MiB"))
        files = ws.load({str(path)!r}).files
        print(json.dumps([files[0].status, files[0].n_rejected, ws.sql("SELECT count(*) FROM rejects WHERE "
                          "reason = 'line 1: span traceId is not 32 hex digits: missing' AND raw = '{{}}'").rows()[0][0]]))
    """)
    assert json.loads(counts) == ["loaded", 3_000_000, 3_000_000]


# -- truncated zstd, large first protobuf frames ---------------------------------------------------

def test_truncated_zstd_keeps_what_decodes_and_rejects_the_tail(tmp_path):
    lines = [_msg(i, "tools/list") for i in range(1, 20_001)]
    data = zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "cut.ndjson.zst"
    path.write_bytes(data[: len(data) * 3 // 4])
    ws = _load(path, 1 << 20)
    rejects = _rejects(ws)
    assert len(rejects) >= 1
    assert rejects[-1][1].endswith("zstd stream is corrupt or truncated: compressed file ended inside a zstd frame")
    ids = _ids(ws)
    assert 1000 < len(ids) < 20_000
    assert ids == [str(i) for i in range(1, len(ids) + 1)]  # the decoded start, in order
    n_records, n_rejected = _sources(ws)
    assert n_records == len(ids) + n_rejected


def test_truncated_zstd_stream_raises_after_the_decoded_bytes(tmp_path):
    data = zstandard.ZstdCompressor().compress(b"a" * 1000 + b"\n")
    path = tmp_path / "cut.zst"
    path.write_bytes(data[:-3])
    with Input(str(path)).open() as f, pytest.raises(EOFError, match="inside a zstd frame"):
        f.read()


@pytest.mark.parametrize("keep", [0, 12, -4])
def test_a_compressed_file_that_decodes_to_nothing_recognisable_is_a_failed_file_saying_why(tmp_path, keep):
    """A single-block zstd cut short decodes to nothing (or a few bytes): damaged, not an unknown format."""
    data = zstandard.ZstdCompressor().compress(b"\n".join(_msg(i) for i in range(100)) + b"\n")
    path = tmp_path / "cut.ndjson.zst"
    path.write_bytes(data[:keep] if keep else data[:4] + b"\xff" * 8)
    ws = mcptrace.open()
    [f] = ws.load(path).files
    assert f.status == "failed" and "zstd stream is corrupt or truncated" in f.error, f
    assert ws.sql("SELECT format, kind, status, error LIKE 'zstd stream is corrupt or truncated%' FROM sources"
                  ).rows() == [("unknown", "unknown", "failed", True)]
    assert ws.sql("SELECT count(*) FROM messages").rows() == [(0,)]


def _request(n_spans: int, seed: int = 0, blob: int = 0) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for i in range(n_spans):
        sp = ss.spans.add()
        sp.trace_id = (seed * 1_000_003 + i + 1).to_bytes(16, "big")
        sp.span_id = (seed * 1_000_003 + i + 1).to_bytes(8, "big")
        sp.name = "tools/call"
        sp.kind = 2
        sp.start_time_unix_nano = 1_764_000_000_000_000_000 + i * 1000
        sp.end_time_unix_nano = sp.start_time_unix_nano + 500
        if blob:
            at = sp.attributes.add()
            at.key, at.value.string_value = "blob", "x" * blob
    return req.SerializeToString()


def _framed(msgs: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(m)) + m for m in msgs)


@pytest.mark.parametrize("layout", ["framed", "bare"])
def test_first_protobuf_message_over_the_head_is_sniffed(tmp_path, layout):
    first = _request(1, seed=1, blob=100_000)  # larger than the 64 KiB head, in its first span
    path = tmp_path / f"{layout}.pb"
    path.write_bytes(_framed([first, _request(2, seed=2)]) if layout == "framed" else first)
    assert readers.sniff(Input(str(path)).head()).name == "otlp_proto"
    ws = mcptrace.load(path)
    assert ws.sql("SELECT count(*) FROM spans").rows()[0][0] == (3 if layout == "framed" else 1)
    assert ws.rejects().rows() == []


@pytest.mark.parametrize("layout", ["framed", "bare"])
def test_first_protobuf_request_whose_resource_is_larger_than_the_head_is_sniffed(tmp_path, layout):
    req = ExportTraceServiceRequest.FromString(_request(2, seed=3))
    kv = req.resource_spans[0].resource.attributes.add()
    kv.key, kv.value.string_value = "process.command_args", "--flag " * 40_000  # a 280 KB resource
    first = req.SerializeToString()
    path = tmp_path / f"{layout}.pb"
    path.write_bytes(_framed([first, _request(1, seed=4)]) if layout == "framed" else first)
    head = Input(str(path)).head()
    assert readers.sniff(head) is None  # the head alone cannot tell
    assert readers.sniff_input(Input(str(path)))[0].name == "otlp_proto"
    ws = mcptrace.load(path)
    assert ws.sql("SELECT count(*), count(DISTINCT service_name) FROM spans").rows()[0] == (
        (3, 1) if layout == "framed" else (2, 1))
    assert ws.rejects().rows() == []


def test_binary_that_only_starts_like_protobuf_is_not_taken_for_otlp(tmp_path):
    path = tmp_path / "noise.bin"
    # a field-1 length-delimited start announcing 1 MB, then noise
    path.write_bytes(b"\x0a\x80\x80\x40" + bytes(range(256)) * 4096)
    assert readers.sniff_input(Input(str(path)))[0] is None
    [f] = mcptrace.open().load(path).files
    assert f.status == "unrecognized"


# -- linear time ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_sse_parser_is_linear():
    def body(n):
        return "".join(f'id: {i}\ndata: {{"jsonrpc":"2.0","method":"notifications/progress","params":{{"p":{i}}}}}\n\n'
                       for i in range(n)).encode()

    def run(data):
        p = SSEParser()
        events = p.feed(data) + p.close()
        assert events[-1].id is not None

    small, large = body(20_000), body(80_000)
    t1, t4 = _linear(run, small, large)
    assert t4 < 10 * t1, (t1, t4)
    # fed in small chunks, with a long line split across many of them
    p, events = SSEParser(), []
    for i in range(0, len(small), 7):
        events += p.feed(small[i:i + 7])
    assert len(events) == 20_000
    p = SSEParser(max_event_bytes=None)
    line = b"data: " + b"z" * 2_000_000 + b"\r\n\r\n"
    t = time.perf_counter()
    evs = [e for i in range(0, len(line), 1000) for e in p.feed(line[i:i + 1000])]
    assert [len(e.data) for e in evs] == [2_000_000] and time.perf_counter() - t < 5


@pytest.mark.slow
def test_har_with_many_sse_events_loads_in_linear_time(tmp_path):
    def har(n):
        body = "".join(f'event: message\nid: {i}\ndata: {{"jsonrpc":"2.0","method":"notifications/progress",'
                       f'"params":{{"progressToken":1,"progress":{i}}}}}\n\n' for i in range(n))
        entry = {"startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
                 "request": {"method": "POST", "url": "http://h/mcp", "headers": [],
                             "postData": {"mimeType": "application/json",
                                          "text": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}'}},
                 "response": {"status": 200, "headers": [{"name": "Content-Type", "value": "text/event-stream"}],
                              "content": {"mimeType": "text/event-stream", "text": body}}}
        path = tmp_path / f"sse_{n}.har"
        path.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry]}}))
        return path

    def read(path):
        return sum(t.num_rows for t in readers.by_name("har").batches(Input(str(path))))

    small, large = har(10_000), har(40_000)
    t1, t4 = _linear(read, small, large, tries=2)
    assert t4 < 10 * t1, (t1, t4)
    ws = mcptrace.load(large)
    assert ws.sql("SELECT count(*) FROM messages").rows()[0][0] == 40_001


@pytest.mark.slow
def test_line_splitting_is_linear_for_one_long_line_and_for_many_newlines(tmp_path):
    def gz_line(mb):
        path = tmp_path / f"line_{mb}.gz"
        path.write_bytes(gzip.compress(_msg(1) + b"\n" + b"q" * (mb << 20) + b"\n" + _msg(2) + b"\n", 6))
        return path

    def gz_newlines(mb):
        path = tmp_path / f"newlines_{mb}.gz"
        path.write_bytes(gzip.compress(_msg(1) + b"\n" * (mb << 20) + _msg(2) + b"\n", 6))
        return path

    def count(path):
        return sum(t.num_rows for t in iter_lines(Input(str(path)), max_record_bytes=1 << 40))

    for make, mb in ((gz_line, 32), (gz_newlines, 32)):
        small, large = make(mb), make(4 * mb)
        assert count(small) == (3 if make is gz_line else 2)
        t1, t4 = _linear(count, small, large, tries=2)
        assert t4 < 10 * t1, (make.__name__, t1, t4)


def test_framed_zstd_reading_is_linear(tmp_path):
    def framed(mb):
        cctx = zstandard.ZstdCompressor()
        line = b'{"resourceSpans":[]}' + b" " * (mb << 20) + b"\n"
        frame = cctx.compress(line)
        path = tmp_path / f"framed_{mb}.zst"
        path.write_bytes(struct.pack(">I", len(frame)) + frame)
        return path

    def read(path):
        with Input(str(path)).open() as f:
            while f.read(65536):
                pass

    small, large = framed(32), framed(128)
    t1, t4 = _linear(read, small, large)
    assert t4 < 10 * t1, (t1, t4)


def test_gzip_reads_are_bounded_whatever_the_ratio(tmp_path):
    path = tmp_path / "ratio.gz"
    path.write_bytes(gzip.compress(b"\0" * (64 << 20), 9))
    with Input(str(path)).open() as f:
        sizes = []
        while chunk := f.read(1 << 16):
            sizes.append(len(chunk))
    assert sum(sizes) == 64 << 20 and max(sizes) <= 1 << 16
    data = io.BytesIO()
    with Input(str(path)).open() as f:
        data.write(f.read(10))
    assert data.getvalue() == b"\0" * 10
