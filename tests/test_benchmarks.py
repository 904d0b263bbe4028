"""The benchmark's inputs and script: scaled captures are copies that never correlate with each
other, and ``benchmarks/bench.py`` runs end to end (its timings are not checked here)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import mcptrace
from conftest import ROOT
from mcptrace.core.db import one as first_row

sys.path.insert(0, str(ROOT / "benchmarks"))
import scale  # noqa: E402

BENCH = ROOT / "benchmarks" / "bench.py"


def _unit() -> tuple[int, int]:
    lines, _, spans = scale._unit_counts(scale.DEFAULT_SOURCES, scale.DEFAULT_TRACES)
    return lines, spans


def _counts(*paths: str) -> dict[str, object]:
    """What a load of ``paths`` rebuilds: row counts, gaps per code, calls per status."""
    with mcptrace.load(list(paths)) as ws:
        def one(q: str) -> int:
            return first_row(ws.con, q)[0]

        return {
            "messages": one("SELECT count(*) FROM messages"),
            "spans": one("SELECT count(*) FROM spans"),
            "calls": one("SELECT count(*) FROM calls"),
            "sessions": one("SELECT count(*) FROM sessions"),
            "call_spans": one("SELECT count(*) FROM call_spans"),
            "rejects": one("SELECT count(*) FROM rejects"),
            "gaps": dict(ws.con.execute("SELECT code, count(*) FROM gaps GROUP BY code").fetchall()),
            "statuses": dict(ws.con.execute("SELECT status, count(*) FROM calls GROUP BY status").fetchall()),
        }


@pytest.fixture(scope="module")
def one_and_three(tmp_path_factory):
    lines, spans = _unit()
    out = tmp_path_factory.mktemp("scaled")
    return _counts(*scale.scale_capture(str(out), lines, spans)), _counts(*scale.scale_capture(str(out), 3 * lines, 3 * spans))


def test_three_copies_rebuild_three_times_everything(one_and_three):
    one, three = one_and_three
    assert one["calls"] > 0 and one["call_spans"] > 0 and one["gaps"]
    assert one["rejects"] == three["rejects"] == 0
    for key in ("messages", "spans", "calls", "sessions", "call_spans"):
        assert three[key] == 3 * one[key], key
    # every gap of the samples appears once per copy and no gap comes from copies meeting
    assert three["gaps"] == {code: 3 * n for code, n in one["gaps"].items()}
    assert three["statuses"] == {status: 3 * n for status, n in one["statuses"].items()}


def test_one_copy_is_the_samples(one_and_three):
    one, _ = one_and_three
    samples = _counts(*scale.DEFAULT_SOURCES, scale.DEFAULT_TRACES)
    for key in ("messages", "spans", "calls", "statuses"):
        assert one[key] == samples[key], key


def test_bench_script_runs_every_duckdb_contender_on_both_shapes(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH), "--messages", "3000", "--spans", "2000", "--out", str(tmp_path),
                          "--only", "columns", "mcptrace", "--timeout", "300"],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    sections = re.split(r"^== shape: ", out.stdout, flags=re.M)[1:]
    assert [s.split("\n", 1)[0] for s in sections] == ["stdio", "http"], out.stdout
    for text in sections:
        rows = {m.group(1): (float(m.group(2)), float(m.group(3)), float(m.group(4)))
                for m in re.finditer(r"^(floor|columns|mcptrace)\s+([\d.]+)\s+(\d+)\s+([\d.]+)$", text, re.M)}
        assert set(rows) == {"floor", "columns", "mcptrace"}, text
        assert rows["floor"][2] == 1.0 and all(r[0] > 0 and r[1] > 0 for r in rows.values())
        assert "floor: messages=3000, spans=2000" in text
        assert "columns: messages=3000, message_columns=" in text
        got = re.search(r"^mcptrace: messages=(\d+), spans=(\d+), calls=(\d+).*rejects=(\d+), http_events=(\d+)",
                        text, re.M)
        assert got and (int(got.group(2)), int(got.group(4))) == (2000, 0), text
        assert int(got.group(1)) + int(got.group(5)) >= 3000 and int(got.group(3)) > 0
        assert "findings=" in text and "WARNING" not in text
        # three appends of 10 records into the loaded database, each analysed on what it reaches
        assert re.search(r"^append\s+[\d.]+\s+\d+\s+-", text, re.M), text
        appends = re.findall(r"append_\d=([\d.]+)s (\w+) (\d+) calls in scope", text)
        assert len(appends) == 3 and all(mode == "incremental" and 0 < int(n) < int(got.group(3))
                                         for _s, mode, n in appends), appends
        # and one continuing the first append's connection, analysed on what it reaches too
        cont = re.findall(r"continue_0=([\d.]+)s (\w+) (\d+) calls in scope", text)
        assert len(cont) == 1 and cont[0][1] == "incremental" and 0 < int(cont[0][2]) < int(got.group(3)), cont
    http = sections[1]
    assert int(re.search(r"http_events=(\d+)", http).group(1)) > 600  # a third of the envelopes carry no message


@pytest.fixture(scope="module")
def http_one_and_three(tmp_path_factory):
    out = tmp_path_factory.mktemp("scaled_http")
    unit_env, unit_spans = scale.aligned_unit(scale.HTTP_CAPTURES, str(out))
    lines, _, spans = scale._unit_counts([unit_env], unit_spans)
    return (_counts(*scale.scale_capture(str(out), lines, spans, shape="http")),
            _counts(*scale.scale_capture(str(out), 3 * lines, 3 * spans, shape="http")),
            _counts(*scale.HTTP_CAPTURES, *[p.replace(".jsonl", ".otlp.jsonl") for p in scale.HTTP_CAPTURES]))


def test_http_shape_copies_never_correlate_and_one_copy_is_the_captures(http_one_and_three):
    one, three, captures = http_one_and_three
    assert one["calls"] > 0 and one["gaps"] and one["rejects"] == three["rejects"] == 0
    for key in ("messages", "spans", "calls", "sessions", "call_spans"):
        assert three[key] == 3 * one[key], key
    assert three["gaps"] == {code: 3 * n for code, n in one["gaps"].items()}
    for key in ("messages", "spans", "calls", "sessions", "statuses", "gaps"):  # aligning times changes nothing
        assert one[key] == captures[key], key
