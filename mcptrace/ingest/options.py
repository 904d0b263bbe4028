"""What a load is told: one options object passed from the facade to the loader and the readers."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from mcptrace.core.keys import KeyConfig
from mcptrace.core.redact import DEFAULT_SECRET_KEYS, RedactionPolicy

#: what happens to a record that cannot be used: kept in ``rejects`` (``collect``) or raised as
#: :class:`mcptrace.RecordError` naming file, line and reason (``raise``)
ErrorMode = Literal["collect", "raise"]
ERROR_MODES: tuple[str, ...] = typing.get_args(ErrorMode)


@dataclass(frozen=True)
class LoadOptions:
    """How files are loaded.

    ``errors``: :data:`ErrorMode`. ``format``: a reader name (``mcptrace load --format``) to skip
    sniffing, None to sniff each file. ``keys``: the correlation keys read from ``_meta``
    (:class:`mcptrace.KeyConfig`). ``redaction``: the one redaction policy of the load, applied in
    the loader's SQL and by every reader (:class:`mcptrace.core.redact.RedactionPolicy`). Raises
    ``ValueError`` for an unknown error mode.
    """

    errors: ErrorMode = "collect"
    format: str | None = None
    keys: KeyConfig = field(default_factory=KeyConfig)
    redaction: RedactionPolicy = field(default_factory=RedactionPolicy)

    def __post_init__(self) -> None:
        if self.errors not in ERROR_MODES:
            raise ValueError(f"errors must be one of {', '.join(map(repr, ERROR_MODES))}, not {self.errors!r}")

    @classmethod
    def of(cls, *, errors: ErrorMode = "collect", format: str | None = None, keys: KeyConfig | None = None,
           redact: bool = True, secret_keys: str = DEFAULT_SECRET_KEYS) -> "LoadOptions":
        """The options of the keyword arguments :func:`mcptrace.load` and ``Workspace.load`` take."""
        return cls(errors=errors, format=format, keys=keys or KeyConfig(),
                   redaction=RedactionPolicy(enabled=redact, secret_keys=secret_keys))
