"""stdio tee: run an MCP server command, pass its stdio through unchanged, record every line.

    mcptrace capture stdio --out FILE [--connection-id ID] [--stderr-out FILE] -- COMMAND ARGS...
    python -m mcptrace.capture.stdio --out FILE [--connection-id ID] [--bare FILE] -- COMMAND ARGS...

Configure it in the host in place of the server command. Bytes flow through unchanged in both
directions (our stdin -> the child's stdin, the child's stdout -> our stdout): each chunk is
forwarded as soon as it is read, with no re-encoding and no waiting for a line end. Every complete
line is appended to ``--out`` as an envelope::

    {"ts": "...Z", "direction": "client_to_server"|"server_to_client", "transport": "stdio",
     "connection_id": ID, "message": <parsed JSON-RPC object or array>}

``ts`` is taken when the chunk that completed the line was read, and the timestamp and the write
happen under one lock shared by both directions, so the file order is the timestamp order; a line
is on disk before it is forwarded, so a response can never precede its request in the file. A line
that is not JSON gets ``"message": null, "raw": "<text>"``; blank lines are passed through, not
recorded. The file is written with one ``write(2)`` per line (nothing buffered in the process), so
a crash loses at most the line in flight; an existing file is appended to.

The default connection id is fresh per process: ``stdio:<command name>:<8 hex>``. The child's
stderr is passed through (inherited); with ``--stderr-out FILE`` it is also appended there, one
``<ts> <connection id> <line>`` per line. ``--bare FILE`` additionally appends every raw line (both
directions, in the envelope order, as on the wire but for redacted credentials): a bare JSON-RPC
NDJSON capture.

What is written to every file is redacted by :class:`~mcptrace.core.redact.RedactionPolicy` (the
loader's policy: ``_meta.access_token``, an argument ``api_key``, a password in a DSN, an
``Authorization:`` line on stderr ...) unless ``--no-redact``; ``--secret-keys`` sets its key
pattern. The bytes passed between host and server are never changed.

SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to the child, which runs in its
own process group, so a signal to our whole group (the host's ``killpg``, Ctrl-C in a terminal)
reaches it once, through us. On Linux the child is killed if the tee itself is (SIGKILL cannot be
forwarded), as it would be if it shared the tee's group; elsewhere it is left with its stdin
closed. The exit code is the child's (128 + N when a signal N ended it; 127 when the command cannot
be run).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
from typing import Any

from mcptrace.capture._common import (
    CLIENT_TO_SERVER,
    SERVER_TO_CLIENT,
    JsonlWriter,
    default_connection_id,
    parse_json_message,
    utc_now,
)
from mcptrace.capture.options import add_stdio_arguments, redaction_from_args
from mcptrace.core.redact import RedactionPolicy

FORWARDED_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)
CHUNK = 64 * 1024
#: A line longer than this is not kept whole for the record (it is still forwarded whole).
MAX_LINE = 32 * 1024 * 1024
_RAW_PREFIX = 4096


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _parent_death_signal(parent: int):
    """Linux: make the child die with the tee (SIGKILL included), as it would in the tee's process group."""

    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here: the child only calls it
    except (ImportError, OSError, AttributeError):
        return None

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        if prctl(1, signal.SIGKILL, 0, 0, 0) == 0 and os.getppid() != parent:  # 1 = PR_SET_PDEATHSIG
            os._exit(1)  # the tee died before prctl took effect

    return preexec


class _LineSplitter:
    """Cuts a byte stream into lines; a line over ``MAX_LINE`` bytes keeps only a prefix for the record."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.total = 0  # bytes of the current line so far

    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        """The lines completed by ``chunk`` as ``(bytes incl. the newline, n_bytes_dropped)``."""
        lines: list[tuple[bytes, int]] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            self._add(chunk[start : nl + 1])
            lines.append(self._take())
            start = nl + 1
        if start < len(chunk):
            self._add(chunk[start:])
        return lines

    def _add(self, piece: bytes) -> None:
        self.total += len(piece)
        if self.total > MAX_LINE:
            if len(self.buf) > _RAW_PREFIX:
                del self.buf[_RAW_PREFIX:]
            self.buf += piece[: _RAW_PREFIX - len(self.buf)]
        else:
            self.buf += piece

    def _take(self) -> tuple[bytes, int]:
        line = (bytes(self.buf), self.total - len(self.buf))
        self.buf.clear()
        self.total = 0
        return line

    def flush(self) -> list[tuple[bytes, int]]:
        """End of stream: an unterminated last line (the peer died mid-line) is still a record."""
        return [self._take()] if self.total else []


class StdioTee:
    """Spawn ``command`` and pump its stdio, recording lines as envelopes (and optionally bare)."""

    def __init__(
        self,
        command: list[str],
        out: str,
        connection_id: str | None = None,
        bare: str | None = None,
        stderr_out: str | None = None,
        redaction: RedactionPolicy | None = None,
    ) -> None:
        self.command = command
        #: what is redacted in the files written (the default policy unless given)
        self.redaction = redaction if redaction is not None else RedactionPolicy()
        self.connection_id = connection_id or default_connection_id(command)
        self.out = out
        self._writer = JsonlWriter(out)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._bare_fd: int | None = os.open(bare, flags, 0o600) if bare else None
        self._stderr_fd: int | None = os.open(stderr_out, flags, 0o600) if stderr_out else None
        self._proc: subprocess.Popen[bytes] | None = None
        self.n_lines = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}

    # -- recording -------------------------------------------------------------------------------
    def _envelope(self, ts: str, direction: str, line: bytes, dropped: int) -> dict[str, Any] | None:
        try:
            text = line.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            text = line.decode("utf-8", errors="replace")
            valid = False
        text = text.rstrip("\r\n")
        if not text.strip():
            return None  # blank line: nothing to record as a message
        text = self.redaction.redact_text(text)
        envelope: dict[str, Any] = {
            "ts": ts,
            "direction": direction,
            "transport": "stdio",
            "connection_id": self.connection_id,
        }
        message, ok = parse_json_message(text) if valid and not dropped else (None, False)
        envelope["message"] = message if ok else None
        if not ok:
            envelope["raw"] = text
            if dropped:
                envelope["raw_truncated_bytes"] = dropped
        return envelope

    def _record(self, direction: str, lines: list[tuple[bytes, int]]) -> None:
        """Stamp and append the lines of one read, under the writer's lock (file order = time order)."""
        if not lines:
            return

        def build(ts: str) -> list[dict[str, Any]]:
            envs = [self._envelope(ts, direction, line, dropped) for line, dropped in lines]
            return [e for e in envs if e is not None]

        def bare(_ts: str) -> None:
            if self._bare_fd is not None:
                # A final line without its newline (peer died mid-line) still ends its record here, so it
                # cannot fuse with the next line from the other direction.
                data = b"".join(self._redact_bytes(line if line.endswith(b"\n") else line + b"\n")
                                for line, _ in lines)
                try:
                    _write_all(self._bare_fd, data)
                except OSError:
                    pass

        self._writer.write_now(build, bare)
        self.n_lines[direction] += len(lines)

    def _redact_bytes(self, line: bytes) -> bytes:
        """A raw line for the bare and stderr files, credentials redacted (bytes that are not UTF-8 kept)."""
        if not self.redaction.enabled:
            return line
        text = line.decode("utf-8", errors="surrogateescape")
        redacted = self.redaction.redact_text(text)
        return line if redacted == text else redacted.encode("utf-8", errors="surrogateescape")

    # -- pumps -----------------------------------------------------------------------------------
    def _pump(self, src: int, dst: int | None, direction: str, close_dst: Any = None) -> None:
        """Read ``src`` until EOF; record each completed line, then forward the chunk to ``dst``.

        ``close_dst``: called once when ``src`` ends or ``dst`` breaks (closes the child's stdin, so
        it sees the client's EOF)."""
        splitter = _LineSplitter()
        try:
            while True:
                try:
                    chunk = os.read(src, CHUNK)
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    continue
                if not chunk:
                    break
                self._record(direction, splitter.feed(chunk))
                if dst is not None:
                    try:
                        _write_all(dst, chunk)
                    except OSError:
                        # the peer is gone; keep reading and recording what this side still says
                        dst = None
                        self._call_quietly(close_dst)
                        close_dst = None
        except OSError:
            pass
        finally:
            self._record(direction, splitter.flush())
            self._call_quietly(close_dst)

    @staticmethod
    def _call_quietly(fn: Any) -> None:
        if fn is not None:
            try:
                fn()
            except OSError:
                pass

    def _pump_stderr(self, src: int) -> None:
        splitter = _LineSplitter()
        forward = True

        def log(lines: list[tuple[bytes, int]]) -> None:
            if self._stderr_fd is None or not lines:
                return
            ts = utc_now()
            prefix = f"{ts} {self.connection_id} ".encode()
            data = b"".join(prefix + self._redact_bytes(line.rstrip(b"\r\n")) + b"\n" for line, _ in lines)
            try:
                _write_all(self._stderr_fd, data)
            except OSError:
                pass

        try:
            while True:
                chunk = os.read(src, CHUNK)
                if not chunk:
                    break
                log(splitter.feed(chunk))
                if forward:
                    try:
                        _write_all(2, chunk)
                    except OSError:
                        forward = False
        except OSError:
            pass
        finally:
            log(splitter.flush())

    @staticmethod
    def _close_fd(fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    def _forward_signal(self, signum: int, _frame: object) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signum)
            except (ProcessLookupError, OSError):
                pass

    def run(self, banner: bool = True) -> int:
        """Run the child to its end; returns its exit code (128 + N if signal N ended it)."""
        record_stderr = self._stderr_fd is not None
        kwargs: dict[str, Any] = {}
        if sys.platform != "win32":
            kwargs["process_group"] = 0
            if sys.platform.startswith("linux"):
                kwargs["preexec_fn"] = _parent_death_signal(os.getpid())
        # Signals before the child exists are forwarded once it does (handlers first, then spawn).
        pending: list[int] = []
        previous = {}
        for signum in FORWARDED_SIGNALS:
            previous[signum] = signal.signal(signum, lambda s, _f: pending.append(s))
        try:
            self._proc = proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if record_stderr else None,
                bufsize=0,
                **kwargs,
            )
        except BaseException:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            raise
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._forward_signal)
        for signum in pending:
            self._forward_signal(signum, None)
        if banner:
            print(
                f"mcptrace capture stdio: recording {shlex.join(self.command)} (pid {proc.pid}) "
                f"as {self.connection_id} to {self.out}",
                file=sys.stderr,
                flush=True,
            )
        assert proc.stdin is not None and proc.stdout is not None
        # The pumps read and write the raw pipe fds (no Python buffering); the file objects stay open.
        child_in, child_out = proc.stdin.fileno(), proc.stdout.fileno()
        threads = [
            threading.Thread(target=self._pump, args=(0, child_in, CLIENT_TO_SERVER, proc.stdin.close),
                             name="tee-c2s", daemon=True),
            threading.Thread(target=self._pump, args=(child_out, 1, SERVER_TO_CLIENT), name="tee-s2c", daemon=True),
        ]
        if record_stderr:
            assert proc.stderr is not None
            threads.append(threading.Thread(target=self._pump_stderr, args=(proc.stderr.fileno(),),
                                            name="tee-stderr", daemon=True))
        for t in threads:
            t.start()

        rc = proc.wait()
        # Drain what the child wrote before it exited (a grandchild holding the pipe open: give up).
        for t in threads[1:]:
            t.join(timeout=2)
        self.close()
        if rc < 0:  # killed by a signal: shell convention
            return 128 - rc
        return rc

    def close(self) -> None:
        self._writer.close()
        with self._writer._lock:  # the bare file is written under this lock
            for fd in (self._bare_fd, self._stderr_fd):
                if fd is not None:
                    self._close_fd(fd)
            self._bare_fd = self._stderr_fd = None


# -- command line ---------------------------------------------------------------------------------
def run_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the tee from parsed arguments and end the process with the child's exit code.

    Ends with ``os._exit``: the pump reading our stdin may still sit in a blocking read, and a
    normal interpreter shutdown would wait on (or trip over) it.
    """
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("missing COMMAND after --")
    try:
        redaction = redaction_from_args(args)
    except ValueError as exc:
        parser.error(f"--secret-keys: {exc}")
    try:
        tee = StdioTee(command, out=args.out, connection_id=args.connection_id, bare=getattr(args, "bare", None),
                       stderr_out=args.stderr_out, redaction=redaction)
    except OSError as exc:
        print(f"mcptrace capture stdio: cannot open the capture file: {exc}", file=sys.stderr)
        code = 2
    else:
        try:
            code = tee.run(banner=not args.quiet)
        except OSError as exc:  # FileNotFoundError, PermissionError: the command cannot be run
            tee.close()
            print(f"mcptrace capture stdio: cannot run {command[0]!r}: {exc}", file=sys.stderr)
            code = 127
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mcptrace.capture.stdio",
        description="stdio tee for MCP servers: passes bytes through and writes envelope JSONL.",
    )
    add_stdio_arguments(parser)
    return run_args(parser.parse_args(argv), parser)


if __name__ == "__main__":
    main()
