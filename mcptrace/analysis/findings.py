"""Findings: the gaps grouped by cause and responsible party, each with a sentence and a remedy
(README: Findings).

:func:`build` is the last step of the rebuild: ``sql/findings_party.sql`` gives every call and gap its
parties (:func:`parties`), ``sql/findings.sql`` groups the gaps set-based (every gap in exactly one finding) and counts each party's eligible calls, sessions or spans; this module writes
each finding's sentence and remedy from the gap-code registry (:mod:`mcptrace.core.gapcodes`) and
ranks them: errors first, then warnings, then info, each by affected calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import duckdb
import pyarrow as pa

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
    con.executemany("INSERT INTO finding_rules VALUES (?, ?, ?, ?, ?)", finding_rule_rows(gap_codes))
    missing = con.execute("SELECT DISTINCT code FROM gaps ANTI JOIN finding_rules USING (code)").fetchall()
    if missing:
        raise duckdb.InvalidInputException(f"gap code {missing[0][0]!r} is not in the gap-code registry")
    for stmt in statements("findings_party.sql"):
        con.execute(stmt)


def build(con: duckdb.DuckDBPyConnection, gap_codes: Mapping[str, GapCode] = GAP_CODES, *,
          with_parties: bool = True) -> int:
    """(Re)create the ``findings`` table from ``gaps``, ``calls``, ``sessions`` and ``spans``; returns the
    number of findings. ``with_parties=False`` takes ``call_party`` and ``gap_party`` as they are (an
    append merged its scope's rows: :mod:`mcptrace.analysis.incremental`). A gap whose code is not in
    ``gap_codes`` raises ``duckdb.InvalidInputException``."""
    if with_parties:
        parties(con, gap_codes)
    for stmt in statements("findings.sql"):
        con.execute(stmt)
    res = con.execute("SELECT * FROM _finding_rows")
    names = [d[0] for d in res.description]
    rows = [dict(zip(names, r)) for r in res.fetchall()]
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    rows.sort(key=lambda r: (rank.get(r["severity"], len(rank)), -r["n_calls"], -r["n_gaps"], r["code"], r["party"]))
    for i, r in enumerate(rows, 1):
        code = gap_codes[r["code"]]
        r.update(finding_id=i, summary=sentence(code, r), remedy=code.remedy)
    table = pa.table({c: pa.array([r[c] for r in rows], _SCHEMA.field(c).type) for c in FINDING_COLUMNS},
                     schema=_SCHEMA)
    con.register("_findings_arrow", table)
    try:
        con.execute("CREATE OR REPLACE TABLE findings AS SELECT * FROM _findings_arrow ORDER BY finding_id")
    finally:
        con.unregister("_findings_arrow")
    return len(rows)
