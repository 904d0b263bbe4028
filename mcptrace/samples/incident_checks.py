"""What an incident capture must show: its structure (counts that are the same on every run) and the
checks of each situation's point, for :mod:`mcptrace.samples.incidents`.

``fingerprint(TARGET)`` gives, per situation, envelope counts per direction and kind, span counts per
service and kind, and the number of stdio connections; ``verify(TARGET)`` lists what a capture misses
of its situation (empty when every property in ``data/incidents/README.md`` holds).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from mcptrace.samples.check import KIND, load_spans  # noqa: F401 - re-exported
from mcptrace.samples.situations import SITUATIONS


# -- structure -----------------------------------------------------------------------------------


def load_envelopes(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def message_kind(msg: Any) -> str:
    """``method`` for requests/notifications, ``result`` / ``result[input_required]`` / ``error`` else."""
    if isinstance(msg, list):
        return "batch"
    if not isinstance(msg, dict):
        return "raw"
    if "method" in msg:
        return str(msg["method"])
    if "error" in msg:
        return "error"
    rtype = (msg.get("result") or {}).get("resultType") if isinstance(msg.get("result"), dict) else None
    return f"result[{rtype}]" if rtype not in (None, "complete") else "result"


def envelope_kind(e: dict[str, Any]) -> str:
    """``message_kind`` of the envelope's message; for the proxy's message-less HTTP records what they are:

    ``GET`` / ``DELETE`` (plus ``Last-Event-ID`` for a resumption, the status when it is not 2xx, and
    ``error:<reason>`` when the exchange failed before its headers), ``sse_priming`` (an SSE event with
    an id and/or retry and no data), ``error:<reason>`` (``upstream_reset``, ``client_disconnected``,
    ``proxy_shutdown``: a stream that ended abnormally). A body that was not JSON-RPC stays ``raw``.
    """
    msg = e.get("message")
    http = e.get("http")
    if msg is not None or "raw" in e or not isinstance(http, dict):
        return message_kind(msg)
    parts: list[str] = []
    error = http.get("error")
    if e.get("direction") == "client_to_server" and http.get("method") in ("GET", "DELETE"):
        parts.append(http["method"])
        if "last-event-id" in (http.get("request_headers") or {}):
            parts.append("Last-Event-ID")
        status = http.get("status")
        if not (isinstance(status, int) and 200 <= status < 300):
            parts.append(str(status) if status is not None else "no-status")
    elif not error:
        parts.append("sse_priming" if http.get("sse_event_id") is not None or "sse_retry_ms" in http
                     else "http_event")
    if error:
        parts.append(f"error:{str(error).split(':', 1)[0]}")
    return " ".join(parts)


def fingerprint(target: Path) -> dict[str, dict[str, Any]]:
    """Per situation: envelope counts per ``direction kind``, span counts per ``service KIND``, stdio connections.

    The kind of an envelope is its message's (:func:`message_kind`); the HTTP proxy's message-less records
    count as what they are (``GET``, ``DELETE``, ``sse_priming``, ``error:upstream_reset``...: see
    :func:`envelope_kind`)."""
    out: dict[str, dict[str, Any]] = {}
    for sit in SITUATIONS:
        env_path, otlp_path = target / f"{sit.name}.jsonl", target / f"{sit.name}.otlp.jsonl"
        if not env_path.exists() or not otlp_path.exists():
            out[sit.name] = {"missing": True}
            continue
        envs = load_envelopes(env_path)
        spans = load_spans(otlp_path)
        out[sit.name] = {
            "envelopes": dict(sorted(Counter(
                f"{e['direction']} {envelope_kind(e)}" for e in envs).items())),
            "spans": dict(sorted(Counter(f"{s['service']} {s['kind']}" for s in spans).items())),
            "stdio_connections": len({e["connection_id"] for e in envs if e.get("transport") == "stdio"}),
        }
    return out


def wire_sequence(path: Path) -> list[str]:
    """The capture in ts order as ``> method #id`` (client to server) / ``< result #id`` (server to client)."""
    seq = []
    for e in sorted(load_envelopes(path), key=lambda e: e["ts"]):
        msg = e.get("message")
        arrow = ">" if e["direction"] == "client_to_server" else "<"
        kind = envelope_kind(e)
        if isinstance(msg, dict):
            if msg.get("method") == "tools/call":
                kind += f" {msg['params'].get('name')}"
            if "id" in msg:
                kind += f" #{msg['id']}"
        seq.append(f"{arrow} {kind}")
    return seq


# -- verification ------------------------------------------------------------------------------------


def _meta(msg: dict[str, Any]) -> dict[str, Any]:
    params = msg.get("params")
    return (params.get("_meta") or {}) if isinstance(params, dict) else {}


def _requests(envs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Client requests, each with ``_conn`` (its connection id) added to a copy of the message."""
    return [{**e["message"], "_conn": e["connection_id"]} for e in envs
            if e["direction"] == "client_to_server" and isinstance(e.get("message"), dict)
            and "method" in e["message"] and "id" in e["message"]]


def _responses(envs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e["message"], "_conn": e["connection_id"]} for e in envs
            if e["direction"] == "server_to_client" and isinstance(e.get("message"), dict)
            and "method" not in e["message"] and "id" in e["message"]]


def _key(msg: dict[str, Any]) -> tuple[str, str]:
    """Where a request/response pair meets: its connection and its JSON-RPC id (ids restart per connection)."""
    return msg["_conn"], json.dumps(msg.get("id"))


def _tp(msg: dict[str, Any]) -> tuple[str, str] | None:
    tp = _meta(msg).get("traceparent")
    parts = tp.split("-") if isinstance(tp, str) else []
    return (parts[1], parts[2]) if len(parts) == 4 else None


def _same_trace(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ta, tb = _tp(a), _tp(b)
    return ta is not None and tb is not None and ta[0] == tb[0]


def verify(target: Path, extra_checks: dict[str, Callable[..., None]] | None = None, *,
           only: Collection[str] | None = None) -> list[str]:
    """Check that every capture shows its situation (or only the situations named in ``only``); returns
    the problems found (empty when all is well).

    ``extra_checks``: per situation name, a further check ``(situation, envelopes, spans, need)`` (the
    situations with runners of their own bring theirs: :data:`mcptrace.samples.incidents.EXTRA_CHECKS`)."""
    problems: list[str] = []

    def need(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    for sit in SITUATIONS:
        if only is not None and sit.name not in only:
            continue
        name = sit.name
        env_path, otlp_path = target / f"{name}.jsonl", target / f"{name}.otlp.jsonl"
        if not env_path.exists() or not otlp_path.exists():
            problems.append(f"{name}: files missing")
            continue
        envs, spans = load_envelopes(env_path), load_spans(otlp_path)
        # (the HTTP proxy's message-less records of HTTP events - priming events, GET/DELETE, a stream's
        # reset or disconnect - are not lines of the wire; a record with ``raw`` is; the situation's own
        # checks say which HTTP events it expects)
        need(all(isinstance(e.get("message"), dict) for e in envs
                 if not (e.get("message") is None and "raw" not in e and e.get("transport") != "stdio"
                         and isinstance(e.get("http"), dict))),
             f"{name}: every line is one JSON-RPC object")
        reqs, resps = _requests(envs), _responses(envs)
        calls = [m for m in reqs if m["method"] == "tools/call"]
        answered = {_key(m) for m in resps}
        by_tool: dict[str, list[dict[str, Any]]] = {}
        for m in calls:
            by_tool.setdefault(m["params"]["name"], []).append(m)
        conns = [e["connection_id"] for e in envs]
        server_spans = [s for s in spans if s["service"] == sit.server and s["kind"] == "SERVER"]
        sspan = {(s["process"], s["attrs"].get("jsonrpc.request.id")): s for s in server_spans}
        has_init = any(m["method"] == "initialize" for m in reqs)
        need(has_init == (name not in ("stateless_three_clients", "input_required_retry")),
             f"{name}: initialize on the wire only in legacy mode")
        traced = [m for m in calls if _tp(m)]

        if name.startswith("reconnect"):
            need(len(set(conns)) == 2 and len([m for m in reqs if m["method"] == "initialize"]) == 2,
                 f"{name}: two stdio connections, each with its initialize")
            exp = by_tool.get("export_report", [])
            need(len(exp) == 2 and _key(exp[0]) not in answered and _key(exp[1]) in answered,
                 f"{name}: first export_report unanswered, the retry answered")
            need({s["process"] for s in server_spans} == {"server-1", "server-2"}, f"{name}: spans of both servers")
            need(bool(exp) and ("server-1", str(exp[0]["id"])) not in sspan,
                 f"{name}: the lost export_report's SERVER span died with its process")
            ends = {c: max(e["ts"] for e in envs if e["connection_id"] == c) for c in set(conns)}
            starts = {c: min(e["ts"] for e in envs if e["connection_id"] == c) for c in set(conns)}
            if len(ends) == 2:
                c1, c2 = sorted(ends, key=lambda c: starts[c])
                gap = datetime.fromisoformat(starts[c2].replace("Z", "+00:00")) - datetime.fromisoformat(
                    ends[c1].replace("Z", "+00:00"))
                need(0 < gap.total_seconds() < 5, f"{name}: connection 2 begins within seconds of connection 1's end")
            keys = {_meta(m).get("anthropic/session") for m in calls}
            if name == "reconnect_with_session_key":
                need(len(keys) == 1 and None not in keys, f"{name}: one anthropic/session key on every tools/call")
                need(len(traced) == len(calls), f"{name}: every tools/call has a traceparent")
                need(len(exp) == 2 and _same_trace(exp[0], exp[1]),
                     f"{name}: the retry continues the lost call's trace (same turn)")
            else:
                need(keys == {None}, f"{name}: no session key")
                first_conn = conns[0]
                tr1 = {_tp(m)[0] for m in reqs if _tp(m) and m["_conn"] == first_conn}
                tr2 = {_tp(m)[0] for m in reqs if _tp(m) and m["_conn"] != first_conn}
                need(bool(tr1) and bool(tr2) and not tr1 & tr2,
                     f"{name}: no trace id on connection 2 that connection 1 used")
                clients = {(m.get("params") or {}).get("clientInfo", {}).get("name")
                           for m in reqs if m["method"] == "initialize"}
                need(clients == {sit.clients[0]}, f"{name}: same clientInfo name on both connections")
        elif name == "server_without_trace_extraction":
            need(len(traced) == len(calls) == 3, f"{name}: three traced tools/call")
            client_traces = {_tp(m)[0] for m in reqs if _tp(m)}
            need(all(s["parent"] == "" and s["trace_id"] not in client_traces for s in server_spans),
                 f"{name}: every server SERVER span roots its own trace")
            linked = [s for s in server_spans if s["links"]]
            div = by_tool.get("divide", [{}])[0]
            need(len(linked) == 1 and linked[0]["attrs"].get("gen_ai.tool.name") == "divide"
                 and _tp(div) == (linked[0]["links"][0]["traceId"], linked[0]["links"][0]["spanId"]),
                 f"{name}: exactly the divide SERVER span links to the client span it should be a child of")
        elif name == "downstream_without_propagation":
            down = [s for s in spans if s["service"] == "downstream-api"]
            by_route = {s["name"]: s for s in down}
            srv_traces = {s["trace_id"] for s in server_spans}
            need(len(down) == 2 and by_route.get("GET /forecast", {}).get("trace_id") in srv_traces
                 and by_route.get("GET /alerts", {}).get("parent") == ""
                 and by_route.get("GET /alerts", {}).get("trace_id") not in srv_traces,
                 f"{name}: /forecast continues the server trace, /alerts roots a new trace")
        elif name == "stateless_three_clients":
            need(not any("mcp-session-id" in (e.get("http") or {}).get("request_headers", {})
                         or "mcp-session-id" in (e.get("http") or {}).get("response_headers", {}) for e in envs),
                 f"{name}: no Mcp-Session-Id anywhere")
            by_client: dict[str, list[dict[str, Any]]] = {}
            for m in calls:
                by_client.setdefault(_meta(m).get("io.modelcontextprotocol/clientInfo", {}).get("name"), []).append(m)
            need(sorted(by_client) == sorted(sit.clients) and all(len(v) == 4 for v in by_client.values()),
                 f"{name}: three clients with four tools/call each")
            for client, key_name, untraced in zip(sit.clients, sit.key_names, sit.no_tracing, strict=True):
                ms = by_client.get(client, [])
                keys = {_meta(m).get(key_name) for m in ms}
                need(len(keys) == 1 and None not in keys, f"{name}: {client} sends one {key_name} key")
                need(all((_tp(m) is None) == untraced for m in ms), f"{name}: {client} traceparent iff traced")
            need(not any(s["service"] == sit.clients[2] for s in spans), f"{name}: {sit.clients[2]} exports no spans")
        elif name == "server_killed_mid_call":
            hang = by_tool.get("hang", [{}])[0]
            need(bool(hang) and _key(hang) not in answered, f"{name}: hang never answered")
            need(not any(m.get("method") == "notifications/cancelled" for m in (e["message"] for e in envs)),
                 f"{name}: nothing cancelled")
            need(("server-1", str(hang.get("id"))) not in sspan and len(server_spans) >= 4,
                 f"{name}: finished server spans flushed, hang's span lost")
        elif name == "cancelled_call":
            slow = by_tool.get("slow_report", [{}])[0]
            cancels = [e["message"] for e in envs if e["message"].get("method") == "notifications/cancelled"]
            need(len(cancels) == 1 and cancels[0]["params"].get("requestId") == slow.get("id")
                 and bool(slow) and _key(slow) not in answered, f"{name}: slow_report cancelled, never answered")
        elif name == "unknown_progress_token":
            prog = [e["message"] for e in envs if e["message"].get("method") == "notifications/progress"]
            lt = by_tool.get("long_task", [{}])[0]
            tokens = Counter(p["params"]["progressToken"] for p in prog)
            need(tokens == Counter({_meta(lt).get("progressToken"): 3, "upload-42": 1}),
                 f"{name}: 3 progress for long_task's token, 1 for the unknown token upload-42")
        elif name == "response_with_unknown_id":
            sent = {_key(m) for m in reqs}
            orphans = [m for m in resps if _key(m) not in sent]
            need(len(orphans) == 1 and orphans[0]["id"] == 4242, f"{name}: one response with the unknown id 4242")
            need(all(_key(m) in answered for m in calls), f"{name}: the real calls are answered")
        elif name == "input_required_retry":
            bt = by_tool.get("book_trip", [])
            rmap = {_key(m): m for m in resps}
            first = rmap.get(_key(bt[0])) if bt else None
            need(len(bt) == 2 and bt[0]["id"] != bt[1]["id"], f"{name}: book_trip sent twice with different ids")
            need(first is not None and first["result"].get("resultType") == "input_required"
                 and "requestState" in first["result"] and first["result"].get("inputRequests"),
                 f"{name}: the first book_trip is answered input_required with inputRequests and requestState")
            if len(bt) == 2 and first is not None:
                p2 = bt[1]["params"]
                need(p2.get("requestState") == first["result"].get("requestState")
                     and set(p2.get("inputResponses") or {}) == set(first["result"].get("inputRequests") or {}),
                     f"{name}: the retry carries inputResponses and echoes requestState")
                need(_same_trace(bt[0], bt[1]), f"{name}: both rounds in the same trace")
                need(rmap.get(_key(bt[1]), {}).get("result", {}).get("resultType") == "complete",
                     f"{name}: the retry completes")
        if name in (extra_checks or {}):
            extra_checks[name](sit, envs, spans, need)
        # the servers' SERVER spans carry the semconv attributes for every tools/call they finished
        for s in server_spans:
            if s["attrs"].get("mcp.method.name") == "tools/call":
                need(s["attrs"].get("jsonrpc.request.id") is not None and s["attrs"].get("gen_ai.tool.name"),
                     f"{name}: server span {s['name']} has jsonrpc.request.id and gen_ai.tool.name")
    return problems
