"""Claude Desktop MCP logs: ``mcp-server-NAME.log`` (one server) and ``mcp.log`` (all servers).

Claude Desktop (``~/Library/Logs/Claude/`` on macOS, ``%APPDATA%\\Claude\\logs`` on Windows)
logs every JSON-RPC message it exchanges with a stdio server as one line::

    2025-06-27T07:58:07.774Z [golang-mcp-testing] [info] Message from client: {"method":"initialize",...,"id":0}
    2025-06-13T14:44:29.945Z [info] [db-timetable] Message from client: {"method":"initialize",...}
    2025-10-03T07:51:43.656Z [minecraft-rcon-ecs] [info] Message from client: {"method":"notifications/initialized","jsonrpc":"2.0"} { metadata: undefined }

(shapes matched against logs quoted in public issues and posts, e.g. localrivet/gocreate#5,
jorekai/db-timetable-mcp#4, stabgan/openrouter-mcp-multimodal#5: the ``[server]``/``[level]``
order varies between builds and files, newer builds append a Node ``util.inspect`` of the log
metadata - `` { metadata: undefined }``, sometimes a multi-line ``{\\n  metadata: {...}\\n} %o``
block - and the server's stderr is copied in raw, unprefixed.)

``Message from client`` is ``client_to_server`` (Claude -> server), ``Message from server`` is
``server_to_client``; the transport is stdio, times are the log's own (millisecond precision),
and ``connection_id`` is ``claude:<server name>`` - the ``[server]`` tag, or for a line that has
only a ``[level]`` tag, ``NAME`` of an ``mcp-server-NAME.log`` file name. Each ``Initializing
server...`` line of a server after its first starts a new process, so the connection id of the
second run is ``claude:<server>#2`` and so on (a restarted server reuses JSON-RPC ids from 0;
one connection across the restart would pair them with the dead process's open requests).

Every other line - Claude's lifecycle lines (``Initializing server...``, ``Server started and
connected successfully``, ``Server transport closed``...), its error lines, multi-line metadata
blocks, the server's stderr (log lines, banners, stack traces) - is not an error of the file:
it is skipped and counted in ``sources.n_skipped``. A line that says ``Message from client:`` or
``Message from server:`` but whose JSON is broken, is not an object or array, or is followed by
something other than the metadata suffix, is a reject naming the line.

Claude Desktop cuts long lines in the middle, leaving ``...[N chars truncated]...`` in place of the
middle: the message's JSON is then broken, but its start (and often its end) is readable. Such a
message is recovered from what is readable (see :func:`recover_truncated`): its ``id``, ``method``
and kind (request, notification, result or error) and the members before the cut, with
``_meta["mcptrace/truncated"] = {"chars_truncated": N, "prefix": "<the text before the cut>"}`` in
its ``result`` (a response), ``params`` (a request or notification) or ``error``; so a call whose
reply was cut is answered. A cut line from which neither an id nor a method can be read stays a
reject.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pyarrow as pa

from mcptrace.core.redact import REDACTED, RedactionPolicy, redact_json_text
from mcptrace.ingest.readers.base import LINES_SCHEMA, Reader, iter_lines
from mcptrace.ingest.readers.envelope import EnvelopeReader
from mcptrace.ingest.readers.inputs import Input

_TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)"
_LINE = re.compile(r"(?P<ts>" + _TS + r")[ \t]+(?P<tags>(?:\[[^\]\r\n]*\][ \t]*){1,2})(?P<rest>.*)\Z", re.S)
_TAG = re.compile(r"\[([^\]\r\n]*)\]")
_MESSAGE = re.compile(r"Message from (?P<who>client|server):[ \t]*")
_LEVELS = frozenset({"info", "warn", "warning", "error", "debug", "trace", "verbose", "fatal", "log", "notice"})
_LIFECYCLE = ("Initializing server", "Server started and connected", "Server transport closed",
              "Client transport closed", "Using MCP server command", "Shutting down server",
              "Server disconnected", "Message from client", "Message from server")
_FILE_SERVER = re.compile(r"^mcp-server-(?P<name>.+?)(?:\d+)?\.log(?:\.\w+)?$")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # NaN/Infinity: Python accepts them, JSON does not

#: how Claude Desktop marks the middle of a line it cut
_TRUNCATED = re.compile(r"\.\.\.\[(\d+) chars truncated\]\.\.\.")
#: the note's key in ``_meta``
TRUNCATED_KEY = "mcptrace/truncated"
_WS = re.compile(r"[ \t\r\n]*")
#: the end of a message cut in its middle: ``..."id":5}`` or ``..."id":5,"jsonrpc":"2.0"}`` (the log's
#: metadata suffix removed first)
_TAIL_ID = re.compile(r'[,{]\s*"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")\s*(?:,\s*"jsonrpc"\s*:\s*"2\.0"\s*)?\}\s*\Z')
_TAIL_METADATA = re.compile(r"\s+\{\s*metadata:.*\Z", re.S)


def _partial_object(text: str, pos: int, nested: frozenset[str]) -> tuple[dict, bool]:
    """The members of the JSON object starting at ``text[pos]`` (``{``) whose values are complete.

    Returns ``(members, complete)``. A member cut by the end of ``text`` is dropped, but when its
    key is in ``nested`` and its value an object, the members of that object that are complete
    are kept (one level down, nothing deeper).
    """
    out: dict = {}
    pos += 1
    n = len(text)
    while True:
        pos = _WS.match(text, pos).end()
        if pos >= n:
            return out, False
        if text[pos] == "}":
            return out, True
        if text[pos] == ",":
            pos += 1
            continue
        try:
            key, pos = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return out, False
        pos = _WS.match(text, pos).end()
        if not isinstance(key, str) or not text.startswith(":", pos):
            return out, False
        pos = _WS.match(text, pos + 1).end()
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):
            if key in nested and text.startswith("{", pos):
                out[key], _ = _partial_object(text, pos, frozenset())
            return out, False
        out[key] = value


def _redact_prefix(text: str, redaction: RedactionPolicy) -> str:
    """``text`` with secret-keyed values redacted, the one cut at the end of ``text`` included."""
    if not redaction.enabled:
        return text
    text = redact_json_text(text, redaction.secret_keys)
    cut = re.compile(r'("(?:' + redaction.secret_keys + r')"\s*:\s*)"(?:[^"\\]|\\.)*\Z', re.I)
    return cut.sub(lambda m: m.group(1) + '"' + REDACTED, text)


def recover_truncated(text: str, redaction: RedactionPolicy | None = None) -> tuple[dict | None, int]:
    """The JSON-RPC message readable from ``text`` (one message's JSON, cut by ``...[N chars truncated]...``).

    Returns ``(message, N)``: N the number of characters cut (summed over the markers); message
    None when no marker is in ``text`` or when neither an ``id`` nor a ``method`` is readable.
    The id and method are read from the members before the first marker (the top-level members
    whose values end before it), else the id from the end of ``text`` (``..."id":5}``, what
    Claude's own messages end with). The message holds those members, ``params``/``result``/
    ``error`` with their members that end before the cut, and the note ``_meta["mcptrace/truncated"]
    = {"chars_truncated": N, "prefix": <text before the first marker, secrets redacted>}`` in its
    ``result`` (no method, no error: a response), ``error`` or ``params`` (a request or
    notification). ``redaction``: the load's policy (None: the default one).
    """
    marks = list(_TRUNCATED.finditer(text))
    if not marks:
        return None, 0
    n_cut = sum(int(m.group(1)) for m in marks)
    prefix = text[:marks[0].start()]
    start = _WS.match(prefix).end()
    members: dict = {}
    if prefix.startswith("{", start):
        members, _ = _partial_object(prefix, start, frozenset({"params", "result", "error"}))
    rpc_id = members.get("id")
    if not isinstance(rpc_id, str | int) or isinstance(rpc_id, bool):
        rpc_id = None
        tail = _TAIL_METADATA.sub("", text[marks[-1].end():])
        m = _TAIL_ID.search(tail)
        if m is not None:
            rpc_id = json.loads(m.group(1))
    method = members.get("method") if isinstance(members.get("method"), str) else None
    if rpc_id is None and method is None:
        return None, n_cut
    note = {"chars_truncated": n_cut, "prefix": _redact_prefix(prefix, redaction or RedactionPolicy())}
    message: dict = {"jsonrpc": "2.0"}
    if rpc_id is not None:
        message["id"] = rpc_id
    if method is not None:
        message["method"] = method
        body_key = "params"
    else:
        body_key = "error" if isinstance(members.get("error"), dict) else "result"
    body = members.get(body_key)
    body = dict(body) if isinstance(body, dict) else {}
    meta = body.get("_meta")
    body["_meta"] = dict(meta, **{TRUNCATED_KEY: note}) if isinstance(meta, dict) else {TRUNCATED_KEY: note}
    message[body_key] = body
    return message, n_cut


def _dumps(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") in the input: keep it escaped
        text = json.dumps(value, separators=(",", ":"))
    return text


def _server_and_level(tags: str) -> tuple[str | None, str | None]:
    found = [t.strip() for t in _TAG.findall(tags)]
    server = level = None
    for t in found:
        if level is None and t.lower() in _LEVELS:
            level = t.lower()
        elif server is None:
            server = t
    return server, level


def _json_kind(v: object) -> str:
    return {type(None): "null", bool: "boolean", str: "string", int: "number", float: "number"}.get(type(v), "value")


class ClaudeLogReader(Reader):
    name = "claude_desktop_log"
    kind = "messages"
    record_label = "line"
    sql_scripts = EnvelopeReader.sql_scripts

    def sniff(self, head: bytes) -> bool:
        text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
        for line in text.splitlines()[:400]:
            m = _LINE.match(line.strip())
            if m and m.group("rest").startswith(_LIFECYCLE):
                return True
        return False

    def batches(self, inp: Input, *, redaction: RedactionPolicy | None = None,
                max_record_bytes: int | None = None) -> Iterator[pa.Table]:
        fname = os.path.basename(inp.path)
        m = _FILE_SERVER.match(fname)
        default_server = m.group("name") if m else fname
        starts: dict[str, int] = {}
        redaction = redaction or RedactionPolicy()
        for batch in iter_lines(inp, max_record_bytes=max_record_bytes):
            nos = batch.column("record_no").to_pylist()
            lines = batch.column("line").to_pylist()
            errs = batch.column("decode_error").to_pylist()
            out_lines: list[str | None] = []
            out_errs: list[str | None] = []
            for line, err in zip(lines, errs, strict=True):
                new_line, new_err = self._line(line.strip(), err, default_server, starts, redaction)
                out_lines.append(new_line)
                out_errs.append(new_err)
            yield pa.table({"record_no": pa.array(nos, pa.int64()), "line": pa.array(out_lines, pa.string()),
                            "decode_error": pa.array(out_errs, pa.string())}, schema=LINES_SCHEMA)

    @staticmethod
    def _line(line: str, err: str | None, default_server: str, starts: dict[str, int],
              redaction: RedactionPolicy | None = None) -> tuple[str | None, str | None]:
        m = _LINE.match(line)
        if m is None:
            return None, None  # stderr text, banners, stack traces, multi-line metadata
        server, _level = _server_and_level(m.group("tags"))
        server = server or default_server
        rest = m.group("rest")
        if rest.startswith("Initializing server"):
            starts[server] = starts.get(server, 0) + 1
            return None, None
        mm = _MESSAGE.match(rest)
        if mm is None:
            return None, None  # Claude's own lifecycle / error lines
        if err is not None:
            return line, f"{err} in a {mm.group('who')} message line"
        run = max(starts.get(server, 1), 1)
        connection_id = f"claude:{server}" + (f"#{run}" if run > 1 else "")
        direction = "client_to_server" if mm.group("who") == "client" else "server_to_client"
        json_start = m.start("rest") + mm.end()
        who = mm.group("who")
        envelope = ('{"ts":' + json.dumps(m.group("ts")) + ',"direction":"' + direction
                    + '","transport":"stdio","connection_id":' + json.dumps(connection_id, ensure_ascii=False)
                    + ',"message":')
        cut = _TRUNCATED.search(line, json_start)
        try:
            value, end = _DECODER.raw_decode(line, json_start)
        except (ValueError, RecursionError) as e:
            if cut is not None:  # Claude cut the line in the middle of the message
                return ClaudeLogReader._recovered(line, json_start, who, envelope, redaction)
            if isinstance(e, RecursionError):
                return line, f"Message from {who}: JSON nested too deeply"
            if isinstance(e, json.JSONDecodeError):
                return line, f"Message from {who}: invalid JSON at column {e.pos + 1}: {e.msg}"
            return line, f"Message from {who}: invalid JSON: {e}"
        if not isinstance(value, dict | list):
            return line, f"Message from {who}: a JSON {_json_kind(value)}, not a JSON-RPC message"
        tail = line[end:].strip()
        # (a cut inside one string leaves the JSON whole, and a cut in the log's metadata suffix a tail
        # that starts with "{"; a cut that leaves JSON then text cut the message's own end)
        if tail and not tail.startswith("{"):
            if cut is not None:
                return ClaudeLogReader._recovered(line, json_start, who, envelope, redaction)
            return line, f"Message from {who}: unexpected text after the JSON at column {end + 1}: {tail[:40]!r}"
        return envelope + line[json_start:end] + "}", None

    @staticmethod
    def _recovered(line: str, json_start: int, who: str, envelope: str,
                   redaction: RedactionPolicy | None) -> tuple[str | None, str | None]:
        message, n_cut = recover_truncated(line[json_start:], redaction)
        if message is None:
            return line, (f"Message from {who}: cut by the log ({n_cut} chars truncated) before its id "
                          "or method could be read")
        return envelope + _dumps(message) + "}", None
