"""Render a real stdio capture in Claude Desktop's MCP log layout (``mcp-server-NAME.log``).

We cannot run Claude Desktop here, so this does **not** come from Claude Desktop: it re-renders
the real SDK traffic of scenario A (``agent_stdio.jsonl``, captured by the stdio tee between the
sample agent and the sample server) line by line in the layout Claude Desktop writes - every
message as ``<ISO time, ms> [server] [info] Message from client|server: <JSON> { metadata: undefined }``,
with the kinds of lines Claude Desktop interleaves around them: its lifecycle lines
(``Initializing server...``, the multi-line ``Using MCP server command`` metadata block,
``Server started and connected successfully``, ``Client/Server transport closed``) and the
server's stderr copied in raw (here: the Python SDK's ``Processing request of type ...`` log
lines). The messages, their order and their times (cut to milliseconds, as Claude Desktop's
``toISOString()`` has them) are the captured ones; the noise lines are made up in that layout.
The layout follows logs quoted in public issues (see :mod:`mcptrace.ingest.readers.claude_log`).

    python -m mcptrace.samples.claude_log data/samples/agent_stdio.jsonl data/claude/mcp-server-weather.log
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

META = "{ metadata: undefined }"

# The MCP Python SDK server logs "Processing request of type <RequestClass>" for each request it handles.
_REQUEST_TYPES = {
    "initialize": "InitializeRequest", "ping": "PingRequest", "tools/list": "ListToolsRequest",
    "tools/call": "CallToolRequest", "resources/list": "ListResourcesRequest",
    "resources/read": "ReadResourceRequest", "prompts/list": "ListPromptsRequest",
    "prompts/get": "GetPromptRequest",
}


def _ms(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def render(envelope_path: str | Path, out_path: str | Path, server: str = "weather",
           command: str = "/usr/local/bin/python3", args: tuple[str, ...] = ("-m", "mcptrace.samples.server")) -> int:
    """Write the log; returns the number of message lines."""
    envelopes = [json.loads(line) for line in Path(envelope_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not envelopes:
        raise ValueError(f"{envelope_path}: no envelopes")
    times = [datetime.fromisoformat(e["ts"]) for e in envelopes]
    t0, t_end = times[0], times[-1]
    tag = f"[{server}] [info]"
    arg_list = ", ".join(f"'{a}'" for a in args)
    lines = [
        f"{_ms(t0 - timedelta(milliseconds=310))} {tag} Initializing server... {META}",
        f"{_ms(t0 - timedelta(milliseconds=304))} {tag} Using MCP server command: {command} with args and path: {{",
        "  metadata: {",
        f"    args: [ {arg_list}, [length]: {len(args)} ],",
        "    paths: [ '/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin', [length]: 5 ]",
        "  }",
        "} %o",
        f"{_ms(t0 - timedelta(milliseconds=298))} {tag} Server started and connected successfully {META}",
    ]
    n = 0
    for env, ts in zip(envelopes, times, strict=True):
        msg = env["message"]
        who = "client" if env["direction"] == "client_to_server" else "server"
        text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
        lines.append(f"{_ms(ts)} {tag} Message from {who}: {text} {META}")
        n += 1
        if who == "client" and isinstance(msg, dict) and msg.get("method") in _REQUEST_TYPES and "id" in msg:
            # the server's stderr, copied in as is (no time, no tags)
            lines.append(f"INFO:mcp.server.lowlevel.server:Processing request of type {_REQUEST_TYPES[msg['method']]}")
    lines += [
        f"{_ms(t_end + timedelta(milliseconds=12))} {tag} Client transport closed {META}",
        f"{_ms(t_end + timedelta(milliseconds=14))} {tag} Server transport closed {META}",
    ]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return n


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    print(render(sys.argv[1], sys.argv[2]), "message lines")
