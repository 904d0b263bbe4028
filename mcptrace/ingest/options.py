"""What a load is told: one options object passed from the facade to the loader and the readers."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from mcptrace.core.conventions import SpanConventions
from mcptrace.core.keys import KeyConfig
from mcptrace.core.redact import DEFAULT_SECRET_KEYS, RedactionPolicy

#: what happens to a record that cannot be used: kept in ``rejects`` (``collect``) or raised as
#: :class:`mcptrace.RecordError` naming file, line and reason (``raise``)
ErrorMode = Literal["collect", "raise"]
ERROR_MODES: tuple[str, ...] = typing.get_args(ErrorMode)

#: the largest record (line, entry, frame) read by default, in bytes; larger ones are rejected with their size
MAX_RECORD_BYTES = 256 * 1024 * 1024
#: the timestamps accepted by default (UTC, ISO 8601): records outside are rejected with the reason
TS_RANGE = ("1970-01-01T00:00:00Z", "2200-01-01T00:00:00Z")


@dataclass(frozen=True)
class LoadOptions:
    """How files are loaded.

    ``errors``: :data:`ErrorMode`. ``format``: a reader name (``mcptrace load --format``) to skip
    sniffing, None to sniff each file. ``keys``: the correlation keys read from ``_meta``
    (:class:`mcptrace.KeyConfig`). ``redaction``: the one redaction policy of the load, applied in
    the loader's SQL and by every reader (:class:`mcptrace.core.redact.RedactionPolicy`).
    ``max_record_bytes``: the largest record read (bytes; default :data:`MAX_RECORD_BYTES`).
    ``ts_range``: the first and last timestamp accepted (ISO 8601 text, UTC; default
    :data:`TS_RANGE`), handed to the readers' SQL as the variables ``mcptrace_ts_min`` and
    ``mcptrace_ts_max`` (TIMESTAMPTZ). ``conventions``: the span attributes and names read as an MCP
    call's method, tool, request id, session and side (:class:`mcptrace.SpanConventions`), handed to the
    span readers' SQL as the variables ``mcptrace_span_*``. Raises ``ValueError`` for an unknown error mode.
    """

    errors: ErrorMode = "collect"
    format: str | None = None
    keys: KeyConfig = field(default_factory=KeyConfig)
    redaction: RedactionPolicy = field(default_factory=RedactionPolicy)
    max_record_bytes: int = MAX_RECORD_BYTES
    ts_range: tuple[str, str] = TS_RANGE
    conventions: SpanConventions = field(default_factory=SpanConventions)

    def __post_init__(self) -> None:
        if self.errors not in ERROR_MODES:
            raise ValueError(f"errors must be one of {', '.join(map(repr, ERROR_MODES))}, not {self.errors!r}")

    @classmethod
    def of(cls, *, errors: ErrorMode = "collect", format: str | None = None, keys: KeyConfig | None = None,
           redact: bool = True, secret_keys: str = DEFAULT_SECRET_KEYS,
           conventions: SpanConventions | None = None) -> "LoadOptions":
        """The options of the keyword arguments :func:`mcptrace.load` and ``Workspace.load`` take."""
        return cls(errors=errors, format=format, keys=keys or KeyConfig(),
                   redaction=RedactionPolicy(enabled=redact, secret_keys=secret_keys),
                   conventions=conventions or SpanConventions())
