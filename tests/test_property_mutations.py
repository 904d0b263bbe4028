"""Property: whatever happens to a real capture, a collect-mode load never raises, and every
input record is either accepted or rejected (accepted + rejected == records)."""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcptrace
from conftest import BARE, SAMPLES

FILES = {
    "envelope_jsonl": (SAMPLES / "agent_stdio.jsonl").read_bytes() + (SAMPLES / "ide_http.jsonl").read_bytes(),
    "jsonrpc_ndjson": (BARE / "agent_stdio.ndjson").read_bytes(),
    "otlp_json": (SAMPLES / "traces.otlp.jsonl").read_bytes(),
}


@st.composite
def mutations(draw, data: bytes):
    lines = data.split(b"\n")
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["drop", "duplicate", "truncate", "flip", "swap", "insert"]))
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        if op == "drop":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, max(0, len(lines[i]) - 1)))]
        elif op == "flip" and lines[i]:
            b = bytearray(lines[i])
            for _ in range(draw(st.integers(1, 4))):
                k = draw(st.integers(0, len(b) - 1))
                b[k] ^= draw(st.integers(1, 255))
            lines[i] = bytes(b)
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(st.binary(max_size=200)))
    return b"\n".join(lines)


def _records(data: bytes) -> int:
    """Records as the line readers count them: non-blank lines (CR stripped, BOM on line 1 ignored)."""
    n = 0
    for k, line in enumerate(data.split(b"\n")):
        if k == 0 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            n += 1
    return n


def _check(fmt: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/mutated"
        with open(path, "wb") as f:
            f.write(data)
        ws = mcptrace.load(path, format=fmt)  # must not raise
        try:
            rep = ws.last_report.files[0]
            expected = _records(data)
            if expected == 0:
                assert rep.status in ("unrecognized", "loaded")
                return
            assert rep.status == "loaded"
            table = "spans" if fmt == "otlp_json" else "messages"
            n_records, n_rejected = ws.sql("SELECT n_records, n_rejected FROM sources").rows()[0]
            assert n_records == expected
            # a record is stored, a transport event, copies of spans already stored, or rejected
            covered = ws.sql(f"SELECT count(*) FROM (SELECT record_no FROM {table} UNION SELECT record_no FROM rejects "
                             "UNION SELECT record_no FROM http_events UNION SELECT record_no FROM span_duplicates)"
                             ).rows()[0][0]
            assert covered == expected
            assert n_rejected == ws.sql("SELECT count(*) FROM rejects").rows()[0][0]
            # the analysis ran over whatever survived
            ws.sql("SELECT count(*) FROM calls").rows()
        finally:
            ws.close()


_settings = settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_settings
@given(mutations(FILES["envelope_jsonl"]))
def test_envelope_mutations(data):
    _check("envelope_jsonl", data)


@_settings
@given(mutations(FILES["jsonrpc_ndjson"]))
def test_bare_ndjson_mutations(data):
    _check("jsonrpc_ndjson", data)


@_settings
@given(mutations(FILES["otlp_json"]))
def test_otlp_json_mutations(data):
    _check("otlp_json", data)
