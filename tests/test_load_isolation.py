"""Nothing in one file sinks a load: a failure inside a file stays with that file, special files are
never opened, the files that loaded are analysed, and the exit status says something went wrong."""

from __future__ import annotations

import json
import os
import shutil

import pytest

import mcptrace
from conftest import SAMPLES
from mcptrace.cli import main
from mcptrace.core.db import connect
from mcptrace.ingest.loader import Loader
from mcptrace.workspace import Workspace


def _screenshot_capture(path, megabytes: int) -> None:
    """A tools/call answered with a base64 image of about ``megabytes`` MB (what screenshot tools return)."""
    data = "iVBORw0KGgo" + "A" * (megabytes * 1_000_000)
    req = {"ts": "2026-03-01T12:00:00Z", "direction": "client_to_server", "transport": "stdio", "connection_id": "c",
           "message": {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "screenshot"}}}
    res = {"ts": "2026-03-01T12:00:01Z", "direction": "server_to_client", "transport": "stdio", "connection_id": "c",
           "message": {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "image", "data": data}]}}}
    path.write_text(json.dumps(req) + "\n" + json.dumps(res) + "\n", encoding="utf-8")


def _mixed_directory(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(SAMPLES / "agent_stdio.jsonl", d / "a_valid.jsonl")
    (d / "b_nested.jsonl").write_text("[" * 100_000 + "\n", encoding="utf-8")
    shutil.copy(SAMPLES / "ide_http.jsonl", d / "c_valid.jsonl")
    os.mkfifo(d / "d_fifo")
    os.symlink("/dev/zero", d / "e_zero")
    return d


def test_a_directory_with_hostile_files_loads_every_valid_one(tmp_path, capsys):
    d = _mixed_directory(tmp_path)
    db = str(tmp_path / "mixed.duckdb")
    assert main(["load", str(d), "--db", db]) == 1
    out = capsys.readouterr()
    assert "a_valid.jsonl  [envelope_jsonl]  33 records" in out.out
    assert "c_valid.jsonl  [envelope_jsonl]  22 records" in out.out
    assert "b_nested.jsonl: not a recognised capture or trace dump (RecursionError: nested too deeply)" in out.err
    assert "d_fifo: not a regular file: a FIFO; only regular files are read" in out.err
    assert "e_zero: not a regular file: a character device (through a symbolic link)" in out.err
    assert "Traceback" not in out.out + out.err
    alone = mcptrace.load([SAMPLES / "agent_stdio.jsonl", SAMPLES / "ide_http.jsonl"])
    with mcptrace.open(db) as ws:
        assert ws.sql("SELECT count(*) FROM calls").rows() == alone.sql("SELECT count(*) FROM calls").rows()
        assert ws.sql("SELECT count(*) FROM sessions").rows() == alone.sql("SELECT count(*) FROM sessions").rows()
    for argv in (["sessions", "--db", db], ["gaps", "--db", db], ["report", "--db", db, "--out", str(tmp_path / "r.html")]):
        assert main(argv) == 0


def test_a_file_that_fails_inside_is_rolled_back_recorded_and_tried_again(tmp_path, monkeypatch):
    _screenshot_capture(tmp_path / "shot.jsonl", 20)
    db = str(tmp_path / "tight.duckdb")
    monkeypatch.setenv("MCPTRACE_MEMORY_LIMIT_MAX", "64MiB")  # no room to retry with more memory
    ws = Workspace(connect(db, memory_limit="64MiB"), path=db)
    report = ws.load([tmp_path / "shot.jsonl", SAMPLES / "agent_stdio.jsonl"])
    shot, agent = report.files
    assert (shot.status, agent.status) == ("failed", "loaded") and not report.ok
    assert "not loaded: OutOfMemoryException" in shot.error
    assert ws.sql("SELECT status, n_records, error LIKE 'OutOfMemoryException%' FROM sources "
                  "WHERE path LIKE '%shot.jsonl'").rows() == [("failed", 0, True)]
    assert ws.sql("SELECT count(*) FROM messages WHERE source_id = ?", [shot.source_id]).rows() == [(0,)]
    assert ws.sql("SELECT count(*) FROM calls").rows()[0][0] > 0  # the rebuild ran over what loaded
    ws.close()
    # with room to grow, the same content is loaded on the next try (the failed row is replaced)
    monkeypatch.setenv("MCPTRACE_MEMORY_LIMIT_MAX", "4GiB")
    ws = Workspace(connect(db, memory_limit="64MiB"), path=db)
    again = ws.load(tmp_path / "shot.jsonl").files[0]
    assert again.status == "loaded" and again.n_rows == 2
    assert ws.sql("SELECT status FROM sources WHERE path LIKE '%shot.jsonl'").rows() == [("loaded",)]
    assert ws.sql("SELECT status FROM calls WHERE tool_name = 'screenshot'").rows() == [("ok",)]
    assert ws.sql("SELECT current_setting('memory_limit')").rows()[0][0] in ("61.0 MiB", "64.0 MiB")
    ws.close()


def test_a_small_batch_that_fails_leaves_the_optimizer_on(tmp_path, monkeypatch):
    """A small batch is staged with DuckDB's optimizer off (loader.LIGHT_PLANNING_ROWS): when it fails inside
    its transaction the setting cannot be put back before the rollback, and is put back after it, so the
    files after it and the rebuild are planned as usual."""
    from mcptrace.ingest import loader

    staged = loader.statements

    def failing(name):
        out = staged(name)
        return (*out, "SELECT error('a stage statement failed')") if name == "messages.sql" else out

    monkeypatch.setattr(loader, "statements", failing)
    settings = []
    ingest = Loader._ingest
    monkeypatch.setattr(Loader, "_ingest", lambda self, *a, **kw: settings.append(
        self.con.execute("SELECT current_setting('enable_optimizer')").fetchone()[0]) or ingest(self, *a, **kw))
    ws = mcptrace.open(str(tmp_path / "s.duckdb"))
    report = ws.load([SAMPLES / "agent_stdio.jsonl", SAMPLES / "ide_http.jsonl"])
    assert [f.status for f in report.files] == ["failed", "failed"], report.files
    assert "a stage statement failed" in report.files[0].error
    assert settings == [True, True]  # the second file starts with the optimizer on again
    assert ws.sql("SELECT current_setting('enable_optimizer')").rows() == [(True,)]
    monkeypatch.setattr(loader, "statements", staged)
    assert ws.load(SAMPLES / "agent_stdio.jsonl").ok
    ws.close()


def test_a_fifty_megabyte_tool_result_loads_into_a_database_file(tmp_path, monkeypatch):
    _screenshot_capture(tmp_path / "shot.jsonl", 50)
    attempts = []
    ingest = Loader._ingest_isolated
    monkeypatch.setattr(Loader, "_ingest_isolated", lambda self, *a, **kw: attempts.append(
        self.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]) or ingest(self, *a, **kw))
    ws = mcptrace.load(tmp_path / "shot.jsonl", db=str(tmp_path / "big.duckdb"))
    assert ws.last_report.ok, ws.last_report.files
    # at the first attempt, with the default 1 GiB limit: only the batch of the long record runs
    # with more room (LONG_RECORD_ALLOWANCE), the file is not loaded again
    assert attempts == ["1.0 GiB"] or attempts == ["953.6 MiB"], attempts
    assert ws.sql("SELECT current_setting('memory_limit')").rows() == [(attempts[0],)]
    assert ws.sql("SELECT status FROM calls").rows() == [("ok",)]
    assert ws.sql("SELECT length(raw::VARCHAR) > 50000000 FROM messages WHERE kind = 'response'").rows() == [(True,)]


def test_a_bad_record_with_errors_raise_still_leaves_the_earlier_files_analysed(tmp_path):
    bad = tmp_path / "z_bad.jsonl"
    bad.write_text('{"ts": "2026-03-01T12:00:00Z", "direction": "client_to_server", "message": {oops\n', encoding="utf-8")
    ws = mcptrace.open()
    with pytest.raises(mcptrace.RecordError):
        ws.load([SAMPLES / "agent_stdio.jsonl", bad], errors="raise")
    assert ws.sql("SELECT count(*) FROM calls").rows()[0][0] > 0
    assert ws.sql("SELECT count(*) FROM sessions").rows()[0][0] > 0
