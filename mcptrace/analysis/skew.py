"""Opt-in clock-skew adjustment of spans, after Jaeger's clock-skew adjuster.

A span whose parent was recorded by another service (another host's clock) and that lies
outside its parent (beyond a tolerance; ending late counts only for a child shorter than
its parent) is shifted: centred in the parent when it is shorter, aligned to the
parent's start otherwise. Descendants on the same service inherit the shift (one host, one
clock). Raw times are never replaced: the results go to ``spans.adjusted_start_ts``,
``spans.adjusted_end_ts`` (TIMESTAMPTZ, UTC) and ``spans.clock_adjustment_ms`` (DOUBLE,
0 when unchanged); :func:`adjust_clock_skew` fills them, and they stay NULL until it runs.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb
import pyarrow as pa

from mcptrace.analysis.rebuild import SKEW_TOLERANCE_MS


def adjust_clock_skew(con: duckdb.DuckDBPyConnection, tolerance_ms: float = SKEW_TOLERANCE_MS) -> int:
    """Compute the adjusted span times for every trace; returns how many spans were shifted.

    A span is shifted only when it lies outside its parent by more than ``tolerance_ms``
    (the same tolerance as the ``clock_skew_suspected`` gap): async work that ends a moment
    after its parent is not skew.
    """
    tol = int(tolerance_ms * 1e6)
    t = con.sql("SELECT trace_id, span_id, parent_span_id, service_name, start_unix_nano, end_unix_nano "
                "FROM spans ORDER BY trace_id, start_unix_nano").to_arrow_table()
    cols = {name: t.column(name).to_pylist() for name in t.column_names}
    by_trace: dict[str, list[int]] = defaultdict(list)
    for i, tr in enumerate(cols["trace_id"]):
        by_trace[tr].append(i)
    delta = [0] * t.num_rows
    for idxs in by_trace.values():
        index = {cols["span_id"][i]: i for i in idxs}
        kids: dict[int | None, list[int]] = defaultdict(list)
        for i in idxs:
            kids[index.get(cols["parent_span_id"][i])].append(i)
        stack = list(kids[None])
        done = set()
        while stack:
            i = stack.pop()
            if i in done:
                continue
            done.add(i)
            p = index.get(cols["parent_span_id"][i])
            if p is not None:
                start, end = cols["start_unix_nano"][i], cols["end_unix_nano"][i]
                if cols["service_name"][i] == cols["service_name"][p]:
                    delta[i] = delta[p]
                elif start is not None and end is not None:
                    ps, pe = cols["start_unix_nano"][p] + delta[p], cols["end_unix_nano"][p] + delta[p]
                    dur, pdur = end - start, pe - ps
                    # ending late is skew only for a child shorter than its parent (a longer one
                    # is work that outlived its caller, e.g. a cancelled request)
                    if start < ps - tol or start > pe + tol or (end > pe + tol and dur <= pdur):
                        delta[i] = (ps + (pdur - dur) // 2 - start) if dur <= pdur else (ps - start)
            stack.extend(kids.get(i, []))
    shifts = pa.table({"trace_id": t.column("trace_id"), "span_id": t.column("span_id"),
                       "delta_ns": pa.array(delta, pa.int64())})
    con.register("_skew", shifts)
    try:
        con.execute("""UPDATE spans SET adjusted_start_ts = make_timestamp((start_unix_nano + k.delta_ns) // 1000)::TIMESTAMPTZ,
                                        adjusted_end_ts = make_timestamp((end_unix_nano + k.delta_ns) // 1000)::TIMESTAMPTZ,
                                        clock_adjustment_ms = k.delta_ns / 1e6
                       FROM _skew k WHERE spans.trace_id = k.trace_id AND spans.span_id = k.span_id""")
    finally:
        con.unregister("_skew")
    return sum(1 for d in delta if d)
