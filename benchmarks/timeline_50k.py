"""Charts of one 50k-call session: timeline, waterfall and explorer at incident scale (issue #7).

    .venv/bin/python benchmarks/timeline_50k.py [--calls 50000] [--out out/bench/timeline_50k] [--reuse-db] [--browser]

1. Data: the agent sample (``data/samples/agent_stdio.jsonl`` and its spans in
   ``data/samples/traces.otlp.jsonl``) repeated with ONE session key (``benchmarks/scale.py``,
   :func:`scale.scale_session`: ``_meta["anthropic/session"]`` and ``gen_ai.conversation.id``
   kept, everything else fresh per copy), cached in ``--out``; loaded with ``mcptrace.load`` into
   ``--out/timeline_50k.duckdb`` (afresh unless ``--reuse-db``). The script checks that the
   busiest session really holds ``--calls`` calls under one session key.
2. ``mcptrace timeline --db DB --session ID --out timeline.html`` as a CLI user runs it (a
   subprocess of ``.venv/bin/mcptrace``; the seconds include interpreter start and imports), and
   the HTML's size. Budget: under 10 s and 20 MB.
3. ``mcptrace tree ... --out waterfall.html``: the per-turn waterfall of that session (it is above
   ``mcptrace.render.waterfall.AGGREGATE_ABOVE`` calls), and a drill-down (``--call ID``: one turn's rows).
4. The explorer: ``ExplorerModel`` opening the session (what the widget asks it for on a session
   pick: filter choices, summary, the capped call and gap lists, the turn picker, the timeline and
   the per-turn waterfall figures), and the whole ``ExplorerWidget`` built on it (then the
   waterfall tab with a drill-down, then a filter), in-process on a freshly opened database
   (imports done first, as in a notebook).
5. With ``--browser``: headless Debian Chromium opens the timeline HTML and takes a screenshot
   (``timeline.png``), i.e. the browser parsed and painted it (WebGL through SwiftShader).

Times drift +-25% run to run on the shared 2-core machines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import scale_session  # noqa: E402

TIMELINE_BUDGET_S = 10.0
TIMELINE_BUDGET_MB = 20.0


def _cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    exe = os.path.join(os.path.dirname(sys.executable), "mcptrace")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "mcptrace"]
    t = time.perf_counter()
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"mcptrace {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return took, r


def _mb(path: str) -> float:
    return os.path.getsize(path) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50_000, help="calls in the one session (default 50000)")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench", "timeline_50k"),
                    help="directory for the capture, the database and the charts")
    ap.add_argument("--reuse-db", action="store_true", help="keep the database of an earlier run (skip the load)")
    ap.add_argument("--browser", action="store_true", help="also open the timeline HTML in headless Chromium")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import mcptrace
    import mcptrace.workspace  # noqa: F401 - the package imports it on first use: outside the timings
    from mcptrace.explorer import ExplorerModel, ExplorerWidget, figure_output
    from mcptrace.analysis.lanes import call_lanes

    rows: list[tuple[str, float, float | None]] = []
    t = time.perf_counter()
    envelope, traces = scale_session(args.out, args.calls)
    print(f"capture   {envelope} ({_mb(envelope):.1f} MB), {traces} ({_mb(traces):.1f} MB) "
          f"[{time.perf_counter() - t:.1f} s]")
    db = os.path.join(args.out, "timeline_50k.duckdb")
    if not (args.reuse_db and os.path.exists(db)):
        for suffix in ("", ".wal"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        t = time.perf_counter()
        mcptrace.load([envelope, traces], db=db).close()
        rows.append(("load (mcptrace.load, in-process)", time.perf_counter() - t, None))

    with mcptrace.open(db) as ws:
        sid, key, n_calls, n_transports, max_parallel, n_gaps = ws.sql(
            "SELECT session_id, session_key, n_calls, n_transport_sessions, max_parallel, n_gaps FROM sessions "
            "ORDER BY n_calls DESC LIMIT 1").rows()[0]
        n_keys = ws.sql("SELECT count(DISTINCT request_session_key) FROM calls WHERE session_id = ?", [sid]).rows()[0][0]
        n_turns = len(ws.turns(sid))
        t = time.perf_counter()
        lanes = call_lanes(ws.con, sid)
        rows.append(("lanes in SQL (call_lanes)", time.perf_counter() - t, None))
        n_lanes = max(r[1] for r in lanes.rows()) + 1
        call = ws.sql("SELECT call_id FROM calls WHERE session_id = ? AND status = 'cancelled' ORDER BY start_ord "
                      "LIMIT 1 OFFSET ?", [sid, n_calls // 28]).rows()[0][0]
    print(f"session   {sid}: {n_calls} calls, {n_turns} turns, {n_transports} transport sessions, "
          f"{n_keys} session key ({key}), max {max_parallel} in flight, {n_lanes} lanes, {n_gaps} gaps")
    if n_calls < args.calls or n_keys != 1:
        print(f"error: expected one session of at least {args.calls} calls under one key", file=sys.stderr)
        return 1

    html_path = os.path.join(args.out, "timeline.html")
    took, _r = _cli("timeline", "--db", db, "--session", sid, "--out", html_path)
    rows.append(("mcptrace timeline -> HTML (CLI)", took, _mb(html_path)))
    timeline_s, timeline_mb = took, _mb(html_path)
    wf_path = os.path.join(args.out, "waterfall.html")
    took, _r = _cli("tree", "--db", db, "--session", sid, "--out", wf_path)
    rows.append(("mcptrace tree -> HTML, one row per turn (CLI)", took, _mb(wf_path)))
    turn_path = os.path.join(args.out, "waterfall_turn.html")
    took, _r = _cli("tree", "--db", db, "--session", sid, "--call", str(call), "--out", turn_path)
    rows.append((f"mcptrace tree --call {call} -> HTML, one turn (CLI)", took, _mb(turn_path)))

    with mcptrace.open(db) as ws:
        t = time.perf_counter()
        m = ExplorerModel(ws.con)
        m.session_options()
        m.filter_choices(sid)
        m.session_summary_html(sid)
        m.call_options(sid)
        m.gap_options(sid)
        m.turn_options(sid)
        rows.append(("explorer model: open session (lists, choices, turns)", time.perf_counter() - t, None))
        t = time.perf_counter()
        figure_output(m.timeline(sid))
        rows.append(("explorer model: timeline figure for the widget", time.perf_counter() - t, None))
        t = time.perf_counter()
        figure_output(m.waterfall(sid))
        rows.append(("explorer model: per-turn waterfall for the widget", time.perf_counter() - t, None))
        t = time.perf_counter()
        figure_output(m.waterfall(sid, turn=m.turn_of(sid, call)))
        rows.append(("explorer model: drill down to one turn", time.perf_counter() - t, None))
    with mcptrace.open(db) as ws:
        t = time.perf_counter()
        ex = ExplorerWidget(ws.con, sid)
        rows.append(("explorer widget: open session (timeline tab drawn)", time.perf_counter() - t, None))
        t = time.perf_counter()
        ex.figure_tabs.selected_index = 1
        ex.call_list.value = ex.call_list.options[min(40, len(ex.call_list.options) - 1)][1]
        rows.append(("explorer widget: waterfall tab, then pick a call (drill down)", time.perf_counter() - t, None))
        shown = len(ex.call_list.options)
        t = time.perf_counter()
        ex.figure_tabs.selected_index = 0
        ex.status_filter.value = "error"
        rows.append(("explorer widget: timeline tab, filter status=error", time.perf_counter() - t, None))

    if args.browser:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            print("no chromium on the PATH: --browser skipped", file=sys.stderr)
        else:
            png = os.path.join(args.out, "timeline.png")
            with tempfile.TemporaryDirectory() as profile:
                t = time.perf_counter()
                r = subprocess.run([chromium, "--headless", "--no-sandbox", "--enable-unsafe-swiftshader",
                                    "--use-angle=swiftshader", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync", "--no-first-run",
                                    f"--user-data-dir={profile}", "--window-size=1400,1000", f"--screenshot={png}",
                                    "file://" + os.path.abspath(html_path)], capture_output=True, text=True, timeout=300)
            ok = r.returncode == 0 and os.path.exists(png)
            rows.append((f"chromium: open timeline.html, screenshot ({'ok' if ok else 'FAILED'})",
                         time.perf_counter() - t, None))

    print(f"\n{'what':<62} {'s':>7} {'MB':>7}")
    for what, s, mb in rows:
        print(f"{what:<62} {s:>7.2f} {'' if mb is None else f'{mb:.1f}':>7}")
    print(f"\n(explorer call list shows {shown} of {n_calls} calls; charts in {args.out})")
    within = timeline_s < TIMELINE_BUDGET_S and timeline_mb < TIMELINE_BUDGET_MB
    print(f"timeline budget (< {TIMELINE_BUDGET_S:.0f} s, < {TIMELINE_BUDGET_MB:.0f} MB): {'met' if within else 'MISSED'}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
