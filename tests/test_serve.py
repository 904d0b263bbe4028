"""``mcptrace serve``: a database as a read-only MCP server, driven by the official SDK ``Client`` over
stdio and Streamable HTTP against a real ``python -m mcptrace serve`` process; its tools answer like the
Workspace API, its resources are the report and a timeline PNG, and the ``sql`` tool refuses what is
not one SELECT over the contract tables, both at the statement check and at the locked read-only
connection beneath it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import SAMPLES

import mcptrace
from mcptrace.cli import main
from mcptrace.core.db import TABLES, connect
from mcptrace.serve.readonly import (
    Limits,
    QueryRefused,
    SqlReader,
    arrow_rows,
    capped_rows,
    json_value,
)
from mcptrace.workspace import open_untrusted

ROOT = Path(__file__).resolve().parents[1]
INCIDENTS = ROOT / "data" / "incidents"
PY = sys.executable
PNG = b"\x89PNG\r\n\x1a\n"
TOOLS = {"sessions", "calls", "gaps", "findings", "turn_tree", "tool_stats", "diff", "sql"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def dbs(tmp_path_factory) -> dict[str, str]:
    """The shipped samples loaded into a database file (closed: the server opens it read-only)."""
    d = tmp_path_factory.mktemp("serve")
    out = {"samples": str(d / "samples.duckdb")}
    mcptrace.load(SAMPLES, db=out["samples"]).close()
    return out


def _stdio(db: str, *extra: str):
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=PY, args=["-m", "mcptrace", "serve", "--db", db, *extra], cwd=str(ROOT),
                                   env={"PYTHONPATH": _env()["PYTHONPATH"], "PYTHONUNBUFFERED": "1"})
    return Client(params)


def _run(scenario, *args):
    import anyio

    return anyio.run(scenario, *args)


def _iso(v: dt.datetime | None) -> str | None:
    return None if v is None else v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _ok(res) -> dict:
    assert not res.is_error, res.content
    return res.structured_content


def _error(res) -> str:
    assert res.is_error, res.structured_content
    return res.content[0].text


def _column(rows: dict, name: str) -> list:
    return [r[name] for r in rows["rows"]]


# -- the tools, over stdio -----------------------------------------------------------------------

def test_tools_answer_like_the_workspace(dbs):
    db = dbs["samples"]
    before = _sha(db)
    ws = open_untrusted(db)  # read-only, beside the server's read-only connection
    assert ws.read_only
    sessions = ws.sessions().df()
    busiest = ws.busiest_session()
    turns = ws.turns(busiest).df()
    gap_df = ws.gaps().df()
    code = gap_df["code"].value_counts().index[0]
    gap_session = gap_df["session_id"].dropna().iloc[0]
    call_id = int(ws.calls(busiest).df()["call_id"].iloc[-1])
    from mcptrace.analysis.turns import turn_of

    call_turn = turn_of(ws.con, call_id)[1]

    async def scenario():
        async with _stdio(db) as client:
            listed = (await client.list_tools()).tools
            assert TOOLS <= {t.name for t in listed}
            for t in listed:
                assert t.annotations.read_only_hint is True and t.output_schema, t.name
                assert "truncated" in t.description and "UTC" in t.description, t.name
            got = {}
            got["sessions"] = _ok(await client.call_tool("sessions", {}))
            got["one_session"] = _ok(await client.call_tool("sessions", {"limit": 1}))
            got["calls"] = _ok(await client.call_tool("calls", {"session_id": busiest}))
            got["gaps"] = _ok(await client.call_tool("gaps", {}))
            got["gaps_code"] = _ok(await client.call_tool("gaps", {"code": code}))
            got["gaps_session"] = _ok(await client.call_tool("gaps", {"session_id": gap_session}))
            got["findings"] = _ok(await client.call_tool("findings", {}))
            got["errors"] = _ok(await client.call_tool("findings", {"severity": "error"}))
            got["tree"] = _ok(await client.call_tool("turn_tree", {"session_id": busiest}))
            got["turn"] = _ok(await client.call_tool("turn_tree", {"session_id": busiest, "turn": turns["turn"].iloc[0]}))
            got["call_turn"] = _ok(await client.call_tool("turn_tree", {"session_id": busiest, "call_id": call_id}))
            got["sql"] = _ok(await client.call_tool("sql", {
                "query": "SELECT coalesce(tool_name, method) AS name, count(*) AS n, sum(duration_ms) AS ms "
                         "FROM calls GROUP BY ALL ORDER BY ALL"}))
            got["sql_capped"] = _ok(await client.call_tool("sql", {"query": "SELECT * FROM range(5000)"}))
            got["sql_limit"] = _ok(await client.call_tool("sql", {"query": "SELECT * FROM calls", "limit": 3}))
            got["stats"] = _ok(await client.call_tool("tool_stats", {}))
            got["stats_by"] = _ok(await client.call_tool("tool_stats", {"by": ["client", "method"], "method": None}))
            got["stats_bad"] = (await client.call_tool("tool_stats", {"by": ["nope"]})).is_error
            got["no_session"] = _error(await client.call_tool("calls", {"session_id": "s_000000000000"}))
            got["no_code"] = _error(await client.call_tool("gaps", {"code": "no_such_code"}))
            got["no_turn"] = _error(await client.call_tool("turn_tree", {"session_id": busiest, "turn": "nope"}))
            got["bad_severity"] = (await client.call_tool("findings", {"severity": "fatal"})).is_error
            return got

    got = _run(scenario)
    s = got["sessions"]
    assert s["row_count"] == len(sessions) and s["truncated"] is False and s["truncated_by"] is None
    assert _column(s, "session_id") == list(sessions["session_id"])
    assert _column(s, "first_ts") == [_iso(v.to_pydatetime()) for v in sessions["first_ts"]]
    assert _column(s, "n_calls") == [int(n) for n in sessions["n_calls"]]
    assert {"name": "first_ts", "type": "TIMESTAMP WITH TIME ZONE"} in s["columns"]
    assert got["one_session"]["row_count"] == 1 and got["one_session"]["truncated"] is True
    assert got["one_session"]["truncated_by"] == "rows"

    calls = ws.calls(busiest).df()
    assert _column(got["calls"], "call_id") == [int(c) for c in calls["call_id"]]
    assert _column(got["calls"], "status") == list(calls["status"])
    assert set(_column(got["calls"], "session_id")) == {busiest}

    assert _column(got["gaps"], "gap_id") == [int(g) for g in gap_df["gap_id"]]
    assert [r["detail"] for r in got["gaps"]["rows"]] == [json.loads(d) for d in gap_df["detail"]]  # JSON as values
    assert {"name": "detail", "type": "JSON"} in got["gaps"]["columns"]
    assert _column(got["gaps_code"], "gap_id") == [int(g) for g in ws.gaps(code=code).df()["gap_id"]]
    assert set(_column(got["gaps_code"], "code")) == {code}
    assert _column(got["gaps_session"], "gap_id") == [int(g) for g in ws.gaps(session_id=gap_session).df()["gap_id"]]

    findings = ws.findings().df()
    assert _column(got["findings"], "finding_id") == [int(f) for f in findings["finding_id"]]
    assert _column(got["findings"], "gap_ids") == [[int(g) for g in ids] for ids in findings["gap_ids"]]
    assert _column(got["errors"], "finding_id") == [int(f) for f in ws.findings("error").df()["finding_id"]]
    assert set(_column(got["errors"], "severity")) <= {"error"}

    tree = got["tree"]
    assert tree["session_id"] == busiest and tree["turn"] is None
    assert _column(tree["turns"], "turn") == list(turns["turn"])
    assert _column(tree["tree"], "node_id") == list(ws.tree(busiest)["node_id"])
    assert _column(got["turn"]["tree"], "node_id") == list(ws.tree(busiest, turn=turns["turn"].iloc[0])["node_id"])
    assert got["turn"]["turn"] == turns["turn"].iloc[0]
    assert got["call_turn"]["turn"] == call_turn
    assert _column(got["call_turn"]["tree"], "node_id") == list(ws.tree(busiest, call_id=call_id)["node_id"])

    expected = ws.sql("SELECT coalesce(tool_name, method) AS name, count(*) AS n, sum(duration_ms) AS ms "
                      "FROM calls GROUP BY ALL ORDER BY ALL").rows()
    assert [(r["name"], r["n"], r["ms"]) for r in got["sql"]["rows"]] == [tuple(r) for r in expected]
    assert got["sql"]["elapsed_ms"] >= 0
    cap = got["sql_capped"]
    assert cap["row_count"] == 1000 and cap["truncated"] and cap["truncated_by"] == "rows"
    assert _column(cap, "range") == list(range(1000))
    assert got["sql_limit"]["row_count"] == 3 and got["sql_limit"]["truncated"]

    stats = ws.tool_stats().df()
    assert [(r["server"], r["tool"], r["calls"], r["p95_ms"]) for r in got["stats"]["rows"]] == [
        (r.server, r.tool, r.calls, None if r.p95_ms != r.p95_ms else r.p95_ms) for r in stats.itertuples()]
    assert [c["name"] for c in got["stats"]["columns"]] == list(stats.columns)
    by = ws.tool_stats(["client", "method"], method=None).df()
    assert [(r["client"], r["method"], r["calls"]) for r in got["stats_by"]["rows"]] == [
        (r.client, r.method, r.calls) for r in by.itertuples()]
    assert got["stats_bad"] is True
    assert "no session 's_000000000000'" in got["no_session"]
    assert "unknown gap code 'no_such_code'" in got["no_code"]
    assert "no turn 'nope'" in got["no_turn"]
    assert got["bad_severity"] is True
    ws.close()
    assert _sha(db) == before  # served read-only: the file is unchanged


#: hostile queries for the sql tool, each with what its refusal says
HOSTILE = [
    ("INSERT INTO calls SELECT * FROM calls", "not INSERT"),
    ("UPDATE calls SET status = 'ok'", "not UPDATE"),
    ("DELETE FROM calls", "not DELETE"),
    ("DROP TABLE calls", "not DROP"),
    ("CREATE TABLE x AS SELECT 1", "not CREATE"),
    ("COPY calls TO '/tmp/x'", "not COPY"),
    ("SELECT * FROM read_csv('/etc/passwd')", "table function read_csv() is not allowed"),
    ("SELECT * FROM read_text('/etc/passwd')", "table function read_text() is not allowed"),
    ("SELECT * FROM glob('/*')", "table function glob() is not allowed"),
    ("SELECT * FROM '/etc/passwd'", "'/etc/passwd' is not a contract table"),
    ("ATTACH '/tmp/x.db'", "not ATTACH"),
    ("INSTALL httpfs", "not LOAD"),
    ("LOAD httpfs", "not LOAD"),
    ("SET enable_external_access = true", "not SET"),
    ("PRAGMA database_list", "not PRAGMA"),
    ("EXPORT DATABASE '/tmp/x'", "not EXPORT"),
    ("CALL duckdb_settings()", "not CALL"),
    ("EXPLAIN SELECT * FROM calls", "not EXPLAIN"),
    ("SELECT * FROM read_json('/etc/hosts')", "table function read_json() is not allowed"),
    ("SELECT * FROM read_parquet('/tmp/x.parquet')", "table function read_parquet() is not allowed"),
    ("SELECT 1; DROP TABLE calls", "exactly one statement is allowed, got 2"),
    ("SELECT * FROM message_order", "'message_order' is not a contract table"),
    ("SELECT * FROM duckdb_settings()", "table function duckdb_settings() is not allowed"),
    ("SELECT * FROM sqlite_master", "'sqlite_master' is not a contract table"),
    ("SELECT * FROM query('SELECT * FROM message_order')", "table function query() is not allowed"),
    ("SHOW TABLES", "SHOW is not allowed"),
    ("WITH message_order AS (SELECT 1) SELECT * FROM message_order", "a CTE may not take the name"),
    ("SELECT * FROM (WITH x AS (SELECT 1) SELECT 1), x", "'x' is not a contract table"),
    ("SELEC 1", "not valid SQL"),
]


def test_hostile_sql_is_refused_and_the_server_keeps_answering(dbs):
    db = dbs["samples"]
    before = _sha(db)
    with open_untrusted(db) as ws:
        n_calls = ws.sql("SELECT count(*) FROM calls").rows()[0][0]
        n_messages = ws.sql("SELECT count(*) FROM messages").rows()[0][0]

    async def scenario():
        out = []
        async with _stdio(db, "--max-rows", "100", "--max-bytes", "200000", "--sql-timeout", "2") as client:
            for query, _ in HOSTILE:
                refused = await client.call_tool("sql", {"query": query})
                alive = await client.call_tool("sql", {"query": "SELECT count(*) AS n FROM calls"})
                out.append((refused.is_error, refused.content[0].text, _ok(alive)["rows"]))
            import anyio

            t0 = time.monotonic()
            slow, meanwhile = {}, {}

            async def slow_query():
                slow["res"] = await client.call_tool("sql", {"query": "SELECT count(*) FROM range(10000000000000)"})
                slow["s"] = time.monotonic() - t0

            async def quick_call():
                await anyio.sleep(0.3)
                meanwhile["res"] = _ok(await client.call_tool("sessions", {}))
                meanwhile["s"] = time.monotonic() - t0

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_query)
                tg.start_soon(quick_call)
            slow_s = slow["s"]
            slow = slow["res"]
            assert meanwhile["res"]["row_count"] > 0 and meanwhile["s"] < slow_s  # answered while the query ran
            rows = _ok(await client.call_tool("sql", {"query": "SELECT * FROM range(5000)"}))
            big = _ok(await client.call_tool("sql", {"query": "SELECT repeat(raw, 40) AS raw FROM messages"}))
            fits = _ok(await client.call_tool("sql", {"query": "SELECT * FROM range(100)"}))
            info = _ok(await client.call_tool("sql", {"query": "SELECT DISTINCT table_name FROM information_schema.tables "
                                                               "ORDER BY 1"}))
            still = _ok(await client.call_tool("calls", {"session_id": _ok(await client.call_tool("sessions", {}))
                                                         ["rows"][0]["session_id"]}))
            return out, slow, slow_s, rows, big, fits, info, still

    out, slow, slow_s, rows, big, fits, info, still = _run(scenario)
    for (query, says), (is_error, text, alive) in zip(HOSTILE, out):
        assert is_error, query
        assert says in text, (query, text)
        assert alive == [{"n": n_calls}], query
    assert "stopped after 2 s" in _error(slow) and slow_s < 15
    assert rows["row_count"] == 100 and rows["truncated_by"] == "rows" and rows["max_rows"] == 100
    assert big["truncated_by"] == "bytes" and 0 < big["row_count"] < min(n_messages, 100)
    assert len(json.dumps(big["rows"], ensure_ascii=False, separators=(",", ":")).encode()) <= 200_000
    assert fits["row_count"] == 100 and fits["truncated"] is False  # exactly the cap is not truncated
    assert set(TABLES) <= set(_column(info, "table_name"))
    assert still["row_count"] > 0
    assert _sha(db) == before


# -- diff: only databases in the allowed directories, opened like the served one -------------------

def _older_database(path: Path) -> str:
    """A real database as an older mcptrace wrote it (a column added since is missing)."""
    mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=str(path)).close()
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE spans DROP COLUMN mcp_side")
    con.close()
    return str(path)


def _sent_database(path: Path, secret: Path) -> str:
    """A real database whose `sources` is a view over a local file (as someone could send one)."""
    mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=str(path)).close()
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE sources RENAME TO sources_real")
    con.execute(f"CREATE VIEW sources AS SELECT s.* REPLACE (content AS path) FROM sources_real s, read_text('{secret}')")
    con.close()
    return str(path)


def test_diff_opens_only_databases_in_the_allowed_directories(tmp_path):
    served_dir, elsewhere = tmp_path / "served", tmp_path / "elsewhere"
    served_dir.mkdir()
    elsewhere.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-a11c", encoding="utf-8")
    db = str(served_dir / "samples.duckdb")
    mcptrace.load(SAMPLES, db=db).close()
    incident = sorted(INCIDENTS.glob("server_without_trace_extraction*"))
    after = str(served_dir / "after.duckdb")
    mcptrace.load(incident, db=after).close()
    outside = str(elsewhere / "outside.duckdb")
    mcptrace.load(incident, db=outside).close()
    os.symlink(outside, served_dir / "link.duckdb")
    older = _older_database(served_dir / "older.duckdb")
    sent = _sent_database(served_dir / "sent.duckdb", secret)
    (served_dir / "notes.txt").write_text("not a database", encoding="utf-8")
    duckdb.connect(str(served_dir / "plain.duckdb")).execute("CREATE TABLE t AS SELECT 1 AS x").close()
    shas = {p: _sha(p) for p in (db, after, outside, older, sent)}
    with open_untrusted(db) as ws, open_untrusted(after) as other:
        expected = ws.diff(other).to_dict()

    async def default_dirs():
        async with _stdio(db, "--max-rows", "5") as client:
            got = {"after": _ok(await client.call_tool("diff", {"other": "after.duckdb"})),
                   "absolute": _ok(await client.call_tool("diff", {"other": after})),
                   "itself": _ok(await client.call_tool("diff", {"other": "samples.duckdb"}))}
            for name, other in [("outside", outside), ("dotdot", "../elsewhere/outside.duckdb"),
                                ("link", "link.duckdb"), ("passwd", "/etc/passwd"), ("older", "older.duckdb"),
                                ("sent", "sent.duckdb"), ("notes", "notes.txt"), ("missing", "missing.duckdb"),
                                ("plain", "plain.duckdb")]:
                got[name] = _error(await client.call_tool("diff", {"other": other}))
            got["alive"] = _ok(await client.call_tool("sessions", {}))
            return got

    got = _run(default_dirs)
    d = got["after"]
    assert d["a"]["name"] == os.path.realpath(db) and d["b"]["name"] == os.path.realpath(after)
    for section in ("findings", "gaps", "definitions", "tools", "coverage", "not_compared"):
        assert d["counts"][section] == len(expected[section]), section
        assert d[section] == json.loads(json.dumps(expected[section][:5], default=str)), section
    assert d["truncated"] == any(len(expected[s]) > 5 for s in d["counts"])
    assert got["absolute"] == d
    assert all(g["status"] == "same" for g in got["itself"]["gaps"]) and got["itself"]["definitions"] == []
    for name in ("outside", "dotdot", "link", "passwd"):
        assert "outside the directories this server may open databases in" in got[name], (name, got[name])
    assert "written by an older mcptrace" in got["older"]
    assert "Cannot access file" in got["sent"] and "TOP-SECRET" not in got["sent"]
    assert "not a DuckDB database file" in got["notes"] and "no such database file" in got["missing"]
    assert "a DuckDB database without mcptrace's tables" in got["plain"]
    assert got["alive"]["row_count"] > 0

    async def other_dir():
        async with _stdio(db, "--allow-dir", str(elsewhere)) as client:
            return (_ok(await client.call_tool("diff", {"other": outside})),
                    _error(await client.call_tool("diff", {"other": "after.duckdb"})))

    allowed, refused = _run(other_dir)
    assert allowed["b"]["name"] == outside and allowed["counts"]["gaps"] == len(expected["gaps"])
    assert "outside the directories" in refused  # --allow-dir replaces the default
    assert {p: _sha(p) for p in shas} == shas  # nothing was written, the older database not upgraded


# -- the resources -------------------------------------------------------------------------------

def test_report_and_timeline_resources(dbs):
    from mcp.shared.exceptions import MCPError

    db = dbs["samples"]
    with open_untrusted(db) as ws:
        busiest = ws.busiest_session()
        sessions = list(ws.sessions().df()["session_id"])

    async def scenario():
        async with _stdio(db) as client:
            listed = {str(r.uri): r for r in (await client.list_resources()).resources}
            templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
            report = (await client.read_resource("mcptrace://report")).contents[0]
            png = (await client.read_resource(f"mcptrace://sessions/{busiest}/timeline.png")).contents[0]
            try:
                await client.read_resource("mcptrace://sessions/s_000000000000/timeline.png")
                unknown = None
            except MCPError as e:
                unknown = str(e)
            alive = _ok(await client.call_tool("sessions", {}))
            return listed, templates, report, png, unknown, alive

    listed, templates, report, png, unknown, alive = _run(scenario)
    assert listed["mcptrace://report"].mime_type == "text/html"
    assert "mcptrace://sessions/{session_id}/timeline.png" in templates
    assert report.mime_type == "text/html" and report.text.lstrip().lower().startswith("<!doctype html")
    assert all(s in report.text for s in sessions)
    assert png.mime_type == "image/png"
    data = base64.b64decode(png.blob)
    assert data.startswith(PNG) and len(data) > 10_000
    assert unknown is not None and "no session 's_000000000000'" in unknown
    assert alive["row_count"] == len(sessions)


# -- Streamable HTTP -----------------------------------------------------------------------------

def _start_http(db: str, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([PY, "-m", "mcptrace", "serve", "--db", db, "--transport", "http", "--port", "0", *extra],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            break
    m = re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no URL printed: {line!r} {proc.stderr.read()}")
    return proc, m.group(1)


def test_streamable_http_on_loopback(dbs):
    db = dbs["samples"]
    with open_untrusted(db) as ws:
        n_sessions = len(ws.sessions())
    proc, url = _start_http(db)
    try:
        async def scenario():
            from mcp import Client

            async with Client(url) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                sessions = _ok(await client.call_tool("sessions", {}))
                refused = await client.call_tool("sql", {"query": "DROP TABLE calls"})
                return names, sessions, refused

        names, sessions, refused = _run(scenario)
        assert TOOLS <= names
        assert sessions["row_count"] == n_sessions
        assert "not DROP" in _error(refused)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, proc.stderr.read()


def test_http_refuses_a_non_loopback_host_and_caps_above_the_defaults(dbs, capsys):
    db = dbs["samples"]
    for argv, says in [
        (["--transport", "http", "--host", "0.0.0.0"], "refusing to listen on non-loopback address '0.0.0.0'"),
        (["--transport", "http", "--host", "192.0.2.1", "--port", "1"], "non-loopback"),
        (["--max-rows", "5000"], "--max-rows must be between 1 and 1000"),
        (["--max-bytes", "0"], "--max-bytes must be between 1 and 1000000"),
        (["--sql-timeout", "0"], "--sql-timeout must be positive"),
        # with --allow-remote the address passes (the next check speaks)
        (["--transport", "http", "--host", "0.0.0.0", "--allow-remote", "--max-rows", "0"], "--max-rows must be"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(["serve", "--db", db, *argv])
        assert exc.value.code == 2
        assert says in capsys.readouterr().err, argv


def test_serve_without_the_sdk_says_what_to_install(dbs):
    code = """
import sys
sys.modules["mcp"] = None
from mcptrace.cli import main
sys.exit(main(["serve", "--db", sys.argv[1]]))
"""
    r = subprocess.run([PY, "-c", code, dbs["samples"]], check=False, capture_output=True, text=True, cwd=ROOT, env=_env(),
                       timeout=60)
    assert r.returncode == 2
    assert "pip install 'mcptrace[serve]'" in r.stderr and "mcp>=2.3" in r.stderr, r.stderr


def test_serve_refuses_what_is_not_a_database_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a database", encoding="utf-8")
    from mcptrace.serve.server import open_served  # needs the SDK only to import

    older = _older_database(tmp_path / "older.duckdb")
    before = _sha(older)
    for path, says in [(tmp_path / "missing.duckdb", "no such database"), (tmp_path, "a directory"),
                       (tmp_path / "notes.txt", "cannot open"), (older, "written by an older mcptrace")]:
        with pytest.raises(mcptrace.MCPTraceError, match=says):
            open_served(path)
    assert _sha(older) == before  # served databases are never written, not even to upgrade them


# -- the sql tool in process: the statement check and the connection beneath it -------------------

@pytest.fixture()
def reader(dbs):
    ws = open_untrusted(dbs["samples"])
    yield SqlReader(ws.con.cursor(), Limits(timeout_s=5))
    ws.close()


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_csv('{csv}')",
    "SELECT * FROM read_text('{csv}')",
    "SELECT * FROM read_blob('{csv}')",
    "SELECT * FROM read_json('{csv}')",
    "SELECT * FROM read_parquet('{csv}')",
    "SELECT * FROM glob('{outside}/*')",
    "SELECT * FROM '{csv}'",
    "SELECT * FROM read_csv('https://example.invalid/x.csv')",
    "COPY calls TO '{out}/x.csv'",
    "EXPORT DATABASE '{out}/exported'",
    "ATTACH '{out}/other.duckdb'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "INSERT INTO calls SELECT * FROM calls",
    "DROP TABLE calls",
    "CREATE TABLE t AS SELECT 1",
])
def test_the_connection_alone_refuses_files_writes_and_settings(dbs, tmp_path, query):
    """Without the statement check: DuckDB itself refuses (external access off, read-only, locked)."""
    outside, out = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    out.mkdir()
    (outside / "data.csv").write_text("secret\nTOP-SECRET-77\n", encoding="utf-8")
    ws = open_untrusted(dbs["samples"])
    con = ws.con.cursor()
    try:
        with pytest.raises(duckdb.Error) as exc:
            con.execute(query.format(csv=outside / "data.csv", outside=outside, out=out)).fetchall()
        text = str(exc.value)
        assert any(s in text for s in ("disabled by configuration", "read-only", "configuration has been locked",
                                       "disabled through configuration")), text
        assert "TOP-SECRET" not in text
        assert list(out.iterdir()) == []
    finally:
        con.close()
        ws.close()


def test_a_view_in_a_sent_database_cannot_read_a_file_through_the_sql_tool(tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-5e1d", encoding="utf-8")
    db = str(tmp_path / "sent.duckdb")
    mcptrace.load(SAMPLES / "agent_stdio.jsonl", db=db).close()
    con = duckdb.connect(db)
    con.execute("ALTER TABLE sources RENAME TO sources_real")
    con.execute(f"CREATE VIEW sources AS SELECT s.* REPLACE (content AS path) FROM sources_real s, read_text('{secret}')")
    con.execute("CREATE MACRO leak() AS (SELECT count(*) FROM message_order)")
    con.execute("CREATE MACRO range_of(n) AS TABLE SELECT * FROM message_order")
    con.close()
    before = _sha(db)
    assert main(["serve", "--db", db]) == 1  # the workspace's own queries read `sources`: refused at start
    err = capsys.readouterr().err
    assert "does not allow" in err and "Cannot access file" in err and "TOP-SECRET" not in err
    # the reader on the same hardened connection the server opens
    con = connect(db, read_only=True, untrusted=True)
    reader = SqlReader(con.cursor())
    with pytest.raises(mcptrace.MCPTraceError, match="Cannot access file") as exc:
        reader.run("SELECT path FROM sources")  # a contract name: the check lets it through, DuckDB does not
    assert "TOP-SECRET" not in str(exc.value)
    with pytest.raises(QueryRefused, match="leak\\(\\) is a macro stored in the database"):
        reader.run("SELECT leak()")
    with pytest.raises(QueryRefused, match="table function range_of\\(\\) is not allowed"):
        reader.run("SELECT * FROM range_of(1)")
    assert reader.run("SELECT count(*) AS n FROM calls")["rows"][0]["n"] > 0
    con.close()
    assert _sha(db) == before


def test_a_connection_that_is_not_locked_down_is_refused(dbs):
    con = duckdb.connect(dbs["samples"], read_only=True)
    try:
        with pytest.raises(mcptrace.MCPTraceError, match="enable_external_access=True"):
            SqlReader(con)
    finally:
        con.close()
    with pytest.raises(mcptrace.MCPTraceError, match="read_only=False"):
        SqlReader(duckdb.connect(config={"enable_external_access": False, "lock_configuration": True}))


def test_allowed_queries_pass_the_check(reader):
    for query in ["SELECT 1", "FROM calls LIMIT 1", "WITH a AS (SELECT * FROM calls) SELECT count(*) FROM a",
                  "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
                  "SELECT * FROM main.calls c JOIN sessions s USING (session_id)", "DESCRIBE calls", "SUMMARIZE gaps",
                  "SELECT * FROM information_schema.columns WHERE table_name = 'calls'", "VALUES (1), (2)",
                  "SELECT * FROM unnest([1, 2])", "SELECT * FROM generate_series(1, 3)",
                  "SELECT code, count(*) FROM gaps WHERE session_id IN (SELECT session_id FROM sessions) GROUP BY ALL"]:
        reader.check(query)
    out = reader.run("SELECT 1 AS a, 2 AS a, [1, 2] AS l, {'k': 'v'} AS s, 1.5::DECIMAL(4, 2) AS d, "
                     "TIMESTAMPTZ '2025-01-02 03:04:05.123456+00' AS ts, 'x'::BLOB AS b, NULL AS z")
    assert out["rows"] == [{"a": 1, "a_2": 2, "l": [1, 2], "s": {"k": "v"}, "d": 1.5, "ts": "2025-01-02T03:04:05.123456Z",
                            "b": "eA==", "z": None}]


def test_rows_are_capped_in_number_and_bytes():
    names, types = ["i", "s"], ["BIGINT", "VARCHAR"]
    rows = [(i, "x" * 100) for i in range(50)]
    assert capped_rows(names, types, iter(rows), max_rows=50, max_bytes=10**6)["truncated"] is False
    out = capped_rows(names, types, iter(rows), max_rows=49, max_bytes=10**6)
    assert out["row_count"] == 49 and out["truncated_by"] == "rows"
    one = len(json.dumps({"i": 0, "s": "x" * 100}, separators=(",", ":"))) + 1
    out = capped_rows(names, types, iter(rows), max_rows=1000, max_bytes=2 + 10 * one)
    assert out["row_count"] == 10 and out["truncated_by"] == "bytes"
    out = capped_rows(names, types, iter(rows), max_rows=1000, max_bytes=2 + 10 * one - 1)
    assert out["row_count"] == 9
    import pyarrow as pa

    table = pa.table({"ts": pa.array([dt.datetime(2025, 1, 1, tzinfo=dt.UTC)] * 3), "detail": ['{"a": 1}'] * 3})
    out = arrow_rows(table, max_rows=2, max_bytes=10**6, json_columns={"detail"})
    assert out["rows"] == [{"ts": "2025-01-01T00:00:00Z", "detail": {"a": 1}}] * 2 and out["truncated"]
    assert out["columns"] == [{"name": "ts", "type": "TIMESTAMP WITH TIME ZONE"}, {"name": "detail", "type": "JSON"}]
    assert json_value(float("nan")) == "nan" and json_value(dt.date(2025, 1, 2)) == "2025-01-02"
