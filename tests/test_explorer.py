"""The ipywidgets explorer without a browser: session order, filters, the inspector on real
calls, reactions of the wired widgets, and hostile transcript strings kept out of HTML."""

from __future__ import annotations

import json

import ipywidgets as widgets
import pytest

import mcptrace
from conftest import ROOT, SAMPLES
from mcptrace.explorer import (ALL, ALL_TURNS, DIM_COLOR, ExplorerModel, ExplorerWidget, Filters,
                               timeline_call_ids)
from test_report import PAYLOADS, _hostile_capture

PLOTLY = "application/vnd.plotly.v1+json"
DANGEROUS = ("<script", "<img", "<svg", "</script")  # a tag only opens with a raw "<"


@pytest.fixture(scope="module")
def model(samples_ws):
    return ExplorerModel(samples_ws.con)


def _sid_by_client(ws, client: str) -> str:
    return ws.sql("SELECT session_id FROM sessions WHERE client_name = ?", [client]).rows()[0][0]


def _figure(out) -> dict:
    (o,) = out.outputs
    assert o["output_type"] == "display_data" and set(o["data"]) == {PLOTLY, "text/plain"}
    return o["data"][PLOTLY]


# -- plain logic ---------------------------------------------------------------------------------

def test_sessions_ordered_by_gaps_then_size(model, samples_ws):
    rows = samples_ws.sql("SELECT session_id, n_gaps, n_calls, first_ts FROM sessions").rows()
    expected = [r[0] for r in sorted(rows, key=lambda r: (-r[1], -r[2], r[3]))]
    assert model.session_ids() == expected
    assert [sid for _label, sid in model.session_options()] == expected
    # the samples: the plain host (6 gaps, 5 calls) before the agent (5 gaps, 14 calls) before the IDE (1 gap)
    assert expected == [_sid_by_client(samples_ws, c) for c in ("plain-host", "agent-host", "ide-client")]
    label = model.session_options()[1][0]
    assert label.startswith("5 gaps · 14 calls · ") and "anthropic/session: " in label
    assert list(model.sessions()["session_id"]) == expected


def test_filter_choices(model, samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    ch = model.filter_choices(sid)
    assert ch["statuses"] == ["cancelled", "error", "ok", "tool_error"]
    assert {"search", "get_forecast", "slow_report", "tools/list", "resources/read"} <= set(ch["tools"])
    assert ch["gap_codes"] == ["cancelled", "downstream_unlinked", "missing_session_key"]
    lo, hi = ch["time_bounds"]
    first, last = samples_ws.sql("SELECT min(start_ts), max(end_ts) FROM calls WHERE session_id = ?", [sid]).rows()[0]
    assert lo == 0.0 and hi == pytest.approx((last - first).total_seconds() * 1000, abs=0.01)


def test_filtering_logic(model, samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    everything = model.filtered_calls(sid)
    assert [c["call_id"] for c in everything] == [r[0] for r in samples_ws.sql(
        "SELECT call_id FROM calls WHERE session_id = ? ORDER BY start_ord", [sid]).rows()]
    assert model.filtered_calls(sid, Filters()) == everything and not Filters().active

    def ids(**kw):
        return [c["call_id"] for c in model.filtered_calls(sid, Filters(**kw))]

    def sql_ids(where, params=()):
        return [r[0] for r in samples_ws.sql(f"SELECT call_id FROM calls WHERE session_id = ? AND {where} "
                                             "ORDER BY start_ord", [sid, *params]).rows()]

    assert ids(status="tool_error") == sql_ids("status = 'tool_error'") != []
    assert ids(tool="search") == sql_ids("tool_name = 'search'") and len(ids(tool="search")) == 2
    assert ids(tool="tools/list") == sql_ids("method = 'tools/list'") != []
    assert ids(gap_code="downstream_unlinked") == sql_ids(
        "call_id IN (SELECT call_id FROM gaps WHERE code = 'downstream_unlinked')") != []
    assert ids(tool="search", status="tool_error") == []
    assert ids(tool="divide", status="tool_error") == sql_ids("tool_name = 'divide' AND status = 'tool_error'")
    # time range: calls whose [start, end] overlaps [lo, hi] (ms since the session's first call)
    t0 = samples_ws.sql("SELECT min(start_ts) FROM calls WHERE session_id = ?", [sid]).rows()[0][0]
    lo, hi = 1100.0, 1500.0
    expected = sql_ids("epoch_us(start_ts) - ? <= ? AND epoch_us(coalesce(end_ts, '9999-01-01')) - ? >= ?",
                       [int(t0.timestamp() * 1e6), int(hi * 1000), int(t0.timestamp() * 1e6), int(lo * 1000)])
    assert ids(time_range_ms=(lo, hi)) == expected and 0 < len(expected) < len(everything)
    assert ids(time_range_ms=(lo, hi), tool="search") == [c for c in expected if c in ids(tool="search")]
    # an unanswered call never ends: any range after its start still holds it
    plain = _sid_by_client(samples_ws, "plain-host")
    crash = samples_ws.sql("SELECT call_id FROM calls WHERE session_id = ? AND status = 'unanswered'", [plain]).rows()[0][0]
    late = model.filter_choices(plain)["time_bounds"][1] + 10_000
    assert [c["call_id"] for c in model.filtered_calls(plain, Filters(time_range_ms=(late - 1, late)))] == [crash]


def test_gap_list_follows_filters(model, samples_ws):
    sid = _sid_by_client(samples_ws, "plain-host")
    all_gaps = model.gaps(sid)
    assert sorted(g["gap_id"] for g in all_gaps) == [r[0] for r in samples_ws.sql(
        "SELECT gap_id FROM gaps WHERE session_id = ? ORDER BY gap_id", [sid]).rows()]
    only = model.gaps(sid, Filters(gap_code="invalid_traceparent"))
    assert [g["code"] for g in only] == ["invalid_traceparent"]
    unanswered = model.gaps(sid, Filters(status="unanswered"))
    assert sorted(g["code"] for g in unanswered) == ["missing_trace_context", "unanswered_request"]
    assert all(g["call_id"] == model.filtered_calls(sid, Filters(status="unanswered"))[0]["call_id"] for g in unanswered)
    first = model.gaps(sid, Filters(time_range_ms=(0.0, 1.0)))
    assert [g["code"] for g in first] == ["missing_trace_context"]   # the initialize at 0 ms
    label = model.gap_label(only[0])
    assert "invalid_traceparent" in label and "error" in label and f"call {only[0]['call_id']}" in label
    detail = json.loads(model.gap_detail(only[0]["gap_id"]))
    assert detail["code"] == "invalid_traceparent" and detail["detail"]["where"] == "_meta.traceparent"


def test_inspector_shows_request_response_meta_spans_of_a_real_call(model, samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    call_id, req_id, resp_id, trace_id = samples_ws.sql(
        "SELECT call_id, request_message_id, response_message_id, trace_id FROM calls WHERE session_id = ? "
        "AND tool_name = 'get_forecast' AND status = 'ok' ORDER BY start_ord LIMIT 1", [sid]).rows()[0]
    raw = dict(samples_ws.sql("SELECT message_id, raw FROM messages WHERE message_id IN (?, ?)", [req_id, resp_id]).rows())
    d = model.inspect(call_id)
    assert d.session_id == sid and d.call_id == call_id
    assert json.loads(d.request_json) == json.loads(raw[req_id])
    assert json.loads(d.response_json) == json.loads(raw[resp_id])
    assert json.loads(d.request_json)["params"]["name"] == "get_forecast"
    meta = json.loads(d.meta_json.split("# request params._meta\n", 1)[1].split("\n\n# response", 1)[0])
    assert meta["traceparent"].split("-")[1] == trace_id and meta["anthropic/session"]
    fields = dict(d.fields)
    assert fields["tool / method"] == "get_forecast" and fields["trace id"] == trace_id
    assert fields["session key"].startswith("anthropic/session: ") and fields["status"] == "ok"
    roles = [line.split()[0] for line in d.spans_text.splitlines() if not line.startswith(" ")]
    assert roles[:2] == ["client", "server"] and "downstream" in roles
    assert d.http_text.startswith("(not HTTP")
    assert "get_forecast" in d.header_html() and d.title.startswith(f"call {call_id}: get_forecast")


def test_inspector_cancelled_unanswered_and_http_calls(model, samples_ws):
    cancelled = samples_ws.sql("SELECT call_id FROM calls WHERE status = 'cancelled'").rows()[0][0]
    d = model.inspect(cancelled)
    assert "notifications/cancelled" in d.response_json and "cancelled" in d.gaps_text
    assert json.loads(d.request_json)["params"]["name"] == "slow_report"
    unanswered = samples_ws.sql("SELECT call_id FROM calls WHERE status = 'unanswered'").rows()[0][0]
    d = model.inspect(unanswered)
    assert d.response_json == "(no response captured)"
    assert "unanswered_request" in d.gap_codes and '"code": "unanswered_request"' in d.gaps_text
    http_call = samples_ws.sql("SELECT call_id, mcp_session_id FROM calls WHERE mcp_session_id IS NOT NULL "
                               "AND tool_name IS NOT NULL LIMIT 1").rows()[0]
    d = model.inspect(http_call[0])
    assert "POST" in d.http_text and http_call[1] in d.http_text
    with pytest.raises(KeyError):
        model.inspect(10**9)


def test_filtered_figures_grey_what_is_filtered_out(model, samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    full = model.timeline(sid)
    n = len(model.calls(sid))
    assert sorted(timeline_call_ids(full)) == sorted(c["call_id"] for c in model.calls(sid))
    f = Filters(tool="search")
    picked = {c["call_id"] for c in model.filtered_calls(sid, f)}
    fig = model.timeline(sid, f)
    assert sorted(timeline_call_ids(fig)) == sorted(picked) and 0 < len(picked) < n
    dimmed = [t for t in fig.data if t.legendgroup == "filtered out"]
    assert len(dimmed) == 2 and dimmed[0].line.color == DIM_COLOR
    assert len(dimmed[1].x) == n - len(picked) == len(dimmed[1].customdata)
    assert dimmed[1].hovertemplate == next(t.hovertemplate for t in full.data if t.mode == "markers"
                                           and t.customdata is not None)   # greyed calls keep their hover
    # the time range narrows the axis, in the axis' own units
    t0 = model.session_t0(sid)
    ranged = model.timeline(sid, Filters(time_range_ms=(100.0, 200.0)))
    lo, hi = ranged.layout.xaxis.range
    xs = [x for t in samples_ws.timeline(sid).data if t.mode == "lines" for x in t.x]
    assert isinstance(xs[0], float)   # epoch ms
    assert lo < t0.timestamp() * 1000 + 100 < t0.timestamp() * 1000 + 200 < hi < t0.timestamp() * 1000 + 210
    assert f"filter shows {len(picked)} of {n} calls" in fig.layout.title.text
    gap_only = model.timeline(sid, Filters(gap_code="cancelled"))
    hidden = {t.name.split(" (")[0] for t in gap_only.data if t.visible == "legendonly"}
    assert hidden == {"gap: downstream_unlinked", "gap: missing_session_key"}
    # the cached base figure is not changed by filtering
    assert model.timeline(sid).to_json() == full.to_json()
    wf = model.waterfall(sid, f)
    tree = samples_ws.tree(sid)
    colors = list(wf.data[0].marker.color)
    for cid, color in zip(tree["call_id"], colors):
        if cid is not None and str(cid) != "<NA>" and int(cid) not in picked:
            assert color == DIM_COLOR
    assert any(c != DIM_COLOR for c in colors)


# -- the wired widgets -----------------------------------------------------------------------------

def test_explore_builds_the_widget_and_reacts_to_a_session_change(samples_ws):
    ex = mcptrace.explore(samples_ws)
    assert isinstance(ex, ExplorerWidget) and isinstance(ex, widgets.VBox)
    assert isinstance(samples_ws.explore(), ExplorerWidget)
    order = ex.model.session_ids()
    assert ex.session_id == order[0]
    assert [v for _l, v in ex.call_list.options] == [c["call_id"] for c in ex.model.calls(order[0])]
    assert len(ex.gap_list.options) == len(ex.model.gaps(order[0]))
    assert order[0] in _figure(ex.timeline_out)["layout"]["title"]["text"]
    assert ex.call_list.value is not None and ex.request_text.value.startswith("{")

    ex.status_filter.value = "unanswered"     # a filter before the session change
    ex.session_picker.value = order[1]        # what a user's pick does
    assert ex.session_id == order[1]
    assert order[1] in ex.summary.value and order[0] not in ex.summary.value
    assert ex.status_filter.value == ALL and ex.tool_filter.value == ALL and ex.gap_filter.value == ALL
    assert list(ex.status_filter.options) == [ALL] + ex.model.filter_choices(order[1])["statuses"]
    assert [v for _l, v in ex.call_list.options] == [c["call_id"] for c in ex.model.calls(order[1])]
    assert ex.count_label.value == f"{len(ex.model.calls(order[1]))} of {len(ex.model.calls(order[1]))} calls · " \
                                   f"{len(ex.model.gaps(order[1]))} gaps"
    assert order[1] in _figure(ex.timeline_out)["layout"]["title"]["text"]
    # the inspector follows: the first call with a gap of the new session
    first_gapped = next(c for c in ex.model.calls(order[1]) if c["gap_codes"])
    assert ex.call_list.value == first_gapped["call_id"]
    assert json.loads(ex.request_text.value) == json.loads(ex.model.inspect(first_gapped["call_id"]).request_json)

    # the waterfall tab renders when it is opened
    ex.figure_tabs.selected_index = 1
    assert "Waterfall" in _figure(ex.waterfall_out)["layout"]["title"]["text"]


def test_widget_filters_gap_pick_and_reset(samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    ex = ExplorerWidget(samples_ws.con, sid)
    ex.tool_filter.value = "search"
    names = {ex.model.inspect(v).fields[0][1] for _l, v in ex.call_list.options}
    assert names == {"search"} and ex.count_label.value.startswith("2 of 14 calls")
    assert "filter shows 2 of 14 calls" in _figure(ex.timeline_out)["layout"]["title"]["text"]
    ex.tool_filter.value = ALL
    ex.gap_filter.value = "cancelled"
    assert [ex.model.gap_label(g) for g in ex.model.gaps(sid, ex.filters())] == [l for l, _v in ex.gap_list.options]
    (label, gap_id), = ex.gap_list.options
    ex.gap_list.value = gap_id                 # picking a gap shows its evidence and its call
    assert json.loads(ex.gap_detail.value)["code"] == "cancelled"
    call_id = json.loads(ex.gap_detail.value)["call_id"]
    assert ex.call_list.value == call_id and "notifications/cancelled" in ex.response_text.value
    lo, hi = ex.time_filter.min, ex.time_filter.max
    ex.time_filter.value = (lo, hi / 2)
    assert ex.filters().time_range_ms == (lo, hi / 2)
    ex.reset_button.click()
    assert ex.filters() == Filters() and ex.count_label.value.startswith("14 of 14 calls")


def test_capture_without_times_disables_the_time_filter():
    ws = mcptrace.load(ROOT / "data" / "bare")
    try:
        ex = mcptrace.explore(ws)
        assert ex.time_filter.disabled and ex.filters().time_range_ms is None
        assert ex.model.filter_choices(ex.session_id)["time_bounds"] is None
        assert _figure(ex.timeline_out)["layout"]["xaxis"]["title"]["text"] == "message order"
    finally:
        ws.close()


# -- sessions above the aggregation threshold -----------------------------------------------------

def test_model_of_an_aggregated_session_drills_down_by_turn(samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    m = ExplorerModel(samples_ws.con, aggregate_above=5)
    assert m.is_aggregated(sid) and not ExplorerModel(samples_ws.con).is_aggregated(sid)
    turns = samples_ws.turns(sid).df()
    assert [t["turn"] for t in m.turns(sid)] == list(turns["turn"])
    agg = m.waterfall(sid)
    assert "per turn (6 turns)" in agg.layout.title.text
    key = turns["turn"].iloc[4]
    detail = m.waterfall(sid, turn=key)
    assert detail.layout.title.text.endswith(f"turn {key}")
    assert len(detail.data[0].y) == len(samples_ws.tree(sid, turn=key))
    # every call maps to its turn
    for c in m.calls(sid):
        assert m.turn_of(sid, c["call_id"]) == (c["turn_id"] or turns["turn"].iloc[0])
    # a filter greys the turns without a picked call, under the others
    f = Filters(status="cancelled")
    dimmed = m.waterfall(sid, f)
    assert dimmed.data[0].name == "turns filtered out" and dimmed.data[0].line.color == DIM_COLOR
    kept = [row[8] for t in dimmed.data if t.mode == "markers" and t.customdata is not None
            and len(getattr(t.customdata, "shape", ())) == 2 for row in t.customdata]
    assert kept == [turns["turn"].iloc[4]]      # turn 3 holds the cancelled call
    options, n = m.turn_options(sid, f)
    assert options[0][1] == ALL_TURNS and [v for _l, v in options[1:]] == kept and n == 1
    options, _n = m.turn_options(sid, f, include=turns["turn"].iloc[0])
    assert [v for _l, v in options[1:]] == [turns["turn"].iloc[0], kept[0]]
    assert "turn 3 · 4 calls · 1 cancelled · 1 gaps" in m.turn_label(m.turns(sid)[4])


def test_widget_of_an_aggregated_session_drills_down_on_a_turn_or_a_call(samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    ex = ExplorerWidget(samples_ws.con, sid, aggregate_above=5)
    assert list(ex.waterfall_box.children) == [ex.turn_picker, ex.waterfall_out]
    assert ex.turn_picker.value == ALL_TURNS and len(ex.turn_picker.options) == 1 + 6
    ex.figure_tabs.selected_index = 1
    assert "per turn (6 turns)" in _figure(ex.waterfall_out)["layout"]["title"]["text"]
    # picking a turn drills down to its rows
    key = ex.turn_picker.options[3][1]
    ex.turn_picker.value = key
    assert _figure(ex.waterfall_out)["layout"]["title"]["text"].endswith(f"turn {key}")
    # picking a call in the list drills down to that call's turn
    cancelled = next(c for c in ex.model.calls(sid) if c["status"] == "cancelled")
    ex.call_list.value = cancelled["call_id"]
    assert ex.turn_picker.value == cancelled["turn_id"]
    assert _figure(ex.waterfall_out)["layout"]["title"]["text"].endswith(f"turn {cancelled['turn_id']}")
    ex.turn_picker.value = ALL_TURNS
    assert "per turn" in _figure(ex.waterfall_out)["layout"]["title"]["text"]
    # a session at or under the threshold (5 calls) has no turn picker: its waterfall is the full tree
    plain = _sid_by_client(samples_ws, "plain-host")
    ex.session_picker.value = plain
    assert not ex.model.is_aggregated(plain) and list(ex.waterfall_box.children) == [ex.waterfall_out]
    assert "Waterfall — session " + plain == _figure(ex.waterfall_out)["layout"]["title"]["text"]
    ex.session_picker.value = sid
    assert list(ex.waterfall_box.children) == [ex.turn_picker, ex.waterfall_out] and ex.turn_picker.value == ALL_TURNS
    small = ExplorerWidget(samples_ws.con, sid)
    assert list(small.waterfall_box.children) == [small.waterfall_out]


def test_filters_grey_the_timeline_with_its_overview_strip(samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    m = ExplorerModel(samples_ws.con, timeline_aggregate_above=5)
    full = m.timeline(sid)
    assert [t for t in full.data if t.type == "bar"]          # the overview strip is there
    f = Filters(status="ok")
    picked = {c["call_id"] for c in m.filtered_calls(sid, f)}
    fig = m.timeline(sid, f)
    assert sorted(timeline_call_ids(fig)) == sorted(picked) and 0 < len(picked) < len(m.calls(sid))
    dimmed = [t for t in fig.data if t.legendgroup == "filtered out"]
    assert len(dimmed) == 2 and len(dimmed[1].customdata) == len(m.calls(sid)) - len(picked)
    # gaps of calls outside the filter fade
    for t in fig.data:
        if (t.name or "").startswith("gap: "):
            assert list(t.marker.opacity) == [1.0 if not c or int(c) in picked else 0.2 for c in t.customdata]


def test_lists_show_at_most_list_limit_entries(samples_ws):
    sid = _sid_by_client(samples_ws, "agent-host")
    ex = ExplorerWidget(samples_ws.con, sid, list_limit=3)
    calls = ex.model.calls(sid)
    assert [v for _l, v in ex.call_list.options] == [c["call_id"] for c in calls[:3]]
    assert len(ex.gap_list.options) == 3 < len(ex.model.gaps(sid))
    assert ex.count_label.value.startswith(f"{len(calls)} of {len(calls)} calls · {len(ex.model.gaps(sid))} gaps")
    assert "first 3" in ex.count_label.value
    options, n = ex.model.call_options(sid, Filters(tool="search"))
    assert n == 2 and len(options) == 2


# -- hostile strings -------------------------------------------------------------------------------

def _walk(w):
    yield w
    for child in getattr(w, "children", ()) or ():
        yield from _walk(child)


def test_hostile_strings_are_escaped_wherever_html_is_rendered(tmp_path):
    ws = mcptrace.load(_hostile_capture(tmp_path))
    m = ExplorerModel(ws.con)
    seen_escaped = False
    for sid in m.session_ids():
        for html in [m.session_summary_html(sid)] + [m.inspect(c["call_id"]).header_html() for c in m.calls(sid)]:
            for bad in DANGEROUS:
                assert bad not in html, html
            seen_escaped |= "&lt;script&gt;document.documentElement" in html or "&lt;img src=x onerror=" in html
    assert seen_escaped  # the payloads are there, as text

    ex = mcptrace.explore(ws)
    sessions = m.session_ids()
    for sid in sessions:
        ex.session_picker.value = sid
        for idx in (0, 1):
            ex.figure_tabs.selected_index = idx
        for call_id in [v for _l, v in ex.call_list.options]:
            ex.call_list.value = call_id
            for w in _walk(ex):
                if isinstance(w, (widgets.HTML, widgets.HTMLMath)):
                    for bad in DANGEROUS:
                        assert bad not in w.value, (type(w).__name__, w.value)
                if hasattr(w, "description_allow_html"):
                    assert not w.description_allow_html
                if isinstance(w, widgets.Output):
                    for o in w.outputs:
                        assert "text/html" not in o.get("data", {})
                        text = json.dumps(o["data"][PLOTLY], ensure_ascii=False)
                        for bad in DANGEROUS:
                            assert bad not in text
    # the payloads reach the user as text: option labels and text areas are rendered as text
    labels = " ".join(l for l, _v in ex.call_list.options) + " ".join(l for l, _v in ex.session_picker.options)
    assert any(p[:30] in labels for p in PAYLOADS)
    assert any(p[:30] in ex.request_text.value.replace('\\"', '"') for p in PAYLOADS)
    ws.close()


def test_explorer_on_an_empty_workspace():
    ws = mcptrace.load([])
    try:
        ex = mcptrace.explore(ws)
        assert ex.session_id is None and ex.call_list.options == () and "No sessions" in ex.summary.value
    finally:
        ws.close()


def test_samples_fixture_is_the_shipped_samples(samples_ws):
    assert {p.rsplit("/", 1)[-1] for (p,) in samples_ws.sql("SELECT path FROM sources").rows()} == \
        {p.name for p in SAMPLES.iterdir()}


def test_unknown_ids_raise_not_found(samples_ws):
    m = ExplorerModel(samples_ws.con)
    for call, kind in ((lambda: m.session_summary("s_nope"), "session"), (lambda: m.gap_detail(10**9), "gap"),
                       (lambda: m.gap_call(10**9), "gap"), (lambda: m.inspect(10**9), "call")):
        with pytest.raises(mcptrace.NotFoundError, match=f"no {kind} ") as err:
            call()
        assert isinstance(err.value, KeyError) and err.value.kind == kind
    with pytest.raises(mcptrace.NotFoundError, match="no session 's_nope'"):
        ExplorerWidget(samples_ws.con, "s_nope")
    with pytest.raises(mcptrace.NotFoundError, match="no session 's_nope'"):
        mcptrace.explore(samples_ws, "s_nope")
    with pytest.raises(TypeError, match="DuckDB connection"):
        ExplorerModel(samples_ws)


def test_findings_list_filters_the_session_picker(incidents_ws):
    """Picking a finding narrows the sessions to those of its gaps and the gap filter to its code."""
    ws = incidents_ws
    ex = ExplorerWidget(ws.con)
    findings = ws.sql("SELECT finding_id, code, gap_ids FROM findings ORDER BY finding_id").rows()
    assert [v for _l, v in ex.finding_picker.options] == [0] + [f[0] for f in findings]
    all_sessions = [v for _l, v in ex.session_picker.options]
    assert all_sessions == ex.model.session_ids()
    for fid, code, gap_ids in findings[:6]:
        ex.finding_picker.value = fid                      # what a user's pick does
        want = {s for (s,) in ws.sql("SELECT DISTINCT session_id FROM gaps WHERE list_contains(?, gap_id)",
                                     [gap_ids]).rows()}
        shown = [v for _l, v in ex.session_picker.options]
        assert set(shown) == want and ex.session_id == shown[0]
        assert ex.gap_filter.value == code
        assert ex.gap_list.options and all(code in label for label, _g in ex.gap_list.options)
    ex.finding_picker.value = 0
    assert [v for _l, v in ex.session_picker.options] == all_sessions
