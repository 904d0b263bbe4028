"""Hostile and broken inputs: a clear reason per bad record, every valid record kept, memory bounded.

Every fixture is a real SDK capture from data/ with one situation applied to it, named after it.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import textwrap
import zlib

import mcptrace
from conftest import BARE, ROOT, SAMPLES, read_lines, write_lines


def _n(ws, sql, params=None):
    return ws.sql(sql, params).rows()[0][0]


def test_invalid_utf8_line(tmp_path):
    lines = [x.encode() for x in read_lines(SAMPLES / "agent_stdio.jsonl")]
    i = next(k for k, x in enumerate(lines) if b'"search"' in x)
    pos = lines[i].index(b'"search"') + 2
    lines[i] = lines[i][:pos] + b"\xff\xfe" + lines[i][pos:]
    path = tmp_path / "invalid_utf8_in_tool_name.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    ws = mcptrace.load(path)
    assert [(r[1], r[2]) for r in ws.rejects().rows()] == [(i + 1, f"line {i + 1}: invalid UTF-8 at byte {pos}")]
    assert _n(ws, "SELECT count(*) FROM messages") == len(lines) - 1


def test_ten_thousand_deep_nested_array_in_arguments(tmp_path):
    lines = read_lines(BARE / "agent_stdio.ndjson")
    i = next(k for k, x in enumerate(lines) if '"arguments":{' in x)
    lines[i] = lines[i].replace('"arguments":{', '"arguments":{"deep":' + "[" * 10_000 + "]" * 10_000 + ",", 1)
    ws = mcptrace.load(write_lines(tmp_path / "ten_thousand_deep_array.ndjson", lines))
    assert ws.rejects().rows() == []
    assert _n(ws, "SELECT count(*) FROM messages") == len(lines)
    rpc_id = json.dumps(json.loads(lines[i].replace("[" * 10_000 + "]" * 10_000, "[]"))["id"])
    assert ws.sql("SELECT status FROM calls WHERE rpc_id = ?", [rpc_id]).rows() == [("ok",)]


def test_json_array_of_a_million_tiny_items_is_one_reject(tmp_path):
    lines = read_lines(BARE / "agent_stdio.ndjson")
    path = write_lines(tmp_path / "array_of_a_million_numbers.ndjson", lines + ["[" + ",".join(["1"] * 1_000_000) + "]"])
    ws = mcptrace.load(path)
    assert [(r[1], r[2]) for r in ws.rejects().rows()] == [
        (len(lines) + 1, f"line {len(lines) + 1}: JSON array of 1000000 items holds no JSON-RPC message")]
    assert len(ws.rejects().rows()[0][3]) == 4096  # raw kept, truncated to a bound
    assert _n(ws, "SELECT count(*) FROM messages") == len(lines)


def test_batch_with_one_bad_element_keeps_the_good_ones(tmp_path):
    msgs = [json.loads(x) for x in read_lines(BARE / "agent_stdio.ndjson")]
    reqs = [m for m in msgs if m.get("method") == "tools/call"][:2]
    batch = json.dumps([reqs[0], {"jsonrpc": "2.0", "id": 3.5, "method": "tools/call"}, reqs[1]])
    ws = mcptrace.load(write_lines(tmp_path / "batch_with_a_float_id.ndjson", [batch]))
    assert [r[2] for r in ws.rejects().rows()] == ["line 1: message.id is a float (batch element 1)"]
    assert ws.sql("SELECT batch_index, method FROM messages ORDER BY batch_index").rows() == \
        [(0, "tools/call"), (2, "tools/call")]


def test_corrupt_gzip_keeps_the_records_before_the_damage(tmp_path):
    rnd = random.Random(7)
    originals = []
    for _ in range(60):  # a capture big enough to span many deflate blocks
        for x in read_lines(SAMPLES / "agent_stdio.jsonl"):
            e = json.loads(x)
            e["capture_nonce"] = "%032x" % rnd.getrandbits(128)  # extra envelope keys are ignored
            originals.append(json.dumps(e))
    raw = ("\n".join(originals) + "\n").encode()
    data = bytearray(gzip.compress(raw))
    flip = len(data) * 3 // 4
    data[flip] ^= 0xFF
    # how much decodes intact before the flipped byte (deflate decodes garbage after it until
    # zlib notices, sometimes only at the CRC)
    intact = len(zlib.decompressobj(wbits=31).decompress(bytes(data[:flip - 1])))
    n_intact = raw[:intact].count(b"\n")
    path = tmp_path / "corrupt_gzip.jsonl.gz"
    path.write_bytes(bytes(data))
    ws = mcptrace.load(path)
    f = ws.last_report.files[0]
    assert (f.status, f.format) == ("loaded", "envelope_jsonl")
    rejects = ws.rejects().rows()
    last_no, last_reason = rejects[-1][1], rejects[-1][2]
    assert last_reason.startswith(f"line {last_no}: gzip stream is corrupt or truncated: ")
    kept = dict(ws.sql("SELECT record_no, raw FROM messages").rows())
    # every line before the damage is kept exactly as it was
    assert n_intact > len(originals) // 2
    for no in range(1, n_intact + 1):
        assert json.loads(kept[no]) == json.loads(originals[no - 1])["message"]
    # every record is accounted for, and the counts agree
    assert sorted(list(kept) + [r[1] for r in rejects]) == list(range(1, last_no + 1))
    assert ws.sql("SELECT n_records, n_rejected FROM sources").rows() == [(last_no, len(rejects))]


def test_fifty_megabyte_line_loads_in_bounded_memory(tmp_path):
    lines = read_lines(SAMPLES / "agent_stdio.jsonl")
    i = next(k for k, x in enumerate(lines) if '"arguments":{' in x)
    e = json.loads(lines[i])
    e["message"]["params"]["arguments"]["blob"] = "x" * (50 * 1024 * 1024)
    path = write_lines(tmp_path / "fifty_megabyte_line.jsonl", lines[:i] + [json.dumps(e)] + lines[i + 1:])
    del e
    script = textwrap.dedent(f"""
        import resource, mcptrace
        ws = mcptrace.load({str(path)!r})
        n = ws.sql("SELECT count(*), max(length(raw::VARCHAR)) FROM messages").rows()[0]
        print(n[0], n[1], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    n, longest, peak_kb = map(int, r.stdout.split())
    assert n == len(lines)
    assert longest > 50 * 1024 * 1024
    assert peak_kb < 1.5 * 1024 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"


def test_empty_and_whitespace_only_files(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank_lines.jsonl").write_bytes(b"\n\n  \n")
    ws = mcptrace.load(tmp_path)
    assert {os.path.basename(f.path): f.status for f in ws.last_report.files} == \
        {"empty.jsonl": "unrecognized", "blank_lines.jsonl": "unrecognized"}
