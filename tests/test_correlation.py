"""Correlation analysis on the incident captures (data/incidents, real SDK processes, one
situation each): the exact gap rows of every situation, sessions across reconnects, retry
chains, and the exact tree of one parallel turn."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

import mcptrace
from conftest import ROOT
from mcptrace.samples.score import EXPECTED, gap_rows, score

INCIDENTS = ROOT / "data" / "incidents"


def load(name: str):
    return mcptrace.load([INCIDENTS / f"{name}.jsonl", INCIDENTS / f"{name}.otlp.jsonl"])


def test_every_incident_has_expectations():
    assert sorted(p.name[: -len(".otlp.jsonl")] for p in INCIDENTS.glob("*.otlp.jsonl")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gap_rows_of_each_incident(name):
    ws = load(name)
    assert gap_rows(ws, name) == Counter(EXPECTED[name])
    assert ws.sql("SELECT count(*) FROM rejects").rows() == [(0,)]
    # every row can be verified: it names its session and carries evidence
    assert ws.sql("SELECT count(*) FROM gaps WHERE session_id IS NULL OR detail IS NULL").rows() == [(0,)]


def test_precision_and_recall_of_every_gap_code_are_one():
    codes, pairs = score(INCIDENTS)
    assert {code: (right / found, right / want) for code, (want, found, right) in codes.items()} == \
        {code: (1.0, 1.0) for code in codes}
    assert all(truth == found == right > 0 for truth, found, right in pairs.values()), pairs
    r = subprocess.run([sys.executable, "-m", "mcptrace.samples.score", str(INCIDENTS)], capture_output=True, text=True)
    assert r.returncode == 0 and "precision" in r.stdout, r.stdout + r.stderr


def test_unlinked_server_spans_say_what_matched():
    ws = load("server_without_trace_extraction")
    for code, detail in ws.sql("SELECT code, detail FROM gaps").rows():
        d = json.loads(detail)
        assert d["expected_trace_id"] != d["server_span_trace_id"]
        if d["matched_by"] == "link":
            assert d["link"]["trace_id"] == d["expected_trace_id"]
        else:
            assert d["matched_on"][:2] == ["jsonrpc.request.id", "mcp.method.name"]
    # the server spans are still joined to their calls, by link or attributes, never by parent
    assert sorted(ws.sql("SELECT matched_by, count(*) FROM call_spans WHERE role = 'server' GROUP BY 1").rows()) == \
        [("attributes", 4), ("link", 1)]


def test_reconnect_keeps_one_session_when_the_key_carries_over():
    ws = load("reconnect_with_session_key")
    assert ws.sql("SELECT session_key_source, n_calls, n_transport_sessions FROM sessions").rows() == \
        [("anthropic/session", 9, 2)]
    detail = json.loads(ws.gaps(code="session_reconnect").rows()[0][-1])
    assert detail["carried_by"] == "anthropic/session" and detail["previous_transport"] != detail["new_transport"]


def test_reconnect_without_a_key_is_reported_not_merged():
    ws = load("reconnect_without_session_key")
    sessions = ws.sql("SELECT session_id, session_key_source, n_calls, client_name FROM sessions ORDER BY first_ts").rows()
    assert [(s[1], s[2], s[3]) for s in sessions] == [("connection", 4, "relay-agent"), ("connection", 4, "relay-agent")]
    parts = {json.loads(d)["part"]: (sid, json.loads(d)["other_session_id"])
             for sid, d in ws.sql("SELECT session_id, detail FROM gaps WHERE code = 'session_split'").rows()}
    assert parts["before"] == (sessions[0][0], sessions[1][0])
    assert parts["after"] == (sessions[1][0], sessions[0][0])


def test_stateless_sessions_come_only_from_keys():
    ws = load("stateless_three_clients")
    assert sorted(ws.sql("SELECT session_key_source, n_calls, n_transport_sessions FROM sessions").rows()) == \
        [("anthropic/session", 5, 0), ("openai/session", 5, 0), ("vscode.conversationId", 5, 0)]


def test_input_required_retry_is_one_logical_call():
    ws = load("input_required_retry")
    rows = ws.sql("""SELECT call_id, rpc_id, tool_name, result_type, retry_of, chain_id FROM calls
                     WHERE tool_name = 'book_trip' ORDER BY start_ord""").rows()
    (first, first_id, _, t1, r1, c1), (second, second_id, _, t2, r2, c2) = rows
    assert (t1, r1, c1) == ("input_required", None, first)
    assert (t2, r2, c2) == ("complete", first, first)
    assert first_id != second_id


def test_tree_of_one_parallel_turn():
    ws = load("downstream_without_propagation")
    tree = ws.tree(ws.busiest_session())
    shape = [(r.depth, r.kind, r.name, r.service_name if r.kind == "span" else None, r.matched_by, tuple(r.gaps))
             for r in tree.itertuples()]
    turn = [row for row in shape if row[0] >= 1]
    i = next(k for k, row in enumerate(turn) if row[1:3] == ("turn", "turn 1"))
    assert turn[i:] == [
        (1, "turn", "turn 1", None, None, ()),
        (2, "call", "get_forecast", None, None, ()),
        (3, "span", "tools/call get_forecast", "weather-downstream", "parent", ()),
        (4, "span", "GET /forecast", "weather-downstream", "parent", ()),
        (5, "span", "GET /forecast", "downstream-api", "parent", ()),
        (2, "call", "get_alerts", None, None, ()),
        (3, "span", "tools/call get_alerts", "weather-downstream", "parent", ()),
        (4, "span", "GET /alerts", "weather-downstream", "parent", ()),
        (5, "span", "GET /alerts", "downstream-api", "time_window", ("downstream_unlinked",)),
    ]
    # the handshake calls, each its own trace, hang off the session before the turn
    assert [row[1:3] for row in turn[:i]] == [("turn", row[2]) if row[1] == "turn" else row[1:3] for row in turn[:i]]
    assert [row[2] for row in turn[:i] if row[1] == "call"] == ["initialize", "tools/list"]
    # the parallel calls of the turn share one parallel_group
    groups = ws.sql("SELECT tool_name, parallel_group FROM calls WHERE method = 'tools/call'").rows()
    assert len({g for _t, g in groups}) == 1
    fig = ws.waterfall(ws.busiest_session())
    banner = [a.text for a in fig.layout.annotations if "Incomplete" in a.text or "Complete" in a.text]
    assert banner == ["Incomplete: 0 orphan spans / 1 unlinked"]


def _without_span(tmp_path, name: str, span_name: str):
    """The situation's real spans with the first span called `span_name` left out of the dump."""
    lines, dropped = [], None
    for line in (INCIDENTS / f"{name}.otlp.jsonl").read_text().splitlines():
        req = json.loads(line)
        for rs in req["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                keep = []
                for s in ss["spans"]:
                    if dropped is None and s["name"] == span_name:
                        dropped = s["spanId"]
                        continue
                    keep.append(s)
                ss["spans"] = keep
        lines.append(json.dumps(req))
    path = tmp_path / f"{span_name.replace(' ', '_').replace('/', '_')}_missing.otlp.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return mcptrace.load([INCIDENTS / f"{name}.jsonl", path])


def test_lost_client_span_leaves_the_server_span_flagged_under_its_call(tmp_path):
    ws = _without_span(tmp_path, "downstream_without_propagation", "MCP send tools/call get_forecast")
    assert [r[1] for r in ws.gaps(code="orphan_span").rows()] == ["orphan_span"]
    tree = ws.tree(ws.busiest_session())
    flagged = tree[tree["orphan"]]
    assert list(zip(flagged["name"], flagged["depth"], flagged["gaps"])) == \
        [("tools/call get_forecast", 3, ["orphan_span"])]
    assert tree.set_index("node_id").loc[flagged["parent_id"].iloc[0], "name"] == "get_forecast"


def test_lost_server_span_makes_its_children_extra_roots(tmp_path):
    ws = _without_span(tmp_path, "downstream_without_propagation", "tools/call get_forecast")
    tree = ws.tree(ws.busiest_session())
    roots = tree[tree["parent_id"].isna()]
    assert list(roots["kind"]) == ["session", "span"]
    orphan = roots.iloc[1]
    assert (orphan["name"], orphan["orphan"], orphan["gaps"]) == ("GET /forecast", True, ["orphan_span"])
    child = tree[tree["parent_id"] == orphan["node_id"]]
    assert list(zip(child["name"], child["service_name"])) == [("GET /forecast", "downstream-api")]
    assert ws.waterfall(ws.busiest_session()).layout.annotations[-1].text.startswith("Incomplete: 1 orphan spans")
