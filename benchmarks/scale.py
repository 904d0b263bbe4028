"""Scale real captures up to N messages and M spans by repeating them.

The envelope sources (by default the captured samples ``data/samples/agent_stdio.jsonl``,
``ide_http.jsonl`` and ``plain_stdio.jsonl``: parallel turns with ``anthropic/session``, Streamable
HTTP with SSE blocks, a host without tracing whose server dies mid-call) are read in order as one
*unit*; the unit is written again and again until ``n_messages`` lines are out (the last copy is
cut short). The OTLP/JSON trace dump (``data/samples/traces.otlp.jsonl``, Collector file-exporter
lines) is repeated the same way, span by span, until ``n_spans`` spans are out. Copy 0 is the
original verbatim; copy k > 0 gets fresh values so copies never correlate with each other:

* ``connection_id``                                  -> ``<id>~k``
* ``http.{request,response}_headers["mcp-session-id"]`` -> ``<sid>~k`` (header name matched case-insensitively)
* ``_meta["anthropic/session"]`` (in params and result)  -> ``<key>~k``
* the trace-id of every traceparent (``_meta.traceparent`` and an HTTP ``traceparent`` header)
  -> a deterministic fresh 32-hex id per (copy, original trace-id); parent-id and flags are kept
* ``ts`` -> ``ts + k * (span of the unit + 61 s)``, so copies follow each other in time, further
  apart than the 60 s reconnect window (no copy looks like a reconnect of the one before).
* a traceparent that is not valid W3C (all-zero trace-id, bad version ...) is kept verbatim:
  it is evidence for an ``invalid_traceparent`` gap in every copy.
* spans: ``traceId`` (and links' ``traceId``) -> the same fresh id as the messages of copy k, span
  ids kept (a trace-id is unique per copy, so (trace-id, span-id) is), ``startTimeUnixNano`` /
  ``endTimeUnixNano`` / event times shifted by the same step, ``gen_ai.conversation.id`` and
  ``mcp.session.id`` attributes suffixed ``~k`` like the session keys.

Everything else (other ``_meta`` keys, SSE event ids, JSON-RPC ids, line order, parallel
turns) is kept as is. The output is deterministic.

With ``keep_session_key=True`` the copies form ONE logical session instead: the
``_meta["anthropic/session"]`` value and the span attribute ``gen_ai.conversation.id`` keep their
original value in every copy, while everything else (connection ids, ``Mcp-Session-Id``,
``mcp.session.id``, trace ids, times) is still fresh per copy. Repeating the agent sample this way
gives one host conversation with many turns (and a reconnect per copy, carried by the key);
:func:`scale_session` writes such a capture with about ``n_calls`` calls.

The HTTP shape (``shape="http"``) repeats real captures of Streamable HTTP traffic as gateways
record it instead: the incident captures of a resumable server (SSE priming events with ``id:`` and
``retry:``, GET streams, ``Last-Event-ID`` resumptions, ``DELETE``), of two look-alike clients losing
their server (resets, failed resumptions, upstream errors) and of three stateless 2026-07-28 clients,
with request and response headers on every envelope and their spans. Their times are first aligned to
one start (each capture and its spans shifted alike), then copied as above; ``exchange_id``,
``Mcp-Client-Session-Id`` and the ``_meta`` session keys of every host are made fresh per copy too.

    .venv/bin/python benchmarks/scale.py out/bench --messages 1000000 --spans 1000000 [--shape http]
    .venv/bin/python benchmarks/scale.py out/bench --one-session-calls 50000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import zlib
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOURCES = [os.path.join(ROOT, "data", "samples", "agent_stdio.jsonl"),
                   os.path.join(ROOT, "data", "samples", "ide_http.jsonl"),
                   os.path.join(ROOT, "data", "samples", "plain_stdio.jsonl")]
DEFAULT_TRACES = os.path.join(ROOT, "data", "samples", "traces.otlp.jsonl")
#: the agent capture: parallel turns under one ``anthropic/session`` key (the source of :func:`scale_session`)
AGENT_SOURCE = os.path.join(ROOT, "data", "samples", "agent_stdio.jsonl")
#: span attributes that carry a session key: suffixed per copy like ``_meta`` session keys
SESSION_ATTRIBUTES = ("gen_ai.conversation.id", "mcp.session.id")
#: span attributes that carry the logical session (the conversation): kept with ``keep_session_key``
LOGICAL_SESSION_ATTRIBUTES = ("gen_ai.conversation.id",)
SESSION_META_KEY = "anthropic/session"
#: every ``_meta`` session key the copies carry: suffixed per copy (``keep_session_key`` keeps SESSION_META_KEY)
SESSION_META_KEYS = (SESSION_META_KEY, "openai/session", "vscode.conversationId")
#: the HTTP shape: incident captures of Streamable HTTP traffic and their spans (see the module docstring)
HTTP_CAPTURES = [os.path.join(ROOT, "data", "incidents", f"{n}.jsonl")
                 for n in ("resumable_http_server", "lookalike_clients_reconnect", "stateless_three_clients")]
SHAPES = ("stdio", "http")
#: pause between copies: longer than the reconnect window (mcptrace.analysis.rebuild.RECONNECT_WITHIN_S,
#: 60 s), so a copy whose server died does not look like one client reconnecting in the next copy
COPY_PAUSE = timedelta(seconds=61)


def _parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _format_ts(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fresh_trace_id(trace_id: str, copy: int) -> str:
    h = hashlib.blake2b(f"{copy}:{trace_id}".encode(), digest_size=16).hexdigest()
    return h if h != "0" * 32 else "1" * 32  # all-zero is an invalid trace-id


_VALID_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-.*)?")


def _traceparent(tp: object, copy: int) -> object:
    if not isinstance(tp, str) or not _VALID_TRACEPARENT.fullmatch(tp):
        return tp  # not a valid W3C traceparent: kept verbatim, it is evidence for a gap
    parts = tp.split("-")
    parts[1] = _fresh_trace_id(parts[1], copy)
    return "-".join(parts)


def _rewrite_message(msg: object, copy: int, keep_session_key: bool = False) -> None:
    for m in msg if isinstance(msg, list) else [msg]:
        if not isinstance(m, dict):
            continue
        for part in ("params", "result"):
            meta = m.get(part, {}).get("_meta") if isinstance(m.get(part), dict) else None
            if not isinstance(meta, dict):
                continue
            for key in SESSION_META_KEYS:
                if isinstance(meta.get(key), str) and not (keep_session_key and key == SESSION_META_KEY):
                    meta[key] = f"{meta[key]}~{copy}"
            if "traceparent" in meta:
                meta["traceparent"] = _traceparent(meta["traceparent"], copy)


def _rewrite_http(http: object, copy: int) -> None:
    if not isinstance(http, dict):
        return
    if isinstance(http.get("exchange_id"), str):
        http["exchange_id"] = f"{http['exchange_id']}~{copy}"
    for side in ("request_headers", "response_headers"):
        headers = http.get(side)
        if not isinstance(headers, dict):
            continue
        for name, value in headers.items():
            low = name.lower()
            if low in ("mcp-session-id", "mcp-client-session-id") and isinstance(value, str):
                headers[name] = f"{value}~{copy}"
            elif low == "traceparent":
                headers[name] = _traceparent(value, copy)


def _envelope_unit(src_paths: list[str]) -> tuple[list[str], list[datetime], timedelta]:
    unit = [line for p in src_paths for line in open(p, encoding="utf-8").read().splitlines() if line.strip()]
    if not unit:
        raise ValueError("no envelope lines in the sources")
    times = [_parse_ts(json.loads(line)["ts"]) for line in unit]
    return unit, times, (max(times) - min(times)) + COPY_PAUSE


def scale_envelope(src_paths: list[str], out_path: str, n_messages: int, *, keep_session_key: bool = False) -> int:
    """Write ``n_messages`` envelope lines to ``out_path`` made of renumbered copies of ``src_paths``.

    ``keep_session_key``: leave ``_meta["anthropic/session"]`` unsuffixed, so every copy belongs
    to the same logical session. Returns the number of lines written.
    """
    unit, times, step = _envelope_unit(src_paths)
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
                    _rewrite_message(env.get("message"), copy, keep_session_key)
                    out.write(json.dumps(env, separators=(",", ":"), ensure_ascii=False) + "\n")
                written += 1
            copy += 1
    return written


def _shift_span_times(span: dict, shift_ns: int) -> None:
    """Move a span's start, end and event times by ``shift_ns`` nanoseconds."""
    for key in ("startTimeUnixNano", "endTimeUnixNano"):
        if key in span:
            span[key] = str(int(span[key]) + shift_ns)
    for event in span.get("events") or []:
        if "timeUnixNano" in event:
            event["timeUnixNano"] = str(int(event["timeUnixNano"]) + shift_ns)


def _rewrite_span(span: dict, copy: int, shift_ns: int, keep_session_key: bool = False) -> None:
    if isinstance(span.get("traceId"), str) and len(span["traceId"]) == 32:
        span["traceId"] = _fresh_trace_id(span["traceId"].lower(), copy)
    _shift_span_times(span, shift_ns)
    for link in span.get("links") or []:
        if isinstance(link.get("traceId"), str) and len(link["traceId"]) == 32:
            link["traceId"] = _fresh_trace_id(link["traceId"].lower(), copy)
    for attr in span.get("attributes") or []:
        value = attr.get("value") or {}
        if keep_session_key and attr.get("key") in LOGICAL_SESSION_ATTRIBUTES:
            continue
        if attr.get("key") in SESSION_ATTRIBUTES and isinstance(value.get("stringValue"), str):
            value["stringValue"] = f"{value['stringValue']}~{copy}"


def scale_spans(trace_path: str, out_path: str, n_spans: int, step: timedelta, *,
                keep_session_key: bool = False) -> int:
    """Write OTLP/JSON lines holding ``n_spans`` spans: copies of ``trace_path`` shifted by ``step``.

    Each output line is one source line (one ``ExportTraceServiceRequest``) of copy k; the last
    line is cut short so exactly ``n_spans`` spans are written. ``keep_session_key``: leave
    ``gen_ai.conversation.id`` unsuffixed (see :func:`scale_envelope`). Returns the number of spans.
    """
    unit = [json.loads(line) for line in open(trace_path, encoding="utf-8") if line.strip()]
    per_unit = sum(len(ss.get("spans", [])) for req in unit for rs in req["resourceSpans"] for ss in rs["scopeSpans"])
    if not per_unit:
        raise ValueError(f"{trace_path}: no spans")
    step_ns = int(step.total_seconds() * 1e6) * 1000
    written = 0
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as out:
        copy = 0
        while written < n_spans:
            for req in unit:
                if written == n_spans:
                    break
                req = json.loads(json.dumps(req))  # a fresh copy to rewrite
                for rs in req["resourceSpans"]:
                    for ss in rs["scopeSpans"]:
                        spans = ss.get("spans", [])[: n_spans - written]
                        ss["spans"] = spans
                        if copy:
                            for span in spans:
                                _rewrite_span(span, copy, copy * step_ns, keep_session_key)
                        written += len(spans)
                out.write(json.dumps(req, separators=(",", ":"), ensure_ascii=False) + "\n")
            copy += 1
    return written


def aligned_unit(captures: list[str], out_dir: str) -> tuple[str, str]:
    """One envelope file and one OTLP file holding ``captures`` (each ``X.jsonl`` with its spans in
    ``X.otlp.jsonl``), every capture and its spans shifted so that all start when the first one does.
    Written as ``unit_http.jsonl`` / ``unit_http.otlp.jsonl`` in ``out_dir`` (reused when present)."""
    env_out = os.path.join(out_dir, "unit_http.jsonl")
    span_out = os.path.join(out_dir, "unit_http.otlp.jsonl")
    if os.path.exists(env_out) and os.path.exists(span_out):
        return env_out, span_out
    os.makedirs(out_dir, exist_ok=True)
    base = None
    with open(env_out + ".part", "w", encoding="utf-8") as env_f, open(span_out + ".part", "w", encoding="utf-8") as span_f:
        for path in captures:
            lines = [json.loads(x) for x in open(path, encoding="utf-8") if x.strip()]
            start = min(_parse_ts(e["ts"]) for e in lines)
            base = base or start
            delta = base - start
            shift_ns = int(delta.total_seconds() * 1e6) * 1000
            for e in lines:
                e["ts"] = _format_ts(_parse_ts(e["ts"]) + delta)
                env_f.write(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n")
            trace_path = path[: -len(".jsonl")] + ".otlp.jsonl"
            for line in open(trace_path, encoding="utf-8"):
                if not line.strip():
                    continue
                req = json.loads(line)
                for rs in req["resourceSpans"]:
                    for ss in rs["scopeSpans"]:
                        for span in ss.get("spans", []):
                            _shift_span_times(span, shift_ns)
                span_f.write(json.dumps(req, separators=(",", ":"), ensure_ascii=False) + "\n")
    os.replace(env_out + ".part", env_out)
    os.replace(span_out + ".part", span_out)
    return env_out, span_out


def scale_capture(out_dir: str, n_messages: int, n_spans: int, sources: list[str] | None = None,
                  traces: str = DEFAULT_TRACES, *, shape: str = "stdio") -> tuple[str, str]:
    """Write ``envelope_<N>.jsonl`` and ``traces_<M>.otlp.jsonl`` into ``out_dir`` (reused when present);
    with ``shape="http"`` copies of the HTTP captures (:data:`HTTP_CAPTURES`, aligned by
    :func:`aligned_unit`) as ``envelope_http_<N>.jsonl`` and ``traces_http_<M>.otlp.jsonl``.

    Copy k of the spans carries the trace-ids, session keys and time shift of copy k of the messages.
    Returns the two paths.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape {shape!r}: one of {SHAPES}")
    tag = "" if shape == "stdio" else f"{shape}_"
    if shape == "http":
        unit_env, traces = aligned_unit(HTTP_CAPTURES, out_dir)
        sources = [unit_env]
    sources = sources or DEFAULT_SOURCES
    env_path = os.path.join(out_dir, f"envelope_{tag}{n_messages}.jsonl")
    span_path = os.path.join(out_dir, f"traces_{tag}{n_spans}.otlp.jsonl")
    if not os.path.exists(env_path):
        scale_envelope(sources, env_path + ".part", n_messages)
        os.replace(env_path + ".part", env_path)
    if not os.path.exists(span_path):
        scale_spans(traces, span_path + ".part", n_spans, _envelope_unit(sources)[2])
        os.replace(span_path + ".part", span_path)
    return env_path, span_path


def _unit_counts(src_paths: list[str], trace_path: str) -> tuple[int, int, int]:
    """(envelope lines, JSON-RPC requests, spans) in one copy of the unit."""
    unit = _envelope_unit(src_paths)[0]
    n_requests = 0
    for line in unit:
        msg = json.loads(line).get("message")
        for m in msg if isinstance(msg, list) else [msg]:
            if isinstance(m, dict) and "method" in m and "id" in m:
                n_requests += 1
    n_spans = sum(len(ss.get("spans", [])) for line in open(trace_path, encoding="utf-8") if line.strip()
                  for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"])
    return len(unit), n_requests, n_spans


def scale_session(out_dir: str, n_calls: int, source: str = AGENT_SOURCE,
                  traces: str = DEFAULT_TRACES) -> tuple[str, str]:
    """Write one logical session of at least ``n_calls`` calls: whole copies of ``source`` (the
    agent capture) and of ``traces`` with ``keep_session_key=True``, as
    ``session_<n_calls>.jsonl`` and ``session_<n_calls>.otlp.jsonl`` in ``out_dir`` (reused when
    present). Returns the two paths.
    """
    env_path = os.path.join(out_dir, f"session_{n_calls}.jsonl")
    span_path = os.path.join(out_dir, f"session_{n_calls}.otlp.jsonl")
    n_lines, n_requests, n_spans = _unit_counts([source], traces)
    if not n_requests:
        raise ValueError(f"{source}: no requests to repeat")
    copies = -(-n_calls // n_requests)
    if not os.path.exists(env_path):
        scale_envelope([source], env_path + ".part", copies * n_lines, keep_session_key=True)
        os.replace(env_path + ".part", env_path)
    if not os.path.exists(span_path):
        scale_spans(traces, span_path + ".part", copies * n_spans, _envelope_unit([source])[2], keep_session_key=True)
        os.replace(span_path + ".part", span_path)
    return env_path, span_path


def append_records(after: datetime, out_path: str, n: int = 10, source: str = AGENT_SOURCE,
                   tag: str = "appended") -> str:
    """Write ``n`` envelope lines that come after a capture: the first ``n`` lines of ``source`` (a host's
    stdio session: discovery, tools/list, parallel tools/call) on a connection of their own
    (``<source connection>~<tag>``), moved to start a minute after ``after`` (the capture's last message).
    The next records a live capture appends; ``bench.py`` times loading them into the loaded database."""
    unit = [json.loads(line) for line in open(source, encoding="utf-8").read().splitlines()[:n]]
    first = min(_parse_ts(e["ts"]) for e in unit)
    delta = after + timedelta(minutes=1) - first
    with open(out_path, "w", encoding="utf-8") as out:
        for env in unit:
            env["ts"] = _format_ts(_parse_ts(env["ts"]) + delta)
            env["connection_id"] = f"{env['connection_id']}~{tag}"
            # session keys and trace-ids of their own: each append is a new host session
            _rewrite_message(env.get("message"), 10**9 + zlib.crc32(tag.encode()))
            out.write(json.dumps(env, separators=(",", ":"), ensure_ascii=False) + "\n")
    return out_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", help="directory for envelope_<N>.jsonl and traces_<M>.otlp.jsonl")
    ap.add_argument("--messages", type=int, default=100_000, help="messages to write (default 100000)")
    ap.add_argument("--spans", type=int, default=100_000, help="spans to write (default 100000)")
    ap.add_argument("--shape", choices=SHAPES, default="stdio", help="stdio samples (default) or HTTP captures")
    ap.add_argument("--one-session-calls", type=int, metavar="N",
                    help="instead: one logical session of N calls from the agent sample (scale_session)")
    args = ap.parse_args()
    paths = (scale_session(args.out_dir, args.one_session_calls) if args.one_session_calls
             else scale_capture(args.out_dir, args.messages, args.spans, shape=args.shape))
    for path in paths:
        print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
