"""Exceptions raised by mcptrace."""

from __future__ import annotations


def error_line(e: BaseException) -> str:
    """The telling line of an exception's message: its first line (a DuckDB error without its ``LINE``
    pointer; of a wrapped Python traceback, the exception at its end); the class name when empty."""
    lines = [ln.strip() for ln in str(e).split("\n\nLINE ")[0].splitlines() if ln.strip()]
    if lines and lines[0].startswith("Traceback"):
        return lines[-1]
    return lines[0] if lines else type(e).__name__


class MCPTraceError(Exception):
    """Base class of every error mcptrace raises on purpose."""


class NotFoundError(MCPTraceError, KeyError):
    """An id that names nothing in the database: a session, turn, call, gap, table or format.

    Attributes: ``kind`` (str, e.g. ``"session"``) and ``key`` (the id asked for). A ``KeyError``
    too, so ``except KeyError`` keeps working; ``str()`` is the plain message.
    """

    def __init__(self, kind: str, key: object, where: str = "", known: str = "", *, message: str | None = None) -> None:
        self.kind = kind
        self.key = key
        if message is None:
            message = f"no {kind} {key!r}" + (f" in {where}" if where else "") + (f"; known: {known}" if known else "")
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class UnrecognizedFormatError(MCPTraceError):
    """A file is not a capture or trace dump of any known format.

    Attributes: ``path`` (str) and ``tried`` (tuple of format names that were sniffed).
    """

    def __init__(self, path: str, tried: tuple[str, ...], why: str = "") -> None:
        self.path = path
        self.tried = tried
        why = f" ({why})" if why else ""
        super().__init__(f"{path}: not a recognised capture or trace dump{why}; tried {', '.join(tried)}")


class RecordError(MCPTraceError):
    """A record of an input file could not be used (raised only with ``errors="raise"``).

    Attributes: ``path`` (str), ``record_no`` (int, 1-based line or record number), ``reason`` (str).
    """

    def __init__(self, path: str, record_no: int | None, reason: str) -> None:
        self.path = path
        self.record_no = record_no
        self.reason = reason
        where = f"{path}:{record_no}" if record_no is not None else path
        super().__init__(f"{where}: {reason}")


class MissingDependencyError(MCPTraceError, ImportError):
    """An optional dependency is not installed; the message gives the install command.

    Attributes: ``package`` (str, what is missing) and ``extra`` (str, the ``mcptrace[extra]`` that
    installs it). An ``ImportError`` too. ``detail`` is appended to the message (e.g. the import errors).
    """

    def __init__(self, package: str, extra: str, detail: str = "") -> None:
        self.package = package
        self.extra = extra
        detail = f"\n{detail}" if detail else ""
        super().__init__(f"{package} is required for this; install it with: pip install 'mcptrace[{extra}]'{detail}")
