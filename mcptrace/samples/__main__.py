"""Regenerate the sample data: ``python -m mcptrace.samples [TARGET_DIR] [--bare-dir DIR] [--otlp-dir DIR]``.

Starts, as separate OS processes on free loopback ports: the OTLP receiver (a thread here), the
downstream service, the MCP server over Streamable HTTP and the logging reverse proxy in front of it;
then runs, one after the other:

- scenario A: ``agent-host`` over stdio through the tee (SDK default mode, ``_meta["anthropic/session"]``);
- scenario B: ``ide-client`` over Streamable HTTP through the proxy (legacy mode, ``Mcp-Session-Id``);
- scenario C: ``plain-host`` over stdio through the tee, legacy mode, with NO tracing in the client
  (so no ``traceparent``, except one host-made all-zero one) and no session key; its server
  (``weather-mcp-plain``, traced) kills itself during ``crash_worker``, leaving that call unanswered
  (it force-flushes its finished spans first; the open ``crash_worker`` span is lost).

It then shuts everything down (each surviving process flushes its spans on exit) and writes:

- ``TARGET/agent_stdio.jsonl``   envelope JSONL of scenario A (stdio tee)
- ``TARGET/ide_http.jsonl``      envelope JSONL of scenario B (HTTP proxy)
- ``TARGET/plain_stdio.jsonl``   envelope JSONL of scenario C (stdio tee)
- ``TARGET/traces.otlp.jsonl``   OTLP/JSON (Collector file exporter) of every traced process
- ``BARE/agent_stdio.ndjson``    bare JSON-RPC NDJSON of scenario A (default BARE: TARGET/../bare)
- ``OTLP/traces.otlp.pb``        the same trace requests as the exporters sent them (OTLP/protobuf), in the
  Collector file exporter's ``format: proto`` framing (default OTLP: TARGET/../otlp; kept out of TARGET
  so that loading TARGET does not load every span twice)
- ``TARGET/../har/ide_http.har``  HAR 1.2 of scenario B, written by the same proxy run (``--har``)
- ``TARGET/../claude/mcp-server-weather.log``  scenario A's captured messages re-rendered in Claude
  Desktop's log layout (:mod:`mcptrace.samples.claude_log`; not written by Claude Desktop)
- ``TARGET/../inspector/inspector-{protocol,network}-weather-http.json``  scenario B's captured traffic
  re-rendered as MCP Inspector exports (:mod:`mcptrace.samples.inspector_export`; not written by the
  inspector)

The last three sit beside TARGET, not in it: they hold the same traffic as TARGET's files.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from mcptrace.core.errors import MissingDependencyError
from mcptrace.samples._deps import require_sample_deps

try:
    require_sample_deps()
except MissingDependencyError as _exc:
    if __name__ == "__main__":
        raise SystemExit(f"error: {_exc}") from None
    raise

import httpx  # noqa: E402

from mcptrace.samples._otel import ENDPOINT_ENV  # noqa: E402
from mcptrace.samples.otlp_receiver import OTLPReceiver  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE_LIMIT = 2 * 1024 * 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(otlp_endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env[ENDPOINT_ENV] = otlp_endpoint
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, proc.args))} exited early with code {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {url}")


def _stop(proc: subprocess.Popen[bytes], name: str, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"warning: {name} did not stop on SIGTERM; killing it", file=sys.stderr)
            proc.kill()
            proc.wait(timeout=5)


def _run_agent(cmd: list[str], env: dict[str, str], name: str) -> dict:
    res = subprocess.run(cmd, env=env, cwd=str(REPO_ROOT), stdout=subprocess.PIPE, timeout=60)
    lines = res.stdout.decode("utf-8", errors="replace").strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    if res.returncode != 0:
        bad = [c for c in summary.get("calls", []) if c["status"] != c["expect"]]
        raise RuntimeError(f"scenario {name} failed (exit {res.returncode}); unexpected outcomes: {bad}")
    return summary


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def _envelope_stats(path: Path) -> Counter:
    stats: Counter = Counter()
    for line in open(path, encoding="utf-8"):
        env = json.loads(line)
        msg = env.get("message")
        if isinstance(msg, dict):
            key = msg.get("method") or ("error" if "error" in msg else "result")
        else:
            key = "batch" if isinstance(msg, list) else "raw"
        stats[(env["direction"], key)] += 1
    return stats


def _span_stats(path: Path) -> Counter:
    stats: Counter = Counter()
    for line in open(path, encoding="utf-8"):
        doc = json.loads(line)
        for rs in doc.get("resourceSpans", []):
            attrs = {a["key"]: a["value"].get("stringValue") for a in rs.get("resource", {}).get("attributes", [])}
            for ss in rs.get("scopeSpans", []):
                stats[attrs.get("service.name", "?")] += len(ss.get("spans", []))
    return stats


def _count_frames(path: Path) -> int:
    data = path.read_bytes()
    pos = n = 0
    while pos + 4 <= len(data):
        pos += 4 + int.from_bytes(data[pos:pos + 4], "big")
        n += 1
    return n


def _render_other_formats(stdio_out: Path, http_out: Path, har_out: Path, claude_out: Path,
                          inspector_dir: Path) -> dict[str, int]:
    """Scenario A as a Claude Desktop log, scenario B as MCP Inspector exports (re-renderings)."""
    from mcptrace.samples import claude_log, inspector_export

    rendered = {str(claude_out): claude_log.render(stdio_out, claude_out)}
    for name, n in inspector_export.render(http_out, har_out, inspector_dir).items():
        rendered[str(inspector_dir / name)] = n
    return rendered


def generate(target: Path, bare_dir: Path, stdio_mode: str = "auto", http_mode: str = "legacy",
             otlp_dir: Path | None = None) -> dict:
    otlp_dir = otlp_dir if otlp_dir is not None else target.resolve().parent / "otlp"
    target.mkdir(parents=True, exist_ok=True)
    bare_dir.mkdir(parents=True, exist_ok=True)
    otlp_dir.mkdir(parents=True, exist_ok=True)
    stdio_out = target / "agent_stdio.jsonl"
    http_out = target / "ide_http.jsonl"
    plain_out = target / "plain_stdio.jsonl"
    traces_out = target / "traces.otlp.jsonl"
    bare_out = bare_dir / "agent_stdio.ndjson"
    proto_out = otlp_dir / "traces.otlp.pb"
    har_out = target.resolve().parent / "har" / "ide_http.har"
    claude_out = target.resolve().parent / "claude" / "mcp-server-weather.log"
    inspector_dir = target.resolve().parent / "inspector"
    har_out.parent.mkdir(parents=True, exist_ok=True)
    for p in (stdio_out, http_out, plain_out, traces_out, bare_out, proto_out):
        p.write_bytes(b"")  # the recorders append; every generation starts from empty files

    run_id = uuid.uuid4().hex[:8]
    session_key = str(uuid.uuid4())
    py = sys.executable
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    t0 = time.monotonic()

    receiver = OTLPReceiver(str(traces_out), proto_out_path=str(proto_out)).start()
    env = _env(receiver.endpoint)
    try:
        down_port, mcp_port, proxy_port = _free_port(), _free_port(), _free_port()
        downstream_url = f"http://127.0.0.1:{down_port}"
        down = subprocess.Popen(
            [py, "-m", "mcptrace.samples.downstream", "--port", str(down_port)], env=env, cwd=str(REPO_ROOT)
        )
        procs.append(("downstream", down))
        http_server = subprocess.Popen(
            [
                py,
                "-m",
                "mcptrace.samples.server",
                "--transport",
                "http",
                "--port",
                str(mcp_port),
                "--service-name",
                "weather-mcp-http",
                "--downstream",
                downstream_url,
            ],
            env=env,
            cwd=str(REPO_ROOT),
        )
        procs.append(("mcp-server-http", http_server))
        proxy = subprocess.Popen(
            [
                py,
                "-m",
                "mcptrace.capture.http",
                "--listen",
                f"127.0.0.1:{proxy_port}",
                "--upstream",
                f"http://127.0.0.1:{mcp_port}",
                "--out",
                str(http_out),
                "--har",
                str(har_out),
            ],
            env=env,
            cwd=str(REPO_ROOT),
        )
        procs.append(("http-proxy", proxy))
        _wait_http(f"{downstream_url}/healthz", down)
        _wait_http(f"http://127.0.0.1:{mcp_port}/", http_server)
        _wait_http(f"http://127.0.0.1:{proxy_port}/healthz", proxy)

        summary_a = _run_agent(
            [
                py,
                "-m",
                "mcptrace.samples.agent",
                "stdio",
                "--mode",
                stdio_mode,
                "--tee-out",
                str(stdio_out),
                "--bare",
                str(bare_out),
                "--connection-id",
                f"stdio:agent-host:{run_id}",
                "--session-key",
                session_key,
                "--downstream",
                downstream_url,
            ],
            env,
            "A (stdio)",
        )
        summary_b = _run_agent(
            [
                py,
                "-m",
                "mcptrace.samples.agent",
                "http",
                "--mode",
                http_mode,
                "--url",
                f"http://127.0.0.1:{proxy_port}/mcp",
            ],
            env,
            "B (streamable http)",
        )
        summary_c = _run_agent(
            [
                py,
                "-m",
                "mcptrace.samples.agent",
                "plain",
                "--mode",
                "legacy",
                "--tee-out",
                str(plain_out),
                "--connection-id",
                f"stdio:plain-host:{run_id}",
                "--server-service-name",
                "weather-mcp-plain",
                "--downstream",
                downstream_url,
            ],
            env,
            "C (stdio, no client tracing, server crash)",
        )
    finally:
        # Reverse start order: the proxy first, then the server (flushes its spans), then downstream.
        for name, proc in reversed(procs):
            _stop(proc, name)
        receiver.stop()

    rendered = _render_other_formats(stdio_out, http_out, har_out, claude_out, inspector_dir)
    files = {p: _count_lines(p) for p in (stdio_out, http_out, plain_out, traces_out, bare_out)}
    total = sum(p.stat().st_size for p in (stdio_out, http_out, plain_out, traces_out))
    if total > SIZE_LIMIT:
        print(f"warning: {target} holds {total} bytes (> 2 MB)", file=sys.stderr)
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "files": files,
        "proto_frames": {proto_out: _count_frames(proto_out)},
        "rendered": rendered,
        "har": str(har_out),
        "bytes": total,
        "session_key": session_key,
        "scenarios": [
            {**summary_a, "label": "A", "file": str(stdio_out)},
            {**summary_b, "label": "B", "file": str(http_out)},
            {**summary_c, "label": "C", "file": str(plain_out)},
        ],
        "envelopes": {str(p): _envelope_stats(p) for p in (stdio_out, http_out, plain_out)},
        "spans": _span_stats(traces_out),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default="data/samples", help="output directory (default data/samples)")
    parser.add_argument("--bare-dir", default=None, help="where agent_stdio.ndjson goes (default TARGET/../bare)")
    parser.add_argument("--otlp-dir", default=None, help="where traces.otlp.pb goes (default TARGET/../otlp)")
    parser.add_argument(
        "--stdio-mode", default="auto", help="SDK connect mode of scenario A (auto = the SDK default; or legacy)"
    )
    parser.add_argument("--http-mode", default="legacy", help="SDK connect mode of scenario B (legacy by default)")
    parser.add_argument("--json", action="store_true", help="print the full summary as JSON")
    args = parser.parse_args(argv)
    target = Path(args.target)
    bare_dir = Path(args.bare_dir) if args.bare_dir else target.resolve().parent / "bare"
    otlp_dir = Path(args.otlp_dir) if args.otlp_dir else target.resolve().parent / "otlp"
    result = generate(target, bare_dir, args.stdio_mode, args.http_mode, otlp_dir)

    if args.json:
        out = dict(result)
        out["files"] = {str(p): n for p, n in result["files"].items()}  # Path keys are not JSON keys
        out["proto_frames"] = {str(p): n for p, n in result["proto_frames"].items()}
        out["envelopes"] = {f: {f"{d} {k}": n for (d, k), n in c.items()} for f, c in result["envelopes"].items()}
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"generated in {result['seconds']} s ({result['bytes']} bytes in {target})")
    for path, n in result["files"].items():
        print(f"  {path}: {n} lines")
    for path, n in result["proto_frames"].items():
        print(f"  {path}: {n} protobuf frames")
    print(f"  {result['har']}: HAR of scenario B")
    for path, n in result["rendered"].items():
        print(f"  {path}: {n} entries/messages (re-rendered)")
    for s in result["scenarios"]:
        counts = Counter(c["status"] for c in s["calls"])
        turns = len({c["turn"] for c in s["calls"]})
        print(
            f"  scenario {s['label']} {s['scenario']} ({s['service']} -> {Path(s['file']).name}): "
            f"{turns} turns, {len(s['calls'])} calls, {dict(counts)}"
        )
    for path, stats in result["envelopes"].items():
        by_dir: Counter[str] = Counter()
        for (direction, _key), n in stats.items():
            by_dir[direction] += n
        print(f"  {Path(path).name}: " + ", ".join(f"{d} {n}" for d, n in sorted(by_dir.items())))
    print("  spans per service: " + ", ".join(f"{k}={v}" for k, v in sorted(result["spans"].items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
