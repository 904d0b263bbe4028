"""``mcptrace capture stdio|http``: the sub-commands (no heavy imports) and dispatch."""

from __future__ import annotations

import argparse

from mcptrace.capture.options import (
    HTTP_EPILOG,
    STDIO_EPILOG,
    add_http_arguments,
    add_stdio_arguments,
)


#: what ``mcptrace capture`` does, in its help
CAPTURE_HELP = "record MCP traffic as envelope JSONL (stdio tee, HTTP reverse proxy)"


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``stdio`` and ``http`` sub-commands of ``mcptrace capture``."""
    sub = parser.add_subparsers(dest="capture_transport", required=True, metavar="{stdio,http}")
    sp = sub.add_parser("stdio", help="stdio tee: run the server command, record both directions",
                        description="stdio tee for MCP servers: passes bytes through unchanged and appends "
                                    "envelope JSONL.", epilog=STDIO_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stdio_arguments(sp)
    sp.set_defaults(capture_parser=sp)
    hp = sub.add_parser("http", help="reverse proxy for Streamable HTTP and HTTP+SSE",
                        description="Logging reverse proxy for MCP over HTTP; appends envelope JSONL.",
                        epilog=HTTP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_http_arguments(hp)
    hp.set_defaults(capture_parser=hp)


def run(args: argparse.Namespace) -> int:
    """Run the recorder chosen by ``add_capture_arguments`` (the stdio tee ends the process itself)."""
    parser = args.capture_parser
    if args.capture_transport == "stdio":
        from mcptrace.capture import stdio

        return stdio.run_args(args, parser)
    try:
        from mcptrace.capture import http
    except ImportError as exc:
        parser.error(str(exc))
    return http.run_args(args, parser)
