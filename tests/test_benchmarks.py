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


def test_bench_script_runs_every_duckdb_contender(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH), "--messages", "3000", "--spans", "2000", "--out", str(tmp_path),
                          "--only", "columns", "mcptrace", "--timeout", "300"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = {m.group(1): (float(m.group(2)), float(m.group(3)), float(m.group(4)))
            for m in re.finditer(r"^(floor|columns|mcptrace)\s+([\d.]+)\s+(\d+)\s+([\d.]+)$", out.stdout, re.M)}
    assert set(rows) == {"floor", "columns", "mcptrace"}, out.stdout
    assert rows["floor"][2] == 1.0 and all(r[0] > 0 and r[1] > 0 for r in rows.values())
    assert "floor: messages=3000, spans=2000" in out.stdout
    assert "columns: messages=3000, message_columns=" in out.stdout
    got = re.search(r"^mcptrace: messages=(\d+), spans=(\d+), calls=(\d+).*rejects=(\d+)$", out.stdout, re.M)
    assert got and (int(got.group(1)), int(got.group(2)), int(got.group(4))) == (3000, 2000, 0), out.stdout
    assert int(got.group(3)) > 0
    assert "WARNING" not in out.stdout
