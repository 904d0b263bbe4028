"""Findings (README: Findings): every incident capture's gaps collapse to one finding per injected fault
with the party that caused it, read from the data; every gap is in exactly one finding; the CLI ranks
them and fails CI on them.

The incident captures are real SDK traffic (data/incidents/README.md says what each process did).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import mcptrace
from conftest import ROOT, cli_here
from mcptrace.samples.situations import SITUATIONS

INCIDENTS = ROOT / "data" / "incidents"

#: per situation, the findings it must give: (code, party_kind, a text the party holds), from what the
#: processes of the situation did (data/incidents/README.md)
EXPECTED = {
    "reconnect_with_session_key": {("session_reconnect", "transport", "service weather-reconnect-keyed"),
                                   ("unanswered_request", "tool", "weather-reconnect-keyed) · export_report"),
                                   ("server_span_missing", "server", "service weather-reconnect-keyed")},
    "reconnect_without_session_key": {("session_split", "client", "relay-agent 2.0.0"),
                                      ("unanswered_request", "tool", "weather-reconnect-unkeyed) · export_report"),
                                      ("server_span_missing", "server", "service weather-reconnect-unkeyed")},
    "server_without_trace_extraction": {("server_span_unlinked", "server", "service weather-no-extract")},
    "downstream_without_propagation": {("downstream_unlinked", "tool", "· get_alerts → downstream-api")},
    "stateless_three_clients": {("missing_trace_context", "client", "host-vscode")},
    "server_killed_mid_call": {("unanswered_request", "tool", "weather-killed) · hang"),
                               ("server_span_missing", "server", "service weather-killed")},
    "cancelled_call": {("cancelled", "client", "impatient-agent")},
    "unknown_progress_token": {("unknown_progress_token", "server", "service weather-progress")},
    "response_with_unknown_id": {("orphan_response", "server", "service weather-ghost")},
    "input_required_retry": set(),
    "untraced_parallel_turn": {("missing_trace_context", "client", "parallel-host")},
    "downstream_untraced_client": {("downstream_unlinked", "tool", "· get_alerts_plain → downstream-api")},
    "colliding_ids_no_extraction": {("server_span_unlinked", "server", "service weather-colliding")},
    "spans_twice": {("orphan_span", "capture", "weather-twice")},
    "resumable_http_server": set(),
    "lookalike_clients_reconnect": {("session_split", "client", "twin-agent 2.0.0"),
                                    ("unanswered_request", "tool", "weather-lookalike) · export_report"),
                                    ("unanswered_request", "tool", "weather-lookalike) · slow_report"),
                                    ("missing_trace_context", "client", "twin-agent 2.0.0")},
}


def _pair(name: str) -> list:
    return [INCIDENTS / f"{name}.jsonl", INCIDENTS / f"{name}.otlp.jsonl"]


def test_every_situation_has_its_expectations():
    assert sorted(EXPECTED) == sorted(s.name for s in SITUATIONS)
    for s in SITUATIONS:  # the expectations name exactly the gap codes the situation must yield
        assert {code for code, _, _ in EXPECTED[s.name]} == set(s.gaps), s.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_incident_gives_one_finding_per_fault_with_its_party(name):
    ws = mcptrace.load(_pair(name))
    try:
        found = ws.findings().rows()
        cols = ws.findings().columns
        rows = [dict(zip(cols, r)) for r in found]
        maybe = next(s.maybe_gaps for s in SITUATIONS if s.name == name)
        rows = [r for r in rows if r["code"] not in maybe]
        assert len(rows) == len(EXPECTED[name])
        for code, kind, party in EXPECTED[name]:
            match = [r for r in rows if r["code"] == code and r["party_kind"] == kind and party in r["party"]]
            assert len(match) == 1, (code, kind, party, [(r["code"], r["party_kind"], r["party"]) for r in rows])
        for r in rows:  # backed by gaps, with a sentence, a remedy and its numbers
            assert r["n_gaps"] == len(r["gap_ids"]) >= 1
            assert r["summary"] and r["remedy"] and r["party"] in r["summary"] or r["code"] == "downstream_unlinked"
            assert r["share"] is None or 0 < r["share"] <= 1
    finally:
        ws.close()


def test_every_gap_is_in_exactly_one_finding(incidents_ws):
    ws = incidents_ws
    assert ws.sql("SELECT count(*) FROM gaps").rows()[0][0] > 50
    assert ws.sql("""
        SELECT count(*) FROM gaps g FULL JOIN (SELECT unnest(gap_ids) AS gap_id, finding_id FROM findings) f USING (gap_id)
        WHERE g.gap_id IS NULL OR f.finding_id IS NULL""").rows() == [(0,)]
    assert ws.sql("SELECT count(*) - count(DISTINCT gap_id) FROM (SELECT unnest(gap_ids) AS gap_id FROM findings)"
                  ).rows() == [(0,)]
    # a finding's gaps share its code and severity; its counts are its gaps'
    assert ws.sql("""
        SELECT count(*) FROM (SELECT finding_id, code, severity, n_gaps, n_sessions, unnest(gap_ids) AS gap_id FROM findings) f
        JOIN gaps g USING (gap_id) WHERE g.code <> f.code OR g.severity <> f.severity""").rows() == [(0,)]
    assert ws.sql("""
        SELECT count(*) FROM findings f WHERE n_sessions <> (SELECT count(DISTINCT session_id) FROM gaps
                                                             WHERE list_contains(f.gap_ids, gap_id))""").rows() == [(0,)]


def test_findings_are_ranked_errors_first_then_by_affected_calls(incidents_ws):
    rows = incidents_ws.sql("SELECT finding_id, severity, n_calls FROM findings ORDER BY finding_id").rows()
    order = {"error": 0, "warning": 1, "info": 2}
    keys = [(order[s], -n) for _, s, n in rows]
    assert keys == sorted(keys) and [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert incidents_ws.findings("error").rows() and {r[2] for r in incidents_ws.findings("error").rows()} == {"error"}
    with pytest.raises(ValueError):
        incidents_ws.findings("fatal")


def test_inferred_findings_say_so(incidents_ws):
    conf = dict(incidents_ws.sql("SELECT code, any_value(confidence) FROM findings GROUP BY 1").rows())
    assert conf["session_split"] == conf["downstream_unlinked"] == "inferred"
    assert conf["missing_trace_context"] == conf["unanswered_request"] == "exact"


def test_a_party_the_data_does_not_name_is_unidentified(tmp_path):
    """No initialize, no clientInfo in _meta: the client is 'unidentified client', never a guess."""
    lines = [json.loads(x) for x in (INCIDENTS / "untraced_parallel_turn.jsonl").read_text().splitlines()]
    kept = [r for r in lines if (r.get("message") or {}).get("method") != "initialize"
            and "serverInfo" not in json.dumps((r.get("message") or {}).get("result", {}))]
    path = tmp_path / "anonymous.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    ws = mcptrace.load([path])
    try:
        parties = ws.sql("SELECT party FROM findings WHERE code = 'missing_trace_context'").rows()
        assert parties == [("unidentified client",)]
    finally:
        ws.close()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "mcptrace", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_cli_ranks_prints_json_and_markdown_and_fails_ci(tmp_path, capsys):
    db, clean = tmp_path / "incident.duckdb", tmp_path / "clean.duckdb"
    assert cli_here(capsys, "load", *_pair("lookalike_clients_reconnect"), "--db", db).returncode == 0
    assert cli_here(capsys, "load", *_pair("input_required_retry"), "--db", clean).returncode == 0
    table = cli_here(capsys, "findings", "--db", db)
    assert table.returncode == 0 and "session_split" in table.stdout and "twin-agent 2.0.0" in table.stdout
    data = json.loads(cli_here(capsys, "findings", "--db", db, "--json").stdout)
    assert [d["finding_id"] for d in data] == list(range(1, len(data) + 1))
    assert {d["code"] for d in data} == {"session_split", "unanswered_request", "missing_trace_context"}
    assert all(isinstance(d["gap_ids"], list) and d["first_ts"].endswith("+00:00") for d in data)
    md = cli_here(capsys, "findings", "--db", db, "--markdown").stdout
    assert md.startswith("| # | severity |") and "**Remedy.**" in md and "SEP-2822" in md
    assert _cli("findings", "--db", db, "--fail-on", "error").returncode == 3  # the process's exit code
    assert cli_here(capsys, "findings", "--db", db, "--fail-on", "warning").returncode == 3
    assert cli_here(capsys, "findings", "--db", clean, "--fail-on", "error").returncode == 0
    assert "no findings" in cli_here(capsys, "findings", "--db", clean).stdout
    info_only = tmp_path / "info.duckdb"
    assert cli_here(capsys, "load", *_pair("cancelled_call"), "--db", info_only).returncode == 0
    codes = {d["code"] for d in json.loads(cli_here(capsys, "findings", "--db", info_only, "--json").stdout)}
    if codes <= {"cancelled"}:  # info findings fail neither level
        assert cli_here(capsys, "findings", "--db", info_only, "--fail-on", "warning").returncode == 0


def test_a_dataset_written_before_findings_gets_them_from_its_gaps(tmp_path, incidents_ws):
    out = tmp_path / "ds"
    incidents_ws.write_dataset(out)
    want = incidents_ws.sql("SELECT code, party, n_gaps FROM findings ORDER BY finding_id").rows()
    shutil.rmtree(out / "findings")
    with mcptrace.open(out) as ds:
        assert ds.sql("SELECT code, party, n_gaps FROM findings ORDER BY finding_id").rows() == want


def test_coverage_by_party_over_time():
    """Per client: the host without a TracerProvider sends no trace context, the others always do; per
    server: the share of its requests joined to a server span."""
    ws = mcptrace.load(_pair("stateless_three_clients"))
    try:
        by_client = ws.coverage("1 hour", by="client").df()
        shares = dict(zip(by_client["party"], by_client["trace_context_share"]))
        assert shares.pop("host-vscode 2.0.0") == 0.0
        assert shares and set(shares.values()) == {1.0}
        assert set(by_client.columns) >= {"bucket", "party", "n_requests", "n_server_span", "server_span_share"}
        by_server = ws.coverage("1 hour", by="server").df()
        joined = ws.sql("SELECT count(DISTINCT c.call_id) FROM calls c JOIN call_spans s USING (call_id) "
                        "WHERE s.role = 'server' AND c.direction = 'client_to_server'").rows()[0][0]
        assert by_server["n_server_span"].sum() == joined and by_server["n_requests"].sum() == by_client["n_requests"].sum()
        fig = ws.coverage_chart("1 hour", by="client")
        assert len(fig.data) == 3 * len(by_client["party"].unique())
        assert {t.name for t in fig.data} == set(by_client["party"])
        with pytest.raises(ValueError):
            ws.coverage(by="tool")
    finally:
        ws.close()
