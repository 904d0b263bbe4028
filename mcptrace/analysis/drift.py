"""Definition drift: a server that lists a tool, prompt, resource or resource template under a name it
listed before, with another definition (a "rug pull": the user or host approved the earlier one).

Every answered list result's definitions (:func:`mcptrace.analysis.definitions.listed`) are compared per
server name, kind and name in event order (``sql/drift.sql``): each listing whose definition differs from
the previous listing's is one gap, ``tool_definition_changed``, ``prompt_definition_changed`` or
``resource_definition_changed`` (resources and resource templates), with the difference in ``detail``.
A definition that changes back is another gap. A name listed twice in one result with two definitions is
a gap of that result (``duplicate_in_listing``), against its first item there; the first item is the
listing's definition for the comparison with other listings. Definitions of an unnamed server are
compared within one session only.

The comparison spans sessions, so an append's scope (:mod:`mcptrace.analysis.incremental`) does not hold
it: :func:`refresh` recomputes these gaps over the whole database after every full rebuild and every
append that reaches them (:func:`reached`), replacing the earlier rows of these codes in ``gaps`` and
``gap_party`` (``sql/drift_replace.sql``) and, after an append, their findings' groups. Each listing's
definitions are kept as digests (:func:`store`: the full rebuild reads every list result, an append only
those of its scope), so the SQL finds the changes without reading a list result again; Python writes the
JSON difference of each. When every listed name has one definition and no drift gap is stored (the usual
case) it stops after reading the listings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

from mcptrace.analysis.definitions import LIST_METHODS, canonical, json_diff, listing_table
from mcptrace.core.db import one, quote_ident, run_sql_file
from mcptrace.core.gapcodes import GAP_CODES, GapCode

#: listed kind -> (its gap code, the notification that announces a change of its list)
KINDS = {
    "tool": ("tool_definition_changed", "notifications/tools/list_changed"),
    "prompt": ("prompt_definition_changed", "notifications/prompts/list_changed"),
    "resource": ("resource_definition_changed", "notifications/resources/list_changed"),
    "resource_template": ("resource_definition_changed", "notifications/resources/list_changed"),
}
#: the gap codes of drift (the registry's ``database_wide`` codes)
CODES = tuple(dict.fromkeys(code for code, _ in KINDS.values()))
#: a string in ``detail.diff`` longer than this many characters keeps its beginning and says how many
#: characters were cut; the digests in ``detail`` still tell the whole definitions apart
DIFF_TEXT_MAX = 2000


def refresh(con: duckdb.DuckDBPyConnection, gap_codes: Mapping[str, GapCode] = GAP_CODES, *,
            regroup: bool = False) -> int:
    """Replace the drift gaps of the whole database (and their ``gap_party`` rows) with those its listings
    give now, and count the changed sessions' ``n_gaps`` again; returns the number of drift gaps.
    ``regroup`` also replaces their groups in ``finding_rows`` (an append; a full rebuild groups every gap
    after). Needs ``calls``, ``message_order``, ``call_party``, ``gap_party`` and the listings :func:`store`
    wrote. A drift code missing from
    ``gap_codes`` raises ``duckdb.InvalidInputException`` when a change of it is found; one whose party
    rule is not 'server' raises ``ValueError``."""
    had = one(con, "SELECT count(*) FROM gaps WHERE list_contains(?, code)", [list(CODES)])[0]
    if not had and _one_definition_each(con):  # nothing changed, nothing to replace: the usual case
        return 0
    _rules(con, gap_codes)
    run_sql_file(con, "drift.sql")
    missing = con.execute("SELECT DISTINCT code FROM _drift_changes ANTI JOIN _drift_rules USING (code)").fetchall()
    if missing:
        raise duckdb.InvalidInputException(f"gap code {missing[0][0]} is not in the registry of gap codes "
                                           "(mcptrace/core/gapcodes.py)")
    res = con.execute("""
        SELECT seq, server_name, kind, name, before_ts_text, after_ts_text, before_session_id, before_call_id,
               session_id = before_session_id, before_server_version, server_version, before_definition, definition,
               before_digest, digest, before_position, position, duplicate_in_listing, list_changed_notified
        FROM _drift_changes ORDER BY seq""")
    seqs, details = [], []
    for row in res.fetchall():
        seqs.append(row[0])
        details.append(detail(*row[1:]))
    con.register("_drift_detail_arrow", pa.table({"seq": pa.array(seqs, pa.int64()),
                                                  "detail": pa.array(details, pa.string())}))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _drift_detail AS SELECT * FROM _drift_detail_arrow")
    finally:
        con.unregister("_drift_detail_arrow")
    run_sql_file(con, "drift_replace.sql")
    if regroup:
        run_sql_file(con, "findings_groups.sql",
                     views={"_fg_gaps": "SELECT g.* FROM gap_party g SEMI JOIN _drift_kinds k USING (code)"})
        con.execute("DELETE FROM finding_rows WHERE code IN (SELECT code FROM _drift_kinds)")
        con.execute("INSERT INTO finding_rows BY NAME SELECT * FROM _groups_part")
    return len(seqs)


def reached(con: duckdb.DuckDBPyConnection, scratch: str, max_message_id: int) -> bool:
    """Whether an append can change the drift gaps, so that :func:`refresh` must run: its scope (the
    calls analysed again in the attached database ``scratch``) holds a list request, or a drift gap is one
    the merge replaces (``_scope_old_gaps``) or compares with a call of the scope (``_scope_old_calls``),
    or the load added a list_changed
    notification (messages after ``max_message_id``). Otherwise the listings, their sessions and parties
    are those the gaps were computed from."""
    notes = list(dict.fromkeys(n for _, n in KINDS.values()))
    # one check at a time, the cheapest first: the scope's calls, then the new messages, then the drift gaps
    return (bool(one(con, f"SELECT EXISTS (SELECT 1 FROM {scratch}.calls WHERE list_contains($methods, method))",
                     {"methods": list(LIST_METHODS)})[0])
            or bool(one(con, "SELECT EXISTS (SELECT 1 FROM messages WHERE message_id > $m "
                             "AND list_contains($notes, method))", {"m": max_message_id, "notes": notes})[0])
            or bool(one(con, """
                SELECT EXISTS (SELECT 1 FROM gaps g WHERE list_contains($codes, g.code)
                                 AND (g.gap_id IN (SELECT gap_id FROM _scope_old_gaps)
                                      OR try_cast(g.detail->>'$.before_call_id' AS BIGINT)
                                         IN (SELECT call_id FROM _scope_old_calls)))""",
                        {"codes": list(CODES)})[0]))


def _one_definition_each(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every server name, kind and name of ``listing_items`` has one definition: then no listing
    differs from another (a finer comparison, within a session or a result, neither)."""
    return not one(con, "SELECT count(*) FROM (SELECT 1 FROM listing_items GROUP BY server_name, kind, name "
                        "HAVING count(DISTINCT digest) > 1)")[0]


def store(con: duckdb.DuckDBPyConnection, calls: str | None = None) -> None:
    """(Re)write the internal tables ``listing_items`` (:func:`mcptrace.analysis.definitions.listed` without
    the definition) and ``definition_texts`` (``digest``, ``definition`` JSON: each digest's definition) that
    :func:`refresh` compares. With ``calls`` (a table of ``call_id``: the calls an append analysed again),
    only the rows of those calls are replaced; the definitions of the rest were read before."""
    listing_table(con, "_drift_new", calls, texts="_drift_texts")
    try:
        if calls is None:
            con.execute("CREATE OR REPLACE TABLE listing_items AS SELECT * FROM _drift_new")
            con.execute("CREATE OR REPLACE TABLE definition_texts AS SELECT digest, definition FROM _drift_texts")
            return
        con.execute(f"DELETE FROM listing_items WHERE call_id IN (SELECT call_id FROM {quote_ident(calls)})")
        con.execute("INSERT INTO listing_items BY NAME SELECT * FROM _drift_new")
        con.execute("INSERT INTO definition_texts SELECT digest, definition FROM _drift_texts "
                    "WHERE digest NOT IN (SELECT digest FROM definition_texts)")
    finally:
        con.execute("DROP TABLE IF EXISTS _drift_new")
        con.execute("DROP TABLE IF EXISTS _drift_texts")


def _rules(con: duckdb.DuckDBPyConnection, gap_codes: Mapping[str, GapCode]) -> None:
    """The TEMP tables ``_drift_kinds(kind, code, notification)`` and ``_drift_rules(code, severity, unit,
    eligible, inferred)`` (the registry's entries of the drift codes)."""
    for code in CODES:
        if code in gap_codes and gap_codes[code].party != "server":
            raise ValueError(f"{code}: the party of a definition change is its server, not {gap_codes[code].party!r}")
    kinds = pa.table({"kind": list(KINDS), "code": [c for c, _ in KINDS.values()],
                      "notification": [n for _, n in KINDS.values()]})
    codes = [c for c in CODES if c in gap_codes]
    rules = pa.table({"code": pa.array(codes, pa.string()),
                      "severity": pa.array([gap_codes[c].severity for c in codes], pa.string()),
                      "unit": pa.array([gap_codes[c].unit for c in codes], pa.string()),
                      "eligible": pa.array([gap_codes[c].eligible for c in codes], pa.string()),
                      "inferred": pa.array([gap_codes[c].inferred for c in codes], pa.bool_())})
    for name, table in (("_drift_kinds", kinds), ("_drift_rules", rules)):
        con.register(f"{name}_arrow", table)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
        finally:
            con.unregister(f"{name}_arrow")


def detail(server: str, kind: str, name: str, before_ts: str | None, after_ts: str | None,
           before_session_id: str | None, before_call_id: int, same_session: bool | None,
           server_version_before: str | None, server_version_after: str | None, before: str, after: str,
           digest_before: str, digest_after: str, before_position: int, position: int,
           duplicate_in_listing: bool, list_changed_notified: bool) -> str:
    """A drift gap's ``detail`` as JSON text: the server, kind and name; both listings (UTC times,
    session, call, server version, position in the result); ``changed`` (the top-level members whose
    values differ, added or removed ones included); ``diff`` (:func:`mcptrace.analysis.definitions.json_diff`
    from the earlier definition to the later one, strings over :data:`DIFF_TEXT_MAX` characters cut);
    the two digests; ``duplicate_in_listing``; ``list_changed_notified``."""
    cut = [False]
    try:
        a, b = json.loads(before), json.loads(after)
        changed = sorted(k for k in a.keys() | b.keys() if (k in a) != (k in b) or canonical(a[k]) != canonical(b[k]))
        diff = json_diff(a, b)
        if not diff:  # equal to Python (1 == 1.0 == true) but not as JSON text: the changed members whole
            diff = [_member_op(k, a, b) for k in changed]
        diff = _cut(diff, cut)
        json.dumps(diff)
        error = None
    except RecursionError:
        changed, diff, error = [], [], "a definition is nested too deeply to compare member by member"
    out = {
        "server": server, "kind": kind, "name": name,
        "before_ts": before_ts, "after_ts": after_ts,
        "before_session_id": before_session_id, "before_call_id": before_call_id,
        "same_session": bool(same_session),
        "server_version_before": server_version_before, "server_version_after": server_version_after,
        "changed": changed, "diff": diff, "diff_cut": cut[0],
        "digest_before": digest_before, "digest_after": digest_after,
        "before_position": before_position, "position": position,
        "duplicate_in_listing": bool(duplicate_in_listing),
        "list_changed_notified": bool(list_changed_notified),
    }
    if error:
        out["diff_error"] = error
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _member_op(key: str, a: dict, b: dict) -> dict[str, Any]:
    path = "/" + key.replace("~", "~0").replace("/", "~1")
    if key not in b:
        return {"op": "remove", "path": path, "before": a[key]}
    if key not in a:
        return {"op": "add", "path": path, "value": b[key]}
    return {"op": "replace", "path": path, "value": b[key], "before": a[key]}


def _cut(value: Any, cut: list[bool]) -> Any:
    """``value`` with every string longer than :data:`DIFF_TEXT_MAX` characters cut to that many, followed
    by how many were cut; ``cut[0]`` becomes True when one was."""
    if isinstance(value, str):
        if len(value) <= DIFF_TEXT_MAX:
            return value
        cut[0] = True
        return value[:DIFF_TEXT_MAX] + f"…[{len(value) - DIFF_TEXT_MAX} more characters]"
    if isinstance(value, list):
        return [_cut(v, cut) for v in value]
    if isinstance(value, dict):
        return {_cut(k, cut): _cut(v, cut) for k, v in value.items()}
    return value
