"""Scale real envelope captures up to N messages by repeating them.

The source files (by default the captured samples ``data/samples/agent_stdio.jsonl`` and
``data/samples/ide_http.jsonl``) are read in order as one *unit*; the unit is written again
and again until ``n_messages`` lines are out (the last copy is cut short). Copy 0 is the
original verbatim; copy k > 0 gets fresh values so copies never correlate with each other:

* ``connection_id``                                  -> ``<id>~k``
* ``http.{request,response}_headers["mcp-session-id"]`` -> ``<sid>~k`` (header name matched case-insensitively)
* ``_meta["anthropic/session"]`` (in params and result)  -> ``<key>~k``
* the trace-id of every traceparent (``_meta.traceparent`` and an HTTP ``traceparent`` header)
  -> a deterministic fresh 32-hex id per (copy, original trace-id); parent-id and flags are kept
* ``ts`` -> ``ts + k * (span of the unit + 1 s)``, so copies follow each other in time.

Everything else (other ``_meta`` keys, SSE event ids, JSON-RPC ids, line order, parallel
turns) is kept as is. The output is deterministic.

    .venv/bin/python benchmarks/scale.py out/bench/envelope_100k.jsonl --messages 100000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOURCES = [os.path.join(ROOT, "data", "samples", "agent_stdio.jsonl"),
                   os.path.join(ROOT, "data", "samples", "ide_http.jsonl")]
SESSION_META_KEY = "anthropic/session"


def _parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _format_ts(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fresh_trace_id(trace_id: str, copy: int) -> str:
    h = hashlib.blake2b(f"{copy}:{trace_id}".encode(), digest_size=16).hexdigest()
    return h if h != "0" * 32 else "1" * 32  # all-zero is an invalid trace-id


def _traceparent(tp: object, copy: int) -> object:
    if not isinstance(tp, str):
        return tp
    parts = tp.split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return tp  # not a traceparent we understand: keep it (it is evidence for a gap)
    parts[1] = _fresh_trace_id(parts[1].lower(), copy)
    return "-".join(parts)


def _rewrite_message(msg: object, copy: int) -> None:
    for m in msg if isinstance(msg, list) else [msg]:
        if not isinstance(m, dict):
            continue
        for part in ("params", "result"):
            meta = m.get(part, {}).get("_meta") if isinstance(m.get(part), dict) else None
            if not isinstance(meta, dict):
                continue
            if isinstance(meta.get(SESSION_META_KEY), str):
                meta[SESSION_META_KEY] = f"{meta[SESSION_META_KEY]}~{copy}"
            if "traceparent" in meta:
                meta["traceparent"] = _traceparent(meta["traceparent"], copy)


def _rewrite_http(http: object, copy: int) -> None:
    if not isinstance(http, dict):
        return
    for side in ("request_headers", "response_headers"):
        headers = http.get(side)
        if not isinstance(headers, dict):
            continue
        for name, value in headers.items():
            low = name.lower()
            if low == "mcp-session-id" and isinstance(value, str):
                headers[name] = f"{value}~{copy}"
            elif low == "traceparent":
                headers[name] = _traceparent(value, copy)


def scale_envelope(src_paths: list[str], out_path: str, n_messages: int) -> int:
    """Write ``n_messages`` envelope lines to ``out_path`` made of renumbered copies of ``src_paths``.

    Returns the number of lines written.
    """
    unit = [line for p in src_paths for line in open(p, encoding="utf-8").read().splitlines() if line.strip()]
    if not unit:
        raise ValueError("no envelope lines in the sources")
    times = [_parse_ts(json.loads(line)["ts"]) for line in unit]
    step = (max(times) - min(times)) + timedelta(seconds=1)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    written = 0
    with open(out_path, "w", encoding="utf-8") as out:
        copy = 0
        while written < n_messages:
            for line, t in zip(unit, times):
                if written == n_messages:
                    break
                if copy == 0:
                    out.write(line + "\n")
                else:
                    env = json.loads(line)
                    env["ts"] = _format_ts(t + copy * step)
                    if isinstance(env.get("connection_id"), str):
                        env["connection_id"] = f"{env['connection_id']}~{copy}"
                    _rewrite_http(env.get("http"), copy)
                    _rewrite_message(env.get("message"), copy)
                    out.write(json.dumps(env, separators=(",", ":"), ensure_ascii=False) + "\n")
                written += 1
            copy += 1
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output JSONL path")
    ap.add_argument("--messages", type=int, default=100_000, help="lines to write (default 100000)")
    ap.add_argument("sources", nargs="*", default=DEFAULT_SOURCES, help="envelope JSONL files to repeat")
    args = ap.parse_args()
    n = scale_envelope(args.sources, args.out, args.messages)
    print(f"wrote {n} messages to {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
