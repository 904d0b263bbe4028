"""Incident situations about partial or ambiguous correlation: their orchestration and their checks.

Part of ``python -m mcptrace.samples.incidents`` (the situations themselves are in its ``SITUATIONS``):

- ``untraced_parallel_turn``: a host that stops propagating after turn 1; its later turns send three
  concurrent calls each without trace context.
- ``downstream_untraced_client``: one host, two MCP servers; one of them calls downstream-api with a
  plain HTTP client while the other server's calls are in flight.
- ``colliding_ids_no_extraction``: two legacy Streamable HTTP sessions sending the same ids, methods
  and tools ~30 ms apart to a server that does not extract trace context (:func:`run_colliding_ids`
  starts both hosts at a controlled offset).
- ``spans_twice``: the OTLP receiver writes the server's export and answers 503, the exporter retries:
  every span of that batch is in the dump twice.

``RUNNERS`` maps a situation to its orchestration (instead of the common stdio/HTTP run in
``incidents._run_situation``); ``CHECKS`` maps it to the checks ``incidents.verify`` makes of its capture.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mcptrace.samples.incident_checks import _tp
from mcptrace.samples.incident_run import _Run
from mcptrace.samples.situations import Situation

#: how long after the first host the second one of ``colliding_ids_no_extraction`` starts
START_DELAY = 0.03
NOTES_SERVICE = "notes-mcp"
DOWNSTREAM_SERVICE = "downstream-api"

Need = Callable[[bool, str], None]


# -- orchestration ------------------------------------------------------------------------------------


def run_colliding_ids(run: _Run, services: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
    """Server (``--trace-extraction off``) over Streamable HTTP behind the logging proxy; two hosts
    started, waiting at a start line (a file holding an epoch time), released ``START_DELAY`` apart."""
    sit = run.sit
    url, _port, _server = run.serve_http(services, "--trace-extraction", "off")
    start = run.work / "start"
    agents = [
        run.popen(
            "-m", "mcptrace.samples.incident_agent", sit.name, "--service-name", client,
            "--server-service-name", sit.server, "--url", url,
            "--start-file", str(start), "--start-delay", str(i * START_DELAY), capture=True,
        )
        for i, client in enumerate(sit.clients)
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{start}.{c}.ready").exists() for c in sit.clients):
        if any(p.poll() is not None for p in agents) or time.monotonic() > deadline:
            break  # finish_agents reports the host that failed
        time.sleep(0.01)
    tmp = start.with_name("start.tmp")
    tmp.write_text(repr(time.time() + 0.05))
    tmp.replace(start)
    return run.finish_agents(agents)


RUNNERS: dict[str, Callable[[_Run, list[subprocess.Popen[bytes]]], list[dict[str, Any]]]] = {
    "colliding_ids_no_extraction": run_colliding_ids,
}


# -- checks -------------------------------------------------------------------------------------------


def _ns(ts: str) -> int:
    """An envelope's ``ts`` (UTC ISO, µs) as Unix nanoseconds, like the spans' times."""
    d = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (int(d.timestamp()) * 1_000_000 + d.microsecond) * 1000


def _stream(e: dict[str, Any]) -> str:
    """Where JSON-RPC ids are unique: the ``Mcp-Session-Id`` over HTTP, else the connection."""
    return (e.get("http") or {}).get("mcp_session_id") or e["connection_id"]


def _exchanges(envs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every request (in file order) with its stream, times (ns) and response (``None``: unanswered)."""
    out: list[dict[str, Any]] = []
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    for e in envs:
        m = e.get("message")
        if not isinstance(m, dict) or "id" not in m:
            continue
        k = (_stream(e), json.dumps(m["id"]))
        if e["direction"] == "client_to_server" and "method" in m:
            x = {"msg": m, "method": m["method"], "stream": k[0], "conn": e["connection_id"], "start": _ns(e["ts"]),
                 "end": None, "resp": None, "tool": (m.get("params") or {}).get("name"),
                 "args": (m.get("params") or {}).get("arguments") or {}, "tp": _tp(m)}
            out.append(x)
            open_[k] = x
        elif e["direction"] == "server_to_client" and "method" not in m and k in open_:
            x = open_.pop(k)
            x["end"], x["resp"] = _ns(e["ts"]), m
    return out


def _ok(x: dict[str, Any]) -> bool:
    r = x["resp"]
    return r is not None and "result" in r and not (r["result"] or {}).get("isError")


def _within(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    return outer["start"] <= inner["start"] and inner["end"] <= outer["end"]


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def check_untraced_parallel_turn(sit: Situation, envs: list[dict[str, Any]], spans: list[dict[str, Any]],
                                 need: Need) -> None:
    name, host = sit.name, sit.clients[0]
    xs = _exchanges(envs)
    calls = [x for x in xs if x["method"] == "tools/call"]
    need(len(calls) == 9 and all(_ok(x) for x in calls), f"{name}: nine tools/call, all answered")
    need(all(x["tp"] for x in xs if x["method"] in ("initialize", "tools/list")), f"{name}: the handshake is traced")

    def turn_of(x: dict[str, Any]) -> int | None:
        q, a = x["args"].get("query"), x["args"].get("a")
        if isinstance(q, str) and q.startswith("turn ") and q.split()[1].isdigit():
            return int(q.split()[1])
        return int(a) if isinstance(a, (int, float)) else None

    turns: dict[int | None, list[dict[str, Any]]] = {}
    for x in calls:
        turns.setdefault(turn_of(x), []).append(x)
    need(sorted(turns, key=str) == [1, 2, 3] and all(
        sorted(x["tool"] for x in v) == ["divide", "search", "search"] for v in turns.values()),
        f"{name}: every call's arguments name its turn (1-3); each turn is search, divide, search")
    if sorted(turns, key=str) != [1, 2, 3]:
        return
    t1 = turns[1]
    need(all(x["tp"] for x in t1) and len({x["tp"][0] for x in t1}) == 1, f"{name}: turn 1's calls share one trace")
    need(not any(x["tp"] for n in (2, 3) for x in turns[n]), f"{name}: no traceparent in turns 2 and 3")
    for n, v in turns.items():
        searches = [x for x in v if x["tool"] == "search"]
        need(max(x["start"] for x in v) < min(x["end"] for x in searches),
             f"{name}: turn {n}'s three requests all go out before either search is answered")
    for n in (1, 2):
        need(max(x["end"] for x in turns[n]) + 100_000_000 < min(x["start"] for x in turns[n + 1]),
             f"{name}: turn {n + 1} starts after turn {n} ended (>= 0.1 s later)")
    client = [s for s in spans if s["service"] == host]
    call_cspans = [s for s in client if s["kind"] == "CLIENT" and s["attrs"].get("mcp.method.name") == "tools/call"]
    need(sorted(s["attrs"].get("jsonrpc.request.id") for s in call_cspans) == sorted(str(x["msg"]["id"]) for x in t1),
         f"{name}: CLIENT spans for turn 1's calls only")
    need([s["name"] for s in client if s["kind"] == "INTERNAL"] == ["turn 1"], f"{name}: only turn 1 has a turn span")
    sspan = {s["attrs"].get("jsonrpc.request.id"): s for s in spans
             if s["service"] == sit.server and s["kind"] == "SERVER"}
    need(all(sspan.get(str(x["msg"]["id"]), {}).get("parent") == x["tp"][1] for x in t1 if x["tp"]),
         f"{name}: turn 1's SERVER spans continue the calls' traces")
    later = [sspan.get(str(x["msg"]["id"])) for n in (2, 3) for x in turns[n]]
    need(all(s is not None and s["parent"] == "" for s in later) and len({s["trace_id"] for s in later if s}) == 6,
         f"{name}: turns 2 and 3 give six root SERVER spans, each its own trace")


def check_downstream_untraced_client(sit: Situation, envs: list[dict[str, Any]], spans: list[dict[str, Any]],
                                     need: Need) -> None:
    name = sit.name
    xs = _exchanges(envs)
    conns = sorted({e["connection_id"] for e in envs})
    need(len(conns) == 2 and conns[0].endswith(f"-{NOTES_SERVICE}") and conns[1].endswith(f"-{sit.server}"),
         f"{name}: two stdio connections, one per server")
    inits = [x for x in xs if x["method"] == "initialize"]
    need(len(inits) == 2 and len({x["conn"] for x in inits}) == 2, f"{name}: one initialize per connection")
    calls = [x for x in xs if x["method"] == "tools/call"]
    need(len(calls) == 7 and all(_ok(x) for x in calls) and all(x["tp"] for x in calls),
         f"{name}: seven traced tools/call, all answered")
    weather = {x["msg"]["id"]: x for x in calls if x["conn"].endswith(f"-{sit.server}")}
    notes = [x for x in calls if x["conn"].endswith(f"-{NOTES_SERVICE}")]
    alerts = {x["args"].get("region"): x for x in weather.values() if x["tool"] == "get_alerts_plain"}
    need(sorted(alerts) == ["BBG", "IDF", "kanto"]
         and [x["args"] for x in weather.values() if x["tool"] == "get_forecast"] == [{"city": "Paris"}]
         and sorted(x["tool"] for x in notes) == ["divide", "search", "search"],
         f"{name}: weather-plain gets get_forecast(Paris) and get_alerts_plain(IDF, BBG, kanto); notes-mcp two "
         "searches and a divide")
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for x in calls:
        if x["tp"]:
            by_trace.setdefault(x["tp"][0], []).append(x)
    shapes = sorted(sorted(f"{x['tool']}:{json.dumps(x['args'], sort_keys=True)}" for x in v)
                    for v in by_trace.values())
    want = sorted([
        ['get_forecast:{"city": "Paris"}'],
        ['get_alerts_plain:{"region": "IDF"}', 'search:{"query": "turn 2 agenda"}'],
        ['divide:{"a": 3, "b": 1}', 'get_alerts_plain:{"region": "BBG"}', 'search:{"query": "turn 3 agenda"}'],
        ['get_alerts_plain:{"region": "kanto"}'],
    ])
    need(shapes == want, f"{name}: four turns (one trace each) with the calls described")
    down = [s for s in spans if s["service"] == DOWNSTREAM_SERVICE and s["kind"] == "SERVER"]
    wserver = {s["attrs"].get("jsonrpc.request.id"): s for s in spans if s["service"] == sit.server
               and s["kind"] == "SERVER" and s["attrs"].get("mcp.method.name") == "tools/call"}
    wclient = [s for s in spans if s["service"] == sit.server and s["kind"] == "CLIENT"]
    fc = [s for s in down if s["name"] == "GET /forecast"]
    need(len(wclient) == 1 and wclient[0]["name"] == "GET /forecast" and len(fc) == 1
         and fc[0]["parent"] == wclient[0]["span_id"] and fc[0]["trace_id"] == wclient[0]["trace_id"],
         f"{name}: weather-plain's only CLIENT span is GET /forecast, and downstream-api's /forecast continues it")
    nserver = [s for s in spans if s["service"] == NOTES_SERVICE and s["kind"] == "SERVER"
               and s["attrs"].get("mcp.method.name") == "tools/call"]
    other_traces = {s["trace_id"] for s in spans if s["service"] != DOWNSTREAM_SERVICE}
    for region, turn in (("IDF", 2), ("BBG", 3), ("kanto", 4)):
        ds = [s for s in down if s["name"] == "GET /alerts" and s["attrs"].get("url.query") == f"region={region}"]
        x = alerts.get(region)
        ws = wserver.get(str(x["msg"]["id"])) if x else None
        need(len(ds) == 1 and ds[0]["parent"] == "" and ds[0]["trace_id"] not in other_traces,
             f"{name}: /alerts?region={region} roots a trace of its own")
        if len(ds) != 1 or ws is None:
            continue
        need(_within(ds[0], ws), f"{name}: /alerts?region={region} lies inside weather-plain's get_alerts_plain span")
        busy = [s for s in nserver if _overlap(s, ds[0])]
        if turn == 4:
            need(not busy, f"{name}: no notes-mcp call is in flight during /alerts?region=kanto")
        else:
            q = f"turn {turn} agenda"
            nq = [s for s in nserver if s["attrs"].get("jsonrpc.request.id") == str(
                next((n["msg"]["id"] for n in notes if n["args"].get("query") == q), None))]
            need(len(nq) == 1 and _within(ds[0], nq[0]),
                 f"{name}: notes-mcp's search({q!r}) is in flight during the whole /alerts?region={region}")


def check_colliding_ids_no_extraction(sit: Situation, envs: list[dict[str, Any]], spans: list[dict[str, Any]],
                                      need: Need) -> None:
    name = sit.name
    xs = _exchanges(envs)
    sessions: dict[str, list[dict[str, Any]]] = {}
    for x in xs:
        sessions.setdefault(x["stream"], []).append(x)
    names = {}
    for sid, v in sessions.items():
        init = [x for x in v if x["method"] == "initialize"]
        names[sid] = init[0]["msg"]["params"]["clientInfo"]["name"] if init else None
    need(len(sessions) == 2 and sorted(names.values(), key=str) == sorted(sit.clients),
         f"{name}: two Mcp-Session-Id sessions, one per client ({', '.join(sit.clients)})")
    need(all(x["resp"] is not None and "result" in x["resp"] for x in xs) and all(x["tp"] for x in xs),
         f"{name}: every request carries a traceparent and is answered")
    if len(sessions) != 2:
        return
    # in id order (the proxy writes a request once its response headers are known)
    first, second = (sorted(sessions[s], key=lambda x: x["msg"]["id"])
                     for s in sorted(sessions, key=lambda s: names[s] != sit.clients[0]))
    shape = [[(x["method"], x["msg"]["id"], x["tool"]) for x in v] for v in (first, second)]
    need(shape[0] == shape[1], f"{name}: both sessions send the same ids, methods and tools in the same order")
    need(all(json.dumps(a["args"], sort_keys=True) != json.dumps(b["args"], sort_keys=True)
             for a, b in zip(first, second) if a["method"] == "tools/call"),
         f"{name}: the two clients' tools/call arguments differ")
    lag = [(b["start"] - a["start"]) / 1e6 for a, b in zip(first, second)]
    need(all(5 <= ms <= 200 for ms in lag), f"{name}: each request of {sit.clients[1]} follows the same request of "
         f"{sit.clients[0]} by tens of ms (got {[round(ms) for ms in lag]})")
    for a, b in zip(first, second):
        if a["method"] == "tools/call" and a["tool"] == b["tool"] == "search":
            need(_overlap(a, b), f"{name}: the two sessions' search #{a['msg']['id']} overlap in time")
    sspans = [s for s in spans if s["service"] == sit.server and s["kind"] == "SERVER"]
    need(len(sspans) == 14 and all(s["parent"] == "" and not s["links"] for s in sspans),
         f"{name}: 14 SERVER spans, every one a root without links")
    need(not any("session" in k.lower() for s in sspans for k in s["attrs"]), f"{name}: no session id on the spans")
    client_traces = {x["tp"][0] for x in xs if x["tp"]}
    need(not any(s["trace_id"] in client_traces for s in sspans), f"{name}: no SERVER span in a client's trace")
    for x in first + second:
        if x["method"] != "tools/call":
            continue
        same = [s for s in sspans if s["attrs"].get("jsonrpc.request.id") == str(x["msg"]["id"])
                and s["attrs"].get("gen_ai.tool.name") == x["tool"]]
        mine = [s for s in same if json.loads(s["attrs"].get("gen_ai.tool.call.arguments") or "null") == x["args"]]
        need(len(same) == 2 and len(mine) == 1 and x["end"] is not None and _within(mine[0], x),
             f"{name}: {x['tool']} #{x['msg']['id']} {x['args']}: two SERVER spans share its id and tool, the one "
             "with its arguments lies inside its request/response")


def check_spans_twice(sit: Situation, envs: list[dict[str, Any]], spans: list[dict[str, Any]], need: Need) -> None:
    name = sit.name
    xs = _exchanges(envs)
    need(all(x["tp"] for x in xs) and all(_ok(x) for x in xs), f"{name}: every request traced and answered")
    need(not any(s["service"] in sit.clients for s in spans), f"{name}: the host's spans are not in the dump")
    copies: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in spans:
        copies.setdefault((s["trace_id"], s["span_id"]), []).append(s)
    need(len(copies) == 5 and all(s["service"] == sit.server for s in spans),
         f"{name}: five distinct spans, all the server's")
    need(all(len(v) == 2 and v[0] == v[1] for v in copies.values()), f"{name}: every span twice, both copies identical")
    by_id = {s["attrs"].get("jsonrpc.request.id"): s for s in spans}
    need(all(by_id.get(str(x["msg"]["id"]), {}).get("parent") == x["tp"][1] for x in xs if x["tp"]),
         f"{name}: each request's SERVER span is a child of the CLIENT span its traceparent names (not in the dump)")


CHECKS: dict[str, Callable[[Situation, list[dict[str, Any]], list[dict[str, Any]], Need], None]] = {
    "untraced_parallel_turn": check_untraced_parallel_turn,
    "downstream_untraced_client": check_downstream_untraced_client,
    "colliding_ids_no_extraction": check_colliding_ids_no_extraction,
    "spans_twice": check_spans_twice,
}
