"""Views over the samples: concurrency, coverage, the tree CLI, and HTTP trace-context gaps."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

import mcptrace
from conftest import ROOT, SAMPLES, read_lines, write_lines


def test_concurrency_is_a_running_sum_of_starts_and_ends(samples_ws):
    sid = samples_ws.busiest_session()
    df = samples_ws.concurrency(sid).df()
    calls = samples_ws.calls(sid).df()
    assert (df["delta"] == 1).sum() == len(calls)
    assert (df["delta"] == -1).sum() == calls["end_ts"].notna().sum()
    assert list(df["in_flight"]) == list(df["delta"].cumsum())
    assert df["in_flight"].max() == samples_ws.sql("SELECT max_parallel FROM sessions WHERE session_id = ?",
                                                   [sid]).rows()[0][0]
    assert df["in_flight"].iloc[-1] == 0  # every call of the busiest session ended


def test_coverage_per_client(samples_ws):
    rows = samples_ws.coverage("1 day").df()
    by_client = rows.groupby("client_name")[["n_requests", "n_trace_context", "n_session_key"]].sum()
    assert by_client.loc["agent-host"].tolist() == [14, 14, 12]   # key on tools/call only
    assert by_client.loc["ide-client"].tolist() == [9, 9, 0]
    assert by_client.loc["plain-host"].tolist() == [5, 0, 0]      # no tracing (one malformed traceparent)
    assert set(rows["server_name"]) == {"weather"}
    assert ((rows["trace_context_share"] >= 0) & (rows["trace_context_share"] <= 1)).all()


def test_tree_cli_writes_figure_and_table(tmp_path):
    db = tmp_path / "x.duckdb"
    run = lambda *a: subprocess.run([sys.executable, "-m", "mcptrace", *map(str, a)], capture_output=True, text=True,
                                    cwd=ROOT, timeout=300)
    assert run("load", SAMPLES, "--db", db).returncode == 0
    r = run("tree", "--db", db, "--out", tmp_path / "tree.csv")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "tree.csv")
    assert df["kind"].iloc[0] == "session" and {"turn", "call", "span"} <= set(df["kind"])
    assert run("tree", "--db", db, "--out", tmp_path / "tree.html").returncode == 0
    assert "Waterfall" in (tmp_path / "tree.html").read_text()
    r = run("tree", "--db", db, "--session", "s_nope", "--out", tmp_path / "x.html")
    assert r.returncode == 1 and "no session" in r.stderr


def _with_http_traceparent(tmp_path, *, drop_meta: bool, other_trace: bool):
    lines = []
    for x in read_lines(SAMPLES / "ide_http.jsonl"):
        e = json.loads(x)
        meta = (e["message"].get("params") or {}).get("_meta") or {}
        tp = meta.get("traceparent")
        if e["direction"] == "client_to_server" and tp:
            header = tp if not other_trace else "00-" + "ab" * 16 + tp[35:]
            e["http"]["request_headers"]["traceparent"] = header
            if drop_meta:
                del meta["traceparent"]
        lines.append(json.dumps(e))
    name = "header_only_trace_context" if drop_meta else "header_and_meta_disagree"
    return write_lines(tmp_path / f"{name}.jsonl", lines)


def test_trace_context_only_in_the_http_header(tmp_path):
    ws = mcptrace.load(_with_http_traceparent(tmp_path, drop_meta=True, other_trace=False))
    n = len(ws.calls())
    assert ws.sql("SELECT code, count(*) FROM gaps GROUP BY 1").rows() == [("header_only_trace_context", n)]
    # the header still gives each call its trace
    assert ws.sql("SELECT count(*) FROM calls WHERE trace_id IS NOT NULL AND trace_context_source = 'http_header'"
                  ).rows() == [(n,)]


def test_http_header_and_meta_disagree(tmp_path):
    ws = mcptrace.load(_with_http_traceparent(tmp_path, drop_meta=False, other_trace=True))
    n = len(ws.calls())
    rows = ws.sql("SELECT code, detail FROM gaps").rows()
    assert [r[0] for r in rows] == ["trace_context_mismatch"] * n
    d = json.loads(rows[0][1])
    assert d["http_traceparent"].startswith("00-" + "ab" * 16) and d["meta_traceparent"] != d["http_traceparent"]
    # _meta wins: the trace id is the one the SDK put in params._meta
    assert ws.sql("SELECT count(*) FROM calls WHERE trace_context_source = 'meta'").rows() == [(n,)]


def test_turns_one_row_per_turn_with_its_counts(samples_ws):
    for (sid,) in samples_ws.sql("SELECT session_id FROM sessions").rows():
        turns = samples_ws.turns(sid).df()
        calls = samples_ws.calls(sid).df()
        gaps = samples_ws.gaps(session_id=sid).df()
        assert turns["n_calls"].sum() == len(calls)
        assert list(turns["first_ord"]) == sorted(turns["first_ord"])          # wire order
        traced = turns[turns["turn_id"].notna()]
        assert list(traced["turn"]) == list(traced["turn_id"])
        for t in traced.itertuples():
            mine = calls[calls["turn_id"] == t.turn_id]
            assert t.n_calls == len(mine)
            assert t.n_errors == mine["status"].isin(["error", "tool_error"]).sum()
            assert t.n_cancelled == (mine["status"] == "cancelled").sum()
            assert t.first_ts == mine["start_ts"].min()
            assert t.n_gaps == gaps["call_id"].isin(mine["call_id"]).sum()
            assert list(t.gap_codes) == sorted(set(gaps[gaps["call_id"].isin(mine["call_id"])]["code"]))
    # the agent's turns are named after the client's turn span; handshake calls after their trace
    agent = samples_ws.sql("SELECT session_id FROM sessions WHERE client_name = 'agent-host'").rows()[0][0]
    names = list(samples_ws.turns(agent).df()["name"])
    assert names[2:] == ["turn 1", "turn 2", "turn 3", "turn 4"] and names[0].startswith("trace ")
    # calls without trace context: one turn per run of overlapping calls, keyed by its first call
    plain = samples_ws.sql("SELECT session_id FROM sessions WHERE client_name = 'plain-host'").rows()[0][0]
    rows = samples_ws.turns(plain).df()
    runs = samples_ws.sql("SELECT turn_id, min(call_id), count(*) FROM calls WHERE session_id = ? GROUP BY 1 ORDER BY 2",
                          [plain]).rows()
    assert [(t, n) for t, _first, n in runs] == [(f"overlap:{first}", n) for _t, first, n in runs]
    assert list(zip(rows["turn"], rows["n_calls"])) == [(t, n) for t, _first, n in runs]
    assert [n for _t, _f, n in runs] == [1, 1, 2, 1]
    assert set(rows["name"]) == {"overlapping calls (no trace context)"} and rows["turn_id"].tolist() == rows["turn"].tolist()
    assert len(samples_ws.turns("s_nope")) == 0
