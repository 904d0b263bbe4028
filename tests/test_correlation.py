"""Correlation analysis on the incident captures (data/incidents, real SDK processes, one
situation each): the exact gap rows of every situation, sessions across reconnects, retry
chains, and the exact tree of one parallel turn."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import pytest

import mcptrace
from conftest import ROOT
from mcptrace.samples.score import EXPECTED, gap_rows

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
    """The score script over every incident (each one's exact rows: test_gap_rows_of_each_incident): every
    expected gap code and the parallel pairs are found exactly."""
    r = subprocess.run([sys.executable, "-m", "mcptrace.samples.score", str(INCIDENTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split() == ["gap", "code", "expected", "found", "correct", "precision", "recall"]
    codes = {row.split()[0]: row.split()[1:] for row in rows if not row.startswith("parallel pairs")}
    assert set(codes) == {key[0] for rows_ in EXPECTED.values() for key in rows_}
    assert all(want == found == right and p == r_ == "1.00" for want, found, right, p, r_ in codes.values()), codes
    pairs = [re.fullmatch(r"parallel pairs of \w+: (\d+) true, (\d+) found, (\d+) correct: "
                          r"precision 1\.00, recall 1\.00", row) for row in rows if row.startswith("parallel pairs")]
    assert pairs and all(m and m[1] == m[2] == m[3] != "0" for m in pairs), rows


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


# -- partial instrumentation: the evidence behind inferred rows --------------------------------------


def test_lookalike_clients_each_split_part_names_every_candidate_and_the_resets():
    ws = load("lookalike_clients_reconnect")
    parts = ws.sql("SELECT session_id, detail FROM gaps WHERE code = 'session_split'").rows()
    rows = [dict(json.loads(d), session_id=sid) for sid, d in parts]
    before = {r["session_id"]: r for r in rows if r["part"] == "before"}
    after = {r["session_id"]: r for r in rows if r["part"] == "after"}
    assert len(before) == len(after) == 2
    # either earlier part could be either later part: every pairing is listed, none picked silently
    assert all(sorted(r["candidates"]) == sorted(after) for r in before.values())
    assert all(sorted(r["candidates"]) == sorted(before) for r in after.values())
    # one to one: the two pairings chosen are each other's
    assert sorted(r["other_session_id"] for r in before.values()) == sorted(after)
    assert all(after[r["other_session_id"]]["other_session_id"] == sid for sid, r in before.items())
    assert all(r["n_candidates"] == 2 and "other pairings fitted" in r["assignment"] for r in rows)
    # the abnormal end is shown by the transport: the proxy saw each session's streams reset
    assert all({e["event"] for e in r["transport_events"]} >= {"reset"} for r in rows)
    for (d,) in ws.sql("SELECT detail FROM gaps WHERE code = 'unanswered_request'").rows():
        events = json.loads(d)["transport_events"]
        assert any(e["event"] == "reset" and "no response yet to id 4" in e["error"] for e in events)
    # after the server died the SDK's GET resumptions failed at the proxy
    assert ws.sql("SELECT count(*) FROM http_events WHERE event = 'resumption_failed'").rows() == [(4,)]


def test_resumable_server_sessions_end_cleanly_and_load_without_rejects():
    ws = load("resumable_http_server")
    assert ws.sql("SELECT event, http_status, count(*) FROM http_events GROUP BY ALL ORDER BY ALL").rows() == [
        ("delete", 200, 2), ("get_stream", 200, 2), ("resumption", 200, 2), ("sse_priming", 200, 14)]
    assert ws.sql("SELECT n_rejected, n_http_events FROM sources WHERE format = 'envelope_jsonl'").rows() == [(0, 20)]
    # the resumed call: request on its POST, result replayed on the GET that carried Last-Event-ID
    assert ws.sql("SELECT count(*) FROM calls WHERE tool_name = 'resumable_report' AND status = 'ok'").rows() == [(2,)]
    assert ws.sql("SELECT count(*) FROM gaps").rows() == [(0,)]


def test_downstream_roots_name_their_rule_and_candidates():
    ws = load("downstream_untraced_client")
    tools = dict(ws.sql("SELECT call_id, tool_name FROM calls").rows())
    rows = [(region, rule, n, tool, sorted(tools[i] for i in json.loads(cands))) for region, rule, n, tool, cands in ws.sql(
        """SELECT regexp_extract(s.attributes->>'$."url.query"', '=(.*)$', 1), g.detail->>'$.rule',
                  (g.detail->>'$.n_candidates')::INT, c.tool_name, g.detail->>'$.candidates'
           FROM gaps g JOIN spans s USING (trace_id, span_id) LEFT JOIN calls c USING (call_id)
           WHERE g.code = 'downstream_unlinked' ORDER BY s.start_ts""").rows()]
    # IDF and BBG start while notes-mcp's search is in flight and lie inside it too: only
    # weather-plain has been seen calling downstream-api; kanto runs alone
    assert rows == [("IDF", "known_downstream", 2, "get_alerts_plain", ["get_alerts_plain", "search"]),
                    ("BBG", "known_downstream", 2, "get_alerts_plain", ["get_alerts_plain", "search"]),
                    ("kanto", "containment", 1, "get_alerts_plain", ["get_alerts_plain"])]
    # joined to the chosen call as an inferred downstream span
    assert ws.sql("""SELECT count(*) FROM call_spans WHERE role = 'downstream' AND matched_by = 'time_window'
                     AND inferred""").rows() == [(3,)]
    # the MCP servers' own spans and the host's roots are never candidates
    assert ws.sql("SELECT count(*) FROM gaps WHERE code = 'downstream_unlinked' AND span_id IN "
                  "(SELECT span_id FROM spans WHERE service_name <> 'downstream-api')").rows() == [(0,)]


def test_colliding_ids_are_assigned_one_to_one_and_say_so():
    ws = load("colliding_ids_no_extraction")
    rows = ws.sql("""SELECT x.inferred, x.n_candidates, x.evidence->>'$.inside_call'
                     FROM call_spans x WHERE x.role = 'server'""").rows()
    assert len(rows) == 12 and set(rows) == {(True, 2, "true")}
    # each span joined once, each call once
    server = ws.call_spans().df().query("role == 'server'")
    assert (server["span_id"].nunique(), server["call_id"].nunique()) == (12, 12)
    one = ws.call_spans(int(server["call_id"].iloc[0])).df()
    assert json.loads(one.query("role == 'server'")["evidence"].iloc[0])["n_candidate_spans"] == 2


def test_untraced_turns_come_from_overlap():
    ws = load("untraced_parallel_turn")
    assert ws.sql("""SELECT turn_source, count(DISTINCT turn_id), count(*) FROM calls WHERE method = 'tools/call'
                     GROUP BY 1 ORDER BY 1""").rows() == [("client_span", 1, 3), ("overlap", 2, 6)]
    assert ws.sql("SELECT max_parallel FROM sessions").rows() == [(3,)]


def test_spans_delivered_twice_are_stored_once():
    ws = load("spans_twice")
    assert ws.sql("SELECT n_duplicate_spans FROM sources WHERE kind = 'spans'").rows() == [(5,)]
    assert ws.sql("SELECT count(*), count(DISTINCT span_id) FROM spans").rows() == [(5, 5)]
