"""mcptrace: load MCP JSON-RPC captures and OTLP trace dumps into DuckDB, rebuild sessions,
tool-call timelines and parallel-call trees, and show where correlation was lost.

>>> import mcptrace
>>> ws = mcptrace.load("data/samples")                      # doctest: +SKIP
>>> ws.sessions().df()                                       # doctest: +SKIP
>>> ws.timeline(ws.busiest_session()).show()                 # doctest: +SKIP
"""

from mcptrace.core.errors import (MCPTraceError, MissingDependencyError, NotFoundError, RecordError,
                                  UnrecognizedFormatError)
from mcptrace.core.conventions import SpanConventions
from mcptrace.core.keys import KeyConfig
from mcptrace.core.result import Result
from mcptrace.workspace import Workspace, load, open, open_dataset

__version__ = "0.1.0"


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
