"""Incident captures: ``python -m mcptrace.samples.incidents [TARGET_DIR] [--jobs N] [--json]``.

One small real capture per correlation situation (see ``SITUATIONS``), each a pair of files named
after the situation:

- ``TARGET/<situation>.jsonl``       envelope JSONL, from the stdio tee or the Streamable HTTP proxy
- ``TARGET/<situation>.otlp.jsonl``  OTLP/JSON (Collector file exporter lines) of every process of the
  situation, as their real OTLP/HTTP exporters sent them to a receiver of its own

and ``TARGET/README.md`` describing them. Everything comes from real processes: the official MCP SDK
``Client`` (``mcptrace.samples.incident_agent``) and ``MCPServer`` (``mcptrace.samples.incident_server``,
the sample weather server plus a few buggy tools and a non-extracting OpenTelemetry middleware), the
downstream HTTP service, the recorders ``mcptrace.capture.stdio`` / ``mcptrace.capture.http``. The
misbehaviour is the processes' own (a server that dies or is SIGKILLed mid-call, a tool that writes a
raw line onto the wire, a client that times out), never an edit of the files afterwards.

Situations run in parallel (``--jobs``, default 4), each with its own OTLP receiver, ports and
processes; every process a situation started is ended when it finishes. ``fingerprint(TARGET)``
gives the structure (envelope counts per direction/method, span counts per service/kind, stdio
connection count) that must be identical between runs; ``verify(TARGET)`` checks that each capture
shows what its situation is about.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mcptrace.samples.incident_run import (  # noqa: F401 - re-exported
    AGENT_TIMEOUT, ENDPOINT_ENV, PID_DIR_ENV, REPO_ROOT, SIZE_LIMIT, _env, _free_port, _reap_stragglers, _Run, _stop,
    _wait_http,
)
from mcptrace.samples.situations import BY_NAME, SITUATIONS, Situation  # noqa: F401 - re-exported
from mcptrace.samples import incidents_http, incidents_partial
from mcptrace.samples import incident_checks
# the structure and the checks of the captures live in incident_checks; re-exported here
from mcptrace.samples.incident_checks import (  # noqa: F401
    KIND, _key, _meta, _requests, _responses, _same_trace, _tp, fingerprint, load_envelopes, load_spans,
    message_kind, wire_sequence,
)

#: the checks of the situations that have their own runner, by situation name
EXTRA_CHECKS = {**incidents_partial.CHECKS, **incidents_http.CHECKS}


def verify(target: Path, *, only: list[str] | None = None) -> list[str]:
    """Check that every capture shows its situation (or only those named in ``only``); returns the problems
    found (empty when all is well). See :func:`mcptrace.samples.incident_checks.verify`."""
    return incident_checks.verify(target, EXTRA_CHECKS, only=only)


def _run_situation(sit: Situation, target: Path, work_root: Path, run_id: str) -> dict[str, Any]:
    from mcptrace.samples.otlp_receiver import OTLPReceiver

    run = _Run(sit, target, work_root / sit.name, run_id)
    pid_dir = run.work / "pids"
    pid_dir.mkdir(parents=True)
    for p in (run.envelopes, run.otlp):
        p.write_bytes(b"")  # the recorders and the receiver append
    t0 = time.monotonic()
    receiver = OTLPReceiver(str(run.otlp), fail_first=sit.otlp_fail_first).start()
    run.env = _env(receiver.endpoint, pid_dir)
    services: list[subprocess.Popen[bytes]] = []
    try:
        extra: list[str] = []
        if sit.downstream:
            port = _free_port()
            down = run.popen("-m", "mcptrace.samples.downstream", "--port", str(port))
            services.append(down)
            _wait_http(f"http://127.0.0.1:{port}/healthz", down)
            extra += ["--downstream", f"http://127.0.0.1:{port}"]
        if sit.name == "server_killed_mid_call":
            extra += ["--ready-file", str(run.work / "hang.ready")]
        if sit.name in incidents_partial.RUNNERS:
            summaries = incidents_partial.RUNNERS[sit.name](run, services)
        elif sit.name in incidents_http.RUNNERS:
            summaries = incidents_http.RUNNERS[sit.name](run, services)
        elif sit.transport == "stdio":
            summaries = run.finish_agents([run.agent(0, *extra)])
        else:
            url, _port, _server = run.serve_http(services)
            summaries = run.finish_agents([run.agent(i, "--url", url) for i in range(len(sit.clients))])
    finally:
        # the proxy first, then the server (flushes its spans on SIGTERM), then downstream
        for proc in reversed(services):
            _stop(proc)
        for proc in run.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        stragglers = _reap_stragglers(pid_dir)
        receiver.stop()
    return {"situation": sit.name, "seconds": round(time.monotonic() - t0, 1), "clients": summaries,
            "stragglers_killed": stragglers}


# -- README -------------------------------------------------------------------------------------------


def render_readme(fp: dict[str, dict[str, Any]]) -> str:
    """The README of the incident directory: deterministic (prose and structure counts, nothing per run)."""
    lines = [
        "# Incident captures",
        "",
        "Generated by `python -m mcptrace.samples.incidents data/incidents` (do not edit by hand). One small "
        "real capture per correlation situation: real MCP Python SDK (2.x) client and server processes with "
        "OpenTelemetry on, recorded by mcptrace's stdio tee (`mcptrace.capture.stdio`) or Streamable HTTP "
        "logging proxy (`mcptrace.capture.http`); each process exports its spans with the OTLP/HTTP exporter "
        "to a receiver that writes Collector file-exporter JSON lines. Misbehaviour comes from the processes "
        "themselves (killed servers, buggy tools writing raw lines to stdout, a non-extracting middleware, a "
        "client timeout), never from editing the files.",
        "",
        "Per situation `<name>.jsonl` is the envelope JSONL capture and `<name>.otlp.jsonl` holds the spans of "
        "every process of that situation. Load one pair, or the whole directory, with `mcptrace.load(...)`.",
        "Timestamps, ids, trace ids and session keys change on every run; the structure below does not "
        "(`tests/test_incidents_generator.py` regenerates and compares it; `verify()` in "
        "`mcptrace/samples/incidents.py` checks each property stated here).",
        "",
        "| situation | expected gap codes (the README's gap codes) |",
        "| --- | --- |",
    ]
    for sit in SITUATIONS:
        maybe = f" (depending on timing also {', '.join(f'`{g}`' for g in sit.maybe_gaps)})" if sit.maybe_gaps else ""
        lines.append(f"| [`{sit.name}`](#{sit.name}) | {', '.join(f'`{g}`' for g in sit.gaps) or '— (none)'}{maybe} |")
    for sit in SITUATIONS:
        f = fp.get(sit.name, {})
        lines += ["", f"## {sit.name}", "", f"**{sit.title}.**", "",
                  f"- Files: `{sit.name}.jsonl`, `{sit.name}.otlp.jsonl`",
                  f"- Processes: {sit.processes}",
                  f"- On the wire: {sit.wire}"]
        if sit.notes:
            lines.append(f"- Notes: {sit.notes}")
        maybe = f"; depending on timing also {', '.join(f'`{g}`' for g in sit.maybe_gaps)}" if sit.maybe_gaps else ""
        lines.append(f"- Expected gap codes: {', '.join(f'`{g}`' for g in sit.gaps) or 'none'}{maybe}")
        env_counts = ", ".join(f"{k.replace('client_to_server ', '→ ').replace('server_to_client ', '← ')} ×{n}"
                               for k, n in f.get("envelopes", {}).items())
        span_counts = ", ".join(f"{k} ×{n}" for k, n in f.get("spans", {}).items())
        lines.append(f"- Messages: {env_counts}")
        lines.append(f"- Spans: {span_counts}")
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------------------


#: times a situation whose own checks fail is run again, alone (see :func:`generate`)
RERUNS = 2


def generate(target: Path, jobs: int = 4, only: list[str] | None = None) -> dict[str, Any]:
    """Run the situations (every one, or those named in ``only``), ``jobs`` at a time, into ``target``, check
    their captures (:func:`verify`), run a situation whose checks fail again alone (up to :data:`RERUNS`
    times), and write ``target/README.md`` when every situation ran. Returns ``seconds``, ``bytes``,
    ``runs`` (per situation: ``seconds``, ``clients``, ``stragglers_killed``, ``reruns`` when run again),
    ``fingerprint``, ``sequences`` and ``problems`` (empty when all is well). Raises
    :class:`mcptrace.core.errors.MissingDependencyError` without the ``samples`` extra."""
    from mcptrace.samples._deps import require_sample_deps

    require_sample_deps()
    only = list(only) if only else None  # none named: every situation
    target.mkdir(parents=True, exist_ok=True)
    sits = [s for s in SITUATIONS if not only or s.name in only]
    run_id = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mcptrace-incidents-"))
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {s.name: pool.submit(_run_situation, s, target, work, run_id) for s in sits}
            results = {name: fut.result() for name, fut in futures.items()}
        problems = verify(target, only=only)
        # A situation whose capture misses its point because of timing (a 0.5 s client timeout that
        # fires late while parallel runs start their processes) runs again, alone on the machine.
        for attempt in range(1, RERUNS + 1):
            again = [s for s in sits if any(p.startswith(f"{s.name}: ") for p in problems)]
            if not again:
                break
            for sit in again:
                results[sit.name] = _run_situation(sit, target, work / f"rerun-{attempt}", run_id)
                results[sit.name]["reruns"] = attempt
            problems = verify(target, only=only)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fp = fingerprint(target)
    sequences = {s.name: wire_sequence(target / f"{s.name}.jsonl") for s in SITUATIONS
                 if (target / f"{s.name}.jsonl").exists()}
    if not only:
        (target / "README.md").write_text(render_readme(fp), encoding="utf-8")
    total = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
    if total > SIZE_LIMIT:
        problems.append(f"{target} holds {total} bytes (> 1 MB)")
    return {"seconds": round(time.monotonic() - t0, 1), "bytes": total, "runs": results, "fingerprint": fp,
            "sequences": sequences, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.incidents", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default="data/incidents")
    parser.add_argument("--jobs", type=int, default=4, help="situations run in parallel (default 4)")
    parser.add_argument("--only", action="append", choices=[s.name for s in SITUATIONS],
                        help="run only this situation (repeatable; its checks, no README)")
    parser.add_argument("--json", action="store_true", help="print the full summary as JSON")
    parser.add_argument("--fingerprint", action="store_true", help="print the fingerprint of TARGET and exit")
    args = parser.parse_args(argv)
    target = Path(args.target)
    if args.fingerprint:
        print(json.dumps(fingerprint(target), indent=1, sort_keys=True))
        return 0
    result = generate(target, args.jobs, args.only)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print(f"generated in {result['seconds']} s ({result['bytes']} bytes in {target})")
        for name, f in result["fingerprint"].items():
            if args.only and name not in args.only:
                continue
            n_env = sum(f.get("envelopes", {}).values())
            n_spans = sum(f.get("spans", {}).values())
            print(f"  {name}: {n_env} messages, {n_spans} spans ({result['runs'][name]['seconds']} s)")
    for p in result["problems"]:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
