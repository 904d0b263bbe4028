"""The incident generator regenerates data/incidents from real MCP SDK processes, with the same structure."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mcptrace
from conftest import ROOT
from mcptrace.samples.incidents import SITUATIONS, fingerprint, verify

INCIDENTS = ROOT / "data" / "incidents"


def test_committed_incidents_show_their_situations():
    assert verify(INCIDENTS) == []
    fp = fingerprint(INCIDENTS)
    assert sorted(fp) == sorted(s.name for s in SITUATIONS)
    assert all("missing" not in f for f in fp.values())
    size = sum(p.stat().st_size for p in INCIDENTS.iterdir() if p.is_file())
    assert size < 1024 * 1024


def test_regenerated_incidents_match_the_committed_ones(tmp_path):
    out = tmp_path / "incidents"
    r = subprocess.run([sys.executable, "-m", "mcptrace.samples.incidents", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert verify(out) == []
    fresh, shipped = fingerprint(out), fingerprint(INCIDENTS)
    for sit in SITUATIONS:  # per situation, for a readable diff
        assert fresh[sit.name] == shipped[sit.name], sit.name
    assert (out / "README.md").read_text(encoding="utf-8") == (INCIDENTS / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("sit", SITUATIONS, ids=lambda s: s.name)
def test_each_incident_yields_its_gap_codes(sit):
    """Loading a situation's pair gives the gap codes its README entry promises (and no others but the
    timing-dependent ones it names)."""
    ws = mcptrace.load([INCIDENTS / f"{sit.name}.jsonl", INCIDENTS / f"{sit.name}.otlp.jsonl"])
    try:
        codes = {row[0] for row in ws.sql("SELECT DISTINCT code FROM gaps").rows()}
        assert ws.sql("SELECT count(*) FROM rejects").rows() == [(0,)]
    finally:
        ws.close()
    assert set(sit.gaps) <= codes
    assert codes - set(sit.gaps) <= set(sit.maybe_gaps)
