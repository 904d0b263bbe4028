"""The registry of gap codes (mcptrace/core/gapcodes.py) against gaps.sql, the rebuild and the README,
and one small fixture per code (tests/fixtures/gaps/<code>/) with the exact gap rows it produces
(tests/fixtures/gaps/<code>.expected.json)."""

from __future__ import annotations

import json
import pathlib
import re

import duckdb
import pytest

import mcptrace
from mcptrace.analysis import drift
from mcptrace.analysis.rebuild import rebuild
from mcptrace.core.gapcodes import (DATABASE_WIDE_CODES, GAP_CODES, SEVERITIES, UNLINKED_CODES, GapCode, markdown_table,
                                    rows, severity)

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "gaps"
GAPS_SQL = ROOT / "mcptrace" / "sql" / "gaps.sql"

#: each gap as the fixtures state it: the call by its request's line and the message by its line
#: (``file:line``), the session by its key
ROWS_SQL = """
SELECT g.code, g.severity, c.place AS call, m.place AS message, g.trace_id, g.span_id, s.session_key,
       strftime(g.ts AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS ts, g.detail::VARCHAR AS detail
FROM gaps g
LEFT JOIN _place c ON c.message_id = g.call_id
LEFT JOIN _place m ON m.message_id = g.message_id
LEFT JOIN sessions s ON s.session_id = g.session_id
ORDER BY g.ts NULLS LAST, g.code, call, message, g.span_id, g.detail::VARCHAR
"""
PLACES_SQL = """
CREATE OR REPLACE TEMP TABLE _place AS
SELECT m.message_id, regexp_extract(s.path, '[^/\\\\]+$') || ':' || m.record_no AS place
FROM messages m JOIN sources s USING (source_id)
"""
#: detail keys holding internal ids: call ids (a call's id is its request's message id) and session ids,
#: stated in the fixtures as ``file:line`` and ``session:<key>``
ID_KEYS = ("chosen_call_id", "open_request_message_id", "other_session_id", "candidates", "before_call_id",
           "before_session_id")


def gap_rows(ws: mcptrace.Workspace) -> list[dict]:
    ws.con.execute(PLACES_SQL)
    places = dict(ws.sql("SELECT message_id, place FROM _place").rows())
    sessions = {sid: f"session:{key}" for sid, key in ws.sql("SELECT session_id, session_key FROM sessions").rows()}

    def named(v):
        if isinstance(v, list):
            return [named(x) for x in v]
        if isinstance(v, bool) or v is None:
            return v
        return places.get(v, v) if isinstance(v, int) else sessions.get(v, v)

    out = []
    for code, sev, call, message, trace_id, span_id, session_key, ts, detail in ws.sql(ROWS_SQL).rows():
        detail = json.loads(detail)
        detail.update({k: named(detail[k]) for k in ID_KEYS if k in detail})
        out.append({"code": code, "severity": sev, "call": call, "message": message, "trace_id": trace_id,
                    "span_id": span_id, "session_key": session_key, "ts": ts, "detail": detail})
    return out


def fixture_codes() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


# -- the registry ----------------------------------------------------------------------------


def test_registry_entries_are_well_formed():
    assert len(GAP_CODES) == 21
    for code, gc in GAP_CODES.items():
        assert gc.code == code and re.fullmatch(r"[a-z]+(_[a-z]+)*", code)
        assert gc.severity in SEVERITIES
        assert gc.meaning and "\n" not in gc.meaning and "|" not in gc.meaning
        assert severity(code) == gc.severity
    assert rows() == [(c.code, c.severity, c.meaning) for c in GAP_CODES.values()]
    with pytest.raises(ValueError, match="severity 'fatal'"):
        GapCode("x", "fatal", "no such severity")


def test_unlinked_codes_come_from_the_registry_flag():
    assert UNLINKED_CODES == {"server_span_unlinked", "downstream_unlinked", "server_span_missing"}
    assert UNLINKED_CODES == {c for c, gc in GAP_CODES.items() if gc.unlinked}


def test_gaps_sql_emits_exactly_the_registry_codes_and_no_severity_literal():
    sql = GAPS_SQL.read_text(encoding="utf-8")
    emitted = set(re.findall(r"^SELECT '([a-z_]+)'(?: AS code)?,", sql, re.M))
    assert emitted == set(GAP_CODES) - DATABASE_WIDE_CODES
    assert not re.search(r"^SELECT '[a-z_]+'(?: AS code)?, '(?:error|warning|info)'", sql, re.M)


def test_database_wide_codes_are_the_drift_codes_and_blame_the_server():
    assert DATABASE_WIDE_CODES == set(drift.CODES) == {"tool_definition_changed", "prompt_definition_changed",
                                                      "resource_definition_changed"}
    for code in DATABASE_WIDE_CODES:
        gc = GAP_CODES[code]
        assert (gc.severity, gc.party, gc.unit, gc.eligible) == ("warning", "server", "gaps", None)
        assert "{party}" in gc.summary and "list_changed" in gc.remedy


def test_rebuild_fills_gap_codes_from_the_registry():
    ws = mcptrace.load(FIXTURES / "missing_trace_context")
    try:
        assert ws.sql("SELECT code, severity, meaning FROM gap_codes ORDER BY rowid").rows() == rows()
    finally:
        ws.close()


def test_rebuild_stops_on_a_code_missing_from_the_registry():
    ws = mcptrace.load(FIXTURES / "missing_trace_context")
    try:
        short = {c: gc for c, gc in GAP_CODES.items() if c != "missing_trace_context"}
        with pytest.raises(duckdb.InvalidInputException,
                           match="gap code missing_trace_context is not in the registry"):
            rebuild(ws.con, gap_codes=short)
        # a registry that disagrees on a severity is what the gaps table then says
        changed = {**GAP_CODES, "missing_trace_context": GapCode("missing_trace_context", "error", "x")}
        rebuild(ws.con, gap_codes=changed)
        assert ws.sql("SELECT DISTINCT code, severity FROM gaps").rows() == [("missing_trace_context", "error")]
        rebuild(ws.con)
        assert ws.sql("SELECT DISTINCT code, severity FROM gaps").rows() == [("missing_trace_context", "warning")]
    finally:
        ws.close()


def test_readme_gap_code_table_matches_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"^\| `([a-z_]+)` \| (error|warning|info) \| (.+?) \|$", readme, re.M)
    assert [(c, s) for c, s, _ in found] == [(c, gc.severity) for c, gc in GAP_CODES.items()]
    assert markdown_table() in readme


# -- one fixture per code ----------------------------------------------------------------------


def test_every_registry_code_has_a_fixture():
    assert fixture_codes() == sorted(GAP_CODES)
    for code in GAP_CODES:
        assert (FIXTURES / f"{code}.expected.json").is_file()


@pytest.mark.parametrize("code", sorted(GAP_CODES))
def test_fixture_gives_exactly_its_expected_gaps(code):
    expected = json.loads((FIXTURES / f"{code}.expected.json").read_text(encoding="utf-8"))
    ws = mcptrace.load(FIXTURES / code)
    try:
        assert ws.last_report is not None
        assert ws.sql("SELECT count(*) FROM rejects").rows() == [(0,)]
        got = gap_rows(ws)
    finally:
        ws.close()
    assert code in {r["code"] for r in expected}
    assert [{k: v for k, v in r.items() if k != "detail"} for r in got] == \
           [{k: v for k, v in r.items() if k != "detail"} for r in expected]
    for g, e in zip(got, expected):
        # the key parts of the evidence; every key named must be there with that value
        assert {k: g["detail"].get(k, "<absent>") for k in e["detail"]} == e["detail"], g["code"]
