"""The HTML incident report: complete, self-contained, and inert against hostile transcripts
(checked in headless Debian Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import mcptrace
from conftest import SAMPLES, read_lines, write_lines
from mcptrace.render.export import write_figure
from mcptrace.render.report import write_report

PAYLOADS = [
    "<script>document.documentElement.setAttribute('data-pwned','script')</script>",
    "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">",
    "\"><svg onload=\"document.documentElement.setAttribute('data-pwned','svg')\">",
    "</script><script>document.documentElement.setAttribute('data-pwned','close')</script>",
]


def _hostile_capture(tmp_path):
    """The real stdio capture with attacker-controlled strings in every field a server or
    client controls: tool names, arguments, results, clientInfo, _meta values."""
    lines = []
    for k, x in enumerate(read_lines(SAMPLES / "plain_stdio.jsonl")):
        e = json.loads(x)
        m = e["message"]
        p = PAYLOADS[k % len(PAYLOADS)]
        params = m.get("params")
        if isinstance(params, dict):
            if m.get("method") == "initialize":
                params["clientInfo"]["name"] = p
            if m.get("method") == "tools/call":
                params["name"] = p
                params.setdefault("arguments", {})["q"] = p
                params.setdefault("_meta", {})["anthropic/session"] = p
        if isinstance(m.get("result"), dict):
            m["result"]["content"] = [{"type": "text", "text": p}]
        lines.append(json.dumps(e))
    return write_lines(tmp_path / "hostile_strings_everywhere.jsonl", lines)


def _rendered_dom(path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian chromium is installed by `make test`"
    r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={path.parent / 'chromium-profile'}", "--virtual-time-budget=8000",
                        "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_report_sections(samples_ws, tmp_path):
    html = open(write_report(samples_ws.con, tmp_path / "report.html"), encoding="utf-8").read()
    headings = ["Findings", "Calls by status", "Gaps by code", "Sources", "Sessions", "Where correlation was lost",
                "Correlation coverage"]
    for heading in headings:
        assert f"<h2>{heading}</h2>" in html
    # the report leads with the findings, ranked, each with its sentence, remedy and links
    assert html.index("<h2>Findings</h2>") < html.index("<h2>Calls by status</h2>")
    findings = samples_ws.sql("SELECT finding_id, summary, gap_ids, example_session_id FROM findings "
                              "ORDER BY finding_id").rows()
    assert findings
    positions = [html.index(f'id="finding-{fid}"') for fid, *_ in findings]
    assert positions == sorted(positions)
    for fid, summary, gap_ids, _ in findings:
        assert f'href="#gap-{gap_ids[0]}"' in html and f'id="gap-{gap_ids[0]}"' in html
    # charted: the example sessions of the top findings first, then the sessions with the most gaps
    top = []
    for *_, sid in findings:
        if sid and sid not in top and len(top) < 3:
            top.append(sid)
    for (sid,) in samples_ws.sql("SELECT session_id FROM sessions ORDER BY n_gaps DESC, n_calls DESC LIMIT 3").rows():
        if sid not in top and len(top) < 3:
            top.append(sid)
    for i, sid in enumerate(top):
        assert f'<h2 id="session-{i}">Session {sid}</h2>' in html
    # timeline and waterfall per session, two coverage charts, the per-tool chart
    assert html.count('class="fig"') == 2 * len(top) + 3
    assert "<dl class=\"ev\">" in html and "<pre>" not in html.split("<h2>Where correlation was lost</h2>", 1)[1]
    assert "https://" not in html.split("<script>", 1)[0]  # nothing fetched from the network
    dom = _rendered_dom(tmp_path / "report.html")
    assert dom.count('class="plot-container plotly"') == 2 * len(top) + 3  # every figure drew


def test_hostile_strings_stay_text_in_report_and_timeline(tmp_path):
    ws = mcptrace.load(_hostile_capture(tmp_path))
    report = write_report(ws.con, tmp_path / "report.html")
    timeline = write_figure(ws.timeline(ws.busiest_session()), tmp_path / "timeline.html")
    waterfall = write_figure(ws.waterfall(ws.busiest_session()), tmp_path / "waterfall.html")
    for path in (report, timeline, waterfall):
        dom = _rendered_dom(tmp_path / path.rsplit("/", 1)[-1])
        html_tag = re.search(r"<html[^>]*>", dom).group(0)
        assert "data-pwned" not in html_tag, (path, html_tag)   # no payload ran
        assert 'class="plot-container plotly"' in dom           # and the page did render
    html = open(report, encoding="utf-8").read()
    assert "&lt;script&gt;document.documentElement" in html   # shown as text in the tables
    for p in PAYLOADS:
        assert p not in html
