"""Findings: the gaps grouped by cause and responsible party, each with a sentence and a remedy
(README: Findings).

:func:`build` is the last step of the rebuild: ``sql/findings_party.sql`` gives every call and gap its
parties (:func:`parties`), ``sql/findings_eligible.sql`` counts each party's eligible units,
``sql/findings_groups.sql`` groups the gaps set-based (every gap in exactly one finding) and
``sql/findings.sql`` puts the two together and counts each party's eligible calls, sessions or spans; this module writes
each finding's sentence and remedy from the gap-code registry (:mod:`mcptrace.core.gapcodes`) and
ranks them: errors first, then warnings, then info, each by affected calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import duckdb
import pyarrow as pa

from mcptrace.core.db import insert_rows, run_sql_file
from mcptrace.core.gapcodes import GAP_CODES, SEVERITIES, GapCode, finding_rule_rows
from mcptrace.core.sqlfiles import statements

#: the columns of ``findings`` in order (README: Tables): the contract columns, then extras
FINDING_COLUMNS = ["finding_id", "code", "severity", "party_kind", "party", "n_gaps", "n_calls", "n_sessions",
                   "share", "first_ts", "last_ts", "confidence", "summary", "remedy", "gap_ids",
                   "n_affected", "n_eligible", "unit", "server", "tool", "downstream_service",
                   "example_call_id", "example_session_id"]

_SCHEMA = pa.schema([
    ("finding_id", pa.int64()), ("code", pa.string()), ("severity", pa.string()), ("party_kind", pa.string()),
    ("party", pa.string()), ("n_gaps", pa.int64()), ("n_calls", pa.int64()), ("n_sessions", pa.int64()),
    ("share", pa.float64()), ("first_ts", pa.timestamp("us", tz="UTC")), ("last_ts", pa.timestamp("us", tz="UTC")),
    ("confidence", pa.string()), ("summary", pa.string()), ("remedy", pa.string()), ("gap_ids", pa.list_(pa.int64())),
    ("n_affected", pa.int64()), ("n_eligible", pa.int64()), ("unit", pa.string()), ("server", pa.string()),
    ("tool", pa.string()), ("downstream_service", pa.string()), ("example_call_id", pa.int64()),
    ("example_session_id", pa.string()),
])

#: the DuckDB type of each Arrow type in :data:`_SCHEMA`
_SQL_TYPES = {"int64": "BIGINT", "string": "VARCHAR", "double": "DOUBLE", "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
              "list<item: int64>": "BIGINT[]"}


def _when(first: dt.datetime | None, last: dt.datetime | None) -> str:
    if first is None:
        return ""
    a, b = first.astimezone(dt.timezone.utc), (last or first).astimezone(dt.timezone.utc)
    if a.date() == b.date():
        span = f"{a:%Y-%m-%d %H:%M:%S}" + ("" if f"{b:%H:%M:%S}" == f"{a:%H:%M:%S}" else f" to {b:%H:%M:%S}")
    else:
        span = f"{a:%Y-%m-%d %H:%M:%S} to {b:%Y-%m-%d %H:%M:%S}"
    return f" Seen {span} UTC."


def sentence(code: GapCode, row: Mapping) -> str:
    """The finding's summary: the code's template filled with the row's numbers, then when it was seen."""
    share, n, eligible = row["share"], row["n_affected"], row["n_eligible"]
    text = code.summary.format(
        party=row["party"], n=n, eligible=eligible if eligible is not None else "?",
        s="" if n == 1 else "s", se="" if eligible == 1 else "s",
        share=f"{share:.0%}" if share is not None else "share unknown", server=row["server"] or "its server",
        tool=row["tool"] or "its tool", downstream=row["downstream_service"] or "an unidentified service")
    return text + _when(row["first_ts"], row["last_ts"])


def parties(con: duckdb.DuckDBPyConnection, gap_codes: Mapping[str, GapCode] = GAP_CODES) -> None:
    """(Re)create the internal tables ``call_party`` and ``gap_party`` (``sql/findings_party.sql``): each
    call's client, server and tool, each gap's party by its code's rule. A gap whose code is not in
    ``gap_codes`` raises ``duckdb.InvalidInputException``."""
    con.execute("CREATE OR REPLACE TEMP TABLE finding_rules (code VARCHAR PRIMARY KEY, party VARCHAR, unit VARCHAR, "
                "eligible VARCHAR, inferred BOOLEAN)")
    insert_rows(con, "finding_rules", finding_rule_rows(gap_codes))
    missing = con.execute("SELECT DISTINCT code FROM gaps ANTI JOIN finding_rules USING (code)").fetchall()
    if missing:
        raise duckdb.InvalidInputException(f"gap code {missing[0][0]!r} is not in the gap-code registry")
    for stmt in statements("findings_party.sql"):
        con.execute(stmt)


def eligible(con: duckdb.DuckDBPyConnection, calls: str, sessions: str, spans: str, into: str) -> None:
    """The eligible units per party (``sql/findings_eligible.sql``) of the given ``call_party``, ``sessions``
    and ``spans`` rows (each a SELECT), into the TEMP table ``into`` (eligible VARCHAR: the kind of share,
    finding_rules.eligible; party_kind VARCHAR; party VARCHAR; n BIGINT)."""
    run_sql_file(con, "findings_eligible.sql",
                 views={"_ep_calls": calls, "_ep_sessions": sessions, "_ep_spans": spans})
    con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS SELECT * FROM _eligible_part")


def scope_before(con: duckdb.DuckDBPyConnection, scratch: str) -> None:
    """Before an append's scope is merged (:mod:`mcptrace.analysis.incremental`): the eligible units the
    scope's old rows counted (``_elig_old``) and its new rows count (``_elig_new``: the scratch database's
    calls and sessions, and the new spans), and the finding groups its old and new gaps are in
    (``_touched_groups``)."""
    eligible(con, "SELECT * FROM call_party WHERE call_id IN (SELECT call_id FROM _scope_old_calls)",
             "SELECT * FROM sessions WHERE session_id IN (SELECT session_id FROM _scope_old_sessions)",
             "SELECT * FROM spans WHERE false", "_elig_old")
    eligible(con, f"SELECT * FROM {scratch}.call_party", f"SELECT * FROM {scratch}.sessions",
             "SELECT * FROM _new_span",
             "_elig_new")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _touched_groups AS
                    SELECT DISTINCT code, party_kind, party FROM gap_party
                    WHERE gap_id IN (SELECT gap_id FROM _scope_old_gaps)
                    UNION SELECT code, party_kind, party FROM {scratch}.gap_party""")


def scope_after(con: duckdb.DuckDBPyConnection) -> None:
    """After an append's scope was merged: ``finding_eligible`` takes the scope's difference, and the
    finding groups it touched are grouped again from ``gap_party``."""
    con.execute("""
        CREATE OR REPLACE TABLE finding_eligible AS
        SELECT eligible, party_kind, party, sum(n)::BIGINT AS n
        FROM (SELECT * FROM finding_eligible UNION ALL SELECT * FROM _elig_new
              UNION ALL SELECT eligible, party_kind, party, -n FROM _elig_old)
        GROUP BY ALL HAVING sum(n) <> 0""")
    run_sql_file(con, "findings_groups.sql", views={"_fg_gaps": """
        SELECT g.* FROM gap_party g SEMI JOIN _touched_groups t
            ON t.code = g.code AND t.party_kind IS NOT DISTINCT FROM g.party_kind AND t.party = g.party"""})
    con.execute("""DELETE FROM finding_rows f WHERE EXISTS (
                       SELECT 1 FROM _touched_groups t WHERE t.code = f.code
                       AND t.party_kind IS NOT DISTINCT FROM f.party_kind AND t.party = f.party)""")
    con.execute("INSERT INTO finding_rows BY NAME SELECT * FROM _groups_part")


def groups(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create ``finding_eligible`` (every party's eligible units) and ``finding_rows`` (every gap of
    ``gap_party`` in its group) over the whole database."""
    eligible(con, "SELECT * FROM call_party", "SELECT * FROM sessions", "SELECT * FROM spans", "_eligible_all")
    con.execute("CREATE OR REPLACE TABLE finding_eligible AS SELECT * FROM _eligible_all")
    run_sql_file(con, "findings_groups.sql", views={"_fg_gaps": "SELECT * FROM gap_party"})
    con.execute("CREATE OR REPLACE TABLE finding_rows AS SELECT * FROM _groups_part")


def build(con: duckdb.DuckDBPyConnection, gap_codes: Mapping[str, GapCode] = GAP_CODES, *,
          with_parties: bool = True) -> int:
    """(Re)create the ``findings`` table from ``gaps``, ``calls``, ``sessions`` and ``spans``; returns the
    number of findings. ``with_parties=False`` takes ``call_party``, ``gap_party``, ``finding_eligible`` and
    ``finding_rows`` as they are (an append updated its scope's rows: :func:`scope_before`,
    :func:`scope_after`, :mod:`mcptrace.analysis.incremental`; the full rebuild adds the drift gaps between
    :func:`parties` and :func:`groups`). A gap whose code is not in ``gap_codes``
    raises ``duckdb.InvalidInputException``."""
    if with_parties:
        parties(con, gap_codes)
        groups(con)
    for stmt in statements("findings.sql"):
        con.execute(stmt)
    # the ranking and the sentences here, the rest (the gap ids of every finding: a list as long as the
    # gaps) stays in DuckDB, joined back by row id
    res = con.execute("SELECT rowid AS _rid, * EXCLUDE (gap_ids) FROM _finding_rows")
    names = [d[0] for d in res.description]
    rows = [dict(zip(names, r)) for r in res.fetchall()]
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    rows.sort(key=lambda r: (rank.get(r["severity"], len(rank)), -r["n_calls"], -r["n_gaps"], r["code"], r["party"]))
    for i, r in enumerate(rows, 1):
        code = gap_codes[r["code"]]
        r.update(finding_id=i, summary=sentence(code, r), remedy=code.remedy)
    written = ("finding_id", "summary", "remedy")
    table = pa.table({"_rid": pa.array([r["_rid"] for r in rows], pa.int64()),
                      **{c: pa.array([r[c] for r in rows], _SCHEMA.field(c).type) for c in written}})
    columns = ", ".join(f"a.{c}" if c in written else f"f.{c}::{_SQL_TYPES[str(_SCHEMA.field(c).type)]} AS {c}"
                        for c in FINDING_COLUMNS)
    con.register("_findings_arrow", table)
    try:
        con.execute(f"CREATE OR REPLACE TABLE findings AS SELECT {columns} FROM _finding_rows f "
                    "JOIN _findings_arrow a ON a._rid = f.rowid ORDER BY a.finding_id")
    finally:
        con.unregister("_findings_arrow")
    return len(rows)
