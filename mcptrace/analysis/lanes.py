"""Lanes for drawing intervals (calls) side by side, computed set-based in DuckDB.

A lane is a row of a timeline: two intervals in one lane never overlap, and a session uses as
few lanes as it has intervals truly in flight at once (the fewest possible: interval graphs
are perfect). The classic way, greedy "lowest free lane" in start order, walks the intervals
one by one; here the assignment is a fixed number of set-based SQL steps (window functions and
joins), so a 50k-call session gets its lanes inside DuckDB in a few tens of milliseconds.

How it works (``LANES_SQL``, over the intervals registered as the relation ``_lane_src``):

1. *Clusters*. In start order, an interval that starts at or after the end of everything before
   it opens a new cluster (a running ``max(end)``, like ``parallel_group``). Clusters are
   disjoint in time, so each starts again from lane 0.
2. *Events*. Within a cluster, starts (+1) and ends (-1) are ordered by time, ends before starts
   at the same instant (touching intervals do not overlap), and the end of a zero-length
   interval right after its own start. ``depth`` is the running sum (intervals in flight) and
   ``M`` its running maximum (lanes opened so far); ``M - depth`` is the number of free lanes.
3. *Free lanes as a stack*. An end pushes its lane onto the free stack; a start pops the most
   recently freed lane, or opens lane ``depth - 1`` when the stack is empty (``depth`` exceeds
   every earlier depth). A push reaches stack level ``M - depth``, a pop takes level
   ``M - depth + 1``; at each level pushes and pops alternate, so the lane a start pops is that
   of the previous event at its level (``lag`` over ``PARTITION BY cluster, level``): its
   predecessor in the lane, which ended before it started.
4. *Chains*. Predecessor links form one chain per lane, rooted at the interval that opened it;
   pointer jumping (``ptr := ptr[ptr]``, ``ceil(log2(n)) + 1`` joins) finds every root at once
   and the lane is the root's.

Guarantees: two intervals in one lane never overlap (each follows its predecessor, which ended
at or before its start); an open interval (``e`` NULL) never frees its lane; the number of lanes
is the maximum number of intervals in flight at once. The layout differs from greedy
lowest-free-lane only in *which* free lane a start takes (the most recently freed one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from mcptrace.core.result import Result

#: The lane query over the relation ``_lane_src``: ``id`` (unique), ``s`` (start) and ``e`` (end,
#: NULL = open to the end of the capture); ``s``/``e`` are numbers (epoch µs, message order, …).
#: ``{jumps}`` are the pointer-jumping steps and ``{last}`` the name of the last one (the only
#: parts :func:`lanes_sql` generates: their number depends on how many intervals there are).
LANES_SQL = """
WITH _lane_iv AS MATERIALIZED (
    SELECT id, s::DOUBLE AS s, CASE WHEN e IS NULL THEN NULL ELSE greatest(e, s)::DOUBLE END AS e FROM _lane_src
), _lane_r AS (
    SELECT id, s, e, row_number() OVER (ORDER BY s, e NULLS LAST, id) AS idx FROM _lane_iv
), _lane_c AS (
    SELECT *, max(coalesce(e, 'infinity'::DOUBLE)) OVER (ORDER BY idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                  AS prev_end
    FROM _lane_r
), _lane_k AS (
    SELECT id, s, e, idx,
           sum(CASE WHEN prev_end IS NULL OR s >= prev_end THEN 1 ELSE 0 END) OVER (ORDER BY idx ROWS UNBOUNDED PRECEDING)
               AS cl
    FROM _lane_c
), _lane_ev AS (
    SELECT id, cl, s AS t, 1 AS kind, idx, 0 AS sub, 1 AS d FROM _lane_k
    UNION ALL
    SELECT id, cl, e, CASE WHEN e > s THEN 0 ELSE 1 END, idx, 1, -1 FROM _lane_k WHERE e IS NOT NULL
), _lane_d AS (
    SELECT *, sum(d) OVER w AS depth, row_number() OVER w AS eo
    FROM _lane_ev WINDOW w AS (PARTITION BY cl ORDER BY t, kind, idx, sub ROWS UNBOUNDED PRECEDING)
), _lane_m AS (
    SELECT *, coalesce(max(depth) OVER (PARTITION BY cl ORDER BY eo ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                  AS mprev
    FROM _lane_d
), _lane_l AS (
    SELECT id, cl, eo, d, depth, d = 1 AND depth > mprev AS opener,
           CASE WHEN d = 1 AND depth <= mprev THEN mprev - depth + 1 WHEN d = -1 THEN mprev - depth END AS level
    FROM _lane_m
), _lane_p0 AS MATERIALIZED (
    SELECT id, CASE WHEN opener THEN id ELSE pred END AS ptr, CASE WHEN opener THEN depth - 1 END AS lane
    FROM (SELECT *, lag(id) OVER (PARTITION BY cl, level ORDER BY eo) AS pred FROM _lane_l)
    WHERE d = 1
){jumps}
SELECT p.id, r.lane::INTEGER AS lane FROM {last} p JOIN _lane_p0 r ON r.id = p.ptr
"""
_JUMP = ", _lane_p{k} AS MATERIALIZED (SELECT a.id, b.ptr FROM _lane_p{j} a JOIN _lane_p{j} b ON b.id = a.ptr)"

#: The intervals of one session's calls in message order (unique, start < end; bare captures
#: have no times): lanes that do not overlap in message order do not overlap in time either.
CALL_INTERVALS_SQL = "SELECT call_id AS id, start_ord AS s, end_ord AS e FROM calls WHERE session_id = $session_id"


def lanes_sql(n: int) -> str:
    """The lane query (see :data:`LANES_SQL`) for at most ``n`` intervals in the relation
    ``_lane_src`` (``n`` sizes the pointer jumping: ``ceil(log2(n)) + 1`` steps). Returns SQL
    yielding ``id``, ``lane`` INTEGER (0-based)."""
    steps = max(1, int(n).bit_length()) + 1
    jumps = "".join(_JUMP.format(k=k, j=k - 1) for k in range(1, steps + 1))
    return LANES_SQL.format(jumps=jumps, last=f"_lane_p{steps}")


def lanes(con: duckdb.DuckDBPyConnection, source: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pa.Table:
    """Lanes of the intervals the query ``source`` yields (columns ``id``, ``s``, ``e``; see
    :data:`LANES_SQL`), as an Arrow table ``id``, ``lane`` INTEGER (0-based), in no particular order.
    ``source`` runs on its own with ``params``; its result is handed to the lane query as a relation.

    >>> lanes(con, "SELECT * FROM (VALUES (1, 0, 10), (2, 5, NULL), (3, 10, 12)) t(id, s, e)")  # doctest: +SKIP
    """
    intervals = con.sql(source, params=params).to_arrow_table()
    con.register("_lane_src", intervals)
    try:
        return con.sql(lanes_sql(intervals.num_rows)).to_arrow_table()
    finally:
        con.unregister("_lane_src")


def call_lanes(con: duckdb.DuckDBPyConnection, session_id: str) -> Result:
    """The lane of each call of one session: ``call_id`` BIGINT, ``lane`` INTEGER (0-based), by call_id.

    Calls in one lane never overlap (in message order, hence in time); a call still open at the
    end of the capture keeps its lane to the end; a session uses as many lanes as it has calls in
    flight at once (``sessions.max_parallel``, counted in message order). Unknown sessions give no
    rows."""
    t = lanes(con, CALL_INTERVALS_SQL, {"session_id": session_id})
    t = t.rename_columns(["call_id", "lane"]).sort_by("call_id")
    return Result(t.cast(pa.schema([("call_id", pa.int64()), ("lane", pa.int32())])))
