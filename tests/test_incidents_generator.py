"""The incident generator regenerates data/incidents from real MCP SDK processes, with the same structure."""

from __future__ import annotations

import pathlib
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


def test_a_situation_failing_its_checks_runs_again_alone(tmp_path, monkeypatch):
    """Of two situations run together, the first check reports cancelled_call as missing its point (as a
    late client timeout does): that situation, and only it, runs again, and the run ends without
    problems. Only the situations run are checked."""
    from mcptrace.samples import incidents

    names = ["cancelled_call", "unknown_progress_token"]
    seen: list[list[str]] = []

    def verify_once_failing(target, *, only=None):
        assert only == names
        got = verify(target, only=only)
        seen.append(got)
        return got + (["cancelled_call: slow_report cancelled, never answered"] if len(seen) == 1 else [])

    monkeypatch.setattr(incidents, "verify", verify_once_failing)
    result = incidents.generate(tmp_path / "incidents", only=names)
    assert len(seen) >= 2 and result["problems"] == []
    assert sorted(result["runs"]) == sorted(names)
    assert result["runs"]["cancelled_call"]["reruns"] >= 1
    # the other runs again only when its own first check really failed
    assert ("reruns" in result["runs"]["unknown_progress_token"]) == any(
        p.startswith("unknown_progress_token: ") for p in seen[0])
    fresh, shipped = fingerprint(tmp_path / "incidents"), fingerprint(INCIDENTS)
    for name in names:
        assert fresh[name] == shipped[name], name
    assert not (tmp_path / "incidents" / "README.md").exists()  # a partial run leaves the README alone


def test_checks_of_named_situations_only():
    """``verify(only=...)`` checks the situations named and no other: a directory holding one situation's
    pair passes for that situation and reports every other one's files missing."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        for suffix in (".jsonl", ".otlp.jsonl"):
            shutil.copy(INCIDENTS / f"cancelled_call{suffix}", d)
        assert verify(d, only=["cancelled_call"]) == []
        missing = verify(d)
        assert sorted(missing) == sorted(f"{s.name}: files missing" for s in SITUATIONS if s.name != "cancelled_call")


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
