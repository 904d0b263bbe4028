"""Definition drift (README: Definition drift): a server that lists a tool, prompt or resource it listed
before with another definition gives a gap and a finding naming the server, across sessions and files,
after a full load and after an append alike.

The captures are real traffic: the official SDK's inventory server (mcptrace/samples/variants.py) in
its variants, driven by the SDK client through ``mcptrace capture stdio``. The hostile capture is
hand-written envelope JSONL.
"""

from __future__ import annotations

import json
import pathlib

import pytest

import mcptrace
from mcptrace.analysis.definitions import listed
from mcptrace.analysis.drift import DIFF_TEXT_MAX
from mcptrace.analysis.incremental import update, watermark
from mcptrace.ingest.loader import Loader
from mcptrace.samples import variants

DRIFT_SQL = "SELECT * FROM gaps WHERE code IN ('tool_definition_changed', 'prompt_definition_changed', " \
            "'resource_definition_changed')"


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict[str, pathlib.Path]:
    """One capture per variant (and 'before' twice), each of its own SDK processes."""
    d = tmp_path_factory.mktemp("variants")
    out = {}
    for name, variant in (("before", "before"), ("after", "after"), ("after_prompt", "after_prompt"),
                          ("before_again", "before")):
        out[name] = d / f"{name}.jsonl"
        summary = variants.capture(variant, out[name], calls=1)
        assert summary["outcomes"], summary
    return out


def _drift(ws: mcptrace.Workspace) -> list[dict]:
    res = ws.sql(DRIFT_SQL + " ORDER BY gap_id")
    return [dict(zip(res.columns, r), detail=json.loads(r[res.columns.index("detail")])) for r in res.rows()]


def _list_result(path: pathlib.Path, member: str) -> tuple[str, int]:
    """The time and line of the (only) result in ``path`` holding ``member``."""
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        env = json.loads(line)
        if member in ((env.get("message") or {}).get("result") or {}):
            return env["ts"], i
    raise AssertionError(f"no {member} result in {path}")


def _source_of_call(ws: mcptrace.Workspace, call_id: int) -> str:
    return ws.sql("SELECT s.path FROM calls c JOIN messages m ON m.message_id = c.request_message_id "
                  "JOIN sources s USING (source_id) WHERE c.call_id = ?", [call_id]).rows()[0][0]


def test_before_then_after_gives_one_gap_per_changed_tool(captures):
    before, after = captures["before"], captures["after"]
    ws = mcptrace.load([before, after])
    try:
        gaps = _drift(ws)
        assert sorted((g["code"], g["detail"]["name"]) for g in gaps) == [
            ("tool_definition_changed", "price"), ("tool_definition_changed", "reserve")]
        by_name = {g["detail"]["name"]: g for g in gaps}
        assert by_name["reserve"]["detail"]["changed"] == ["inputSchema"]
        assert by_name["price"]["detail"]["changed"] == ["description"]
        assert by_name["price"]["detail"]["diff"] == [
            {"op": "replace", "path": "/description", "value": "Price of an item, in cents, before tax.",
             "before": "Price of an item."}]
        reserve_diff = by_name["reserve"]["detail"]["diff"]
        assert {"op": "add", "path": "/inputSchema/properties/warehouse",
                "value": {"title": "Warehouse", "type": "string"}} in reserve_diff
        assert {"op": "add", "path": "/inputSchema/required/2", "value": "warehouse"} in reserve_diff
        assert all(op["path"].startswith("/inputSchema/") for op in reserve_diff)
        before_ts, _ = _list_result(before, "tools")
        after_ts, _ = _list_result(after, "tools")
        for g in gaps:
            d = g["detail"]
            assert (d["server"], d["kind"]) == ("inventory", "tool")
            assert (d["before_ts"], d["after_ts"]) == (before_ts, after_ts)
            assert g["ts"].strftime("%Y-%m-%dT%H:%M:%S.%fZ") == after_ts
            assert (d["server_version_before"], d["server_version_after"]) == ("1.0.0", "2.0.0")
            assert d["list_changed_notified"] is False and d["same_session"] is False
            assert d["duplicate_in_listing"] is False and d["digest_before"] != d["digest_after"]
            # the later list request and its result; the earlier listing in the other file and session
            assert ws.sql("SELECT method FROM calls WHERE call_id = ?", [g["call_id"]]).rows() == [("tools/list",)]
            assert _source_of_call(ws, g["call_id"]) == str(after)
            assert _source_of_call(ws, d["before_call_id"]) == str(before)
            assert ws.sql("SELECT response_message_id FROM calls WHERE call_id = ?",
                          [g["call_id"]]).rows() == [(g["message_id"],)]
            assert d["before_session_id"] != g["session_id"]
            assert ws.sql("SELECT session_id FROM calls WHERE call_id = ?",
                          [d["before_call_id"]]).rows() == [(d["before_session_id"],)]
        # the session counts its drift gaps
        assert ws.sql("SELECT count(*) FROM sessions s WHERE n_gaps <> (SELECT count(*) FROM gaps g "
                      "WHERE g.session_id = s.session_id)").rows() == [(0,)]
        # one finding, naming the server, with both gaps
        f = ws.sql("SELECT party_kind, party, n_gaps, gap_ids, summary, remedy, share FROM findings "
                   "WHERE code = 'tool_definition_changed'").rows()
        assert len(f) == 1
        kind, party, n_gaps, gap_ids, summary, remedy, share = f[0]
        assert (kind, party, n_gaps, share) == ("server", "inventory 2.0.0", 2, None)
        assert sorted(gap_ids) == sorted(g["gap_id"] for g in gaps)
        assert summary.startswith("inventory 2.0.0 changed 2 tool definitions")
        assert "notifications/tools/list_changed" in remedy
    finally:
        ws.close()


def test_a_changed_prompt_is_one_prompt_gap(captures):
    ws = mcptrace.load([captures["after"], captures["after_prompt"]])
    try:
        gaps = _drift(ws)
        assert [(g["code"], g["detail"]["kind"], g["detail"]["name"], g["detail"]["changed"]) for g in gaps] == [
            ("prompt_definition_changed", "prompt", "restock_note", ["description"])]
        assert gaps[0]["detail"]["diff"] == [
            {"op": "replace", "path": "/description", "value": "A note asking for a restock, with a reason.",
             "before": "A note asking for a restock."}]
        assert ws.sql("SELECT party FROM findings WHERE code = 'prompt_definition_changed'").rows() == \
            [("inventory 2.0.0",)]
    finally:
        ws.close()


def test_the_same_variant_twice_is_no_drift(captures):
    ws = mcptrace.load([captures["before"], captures["before_again"]])
    try:
        assert _drift(ws) == []
        assert not ws.sql("SELECT * FROM findings WHERE code IN ('tool_definition_changed', "
                          "'prompt_definition_changed', 'resource_definition_changed')").rows()
        # the two listings were there to compare: every tool twice, in two sessions
        ws.con.register("_l", listed(ws.con).arrow())
        assert ws.sql("SELECT kind, name, count(DISTINCT call_id), count(DISTINCT session_id), count(DISTINCT digest) "
                      "FROM _l WHERE kind = 'tool' GROUP BY ALL ORDER BY name").rows() == \
            [("tool", n, 2, 2, 1) for n in ("legacy_export", "lookup", "price", "reserve")]
    finally:
        ws.close()


def _tables(ws: mcptrace.Workspace) -> dict[str, list]:
    """The analysis tables the drift step writes, without gap ids (an append numbers on)."""
    con = ws.con
    return {
        "gaps": sorted(map(repr, con.execute("SELECT * EXCLUDE (gap_id) FROM gaps").fetchall())),
        "sessions": sorted(map(repr, con.execute("SELECT * FROM sessions").fetchall())),
        "findings": sorted(repr((*r[:-1], sorted(map(repr, r[-1])))) for r in con.execute("""
            SELECT f.* EXCLUDE (gap_ids, finding_id), list((g.code, g.call_id, g.message_id, g.detail::VARCHAR))
            FROM findings f, unnest(f.gap_ids) u(gid) JOIN gaps g ON g.gap_id = u.gid GROUP BY ALL""").fetchall()),
    }


@pytest.mark.parametrize("order", [("before", "after", "before_again"), ("after", "before")])
def test_an_append_gives_the_tables_of_one_load(captures, order):
    """Each file appended (the append's scope analysed alone) gives the drift gaps, sessions and findings
    of one load of all; a definition that changes back is another gap; gap ids stay unique."""
    files = [captures[n] for n in order]
    ws = mcptrace.open()
    full = mcptrace.load(files)
    try:
        for i, f in enumerate(files):
            mark = watermark(ws.con)
            Loader(ws.con).load([f])
            rep = update(ws.con, mark, full_share=1.0)
            if i:  # an append, analysed on its scope; the drift step over the whole database
                assert rep.mode == "incremental" and "drift" in rep.steps, (rep.mode, rep.reason)
        a, b = _tables(ws), _tables(full)
        assert a == b
        drift = _drift(ws)
        # forward: reserve and price changed; back again (before_again): both changed back
        assert len(drift) == (4 if len(order) == 3 else 2)
        if len(order) == 3:
            back = [g for g in drift if _source_of_call(ws, g["call_id"]) == str(captures["before_again"])]
            assert sorted(g["detail"]["name"] for g in back) == ["price", "reserve"]
            assert all(g["detail"]["server_version_after"] == "1.0.0" for g in back)
        if order[0] == "after":  # the earlier listing came second: the gap is still at the later one
            assert {_source_of_call(ws, g["call_id"]) for g in drift} == {str(captures["after"])}
        assert ws.sql("SELECT count(*) = count(DISTINCT gap_id) FROM gaps").rows() == [(True,)]
        assert ws.sql("SELECT count(*) FROM gap_party WHERE code IN ('tool_definition_changed')").rows() == \
            [(len(drift),)]
        assert ws.sql("SELECT sum(n_gaps) FROM findings WHERE code = 'tool_definition_changed'").rows() == \
            [(len(drift),)]
    finally:
        ws.close()
        full.close()


def _later_calls(src: pathlib.Path, out: pathlib.Path, connection_id: str | None) -> pathlib.Path:
    """The tools/call requests and answers of ``src`` an hour later with new ids, on ``src``'s connection
    (None) or on another one: an append without any list request."""
    from datetime import datetime, timedelta

    lines = []
    for line in src.read_text(encoding="utf-8").splitlines():
        env = json.loads(line)
        m = env.get("message") or {}
        if m.get("method") == "tools/call" or (m.get("id") is not None and "content" in (m.get("result") or {})):
            env["ts"] = (datetime.fromisoformat(env["ts"].replace("Z", "+00:00")) + timedelta(hours=1)).isoformat()
            m["id"] = 10**6 + m["id"]
            if connection_id:
                env["connection_id"] = connection_id
            lines.append(json.dumps(env))
    assert lines
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.mark.parametrize("connection", ["same", "other"])
def test_an_append_without_listings_keeps_the_drift_gaps(captures, tmp_path, connection):
    """Calls appended to the session a drift gap sits on (its gaps are replaced by the append's merge) or
    to a connection of their own (the drift step is not needed): the drift gaps stay those of one load."""
    later = _later_calls(captures["after"], tmp_path / "later.jsonl", None if connection == "same" else "other-1")
    ws = mcptrace.open()
    full = mcptrace.load([captures["before"], captures["after"], later])
    try:
        for f in (captures["before"], captures["after"], later):
            mark = watermark(ws.con)
            Loader(ws.con).load([f])
            rep = update(ws.con, mark, full_share=1.0)
        assert rep.mode == "incremental", rep.reason
        assert _tables(ws) == _tables(full)
        assert len(_drift(ws)) == 2
    finally:
        ws.close()
        full.close()


# -- hostile listings ------------------------------------------------------------------------------

#: how deep the hostile input schema nests: deeper than Python's JSON reads, not than DuckDB's
DEEP = 10_000


def _envelope(ts: str, direction: str, message: dict) -> str:
    text = json.dumps({"ts": ts, "direction": direction, "transport": "stdio", "connection_id": "hostile-1",
                       "message": message})
    for leaf in ("1", "2"):  # a schema nested DEEP levels, too deep for json.dumps to write
        text = text.replace(f'"<deep {leaf}>"', '{"a":' * DEEP + leaf + "}" * DEEP)
    return text


def _hostile_lines() -> list[str]:
    tp = {"_meta": {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}}
    lines = [
        _envelope("2026-02-01T00:00:00.000000Z", "client_to_server", {
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                **tp, "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "probe", "version": "1"}}}),
        _envelope("2026-02-01T00:00:00.100000Z", "server_to_client", {
            "jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                                  "serverInfo": {"name": "hostile", "version": "6.6.6"}}}),
    ]
    deep_a, deep_b = {"name": "deep", "inputSchema": "<deep 1>"}, {"name": "deep", "inputSchema": "<deep 2>"}
    results = [
        {"tools": {"big": {"name": "big"}}},  # not an array: lists nothing
        {"tools": [1, "x", None, [], {"description": "no name"},
                   {"name": "big", "description": "A" * 1_000_000},
                   {"name": "dup", "description": "one"}, {"name": "dup", "description": "two"},
                   {"name": "dup", "description": "one"}, {"name": "dup", "description": "two"},
                   deep_a]},
        {"tools": "nothing here"},  # lists nothing: not a removal
        {"tools": [{"name": "big", "description": "B" * 1_000_000}, {"name": "dup", "description": "one"},
                   deep_b]},
    ]
    for i, result in enumerate(results, 2):
        lines.append(_envelope(f"2026-02-01T00:0{i}:00.000000Z", "client_to_server",
                               {"jsonrpc": "2.0", "id": i, "method": "tools/list", "params": tp}))
        lines.append(_envelope(f"2026-02-01T00:0{i}:00.500000Z", "server_to_client",
                               {"jsonrpc": "2.0", "id": i, "result": result}))
    return lines


def test_hostile_listings_load_and_give_the_documented_gaps(tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(_hostile_lines()) + "\n", encoding="utf-8")
    ws = mcptrace.load([path])
    try:
        assert ws.sql("SELECT status, n_rejected FROM sources").rows() == [("loaded", 0)]
        assert ws.sql("SELECT count(*) FROM calls WHERE method = 'tools/list' AND status = 'ok'").rows() == [(4,)]
        ws.con.register("_l", listed(ws.con).arrow())
        # the results whose tools is not an array list nothing; items that are not objects or have no name
        # are skipped: big, four dup and deep in the second result, three in the fourth
        assert ws.sql("SELECT count(DISTINCT call_id), count(*) FROM _l").rows() == [(2, 9)]
        gaps = {g["detail"]["name"]: g for g in _drift(ws)}
        assert sorted(gaps) == ["big", "deep", "dup"]
        assert {g["code"] for g in gaps.values()} == {"tool_definition_changed"}
        # a 1 MB description: the gap holds the beginning of each value and says what was cut
        big = gaps["big"]["detail"]
        assert big["changed"] == ["description"] and big["diff_cut"] is True
        (op,) = big["diff"]
        assert op["op"] == "replace" and op["value"].startswith("B" * DIFF_TEXT_MAX)
        assert op["value"].endswith(f"…[{1_000_000 - DIFF_TEXT_MAX} more characters]")
        assert op["before"].startswith("A" * DIFF_TEXT_MAX) and len(op["before"]) < DIFF_TEXT_MAX + 40
        assert ws.sql("SELECT max(length(detail::VARCHAR)) FROM gaps").rows()[0][0] < 10 * DIFF_TEXT_MAX
        # the same name twice in one result with two definitions: one gap of that result against its first
        # item; the repeats are not gaps, and the next listing (dup as "one", its first item) is none either
        dup = gaps["dup"]
        assert dup["detail"]["duplicate_in_listing"] is True
        assert dup["call_id"] == dup["detail"]["before_call_id"]
        assert (dup["detail"]["before_position"], dup["detail"]["position"]) == (6, 7)
        assert dup["detail"]["diff"] == [{"op": "replace", "path": "/description", "value": "two", "before": "one"}]
        assert dup["detail"]["list_changed_notified"] is False
        # nested deeper than Python reads: compared by digest, said so, no crash
        deep = gaps["deep"]["detail"]
        assert deep["diff"] == [] and "nested too deeply" in deep["diff_error"]
        assert deep["digest_before"] != deep["digest_after"]
        assert ws.sql("SELECT party, n_gaps FROM findings WHERE code = 'tool_definition_changed'").rows() == \
            [("hostile 6.6.6", 3)]
    finally:
        ws.close()

