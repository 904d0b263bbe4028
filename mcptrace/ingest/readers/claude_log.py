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
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pyarrow as pa

from mcptrace.core.redact import RedactionPolicy
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

    def batches(self, inp: Input, *, redaction: RedactionPolicy | None = None) -> Iterator[pa.Table]:
        fname = os.path.basename(inp.path)
        m = _FILE_SERVER.match(fname)
        default_server = m.group("name") if m else fname
        starts: dict[str, int] = {}
        for batch in iter_lines(inp):
            nos = batch.column("record_no").to_pylist()
            lines = batch.column("line").to_pylist()
            errs = batch.column("decode_error").to_pylist()
            out_lines: list[str | None] = []
            out_errs: list[str | None] = []
            for line, err in zip(lines, errs, strict=True):
                new_line, new_err = self._line(line.strip(), err, default_server, starts)
                out_lines.append(new_line)
                out_errs.append(new_err)
            yield pa.table({"record_no": pa.array(nos, pa.int64()), "line": pa.array(out_lines, pa.string()),
                            "decode_error": pa.array(out_errs, pa.string())}, schema=LINES_SCHEMA)

    @staticmethod
    def _line(line: str, err: str | None, default_server: str,
              starts: dict[str, int]) -> tuple[str | None, str | None]:
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
        try:
            value, end = _DECODER.raw_decode(line, json_start)
        except RecursionError:
            return line, f"Message from {mm.group('who')}: JSON nested too deeply"
        except json.JSONDecodeError as e:
            return line, f"Message from {mm.group('who')}: invalid JSON at column {e.pos + 1}: {e.msg}"
        except ValueError as e:
            return line, f"Message from {mm.group('who')}: invalid JSON: {e}"
        if not isinstance(value, dict | list):
            return line, f"Message from {mm.group('who')}: a JSON {_json_kind(value)}, not a JSON-RPC message"
        tail = line[end:].strip()
        if tail and not tail.startswith("{"):
            return line, f"Message from {mm.group('who')}: unexpected text after the JSON at column {end + 1}: {tail[:40]!r}"
        envelope = ('{"ts":' + json.dumps(m.group("ts")) + ',"direction":"' + direction
                    + '","transport":"stdio","connection_id":' + json.dumps(connection_id, ensure_ascii=False)
                    + ',"message":' + line[json_start:end] + "}")
        return envelope, None
