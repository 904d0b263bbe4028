"""Running one incident situation: ports, environment, processes and the cleanup of every process a
situation started (``_Run``). Used by :mod:`mcptrace.samples.incidents` and its situation runners."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE_LIMIT = 1024 * 1024
PID_DIR_ENV = "MCPTRACE_INCIDENT_PID_DIR"
ENDPOINT_ENV = "MCPTRACE_SAMPLES_OTLP_ENDPOINT"
AGENT_TIMEOUT = 60


from mcptrace.samples.situations import Situation  # noqa: E402


# -- process plumbing -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(otlp_endpoint: str, pid_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env[ENDPOINT_ENV] = otlp_endpoint
    env[PID_DIR_ENV] = str(pid_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("OTEL_RESOURCE_ATTRIBUTES", None)
    return env


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    from mcptrace.samples.__main__ import _wait_http as wait

    wait(url, proc, timeout)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _belongs_to(pid: int, pid_dir: Path) -> bool:
    """Whether ``pid`` is still one of this situation's processes (its environment names ``pid_dir``)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{PID_DIR_ENV}={pid_dir}".encode() in environ


def _reap_stragglers(pid_dir: Path) -> list[int]:
    """SIGKILL the recorded server processes (and their tees) of this situation that are still alive.

    Each incident server writes ``<pid> <parent pid (the tee)>`` into ``pid_dir``; a pid is only killed
    while its environment still carries this situation's ``pid_dir`` (so a recycled pid is left alone).
    """
    killed = []
    for f in sorted(pid_dir.iterdir()):
        for pid in map(int, f.read_text().split()):
            if _belongs_to(pid, pid_dir):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
    return killed


@dataclass
class _Run:
    """One situation's run: its files, receiver endpoint and the processes it started."""

    sit: Situation
    target: Path
    work: Path
    run_id: str
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def envelopes(self) -> Path:
        return self.target / f"{self.sit.name}.jsonl"

    @property
    def otlp(self) -> Path:
        return self.target / f"{self.sit.name}.otlp.jsonl"

    def popen(self, *args: str, capture: bool = False, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``python ARGS`` in its own session (``env`` added to the run's environment); stderr (and
        stdout unless captured) go to a log file."""
        log = self.work / f"{len(self.procs)}-{args[1].rsplit('.', 1)[-1]}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, *args], env={**self.env, **(env or {})}, cwd=str(REPO_ROOT),
                stdout=subprocess.PIPE if capture else fh, stderr=fh, start_new_session=True,
            )
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def http_server(self, port: int, *flags: str, process: str | None = None) -> subprocess.Popen[bytes]:
        """The incident server over Streamable HTTP on ``port`` (``flags`` before its ``--``); ``process``
        names it in the resource attribute ``mcptrace.sample.process``."""
        env = {"OTEL_RESOURCE_ATTRIBUTES": f"mcptrace.sample.process={process}"} if process else None
        return self.popen("-m", "mcptrace.samples.incident_server", *flags, "--", "--transport", "http",
                          "--port", str(port), "--service-name", self.sit.server, env=env)

    def http_proxy(self, proxy_port: int, mcp_port: int) -> subprocess.Popen[bytes]:
        """The recording proxy on ``proxy_port`` in front of the server on ``mcp_port``, writing the envelopes."""
        return self.popen("-m", "mcptrace.capture.http", "--listen", f"127.0.0.1:{proxy_port}",
                          "--upstream", f"http://127.0.0.1:{mcp_port}", "--out", str(self.envelopes))

    def serve_http(self, services: list[subprocess.Popen[bytes]], *flags: str,
                   process: str | None = None) -> tuple[str, int, subprocess.Popen[bytes]]:
        """Start the HTTP server and the proxy in front of it (added to ``services``), wait until both
        answer; returns (the proxy's MCP URL, the server's port, the server process)."""
        mcp_port, proxy_port = _free_port(), _free_port()
        server = self.http_server(mcp_port, *flags, process=process)
        services.append(server)
        proxy = self.http_proxy(proxy_port, mcp_port)
        services.append(proxy)
        _wait_http(f"http://127.0.0.1:{mcp_port}/", server)
        _wait_http(f"http://127.0.0.1:{proxy_port}/healthz", proxy)
        return f"http://127.0.0.1:{proxy_port}/mcp", mcp_port, server

    @staticmethod
    def log_tail(proc: subprocess.Popen[bytes], n: int = 3000) -> str:
        try:
            return Path(proc.log).read_text(errors="replace")[-n:]  # type: ignore[attr-defined]
        except OSError:
            return ""

    def agent(self, i: int, *extra: str) -> subprocess.Popen[bytes]:
        sit = self.sit
        client = sit.clients[i]
        key_name = sit.key_names[i] if i < len(sit.key_names) else None
        args = ["-m", "mcptrace.samples.incident_agent", sit.name if sit.transport == "stdio" else "stateless_client",
                "--service-name", client, "--server-service-name", sit.server, *sit.agent_args, *extra]
        if sit.transport == "stdio":
            args += ["--tee-out", str(self.envelopes), "--connection-id", f"stdio:{client}:{self.run_id}"]
        if key_name:
            args += ["--session-key-name", key_name, "--session-key", str(uuid.uuid4())]
        if i < len(sit.no_tracing) and sit.no_tracing[i]:
            args.append("--no-tracing")
        return self.popen(*args, capture=True)

    def finish_agents(self, agents: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
        summaries = []
        for proc in agents:
            try:
                out, _ = proc.communicate(timeout=AGENT_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=10)
                raise RuntimeError(f"{self.sit.name}: client timed out\n{self.log_tail(proc)}") from None
            lines = out.decode("utf-8", errors="replace").strip().splitlines()
            try:
                summary = json.loads(lines[-1]) if lines else {}
            except ValueError:
                summary = {}
            if proc.returncode != 0:
                bad = [c for c in summary.get("calls", []) if c["status"] != c["expect"]]
                raise RuntimeError(
                    f"{self.sit.name}: client exited {proc.returncode}; unexpected outcomes {bad}\n"
                    + self.log_tail(proc)
                )
            summaries.append(summary)
        return summaries
