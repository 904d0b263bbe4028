"""The sample generator regenerates data/samples from real MCP SDK processes, with the same structure."""

from __future__ import annotations

import subprocess
import sys

import mcptrace
from conftest import ROOT, SAMPLES
from mcptrace.samples.check import check


def _summary(ws):
    return ws.sql("""
        SELECT regexp_extract(s.path, '[^/]+$') AS file, c.method, c.tool_name, c.status, count(*) AS n
        FROM calls c JOIN messages m ON m.message_id = c.request_message_id JOIN sources s USING (source_id)
        GROUP BY ALL ORDER BY ALL""").rows()


def test_regenerated_samples_match_the_committed_ones(tmp_path):
    out, bare = tmp_path / "samples", tmp_path / "bare"
    r = subprocess.run([sys.executable, "-m", "mcptrace.samples", str(out), "--bare-dir", str(bare)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    fresh_checker, fresh = check(out, bare / "agent_stdio.ndjson")
    shipped_checker, shipped = check(SAMPLES, SAMPLES.parent / "bare" / "agent_stdio.ndjson")
    assert fresh_checker.failures == [] and shipped_checker.failures == []
    assert fresh == shipped
    # and mcptrace rebuilds the same calls, statuses and gap codes from both
    a, b = mcptrace.load(out), mcptrace.load(SAMPLES)
    assert _summary(a) == _summary(b)
    q = "SELECT code, count(*) FROM gaps GROUP BY 1 ORDER BY 1"
    assert a.sql(q).rows() == b.sql(q).rows()
    q = "SELECT session_key_source, n_calls FROM sessions ORDER BY first_ts"
    assert a.sql(q).rows() == b.sql(q).rows()
