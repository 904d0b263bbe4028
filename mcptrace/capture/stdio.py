"""stdio tee: run an MCP server command, pass its stdio through unchanged, record every line.

    python -m mcptrace.capture.stdio --out FILE --connection-id ID [--bare FILE] -- COMMAND ARGS...

Bytes flow through unchanged in both directions (our stdin -> child stdin, child stdout -> our
stdout); the child's stderr is inherited. Every line read is appended to ``--out`` as an envelope::

    {"ts": "...Z", "direction": "client_to_server"|"server_to_client", "transport": "stdio",
     "connection_id": ID, "message": <parsed JSON-RPC object or array>}

A line that is not JSON gets ``"message": null, "raw": "<text>"``. ``--bare FILE`` additionally
appends every raw line (both directions, arrival order, exactly as on the wire) - a bare JSON-RPC
NDJSON capture. SIGTERM/SIGINT are forwarded to the child; the exit code is the child's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from typing import IO

from mcptrace.capture._common import CLIENT_TO_SERVER, SERVER_TO_CLIENT, JsonlWriter, parse_json_message, utc_now


class StdioTee:
    """Spawn ``command`` and pump its stdio, recording lines as envelopes (and optionally bare)."""

    def __init__(self, command: list[str], out: str, connection_id: str, bare: str | None = None) -> None:
        self.command = command
        self.connection_id = connection_id
        self._env_writer = JsonlWriter(out)
        self._bare: IO[bytes] | None = open(bare, "ab") if bare else None  # noqa: SIM115
        self._bare_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    # -- recording -------------------------------------------------------------------------------
    def _record(self, direction: str, line: bytes, ts: str) -> None:
        if self._bare is not None:
            with self._bare_lock:
                # A final line without its newline (peer died mid-line) still ends its record here, so it
                # cannot fuse with the next line from the other direction.
                self._bare.write(line if line.endswith(b"\n") else line + b"\n")
                self._bare.flush()
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text.strip():
            return  # blank line: nothing to record as a message
        envelope: dict[str, object] = {
            "ts": ts,
            "direction": direction,
            "transport": "stdio",
            "connection_id": self.connection_id,
        }
        message, ok = parse_json_message(text)
        envelope["message"] = message if ok else None
        if not ok:
            envelope["raw"] = text
        self._env_writer.write(envelope)

    # -- pumps -----------------------------------------------------------------------------------
    def _pump(self, src: IO[bytes], dst: IO[bytes] | None, direction: str, close_dst: bool) -> None:
        try:
            while True:
                line = src.readline()
                if not line:
                    break
                ts = utc_now()
                if dst is not None:
                    try:
                        dst.write(line)
                        dst.flush()
                    except (BrokenPipeError, OSError, ValueError):
                        dst = None  # the peer is gone; keep recording what we read
                self._record(direction, line, ts)
        except (OSError, ValueError):
            pass
        finally:
            if close_dst and dst is not None:
                try:
                    dst.close()
                except OSError:
                    pass

    def _forward_signal(self, signum: int, _frame: object) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        self._proc = proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert proc.stdin is not None and proc.stdout is not None
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._forward_signal)

        stdin = sys.stdin.buffer
        stdout = sys.stdout.buffer
        to_child = threading.Thread(
            target=self._pump, args=(stdin, proc.stdin, CLIENT_TO_SERVER, True), name="tee-c2s", daemon=True
        )
        from_child = threading.Thread(
            target=self._pump, args=(proc.stdout, stdout, SERVER_TO_CLIENT, False), name="tee-s2c", daemon=True
        )
        to_child.start()
        from_child.start()

        while True:
            try:
                rc = proc.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
                continue
        from_child.join(timeout=5)  # drain what the child wrote before it exited
        self.close()
        if rc < 0:  # killed by a signal: shell convention
            return 128 - rc
        return rc

    def close(self) -> None:
        self._env_writer.close()
        if self._bare is not None:
            with self._bare_lock:
                self._bare.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mcptrace.capture.stdio",
        description="stdio tee for MCP servers: passes bytes through and writes envelope JSONL.",
    )
    parser.add_argument("--out", required=True, help="envelope JSONL file (appended)")
    parser.add_argument("--connection-id", required=True, help="connection_id written into every envelope")
    parser.add_argument("--bare", help="also append every raw line here (bare JSON-RPC NDJSON)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("missing COMMAND after --")
    tee = StdioTee(command, out=args.out, connection_id=args.connection_id, bare=args.bare)
    try:
        return tee.run()
    except FileNotFoundError as exc:
        print(f"mcptrace.capture.stdio: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Daemon pump threads may still sit in a blocking read of our stdin; do not wait for them.
    os._exit(code)
