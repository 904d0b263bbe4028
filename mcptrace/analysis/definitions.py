"""What servers list: the tools, prompts, resources and resource templates of every answered
``tools/list``, ``prompts/list``, ``resources/list`` and ``resources/templates/list`` result, and the
structural difference between two definitions.

A definition is compared under its server's name (serverInfo ``name``, else the ``service.name`` of its
server spans), its kind and its name (a resource's ``uri``, a template's ``uriTemplate``): a paginated
listing is read page by page, so a name missing from one page is not a removal. Two definitions are
the same when they are equal as JSON values (member order does not count; :func:`canonical`).
The difference is an RFC 6902 JSON Patch (``jsonpatch``) from the earlier definition to the later one,
each operation with the value it replaced or removed (:func:`json_diff`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import duckdb
import jsonpatch
import jsonpointer
import pyarrow as pa

from mcptrace.core.db import quote_ident
from mcptrace.core.result import Result

#: list method -> (kind, the result member holding the list, the member naming an item)
LIST_METHODS = {
    "tools/list": ("tool", "tools", "name"),
    "prompts/list": ("prompt", "prompts", "name"),
    "resources/list": ("resource", "resources", "uri"),
    "resources/templates/list": ("resource_template", "resourceTemplates", "uriTemplate"),
}

#: the columns of :func:`listed`
LISTED_COLUMNS = ("server_name", "server_version", "server_party", "session_id", "call_id", "ts", "kind", "name",
                  "position", "definition", "digest")


def _listed_sql(calls: str | None = None, definitions: bool = True) -> tuple[str, str, str]:
    """The three statements of :func:`listing_table`: each distinct list result (method and text) under a
    number of its own, the items of each, and every answered list request's items, joined from them."""
    items = "\n".join(
        f"    WHEN '{method}' THEN json_extract(raw, '$.result.{member}[*]')"
        for method, (_, member, _) in LIST_METHODS.items())
    kinds = " ".join(f"WHEN '{method}' THEN '{kind}'" for method, (kind, _, _) in LIST_METHODS.items())
    names = " ".join(f"WHEN '{kind}' THEN item->>'$.{key}'" for kind, _, key in LIST_METHODS.values())
    methods = ", ".join(f"'{m}'" for m in LIST_METHODS)
    only = f"\n      AND c.call_id IN (SELECT call_id FROM {quote_ident(calls)})" if calls else ""
    requests = f"""
    SELECT c.call_id, c.session_id, r.ts, p.server_name, p.server_version, p.server_party, c.method, r.raw
    FROM calls c JOIN call_party p USING (call_id) JOIN messages r ON r.message_id = c.response_message_id
    WHERE c.method IN ({methods}) AND c.status = 'ok' AND c.direction = 'client_to_server'{only}"""
    # servers send the same list result over and over: each distinct text is parsed once, and its items
    # carry its number, not its text
    results = f"""
SELECT row_number() OVER () AS result_id, method, raw FROM (SELECT DISTINCT method, raw FROM ({requests}))"""
    per_result = f"""
WITH l AS (
    SELECT result_id, CASE method {kinds} END AS kind,
           CASE method
{items}
           END AS items
    FROM _listed_results
), i AS (
    SELECT * EXCLUDE (items), unnest(items) AS item, unnest(range(len(items))) AS position FROM l
)
SELECT result_id, kind, CASE kind {names} END AS name, position::INTEGER AS position, item AS definition
FROM i
WHERE json_type(item) = 'OBJECT' AND CASE kind {names} END IS NOT NULL"""
    joined = f"""
SELECT coalesce(l.server_name, 'unidentified server') AS server_name, l.server_version, l.server_party,
       l.session_id, l.call_id, l.ts, i.kind, i.name, i.position,{" i.definition," if definitions else ""} i.digest
FROM ({requests}) l JOIN _listed_results g ON g.method = l.method AND g.raw = l.raw
JOIN _listed_items i ON i.result_id = g.result_id"""
    return results, per_result, joined


def listed(con: duckdb.DuckDBPyConnection, calls: str | None = None) -> Result:
    """Every definition of every answered list result, in time order; with ``calls`` (the name of a table
    with a ``call_id`` column), those of the list requests it holds only.

    Columns: ``server_name`` VARCHAR (serverInfo name, else the service.name of the server's spans, else
    'unidentified server'), ``server_version`` VARCHAR, ``server_party`` VARCHAR (as findings name the
    server), ``session_id`` VARCHAR, ``call_id`` BIGINT (the list request), ``ts`` TIMESTAMPTZ (UTC, the
    result's time), ``kind`` VARCHAR ('tool' | 'prompt' | 'resource' | 'resource_template'), ``name``
    VARCHAR, ``position`` INTEGER (index in the result's list), ``definition`` JSON (the item as sent,
    credentials redacted at load), ``digest`` VARCHAR (:func:`digest`: equal for definitions equal as JSON
    values, whatever their member order). Servers list the same definitions with the same text over and
    over, so each distinct text is parsed once. Only results with status 'ok' count: an error, a cut result
    or no answer lists nothing. Needs the analysis tables (``calls``, ``call_party``)."""
    listing_table(con, "_listed", calls)
    try:
        return Result(con.sql("SELECT * FROM _listed ORDER BY ts, call_id, position").to_arrow_table())
    finally:
        con.execute("DROP TABLE IF EXISTS _listed")


def listing_table(con: duckdb.DuckDBPyConnection, name: str, calls: str | None = None, *,
                  texts: str | None = None) -> None:
    """(Re)create the TEMP table ``name`` holding :func:`listed`'s rows, unordered: the rows stay in DuckDB
    (which spills them when memory is short). Each distinct list result is parsed once, and only each
    distinct definition text comes to Python. With ``texts``, ``name`` has no ``definition`` column and
    the TEMP table ``texts`` holds each digest's definition instead (``digest`` VARCHAR, ``definition``
    JSON)."""
    results, per_result, joined = _listed_sql(calls, definitions=texts is None)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _listed_results AS {results}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _listed_items AS {per_result}")
        distinct = [r[0] for r in con.execute("SELECT DISTINCT definition::VARCHAR FROM _listed_items").fetchall()]
        con.register("_listed_digests", pa.table({"text": pa.array(distinct, pa.string()),
                                                  "digest": pa.array([digest(t) for t in distinct], pa.string())}))
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _listed_items AS SELECT i.*, d.digest "
                        "FROM _listed_items i JOIN _listed_digests d ON d.text = i.definition::VARCHAR")
        finally:
            con.unregister("_listed_digests")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(name)} AS {joined}")
        if texts is not None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(texts)} AS SELECT digest, "
                        "any_value(definition) AS definition FROM _listed_items GROUP BY digest")
    finally:
        con.execute("DROP TABLE IF EXISTS _listed_items")
        con.execute("DROP TABLE IF EXISTS _listed_results")


def digest(text: str) -> str:
    """sha256 of a definition's :func:`canonical` text; of the text as given (marked as such) when it is
    nested deeper than Python's JSON reads."""
    try:
        return hashlib.sha256(canonical(json.loads(text)).encode()).hexdigest()
    except RecursionError:
        return hashlib.sha256(b"text\x00" + text.encode()).hexdigest()


def canonical(value: Any) -> str:
    """A JSON value as text with members sorted and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_diff(before: Any, after: Any) -> list[dict[str, Any]]:
    """The RFC 6902 JSON Patch from ``before`` to ``after`` (``jsonpatch.make_patch``), each ``replace``,
    ``remove`` and ``move`` operation also giving the value it replaced, removed or moved as ``before``.
    Operations apply in order, so that value is read (RFC 6901 JSON Pointer) in the document as the
    operations before it left it. Empty when the two are equal."""
    ops, doc = [], before
    for op in jsonpatch.make_patch(before, after).patch:
        op = dict(op)
        if op["op"] in ("replace", "remove", "move"):
            op["before"] = jsonpointer.resolve_pointer(doc, op["from"] if op["op"] == "move" else op["path"])
        doc = jsonpatch.apply_patch(doc, [op])
        ops.append(op)
    return ops
