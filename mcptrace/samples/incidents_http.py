"""Incident situations about Streamable HTTP sessions: their orchestration, their checks, and how the
message-less HTTP records of the proxy are named in fingerprints.

Part of ``python -m mcptrace.samples.incidents`` (the situations themselves are in its ``SITUATIONS``):

- ``resumable_http_server``: two traced clients with their own ``Mcp-Session-Id`` on a resumable server
  (event store, ``retry``): priming events, the GET stream, a call whose SSE stream the server closes
  mid-call and the client resumes with ``GET`` + ``Last-Event-ID`` (result replayed), DELETE.
- ``lookalike_clients_reconnect``: two untraced clients with the same clientInfo and no session key lose
  their sessions when the server process dies mid-call (one of them kills it), then each opens a new
  session on a new server process: only the tool arguments (``client-A: …`` / ``A-pdf``) and the
  clients' own summaries (their ``Mcp-Session-Id`` values in order) say which new session continues
  which old one.

``RUNNERS`` maps a situation to its orchestration (instead of the common run in
``incidents._run_situation``); ``CHECKS`` maps it to the checks ``incidents.verify`` makes of its capture;
:func:`envelope_kind` is what ``incidents.fingerprint`` counts an envelope as.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcptrace.samples.incident_checks import _meta, envelope_kind, message_kind  # noqa: F401 - envelope_kind re-exported
from mcptrace.samples.incident_run import _Run, _wait_http
from mcptrace.samples.situations import Situation

Need = Callable[[bool, str], None]

#: the ``retry`` (ms) the sample server's priming events announce (``mcptrace.samples.server``)
RETRY_MS = 1000
#: how many times the SDK client retries a broken POST stream with ``Last-Event-ID`` before giving up
#: (``mcp.client.streamable_http.MAX_RECONNECTION_ATTEMPTS``)
SDK_RESUME_ATTEMPTS = 2
LOOKALIKE_LABELS = ("A", "B")


# -- what a message-less envelope is ------------------------------------------------------------------


def is_http_event(e: dict[str, Any]) -> bool:
    """A message-less HTTP record of the proxy (not a body that was not JSON-RPC, which has ``raw``)."""
    return e.get("message") is None and "raw" not in e and isinstance(e.get("http"), dict)


# -- orchestration ------------------------------------------------------------------------------------


def _agent(run: _Run, i: int, fn: str, url: str, *extra: str) -> subprocess.Popen[bytes]:
    sit = run.sit
    args = ["-m", "mcptrace.samples.incident_agent", fn, "--service-name", sit.clients[i],
            "--server-service-name", sit.server, "--url", url, *extra]
    if i < len(sit.no_tracing) and sit.no_tracing[i]:
        args.append("--no-tracing")
    return run.popen(*args, capture=True)


def _wait(what: str, cond: Callable[[], bool], procs: list[subprocess.Popen[bytes]], timeout: float = 60.0) -> None:
    """Wait for ``cond`` while the processes it depends on are alive."""
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"waiting for {what}: {' '.join(map(str, p.args))} exited with {p.returncode}\n"
                                   + _Run.log_tail(p))
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _recorded(path: Path, pred: Callable[[dict[str, Any]], bool]) -> bool:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for line in lines:
        try:
            if pred(json.loads(line)):
                return True
        except ValueError:
            continue  # a line being written
    return False


def run_resumable(run: _Run, services: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
    """One resumable server (``--resumable-tools``) behind the proxy; both clients started together."""
    url, _port, _server = run.serve_http(services, "--resumable-tools")
    agents = [_agent(run, i, "resumable_http_client", url, "--label", client)
              for i, client in enumerate(run.sit.clients)]
    return run.finish_agents(agents)


def run_lookalike(run: _Run, services: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
    """Server process 1 (``--crash-export``) behind the proxy; two look-alike clients; after both lost
    their sessions (and gave up on them), server process 2 on the same port.

    Order (files in ``sync/``): both clients ready (session 1 open) → B released → B's ``slow_report``
    recorded by the proxy (it reached the server) → A released: its ``export_report`` kills server 1
    → both clients closed session 1 (after the SDK's resumption attempts, all answered 502 by the
    proxy) → server 2 starts → ``go-2``: both open session 2.
    """
    url, mcp_port, server1 = run.serve_http(services, "--crash-export", process="server-1")
    sync = run.work / "sync"
    sync.mkdir()
    agents = [_agent(run, i, "lookalike_client", url, "--label", label, "--sync-dir", str(sync))
              for i, label in enumerate(LOOKALIKE_LABELS)]
    _wait("both clients' first session", lambda: all((sync / f"ready-{x}").exists() for x in LOOKALIKE_LABELS),
          agents)
    (sync / "go-B").write_text("")

    def slow_report_sent(e: dict[str, Any]) -> bool:
        m = e.get("message")
        return (e.get("direction") == "client_to_server" and isinstance(m, dict) and m.get("method") == "tools/call"
                and (m.get("params") or {}).get("name") == "slow_report")

    _wait("B's slow_report at the server", lambda: _recorded(run.envelopes, slow_report_sent), agents)
    (sync / "go-A").write_text("")
    _wait("server process 1 to die in export_report", lambda: server1.poll() is not None, agents, timeout=30)
    _wait("both clients to close session 1", lambda: all((sync / f"closed-{x}").exists() for x in LOOKALIKE_LABELS),
          agents)
    server2 = run.http_server(mcp_port, process="server-2")
    services.insert(0, server2)  # stopped after the proxy (services are stopped in reverse)
    _wait_http(f"http://127.0.0.1:{mcp_port}/", server2)
    (sync / "go-2").write_text("")
    return run.finish_agents(agents)


RUNNERS: dict[str, Callable[[_Run, list[subprocess.Popen[bytes]]], list[dict[str, Any]]]] = {
    "resumable_http_server": run_resumable,
    "lookalike_clients_reconnect": run_lookalike,
}


# -- checks -------------------------------------------------------------------------------------------


def _h(e: dict[str, Any]) -> dict[str, Any]:
    return e.get("http") or {}


def _msg(e: dict[str, Any]) -> dict[str, Any]:
    m = e.get("message")
    return m if isinstance(m, dict) else {}


def _by_session(envs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in envs:
        out[_h(e).get("mcp_session_id")].append(e)
    return dict(out)


def _calls(envs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in envs if e["direction"] == "client_to_server" and _msg(e).get("method") == "tools/call"]


def _answered(envs: list[dict[str, Any]]) -> set[str]:
    """JSON ids answered (result or error) within these envelopes (one session's)."""
    return {json.dumps(_msg(e)["id"]) for e in envs if e["direction"] == "server_to_client"
            and "id" in _msg(e) and "method" not in _msg(e)}


def _requests_in(envs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in envs if e["direction"] == "client_to_server" and "id" in _msg(e) and "method" in _msg(e)]


def _http_records(envs: list[dict[str, Any]], method: str) -> list[dict[str, Any]]:
    return [e for e in envs
            if is_http_event(e) and e["direction"] == "client_to_server" and _h(e).get("method") == method]


def _common(sit: Situation, envs: list[dict[str, Any]], need: Need) -> None:
    """What every envelope of an HTTP situation carries; priming events open every POST's event stream."""
    name = sit.name
    need(all(e.get("transport") == "streamable_http" and e.get("connection_id") and e.get("ts")
             and _h(e).get("exchange_id") and _h(e).get("mcp_session_id") for e in envs),
         f"{name}: every envelope has transport, connection_id, ts, http.exchange_id and mcp_session_id")
    need(not any("raw" in e for e in envs), f"{name}: no raw (non-JSON-RPC) body")
    exchanges: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in envs:
        exchanges[_h(e)["exchange_id"]].append(e)
    sse_posts = [x for x in exchanges.values() if x[0]["direction"] == "client_to_server" and _h(x[0]).get("method")
                 == "POST" and "event-stream" in _h(x[0]).get("response_headers", {}).get("content-type", "")]
    need(bool(sse_posts) and all(
        len(x) > 1 and envelope_kind(x[1]) == "sse_priming" and _h(x[1]).get("sse_event_id")
        and _h(x[1]).get("sse_retry_ms") == RETRY_MS for x in sse_posts),
        f"{name}: every POST's event stream opens with a priming event (id, retry {RETRY_MS})")
    need(all("sse_retry_ms" not in _h(e) for e in envs if envelope_kind(e) != "sse_priming"),
         f"{name}: only priming events set retry")


def check_resumable(sit: Situation, envs: list[dict[str, Any]], spans: list[dict[str, Any]], need: Need) -> None:
    name = sit.name
    _common(sit, envs, need)
    need(not any(_h(e).get("error") for e in envs), f"{name}: no reset, no failed exchange")
    sessions = _by_session(envs)
    need(len(sessions) == 2, f"{name}: two Mcp-Session-Id")
    names = set()
    for sid, mine in sessions.items():
        inits = [e for e in _requests_in(mine) if _msg(e)["method"] == "initialize"]
        client = ((_msg(inits[0]).get("params") or {}).get("clientInfo") or {}).get("name") if inits else None
        names.add(client)
        reqs = _requests_in(mine)
        need(Counter(_msg(e)["method"] for e in reqs) == Counter({"initialize": 1, "tools/list": 1, "tools/call": 4}),
             f"{name}: session of {client}: initialize, tools/list, four tools/call")
        need({json.dumps(_msg(e)["id"]) for e in reqs} <= _answered(mine), f"{name}: session of {client}: all answered")
        calls = {(_msg(e)["params"] or {}).get("name"): e for e in _calls(mine)}
        need(set(calls) == {"search", "divide", "long_task", "resumable_report"},
             f"{name}: session of {client}: search, divide, long_task, resumable_report")
        need(str((calls.get("search") and _msg(calls["search"])["params"]["arguments"]["query"]) or "")
             .startswith(f"{client}: "), f"{name}: session of {client}: its search names it")
        gets, deletes = _http_records(mine, "GET"), _http_records(mine, "DELETE")
        resumed = [e for e in gets if "last-event-id" in _h(e)["request_headers"]]
        need(len(gets) == 2 and len(resumed) == 1 and all(_h(e).get("status") == 200 for e in gets),
             f"{name}: session of {client}: the GET stream and one GET with Last-Event-ID, both 200")
        need(len(deletes) == 1 and _h(deletes[0]).get("status") == 200
             and deletes[0]["ts"] >= max(e["ts"] for e in mine if e is not deletes[0]),
             f"{name}: session of {client}: DELETE 200 ends it")
        rr = calls.get("resumable_report")
        if rr is not None and resumed:
            post_x, get_x = _h(rr)["exchange_id"], _h(resumed[0])["exchange_id"]
            seen_ids = [_h(e).get("sse_event_id") for e in mine if _h(e)["exchange_id"] == post_x
                        and e["direction"] == "server_to_client"]
            on_get = [e for e in mine if _h(e)["exchange_id"] == get_x and e["direction"] == "server_to_client"]
            rid = _msg(rr)["id"]
            need(_h(resumed[0])["request_headers"]["last-event-id"] == (seen_ids[-1] if seen_ids else None),
                 f"{name}: session of {client}: Last-Event-ID is the last event id of resumable_report's POST stream")
            need(not any(_msg(e).get("id") == rid and "method" not in _msg(e) for e in mine
                         if _h(e)["exchange_id"] == post_x),
                 f"{name}: session of {client}: resumable_report's POST stream ends without its result")
            need(any(_msg(e).get("id") == rid and "result" in _msg(e) for e in on_get),
                 f"{name}: session of {client}: its result replayed on the GET with Last-Event-ID")
            token = _meta(_msg(rr)).get("progressToken")
            need(sum(1 for e in mine if _msg(e).get("method") == "notifications/progress"
                     and _msg(e)["params"].get("progressToken") == token) == 2,
                 f"{name}: session of {client}: both progress notifications of resumable_report reach the client")
    need(names == set(sit.clients), f"{name}: the two clients {sit.clients}, one session each")
    need({s["service"] for s in spans} == {*sit.clients, sit.server}, f"{name}: spans of both clients and the server")


def _label(e: dict[str, Any]) -> str | None:
    args = json.dumps(((_msg(e).get("params") or {}).get("arguments") or {}))
    found = {x for x in LOOKALIKE_LABELS if f"client-{x}:" in args or f'"{x}-' in args}
    return found.pop() if len(found) == 1 else None


def check_lookalike(sit: Situation, envs: list[dict[str, Any]], spans: list[dict[str, Any]], need: Need) -> None:
    name = sit.name
    _common(sit, envs, need)
    reqs = _requests_in(envs)
    infos = {json.dumps((_msg(e).get("params") or {}).get("clientInfo"), sort_keys=True)
             for e in reqs if _msg(e)["method"] == "initialize"}
    need(len([e for e in reqs if _msg(e)["method"] == "initialize"]) == 4 and len(infos) == 1
         and json.loads(next(iter(infos))).get("name") == sit.clients[0],
         f"{name}: four initialize, all with the same clientInfo (name and version)")
    need(all(set(_meta(_msg(e))) <= {"progressToken"} for e in reqs),
         f"{name}: no traceparent, no session key in any _meta")
    need(not any("traceparent" in _h(e).get("request_headers", {}) for e in envs), f"{name}: no traceparent header")
    need(not spans or {s["service"] for s in spans} == {sit.server}, f"{name}: only the servers export spans")
    sessions = _by_session(envs)
    need(len(sessions) == 4, f"{name}: four Mcp-Session-Id")
    by_label: dict[str, list[tuple[str, list[dict[str, Any]]]]] = defaultdict(list)
    for sid, mine in sessions.items():
        labels = {_label(e) for e in _calls(mine)} - {None}  # (slow_report's days=7 names nobody)
        need(len(labels) == 1, f"{name}: session {sid}: the arguments of one client only")
        if len(labels) == 1:
            by_label[labels.pop()].append((sid, mine))
    need(sorted(by_label) == list(LOOKALIKE_LABELS) and all(len(v) == 2 for v in by_label.values()),
         f"{name}: two sessions per client")
    ends_old, starts_new = [], []
    for label, pair in sorted(by_label.items()):
        if len(pair) != 2:
            continue
        (_, old), (_, new) = sorted(pair, key=lambda p: min(e["ts"] for e in p[1]))
        ends_old.append(max(e["ts"] for e in old))
        starts_new.append(min(e["ts"] for e in new))
        lost = [e for e in _calls(old) if json.dumps(_msg(e)["id"]) not in _answered(old)]
        tool = "export_report" if label == "A" else "slow_report"
        need(len(lost) == 1 and _msg(lost[0])["params"]["name"] == tool and len(_calls(old)) == 2,
             f"{name}: client {label}: session 1's {tool} is unanswered, its search answered")
        resets = [e for e in old if envelope_kind(e) == "error:upstream_reset"]
        if lost:
            lx, lid = _h(lost[0])["exchange_id"], json.dumps(_msg(lost[0])["id"])
            need(any(_h(e)["exchange_id"] == lx and f"id {lid}" in _h(e)["error"] for e in resets),
                 f"{name}: client {label}: a reset on {tool}'s stream names its id")
        gets = _http_records(old, "GET")
        stream_x = {_h(e)["exchange_id"] for e in gets if _h(e).get("status") == 200}
        need(len(stream_x) == 1 and any(_h(e)["exchange_id"] in stream_x for e in resets) and len(resets) == 2,
             f"{name}: client {label}: its GET stream and its call's stream reset when the server died")
        resumes = [e for e in gets if "last-event-id" in _h(e)["request_headers"]]
        need(len(resumes) == SDK_RESUME_ATTEMPTS and all(_h(e).get("status") == 502 for e in resumes),
             f"{name}: client {label}: {SDK_RESUME_ATTEMPTS} resumption GETs with Last-Event-ID, answered 502")
        need(len(gets) == 2 + SDK_RESUME_ATTEMPTS, f"{name}: client {label}: the GET stream, its one retry "
             f"(502) and the resumptions")
        dels = _http_records(old, "DELETE")
        need(len(dels) == 1 and _h(dels[0]).get("status") == 502, f"{name}: client {label}: DELETE of session 1: 502")
        new_reqs = _requests_in(new)
        need({json.dumps(_msg(e)["id"]) for e in new_reqs} <= _answered(new) and len(_calls(new)) == 2,
             f"{name}: client {label}: session 2 (initialize, tools/list, turn 2) all answered")
        dels2 = _http_records(new, "DELETE")
        need(len(dels2) == 1 and _h(dels2[0]).get("status") == 200, f"{name}: client {label}: DELETE of session 2: 200")
        need(not any(_h(e).get("error") for e in new), f"{name}: client {label}: nothing fails in session 2")
    need(bool(ends_old) and bool(starts_new) and max(ends_old) < min(starts_new),
         f"{name}: the new sessions start after both old ones ended")
    server_spans = [s for s in spans if s["service"] == sit.server and s["kind"] == "SERVER"]
    need({s["process"] for s in server_spans} == {"server-1", "server-2"}, f"{name}: spans of both server processes")
    lost_tools = {s["attrs"].get("gen_ai.tool.name") for s in server_spans if s["process"] == "server-1"}
    need("search" in lost_tools and not lost_tools & {"export_report", "slow_report"},
         f"{name}: server 1's SERVER spans of the calls in flight died with it")


CHECKS: dict[str, Callable[[Situation, list[dict[str, Any]], list[dict[str, Any]], Need], None]] = {
    "resumable_http_server": check_resumable,
    "lookalike_clients_reconnect": check_lookalike,
}
