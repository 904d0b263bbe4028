"""Lanes in SQL: no two intervals of a lane overlap, open intervals keep their lane, and a
session uses no more lanes than it has intervals in flight at once; on generated intervals
against a brute-force check, and on every session of the real captures."""

from __future__ import annotations

import itertools

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mcptrace
from conftest import ROOT
from mcptrace.analysis.lanes import call_lanes, lanes, lanes_sql

INF = float("inf")

# (start, duration): duration None is an interval still open at the end of the capture; 0 is a point
intervals = st.lists(st.tuples(st.integers(0, 200), st.one_of(st.none(), st.integers(0, 60))), max_size=50)


def _end(iv) -> float:
    return INF if iv[1] is None else iv[1]


def overlap(a, b) -> bool:
    """Open intervals intersect (touching ends do not overlap; a point inside an interval does)."""
    return a[0] < _end(b) and b[0] < _end(a)


def fewest_lanes(ivs) -> int:
    """The largest set of pairwise-overlapping intervals (= the fewest lanes: interval graphs are
    perfect): for each interval, it and the earlier-starting intervals that overlap it."""
    best = 0
    for i, a in enumerate(ivs):
        best = max(best, 1 + sum(1 for j, b in enumerate(ivs) if j != i and (b[0], j) < (a[0], i) and overlap(a, b)))
    return best


def _lanes(con, ivs) -> dict[int, int]:
    table = pa.table({"id": list(range(len(ivs))), "s": [s for s, _ in ivs], "e": [e for _, e in ivs]},
                     schema=pa.schema([("id", pa.int64()), ("s", pa.int64()), ("e", pa.int64())]))
    con.register("generated_intervals", table)
    try:
        out = lanes(con, "SELECT id, s, e FROM generated_intervals")
    finally:
        con.unregister("generated_intervals")
    return dict(zip(out["id"].to_pylist(), out["lane"].to_pylist()))


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    yield c
    c.close()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(raw=intervals)
def test_generated_intervals_never_overlap_in_a_lane_and_use_the_fewest_lanes(con, raw):
    ivs = [(s, None if d is None else s + d) for s, d in raw]
    lane = _lanes(con, ivs)
    assert sorted(lane) == list(range(len(ivs)))
    for i, j in itertools.combinations(range(len(ivs)), 2):
        if lane[i] == lane[j]:
            assert not overlap(ivs[i], ivs[j]), (ivs[i], ivs[j], lane[i])
    assert (max(lane.values()) + 1 if lane else 0) == fewest_lanes(ivs)
    assert all(v >= 0 for v in lane.values())


def test_open_intervals_keep_their_lane_to_the_end(con):
    # an open call at 0, then a long run of sequential calls: they share one other lane
    ivs = [(0, None)] + [(10 * k + 1, 10 * k + 9) for k in range(200)] + [(5, None), (3000, 3001)]
    lane = _lanes(con, ivs)
    assert lane[0] != lane[201]
    assert {lane[k] for k in range(1, 201)} == {1}            # reused, never lane 0 (still open)
    assert lane[202] not in (lane[0], lane[201])
    assert max(lane.values()) + 1 == fewest_lanes(ivs) == 3


def test_touching_and_zero_length_intervals(con):
    lane = _lanes(con, [(0, 10), (10, 20), (20, 20), (20, 30), (5, 5)])
    assert lane[0] == lane[1] == lane[3]            # touching ends do not overlap
    assert lane[4] != lane[0]                       # a point inside an interval does


def test_lanes_sql_sizes_its_pointer_jumping_from_n():
    assert lanes_sql(1).count("_lane_p") < \
        lanes_sql(100_000).count("_lane_p")


@pytest.mark.parametrize("loaded", ["samples_ws", "incidents_ws", ROOT / "data" / "bare"],
                         ids=["samples", "incidents", "bare"])
def test_call_lanes_of_every_real_session(loaded, request):
    ws = request.getfixturevalue(loaded) if isinstance(loaded, str) else mcptrace.load(loaded)
    try:
        for (sid,) in ws.sql("SELECT session_id FROM sessions").rows():
            lane = dict(call_lanes(ws.con, sid).rows())
            calls = ws.sql("SELECT call_id, start_ord, end_ord, epoch_us(start_ts), epoch_us(end_ts) FROM calls "
                           "WHERE session_id = ?", [sid]).rows()
            assert set(lane) == {c[0] for c in calls}
            ords = {c[0]: (c[1], c[2]) for c in calls}
            times = {c[0]: (c[3], c[4] if c[2] is not None else None) for c in calls}
            for a, b in itertools.combinations(ords, 2):
                if lane[a] == lane[b]:
                    assert not overlap(ords[a], ords[b]), (sid, a, b)
                    if times[a][0] is not None and times[b][0] is not None:
                        assert not overlap(times[a], times[b]), (sid, a, b)
            assert max(lane.values()) + 1 == fewest_lanes(list(ords.values()))
        assert len(call_lanes(ws.con, "s_nope")) == 0
    finally:
        if not isinstance(loaded, str):  # the shared workspaces close at the end of the session
            ws.close()
