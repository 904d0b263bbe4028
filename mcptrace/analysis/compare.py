"""What changed between two captures (``mcptrace diff A B``, :meth:`mcptrace.Workspace.diff`).

:func:`compare` reads two mcptrace databases (each a DuckDB connection with the analysis tables) and
returns a :class:`CaptureDiff`:

- **definitions**: the tools, prompts, resources and resource templates each server listed
  (:func:`mcptrace.analysis.definitions.listed`), the last definition of each name seen in A against the
  last seen in B: added, removed, or changed, with the top-level members that differ (``description``,
  ``inputSchema``, ``outputSchema``, any other) and the RFC 6902 patch from A's to B's
  (:func:`mcptrace.analysis.definitions.json_diff`). A kind is compared for a server only when both
  captures hold an answered list request of that kind for it (an empty list counts); otherwise it is
  named in ``not_compared``, so a server missing from one capture is not a removal of all its tools;
- **tools**: per server and tool, the statistics of :func:`mcptrace.analysis.toolstats.tool_stats`
  (calls, answered calls, error rate, tool-error rate, their sum, p50/p95/p99 of ``duration_ms``), each
  as A, B, the change and the change in % of A (:class:`Change`);
- **coverage**: per client and per server, the share of requests carrying trace context
  (``calls.trace_id``), carrying a session key (``calls.request_session_key``), and the share of tool
  calls joined to a server span (``call_spans`` role ``server``);
- **gaps** by code, and **findings** by code and party, that appear, disappear or change count.

Servers and clients are matched by name, as :func:`~mcptrace.analysis.toolstats.tool_stats` groups them:
a server by its serverInfo name (else the ``service.name`` of its spans), a client by its clientInfo name.
``call_party`` names a party with its version and deployment (``inventory 1.0.0 (service inv-eu)``);
compared by name alone (``inventory``), a new version compares with the old one, and a capture with spans
with one without. The versions each capture saw are in ``servers``/``clients``/``versions``, each finding's
full party names in ``parties``.
:mod:`mcptrace.analysis.diffrules` checks a diff against ``--fail-on`` rules.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from mcptrace.analysis.definitions import LIST_METHODS, json_diff, listing_table
from mcptrace.analysis.findings import parties
from mcptrace.analysis.toolstats import tool_stats
from mcptrace.core.dataset import is_dataset, is_url

#: the order in which changed definition members are named (then any other, alphabetically)
MEMBER_ORDER = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
#: what an input of :func:`input_kind` can be
INPUT_KINDS = ("dataset", "database", "captures")


def input_kind(location: str | os.PathLike) -> str:
    """What ``location`` holds: ``'dataset'`` (a Parquet dataset directory or object-store URL),
    ``'database'`` (a DuckDB file, told by its header) or ``'captures'`` (any other file or directory,
    to be loaded). Raises ``FileNotFoundError`` naming the path when it does not exist."""
    path = os.fspath(location)
    if is_dataset(path):
        return "dataset"
    if not is_url(path) and not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    if os.path.isfile(path):
        with open(path, "rb") as f:
            if f.read(12)[8:12] == b"DUCK":
                return "database"
    return "captures"


def same_location(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file or directory (a URL: the same text)."""
    a, b = os.fspath(a), os.fspath(b)
    if is_url(a) or is_url(b):
        return a == b
    return os.path.realpath(a) == os.path.realpath(b)


@dataclass(frozen=True)
class Change:
    """One number in A and in B; ``change`` is B − A (rates: a fraction, ×100 for percentage points),
    ``change_pct`` the change in % of A (None when either side is missing or A is 0)."""

    a: float | int | None
    b: float | int | None

    @property
    def change(self) -> float | int | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def change_pct(self) -> float | None:
        if self.a is None or self.b is None or self.a == 0:
            return None
        return (self.b - self.a) / abs(self.a) * 100.0

    def to_dict(self) -> dict[str, Any]:
        """``{"a", "b", "change", "change_pct"}``, the two derived ones rounded to 9 decimals."""
        ch, pct = self.change, self.change_pct
        return {"a": self.a, "b": self.b, "change": round(ch, 9) if isinstance(ch, float) else ch,
                "change_pct": None if pct is None else round(pct, 9)}


@dataclass
class Side:
    """One of the two captures: ``name`` (its path, or what the caller called it), row counts, the time
    range of its calls, and the versions each server and client was seen with."""

    name: str
    calls: int
    tool_calls: int
    sessions: int
    gaps: int
    first_ts: dt.datetime | None
    last_ts: dt.datetime | None
    servers: dict[str, list[str]]
    clients: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["first_ts"], d["last_ts"] = _iso(self.first_ts), _iso(self.last_ts)
        return d


@dataclass
class DefinitionChange:
    """A tool, prompt, resource or resource template added, removed or changed on a server. ``members``:
    the top-level members that differ (a changed definition); ``patch``: the RFC 6902 operations from A's
    definition to B's, each ``replace``/``remove``/``move`` with the value it replaced as ``before``;
    ``definition``: the definition added (B's) or removed (A's)."""

    server: str
    kind: str
    name: str
    status: str  # added | removed | changed
    members: list[str] = field(default_factory=list)
    patch: list[dict[str, Any]] | None = None
    definition: Any = None

    def to_dict(self) -> dict[str, Any]:
        d = {"server": self.server, "kind": self.kind, "name": self.name, "status": self.status}
        if self.status == "changed":
            d.update(members=self.members, patch=self.patch)
        else:
            d["definition"] = self.definition
        return d


@dataclass
class NotCompared:
    """A kind of definition a server listed in one capture only: nothing is said about its names."""

    server: str
    kind: str
    listed_in: str  # a | b
    names: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: the tool metrics a :class:`ToolChange` holds, in order
TOOL_METRICS = ("calls", "answered", "error_rate", "tool_error_rate", "failure_rate", "p50_ms", "p95_ms", "p99_ms")


@dataclass
class ToolChange:
    """One tool of one server: ``presence`` is 'both', 'a' or 'b' (called in that capture only); each of
    :data:`TOOL_METRICS` as a :class:`Change` (``answered``: ok + errors + tool errors, what the durations
    are of; ``failure_rate``: error_rate + tool_error_rate); the error codes seen in each."""

    server: str
    tool: str
    presence: str
    metrics: dict[str, Change]
    error_codes: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "tool": self.tool, "presence": self.presence,
                **{k: v.to_dict() for k, v in self.metrics.items()}, "error_codes": self.error_codes}


#: the coverage metrics a :class:`CoverageChange` holds, in order
COVERAGE_METRICS = ("requests", "tool_calls", "trace_context_share", "session_key_share", "server_span_share")


@dataclass
class CoverageChange:
    """Correlation coverage of one party (``party_kind`` 'client' or 'server', ``party`` its name without
    version; ``versions`` seen in A and B): requests (client to server) and tool calls, and the shares of
    requests with trace context and with a session key and of tool calls joined to a server span (0–1)."""

    party_kind: str
    party: str
    versions: dict[str, list[str]]
    metrics: dict[str, Change]

    def to_dict(self) -> dict[str, Any]:
        return {"party_kind": self.party_kind, "party": self.party, "versions": self.versions,
                **{k: v.to_dict() for k, v in self.metrics.items()}}


@dataclass
class CountChange:
    """A gap code (``key`` = {"code"}) or a finding (``key`` = {"code", "party_kind", "party"}, the party
    without versions; ``parties`` gives each side's full name) with its gaps in A and B (``count``; 0 where
    absent) and, for a finding, ``extra`` ``n_calls`` and ``share``. ``status``: appeared, disappeared,
    changed (another number of gaps) or same."""

    key: dict[str, str | None]
    severity: str
    count: Change
    extra: dict[str, Change] = field(default_factory=dict)
    parties: dict[str, str | None] = field(default_factory=dict)

    @property
    def status(self) -> str:
        a, b = self.count.a, self.count.b
        return "appeared" if not a else "disappeared" if not b else "same" if a == b else "changed"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {**self.key, "severity": self.severity, "status": self.status}
        if self.parties:
            d["parties"] = self.parties
        d["n_gaps"] = self.count.to_dict()
        for k, v in self.extra.items():
            d[k] = v.to_dict()
        return d


@dataclass
class CaptureDiff:
    """What changed from capture ``a`` to capture ``b`` (see the module docstring). ``to_dict()`` is the JSON
    of ``mcptrace diff --json``."""

    a: Side
    b: Side
    definitions: list[DefinitionChange]
    not_compared: list[NotCompared]
    tools: list[ToolChange]
    coverage: list[CoverageChange]
    gaps: list[CountChange]
    findings: list[CountChange]

    def definitions_of(self, status: str, kind: str | None = "tool") -> list[DefinitionChange]:
        """The definition changes with this ``status`` (added | removed | changed), of ``kind`` (None: all)."""
        return [d for d in self.definitions if d.status == status and (kind is None or d.kind == kind)]

    def tool(self, tool: str, server: str | None = None) -> ToolChange:
        """The :class:`ToolChange` of ``tool`` (of ``server`` when several servers have one). KeyError if none."""
        for t in self.tools:
            if t.tool == tool and (server is None or t.server == server):
                return t
        raise KeyError(tool)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(),
                "definitions": [d.to_dict() for d in self.definitions],
                "not_compared": [n.to_dict() for n in self.not_compared],
                "tools": [t.to_dict() for t in self.tools],
                "coverage": [c.to_dict() for c in self.coverage],
                "gaps": [g.to_dict() for g in self.gaps],
                "findings": [f.to_dict() for f in self.findings]}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)


# -- computing it ------------------------------------------------------------------------------------------

def _iso(v: dt.datetime | None) -> str | None:
    return None if v is None else v.astimezone(dt.timezone.utc).isoformat()


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    res = con.execute(sql, params) if params is not None else con.execute(sql)
    names = [d[0] for d in res.description]
    return [dict(zip(names, r)) for r in res.fetchall()]


def ensure_parties(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``call_party`` (:func:`mcptrace.analysis.findings.parties`) where the connection lacks it: a
    Parquet dataset holds the contract tables only, and its connection is an in-memory one."""
    (n,) = con.execute("SELECT (SELECT count(*) FROM duckdb_tables() WHERE table_name = 'call_party') "
                       "+ (SELECT count(*) FROM duckdb_views() WHERE view_name = 'call_party')").fetchone()
    if not n:
        parties(con)


def _party_names(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, str], dict[str, str], dict[tuple, set]]:
    """{full client party: client name}, {full server party: server name}, {(kind, name): versions}: a
    party as ``call_party`` names it (``inventory 1.0.0 (service inv-eu)``) and the name it is compared
    under (``inventory``: serverInfo name, else the service.name of its spans; a client's clientInfo name)."""
    clients: dict[str, str] = {}
    servers: dict[str, str] = {}
    versions: dict[tuple, set] = {}
    for kind, full, name, version in con.execute("""
            SELECT DISTINCT 'client', p.client_party, coalesce(s.client_name, 'unidentified client'), s.client_version
            FROM call_party p LEFT JOIN sessions s USING (session_id)
            UNION SELECT DISTINCT 'server', server_party, coalesce(server_name, 'unidentified server'), server_version
            FROM call_party""").fetchall():
        (clients if kind == "client" else servers)[full] = name
        versions.setdefault((kind, name), set())
        if version is not None:
            versions[(kind, name)].add(version)
    return clients, servers, versions


def _side(con: duckdb.DuckDBPyConnection, name: str, versions: dict[tuple, set]) -> Side:
    calls, tool_calls, first, last = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE method = 'tools/call'), min(start_ts), max(start_ts) FROM calls"
    ).fetchone()
    (sessions,) = con.execute("SELECT count(*) FROM sessions").fetchone()
    (gaps,) = con.execute("SELECT count(*) FROM gaps").fetchone()
    by_kind = {k: {n: sorted(v) for (kk, n), v in sorted(versions.items()) if kk == k} for k in ("server", "client")}
    return Side(name, calls, tool_calls, sessions, gaps, first, last, by_kind["server"], by_kind["client"])


def _definitions(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection
                 ) -> tuple[list[DefinitionChange], list[NotCompared]]:
    def last(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str], Any]:
        # the last definition of each name, in listed()'s order (time, call, position; no time last):
        # chosen in DuckDB, so only one definition per name comes to Python
        listing_table(con, "_compare_listed")
        try:
            res = con.execute("SELECT server_name, kind, name, "
                              "arg_max(definition, (ts IS NULL, ts, call_id, position)) "
                              "FROM _compare_listed GROUP BY ALL").fetchall()
        finally:
            con.execute("DROP TABLE IF EXISTS _compare_listed")
        return {(s, k, n): json.loads(d) for s, k, n, d in res}

    def lists(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
        kinds = {m: k for m, (k, _, _) in LIST_METHODS.items()}
        return {(s, kinds[m]) for s, m in con.execute(
            "SELECT DISTINCT coalesce(p.server_name, 'unidentified server'), c.method FROM calls c "
            "JOIN call_party p USING (call_id) WHERE c.method IN (SELECT unnest(?::VARCHAR[])) AND c.status = 'ok' "
            "AND c.direction = 'client_to_server'", [list(kinds)]).fetchall()}

    da, db = last(a), last(b)
    la, lb = lists(a), lists(b)
    changes: list[DefinitionChange] = []
    for key in sorted(set(da) | set(db)):
        server, kind, name = key
        if (server, kind) not in la or (server, kind) not in lb:
            continue
        if key not in da:
            changes.append(DefinitionChange(server, kind, name, "added", definition=db[key]))
        elif key not in db:
            changes.append(DefinitionChange(server, kind, name, "removed", definition=da[key]))
        elif (patch := json_diff(da[key], db[key])):
            changes.append(DefinitionChange(server, kind, name, "changed", _members(patch), patch))
    rank = {"removed": 0, "added": 1, "changed": 2}
    changes.sort(key=lambda c: (c.server, c.kind != "tool", c.kind, rank[c.status], c.name))
    not_compared = [NotCompared(s, k, side, sorted(n for (ss, kk, n) in defs if (ss, kk) == (s, k)))
                    for side, mine, other, defs in (("a", la, lb, da), ("b", lb, la, db))
                    for s, k in sorted(mine - other)]
    return changes, not_compared


def _members(patch: Iterable[dict[str, Any]]) -> list[str]:
    """The top-level members a patch touches (RFC 6901 pointers unescaped; '' for the whole definition)."""
    found = set()
    for op in patch:
        for p in (op.get("path"), op.get("from")):
            if p is not None:
                found.add(p.split("/")[1].replace("~1", "/").replace("~0", "~") if p else "")
    return sorted(found, key=lambda m: (MEMBER_ORDER.index(m) if m in MEMBER_ORDER else len(MEMBER_ORDER), m))


def _tool_rows(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str, Any]]:
    res = tool_stats(con, by=("server", "tool"))
    out = {}
    for r in (dict(zip(res.columns, row)) for row in res.rows()):
        r["answered"] = r["ok"] + r["errors"] + r["tool_errors"] + r["truncated"]
        r["failure_rate"] = None if r["error_rate"] is None or r["tool_error_rate"] is None \
            else r["error_rate"] + r["tool_error_rate"]
        out[(r["server"], r["tool"])] = r
    return out


def _tools(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection) -> list[ToolChange]:
    ta, tb = _tool_rows(a), _tool_rows(b)
    out = []
    for key in sorted(set(ta) | set(tb), key=lambda k: (str(k[0]), str(k[1]))):
        ra, rb = ta.get(key), tb.get(key)
        presence = "both" if ra and rb else "a" if ra else "b"
        metrics = {m: Change(ra and ra[m], rb and rb[m]) for m in TOOL_METRICS}
        out.append(ToolChange(key[0], key[1], presence, metrics,
                              {"a": ra and ra.get("error_codes"), "b": rb and rb.get("error_codes")}))
    return out


def _coverage_rows(con: duckdb.DuckDBPyConnection, names: dict[str, dict[str, str]]) -> dict[tuple, dict]:
    rows = _dicts(con, """
        SELECT kind, party, count(*) AS requests, count(*) FILTER (WHERE traced) AS traced,
               count(*) FILTER (WHERE keyed) AS keyed, count(*) FILTER (WHERE tool_call) AS tool_calls,
               count(*) FILTER (WHERE tool_call AND joined) AS joined
        FROM (SELECT p.client_party, p.server_party, c.trace_id IS NOT NULL AS traced,
                     c.request_session_key IS NOT NULL AS keyed, c.method = 'tools/call' AS tool_call,
                     sv.call_id IS NOT NULL AS joined
              FROM calls c JOIN call_party p USING (call_id)
              LEFT JOIN (SELECT DISTINCT call_id FROM call_spans WHERE role = 'server') sv ON sv.call_id = c.call_id
              WHERE c.direction = 'client_to_server')
        UNPIVOT (party FOR kind IN (client_party AS 'client', server_party AS 'server'))
        GROUP BY ALL""")
    out: dict[tuple, dict] = {}
    for r in rows:
        key = (r["kind"], names[r["kind"]].get(r["party"], r["party"]))
        acc = out.setdefault(key, dict.fromkeys(("requests", "traced", "keyed", "tool_calls", "joined"), 0))
        for k in acc:
            acc[k] += r[k]
    return out


def _shares(r: dict | None) -> dict[str, float | int | None]:
    if r is None:
        return dict.fromkeys(COVERAGE_METRICS)
    return {"requests": r["requests"], "tool_calls": r["tool_calls"],
            "trace_context_share": r["traced"] / r["requests"] if r["requests"] else None,
            "session_key_share": r["keyed"] / r["requests"] if r["requests"] else None,
            "server_span_share": r["joined"] / r["tool_calls"] if r["tool_calls"] else None}


def _coverage(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection, names_a: dict, names_b: dict,
              versions_a: dict, versions_b: dict) -> list[CoverageChange]:
    ca, cb = _coverage_rows(a, names_a), _coverage_rows(b, names_b)
    out = []
    for key in sorted(set(ca) | set(cb), key=lambda k: (k[0] != "client", str(k[1]))):
        sa, sb = _shares(ca.get(key)), _shares(cb.get(key))
        out.append(CoverageChange(key[0], key[1], {"a": sorted(versions_a.get(key, ())),
                                                   "b": sorted(versions_b.get(key, ()))},
                                  {m: Change(sa[m], sb[m]) for m in COVERAGE_METRICS}))
    return out


def _gaps(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection) -> list[CountChange]:
    q = "SELECT code, any_value(severity), count(*) FROM gaps GROUP BY 1"
    ga = {c: (s, n) for c, s, n in a.execute(q).fetchall()}
    gb = {c: (s, n) for c, s, n in b.execute(q).fetchall()}
    return [CountChange({"code": c}, (gb.get(c) or ga[c])[0], Change(ga.get(c, (None, 0))[1], gb.get(c, (None, 0))[1]))
            for c in sorted(set(ga) | set(gb))]


def _finding_rows(con: duckdb.DuckDBPyConnection, names: dict[str, dict[str, str]]) -> dict[tuple, dict]:
    servers = sorted(names["server"].items(), key=lambda kv: -len(kv[0]))
    out: dict[tuple, dict] = {}
    for r in _dicts(con, "SELECT code, severity, party_kind, party, n_gaps, n_calls, n_affected, n_eligible, share "
                         "FROM findings ORDER BY finding_id"):
        party = r["party"]
        short = (names["client"] if r["party_kind"] == "client" else names["server"]).get(party)
        if short is None and party:  # a tool or downstream party: its server's name leads it
            prefix = next((full for full, _ in servers if party.startswith(full + " ")), None)
            short = names["server"][prefix] + party[len(prefix):] if prefix else party
        key = (r["code"], r["party_kind"], short)
        if key in out:  # two versions or deployments of one party in one capture: their findings add up
            o = out[key]
            for k in ("n_gaps", "n_calls", "n_affected"):
                o[k] += r[k]
            o["n_eligible"] = None if o["n_eligible"] is None or r["n_eligible"] is None \
                else o["n_eligible"] + r["n_eligible"]
            o["share"] = min(o["n_affected"] / o["n_eligible"], 1.0) if o["n_eligible"] else None
            o["party"] += f", {party}"
        else:
            out[key] = r
    return out


def _findings(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection, names_a: dict, names_b: dict
              ) -> list[CountChange]:
    fa, fb = _finding_rows(a, names_a), _finding_rows(b, names_b)
    out = []
    for key in sorted(set(fa) | set(fb), key=lambda k: tuple(str(x) for x in k)):
        ra, rb = fa.get(key), fb.get(key)
        out.append(CountChange(
            {"code": key[0], "party_kind": key[1], "party": key[2]}, (rb or ra)["severity"],
            Change(ra["n_gaps"] if ra else 0, rb["n_gaps"] if rb else 0),
            {"n_calls": Change(ra and ra["n_calls"], rb and rb["n_calls"]),
             "share": Change(ra and ra["share"], rb and rb["share"])},
            {"a": ra and ra["party"], "b": rb and rb["party"]}))
    rank = {"error": 0, "warning": 1, "info": 2}
    out.sort(key=lambda f: (f.status == "same", rank.get(f.severity, 3)))
    return out


def source_name(con: duckdb.DuckDBPyConnection) -> str:
    """A database named by what was loaded into it: its one source's path, or the first and how many more."""
    paths = [p for (p,) in con.execute("SELECT path FROM sources ORDER BY source_id").fetchall()]
    if not paths:
        return "(no sources)"
    return paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more"


def compare(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection, *, a_name: str | None = None,
            b_name: str | None = None) -> CaptureDiff:
    """What changed from the mcptrace database on connection ``a`` to the one on ``b`` (see the module
    docstring); ``a_name``/``b_name`` name them in the result (default: :func:`source_name`). Both need the
    analysis tables (a database, an attached dataset: its ``call_party`` is built in the connection's memory
    when missing)."""
    for con in (a, b):
        ensure_parties(con)
    ca, sa, va = _party_names(a)
    cb, sb, vb = _party_names(b)
    names_a, names_b = {"client": ca, "server": sa}, {"client": cb, "server": sb}
    definitions, not_compared = _definitions(a, b)
    return CaptureDiff(_side(a, a_name or source_name(a), va), _side(b, b_name or source_name(b), vb), definitions,
                       not_compared, _tools(a, b), _coverage(a, b, names_a, names_b, va, vb), _gaps(a, b),
                       _findings(a, b, names_a, names_b))
