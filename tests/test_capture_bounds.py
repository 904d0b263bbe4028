"""``mcptrace capture http`` under load and abuse, with real processes (issue #15).

The upstream is this file run as a script (``python tests/test_capture_bounds.py upstream PORT``): the
official SDK's Streamable HTTP server (``MCPServer``, stateless, SSE responses) at ``/mcp``, plus
``/upload`` (reads a request body to its end and says how long it was) and ``/bomb`` (a gzip body of
about 1 MiB that expands to 1 GiB of ``text/event-stream``). The proxy is ``python -m mcptrace capture
http`` in its own process; its peak RSS is read from ``/proc/<pid>/status`` (``VmHWM``).

Why 500 MB: the proxy holds at most ``--max-body`` (16 MiB) of a request body read ahead, a copy
handed to the HAR writer, at most 16 MiB of decoded response for the bomb and its HAR copy with its
redacted text, plus the interpreter, uvicorn, httpx and 200 connections' buffers (about 80 MB
measured idle): a few hundred MB at worst, an order of magnitude under the 4.9 GB measured before.
"""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

N_CLIENTS = 200
CALLS_PER_CLIENT = 3
UPLOAD_BYTES = 1 << 30
BOMB_BYTES = 1 << 30
RSS_BOUND_KB = 500 * 1024
PROTOCOL = "2025-06-18"
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream",
           "mcp-protocol-version": PROTOCOL}


# ------------------------------------------------------------------------------------------------
# the upstream (script side)
# ------------------------------------------------------------------------------------------------
def _bomb_block() -> bytes:
    event = ('data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"'
             + "x" * 1000 + '","access_token":"sk-bomb-secret"}}\n\n').encode()
    return (event * ((1 << 20) // len(event) + 1))[: 1 << 20]


def _gzip_bomb(total: int) -> list[bytes]:
    """A gzip member decoding to ``total`` bytes of SSE (whole events, repeated), built from one
    compressed 1 MiB segment repeated (full flushes make the segments independent)."""
    block = _bomb_block()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    n = total // len(block)
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    tail = c.flush(zlib.Z_FINISH) + crc.to_bytes(4, "little") + (n * len(block) & 0xFFFFFFFF).to_bytes(4, "little")
    return [header] + [segment] * n + [tail]


def run_upstream(port: int, bomb_bytes: int = BOMB_BYTES) -> None:
    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    server = MCPServer("bounds", log_level="WARNING")

    @server.tool()
    def echo(text: str, api_key: str = "") -> str:
        """Echo ``text``."""
        return text

    app = server.streamable_http_app(stateless_http=True)
    bomb = _gzip_bomb(bomb_bytes)

    async def upload(request: Request) -> JSONResponse:
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        return JSONResponse({"jsonrpc": "2.0", "id": "upload", "error": {"code": -32700, "message": "parse error",
                                                                          "data": {"bytes": n}}})

    async def send_bomb(request: Request) -> StreamingResponse:
        await request.body()

        async def gen():
            for piece in bomb:
                yield piece

        return StreamingResponse(gen(), media_type="text/event-stream",
                                 headers={"content-encoding": "gzip", "x-bomb-bytes": str(sum(map(len, bomb)))})

    async def peer(request: Request) -> JSONResponse:
        return JSONResponse({"port": request.client.port})

    app.router.routes[0:0] = [Route("/upload", upload, methods=["POST"]), Route("/bomb", send_bomb, methods=["POST"]),
                              Route("/peer", peer, methods=["POST"])]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ------------------------------------------------------------------------------------------------
# the test
# ------------------------------------------------------------------------------------------------
import pytest
from test_capture import Proxy, _env, _free_port, _stop, _wait_http


def _vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(key)


async def _drive(url: str) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=N_CLIENTS + 10, max_keepalive_connections=N_CLIENTS + 10)
    out: dict = {"answered": 0, "bad": []}
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=limits, trust_env=False) as http:

        async def client(i: int) -> None:
            for k in range(CALLS_PER_CLIENT):
                rid = f"c{i}-{k}"
                body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": rid, "api_key": f"sk-live-{rid}"},
                                   "_meta": {"access_token": f"tok-{rid}"}}}
                r = await http.post(url + "/mcp", json=body, headers=HEADERS)
                if r.status_code == 200 and f'"id":"{rid}"' in r.text.replace(" ", "") and rid in r.text:
                    out["answered"] += 1
                else:
                    out["bad"].append((rid, r.status_code, r.text[:300]))

        async def upload() -> None:
            chunk = b"x" * (1 << 20)

            async def gen():
                for _ in range(UPLOAD_BYTES // len(chunk)):
                    yield chunk

            t0 = time.monotonic()
            r = await http.post(url + "/upload", content=gen(), timeout=httpx.Timeout(120.0),
                                headers={**HEADERS, "content-length": str(UPLOAD_BYTES)})
            out["upload"] = (r.status_code, r.json(), time.monotonic() - t0)

        async def bomb() -> None:
            t0 = time.monotonic()
            body = {"jsonrpc": "2.0", "id": "bomb", "method": "tools/call", "params": {"name": "bomb"}}
            async with http.stream("POST", url + "/bomb", json=body, headers=HEADERS) as r:
                n = 0
                async for chunk in r.aiter_raw():
                    n += len(chunk)
                out["bomb"] = (r.status_code, n, int(r.headers["x-bomb-bytes"]), time.monotonic() - t0)

        t0 = time.monotonic()
        await asyncio.gather(upload(), bomb(), *(client(i) for i in range(N_CLIENTS)))
        out["elapsed"] = time.monotonic() - t0
    return out


def _upstream(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = open(tmp_path / "upstream.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "upstream", str(port), *args], cwd=ROOT,
                            env=_env(), stdout=log, stderr=log, start_new_session=True)
    log.close()
    _wait_http(f"http://127.0.0.1:{port}/", proc, timeout=60)
    return proc, f"http://127.0.0.1:{port}"


def test_cut_bodies_redaction_and_idle_timeouts(tmp_path):
    """--max-body 1K: a longer request is answered, recorded cut with its size, and the capture loads;
    secrets in bodies are redacted in the JSONL and the HAR (0600); trickling clients are cut off; a
    connection to the upstream is reused at once but not after it was idle longer than
    ``UPSTREAM_KEEPALIVE_S`` (the upstream may be closing it then)."""
    from mcptrace.capture.http import UPSTREAM_KEEPALIVE_S
    import socket

    import httpx

    import mcptrace

    upstream, url = _upstream(tmp_path, str(1 << 20))
    out, har = tmp_path / "cut.jsonl", tmp_path / "cut.har"
    proxy = Proxy(tmp_path, url, out, "--har", str(har), "--max-body", "1K", "--idle-timeout", "1")
    try:
        big = {"jsonrpc": "2.0", "id": "big", "method": "tools/call",
               "params": {"name": "echo", "arguments": {"api_key": "sk-live-big", "text": "y" * 3000}}}
        small = {"jsonrpc": "2.0", "id": "small", "method": "tools/call",
                 "params": {"name": "echo", "arguments": {"text": "hi", "api_key": "sk-live-small"},
                            "_meta": {"access_token": "tok-small"}}}
        for body in (big, small):
            r = httpx.post(proxy.url + "/mcp", json=body, headers=HEADERS, trust_env=False, timeout=30)
            assert r.status_code == 200 and f'"id":"{body["id"]}"' in r.text
        # the upstream sees the proxy's port: the same for a request right after, a new one after the expiry
        ports = []
        for pause in (0, 0, UPSTREAM_KEEPALIVE_S + 0.5):
            time.sleep(pause)
            ports.append(httpx.post(proxy.url + "/peer", json={}, trust_env=False, timeout=30).json()["port"])
        assert ports[0] == ports[1] != ports[2], ports
        host, port = proxy.url.removeprefix("http://").split(":")
        for head, want in ((b"POST /mcp HTTP/1.1\r\nHost: x\r\n", b""),  # headers that never end
                           (b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", b"408")):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                t0 = time.monotonic()
                sock.sendall(head)
                got = sock.recv(100)
                assert want in got and time.monotonic() - t0 < 5, got
    finally:
        stopped = proxy.stop()
        _stop(upstream)
    assert stopped == 0
    text = out.read_text(encoding="utf-8")
    assert "sk-live" not in text and "tok-small" not in text and "[REDACTED]" in text
    envs = [json.loads(line) for line in text.splitlines()]
    (cut,) = [e for e in envs if "body_truncated" in e["http"]]
    assert cut["message"] is None and cut["raw"].startswith('{"jsonrpc"') and cut["http"]["body_truncated"]["bytes"] > 3000
    for path in (out, har):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    har_text = har.read_text(encoding="utf-8")
    assert "sk-live" not in har_text and "tok-small" not in har_text
    entries = json.loads(har_text)["log"]["entries"]
    assert any("truncated" in (x["request"].get("postData") or {}).get("comment", "") for x in entries)
    ws = mcptrace.load(out)
    try:
        assert ws.sql("SELECT count(*) FROM rejects").rows()[0][0] >= 1  # the cut request
        assert ws.sql("SELECT status FROM calls WHERE method = 'tools/call'").rows() == [("ok",)]  # the small one
    finally:
        ws.close()


@pytest.mark.slow
def test_proxy_bounded_under_load_upload_and_gzip_bomb(tmp_path):
    upstream, url = _upstream(tmp_path)
    out, har = tmp_path / "cap.jsonl", tmp_path / "cap.har"
    proxy = None
    try:
        proxy = Proxy(tmp_path, url, out, "--har", str(har))
        t0 = time.monotonic()
        result = asyncio.run(_drive(proxy.url))
        hwm = _vm(proxy.proc.pid, "VmHWM")
        print(f"\nproxy VmHWM {hwm / 1024:.0f} MB; drive {time.monotonic() - t0:.1f} s; upload {result['upload']}; "
              f"bomb {result['bomb']}", file=sys.stderr)
    finally:
        stopped = proxy.stop() if proxy is not None else 0
        _stop(upstream)
    assert stopped == 0, proxy.log.read_text()

    assert result["bad"] == [] and result["answered"] == N_CLIENTS * CALLS_PER_CLIENT
    status, reply, _t = result["upload"]
    assert status == 200 and reply["error"]["data"]["bytes"] == UPLOAD_BYTES  # all of it went through
    status, got, sent, _t = result["bomb"]
    assert status == 200 and got == sent  # the compressed bytes reached the client unchanged
    assert hwm < RSS_BOUND_KB, f"proxy peak RSS {hwm} kB"

    for path in (out, har):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    text = out.read_text(encoding="utf-8")
    assert "sk-live-" not in text and "tok-c" not in text and "sk-bomb-secret" not in text  # redacted
    envs = [json.loads(line) for line in text.splitlines()]
    requests: Counter = Counter()
    responses: Counter = Counter()
    for e in envs:
        m = e["message"]
        if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"].startswith("c"):
            (requests if e["direction"] == "client_to_server" else responses)[m["id"]] += 1
    expected = {f"c{i}-{k}" for i in range(N_CLIENTS) for k in range(CALLS_PER_CLIENT)}
    assert set(requests) == expected and set(responses) == expected
    assert set(requests.values()) == {1} and set(responses.values()) == {1}
    ups = [e for e in envs if e["http"]["path"] == "/upload" and e["direction"] == "client_to_server"]
    assert len(ups) == 1 and ups[0]["http"]["body_truncated"] == {"bytes": UPLOAD_BYTES}
    assert ups[0]["message"] is None and len(ups[0]["raw"]) <= 4096
    capped = [e for e in envs if "body_truncated" in e["http"].get("error", "")]
    assert len(capped) == 1 and capped[0]["http"]["body_truncated"]["decoded_bytes"] == 16 << 20

    doc = json.loads(har.read_text(encoding="utf-8"))
    entries = doc["log"]["entries"]
    up = next(x for x in entries if x["request"]["url"].endswith("/upload"))
    assert up["request"]["bodySize"] == UPLOAD_BYTES and "truncated" in up["request"]["postData"]["comment"]
    assert len(up["request"]["postData"]["text"]) == 16 << 20
    bomb = next(x for x in entries if x["request"]["url"].endswith("/bomb"))
    assert "body_truncated" in bomb["response"]["content"]["comment"]
    assert "sk-bomb-secret" not in bomb["response"]["content"]["text"]

    db = tmp_path / "cap.duckdb"
    r = subprocess.run([sys.executable, "-m", "mcptrace", "load", "--db", str(db), str(out)], check=False,
                       cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


if __name__ == "__main__":
    if sys.argv[1:2] == ["upstream"]:
        run_upstream(int(sys.argv[2]), *(int(a) for a in sys.argv[3:4]))
    else:
        sys.exit(f"usage: {sys.argv[0]} upstream PORT")
