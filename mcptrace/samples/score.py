"""Precision and recall of mcptrace's gap rows on the incident captures.

    python -m mcptrace.samples.score [DIR]      # default data/incidents

Each situation of :mod:`mcptrace.samples.incidents` has its exact expected gap rows in
:data:`EXPECTED`: (code, severity, the call's tool or method, how the evidence was matched or
which part of a split) per row, and for situations whose clients tag their arguments with the
ground truth (``client-A``, ``turn 2``, a region), that tag as a fifth element: the tag of the
call the row names, and for a downstream root the region it served (read from its own
``url.query``) beside the region of the chosen call. The script loads each situation's pair of
files, counts a found row as correct when the expected rows hold it (as a multiset), and prints
per gap code: expected, found, correct, precision (correct / found) and recall (correct /
expected). Exits 1 when any is below 1.0. For the situations with turn tags it also prints the
pairwise precision and recall of ``parallel_group``: pairs of calls in one group against pairs of
calls the client sent concurrently in one turn.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from pathlib import Path

#: Exact gap rows per situation (see the module docstring for the key).
EXPECTED: dict[str, dict[tuple, int]] = {
    "cancelled_call": {("cancelled", "info", "slow_report", None): 1},
    "downstream_without_propagation": {("downstream_unlinked", "error", "get_alerts", None): 1},
    "input_required_retry": {},
    "reconnect_with_session_key": {
        ("session_reconnect", "info", "initialize", None): 1,
        ("unanswered_request", "error", "export_report", None): 1,
        ("server_span_missing", "warning", "export_report", None): 1,
    },
    "reconnect_without_session_key": {
        ("session_split", "error", "export_report", "before"): 1,
        ("session_split", "error", "initialize", "after"): 1,
        ("unanswered_request", "error", "export_report", None): 1,
        ("server_span_missing", "warning", "export_report", None): 1,
    },
    "response_with_unknown_id": {("orphan_response", "error", None, None): 1},
    "server_killed_mid_call": {
        ("unanswered_request", "error", "hang", None): 1,
        ("server_span_missing", "warning", "hang", None): 1,
    },
    "server_without_trace_extraction": {
        ("server_span_unlinked", "error", "divide", "link"): 1,
        ("server_span_unlinked", "error", "search", "attributes"): 2,
        ("server_span_unlinked", "error", "initialize", "attributes"): 1,
        ("server_span_unlinked", "error", "tools/list", "attributes"): 1,
    },
    "stateless_three_clients": {
        ("missing_trace_context", "warning", "tools/list", None): 1,
        ("missing_trace_context", "warning", "search", None): 2,
        ("missing_trace_context", "warning", "divide", None): 2,
    },
    "unknown_progress_token": {("unknown_progress_token", "warning", None, None): 1},
    "untraced_parallel_turn": {
        ("missing_trace_context", "warning", "divide", None, "2"): 1,
        ("missing_trace_context", "warning", "divide", None, "3"): 1,
        ("missing_trace_context", "warning", "search", None, "2"): 2,
        ("missing_trace_context", "warning", "search", None, "3"): 2,
    },
    "downstream_untraced_client": {
        ("downstream_unlinked", "error", "get_alerts_plain", None, "IDF->IDF"): 1,
        ("downstream_unlinked", "error", "get_alerts_plain", None, "BBG->BBG"): 1,
        ("downstream_unlinked", "error", "get_alerts_plain", None, "kanto->kanto"): 1,
    },
    "colliding_ids_no_extraction": {
        ("server_span_unlinked", "error", "initialize", "attributes", "a:10"): 1,
        ("server_span_unlinked", "error", "initialize", "attributes", "a:20"): 1,
        ("server_span_unlinked", "error", "tools/list", "attributes", "a:10"): 1,
        ("server_span_unlinked", "error", "tools/list", "attributes", "a:20"): 1,
        ("server_span_unlinked", "error", "search", "attributes", "amberturn1auth->amberturn1auth"): 1,
        ("server_span_unlinked", "error", "search", "attributes", "amberturn1caching->amberturn1caching"): 1,
        ("server_span_unlinked", "error", "search", "attributes", "amberturn2logs->amberturn2logs"): 1,
        ("server_span_unlinked", "error", "search", "attributes", "blueturn1caching->blueturn1caching"): 1,
        ("server_span_unlinked", "error", "search", "attributes",
         "blueturn1cancellation->blueturn1cancellation"): 1,
        ("server_span_unlinked", "error", "search", "attributes", "blueturn2logs->blueturn2logs"): 1,
        ("server_span_unlinked", "error", "divide", "attributes", "a:10->a:10"): 1,
        ("server_span_unlinked", "error", "divide", "attributes", "a:20->a:20"): 1,
    },
    "spans_twice": {
        ("orphan_span", "warning", "initialize", None): 1,
        ("orphan_span", "warning", "tools/list", None): 1,
        ("orphan_span", "warning", "search", None): 1,
        ("orphan_span", "warning", "divide", None): 1,
    },
    "resumable_http_server": {},
    "lookalike_clients_reconnect": {
        ("session_split", "error", "export_report", "before", "A"): 1,
        ("session_split", "error", "slow_report", "before", "B"): 1,
        ("session_split", "error", "initialize", "after", "A"): 1,
        ("session_split", "error", "initialize", "after", "B"): 1,
        ("unanswered_request", "error", "export_report", None, "A"): 1,
        ("unanswered_request", "error", "slow_report", None, "B"): 1,
        ("missing_trace_context", "warning", "initialize", None, "A"): 2,
        ("missing_trace_context", "warning", "initialize", None, "B"): 2,
        ("missing_trace_context", "warning", "tools/list", None, "A"): 2,
        ("missing_trace_context", "warning", "tools/list", None, "B"): 2,
        ("missing_trace_context", "warning", "search", None, "A"): 2,
        ("missing_trace_context", "warning", "search", None, "B"): 2,
        ("missing_trace_context", "warning", "export_report", None, "A"): 2,
        ("missing_trace_context", "warning", "export_report", None, "B"): 1,
        ("missing_trace_context", "warning", "slow_report", None, "B"): 1,
    },
}

#: Situations whose rows carry a ground-truth tag: the regular expression (RE2) whose first group,
#: matched against the call's ``params.arguments`` JSON text (else against those of any call of the
#: row's session), is the tag. A row naming a span that carries its own truth gets ``truth->tag``:
#: the region in a downstream root's ``url.query``, or the tag of a server span's
#: ``gen_ai.tool.call.arguments``.
TAGS: dict[str, str] = {
    "untraced_parallel_turn": r'(?:turn |"a": ?)(\d)',
    "downstream_untraced_client": r'"region": ?"(\w+)"',
    "colliding_ids_no_extraction": r'(amber turn \d \w+|blue turn \d \w+|"a": ?\d+)',
    "lookalike_clients_reconnect": r'(?:client-|")([AB])[:-]',
}

#: Situations whose calls carry their turn in their arguments (the regular expression's first group).
TURN_TAGS: dict[str, str] = {"untraced_parallel_turn": r'(?:turn |"a": ?)(\d)'}


#: the tag: the first group of a TAGS expression, without quotes and spaces
_TAG = "nullif(regexp_replace(regexp_extract({text}, $tag, 1), '[\" ]', '', 'g'), '')"


def gap_rows(ws, name: str) -> Counter:
    """The key of every gap row of one loaded situation (see the module docstring)."""
    tag = TAGS.get(name)
    arguments = _TAG.format(text="m.raw->>'$.params.arguments'")
    span_arguments = _TAG.format(text="""s.attributes->>'$."gen_ai.tool.call.arguments"'""")
    rows = ws.sql(f"""
        WITH ctag AS (
            SELECT c.call_id, c.session_id, {arguments} AS tag
            FROM calls c JOIN messages m ON m.message_id = c.request_message_id
        ), stag AS (
            SELECT session_id, min(tag) AS tag FROM ctag GROUP BY 1
        )
        SELECT g.code, g.severity, coalesce(c.tool_name, c.method),
               coalesce(g.detail->>'$.matched_by', g.detail->>'$.part'),
               coalesce(ct.tag, st.tag),
               CASE WHEN g.code = 'downstream_unlinked' THEN regexp_extract(s.attributes->>'$."url.query"', '=(.*)$', 1)
                    ELSE {span_arguments} END
        FROM gaps g LEFT JOIN calls c USING (call_id) LEFT JOIN ctag ct USING (call_id)
        LEFT JOIN stag st ON st.session_id = g.session_id
        LEFT JOIN spans s ON s.span_id = g.span_id
                          AND s.trace_id = coalesce(g.detail->>'$.server_span_trace_id', g.trace_id)""",
                  {"tag": tag or "()"}).rows()
    out: Counter = Counter()
    for code, severity, what, how, call_tag, truth in rows:
        if tag is None:
            out[(code, severity, what, how)] += 1
        else:
            out[(code, severity, what, how, call_tag if truth is None else f"{truth}->{call_tag}")] += 1
    return out


def parallel_pairs(ws, name: str) -> tuple[set, set]:
    """(pairs of calls sharing a parallel_group, pairs of calls sent together in one turn) among the
    calls whose arguments carry a turn tag."""
    rows = ws.sql(f"""SELECT c.call_id, c.parallel_group, {_TAG.format(text="m.raw->>'$.params.arguments'")}
                      FROM calls c JOIN messages m ON m.message_id = c.request_message_id""",
                  {"tag": TURN_TAGS[name]}).rows()
    rows = [r for r in rows if r[2]]
    found = {(a[0], b[0]) for a, b in itertools.combinations(sorted(rows), 2) if a[1] is not None and a[1] == b[1]}
    truth = {(a[0], b[0]) for a, b in itertools.combinations(sorted(rows), 2) if a[2] == b[2]}
    return found, truth


def score(directory: Path) -> tuple[dict[str, tuple[int, int, int]], dict[str, tuple[int, int, int]]]:
    """Per gap code (expected, found, correct) over every situation in ``directory``; and per
    situation with turn tags the pairwise parallel-group counts (true pairs, found pairs, correct)."""
    import mcptrace

    codes: dict[str, list[int]] = {}
    pairs: dict[str, tuple[int, int, int]] = {}
    for name, expected in EXPECTED.items():
        ws = mcptrace.load([directory / f"{name}.jsonl", directory / f"{name}.otlp.jsonl"])
        try:
            found = gap_rows(ws, name)
            want = Counter(expected)
            for key in set(found) | set(want):
                c = codes.setdefault(key[0], [0, 0, 0])
                c[0] += want[key]
                c[1] += found[key]
                c[2] += min(want[key], found[key])
            if name in TURN_TAGS:
                got, truth = parallel_pairs(ws, name)
                pairs[name] = (len(truth), len(got), len(got & truth))
        finally:
            ws.close()
    return {k: tuple(v) for k, v in sorted(codes.items())}, pairs


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", default="data/incidents")
    args = parser.parse_args(argv)
    codes, pairs = score(Path(args.directory))
    print(f"{'gap code':<26} {'expected':>8} {'found':>6} {'correct':>7} {'precision':>9} {'recall':>6}")
    ok = True
    for code, (want, found, right) in codes.items():
        p, r = _ratio(right, found), _ratio(right, want)
        ok &= p == 1.0 and r == 1.0
        print(f"{code:<26} {want:>8} {found:>6} {right:>7} {p:>9.2f} {r:>6.2f}")
    for name, (truth, found, right) in pairs.items():
        p, r = _ratio(right, found), _ratio(right, truth)
        ok &= p == 1.0 and r == 1.0
        print(f"parallel pairs of {name}: {truth} true, {found} found, {right} correct: "
              f"precision {p:.2f}, recall {r:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
