"""Self-check of generated samples (stdlib only): ``python -m mcptrace.samples.check [data/samples]``.

Verifies the properties the samples exist to demonstrate and prints a structural fingerprint
(line counts per file, envelope counts per direction/method, span counts per service and kind) that
must be identical between two generator runs. Exit code 1 when a check fails.

Scenarios A (``agent_stdio.jsonl``) and B (``ide_http.jsonl``): every request carries a valid
``traceparent`` naming the client's CLIENT span, continued by one server SERVER span. Scenario C
(``plain_stdio.jsonl``, untraced ``plain-host``): legacy ``initialize`` on the wire, no
``traceparent`` except the host's all-zero one on ``get_forecast``, no session key, server SERVER
spans rooting their own traces, and a ``crash_worker`` request that is never answered (the server
process died; its SERVER span died with it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
SCENARIOS = {
    # envelope file -> (client service, server service)
    "agent_stdio.jsonl": ("agent-host", "weather-mcp-stdio"),
    "ide_http.jsonl": ("ide-client", "weather-mcp-http"),
}
# Scenario C: envelope file, client (clientInfo name; no spans), server service.
PLAIN = ("plain_stdio.jsonl", "plain-host", "weather-mcp-plain")
KIND = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for kv in items or []:
        v = kv.get("value", {})
        out[kv["key"]] = next(iter(v.values()), None) if v else None
    return out


def load_spans(path: Path) -> list[dict[str, Any]]:
    """The spans of an OTLP/JSON file-exporter dump, flattened: service and process (resource
    attributes ``service.name``, ``mcptrace.sample.process``), ids, name, kind name, start/end (ns),
    attributes as a dict, links."""
    spans = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            for rs in json.loads(line).get("resourceSpans", []):
                res = _attrs(rs.get("resource", {}).get("attributes"))
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        spans.append({
                            "service": res.get("service.name"),
                            "process": res.get("mcptrace.sample.process"),
                            "trace_id": s["traceId"],
                            "span_id": s["spanId"],
                            "parent": s.get("parentSpanId", ""),
                            "name": s["name"],
                            "kind": KIND.get(s.get("kind", 0), "UNSPECIFIED"),
                            "start": int(s["startTimeUnixNano"]),
                            "end": int(s["endTimeUnixNano"]),
                            "attrs": _attrs(s.get("attributes")),
                            "links": s.get("links", []),
                        })
    return spans


def load_envelopes(path: Path) -> list[dict[str, Any]]:
    """The envelopes of a capture that carry a JSON-RPC message (or a raw non-JSON body); the recorder's
    message-less HTTP transport events (priming events, GET streams, DELETE) are left out: see
    :func:`transport_events`."""
    return [e for e in map(json.loads, path.open(encoding="utf-8")) if not _is_transport_event(e)]


def _is_transport_event(e: dict[str, Any]) -> bool:
    return e.get("message") is None and isinstance(e.get("http"), dict) and "raw" not in e


def transport_events(path: Path) -> list[dict[str, Any]]:
    """The message-less HTTP envelopes of a capture (what ``mcptrace`` loads into ``http_events``)."""
    return [e for e in map(json.loads, path.open(encoding="utf-8")) if _is_transport_event(e)]


def _kind(msg: Any) -> str:
    if isinstance(msg, dict):
        return msg.get("method") or ("error" if "error" in msg else "result")
    return "batch" if isinstance(msg, list) else "raw"


def envelope_counts(envs: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(f"{e['direction']} {_kind(e['message'])}" for e in envs).items()))


def count_lines(path: Path) -> int:
    """Lines of a file; of an envelope capture, the lines holding a message (transport events left out)."""
    if path.suffix == ".jsonl" and not path.name.endswith(".otlp.jsonl"):
        return len(load_envelopes(path))
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def ok(self, cond: bool, what: str) -> bool:
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
        return cond


def check(target: Path, bare: Path | None) -> tuple[Checker, dict[str, Any]]:
    c = Checker()
    spans = load_spans(target / "traces.otlp.jsonl")
    by_id = {s["span_id"]: s for s in spans}
    files = [target / name for name in (*SCENARIOS, PLAIN[0], "traces.otlp.jsonl")]
    if bare is not None and bare.exists():
        files.append(bare)
    fingerprint: dict[str, Any] = {
        "lines": {f.name: count_lines(f) for f in files if f.exists()},
        "spans": dict(sorted(Counter(f"{s['service']} {s['kind']}" for s in spans).items())),
        "envelopes": {},
    }

    for fname, (client_svc, server_svc) in SCENARIOS.items():
        envs = load_envelopes(target / fname)
        fingerprint["envelopes"][fname] = envelope_counts(envs)
        requests = {
            e["message"]["id"]: e
            for e in envs
            if e["direction"] == "client_to_server" and "method" in e["message"] and "id" in e["message"]
        }
        responses = {
            e["message"]["id"]: e
            for e in envs
            if e["direction"] == "server_to_client" and "method" not in e["message"] and "id" in e["message"]
        }
        notes = [e for e in envs if "id" not in e["message"]]
        turn_parents: dict[str, list[dict[str, Any]]] = defaultdict(list)

        for rid, env in requests.items():
            msg = env["message"]
            meta = (msg.get("params") or {}).get("_meta") or {}
            tp = meta.get("traceparent")
            m = TRACEPARENT.match(tp or "")
            if not c.ok(m is not None, f"{fname}: request {rid} {msg['method']} has a valid _meta.traceparent"):
                continue
            trace_id, parent_id = m.group(1), m.group(2)
            cspan = by_id.get(parent_id)
            c.ok(
                cspan is not None
                and cspan["service"] == client_svc
                and cspan["kind"] == "CLIENT"
                and cspan["trace_id"] == trace_id
                and cspan["attrs"].get("jsonrpc.request.id") == str(rid)
                and cspan["attrs"].get("mcp.method.name") == msg["method"],
                f"{fname}: request {rid}: traceparent names the {client_svc} CLIENT span with jsonrpc.request.id",
            )
            sspans = [
                s
                for s in spans
                if s["service"] == server_svc
                and s["kind"] == "SERVER"
                and s["attrs"].get("jsonrpc.request.id") == str(rid)
            ]
            c.ok(
                len(sspans) == 1 and sspans[0]["trace_id"] == trace_id and sspans[0]["parent"] == parent_id,
                f"{fname}: request {rid}: one {server_svc} SERVER span, child of the client span, same trace",
            )
            if cspan is not None and msg["method"] in ("tools/call", "resources/read"):
                turn = by_id.get(cspan["parent"])
                if c.ok(
                    turn is not None and turn["name"].startswith("turn ") and turn["kind"] == "INTERNAL",
                    f"{fname}: request {rid}: client span is a child of a 'turn N' INTERNAL span",
                ):
                    turn_parents[turn["span_id"]].append(cspan)
            if msg["method"] == "tools/call" and sspans:
                tool = msg["params"]["name"]
                c.ok(sspans[0]["attrs"].get("gen_ai.tool.name") == tool, f"{fname}: request {rid}: gen_ai.tool.name")
                for route, propagated in (("/forecast", True), ("/alerts", False)):
                    if tool != {"/forecast": "get_forecast", "/alerts": "get_alerts"}[route]:
                        continue
                    out = [
                        s
                        for s in spans
                        if s["service"] == server_svc
                        and s["name"] == f"GET {route}"
                        and s["parent"] == sspans[0]["span_id"]
                    ]
                    if not c.ok(len(out) == 1, f"{fname}: {tool} {rid}: server CLIENT span GET {route}"):
                        continue
                    down = [
                        s
                        for s in spans
                        if s["service"] == "downstream-api"
                        and s["name"] == f"GET {route}"
                        and out[0]["start"] <= s["start"] <= out[0]["end"]
                    ]
                    if not c.ok(len(down) == 1, f"{fname}: {tool} {rid}: one downstream span inside the call"):
                        continue
                    if propagated:
                        c.ok(
                            down[0]["trace_id"] == trace_id and down[0]["parent"] == out[0]["span_id"],
                            f"{fname}: {tool} {rid}: downstream span continues the server's trace",
                        )
                    else:
                        c.ok(
                            down[0]["trace_id"] != trace_id and down[0]["parent"] == "",
                            f"{fname}: {tool} {rid}: downstream span roots a NEW trace (context not forwarded)",
                        )

            # outcome per tool
            resp = responses.get(rid)
            name = (msg.get("params") or {}).get("name")
            if name == "slow_report":
                cancels = [
                    n
                    for n in notes
                    if n["message"].get("method") == "notifications/cancelled"
                    and n["message"]["params"].get("requestId") == rid
                ]
                c.ok(len(cancels) == 1 and resp is None, f"{fname}: slow_report {rid} cancelled, never answered")
            elif name == "divide" and msg["params"]["arguments"].get("b") == 0:
                c.ok(
                    resp is not None and resp["message"].get("result", {}).get("isError") is True,
                    f"{fname}: divide by zero -> isError",
                )
            elif name == "long_task":
                token = meta.get("progressToken")
                prog = [
                    n
                    for n in notes
                    if n["message"].get("method") == "notifications/progress"
                    and n["message"]["params"].get("progressToken") == token
                ]
                c.ok(
                    token is not None and len(prog) == msg["params"]["arguments"]["steps"],
                    f"{fname}: long_task {rid}: one notifications/progress per step with its progressToken",
                )
                if fname == "ide_http.jsonl":
                    events = prog + ([resp] if resp else [])
                    ids = {n["http"]["sse_event_id"] for n in events}
                    conns = {n["connection_id"] for n in events}
                    c.ok(
                        len(ids) == len(prog) + 1 and len(conns) == 1 and None not in ids,
                        f"{fname}: long_task {rid}: SSE stream split into one envelope per event (own event ids)",
                    )
            if name or msg["method"] == "resources/read":
                if name != "slow_report":
                    c.ok(resp is not None, f"{fname}: request {rid} answered")

        c.ok(any("error" in r["message"] for r in responses.values()), f"{fname}: has a JSON-RPC error response")
        # parallel calls: in every turn, the client spans overlap in time
        for turn_id, cs in turn_parents.items():
            if len(cs) >= 2:
                cs = sorted(cs, key=lambda s: s["start"])
                c.ok(cs[1]["start"] < cs[0]["end"], f"{fname}: calls of turn {by_id[turn_id]['name']} overlap")
        if fname == "agent_stdio.jsonl":
            keyed = [r for r in requests.values() if r["message"]["method"] in ("tools/call", "resources/read")]
            keys = {((r["message"]["params"].get("_meta") or {}).get("anthropic/session")) for r in keyed}
            c.ok(len(keys) == 1 and None not in keys, f"{fname}: every turn request carries one anthropic/session key")
        else:
            sids = {
                e["http"]["request_headers"].get("mcp-session-id")
                for e in envs
                if e["direction"] == "client_to_server" and e["message"].get("method") != "initialize"
            }
            sids |= {e["http"]["response_headers"].get("mcp-session-id") for e in envs}
            c.ok(len(sids) == 1 and None not in sids, f"{fname}: one Mcp-Session-Id on every post-initialize message")
            c.ok(any(e["message"].get("method") == "initialize" for e in envs), f"{fname}: initialize present")

    check_plain(c, target, spans, fingerprint)

    if bare is not None and bare.exists():
        bare_lines = [line for line in bare.read_text(encoding="utf-8").splitlines() if line.strip()]
        c.ok(
            len(bare_lines) == len(load_envelopes(target / "agent_stdio.jsonl")),
            "bare NDJSON has one line per stdio envelope",
        )
    return c, fingerprint


def check_plain(c: Checker, target: Path, spans: list[dict[str, Any]], fingerprint: dict[str, Any]) -> None:
    """Scenario C: untraced legacy stdio host, one malformed traceparent, the server dies mid-call."""
    fname, client_name, server_svc = PLAIN
    path = target / fname
    if not c.ok(path.exists(), f"{fname}: present"):
        return
    envs = load_envelopes(path)
    fingerprint["envelopes"][fname] = envelope_counts(envs)
    c.ok(len(envs) == count_lines(path) and len(envs) > 0, f"{fname}: one envelope per line, not empty")
    c.ok(all(isinstance(e["message"], dict) for e in envs), f"{fname}: every line is one parsed JSON-RPC message")
    conns = {e["connection_id"] for e in envs}
    c.ok(
        len(conns) == 1
        and re.fullmatch(rf"stdio:{client_name}:[0-9a-f]+", next(iter(conns), "")) is not None
        and all(e["transport"] == "stdio" for e in envs),
        f"{fname}: one stdio connection stdio:{client_name}:<run_id>",
    )
    envs = [e for e in envs if isinstance(e["message"], dict)]
    c2s = [e for e in envs if e["direction"] == "client_to_server"]
    requests = {e["message"]["id"]: e for e in c2s if "method" in e["message"] and "id" in e["message"]}
    responses = {
        e["message"]["id"]: e
        for e in envs
        if e["direction"] == "server_to_client" and "method" not in e["message"] and "id" in e["message"]
    }
    by_name = {(e["message"].get("params") or {}).get("name"): rid for rid, e in requests.items()}

    # legacy handshake on the wire
    init = [e for e in c2s if e["message"].get("method") == "initialize"]
    c.ok(
        len(init) == 1 and c2s[0] is init[0],
        f"{fname}: initialize present, the first client message",
    )
    if init:
        params = init[0]["message"].get("params") or {}
        c.ok((params.get("clientInfo") or {}).get("name") == client_name, f"{fname}: clientInfo.name {client_name}")
        resp = responses.get(init[0]["message"]["id"])
        c.ok(
            resp is not None and "protocolVersion" in (resp["message"].get("result") or {}),
            f"{fname}: initialize answered with a protocolVersion",
        )
    c.ok(any(e["message"].get("method") == "notifications/initialized" for e in c2s), f"{fname}: initialized sent")

    # no trace context from the untraced host, except the one all-zero traceparent it made up itself
    carried = [
        (e["message"].get("id"), (e["message"].get("params") or {}).get("name"), meta)
        for e in c2s
        for meta in [((e["message"].get("params") or {}).get("_meta") or {})]
        if "traceparent" in meta or "tracestate" in meta
    ]
    forecast = by_name.get("get_forecast")
    only = carried[0] if len(carried) == 1 else None
    c.ok(
        only is not None and only[0] == forecast and set(only[2]) == {"traceparent"},
        f"{fname}: no traceparent on any client message except get_forecast's",
    )
    if only is not None:
        m = TRACEPARENT.match(only[2].get("traceparent") or "")
        c.ok(
            m is not None and set(m.group(1)) == {"0"},
            f"{fname}: get_forecast's traceparent is well-formed but has an all-zero trace-id (invalid)",
        )
    c.ok(
        all("anthropic/session" not in ((e["message"].get("params") or {}).get("_meta") or {}) for e in c2s),
        f"{fname}: no session key in _meta",
    )

    # outcomes on the wire
    crash = by_name.get("crash_worker")
    if c.ok(crash is not None, f"{fname}: crash_worker requested"):
        c.ok(crash not in responses, f"{fname}: crash_worker {crash} never answered")
        # ts (read time) rather than file order: the tee records a line after forwarding it, so two
        # directions can land in the file slightly out of order
        c.ok(
            max(e["ts"] for e in envs) == requests[crash]["ts"],
            f"{fname}: crash_worker {crash} is the last message (connection closed)",
        )
        c.ok(
            not any(e["message"].get("method") == "notifications/cancelled" for e in envs),
            f"{fname}: nothing cancelled (the call is simply left hanging)",
        )
    for rid, env in requests.items():
        if rid != crash:
            c.ok(rid in responses and "result" in responses[rid]["message"], f"{fname}: request {rid} answered")
    search = by_name.get("search")
    if c.ok(search is not None and forecast is not None, f"{fname}: turn 1 has search and get_forecast"):
        sent = max(requests[r]["ts"] for r in (search, forecast))
        answered = [responses[r]["ts"] for r in (search, forecast) if r in responses]
        c.ok(len(answered) == 2 and sent < min(answered), f"{fname}: turn 1 calls concurrent on the wire")

    # spans: none from the host; the server's SERVER spans root their own traces
    c.ok(not any(s["service"] == client_name for s in spans), f"{fname}: no spans from {client_name}")
    server = [s for s in spans if s["service"] == server_svc and s["kind"] == "SERVER"]
    for rid, env in requests.items():
        sspans = [s for s in server if s["attrs"].get("jsonrpc.request.id") == str(rid)]
        if rid == crash:
            c.ok(not sspans, f"{fname}: crash_worker {rid} has no SERVER span (still open when the process died)")
            continue
        if not c.ok(len(sspans) == 1, f"{fname}: request {rid}: one {server_svc} SERVER span (flushed before dying)"):
            continue
        c.ok(
            sspans[0]["parent"] == "" and set(sspans[0]["trace_id"]) != {"0"},
            f"{fname}: request {rid}: SERVER span roots its own trace (no usable context came in)",
        )
        if rid == forecast:
            out = [s for s in spans if s["service"] == server_svc and s["parent"] == sspans[0]["span_id"]]
            down = [
                s
                for s in spans
                if s["service"] == "downstream-api" and out and s["parent"] == out[0]["span_id"]
            ]
            c.ok(
                len(out) == 1 and out[0]["name"] == "GET /forecast" and len(down) == 1
                and down[0]["trace_id"] == sspans[0]["trace_id"],
                f"{fname}: get_forecast {rid}: the server-rooted trace continues to downstream-api",
            )
    others = {s["trace_id"] for s in spans if s["service"] != server_svc and s["service"] != "downstream-api"}
    c.ok(
        not others & {s["trace_id"] for s in server},
        f"{fname}: {server_svc} traces are disjoint from every client's",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.check")
    parser.add_argument("target", nargs="?", default="data/samples")
    parser.add_argument("--bare", default=None, help="bare NDJSON (default TARGET/../bare/agent_stdio.ndjson)")
    parser.add_argument("--fingerprint", action="store_true", help="print only the structural fingerprint (JSON)")
    args = parser.parse_args(argv)
    target = Path(args.target)
    bare = Path(args.bare) if args.bare else target.resolve().parent / "bare" / "agent_stdio.ndjson"
    c, fp = check(target, bare)
    if args.fingerprint:
        print(json.dumps(fp, indent=1, sort_keys=True))
    else:
        print(f"{c.passed} checks passed, {len(c.failures)} failed")
        for f in c.failures:
            print(f"FAILED: {f}")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
