"""Loads that die half way, folders that look like datasets, read-only opening, odd blank lines."""

from __future__ import annotations

import shutil
import subprocess
import sys

import duckdb
import pytest

import mcptrace
from conftest import ROOT, SAMPLES
from mcptrace.core.db import connect
from mcptrace.core.errors import MCPTraceError


def test_rows_of_a_load_that_died_are_gone_when_the_database_is_opened(tmp_path):
    db = str(tmp_path / "x.duckdb")
    mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=db).close()
    # what a process killed between two commits leaves: rows under a source id with no sources row
    con = duckdb.connect(db)
    con.execute("INSERT INTO messages SELECT * REPLACE (message_id + 1000 AS message_id, 99 AS source_id) FROM messages")
    con.execute("INSERT INTO rejects VALUES (99, 1, 'line 1: invalid JSON', '{')")
    con.close()
    ws = mcptrace.open(db)
    assert ws.sql("SELECT DISTINCT source_id FROM messages").rows() == [(1,)]
    assert ws.sql("SELECT count(*) FROM rejects").rows() == [(0,)]


def test_a_folder_of_captures_with_a_messages_subfolder_is_loaded_not_attached(tmp_path):
    (tmp_path / "caps" / "messages").mkdir(parents=True)
    shutil.copy(SAMPLES / "agent_stdio.jsonl", tmp_path / "caps" / "messages")
    ws = mcptrace.load(str(tmp_path / "caps"))
    assert not ws.read_only
    assert len(ws.calls()) == len(mcptrace.load(SAMPLES / "agent_stdio.jsonl").calls())


def test_a_dataset_in_a_directory_with_glob_characters_opens(samples_ws, tmp_path):
    from mcptrace.render.export import write_dataset

    write_dataset(samples_ws.con, tmp_path / "run[1]*")
    ws = mcptrace.open(tmp_path / "run[1]*")
    assert len(ws.calls()) == len(samples_ws.calls())


def test_cli_open_never_writes_a_database(tmp_path):
    db = str(tmp_path / "x.duckdb")
    mcptrace.load(SAMPLES, db=db).close()
    run = lambda *a: subprocess.run([sys.executable, "-m", "mcptrace", *a], capture_output=True, text=True,
                                    cwd=ROOT, timeout=300)
    r = run("open", db, "--sql", "DELETE FROM messages RETURNING 1")
    assert r.returncode != 0 and "read-only" in (r.stderr + r.stdout).lower()
    assert duckdb.connect(db, read_only=True).execute("SELECT count(*) FROM messages").fetchone()[0] == 65
    r = run("open", str(tmp_path))
    assert r.returncode == 1 and "not an mcptrace Parquet dataset" in r.stderr


def test_a_line_of_vertical_tabs_is_a_record_not_a_blank(tmp_path):
    path = tmp_path / "vt.jsonl"
    lines = (SAMPLES / "plain_stdio.jsonl").read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[0], b"\x0b\x0c", b"  \t", lines[1]]) + b"\n")
    ws = mcptrace.load(str(path))
    src = ws.sql("SELECT n_records, n_rejected, n_skipped FROM sources").rows()[0]
    assert src == (3, 1, 0)
    assert ws.sql("SELECT record_no FROM rejects").rows() == [(2,)]


def test_in_memory_databases_keep_duckdbs_memory_limit():
    default = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert connect(None).execute("SELECT current_setting('memory_limit')").fetchone()[0] == default


def test_mcptrace_threads_sets_duckdbs_threads_and_a_bad_value_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("MCPTRACE_THREADS", raising=False)
    default = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
    assert connect(None).execute("SELECT current_setting('threads')").fetchone()[0] == default
    monkeypatch.setenv("MCPTRACE_THREADS", str(default + 1))  # not the default, whatever the machine
    ws = mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=str(tmp_path / "t.duckdb"))
    assert ws.sql("SELECT current_setting('threads')").rows() == [(default + 1,)]
    assert ws.sql("SELECT count(*) > 0 FROM calls").rows() == [(True,)]
    ws.close()
    monkeypatch.setenv("MCPTRACE_THREADS", "0")
    r = subprocess.run([sys.executable, "-m", "mcptrace", "sessions", "--db", str(tmp_path / "t.duckdb")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "MCPTRACE_THREADS='0': not a positive integer" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # refused before a database file is made
    monkeypatch.setenv("MCPTRACE_THREADS", "²")
    with pytest.raises(MCPTraceError, match="MCPTRACE_THREADS='²': not a positive integer"):
        connect(str(tmp_path / "new.duckdb"))
    assert not (tmp_path / "new.duckdb").exists()
