"""The ``mcptrace`` command and ``python -m mcptrace``: :func:`main`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line (:func:`mcptrace.cli.main`; ``argv`` defaults to ``sys.argv[1:]``). ``mcptrace
    capture`` is parsed and run without importing the rest of the command line (DuckDB, pyarrow, pandas,
    plotly): a host starts it in front of a server and waits for it. Returns the exit code (the codes of
    :mod:`mcptrace.cli`; argparse exits with 2 on a usage error)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["capture"]:
        import argparse

        from mcptrace.capture._cli import CAPTURE_HELP, add_capture_arguments, run

        parser = argparse.ArgumentParser(prog="mcptrace capture", description=CAPTURE_HELP)
        add_capture_arguments(parser)
        return run(parser.parse_args(args[1:]))
    from mcptrace.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
