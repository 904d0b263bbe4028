"""``mcptrace diff A B`` and ``Workspace.diff``: what changed between two captures of the inventory server
(mcptrace.samples.variants: the official SDK's server and client, recorded through ``mcptrace capture stdio``).
'after' changes exactly what ``VARIANT_CHANGES`` says against 'before'; the diff must say that and nothing
else about the definitions, from capture files, a database or a Parquet dataset alike."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import subprocess
import sys

import duckdb
import pytest

from conftest import read_json_lines

import mcptrace
from mcptrace.analysis.diffrules import MIN_ANSWERED, RULE_NAMES, parse_rules, violations
from mcptrace.cli import main
from mcptrace.samples.variants import VARIANT_CHANGES, capture

ALL_RULES = "new-error-finding,removed-tool,changed-tool,p95-regression=10,error-rate=0"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_DESCRIPTION = "Price </td><td onmouseover=alert(2)>cheap</td></tr></table><img src=x onerror=alert(3)>"


def write_json_lines(path: pathlib.Path, records: list[dict]) -> pathlib.Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def call_ids(records: list[dict], tool: str) -> set:
    return {r["message"]["id"] for r in records if (r.get("message") or {}).get("method") == "tools/call"
            and r["message"]["params"]["name"] == tool}


@pytest.fixture(scope="module")
def caps(tmp_path_factory) -> dict[str, pathlib.Path]:
    d = tmp_path_factory.mktemp("diff")
    out = {"dir": d}
    for variant in ("before", "after"):
        summary = capture(variant, d / f"{variant}.jsonl", calls=5)
        out[f"{variant}_summary"] = summary
        out[variant] = d / f"{variant}.jsonl"
    before = read_json_lines(out["before"])
    # 'before' with price's responses 80 ms late: its p95 up by thousands of %
    late = call_ids(before, "price")
    slow = []
    for r in before:
        m = r.get("message") or {}
        if r["direction"] == "server_to_client" and m.get("id") in late:
            r = {**r, "ts": (dt.datetime.fromisoformat(r["ts"]) + dt.timedelta(milliseconds=80)).isoformat()}
        slow.append(r)
    out["slow"] = write_json_lines(d / "slow.jsonl", slow)
    # the same, with one of price's responses missing: 4 answered calls, under the p95 floor
    lost = min(late)
    out["slow_few"] = write_json_lines(d / "slow_few.jsonl", [
        r for r in slow if not (r["direction"] == "server_to_client" and (r.get("message") or {}).get("id") == lost)])
    # 'after' with price renamed to a script and its description closing table cells
    hostile = []
    for r in read_json_lines(out["after"]):
        m = r.get("message") or {}
        for t in (m.get("result") or {}).get("tools") or []:
            if t["name"] == "price":
                t["name"], t["description"] = HOSTILE, HOSTILE_DESCRIPTION
        if m.get("method") == "tools/call" and m["params"]["name"] == "price":
            m["params"]["name"] = HOSTILE
        hostile.append(r)
    out["hostile"] = write_json_lines(d / "hostile.jsonl", hostile)
    # 'after' whose tools/list went unanswered: B says nothing about its tools
    after = read_json_lines(out["after"])
    listing = next(r["message"]["id"] for r in after if (r.get("message") or {}).get("method") == "tools/list")
    out["unlisted"] = write_json_lines(d / "unlisted.jsonl", [
        r for r in after if not (r["direction"] == "server_to_client" and (r.get("message") or {}).get("id") == listing)])
    return out


def run_diff(capsys, *args) -> tuple[int, str, str]:
    code = main(["diff", *map(str, args)])
    got = capsys.readouterr()
    return code, got.out, got.err


def diff_json(capsys, a, b) -> dict:
    code, out, err = run_diff(capsys, a, b, "--json")
    assert code == 0, err
    return json.loads(out)


def without_names(d: dict) -> dict:
    d = json.loads(json.dumps(d))
    del d["a"]["name"], d["b"]["name"]
    return d


def test_the_variants_did_what_they_say(caps):
    """The captures are what the rest relies on: every tool called five times, lookup failing in 'after'."""
    assert caps["before_summary"]["tools"] == ["legacy_export", "lookup", "price", "reserve"]
    assert caps["after_summary"]["tools"] == ["lookup", "price", "reserve", "restock"]
    assert caps["after_summary"]["outcomes"]["lookup"] == {"tool_error": 5}


def test_json_gives_exactly_the_changes_of_the_variants(caps, capsys):
    d = diff_json(capsys, caps["before"], caps["after"])
    assert d["a"]["name"] == str(caps["before"]) and d["b"]["name"] == str(caps["after"])
    assert d["a"]["servers"] == {"inventory": ["1.0.0"]} and d["b"]["servers"] == {"inventory": ["2.0.0"]}
    got = {(x["server"], x["kind"], x["name"], x["status"]) for x in d["definitions"]}
    want = {("inventory", "tool", n, "added") for n in VARIANT_CHANGES["tools_added"]} \
        | {("inventory", "tool", n, "removed") for n in VARIANT_CHANGES["tools_removed"]} \
        | {("inventory", "tool", n, "changed") for n in VARIANT_CHANGES["input_schema_changed"]
           + VARIANT_CHANGES["description_changed"]}
    assert got == want
    assert len(d["definitions"]) == 4  # each once; no prompt or resource among them
    assert d["not_compared"] == []  # tools, prompts and resources were listed on both sides
    by_name = {x["name"]: x for x in d["definitions"]}
    assert by_name["restock"]["definition"]["name"] == "restock"
    assert by_name["legacy_export"]["definition"]["description"] == "Export the whole inventory as CSV (deprecated)."
    assert by_name["reserve"]["members"] == ["inputSchema"]
    assert sorted((op["op"], op["path"], json.dumps(op["value"])) for op in by_name["reserve"]["patch"]) == [
        ("add", "/inputSchema/properties/warehouse", json.dumps({"title": "Warehouse", "type": "string"})),
        ("add", "/inputSchema/required/2", '"warehouse"')]
    assert by_name["price"]["members"] == ["description"]
    assert by_name["price"]["patch"] == [{"op": "replace", "path": "/description", "before": "Price of an item.",
                                          "value": "Price of an item, in cents, before tax."}]

    tools = {t["tool"]: t for t in d["tools"]}
    assert set(tools) == {"legacy_export", "lookup", "price", "reserve", "restock"}
    assert {t: x["presence"] for t, x in tools.items()} == {
        "legacy_export": "a", "restock": "b", "lookup": "both", "price": "both", "reserve": "both"}
    lookup = tools["lookup"]
    assert lookup["tool_error_rate"]["a"] == 0 and lookup["tool_error_rate"]["b"] == 1
    assert lookup["tool_error_rate"]["change"] == 1
    assert lookup["calls"] == {"a": 5, "b": 5, "change": 0, "change_pct": 0.0}
    for name in ("price", "reserve"):
        assert tools[name]["tool_error_rate"] == {"a": 0.0, "b": 0.0, "change": 0.0, "change_pct": None}
        assert tools[name]["error_rate"]["b"] == 0
    for name in ("lookup", "price", "reserve"):
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            x = tools[name][q]
            assert 0 < x["a"] and 0 < x["b"] and x["change"] == pytest.approx(x["b"] - x["a"])
    assert tools["restock"]["calls"] == {"a": None, "b": 5, "change": None, "change_pct": None}

    # no trace context, no session keys, no spans in either capture: coverage 0 on both sides
    cov = {(c["party_kind"], c["party"]): c for c in d["coverage"]}
    assert set(cov) == {("client", "mcp"), ("server", "inventory")}
    assert cov[("server", "inventory")]["versions"] == {"a": ["1.0.0"], "b": ["2.0.0"]}
    for c in cov.values():
        assert c["requests"]["a"] == c["requests"]["b"] == 24
        assert c["tool_calls"]["a"] == c["tool_calls"]["b"] == 20
        for share in ("trace_context_share", "session_key_share", "server_span_share"):
            assert c[share]["a"] == c[share]["b"] == 0
    # the same gaps and findings on both sides: nothing appears or disappears
    assert {g["code"]: g["status"] for g in d["gaps"]} == {"missing_session_key": "same", "missing_trace_context": "same"}
    assert {(f["code"], f["party"], f["status"]) for f in d["findings"]} == {
        ("missing_session_key", "mcp", "same"), ("missing_trace_context", "mcp", "same")}


def test_fail_on_rules_exit_3_and_name_what_tripped(caps, capsys):
    before, after = caps["before"], caps["after"]
    # every rule that trips is named on its own lines (violations() lists each rule's hits in turn)
    code, _, err = run_diff(capsys, before, after, "--fail-on", "removed-tool,error-rate=50,changed-tool")
    assert code == 3 and "removed-tool: server inventory no longer lists tool legacy_export" in err
    rate = [line for line in err.splitlines() if "error-rate=50" in line]
    assert any("error-rate=50: inventory tool lookup" in line and "0% -> 100%" in line for line in rate)
    assert not any("price" in line for line in rate)
    changed = "\n".join(line for line in err.splitlines() if "changed-tool" in line)
    assert "tool price (description)" in changed and "tool reserve (inputSchema)" in changed
    # up 100 points, not more; warnings only, the same: neither trips
    code, _, err = run_diff(capsys, before, after, "--fail-on", "error-rate=100,new-error-finding")
    assert code == 0 and err == ""
    code, out, err = run_diff(capsys, before, before, "--fail-on", ALL_RULES)
    assert code == 0 and err == ""
    assert "Definitions\n  no change" in out
    # the process exits 3 too
    r = subprocess.run([sys.executable, "-m", "mcptrace", "diff", str(before), str(after), "--json", "--fail-on",
                        "removed-tool,error-rate=50"], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 3, r.stderr
    assert json.loads(r.stdout)["definitions"]  # stdout stays JSON; what tripped is on stderr
    assert r.stderr.count("fail-on ") == 2


def test_p95_regression_counts_tools_answered_at_least_five_times_on_both_sides(caps, capsys):
    assert MIN_ANSWERED == 5
    code, _, err = run_diff(capsys, caps["before"], caps["slow"], "--fail-on", "p95-regression=100")
    assert code == 3 and "p95-regression=100: inventory tool price" in err
    assert err.count("p95-regression") == 1  # only price's responses were delayed
    d = mcptrace.load(caps["before"]).diff(caps["slow_few"])
    price = d.tool("price")
    assert price.metrics["answered"].a == 5 and price.metrics["answered"].b == 4
    assert price.metrics["p95_ms"].change_pct > 100  # up, but on four answered calls
    code, _, err = run_diff(capsys, caps["before"], caps["slow_few"], "--fail-on", "p95-regression=100")
    assert code == 0 and err == ""


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown rule 'nope'"), ("p95-regression", "p95-regression needs a threshold"),
    ("error-rate=", "error-rate needs a threshold"), ("p95-regression=fast", "not a number"),
    ("error-rate=-5", "must be a number ≥ 0"), ("removed-tool=1", "removed-tool takes no value"),
    ("removed-tool,,changed-tool", "an empty rule"), (" ", "no rule given"), ("error-rate=nan", "≥ 0")])
def test_bad_rules_exit_2_with_a_clear_message(caps, capsys, spec, message):
    code, out, err = run_diff(capsys, caps["before"], caps["after"], "--fail-on", spec)
    assert code == 2 and out == ""
    assert err.startswith("error: --fail-on: ") and message in err


def test_parse_rules():
    assert parse_rules("removed-tool, p95-regression=12.5,error-rate=0") == [
        parse_rules("removed-tool")[0], parse_rules("p95-regression=12.5")[0], parse_rules("error-rate=0")[0]]
    rules = parse_rules(",".join(f"{n}=3" if v else n for n, v in RULE_NAMES.items()))
    assert [str(r) for r in rules] == ["new-error-finding", "removed-tool", "changed-tool", "p95-regression=3",
                                      "error-rate=3"]


def test_text_and_markdown_name_the_changes(caps, capsys):
    code, text, _ = run_diff(capsys, caps["before"], caps["after"])
    assert code == 0
    for line in ("+ tool restock (inventory) added", "- tool legacy_export (inventory) removed",
                 "~ tool reserve (inventory): inputSchema changed", "~ tool price (inventory): description changed",
                 'replace /description: "Price of an item." -> "Price of an item, in cents, before tax."',
                 "add /inputSchema/properties/warehouse", "inventory · lookup", "tool-error rate 0% -> 100% +100 pp",
                 "servers: inventory 1.0.0", "servers: inventory 2.0.0"):
        assert line in text, line
    assert "prompt" not in text.split("Tools (")[0]  # the prompt and the resource did not change
    code, md, _ = run_diff(capsys, caps["before"], caps["after"], "--markdown")
    assert code == 0
    for row in ("| inventory | tool | legacy_export | removed |", "| inventory | tool | restock | added |",
                "| inventory | tool | reserve | changed | inputSchema |", "| inventory | tool | price | changed | description |",
                "| inventory | lookup | both |", "0% → 100% +100 pp"):
        assert row in md, row


def test_database_and_dataset_inputs_give_the_same_diff(caps, capsys, tmp_path):
    want = without_names(diff_json(capsys, caps["before"], caps["after"]))
    dbs, datasets = {}, {}
    for side in ("before", "after"):
        dbs[side] = tmp_path / f"{side}.duckdb"
        with mcptrace.load(caps[side], db=str(dbs[side])) as ws:
            datasets[side] = tmp_path / f"{side}-dataset"
            ws.write_dataset(datasets[side])
    for a, b in ((dbs["before"], dbs["after"]), (datasets["before"], datasets["after"]),
                 (dbs["before"], datasets["after"]), (datasets["before"], caps["after"])):
        assert without_names(diff_json(capsys, a, b)) == want, (a, b)
    # a database is only read
    con = duckdb.connect(str(dbs["before"]), read_only=True)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'call_party'").fetchone()[0] == 1
    con.close()
    # the library: a workspace against a path, and against another workspace
    with mcptrace.load(caps["before"]) as ws, mcptrace.open(datasets["after"]) as other:
        assert without_names(ws.diff(caps["after"]).to_dict()) == want
        assert without_names(ws.diff(other).to_dict()) == want
    # one database on both sides: opened once, nothing changed
    d = diff_json(capsys, dbs["before"], dbs["before"])
    assert d["definitions"] == [] and all(t["presence"] == "both" for t in d["tools"])
    assert all(g["status"] == "same" for g in d["gaps"] + d["findings"])


def test_inputs_that_are_not_captures_are_named(caps, capsys, tmp_path):
    code, _, err = run_diff(capsys, tmp_path / "missing.jsonl", caps["after"])
    assert code == 1 and f"error: {tmp_path / 'missing.jsonl'}: no such file or directory" in err
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    code, _, err = run_diff(capsys, caps["before"], junk)
    assert code == 1 and f"error: {junk}: not a DuckDB database, an mcptrace Parquet dataset or a capture" in err
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.close()
    code, _, err = run_diff(capsys, foreign, caps["after"])
    assert code == 1 and f"error: {foreign}: a DuckDB database without mcptrace's tables" in err
    con = duckdb.connect(str(foreign), read_only=True)
    assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("t",)]  # left as it was
    con.close()


def test_a_kind_listed_on_one_side_only_is_not_compared(caps, capsys):
    code, out, err = run_diff(capsys, caps["before"], caps["unlisted"], "--json", "--fail-on", "removed-tool,changed-tool")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert d["definitions"] == []  # prompts and resources did not change; tools are not compared
    assert d["not_compared"] == [{"server": "inventory", "kind": "tool", "listed_in": "a",
                                  "names": ["legacy_export", "lookup", "price", "reserve"]}]
    assert {t["tool"] for t in d["tools"]} == {"legacy_export", "lookup", "price", "reserve", "restock"}  # called all the same
    code, text, _ = run_diff(capsys, caps["before"], caps["unlisted"])
    assert "? tools of inventory listed in A only: not compared" in text


def test_html_report_escapes_hostile_tool_names_and_descriptions(caps, capsys, tmp_path):
    out = tmp_path / "diff.html"
    code, text, err = run_diff(capsys, caps["after"], caps["hostile"], "--html", out)
    assert code == 0, err
    assert f"+ tool {HOSTILE} (inventory) added" in text and "- tool price (inventory) removed" in text
    page = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "&lt;/td&gt;&lt;td onmouseover=alert(2)&gt;" in page
    assert "onmouseover=alert" not in page.replace("&lt;td onmouseover=alert", "")
    assert "<img" not in page
    # the page's own table cells balance: nothing from the capture closed one
    assert page.count("<td") == page.count("</td>")
    assert page.count("<table>") == page.count("</table>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    code, md, _ = run_diff(capsys, caps["after"], caps["hostile"], "--markdown")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "<script" not in md


def test_violations_of_a_real_diff(caps):
    with mcptrace.load(caps["before"]) as ws:
        d = ws.diff(caps["after"])
    assert [x.name for x in d.definitions_of("added")] == ["restock"]
    assert [x.name for x in d.definitions_of("removed")] == ["legacy_export"]
    assert d.definitions_of("changed", kind="prompt") == [] and d.definitions_of("changed", kind="resource") == []
    hits = violations(d, parse_rules("removed-tool,changed-tool,error-rate=99"))
    assert hits == ["removed-tool: server inventory no longer lists tool legacy_export",
                    "changed-tool: server inventory changed tool price (description)",
                    "changed-tool: server inventory changed tool reserve (inputSchema)",
                    "error-rate=99: inventory tool lookup error + tool-error rate 0% -> 100% (+100 points)"]
    assert json.loads(d.to_json()) == d.to_dict()
