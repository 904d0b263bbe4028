"""The CLI as a user runs it: exit codes, output, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb

from conftest import SAMPLES, cli_here
from mcptrace.ingest.readers import readers
import mcptrace
from mcptrace.cli import main
from mcptrace.core.db import one


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mcptrace", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_load_sessions_gaps_timeline(tmp_path, capsys):
    db = tmp_path / "x.duckdb"
    r = run("load", SAMPLES, "--db", db)
    assert r.returncode == 0, r.stderr
    assert "agent_stdio.jsonl  [envelope_jsonl]" in r.stdout
    assert "traces.otlp.jsonl  [otlp_json]" in r.stdout
    assert "Traceback" not in r.stderr
    con = duckdb.connect(str(db), read_only=True)
    sessions = [row[0] for row in con.sql("SELECT session_id FROM sessions ORDER BY n_calls DESC").fetchall()]
    gap_codes = {row[0] for row in con.sql("SELECT code FROM gaps").fetchall()}
    con.close()
    r = cli_here(capsys, "sessions", "--db", db)
    assert r.returncode == 0
    for sid in sessions:
        assert sid in r.stdout
    r = cli_here(capsys, "gaps", "--db", db)
    assert r.returncode == 0
    for code in gap_codes:
        assert code in r.stdout
    r = cli_here(capsys, "gaps", "--db", db, "--code", "no_such_code")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 2  # header + rule only
    # the CLI writes every format through write_figure; PNG and SVG (Chromium) are checked in test_timeline
    out = tmp_path / "t.html"
    r = cli_here(capsys, "timeline", "--db", db, "--session", sessions[0], "--out", out)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 1000


def test_exit_1_when_a_path_is_not_a_capture_others_still_load(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02 not a capture")
    db = tmp_path / "x.duckdb"
    r = run("load", junk, SAMPLES / "agent_stdio.jsonl", tmp_path / "missing.jsonl", "--db", db)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    tried = "tried " + ", ".join(r.name for r in readers())
    assert any(str(junk) in line and tried in line for line in err)
    assert any("missing.jsonl" in line and "cannot read" in line for line in err)
    con = duckdb.connect(str(db), read_only=True)
    assert one(con, "SELECT count(*) FROM sources")[0] == 1
    assert one(con, "SELECT count(*) FROM calls")[0] > 0


def test_exit_2_on_usage_errors(tmp_path):
    assert run("load", SAMPLES).returncode == 2          # --db missing
    assert run("frobnicate").returncode == 2
    r = run("sessions", "--db", tmp_path / "nope.duckdb")
    assert r.returncode == 1 and "no such database" in r.stderr
    assert not os.path.exists(tmp_path / "nope.duckdb")


def test_unknown_session_is_a_clear_error(tmp_path):
    db = tmp_path / "x.duckdb"
    assert run("load", SAMPLES, "--db", db).returncode == 0
    r = run("timeline", "--db", db, "--session", "s_nope", "--out", tmp_path / "t.html")
    assert r.returncode == 1 and "no session 's_nope'" in r.stderr


def test_turns_and_tree_drill_down(tmp_path, capsys):
    import pandas as pd

    import mcptrace

    db = tmp_path / "x.duckdb"
    assert main(["load", str(SAMPLES), "--db", str(db)]) == 0
    with mcptrace.open(str(db)) as ws:
        sid = ws.busiest_session()
        turns = ws.turns(sid).df()
        key = turns["turn"].iloc[3]
        want = ws.tree(sid, turn=key)
        call = int(turns["first_call_id"].iloc[3])
    r = cli_here(capsys, "turns", "--db", db, "--session", sid, "--width", 80)
    assert r.returncode == 0, r.stderr
    assert all(k in r.stdout for k in turns["turn"])
    r = cli_here(capsys, "turns", "--db", db, "--with-gaps", "--width", 80)
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 2 + int((turns["n_gaps"] > 0).sum())
    r = cli_here(capsys, "tree", "--db", db, "--session", sid, "--turn", key, "--out", tmp_path / "turn.csv")
    assert r.returncode == 0, r.stderr
    assert list(pd.read_csv(tmp_path / "turn.csv")["node_id"]) == list(want["node_id"])
    r = cli_here(capsys, "tree", "--db", db, "--call", call, "--out", tmp_path / "turn.html")
    assert r.returncode == 0 and f"the turn of call {call}" in r.stdout
    assert f"turn {key.split('/')[0]}" in (tmp_path / "turn.html").read_text()   # plotly writes / as \\/
    r = cli_here(capsys, "tree", "--db", db, "--turn", "nope", "--out", tmp_path / "x.html")
    assert r.returncode == 1 and "no turn 'nope'" in r.stderr
    assert cli_here(capsys, "turns", "--db", db, "--session", "s_nope").returncode == 1


def test_load_takes_a_secret_key_pattern(tmp_path, capsys):
    cap = tmp_path / "cap.jsonl"
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "pay", "arguments": {"tenant_pin": "PIN-1", "amount": 3}}}
    cap.write_text(json.dumps({"ts": "2026-03-01T12:00:00Z", "direction": "client_to_server",
                               "transport": "stdio", "connection_id": "c", "message": msg}) + "\n")
    db = str(tmp_path / "x.duckdb")
    assert main(["load", str(cap), "--db", db, "--secret-keys", r"(?:[a-z]+_)*pin"]) == 0
    with mcptrace.open(db) as ws:
        assert ws.sql("SELECT raw->'$.params.arguments' FROM messages").rows() == [('{"tenant_pin":"[REDACTED]","amount":3}',)]
    assert main(["load", str(cap), "--db", str(tmp_path / "y.duckdb"), "--secret-keys", "(unclosed"]) == 2
    assert "--secret-keys: secret_keys is not a valid regular expression" in capsys.readouterr().err
