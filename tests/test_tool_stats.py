"""Per-tool statistics (mcptrace.analysis.toolstats.tool_stats, Workspace.tool_stats, `mcptrace tools`, the
report's Tools section) on real SDK traffic recorded through `mcptrace capture stdio`, checked against
counts the SDK client saw and against computations of their own over `calls` and `messages`."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import mcptrace
from mcptrace.analysis.toolstats import TOOL_STATS_BY, TOOL_STATS_COLUMNS, tool_stats
from mcptrace.render.report import report_html
from mcptrace.samples.variants import capture

CALLS = 3
HOSTILE_TOOL = "<img src=x onerror=alert(1)>"
HOSTILE_SERVER = "\"><script>document.documentElement.setAttribute('data-pwned','server')</script>"
PWNING_TOOL = "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','tool')\">"

#: the exact types of the columns after the ``by`` columns
TYPES = {"calls": "int64", "ok": "int64", "errors": "int64", "tool_errors": "int64", "cancelled": "int64",
         "unanswered": "int64", "truncated": "int64", "error_rate": "double", "tool_error_rate": "double",
         "p50_ms": "double", "p95_ms": "double", "p99_ms": "double", "mean_ms": "double", "max_ms": "double",
         "error_codes": "string", "error_code_counts": "map<int64, int64>", "request_bytes": "int64",
         "response_bytes": "int64", "mean_request_bytes": "double", "mean_response_bytes": "double",
         "first_seen": "timestamp[us, tz=UTC]", "last_seen": "timestamp[us, tz=UTC]"}


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """The inventory server's 'before' and 'after' variants, each called CALLS times per tool by the SDK
    client through `mcptrace capture stdio`, loaded into one database file; with the clients' summaries."""
    d = tmp_path_factory.mktemp("variants")
    summaries = {v: capture(v, d / f"{v}.jsonl", calls=CALLS) for v in ("before", "after")}
    db = d / "variants.duckdb"
    with mcptrace.load([d / "before.jsonl", d / "after.jsonl"], db=str(db)) as ws:
        assert ws.last_report.ok
    ws = mcptrace.open(str(db), read_only=True)   # the CLI reads the file too
    yield ws, summaries, db
    ws.close()


def _stats(ws, by=("server", "tool"), method="tools/call"):
    return {tuple(r[b] for b in by): r for r in ws.tool_stats(by, method=method).df().to_dict("records")}


def _raw_bytes(ws) -> dict[int, int]:
    """UTF-8 length of each message's stored JSON text, computed in Python."""
    return {mid: len(raw.encode("utf-8")) for mid, raw in ws.sql("SELECT message_id, raw FROM messages").rows()}


def _codes_text(counts: Counter) -> str | None:
    return ", ".join(f"{c}×{n}" for c, n in sorted(counts.items(), key=lambda e: (-e[1], e[0]))) or None


def test_counts_by_tool_match_what_the_sdk_client_saw(variants):
    ws, summaries, _ = variants
    stats = _stats(ws)
    # one server, named by serverInfo alone: versions 1.0.0 and 2.0.0 are one row per tool
    assert {s for s, _ in stats} == {"inventory"}
    by_tool = {t: r for (_, t), r in stats.items()}
    assert by_tool["lookup"]["calls"] == 2 * CALLS and by_tool["lookup"]["tool_errors"] == CALLS
    assert by_tool["lookup"]["ok"] == CALLS and by_tool["lookup"]["tool_error_rate"] == pytest.approx(0.5)
    assert by_tool["restock"]["calls"] == CALLS and by_tool["legacy_export"]["calls"] == CALLS
    assert by_tool["reserve"]["calls"] == by_tool["price"]["calls"] == 2 * CALLS
    # every outcome the SDK client counted, and nothing else
    seen: dict[str, Counter] = {}
    for s in summaries.values():
        for tool, outcomes in s["outcomes"].items():
            seen.setdefault(tool, Counter()).update(outcomes)
    assert set(by_tool) == set(seen)
    for tool, outcomes in seen.items():
        r = by_tool[tool]
        assert (r["ok"], r["tool_errors"]) == (outcomes["ok"], outcomes["tool_error"]), tool
        assert r["calls"] == sum(outcomes.values())
        assert r["errors"] == r["cancelled"] == r["unanswered"] == r["truncated"] == 0
        assert r["error_rate"] == 0 and pd.isna(r["error_codes"]) and list(r["error_code_counts"]) == []
    # busiest first, then by server and tool
    keys = [(-r["calls"], *k) for k, r in stats.items()]
    assert keys == sorted(keys)
    # the columns and their types, in order
    res = ws.tool_stats(("server", "tool"))
    assert res.columns == ["server", "tool", *TOOL_STATS_COLUMNS]
    assert {f.name: str(f.type) for f in res.arrow().schema} == {"server": "string", "tool": "string", **TYPES}


def test_latency_and_bytes_equal_a_computation_of_their_own(variants):
    ws, _, _ = variants
    calls = ws.calls().df()
    calls = calls[calls["method"] == "tools/call"]
    size = _raw_bytes(ws)
    stats = {t: r for (t,), r in _stats(ws, ("tool",)).items()}
    assert set(stats) == set(calls["tool_name"])
    for tool, part in calls.groupby("tool_name"):
        r = stats[tool]
        answered = part.loc[part["response_message_id"].notna(), "duration_ms"].to_numpy(dtype=float)
        assert len(answered) == len(part) > 0
        p50, p95, p99 = np.percentile(answered, [50, 95, 99])   # linear interpolation, as quantile_cont
        assert (r["p50_ms"], r["p95_ms"], r["p99_ms"]) == (pytest.approx(p50), pytest.approx(p95), pytest.approx(p99))
        assert r["mean_ms"] == pytest.approx(answered.mean()) and r["max_ms"] == pytest.approx(answered.max())
        assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"]
        req = [size[int(m)] for m in part["request_message_id"]]
        resp = [size[int(m)] for m in part["response_message_id"].dropna()]
        assert r["request_bytes"] == sum(req) > 0 and r["response_bytes"] == sum(resp) > 0
        assert r["mean_request_bytes"] == pytest.approx(np.mean(req))
        assert r["mean_response_bytes"] == pytest.approx(np.mean(resp))
        assert r["first_seen"] == part["start_ts"].min()
        assert r["last_seen"] == part["end_ts"].max()


def test_by_server_client_tool_on_the_shipped_samples(samples_ws):
    ws = samples_ws
    res = ws.tool_stats(("server", "client", "tool"), method=None)
    assert res.columns[:3] == ["server", "client", "tool"] and res.columns[3:] == list(TOOL_STATS_COLUMNS)
    got = {(r["server"], r["client"], r["tool"]): r for r in res.df().to_dict("records")}
    # every request method counts: initialize and tools/list under their method
    assert {t for _, _, t in got} >= {"initialize", "tools/list"}
    calls = ws.calls().df().merge(ws.sql("SELECT call_id, server_name, client_party FROM call_party").df(),
                                  on="call_id")
    calls["server"] = calls["server_name"].fillna("unidentified server")
    calls["tool"] = np.where(calls["method"] == "tools/call", calls["tool_name"], calls["method"])
    assert sum(r["calls"] for r in got.values()) == len(calls)
    for (server, client, tool), part in calls.groupby(["server", "client_party", "tool"]):
        r = got[(server, client, tool)]
        status = Counter(part["status"])
        assert [r[k] for k in ("calls", "ok", "errors", "tool_errors", "cancelled", "unanswered", "truncated")] == [
            len(part), status["ok"], status["error"], status["tool_error"], status["cancelled"],
            status["unanswered"], status["truncated"]]
        assert r["error_rate"] == pytest.approx(status["error"] / len(part))
        answered = part.loc[part["response_message_id"].notna(), "duration_ms"].to_numpy(dtype=float)
        if len(answered):
            assert [r["p50_ms"], r["p95_ms"], r["max_ms"]] == pytest.approx(
                [*np.percentile(answered, [50, 95]), answered.max()])
        else:   # a cancelled or unanswered call has no latency (a cancelled one ends at its cancellation)
            assert pd.isna(r["p50_ms"]) and pd.isna(r["mean_ms"]) and pd.isna(r["max_ms"])
        codes = Counter(int(c) for c in part["error_code"].dropna())
        assert dict(r["error_code_counts"]) == dict(codes)
        assert (None if pd.isna(r["error_codes"]) else r["error_codes"]) == _codes_text(codes)
    # the samples hold JSON-RPC errors (-32602), and calls cancelled or never answered
    assert any(isinstance(r["error_codes"], str) for r in got.values())
    assert sum(r["cancelled"] for r in got.values()) and sum(r["unanswered"] for r in got.values())
    # tools/call only by default: no initialize
    assert "initialize" not in {t for (_, t) in _stats(ws)}
    # one row for everything, and a grouping by session and method
    (total,) = ws.tool_stats((), method=None).rows()
    assert total[0] == len(calls)
    by_session = ws.tool_stats(["method", "session_id"], method=None).df()
    assert by_session["calls"].sum() == len(calls)
    assert set(by_session["session_id"]) == set(calls["session_id"])


def test_a_bad_by_raises_naming_the_allowed_names(samples_ws):
    for bad in (("tool", "nope"), ("tool", "tool"), ("Server",)):
        with pytest.raises(ValueError) as e:
            tool_stats(samples_ws.con, bad)
        assert all(name in str(e.value) for name in TOOL_STATS_BY)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "mcptrace", *map(str, args)], check=False, capture_output=True,
                          text=True, timeout=300)


def test_cli_text_json_and_csv(variants):
    ws, _, db = variants
    want = ws.tool_stats().df().to_dict("records")
    r = _run("tools", "--db", db)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["server", "tool", "calls", "ok"] and set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + len(want)
    lookup = next(line.split() for line in lines[2:] if line.split()[1] == "lookup")
    assert lookup[:5] == ["inventory", "lookup", str(2 * CALLS), str(CALLS), "0"] and "50.0%" in lookup

    r = _run("tools", "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["server"], x["tool"], x["calls"], x["tool_errors"]) for x in rows] == [
        (w["server"], w["tool"], w["calls"], w["tool_errors"]) for w in want]
    for x, w in zip(rows, want):
        assert list(x) == ["server", "tool", *TOOL_STATS_COLUMNS]
        assert x["p95_ms"] == pytest.approx(w["p95_ms"]) and x["request_bytes"] == w["request_bytes"]
        assert pd.Timestamp(x["first_seen"]) == w["first_seen"] and x["error_code_counts"] == {}

    r = _run("tools", "--db", db, "--csv", "--by", "tool,server", "--method", "all")
    assert r.returncode == 0, r.stderr
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    every = ws.tool_stats(("tool", "server"), method=None).df()
    assert list(table[0]) == ["tool", "server", *TOOL_STATS_COLUMNS]
    assert [(t["tool"], int(t["calls"])) for t in table] == list(zip(every["tool"], every["calls"]))
    assert {"server/discover", "tools/list", "prompts/list", "resources/list"} <= {t["tool"] for t in table}
    assert next(t for t in table if t["tool"] == "lookup")["tool_error_rate"] == "0.5"

    r = _run("tools", "--db", db, "--by", "tool,nope")
    assert r.returncode == 2 and "server, client, tool, session_id, method" in r.stderr


def _envelopes(path, server: str, tools: list[tuple[str, bool | int]]):
    """A hand-written stdio capture: initialize, then one tools/call per (name, outcome): a result with
    ``isError`` the outcome (a bool), or a JSON-RPC error with the outcome as code (an int)."""
    def env(ms: int, direction: str, message: dict) -> str:
        return json.dumps({"ts": f"2026-03-01T12:00:{ms // 1000:02d}.{ms % 1000:03d}Z", "direction": direction,
                           "transport": "stdio", "connection_id": "c1", "message": message})

    lines = [env(0, "client_to_server", {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                 "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "host", "version": "1"}}}),
             env(5, "server_to_client", {"jsonrpc": "2.0", "id": 0, "result": {
                 "protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": server, "version": "9"}}})]
    for i, (name, outcome) in enumerate(tools, 1):
        lines.append(env(100 * i, "client_to_server", {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                                       "params": {"name": name, "arguments": {}}}))
        answer = ({"error": {"code": outcome, "message": f"no {name}"}} if type(outcome) is int else
                  {"result": {"content": [{"type": "text", "text": name}], "isError": outcome}})
        lines.append(env(100 * i + 7 * i, "server_to_client", {"jsonrpc": "2.0", "id": i, **answer}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _values(v) -> list:
    """A figure's data array: a list, or plotly's typed-array form (base64 of a numpy dtype)."""
    if isinstance(v, dict):
        return list(np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]))
    return list(v)


def test_bytes_are_utf8_octets_and_error_codes_most_frequent_first(tmp_path):
    cap = _envelopes(tmp_path / "utf8.jsonl", "météo", [("prévision ☃", False), ("prévision ☃", True),
                                                         ("plain", False), ("plain", -32602), ("plain", -32603),
                                                         ("plain", -32603)])
    with mcptrace.load(cap) as ws:
        stats = _stats(ws)
        size = _raw_bytes(ws)
        raw = dict(ws.sql("SELECT message_id, raw FROM messages").rows())
        calls = ws.calls().df()
    r = stats[("météo", "prévision ☃")]
    part = calls[calls["tool_name"] == "prévision ☃"]
    assert r["request_bytes"] == sum(size[m] for m in part["request_message_id"])
    assert r["response_bytes"] == sum(size[int(m)] for m in part["response_message_id"])
    # more bytes than characters: the name (and the result echoing it) is not ASCII
    assert r["request_bytes"] > sum(len(raw[m]) for m in part["request_message_id"])
    assert (r["calls"], r["ok"], r["tool_errors"], r["tool_error_rate"]) == (2, 1, 1, 0.5)
    plain = stats[("météo", "plain")]
    assert (plain["calls"], plain["ok"], plain["errors"], plain["error_rate"]) == (4, 1, 3, 0.75)
    assert plain["error_codes"] == "-32603×2, -32602×1"
    assert dict(plain["error_code_counts"]) == {-32603: 2, -32602: 1}


def _hostile_report(tmp_path):
    cap = _envelopes(tmp_path / "hostile.jsonl", HOSTILE_SERVER,
                     [(HOSTILE_TOOL, False), (HOSTILE_TOOL, True), (PWNING_TOOL, False), ("plain", False)])
    with mcptrace.load(cap) as ws:
        stats = _stats(ws)
        page = report_html(ws.con)
    return stats, page


def test_report_has_the_tool_section_with_hostile_names_escaped(tmp_path):
    stats, page = _hostile_report(tmp_path)
    assert stats[(HOSTILE_SERVER, HOSTILE_TOOL)]["calls"] == 2
    assert stats[(HOSTILE_SERVER, HOSTILE_TOOL)]["tool_errors"] == 1
    assert page.index("<h2>Calls by status</h2>") < page.index('<h2 id="tools">Tools</h2>') < page.index(
        "<h2>Gaps by code</h2>")
    section = page.split('<h2 id="tools">Tools</h2>', 1)[1].split("<h2>", 1)[0]
    # the table: one row per server and tool, every name escaped
    for name in (HOSTILE_TOOL, PWNING_TOOL, HOSTILE_SERVER):
        assert f"<td>{html.escape(name, quote=True)}</td>" in section
    body = page.split("</head>", 1)[1]
    for name in (HOSTILE_TOOL, PWNING_TOOL, HOSTILE_SERVER, "<script>document", "<img"):
        assert name not in body
    assert section.count("<tr>") == 1 + len(stats)
    # the chart: labels escaped before plotly draws them, the payload JSON inert inside its script element
    data = re.search(r'<script type="application/json" id="tool-stats-data">(.*?)</script>', section).group(1)
    fig = json.loads(data)
    labels = [html.escape(f"{s} · {t}", quote=False) for s, t in stats]
    assert [t["name"] for t in fig["data"]] == ["p50", "p95", "error rate", "tool-error rate"]
    assert all(list(t["y"]) == labels for t in fig["data"])
    p95 = dict(zip(fig["data"][1]["y"], _values(fig["data"][1]["x"])))
    # its one call: the request at .400 s, the response at .428 s
    assert p95[html.escape(f"{HOSTILE_SERVER} · plain", quote=False)] == pytest.approx(28.0)


def test_report_without_tool_calls_says_so(tmp_path):
    with mcptrace.load(_envelopes(tmp_path / "none.jsonl", "quiet", [])) as ws:
        page = report_html(ws.con)
        assert len(ws.tool_stats()) == 0 and len(ws.tool_stats(method=None)) == 1
    section = page.split('<h2 id="tools">Tools</h2>', 1)[1].split("<h2>", 1)[0]
    assert "No tool calls." in section and 'id="tool-stats"' not in section


def test_report_tool_section_renders_inert_in_chromium(tmp_path):
    from test_report import _rendered_dom

    _, page = _hostile_report(tmp_path)
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    dom = _rendered_dom(path)
    assert "data-pwned" not in re.search(r"<html[^>]*>", dom).group(0)   # no payload ran
    drawn = dom.split('id="tools"', 1)[1].split("<h2", 1)[0]
    assert 'class="plot-container plotly"' in drawn                     # and the tool chart drew
