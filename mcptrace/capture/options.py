"""The options of the recorders (``mcptrace capture stdio|http``, ``python -m mcptrace.capture.stdio|http``).

Argument definitions only, no heavy imports: the recorders and the ``mcptrace capture`` dispatch
(:mod:`mcptrace.capture._cli`) both use them.
"""

from __future__ import annotations

import argparse

from mcptrace.core.redact import DEFAULT_SECRET_KEYS, RedactionPolicy

#: the default of ``--max-body`` (bytes): 16 MiB (``mcptrace.capture.har.DEFAULT_MAX_BODY``)
DEFAULT_MAX_BODY = 16 * 1024 * 1024

STDIO_EPILOG = """Configure this in the host in place of the server command, e.g. in a host's JSON config:
  "command": "mcptrace", "args": ["capture", "stdio", "--out", "/tmp/weather.jsonl", "--", "python", "server.py"]
Bytes pass through unchanged; the child's exit code is returned; the capture is appended to."""

HTTP_EPILOG = """Point the client at http://HOST:PORT/<path> instead of the server; requests go to URL + <path>.
  mcptrace capture http --listen 127.0.0.1:8765 --upstream http://127.0.0.1:8000 --out /tmp/http.jsonl
Streamable HTTP and the 2024-11-05 HTTP+SSE transport; streams are forwarded as they arrive."""


def add_stdio_arguments(parser: argparse.ArgumentParser, *, bare: bool = True) -> None:
    parser.add_argument("--out", required=True, metavar="FILE", help="envelope JSONL file (appended, never truncated)")
    parser.add_argument("--connection-id", metavar="ID",
                        help="connection_id of every envelope (default: stdio:<command name>:<8 hex>, fresh per run)")
    parser.add_argument("--stderr-out", metavar="FILE",
                        help="also append the child's stderr here, one '<ts> <connection id> <line>' per line")
    if bare:
        parser.add_argument("--bare", metavar="FILE", help="also append every raw line here (bare JSON-RPC NDJSON)")
    parser.add_argument("--no-redact", action="store_true",
                        help="record lines as they came: credentials (API keys, tokens, passwords in messages, "
                             "Authorization lines in stderr) are otherwise [REDACTED] in every file written")
    add_secret_keys_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="do not print what is recorded where (on stderr)")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]",
                        help="the MCP server command the host would have run")


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="where to listen (default 127.0.0.1:0 = a free port, printed); loopback only "
                             "unless --allow-remote")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --listen address")
    parser.add_argument("--upstream", required=True, metavar="URL",
                        help="upstream base URL; the request path is appended (http://127.0.0.1:9000 + /mcp)")
    parser.add_argument("--out", required=True, metavar="FILE", help="envelope JSONL file (appended, never truncated)")
    parser.add_argument("--har", default=None, metavar="FILE",
                        help="also write a HAR 1.2 file of every exchange (mode 0600, replaced; entries appended "
                             "as exchanges complete)")
    parser.add_argument("--max-body", type=parse_size, default=DEFAULT_MAX_BODY, metavar="BYTES",
                        help="bytes of a request or (decoded) response body recorded; longer bodies are "
                             "forwarded whole but recorded cut, with their size (default 16M; K, M, G suffixes)")
    parser.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="disconnect a client that sends none of its request headers or body for this long "
                             "(default 60)")
    parser.add_argument("--no-redact", action="store_true",
                        help="keep credential headers and query values (Authorization, Cookie, API keys...)")
    add_secret_keys_argument(parser)
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    parser.add_argument("--quiet", action="store_true", help="do not print where it listens and writes")


def parse_size(value: str) -> int:
    """A size in bytes: ``1048576``, ``512K``, ``16M``, ``1G`` (powers of 1024); at least 1 KiB."""
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    try:
        n = int(float(text[:-1] if factor > 1 else text) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {value!r} (e.g. 16M)") from None
    if n < 1024:
        raise argparse.ArgumentTypeError(f"--max-body must be at least 1K, got {value!r}")
    return n


def add_secret_keys_argument(parser: argparse.ArgumentParser) -> None:
    """``--secret-keys REGEX``: the key pattern of the redaction policy (``mcptrace load`` takes it too)."""
    parser.add_argument("--secret-keys", metavar="REGEX", default=DEFAULT_SECRET_KEYS,
                        help="the pattern of secret header, query and JSON key names (matched whole, any case; "
                             "default: mcptrace.core.redact.DEFAULT_SECRET_KEYS)")


def redaction_from_args(args: argparse.Namespace) -> RedactionPolicy:
    """The redaction policy the parsed options ask for: on unless ``--no-redact``, with the
    ``--secret-keys`` pattern. Raises ``ValueError`` for a pattern that does not compile."""
    return RedactionPolicy(enabled=not getattr(args, "no_redact", False),
                           secret_keys=getattr(args, "secret_keys", None) or DEFAULT_SECRET_KEYS)
