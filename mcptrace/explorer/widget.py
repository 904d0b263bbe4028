"""The explorer's widgets (ipywidgets), wired to an :class:`~mcptrace.explorer.model.ExplorerModel`.

The widgets only show what the model decides. Transcript strings are treated as hostile: they
are shown in widgets that render text (dropdown and select options, text areas, labels); the two
HTML widgets (session summary, call header) get the model's escaped HTML, and the figures come
from :mod:`mcptrace.render.timeline` / :mod:`mcptrace.render.waterfall`, which escape their labels
and hovers.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import duckdb
import ipywidgets as w

from mcptrace.core.errors import NotFoundError
from mcptrace.explorer.model import ALL, ALL_TURNS, LIST_LIMIT, NO_TIME, ExplorerModel, Filters

__all__ = ["ExplorerWidget", "explore", "figure_output"]


def figure_output(fig) -> dict:
    """An nbformat ``display_data`` output of a plotly figure (the plotly MIME type, which
    JupyterLab's bundled plotly renderer and VS Code draw), for ``Output.outputs``."""
    import plotly.io as pio

    return {"output_type": "display_data", "metadata": {},
            "data": {"application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False)),
                     "text/plain": f"<plotly figure: {len(fig.data)} traces>"}}


# -- widget wiring ----------------------------------------------------------------------------

class ExplorerWidget(w.VBox):
    """The explorer's widgets, wired to an :class:`ExplorerModel`. Public parts:
    ``finding_picker`` (the findings, ranked: picking one narrows ``session_picker`` to its sessions and
    ``gap_filter`` to its code; :meth:`show_finding`), ``session_picker``, ``tool_filter``, ``status_filter``, ``gap_filter``, ``time_filter``,
    ``reset_button``, ``reload_button`` (:meth:`reload`: read the tables again), ``summary`` (HTML, escaped), ``figure_tabs`` (``timeline_out``,
    ``waterfall_box``: ``turn_picker`` for sessions above the model's ``aggregate_above`` calls,
    then ``waterfall_out``), ``gap_list``, ``gap_detail``, ``call_list``, ``call_header`` (HTML,
    escaped), ``inspector_tabs`` (``request_text``, ``response_text``, ``meta_text``,
    ``http_text``, ``spans_text``, ``call_gaps_text``). ``con`` (an open DuckDB connection of an
    mcptrace database, e.g. ``ws.con``), ``aggregate_above`` and ``list_limit`` go to the
    :class:`ExplorerModel`; ``session_id`` is the session shown first (default: the one with the most
    gaps; :class:`mcptrace.NotFoundError`, a ``KeyError``, when there is no such session)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, session_id: str | None = None, *,
                 aggregate_above: int | None = None, list_limit: int = LIST_LIMIT, **kwargs: Any) -> None:
        self.model = ExplorerModel(con, aggregate_above=aggregate_above, list_limit=list_limit)
        self._quiet = False
        self._figs_stale = {0: True, 1: True}
        mono = w.Layout(width="98%", height="300px")
        options = self.model.session_options()
        if session_id is not None and session_id not in {sid for _label, sid in options}:
            raise NotFoundError("session", session_id)
        # the findings: picking one narrows the session picker to its sessions and the gap filter to its code
        self.finding_picker = w.Dropdown(options=self.model.finding_options(), value=0, description="Finding",
                                         layout=w.Layout(width="100%"), style={"description_width": "60px"})
        self.session_picker = w.Dropdown(options=options, description="Session", layout=w.Layout(width="100%"),
                                         style={"description_width": "60px"})
        self.summary = w.HTML(layout=w.Layout(width="100%"))
        self.tool_filter = w.Dropdown(options=[ALL], description="Tool", layout=w.Layout(width="230px"),
                                      style={"description_width": "40px"})
        self.status_filter = w.Dropdown(options=[ALL], description="Status", layout=w.Layout(width="190px"),
                                        style={"description_width": "48px"})
        self.gap_filter = w.Dropdown(options=[ALL], description="Gap", layout=w.Layout(width="270px"),
                                     style={"description_width": "36px"})
        self.time_filter = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.1, description="ms",
                                              continuous_update=False, readout_format=".1f",
                                              layout=w.Layout(width="420px"), style={"description_width": "28px"})
        self.reset_button = w.Button(description="Reset filters", layout=w.Layout(width="110px"))
        self.reload_button = w.Button(description="Reload", layout=w.Layout(width="80px"),
                                      tooltip="read the tables again (after a load, or while following a capture)")
        self.count_label = w.Label()
        self.timeline_out = w.Output(layout=w.Layout(width="100%"))
        self.waterfall_out = w.Output(layout=w.Layout(width="100%"))
        # shown above the waterfall only for sessions drawn one row per turn
        self.turn_picker = w.Dropdown(options=[("(all turns)", ALL_TURNS)], value=ALL_TURNS, description="Turn",
                                      layout=w.Layout(width="100%"), style={"description_width": "40px"})
        self.waterfall_box = w.VBox([self.waterfall_out], layout=w.Layout(width="100%"))
        self.figure_tabs = w.Tab(children=[self.timeline_out, self.waterfall_box])
        self.figure_tabs.set_title(0, "Timeline")
        self.figure_tabs.set_title(1, "Waterfall")
        self.gap_list = w.Select(options=[], rows=9, description="", layout=w.Layout(width="100%"))
        self.gap_detail = w.Textarea(value="", disabled=True, layout=mono,
                                     placeholder="Pick a gap for its evidence (gaps.detail).")
        self.call_list = w.Select(options=[], rows=12, layout=w.Layout(width="100%"))
        self.call_header = w.HTML(layout=w.Layout(width="100%"))
        self.request_text = w.Textarea(disabled=True, layout=mono)
        self.response_text = w.Textarea(disabled=True, layout=mono)
        self.meta_text = w.Textarea(disabled=True, layout=mono)
        self.http_text = w.Textarea(disabled=True, layout=mono)
        self.spans_text = w.Textarea(disabled=True, layout=mono)
        self.call_gaps_text = w.Textarea(disabled=True, layout=mono)
        self.inspector_tabs = w.Tab(children=[self.request_text, self.response_text, self.meta_text,
                                              self.http_text, self.spans_text, self.call_gaps_text])
        for i, t in enumerate(["Request", "Response", "_meta", "HTTP", "Spans", "Gaps"]):
            self.inspector_tabs.set_title(i, t)
        gaps_box = w.VBox([w.Label("Gaps (pick one for its evidence and its call)"), self.gap_list,
                           self.gap_detail], layout=w.Layout(flex="0 0 40%", min_width="0", overflow="hidden"))
        calls_box = w.VBox([w.Label("Calls (pick one to inspect its messages)"), self.call_list,
                            self.call_header, self.inspector_tabs],
                           layout=w.Layout(flex="1 1 0%", min_width="0", margin="0 0 0 10px", overflow="hidden"))
        filters = w.HBox([self.tool_filter, self.status_filter, self.gap_filter, self.time_filter,
                          self.reset_button, self.reload_button, self.count_label],
                         layout=w.Layout(flex_flow="row wrap"))
        super().__init__(children=[self.finding_picker, self.session_picker, self.summary, filters, self.figure_tabs,
                                   w.HBox([gaps_box, calls_box], layout=w.Layout(width="100%", overflow="hidden"))],
                         **kwargs)
        self.add_class("mcptrace-explorer")

        self.finding_picker.observe(self._on_finding, "value")
        self.session_picker.observe(self._on_session, "value")
        for ctl in (self.tool_filter, self.status_filter, self.gap_filter, self.time_filter):
            ctl.observe(self._on_filter, "value")
        self.reset_button.on_click(lambda _b: self.reset_filters())
        self.reload_button.on_click(lambda _b: self.reload())
        self.gap_list.observe(self._on_gap, "value")
        self.call_list.observe(self._on_call, "value")
        self.turn_picker.observe(self._on_turn, "value")
        self.figure_tabs.observe(self._on_tab, "selected_index")

        if options:
            start = session_id if session_id is not None else options[0][1]
            if self.session_picker.value != start:
                self.session_picker.value = start  # fires _on_session
            else:
                self.set_session(start)
        else:
            self.summary.value = "<i>No sessions in this workspace.</i>"

    # state ---------------------------------------------------------------------
    @property
    def session_id(self) -> str | None:
        return self.session_picker.value

    @contextlib.contextmanager
    def _quietly(self):
        old, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = old

    def filters(self) -> Filters:
        """The filters as the widgets set them."""
        def pick(ctl):
            return None if ctl.value in (ALL, None) else ctl.value

        tr = None
        if not self.time_filter.disabled:
            lo, hi = self.time_filter.value
            if lo > self.time_filter.min or hi < self.time_filter.max:
                tr = (float(lo), float(hi))
        return Filters(tool=pick(self.tool_filter), status=pick(self.status_filter),
                       gap_code=pick(self.gap_filter), time_range_ms=tr)

    # reactions -------------------------------------------------------------------
    def _on_finding(self, change) -> None:
        self.show_finding(change["new"] or 0)

    def _on_session(self, change) -> None:
        if not self._quiet and change["new"] is not None:
            self.set_session(change["new"])

    def _on_filter(self, _change) -> None:
        if not self._quiet:
            self.refresh()

    def _on_gap(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        self.show_gap(change["new"])

    def _on_call(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        self.show_call(change["new"])
        if self.session_id is not None and self.model.is_aggregated(self.session_id):
            self.show_turn(self.model.turn_of(self.session_id, change["new"]))  # drill down to its turn

    def _on_turn(self, _change) -> None:
        if not self._quiet:
            self._figs_stale[1] = True
            self._render_figures()

    def _on_tab(self, change) -> None:
        self._render_figures()

    # actions ---------------------------------------------------------------------
    def set_session(self, session_id: str) -> None:
        """Show a session: reset the filters to its choices and redraw everything."""
        with self._quietly():
            if self.session_picker.value != session_id:
                self.session_picker.value = session_id
            choices = self.model.filter_choices(session_id)
            self.tool_filter.options = [ALL] + choices["tools"]
            self.status_filter.options = [ALL] + choices["statuses"]
            self.gap_filter.options = [ALL] + choices["gap_codes"]
            self.tool_filter.value = self.status_filter.value = self.gap_filter.value = ALL
            bounds = choices["time_bounds"]
            if bounds is None:
                self.time_filter.disabled = True
                self.time_filter.tooltip = NO_TIME
            else:
                hi = max(bounds[1], 0.1)
                if hi > self.time_filter.max:
                    self.time_filter.max = hi
                    self.time_filter.min = 0.0
                else:
                    self.time_filter.min = 0.0
                    self.time_filter.max = hi
                self.time_filter.step = max(hi / 500.0, 0.001)
                self.time_filter.value = (0.0, hi)
                self.time_filter.disabled = False
            self.summary.value = self.model.session_summary_html(session_id)
            aggregated = self.model.is_aggregated(session_id)
            self.waterfall_box.children = [self.turn_picker, self.waterfall_out] if aggregated else [self.waterfall_out]
            self.turn_picker.value = ALL_TURNS
        self.refresh()

    def show_finding(self, finding_id: int) -> None:
        """Narrow the session picker to the sessions of a finding's gaps (0: every session), show the first,
        and set the gap filter to the finding's code."""
        options = self.model.session_options(finding_id or None)
        with self._quietly():
            if self.finding_picker.value != finding_id:
                self.finding_picker.value = finding_id
            self.session_picker.options = options
        if not options:
            return
        self.set_session(options[0][1])
        if finding_id:
            code = self.model.finding(finding_id)["code"]
            if code in self.gap_filter.options:
                self.gap_filter.value = code  # fires refresh

    def reload(self) -> None:
        """Read the tables again and redraw, keeping the finding and session shown when they still exist
        (new calls and gaps of a followed capture appear; a session merged into another is replaced by
        the first of the list)."""
        self.model.invalidate()
        finding, session = self.finding_picker.value, self.session_id
        findings = self.model.finding_options()
        with self._quietly():
            self.finding_picker.options = findings
            self.finding_picker.value = finding if finding in {v for _l, v in findings} else 0
        options = self.model.session_options(self.finding_picker.value or None)
        with self._quietly():
            self.session_picker.options = options
        if not options:
            self.summary.value = "<i>No sessions in this workspace.</i>"
            return
        ids = [sid for _l, sid in options]
        self._figs_stale = {0: True, 1: True}
        self.set_session(session if session in ids else ids[0])

    def reset_filters(self) -> None:
        if self.session_id is not None:
            self.set_session(self.session_id)

    def refresh(self) -> None:
        """Redraw the figures, gap list and call list for the current session and filters."""
        sid = self.session_id
        if sid is None:
            return
        f = self.filters()
        call_options, n_calls = self.model.call_options(sid, f)
        gap_options, n_gaps = self.model.gap_options(sid, f)
        n = len(self.model.calls(sid))
        shown = "" if n_calls <= len(call_options) and n_gaps <= len(gap_options) else \
            f" (lists show the first {self.model.list_limit}: narrow with the filters)"
        self.count_label.value = f"{n_calls} of {n} calls · {n_gaps} gaps{shown}"
        previous_call = self.call_list.value
        with self._quietly():
            self.gap_list.options = gap_options
            self.gap_list.value = None
            self.gap_detail.value = "" if gap_options else "(no gaps in the selection)"
            self.call_list.options = call_options
            ids = [v for _l, v in call_options]
            gapped = (c["call_id"] for c in self.model.filtered_calls(sid, f)[: self.model.list_limit] if c["gap_codes"])
            pick = previous_call if previous_call in ids else next(gapped, ids[0] if ids else None)
            self.call_list.value = pick
            if self.model.is_aggregated(sid):
                current = self.turn_picker.value or None
                self.turn_picker.options = self.model.turn_options(sid, f, include=current)[0]
                self.turn_picker.value = current or ALL_TURNS
        self._figs_stale = {0: True, 1: True}
        self._render_figures()
        self.show_call(pick)

    def _render_figures(self) -> None:
        sid = self.session_id
        idx = self.figure_tabs.selected_index or 0
        if sid is None or not self._figs_stale.get(idx):
            return
        f = self.filters()
        if idx == 0:
            self.timeline_out.outputs = (figure_output(self.model.timeline(sid, f)),)
        else:
            turn = (self.turn_picker.value or None) if self.model.is_aggregated(sid) else None
            self.waterfall_out.outputs = (figure_output(self.model.waterfall(sid, f, turn=turn)),)
        self._figs_stale[idx] = False

    def show_turn(self, turn: str | None) -> None:
        """Drill the waterfall down to one turn (a key of ``model.turns``); None or
        :data:`ALL_TURNS` goes back to one row per turn. Only for aggregated sessions."""
        sid = self.session_id
        if sid is None or not self.model.is_aggregated(sid):
            return
        turn = turn or ALL_TURNS
        if turn not in [v for _l, v in self.turn_picker.options]:
            with self._quietly():
                self.turn_picker.options = self.model.turn_options(sid, self.filters(), include=turn or None)[0]
        self.turn_picker.value = turn  # fires _on_turn

    def show_call(self, call_id: int | None) -> None:
        """Fill the inspector with one call (None clears it)."""
        if call_id is None:
            self.call_header.value = "<i>No call in the selection.</i>"
            for t in (self.request_text, self.response_text, self.meta_text, self.http_text, self.spans_text,
                      self.call_gaps_text):
                t.value = ""
            return
        d = self.model.inspect(call_id)
        self.call_header.value = d.header_html()
        self.request_text.value = d.request_json
        self.response_text.value = d.response_json
        self.meta_text.value = d.meta_json
        self.http_text.value = d.http_text
        self.spans_text.value = d.spans_text
        self.call_gaps_text.value = d.gaps_text
        if self.call_list.value != call_id and call_id in [v for _l, v in self.call_list.options]:
            with self._quietly():
                self.call_list.value = call_id

    def show_gap(self, gap_id: int) -> None:
        """Show a gap's evidence and inspect its call."""
        self.gap_detail.value = self.model.gap_detail(gap_id)
        call_id = self.model.gap_call(gap_id)
        if call_id is not None:
            self.show_call(call_id)


def explore(con: duckdb.DuckDBPyConnection, session_id: str | None = None, **kwargs: Any) -> ExplorerWidget:
    """An interactive explorer of the mcptrace database open on ``con`` (a workspace's ``.con``;
    ``mcptrace.explore(ws)`` and ``ws.explore()`` pass it) for Jupyter (ipywidgets): session picker (most gaps
    first), filters (tool, status, gap code, time range), the session's timeline and
    waterfall, the gap list with each gap's evidence, and a message inspector (request and
    response JSON, ``_meta``, HTTP headers, joined spans). Display the returned widget (it is
    an ``ipywidgets.VBox``; its ``model`` is the :class:`ExplorerModel`). ``kwargs``
    (``aggregate_above``, ``list_limit``) go to :class:`ExplorerWidget`.

    >>> mcptrace.explore(mcptrace.load("data/samples"))   # doctest: +SKIP
    """
    return ExplorerWidget(con, session_id, **kwargs)
