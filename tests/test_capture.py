"""``mcptrace capture``: the stdio tee and the HTTP reverse proxy, with real MCP SDK processes.

The clients are the official SDK ``Client`` run by this file as a script (``python
tests/test_capture.py client MODE ...``, see the bottom), the server is ``mcptrace.samples.server``
(stdio and Streamable HTTP; its tools served over the 2024-11-05 HTTP+SSE transport by ``python
tests/test_capture.py sse-server``), and the recorders run as ``python -m mcptrace capture ...``.
Everything listens on loopback only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
N_CALLS = 520  # tools/call per recorder, CONCURRENCY at a time, plus one timing call
CONCURRENCY = 10
PROGRESS_STEPS = 2  # every 10th call is long_task(steps=2): progress notifications over SSE
TIMING_STEPS = 50  # long_task(steps=50): a progress event every 40 ms for 2 s


# ------------------------------------------------------------------------------------------------
# helpers (pytest side)
# ------------------------------------------------------------------------------------------------
def _env(otlp: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if otlp:
        env["MCPTRACE_SAMPLES_OTLP_ENDPOINT"] = otlp
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        try:
            httpx.get(url, timeout=1.0, trust_env=False)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {url}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


class Proxy:
    """``mcptrace capture http`` on a free loopback port (read from the line it prints)."""

    def __init__(self, tmp: Path, upstream: str, out: Path, *extra: str) -> None:
        self.log = tmp / f"proxy-{_free_port()}.log"
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(
                [PY, "-m", "mcptrace", "capture", "http", "--upstream", upstream, "--out", str(out), *extra],
                cwd=ROOT, env=_env(), stdout=fh, stderr=fh, start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while True:
            text = self.log.read_text(errors="replace")
            if "listening on http://" in text:
                self.url = text.split("listening on ", 1)[1].split()[0]
                break
            assert self.proc.poll() is None and time.monotonic() < deadline, text
            time.sleep(0.05)
        assert self.url.startswith("http://127.0.0.1:"), text
        assert str(out.resolve()) in text

    def stop(self) -> int:
        return _stop(self.proc)


def _http_server(tmp: Path, transport: str = "http") -> tuple[subprocess.Popen, str]:
    port = _free_port()
    if transport == "http":
        cmd = [PY, "-m", "mcptrace.samples.server", "--transport", "http", "--port", str(port),
               "--service-name", "capture-test-http", "--otlp-endpoint", "http://127.0.0.1:9/v1/traces"]
    else:
        cmd = [PY, str(Path(__file__).resolve()), "sse-server", "--port", str(port)]
    log = open(tmp / f"server-{transport}-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=log, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/", proc)
    return proc, url


def _run_client(*args: str, timeout: float = 90, otlp: str | None = None) -> dict[str, Any]:
    r = subprocess.run([PY, str(Path(__file__).resolve()), "client", *args], cwd=ROOT, env=_env(otlp),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _envelopes(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _scope(e: dict[str, Any]) -> str:
    """What pairs a request with its response: the transport session, else the connection."""
    return (e.get("http") or {}).get("mcp_session_id") or e["connection_id"]


def _is_http_event(e: dict[str, Any]) -> bool:
    """A message-less record of an HTTP event (priming event, GET, DELETE, stream failure): no ``raw``."""
    return e["message"] is None and "raw" not in e and isinstance(e.get("http"), dict)


def _check_stress_capture(path: Path, summary: dict[str, Any], transport: str) -> list[dict[str, Any]]:
    """Every request, response and notification of the stress run is in the capture, in order.

    Returns the envelopes that carry a message (the HTTP events are checked by the callers)."""
    envs = _envelopes(path)
    assert envs and all(e["transport"] == transport for e in envs)
    bad = [e for e in envs if not (isinstance(e["message"], dict) or _is_http_event(e))]
    assert not bad, bad
    assert not any("error" in (e.get("http") or {}) for e in envs)  # nothing failed
    ts = [e["ts"] for e in envs]
    assert all(t.endswith("Z") and len(t) == 27 for t in ts)  # RFC 3339 UTC, microseconds

    if transport == "stdio":
        # one lock for both directions: the whole file is in time order
        assert ts == sorted(ts)
    else:
        # per stream (one HTTP exchange): the request first, then its events in arrival order
        streams: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in envs:
            streams[e["http"]["exchange_id"]].append(e)
        for s in streams.values():
            assert [e["ts"] for e in s] == sorted(e["ts"] for e in s)
            dirs = [e["direction"] for e in s]
            assert dirs == sorted(dirs)  # client_to_server (the POST body) before server_to_client
        # and everything the proxy stamped as it arrived (all server-to-client) is in time order
        s2c = [e["ts"] for e in envs if e["direction"] == "server_to_client"]
        assert s2c == sorted(s2c)

    requests: dict[tuple[str, str], tuple[int, dict]] = {}
    responses: dict[tuple[str, str], tuple[int, dict]] = {}
    progress: Counter = Counter()
    for i, e in enumerate(envs):
        m = e["message"]
        if m is None:
            continue
        key = (_scope(e), json.dumps(m.get("id")))
        if e["direction"] == "client_to_server" and "method" in m and "id" in m:
            assert key not in requests, f"request id reused while open: {key}"
            requests[key] = (i, e)
        elif e["direction"] == "server_to_client" and "method" not in m:
            assert key not in responses, f"two responses for {key}"
            responses[key] = (i, e)
        elif m.get("method") == "notifications/progress":
            assert e["direction"] == "server_to_client"
            progress[json.dumps(m["params"]["progressToken"])] += 1

    calls = {k: v for k, v in requests.items() if v[1]["message"]["method"] == "tools/call"}
    assert len(calls) == N_CALLS + 1
    for key, (i, req) in requests.items():
        assert key in responses, f"no response to {req['message']}"
        j, resp = responses[key]
        assert j > i and resp["ts"] >= req["ts"], (req, resp)
        assert "error" not in resp["message"], resp
    assert set(responses) <= set(requests)

    # progress: every long_task's token got one notification per step, sent before its response
    steps = {}
    for key, (_i, req) in calls.items():
        params = req["message"]["params"]
        if params["name"] == "long_task":
            token = json.dumps(params["_meta"]["progressToken"])
            steps[token] = params["arguments"]["steps"]
    assert len(steps) == N_CALLS // 10 + 1
    assert dict(progress) == steps
    assert summary["progress_callbacks"] == sum(steps.values())
    assert summary["ok"] == N_CALLS + 1 and summary["errors"] == []
    if transport == "streamable_http":  # one envelope per SSE event, each with its id (the server keeps events)
        ids = [e["http"]["sse_event_id"] for e in envs if e["direction"] == "server_to_client"]
        assert None not in ids and len(set(ids)) == len(ids)
    return [e for e in envs if e["message"] is not None]


def _http_events(path: Path) -> list[dict[str, Any]]:
    """The message-less HTTP records of a capture (each checked to carry what every envelope carries)."""
    events = [e for e in _envelopes(path) if e["message"] is None]
    for e in events:
        assert _is_http_event(e), e
        assert e["ts"].endswith("Z") and e["transport"] and e["connection_id"], e
        assert {"exchange_id", "mcp_session_id", "method", "status", "request_headers"} <= set(e["http"]), e
    return events


def _exchanges(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every envelope of the capture by ``http.exchange_id``, in file order."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in _envelopes(path):
        out[e["http"]["exchange_id"]].append(e)
    return out


def _is_priming(e: dict[str, Any], retry: int | None = 1000) -> bool:
    """A priming event of a resumable server: no message, an event id and (when it set one) the retry."""
    h = e["http"]
    return (e["message"] is None and "raw" not in e and e["direction"] == "server_to_client"
            and h["sse_event_id"] is not None and h.get("sse_retry_ms") == retry and "error" not in h)


def _check_session_http_events(path: Path) -> None:
    """A resumable Streamable HTTP session through the proxy: every POST's event stream opens with a
    priming event; the SDK client's GET stream and its DELETE are one record each."""
    sse_posts = 0
    for envs in _exchanges(path).values():
        first = envs[0]
        if first["http"]["method"] == "POST" and first["http"]["response_headers"].get("content-type", "") \
                .startswith("text/event-stream"):
            sse_posts += 1
            assert first["direction"] == "client_to_server" and first["message"] is not None
            assert _is_priming(envs[1]), envs[1]  # before the first message of the stream
            assert [_is_priming(e) for e in envs[1:]].count(True) == 1
            assert envs[1]["http"]["mcp_session_id"] == first["http"]["mcp_session_id"]
    events = _http_events(path)
    gets = [e for e in events if e["http"]["method"] == "GET" and e["direction"] == "client_to_server"]
    deletes = [e for e in events if e["http"]["method"] == "DELETE"]
    assert len(events) == sse_posts + 2 and sse_posts > N_CALLS
    (get,), (delete,) = gets, deletes  # the SDK opens the GET stream after initialized; DELETE on close
    assert get["http"]["status"] == 200 and get["http"]["response_headers"]["content-type"] == "text/event-stream"
    assert get["http"]["request_headers"]["mcp-session-id"] == get["http"]["mcp_session_id"]
    assert "last-event-id" not in get["http"]["request_headers"]
    assert delete["direction"] == "client_to_server" and delete["http"]["status"] == 200
    assert delete["http"]["request_headers"]["mcp-session-id"] == delete["http"]["mcp_session_id"]
    assert delete["ts"] == max(e["ts"] for e in _envelopes(path))  # nothing after the session ended


def _check_loads(path: Path, transport: str) -> None:
    import mcptrace

    ws = mcptrace.load(path)
    try:
        assert ws.sql("SELECT count(*) FROM rejects").rows() == [(0,)]
        rows = ws.sql("SELECT status, count(*) FROM calls WHERE method = 'tools/call' GROUP BY 1").rows()
        assert rows == [("ok", N_CALLS + 1)]
        rows = ws.sql("SELECT DISTINCT status FROM calls").rows()
        assert rows == [("ok",)]
        n = ws.sql("SELECT count(*) FROM messages WHERE method = 'notifications/progress'").rows()[0][0]
        assert n == (N_CALLS // 10) * PROGRESS_STEPS + TIMING_STEPS
        assert ws.sql("SELECT DISTINCT transport FROM messages").rows() == [(transport,)]
        assert ws.sql("SELECT count(*) FROM gaps WHERE code IN ('unanswered_request', 'orphan_response', "
                      "'duplicate_request_id', 'unknown_progress_token', 'session_split')").rows() == [(0,)]
        assert ws.sql("SELECT count(DISTINCT coalesce(mcp_session_id, connection_id)) FROM calls").rows() == [(1,)]
    finally:
        ws.close()


def _check_no_buffering(summary: dict[str, Any]) -> None:
    """long_task(steps=50) reports progress every 40 ms for 2 s: the first event must arrive long
    before the result (a proxy holding the stream to its end would deliver both together)."""
    t = summary["timing"]
    assert t["n_progress"] == TIMING_STEPS
    assert t["result"] - t["first_progress"] > 1.2, t
    assert t["first_progress"] < 1.0, t  # measured from the call's start


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def otlp(tmp_path_factory):
    """Where the sample server processes send their spans (they flush on exit)."""
    from mcptrace.samples.otlp_receiver import OTLPReceiver

    receiver = OTLPReceiver(str(tmp_path_factory.mktemp("otlp") / "traces.jsonl")).start()
    yield receiver.endpoint
    receiver.stop()


# ------------------------------------------------------------------------------------------------
# (1) + (2): 500+ calls through each recorder, nothing lost, in order, rebuilt by the loader;
#            progress reaches the client while the tool still runs
# ------------------------------------------------------------------------------------------------
def test_stdio_tee_records_every_message_in_order(tmp_path, otlp):
    out, err = tmp_path / "stdio.jsonl", tmp_path / "stderr.log"
    summary = _run_client("stdio", "--out", str(out), "--stderr-out", str(err), otlp=otlp)
    envs = _check_stress_capture(out, summary, "stdio")
    conns = {e["connection_id"] for e in envs}
    assert len(conns) == 1 and next(iter(conns)).startswith("stdio:mcptrace.samples.server:")
    assert err.exists()  # --stderr-out: the server's stderr (quiet here) is recorded there
    _check_loads(out, "stdio")
    _check_no_buffering(summary)


def test_follow_a_live_stdio_capture(tmp_path):
    """``mcptrace load --follow`` semantics on live traffic: the stress client's calls go through
    ``mcptrace capture stdio`` to a real SDK server while ``Workspace.follow`` loads the capture in parts;
    at the end the database equals one load of the finished capture."""
    import threading

    import mcptrace
    from test_incremental import tables

    out = tmp_path / "live.jsonl"
    client = subprocess.Popen([PY, str(Path(__file__).resolve()), "client", "stdio", "--out", str(out)], cwd=ROOT,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ws = mcptrace.open(str(tmp_path / "live.duckdb"))
    stop, parts = threading.Event(), []
    follower = threading.Thread(target=lambda: ws.follow(out, interval=0.05, part_bytes=64 << 10, stop=stop,
                                                         on_part=parts.append))
    follower.start()
    try:
        stdout, stderr = client.communicate(timeout=180)
        assert client.returncode == 0, stdout[-3000:] + stderr[-3000:]
        size, deadline = out.stat().st_size, time.monotonic() + 120
        while time.monotonic() < deadline:  # until the follow has caught up with the finished capture
            if parts and parts[-1].end_offset == size:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        follower.join(60)
    assert not follower.is_alive()
    assert len(parts) >= 3, len(parts)
    assert parts[-1].end_offset == size and parts[-1].last_line == len(_envelopes(out))
    # one session: each part reaches all of it, so most parts rebuild in full (they say why)
    assert all(p.analysis.mode == "incremental" or p.analysis.reason.startswith("the new records")
               for p in parts), [(p.analysis.mode, p.analysis.reason) for p in parts]
    rows = ws.sql("SELECT status, count(*) FROM calls WHERE method = 'tools/call' GROUP BY 1").rows()
    assert rows == [("ok", N_CALLS + 1)]
    one = mcptrace.load(out)
    a, b = tables(ws), tables(one)
    for t in b:
        assert a[t] == b[t], t
    ws.close()


def _through_proxy(tmp_path, transport: str, path: str, *proxy_args: str):
    """Drive the stress client through the recording proxy in front of a real SDK server of
    ``transport`` ("http" or "sse"); returns the capture's path and the client's summary."""
    server, upstream = _http_server(tmp_path, transport)
    out = tmp_path / f"{transport}.jsonl"
    proxy = Proxy(tmp_path, upstream, out, *proxy_args)
    try:
        summary = _run_client(transport, "--url", proxy.url + path)
    finally:
        assert proxy.stop() == 0
        _stop(server, signal.SIGKILL)
    return out, summary


def test_http_proxy_records_every_message_in_order(tmp_path):
    har = tmp_path / "http.har"
    out, summary = _through_proxy(tmp_path, "http", "/mcp", "--har", str(har))
    envs = _check_stress_capture(out, summary, "streamable_http")
    # Mcp-Session-Id lifted into every envelope, initialize included (its response assigned it)
    sids = {e["http"]["mcp_session_id"] for e in envs}
    assert len(sids) == 1 and None not in sids
    assert all(e["http"]["status"] == 200 or (e["http"]["status"] == 202 and "id" not in e["message"])
               for e in envs)
    _check_session_http_events(out)
    _check_loads(out, "streamable_http")
    _check_no_buffering(summary)
    entries = json.loads(har.read_text())["log"]["entries"]
    assert sum(1 for x in entries if '"tools/call"' in (x["request"].get("postData") or {}).get("text", "")) \
        == N_CALLS + 1


def test_http_proxy_legacy_sse_transport(tmp_path):
    """2024-11-05 HTTP+SSE: GET /sse announces the POST endpoint; responses come back on that stream."""
    out, summary = _through_proxy(tmp_path, "sse", "/sse")
    envs = _check_stress_capture(out, summary, "sse")
    posts = [e for e in envs if e["direction"] == "client_to_server"]
    stream = [e for e in envs if e["direction"] == "server_to_client"]
    assert {e["http"]["method"] for e in posts} == {"POST"} and {e["http"]["status"] for e in posts} == {None}
    assert {e["http"]["method"] for e in stream} == {"GET"} and {e["http"]["path"] for e in stream} == {"/sse"}
    sid = {e["connection_id"] for e in envs}
    assert len(sid) == 1 and all(e["http"]["path"] == f"/messages/?session_id={next(iter(sid))}" for e in posts)
    # the GET /sse stream itself is one record, written once its endpoint event named the session (so it
    # carries the transport and session of that stream), before any message; no priming (no event store)
    (get,) = _http_events(out)
    assert get == _envelopes(out)[0]
    assert get["direction"] == "client_to_server" and get["transport"] == "sse"
    assert get["connection_id"] == get["http"]["mcp_session_id"] == next(iter(sid))
    assert get["http"]["method"] == "GET" and get["http"]["path"] == "/sse" and get["http"]["status"] == 200
    assert get["http"]["exchange_id"] == stream[0]["http"]["exchange_id"] and get["ts"] < stream[0]["ts"]
    _check_loads(out, "sse")


# ------------------------------------------------------------------------------------------------
# (3) failures: the client leaves mid-stream, the upstream dies; the proxy lives on and says so
# ------------------------------------------------------------------------------------------------
def _post(client, url: str, body: dict, sid: str | None = None, **headers: str):
    h = {"accept": "application/json, text/event-stream", "content-type": "application/json", **headers}
    if sid:
        h["mcp-session-id"] = sid
    return client.stream("POST", url, json=body, headers=h)


def _first_event(lines) -> str:
    for line in lines:
        if line.startswith("data: ") and line[6:].strip():
            return line[6:]
    raise AssertionError("stream ended without an event")


def test_http_proxy_survives_disconnects_and_upstream_death(tmp_path):
    import httpx

    import mcptrace

    server, upstream = _http_server(tmp_path)
    out = tmp_path / "fail.jsonl"
    previous = b'{"ts":"2026-01-01T00:00:00.000000Z","direction":"client_to_server","transport":"stdio",' \
               b'"connection_id":"earlier-run","message":{"jsonrpc":"2.0","id":"x","method":"ping"}}\n'
    out.write_bytes(previous)  # (5) an existing capture is appended to
    proxy = Proxy(tmp_path, upstream, out)
    url = proxy.url + "/mcp"

    def call(i: int, tool: str, args: dict) -> dict:
        return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": tool, "arguments": args, "_meta": {"progressToken": f"p{i}"}}}

    try:
        with httpx.Client(timeout=10, trust_env=False) as c:
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "raw-client", "version": "1"}}}
            with _post(c, url, init, authorization="Bearer s3cret", cookie="a=b") as r:
                assert r.status_code == 200
                sid = r.headers["mcp-session-id"]
                json.loads(_first_event(r.iter_lines()))
            with _post(c, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid) as r:
                assert r.status_code == 202

            # the client disconnects mid-stream: after the first progress event of a 2 s task
            with _post(c, url, call(2, "long_task", {"steps": 50}), sid) as r:
                assert json.loads(_first_event(r.iter_lines()))["method"] == "notifications/progress"
            # the proxy carries on
            with _post(c, url, call(3, "divide", {"a": 1, "b": 4}), sid) as r:
                assert json.loads(_first_event(r.iter_lines()))["result"]["structuredContent"] == {"result": 0.25}

            # the upstream dies mid-stream: the stream breaks, the next request gets a 502
            with _post(c, url, call(4, "long_task", {"steps": 50}), sid) as r:
                lines = r.iter_lines()
                assert json.loads(_first_event(lines))["method"] == "notifications/progress"
                server.kill()
                server.wait(timeout=5)
                with pytest.raises(httpx.HTTPError):  # the proxy passes the break on
                    for _ in lines:
                        pass
            with _post(c, url, call(5, "divide", {"a": 1, "b": 2}), sid) as r:
                assert r.status_code == 502
                r.read()
            assert proxy.proc.poll() is None
            # still serving (and still recording) after all that
            with _post(c, url, call(6, "divide", {"a": 1, "b": 2}), sid) as r:
                assert r.status_code == 502
    finally:
        assert proxy.stop() == 0
        _stop(server, signal.SIGKILL)

    data = out.read_bytes()
    assert data.startswith(previous)
    envs = _envelopes(out)[1:]
    by_id: dict[Any, list[dict]] = defaultdict(list)
    notes, priming = [], []
    for e in envs:
        if e["message"] is None:
            (notes if "error" in e["http"] else priming).append(e)
            assert "raw" not in e  # (raw only marks a body that was not JSON-RPC)
        elif "id" in e["message"]:
            by_id[e["message"]["id"]].append(e)
    # no priming events: the server primes streams only for clients of 2025-11-25 or later (this is 2025-06-18)
    assert priming == []
    # credentials redacted by default; the session id lifted
    assert by_id[1][0]["http"]["request_headers"]["authorization"] == "[REDACTED]"
    assert by_id[1][0]["http"]["request_headers"]["cookie"] == "[REDACTED]"
    assert b"s3cret" not in data
    assert {e["http"]["mcp_session_id"] for e in envs} == {sid}
    # 2: the request, no response, and a record saying the client left with it unanswered
    assert [e["direction"] for e in by_id[2]] == ["client_to_server"]
    # 3 answered
    assert [e["direction"] for e in by_id[3]] == ["client_to_server", "server_to_client"]
    # 4: the request, no response, a reset
    assert [e["direction"] for e in by_id[4]] == ["client_to_server"]
    # 5, 6: 502 in the request's http metadata
    for i in (5, 6):
        (req,) = by_id[i]
        assert req["http"]["status"] == 502 and req["http"]["error"].startswith("upstream_error: ConnectError")
    errors = [n["http"]["error"] for n in notes]
    assert len(errors) == 2, errors
    assert errors[0].startswith("client_disconnected") and "id 2" in errors[0]
    assert errors[1].startswith("upstream_reset") and "id 4" in errors[1]
    assert [n["http"]["exchange_id"] for n in notes] == [by_id[2][0]["http"]["exchange_id"],
                                                         by_id[4][0]["http"]["exchange_id"]]

    ws = mcptrace.load(out)
    try:
        rows = ws.sql("SELECT rpc_id, status FROM calls WHERE connection_id <> 'earlier-run' ORDER BY start_ts").rows()
        assert rows == [("1", "ok"), ("2", "unanswered"), ("3", "ok"), ("4", "unanswered"), ("5", "unanswered"),
                        ("6", "unanswered")]
        # the stream-end records and the priming events have no message: HTTP events, not rejects
        assert ws.sql("SELECT count(*) FROM rejects").rows() == [(0,)]
    finally:
        ws.close()


# ------------------------------------------------------------------------------------------------
# (3b) HTTP events: a stream the server closes mid-call and the SDK client resumes with Last-Event-ID;
#      the session's GET stream and DELETE; GET and DELETE that fail; what stays unrecorded
# ------------------------------------------------------------------------------------------------
def test_http_proxy_records_resumption_get_and_delete(tmp_path):
    import httpx

    port = _free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed with the process
    server = subprocess.Popen(
        [PY, "-m", "mcptrace.samples.incident_server", "--resumable-tools", "--", "--transport", "http",
         "--port", str(port), "--service-name", "capture-test-resume",
         "--otlp-endpoint", "http://127.0.0.1:9/v1/traces"],
        cwd=ROOT, env=_env(), stdout=log, stderr=log, start_new_session=True)
    log.close()
    upstream = f"http://127.0.0.1:{port}"
    _wait_http(upstream + "/", server)
    out = tmp_path / "resume.jsonl"
    proxy = Proxy(tmp_path, upstream, out)
    url = proxy.url + "/mcp"
    try:
        # the SDK client: tools/list, resumable_report (its stream closed by the server mid-call), close
        summary = _run_client("resume", "--url", url)
        assert summary["text"] == "report t ready" and summary["progress"] == [1.0, 2.0]
        sid = summary["session_id"]
        with httpx.Client(timeout=10, trust_env=False) as c:
            assert c.get(proxy.url + "/healthz").status_code == 404  # not MCP: forwarded, not recorded
            unknown = c.get(url, headers={"accept": "text/event-stream", "mcp-session-id": "no-such-session"})
            assert unknown.status_code in (400, 404)
            server.kill()
            server.wait(timeout=5)
            headers = {"accept": "text/event-stream", "mcp-session-id": sid, "last-event-id": "e2",
                       "authorization": "Bearer s3cret"}
            assert c.get(url, headers=headers).status_code == 502
            assert c.delete(url, headers={"mcp-session-id": sid}).status_code == 502
    finally:
        assert proxy.stop() == 0
        _stop(server, signal.SIGKILL)

    data = out.read_bytes()
    assert b"s3cret" not in data
    envs, ex, events = _envelopes(out), _exchanges(out), _http_events(out)
    assert not any(e["http"]["path"] == "/healthz" for e in envs)
    call = next(e for e in envs if (e["message"] or {}).get("method") == "tools/call")
    assert call["message"]["params"]["name"] == "resumable_report"
    # the POST's stream: the request, its priming event, progress 1/2, and no result (the server closed it)
    post = ex[call["http"]["exchange_id"]]
    assert _is_priming(post[1]) and post[1]["http"]["mcp_session_id"] == sid
    assert [e["message"]["params"]["progress"] for e in post[2:]] == [1]
    # the SDK resumed it with a GET carrying Last-Event-ID = the last event id it saw
    requests = [e for e in events if e["direction"] == "client_to_server"]
    (get,) = [e for e in requests if e["http"]["method"] == "GET" and e["http"]["status"] == 200
              and "last-event-id" in e["http"]["request_headers"]]
    assert get["http"]["mcp_session_id"] == sid
    assert get["http"]["request_headers"]["last-event-id"] == post[-1]["http"]["sse_event_id"]
    assert get["http"]["request_headers"]["authorization"] == "[REDACTED]"  # redacted like any header
    assert get["http"]["response_headers"]["content-type"] == "text/event-stream"
    # ... on which progress 2/2 and the result were replayed (then the resumed stream's own priming event)
    replay = ex[get["http"]["exchange_id"]][1:]
    msgs = [e["message"] for e in replay if e["message"] is not None]
    assert msgs[0]["params"]["progress"] == 2 and msgs[1]["id"] == call["message"]["id"] and "result" in msgs[1]
    assert all(_is_priming(e) for e in replay if e["message"] is None)
    # the session's GET stream (200) and the client's DELETE (200)
    others = [e for e in requests if e["http"]["mcp_session_id"] == sid and e is not get
              and e["http"]["status"] != 502]
    assert [(e["http"]["method"], e["http"]["status"], "last-event-id" in e["http"]["request_headers"])
            for e in others] == [("GET", 200, False), ("DELETE", 200, False)]
    # a GET naming an unknown session is recorded with its status (its JSON-RPC error body is a message)
    (bad,) = [e for e in requests if e["http"]["mcp_session_id"] == "no-such-session"]
    assert bad["http"]["method"] == "GET" and bad["http"]["status"] == unknown.status_code
    # the upstream is gone: GET (a resumption) and DELETE answered 502 by the proxy, each one record
    failed = [e for e in requests if e["http"]["status"] == 502]
    assert [(e["http"]["method"], e["http"]["request_headers"].get("last-event-id")) for e in failed] \
        == [("GET", "e2"), ("DELETE", None)]
    assert all(e["direction"] == "client_to_server" and e["http"]["error"].startswith("upstream_error: ConnectError")
               for e in failed)
    assert failed[0]["http"]["request_headers"]["authorization"] == "[REDACTED]"
    # nothing else is message-less: every POST's stream opened with one priming event
    primings = [e for e in events if _is_priming(e)]
    assert len(requests) == 1 + 2 + 1 + 2 and len(events) == len(primings) + len(requests)
    assert sum(1 for e in primings if e["http"]["exchange_id"] != get["http"]["exchange_id"]) == sum(
        1 for x in ex.values() if x[0]["http"]["method"] == "POST" and x[0]["http"]["status"] == 200)


# ------------------------------------------------------------------------------------------------
# (4) the stdio tee: bytes unchanged both ways, exit code, signals; (5) appends
# ------------------------------------------------------------------------------------------------
PAYLOAD = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"\xc3\xa9\xe2\x82\xac"}}\n'
    b'{"jsonrpc":"2.0","id":2,"method":"ping"}\r\n'
    b"\n"
    b"not json at all\n"
    b"\xff\xfe invalid utf-8 \x00\n"
    b'[{"jsonrpc":"2.0","id":3,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]\n'
    + b'{"jsonrpc":"2.0","id":4,"method":"big","params":{"blob":"' + b"a" * 300_000 + b'"}}\n'
    + b'{"jsonrpc":"2.0","id":5,"method":"no newline at the end"}'
)


def _tee(out: Path, *command: str, stdin: bytes = b"", extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "mcptrace", "capture", "stdio", "--out", str(out), *extra, "--", *command],
                          input=stdin, capture_output=True, cwd=ROOT, env=_env(), timeout=30)


def test_stdio_tee_passes_bytes_through_unchanged_and_returns_the_exit_code(tmp_path):
    out, got, err = tmp_path / "tee.jsonl", tmp_path / "server-received.bin", tmp_path / "stderr.log"
    server = f"tee {got}; echo 'server log line' >&2; exit 7"  # the "server" echoes what it received
    r = _tee(out, "sh", "-c", server, stdin=PAYLOAD, extra=("--stderr-out", str(err), "--quiet"))
    assert r.returncode == 7
    assert got.read_bytes() == PAYLOAD  # what the server received is what the client sent
    assert r.stdout == PAYLOAD  # and what the client got back is what the server wrote
    assert r.stderr == b"server log line\n"  # stderr passed through
    assert err.read_text().endswith(" server log line\n")

    envs = _envelopes(out)
    lines = [line for line in PAYLOAD.split(b"\n") if line.strip()]
    for direction in ("client_to_server", "server_to_client"):
        mine = [e for e in envs if e["direction"] == direction]
        assert len(mine) == len(lines)
        assert [e["message"] is None for e in mine] == [False, False, True, True, False, False, False]
        assert mine[2]["raw"] == "not json at all" and mine[3]["raw"].endswith(" invalid utf-8 \x00")
        assert mine[1]["message"]["id"] == 2 and mine[4]["message"][0]["id"] == 3
        assert len(mine[5]["message"]["params"]["blob"]) == 300_000 and mine[6]["message"]["id"] == 5
    assert [e["ts"] for e in envs] == sorted(e["ts"] for e in envs)
    assert len({e["connection_id"] for e in envs}) == 1 and envs[0]["connection_id"].startswith("stdio:sh:")


def test_stdio_tee_forwards_signals_and_reports_them(tmp_path):
    out = tmp_path / "sig.jsonl"
    proc = subprocess.Popen([PY, "-m", "mcptrace", "capture", "stdio", "--out", str(out), "--", "sleep", "30"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=_env())
    import select

    ready, _, _ = select.select([proc.stderr], [], [], 15)  # the banner: the child is running
    assert ready
    assert b"recording sleep 30" in proc.stderr.readline()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 5
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()
    # a command that cannot be run
    r = _tee(out, "/nonexistent/server")
    assert r.returncode == 127 and b"cannot run" in r.stderr


def test_stdio_capture_appends_with_a_fresh_connection_id_per_process(tmp_path):
    out = tmp_path / "append.jsonl"
    out.write_bytes(b'{"earlier": "content"}\n')
    for i in (1, 2):
        r = _tee(out, "cat", stdin=b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i)
        assert r.returncode == 0
    lines = out.read_bytes().splitlines()
    assert lines[0] == b'{"earlier": "content"}' and len(lines) == 5
    envs = [json.loads(x) for x in lines[1:]]
    assert [e["message"]["id"] for e in envs] == [1, 1, 2, 2]
    assert envs[0]["connection_id"] == envs[1]["connection_id"] != envs[2]["connection_id"]


def test_http_capture_without_its_extra_says_what_to_install(tmp_path):
    # httpx made unimportable (None in sys.modules), as in an install without the capture extra
    code = """
import sys
sys.modules["httpx"] = None
import mcptrace
from mcptrace.cli import main
try:
    import mcptrace.capture.http
except mcptrace.MissingDependencyError as exc:
    print("raised:", isinstance(exc, ImportError), exc)
sys.exit(main(["capture", "http", "--upstream", "http://127.0.0.1:9", "--out", sys.argv[1]]))
"""
    r = subprocess.run([PY, "-c", code, str(tmp_path / "x.jsonl")], capture_output=True, text=True, cwd=ROOT,
                       env=_env(), timeout=60)
    assert "raised: True httpx is required for this; install it with: pip install 'mcptrace[capture]'" in r.stdout
    assert r.returncode == 2  # the CLI turns it into a usage error naming the extra
    assert "pip install 'mcptrace[capture]'" in r.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_redaction_can_be_turned_off_and_listen_is_loopback_only(tmp_path):
    import argparse

    from mcptrace.capture.options import add_http_arguments, redaction_from_args
    from mcptrace.core.redact import RedactionPolicy

    h = [(b"Authorization", b"Bearer x"), (b"X-Goog-Api-Key", b"k"), (b"Mcp-Session-Id", b"s")]
    assert RedactionPolicy().redact_headers(h) == {"authorization": "[REDACTED]", "x-goog-api-key": "[REDACTED]",
                                                   "mcp-session-id": "s"}
    assert RedactionPolicy(enabled=False).redact_headers(h)["authorization"] == "Bearer x"
    assert RedactionPolicy().redact_query("/sse?session_id=1&api_key=2") == "/sse?session_id=1&api_key=[REDACTED]"
    parser = argparse.ArgumentParser()
    add_http_arguments(parser)
    base = ["--upstream", "http://127.0.0.1:9", "--out", "x.jsonl"]
    assert redaction_from_args(parser.parse_args(base)) == RedactionPolicy()
    assert redaction_from_args(parser.parse_args([*base, "--no-redact"])) == RedactionPolicy(enabled=False)
    custom = redaction_from_args(parser.parse_args([*base, "--secret-keys", r"(?:[a-z]+-)*tenant-pin"]))
    assert custom == RedactionPolicy(secret_keys=r"(?:[a-z]+-)*tenant-pin")
    assert custom.redact_headers([(b"X-Tenant-Pin", b"1234"), (b"Authorization", b"Bearer x")]) == {
        "x-tenant-pin": "[REDACTED]", "authorization": "[REDACTED]"}
    r = subprocess.run([PY, "-m", "mcptrace", "capture", "http", "--listen", "0.0.0.0:0", "--upstream",
                        "http://127.0.0.1:9", "--out", str(tmp_path / "x.jsonl")],
                       capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=30)
    assert r.returncode == 2 and "non-loopback" in r.stderr


# ------------------------------------------------------------------------------------------------
# the client and the legacy-SSE server (run as scripts by the tests above)
# ------------------------------------------------------------------------------------------------
async def _client_main(args: Any) -> dict[str, Any]:
    import anyio
    from mcp import Client, StdioServerParameters
    from mcp.client.sse import sse_client

    if args.mode == "stdio":
        tee = ["-m", "mcptrace", "capture", "stdio", "--quiet", "--out", args.out]
        if args.stderr_out:
            tee += ["--stderr-out", args.stderr_out]
        server = [PY, "-m", "mcptrace.samples.server", "--transport", "stdio", "--service-name", "capture-test"]
        target: Any = StdioServerParameters(command=PY, args=[*tee, "--", *server], cwd=str(ROOT),
                                            env={"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                                                 "MCPTRACE_SAMPLES_OTLP_ENDPOINT":
                                                     os.environ.get("MCPTRACE_SAMPLES_OTLP_ENDPOINT", "")})
    elif args.mode == "http":
        target = args.url
    else:
        target = sse_client(args.url)

    summary: dict[str, Any] = {"ok": 0, "errors": [], "progress_callbacks": 0, "timing": {}}
    limiter = anyio.CapacityLimiter(CONCURRENCY)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        summary["progress_callbacks"] += 1

    async def one(client: Any, i: int) -> None:
        async with limiter:
            try:
                if i % 10 == 0:
                    res = await client.call_tool("long_task", {"steps": PROGRESS_STEPS}, progress_callback=on_progress)
                    good = res.content[0].text == f"done in {PROGRESS_STEPS} steps"
                elif i % 10 == 5:
                    res = await client.call_tool("search", {"query": f"q{i}"})
                    good = res.content[0].text.startswith("3 results")
                else:
                    res = await client.call_tool("divide", {"a": i, "b": 4})
                    good = float(res.content[0].text) == i / 4
                good = good and not res.is_error
            except Exception as exc:  # noqa: BLE001 - reported to the test
                summary["errors"].append(f"{i}: {exc!r}")
                return
            if good:
                summary["ok"] += 1
            else:
                summary["errors"].append(f"{i}: {res}")

    async def timing(client: Any) -> None:
        t0 = time.monotonic()
        seen: list[float] = []

        async def on_timing_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(time.monotonic() - t0)
            summary["progress_callbacks"] += 1

        res = await client.call_tool("long_task", {"steps": TIMING_STEPS}, progress_callback=on_timing_progress)
        summary["timing"] = {"first_progress": seen[0] if seen else None, "result": time.monotonic() - t0,
                             "n_progress": len(seen)}
        if res.is_error:
            summary["errors"].append(f"timing: {res}")
        else:
            summary["ok"] += 1

    async with Client(target, mode="legacy") as client:
        await client.list_tools()
        async with anyio.create_task_group() as tg:
            tg.start_soon(timing, client)
            await anyio.sleep(0.05)
            for i in range(N_CALLS):
                tg.start_soon(one, client, i)
    return summary


async def _resume_client_main(args: Any) -> dict[str, Any]:
    """An SDK client (with an Authorization header) that calls ``resumable_report`` once: the server
    closes the call's stream, the SDK resumes it with ``Last-Event-ID``. Notes its Mcp-Session-Id."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    seen: list[str] = []
    progress: list[float] = []

    async def note(response: Any) -> None:
        sid = response.headers.get("mcp-session-id")
        if sid and sid not in seen:
            seen.append(sid)

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with create_mcp_http_client(headers={"Authorization": "Bearer s3cret"}) as http:
        http.event_hooks = {"request": [], "response": [note]}
        async with Client(streamable_http_client(args.url, http_client=http), mode="legacy") as client:
            await client.list_tools()
            res = await client.call_tool("resumable_report", {"label": "t"}, progress_callback=on_progress)
    return {"text": res.content[0].text, "progress": progress, "session_id": seen[0] if seen else None}


def _sse_server(port: int) -> None:
    import uvicorn

    from mcptrace.samples.server import weather

    uvicorn.run(weather.sse_app(host="127.0.0.1"), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    import argparse

    import anyio

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    cp = sub.add_parser("client")
    cp.add_argument("mode", choices=["stdio", "http", "sse", "resume"])
    cp.add_argument("--out")
    cp.add_argument("--stderr-out")
    cp.add_argument("--url")
    sp = sub.add_parser("sse-server")
    sp.add_argument("--port", type=int, required=True)
    a = parser.parse_args()
    if a.cmd == "client":
        print(json.dumps(anyio.run(_resume_client_main if a.mode == "resume" else _client_main, a)), flush=True)
    else:
        _sse_server(a.port)


def test_stdio_tee_redacts_every_file_it_writes_but_passes_the_bytes_unchanged(tmp_path):
    out, bare, err, got = (tmp_path / n for n in ("tee.jsonl", "bare.ndjson", "stderr.log", "received.bin"))
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "deploy", "arguments": {"apiKey": "SECRET-arg-1", "url": "postgres://u:SECRET-dsn-2@db/x"},
        "_meta": {"access_token": "SECRET-meta-3", "progressToken": 7}}}
    payload = (json.dumps(call) + "\n" + "not json Authorization: Bearer SECRET-raw-4xyz\n").encode()
    server = f"tee {got}; echo 'connecting with password=SECRET-err-5' >&2"
    r = _tee(out, "sh", "-c", server, stdin=payload,
             extra=("--bare", str(bare), "--stderr-out", str(err), "--quiet"))
    assert r.returncode == 0
    assert got.read_bytes() == payload and r.stdout == payload  # the wire is never changed
    assert b"SECRET-err-5" in r.stderr  # the child's stderr passes through as it is
    for path in (out, bare, err):
        text = path.read_text(encoding="utf-8")
        assert "SECRET" not in text and "[REDACTED]" in text, (path.name, text)
    envs = _envelopes(out)
    assert envs[0]["message"]["params"]["_meta"]["progressToken"] == 7
    assert envs[0]["message"]["params"]["arguments"]["url"] == "postgres://u:[REDACTED]@db/x"
    # --no-redact keeps everything
    out2 = tmp_path / "plain.jsonl"
    _tee(out2, "sh", "-c", "cat", stdin=payload, extra=("--no-redact", "--quiet"))
    assert "SECRET-meta-3" in out2.read_text(encoding="utf-8")
