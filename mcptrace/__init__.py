"""mcptrace: load MCP JSON-RPC captures and OTLP trace dumps into DuckDB, rebuild sessions,
tool-call timelines and parallel-call trees, and show where correlation was lost.

>>> import mcptrace
>>> ws = mcptrace.load("data/samples")                      # doctest: +SKIP
>>> ws.sessions().df()                                       # doctest: +SKIP
>>> ws.timeline(ws.busiest_session()).show()                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mcptrace.core.errors import (MCPTraceError, MissingDependencyError, NotFoundError, RecordError,
                                  UnrecognizedFormatError)
from mcptrace.core.conventions import SpanConventions
from mcptrace.core.keys import KeyConfig

if TYPE_CHECKING:
    from mcptrace.core.result import Result
    from mcptrace.workspace import Workspace, load, open, open_dataset

__version__ = "0.1.0"

#: names imported on first use, so that the recorders (``mcptrace.capture``) and the sample processes,
#: which import this package first, start without DuckDB, pyarrow and pandas
_LAZY = {"Result": "mcptrace.core.result", "Workspace": "mcptrace.workspace", "load": "mcptrace.workspace",
         "open": "mcptrace.workspace", "open_dataset": "mcptrace.workspace"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mcptrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def explore(workspace: Workspace, session_id: str | None = None, **kwargs):
    """An ipywidgets explorer of ``workspace`` (session picker, filters, timeline, waterfall,
    gap list, message inspector); see :func:`mcptrace.explorer.explore`."""
    return workspace.explore(session_id, **kwargs)


__all__ = [
    "load",
    "open",
    "open_dataset",
    "explore",
    "Workspace",
    "Result",
    "KeyConfig",
    "SpanConventions",
    "MCPTraceError",
    "NotFoundError",
    "RecordError",
    "UnrecognizedFormatError",
    "MissingDependencyError",
]
