"""Render real Streamable HTTP traffic as MCP Inspector exports (protocol and network JSON).

Not made by the MCP Inspector: the inspector is a browser app we do not drive here. This
re-renders the real SDK traffic of scenario B (the ``ide-client`` talking to the sample server
through the logging proxy) in the shapes the inspector's v2 web client downloads from its
Protocol and Network views (``clients/web/src/hooks/useExportActions.ts``; entry types in
``core/mcp/types.ts``; see :mod:`mcptrace.ingest.readers.inspector`):

- the protocol export from the proxy's envelope capture ``ide_http.jsonl``, recorded the way
  ``core/mcp/messageTrackingTransport.ts`` + ``core/mcp/state/messageLogState.ts`` do: the
  client's requests with their response attached (``response``, ``duration`` in ms), the
  server's notifications and requests as entries of their own, origins ``client``/``server``; the
  client's own notifications are not tracked by the inspector and are left out; times in ms;
- the network export from the proxy's HAR of the same run (``ide_http.har``), each exchange as
  ``core/mcp/fetchTracking.ts`` records it: ``timestamp`` at the request start, ``duration`` to
  the response headers, lower-case header records, JSON bodies re-serialised compactly, the POST
  event-stream bodies as received, no body for the long-lived GET stream, entries in the order
  their response headers arrived.

Entry ids (``<ms>-<9 base-36 chars>`` in the inspector, random there) are derived from the
entry's position so that a regeneration from the same capture gives the same file.

    python -m mcptrace.samples.inspector_export data/samples/ide_http.jsonl data/har/ide_http.har data/inspector
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROTOCOL_FILE = "inspector-protocol-weather-http.json"
NETWORK_FILE = "inspector-network-weather-http.json"

# core/mcp/fetchTracking.ts SENSITIVE_BODY_FIELDS: string values of these keys are masked in bodies
_SENSITIVE = {"client_secret", "code", "refresh_token", "access_token", "id_token", "code_verifier",
              "client_assertion", "assertion", "password", "token"}


def _ms_iso(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _floor_ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def _entry_id(dt: datetime, salt: str) -> str:
    ms = int(_floor_ms(dt).timestamp() * 1000)
    digest = int(hashlib.sha256(salt.encode()).hexdigest(), 16)
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    tail = ""
    for _ in range(9):
        digest, r = divmod(digest, 36)
        tail += chars[r]
    return f"{ms}-{tail}"


def _dump(entries: list[dict], path: Path) -> None:
    path.write_text(json.dumps(entries, indent=2, ensure_ascii=False), encoding="utf-8")


def protocol_entries(envelope_path: str | Path) -> list[dict]:
    entries: list[dict] = []
    pending: dict[Any, dict] = {}
    pending_t: dict[Any, datetime] = {}
    for n, line in enumerate(Path(envelope_path).read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        env = json.loads(line)
        msg = env["message"]
        if not isinstance(msg, dict):
            continue  # JSON-RPC batches: not produced by the SDK transports
        t = _floor_ms(datetime.fromisoformat(env["ts"]))
        client = env["direction"] == "client_to_server"
        is_request = "method" in msg and "id" in msg
        is_response = "method" not in msg and ("result" in msg or "error" in msg)
        if client and not is_request:
            continue  # MessageTrackingTransport.send tracks only the inspector's requests
        if is_response and msg.get("id") in pending:
            req = pending.pop(msg["id"])
            req["response"] = msg
            req["duration"] = int((t - pending_t.pop(msg["id"])).total_seconds() * 1000)
            continue
        entry = {"id": _entry_id(t, f"protocol-{n}"), "timestamp": _ms_iso(t),
                 "direction": "request" if is_request else "response" if is_response else "notification",
                 "origin": "client" if client else "server", "message": msg}
        entries.append(entry)
        if is_request:
            pending[msg["id"]] = entry
            pending_t[msg["id"]] = t
    return entries


def _redact(value: Any) -> Any:
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, dict):
        return {k: "[REDACTED]" if k.lower() in _SENSITIVE and isinstance(v, str) else _redact(v)
                for k, v in value.items()}
    return value


def _body(text: str | None) -> str | None:
    """fetchTracking.ts redactBody: a JSON object/array body is re-serialised (compact) with secrets masked."""
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, dict | list):
        return json.dumps(_redact(parsed), ensure_ascii=False, separators=(",", ":"))
    return text


def _is_mcp(req: dict) -> bool:
    names = {h["name"].lower() for h in req.get("headers", [])}
    if names & {"mcp-session-id", "mcp-protocol-version"}:
        return True
    try:
        body = json.loads((req.get("postData") or {}).get("text") or "null")
    except ValueError:
        return False
    return isinstance(body, dict | list) and "jsonrpc" in json.dumps(body)[:200]


def network_entries(har_path: str | Path) -> list[dict]:
    har = json.loads(Path(har_path).read_text(encoding="utf-8"))
    rows = []
    for n, e in enumerate(har["log"]["entries"]):
        started = datetime.fromisoformat(e["startedDateTime"])
        req, resp = e["request"], e["response"]
        if not _is_mcp(req):
            continue  # e.g. the generator's readiness probe: the inspector's transport never sends it
        wait = e.get("timings", {}).get("wait") or 0
        headers_at = started + timedelta(milliseconds=max(wait, 0))
        entry: dict[str, Any] = {
            "id": _entry_id(started, f"network-{n}"),
            "timestamp": _ms_iso(started),
            "method": req["method"],
            "url": req["url"],
            "requestHeaders": {h["name"].lower(): h["value"] for h in req.get("headers", [])},
        }
        body = _body((req.get("postData") or {}).get("text"))
        if body is not None:
            entry["requestBody"] = body
        if resp.get("status"):
            rh = {h["name"].lower(): h["value"] for h in resp.get("headers", [])}
            entry["responseStatus"] = resp["status"]
            entry["responseStatusText"] = resp.get("statusText", "")
            entry["responseHeaders"] = rh
            ctype = rh.get("content-type", "")
            long_lived = req["method"] == "GET" and ("text/event-stream" in ctype or "application/x-ndjson" in ctype)
            text = (resp.get("content") or {}).get("text")
            if not long_lived and text is not None:
                entry["responseBody"] = _body(text) if "text/event-stream" not in ctype else text
            entry["duration"] = int(max(wait, 0))
        else:
            entry["error"] = resp.get("_error") or "fetch failed"
            entry["duration"] = int(max(e.get("time") or 0, 0))
        entry["category"] = "transport"
        rows.append((headers_at if resp.get("status") else started, n, entry))
    rows.sort(key=lambda r: (r[0], r[1]))  # FetchRequestLogState appends when the headers arrive
    return [r[2] for r in rows]


def render(envelope_path: str | Path, har_path: str | Path, out_dir: str | Path) -> dict[str, int]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    protocol = protocol_entries(envelope_path)
    network = network_entries(har_path)
    _dump(protocol, out / PROTOCOL_FILE)
    _dump(network, out / NETWORK_FILE)
    return {PROTOCOL_FILE: len(protocol), NETWORK_FILE: len(network)}


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 4:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    print(render(sys.argv[1], sys.argv[2], sys.argv[3]))
