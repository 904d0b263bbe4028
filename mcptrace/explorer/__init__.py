"""An ipywidgets explorer of an mcptrace database: ``mcptrace.explore(ws)`` or ``ws.explore()``.

Layout (top to bottom):

- a session picker, sessions ordered by gaps, then size (calls), then first time;
- a one-line summary of the picked session;
- filters: tool, status, gap code and a time range (ms since the session's first call);
- the session's timeline and waterfall (tabs): calls outside the filter are greyed, so the
  selection stands out against the rest of the session. A session of more than
  ``aggregate_above`` calls (:data:`mcptrace.render.waterfall.AGGREGATE_ABOVE`) gets the per-turn
  waterfall (one row per turn) and a turn picker above it: picking a turn, or picking a call in
  the call list, drills down to the detailed rows of that turn;
- the gap list (one line per gap) with the selected gap's evidence (``gaps.detail``);
- the call list and the message inspector: the selected call's summary, its request and
  response JSON, the ``_meta`` of both, HTTP headers, and the spans and gaps joined to it.
  Picking a gap picks its call. The gap and call lists show at most ``list_limit`` entries
  (the count says how many the filters select); messages and spans are read per call, when
  it is inspected, so opening a 50k-call session stays a matter of seconds.

The explorer works on an open DuckDB connection of the database (a workspace's ``.con``) with
the analysis and render layers directly. Everything that decides *what* is shown lives in
:class:`ExplorerModel` (:mod:`mcptrace.explorer.model`: plain Python, no widgets) so it can be
tested without a browser; :class:`ExplorerWidget` (:mod:`mcptrace.explorer.widget`) only wires
widgets to it. The figures are drawn by :func:`mcptrace.render.timeline.timeline` and
:func:`mcptrace.render.waterfall.waterfall`, greyed by their ``highlight=`` argument. Transcript
strings are treated as hostile: they are shown in widgets that render text (dropdown and select
options, text areas, labels); the two HTML widgets (session summary, call header) escape every
value with :func:`html.escape`, and the figure builders escape their labels and hovers.
"""

from __future__ import annotations

from mcptrace.explorer.model import (ALL, ALL_TURNS, DIM_COLOR, LIST_LIMIT, NO_TIME, CallDetail, ExplorerModel,
                                     Filters)
from mcptrace.explorer.widget import ExplorerWidget, explore, figure_output
from mcptrace.render.timeline import timeline_call_ids

__all__ = ["ALL", "ALL_TURNS", "DIM_COLOR", "LIST_LIMIT", "NO_TIME", "CallDetail", "ExplorerModel", "ExplorerWidget",
           "Filters", "explore", "figure_output", "timeline_call_ids"]
