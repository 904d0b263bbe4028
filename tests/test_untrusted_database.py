"""A database someone sent is untrusted: the reading commands open it read-only, with no file or
network access and no extension loaded on its behalf, so a view in it cannot put a local file into
a report, a table print or an export; they say what was refused and the file is left unchanged."""

from __future__ import annotations

import hashlib
import os

import duckdb
import pytest

import mcptrace
from conftest import SAMPLES
from mcptrace.cli import main

SECRET = "TOP-SECRET-0f9c2b"


def _sent_database(tmp_path, swap_sources: bool) -> str:
    """A real mcptrace database holding a view over a local file (``leak``), and with ``swap_sources``
    its ``sources`` table swapped for a view that puts the file's text in ``path``."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    db = str(tmp_path / "sent.duckdb")
    mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=db).close()
    con = duckdb.connect(db)
    if swap_sources:
        con.execute("ALTER TABLE sources RENAME TO sources_real")
        con.execute(f"CREATE VIEW sources AS SELECT s.* REPLACE (content AS path) FROM sources_real s, "
                    f"read_text('{secret}')")
    con.execute(f"CREATE VIEW leak AS SELECT content FROM read_text('{secret}')")
    con.close()
    return db


@pytest.fixture()
def hostile_db(tmp_path):
    return _sent_database(tmp_path, swap_sources=True)


def _sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_report_of_a_hostile_database_never_reads_the_local_file(hostile_db, tmp_path, capsys):
    before = _sha(hostile_db)
    out = tmp_path / "report.html"
    assert main(["report", "--db", hostile_db, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "does not allow" in err and "Cannot access file" in err, err
    assert not out.exists() or SECRET not in out.read_text(encoding="utf-8")
    assert _sha(hostile_db) == before  # opened read-only: the evidence is unchanged


@pytest.mark.parametrize("argv", [
    ["open", "{db}", "--sql", "SELECT * FROM leak"],
    ["open", "{db}", "--sql", "SELECT content FROM read_text('{secret}')"],
    ["open", "{db}", "--sql", "SELECT * FROM read_csv('https://example.invalid/x.csv')"],
    ["open", "{db}", "--sql", "ATTACH '{tmp}/other.duckdb'"],
    ["open", "{db}", "--sql", "COPY (SELECT 1) TO '{tmp}/out.csv'"],
    ["export", "--db", "{db}", "--table", "sources={tmp}/sources.csv"],
])
def test_reading_commands_refuse_what_reaches_outside_the_database(hostile_db, tmp_path, capsys, argv):
    args = [a.format(db=hostile_db, secret=tmp_path / "secret.txt", tmp=tmp_path) for a in argv]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "does not allow" in captured.err, captured.err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()
    if (tmp_path / "sources.csv").exists():
        assert SECRET not in (tmp_path / "sources.csv").read_text(encoding="utf-8")


def test_the_tables_that_do_not_reach_outside_still_work(tmp_path, capsys):
    hostile_db = _sent_database(tmp_path, swap_sources=False)
    before = _sha(hostile_db)
    assert main(["sessions", "--db", hostile_db]) == 0
    assert main(["gaps", "--db", hostile_db]) == 0
    assert main(["report", "--db", hostile_db, "--out", str(tmp_path / "r.html")]) == 0
    assert SECRET not in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert main(["export", "--db", hostile_db, "--table", f"calls={tmp_path / 'calls.csv'}",
                 "--chrome-trace", str(tmp_path / "trace.json")]) == 0
    assert (tmp_path / "calls.csv").stat().st_size > 0 and (tmp_path / "trace.json").stat().st_size > 0
    assert SECRET not in capsys.readouterr().out
    assert _sha(hostile_db) == before


def test_library_read_only_open_is_untrusted_and_writes_nothing(tmp_path):
    hostile_db = _sent_database(tmp_path, swap_sources=False)
    before = _sha(hostile_db)
    with mcptrace.open(hostile_db, read_only=True) as ws:
        assert ws.sql("SELECT count(*) FROM calls").rows()[0][0] > 0
        with pytest.raises(duckdb.PermissionException):
            ws.sql("SELECT * FROM leak").rows()
        with pytest.raises(duckdb.Error):  # locked: the settings cannot be turned back
            ws.sql("SET enable_external_access = true").rows()
        with pytest.raises(mcptrace.MCPTraceError, match="read-only"):
            ws.load(SAMPLES / "ide_http.jsonl")
    assert _sha(hostile_db) == before


def test_a_clean_database_exports_a_parquet_dataset_read_only(tmp_path):
    db = str(tmp_path / "clean.duckdb")
    mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=db).close()
    before = _sha(db)
    assert main(["export", "--db", db, "--parquet", str(tmp_path / "ds")]) == 0
    assert _sha(db) == before
    with mcptrace.open(str(tmp_path / "ds")) as ws:
        assert ws.sql("SELECT count(*) FROM calls").rows()[0][0] > 0


def test_a_database_of_an_older_schema_is_upgraded_under_the_same_settings(tmp_path):
    db = str(tmp_path / "old.duckdb")
    mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=db).close()
    con = duckdb.connect(db)
    con.execute("ALTER TABLE messages DROP COLUMN truncated")
    con.execute("DROP TABLE calls")
    con.close()
    assert main(["sessions", "--db", db]) == 0
    con = duckdb.connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM calls").fetchone()[0] > 0
    assert "truncated" in {r[0] for r in con.execute("DESCRIBE messages").fetchall()}
    con.close()
    assert os.path.exists(db)


def test_a_writable_untrusted_connection_loads_and_appends_with_its_locked_settings(tmp_path):
    """A connection with the untrusted settings (locked configuration) that may write: small batches and small
    scopes, planned without the optimizer elsewhere, keep the locked setting and load and append all the same."""
    from mcptrace.core.db import connect
    from mcptrace.workspace import Workspace

    db = str(tmp_path / "u.duckdb")
    mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=db).close()
    ws = Workspace(connect(db, untrusted=True), path=db)
    report = ws.load(SAMPLES / "ide_http.jsonl")
    assert report.ok and report.analysis.mode == "incremental", (report.files, report.analysis)
    assert ws.sql("SELECT current_setting('enable_optimizer'), current_setting('lock_configuration')").rows() == [
        (True, True)]
    assert ws.sql("SELECT count(*) FROM calls").rows() == mcptrace.load(
        [SAMPLES / "agent_stdio.jsonl", SAMPLES / "ide_http.jsonl"]).sql("SELECT count(*) FROM calls").rows()
    ws.close()


def test_library_read_only_open_of_a_database_whose_tables_reach_outside_raises(hostile_db):
    with pytest.raises(duckdb.PermissionException, match="Cannot access file"):
        mcptrace.open(hostile_db, read_only=True)
