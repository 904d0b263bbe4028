"""The README's pictures, generated from the shipped samples and incident captures (``make pictures``).

Each picture is drawn from a source the library produces (a plotly figure, or the findings section of
the HTML report) and written as PNG to ``docs/img``, next to ``pictures.json``: per picture the sha256
of its source (figure data and layout without the theme; the report section's HTML). A test recomputes
the sources and fails when one differs from the manifest, so a change that alters what users see
regenerates the pictures (``make pictures``) in the same commit. The PNG bytes themselves are not
compared: fonts and the Chromium version move pixels.

    python -m mcptrace.samples.pictures docs/img
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import mcptrace

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
INCIDENTS = ROOT / "data" / "incidents"
MANIFEST = "pictures.json"
#: picture name -> what it shows (the README's alt text)
PICTURES = {
    "findings.png": "mcptrace findings of the incident captures: who broke correlation, ranked, with the remedy",
    "timeline.png": "the timeline of a sample session: one lane per concurrent call, tool names on the bars, "
                    "turns as bands, gaps marked",
    "waterfall.png": "the waterfall of a call whose tool did not forward trace context to its downstream service",
}
#: drawn by the browser check of the explorer in JupyterLab (tests/test_browser_explorer.py), copied by
#: ``make pictures``; a screenshot of a live UI, so it has no source digest
EXPLORER = "explorer.png"


def _figure_digest(fig) -> str:
    d = fig.to_plotly_json()
    d.get("layout", {}).pop("template", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def _findings_page(ws) -> str:
    """The report's findings section as a page of its own (no generation time, no script)."""
    from mcptrace.render.report import CSS, findings_html

    findings = ws.con.execute(
        "SELECT finding_id, code, severity, party_kind, party, n_gaps, n_calls, n_sessions, share, first_ts, last_ts, "
        "confidence, summary, remedy, gap_ids, example_call_id, example_session_id FROM findings "
        "ORDER BY finding_id LIMIT 6").fetchall()
    body = findings_html(ws.con, findings, {})
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>{CSS} body{{margin:12px;max-width:1180px}}"
            f"</style></head><body><h2 style=\"margin-top:0\">Findings</h2>{body}</body></html>")


def sources() -> dict[str, tuple[str, object]]:
    """Per picture: (sha256 of its source, the source: a plotly Figure or an HTML page)."""
    out: dict[str, tuple[str, object]] = {}
    with mcptrace.load(sorted(INCIDENTS.glob("*.jsonl"))) as ws:
        page = _findings_page(ws)
        out["findings.png"] = (hashlib.sha256(page.encode()).hexdigest(), page)
    with mcptrace.load(SAMPLES) as ws:
        fig = ws.timeline(ws.busiest_session())
        out["timeline.png"] = (_figure_digest(fig), fig)
    pair = [INCIDENTS / "downstream_without_propagation.jsonl", INCIDENTS / "downstream_without_propagation.otlp.jsonl"]
    with mcptrace.load(pair) as ws:
        fig = ws.waterfall(ws.busiest_session())
        out["waterfall.png"] = (_figure_digest(fig), fig)
    return out


def _screenshot(page: str, path: pathlib.Path, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("Chromium is needed to draw the findings picture (make chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "page.html"
        src.write_text(page, encoding="utf-8")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--no-first-run", f"--user-data-dir={tmp}/profile", f"--window-size=1200,{height}",
                        f"--screenshot={path}", src.as_uri()], check=True, capture_output=True, timeout=120)


def write(out_dir: str | os.PathLike) -> dict[str, str]:
    """Draw every picture into ``out_dir`` and write the manifest; returns {picture: sha256 of its source}."""
    from mcptrace.render.export import write_figure

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, (digest, src) in sources().items():
        if isinstance(src, str):
            _screenshot(src, out / name, height=900)
        else:
            write_figure(src, out / name)
        digests[name] = digest
    (out / MANIFEST).write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    return digests


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "img")
    for name, digest in write(target).items():
        print(f"{target}/{name}  source {digest[:12]}")
