"""Waterfall: one row per turn above the threshold, drill-down to exactly one turn's rows,
and capture strings kept as text in both."""

from __future__ import annotations

import html
import json
import re

import plotly.io as pio
import pytest

import mcptrace
from conftest import ROOT
from mcptrace.render.export import write_figure
from mcptrace.render.waterfall import AGGREGATE_ABOVE, TURN_CLASSES
from test_report import PAYLOADS, _hostile_capture, _rendered_dom


def _turn_markers(fig):
    return [t for t in fig.data if t.mode == "markers" and t.legendgroup in TURN_CLASSES]


def _subtree(full, tops):
    """Node ids of ``tops`` and everything under them in a tree DataFrame."""
    children: dict = {}
    for nid, parent in zip(full["node_id"], full["parent_id"]):
        children.setdefault(parent, []).append(nid)
    keep, stack = set(), list(tops)
    while stack:
        nid = stack.pop()
        keep.add(nid)
        stack.extend(children.get(nid, []))
    return keep


def test_per_turn_rows_above_the_threshold(samples_ws):
    sid = samples_ws.busiest_session()
    assert AGGREGATE_ABOVE >= 1000
    assert [t.type for t in samples_ws.waterfall(sid).data][0] == "bar"      # below: the detailed tree
    fig = samples_ws.waterfall(sid, aggregate_above=5)
    turns = samples_ws.turns(sid).df()
    markers = _turn_markers(fig)
    rows = sorted((int(y), row[8]) for t in markers for y, row in zip(t.y, t.customdata))
    # one row per turn, in wire order, each carrying its key to drill down with
    assert rows == [(i, html.escape(k, quote=False)) for i, k in enumerate(turns["turn"])]
    assert sum(int(r[1]) for t in markers for r in t.customdata) == len(samples_ws.calls(sid))
    by_class = {t.legendgroup: len(t.y) for t in markers}
    worst = ["unanswered" if u else "error" if e else "cancelled" if c else "ok"
             for u, e, c in zip(turns["n_unanswered"], turns["n_errors"], turns["n_cancelled"])]
    assert by_class == {k: worst.count(k) for k in set(worst)}
    gapped = [t for t in fig.data if t.name.startswith("turns with") and "gaps" in t.name]
    assert sum(len(t.x) for t in gapped) == int((turns["n_gaps"] > 0).sum())
    assert list(fig.layout.yaxis.ticktext)[2].startswith("turn 1 · 3 calls")
    assert "per turn (6 turns)" in fig.layout.title.text
    assert "Aggregated: 14 calls in 6 turns" in fig.layout.annotations[0].text


@pytest.mark.parametrize("loaded", ["samples_ws", "incidents_ws"], ids=["samples", "incidents"])
def test_drill_down_gives_exactly_the_rows_of_that_turn(loaded, request):
    ws = request.getfixturevalue(loaded)
    for (sid,) in ws.sql("SELECT session_id FROM sessions").rows():
        full = ws.tree(sid)
        turns = ws.turns(sid).df()
        assert turns["n_calls"].sum() == len(ws.calls(sid))
        roots = [n for n, p in zip(full["node_id"], full["parent_id"]) if p is None and n != f"session:{sid}"]
        for key in turns["turn"]:
            part = ws.tree(sid, turn=key)
            if key.startswith("untraced:"):   # calls without a turn hang off the session
                tops = [n for n in part["node_id"] if n.startswith("call:")]
                assert tops and all(full.set_index("node_id").loc[n, "parent_id"] == f"session:{sid}" for n in tops)
            else:
                tops = [f"turn:{key}"]
            traces = set(part["trace_id"].dropna())
            extra = [r for r in roots if full.set_index("node_id").loc[r, "trace_id"] in traces]
            keep = _subtree(full, tops + extra) | {f"session:{sid}"}
            want = full[full["node_id"].isin(keep)].reset_index(drop=True)
            got = part.reset_index(drop=True)
            cols = [c for c in full.columns if c not in ("lane", "gaps")]
            assert got[cols].equals(want[cols]), (sid, key)
            # the gaps of the turn's nodes, none of other turns
            assert list(got["gaps"][1:]) == list(want["gaps"][1:])
            if key == turns["turn"].iloc[-1]:  # one turn a session (each is a query or a figure):
                # drilling down by one of its calls gives the same rows, and the figure draws them
                first_call = int(turns.set_index("turn").loc[key, "first_call_id"])
                assert ws.tree(sid, call_id=first_call)["node_id"].tolist() == got["node_id"].tolist()
                fig = ws.waterfall(sid, turn=key)
                assert len(fig.data[0].y) == len(got) and fig.layout.title.text.endswith(f"turn {html.escape(key)}")


def test_drill_down_figure_zooms_to_the_turn(samples_ws):
    sid = samples_ws.busiest_session()
    key = samples_ws.turns(sid).df()["turn"].iloc[-1]
    fig = samples_ws.waterfall(sid, turn=key)
    lo, hi = fig.layout.xaxis.range
    bar = fig.data[0]
    starts = list(bar.base)[1:]
    ends = [b + w for b, w in zip(list(bar.base)[1:], list(bar.x)[1:])]
    assert lo <= min(starts) and max(ends) <= hi
    assert list(bar.base)[0] < lo    # the session bar starts before the turn: it is clipped


def test_unknown_turn_or_foreign_call(samples_ws):
    sid = samples_ws.busiest_session()
    other = samples_ws.sql("SELECT call_id FROM calls WHERE session_id <> ? LIMIT 1", [sid]).rows()[0][0]
    with pytest.raises(KeyError, match="no turn"):
        samples_ws.waterfall(sid, turn="nope")
    with pytest.raises(KeyError, match="in session"):
        samples_ws.waterfall(sid, call_id=other)
    with pytest.raises(KeyError, match="no call"):
        samples_ws.tree(sid, call_id=10**9)
    with pytest.raises(KeyError, match="no session"):
        samples_ws.waterfall("s_nope", aggregate_above=0)


def test_hostile_strings_stay_text_in_the_per_turn_waterfall(tmp_path):
    ws = mcptrace.load(_hostile_capture(tmp_path))
    try:
        shown = []
        for (sid,) in ws.sql("SELECT session_id FROM sessions").rows():
            agg = ws.waterfall(sid, aggregate_above=0)
            for fig in (agg, ws.waterfall(sid, turn=ws.turns(sid).df()["turn"].iloc[0])):
                text = json.dumps(json.loads(pio.to_json(fig)), ensure_ascii=False)
                for p in PAYLOADS:
                    assert p not in text
                assert "<img" not in text and "<script" not in text and "<svg" not in text
            shown += [r[7] for t in _turn_markers(agg) for r in t.customdata]
            path = write_figure(agg, tmp_path / f"per_turn_{sid}.html")
        assert any("&lt;img src=x onerror=" in t or "&lt;script&gt;" in t for t in shown)   # there, as text
        dom = _rendered_dom(tmp_path / path.rsplit("/", 1)[-1])
        assert 'class="plot-container plotly"' in dom                 # it rendered
        assert "data-pwned" not in re.search(r"<html[^>]*>", dom).group(0)   # and no payload ran
    finally:
        ws.close()


def test_capture_without_times():
    ws = mcptrace.load(ROOT / "data" / "bare")
    try:
        sid = ws.busiest_session()
        assert ws.waterfall(sid).data[0].type == "bar"          # the whole tree draws (bars at 0)
        agg = ws.waterfall(sid, aggregate_above=0)
        assert agg.layout.xaxis.title.text == "message order"
        starts = sorted(x for t in _turn_markers(agg) for x in t.x)
        assert len(starts) == len(ws.turns(sid)) and starts == sorted(set(starts))
        key = ws.turns(sid).df()["turn"].iloc[2]
        assert len(ws.waterfall(sid, turn=key).data[0].y) == len(ws.tree(sid, turn=key))
    finally:
        ws.close()


def test_highlight_greys_the_other_calls_and_their_spans(samples_ws):
    from mcptrace.render.timeline import DIM_COLOR
    from mcptrace.render.waterfall import waterfall

    sid = samples_ws.busiest_session()
    tree = samples_ws.tree(sid)
    keep = {int(c) for c, k, s in zip(tree["call_id"], tree["kind"], tree["status"]) if k == "call" and s == "ok"}
    plain = waterfall(samples_ws.con, sid).data[0].marker.color
    colors = waterfall(samples_ws.con, sid, highlight=keep).data[0].marker.color
    assert len(colors) == len(tree) == len(plain)
    for cid, kind, before, after in zip(tree["call_id"], tree["kind"], plain, colors):
        if kind in ("session", "turn"):
            assert after == before != DIM_COLOR
        else:   # a call or one of its spans
            assert (after == DIM_COLOR) == (int(cid) not in keep) and (after == before or after == DIM_COLOR)
    assert DIM_COLOR in colors and DIM_COLOR not in plain


def test_highlight_in_the_per_turn_waterfall(samples_ws):
    from mcptrace.render.timeline import DIM_COLOR
    from mcptrace.render.waterfall import turn_waterfall

    sid = samples_ws.busiest_session()
    turns = samples_ws.turns(sid).df()
    cancelled = samples_ws.sql("SELECT call_id FROM calls WHERE session_id = ? AND status = 'cancelled'", [sid]).rows()
    fig = samples_ws.waterfall(sid, aggregate_above=5)
    dimmed = samples_ws.waterfall(sid, aggregate_above=5, highlight={r[0] for r in cancelled})
    assert dimmed.data[0].name == "turns filtered out" and dimmed.data[0].line.color == DIM_COLOR
    kept = [row[8] for t in _turn_markers(dimmed) for row in t.customdata]
    holding = [r[0] for r in samples_ws.sql("SELECT DISTINCT turn_id FROM calls WHERE session_id = ? "
                                           "AND status = 'cancelled'", [sid]).rows()]
    assert kept == [html.escape(k, quote=False) for k in holding] and len(kept) == 1
    assert len(dimmed.data[0].x) == 3 * (len(turns) - 1)
    # the legend keeps each class's count of turns
    assert sorted(t.name for t in dimmed.data[1:] if t.showlegend is not False) == \
        sorted(t.name for t in fig.data if t.showlegend is not False)
    # highlighting every call leaves nothing greyed
    every = turn_waterfall(samples_ws.con, sid, highlight={int(c) for c in samples_ws.calls(sid).df()["call_id"]})
    assert not [t for t in every.data if t.legendgroup == "filtered out"]
    assert sorted(r[8] for t in _turn_markers(every) for r in t.customdata) == \
        sorted(html.escape(k, quote=False) for k in turns["turn"])
