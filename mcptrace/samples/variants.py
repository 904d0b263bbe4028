"""A server whose tools change between deployments ("inventory"), for comparing captures and for
tool-definition drift: the official SDK's ``MCPServer`` over stdio, its traffic recorded by
``mcptrace capture stdio`` while the SDK ``Client`` lists everything and calls every tool.

    python -m mcptrace.samples.variants serve --variant before|after|after_prompt
    python -m mcptrace.samples.variants capture --variant before --out before.jsonl [--calls 5]

Variant ``before``: tools ``lookup``, ``reserve(sku, qty)``, ``price`` and ``legacy_export``; prompt
``restock_note``; resource ``inventory://warehouses``. Variant ``after`` differs in exactly these ways:
``restock`` is added, ``legacy_export`` removed, ``reserve`` takes a required ``warehouse`` too (its
input schema changes), ``price`` has another description, and every ``lookup`` call is a tool error
(``isError: true``). ``after_prompt`` is ``after`` with another description of the prompt.
:data:`VARIANT_CHANGES` says the same as data, for tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

VARIANTS = ("before", "after", "after_prompt")
REPO_ROOT = Path(__file__).resolve().parents[2]

#: what ``after`` changes against ``before``
VARIANT_CHANGES = {
    "tools_added": ["restock"],
    "tools_removed": ["legacy_export"],
    "input_schema_changed": ["reserve"],
    "description_changed": ["price"],
    "calls_turned_errors": ["lookup"],
}


def build(variant: str) -> MCPServer:
    """The inventory server of ``variant`` (one of :data:`VARIANTS`)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {VARIANTS}")
    after = variant != "before"
    server = MCPServer("inventory", version="2.0.0" if after else "1.0.0", log_level="WARNING")

    def lookup(sku: str) -> str:
        """Look an item up by its SKU."""
        if after:
            raise ToolError(f"lookup backend unavailable for {sku}")
        return f"{sku}: 12 in stock"

    def price(sku: str) -> str:
        return f"{sku}: 4.20"

    server.add_tool(lookup)
    server.add_tool(price, description="Price of an item, in cents, before tax." if after else "Price of an item.")
    if after:
        def reserve(sku: str, qty: int, warehouse: str) -> str:
            """Reserve items of a SKU."""
            return f"reserved {qty} x {sku} at {warehouse}"

        def restock(sku: str, qty: int) -> str:
            """Order more of a SKU."""
            return f"ordered {qty} x {sku}"

        server.add_tool(reserve)
        server.add_tool(restock)
    else:
        def reserve(sku: str, qty: int) -> str:  # type: ignore[misc]
            """Reserve items of a SKU."""
            return f"reserved {qty} x {sku}"

        def legacy_export() -> str:
            """Export the whole inventory as CSV (deprecated)."""
            return "sku,qty\nA-1,12\n"

        server.add_tool(reserve)
        server.add_tool(legacy_export)

    @server.prompt(description="A note asking for a restock, with a reason." if variant == "after_prompt"
                   else "A note asking for a restock.")
    def restock_note(sku: str) -> str:
        return f"Please restock {sku}."

    @server.resource("inventory://warehouses", name="warehouses", mime_type="application/json")
    def warehouses() -> str:
        return json.dumps(["north", "south"])

    return server


def _arguments(tool: str, i: int) -> dict[str, Any]:
    args: dict[str, Any] = {"sku": f"A-{i}"}
    if tool in ("reserve", "restock"):
        args["qty"] = i + 1
    if tool == "reserve":
        args["warehouse"] = "north"
    if tool == "legacy_export":
        args = {}
    return args


async def _drive(variant: str, out: Path, calls: int) -> dict[str, Any]:
    """List tools, prompts and resources, call every listed tool ``calls`` times; the summary counts
    the outcomes by tool."""
    tee = ["-m", "mcptrace", "capture", "stdio", "--quiet", "--out", str(out)]
    server = ["-m", "mcptrace.samples.variants", "serve", "--variant", variant]
    env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]), "PYTHONUNBUFFERED": "1"}
    target = StdioServerParameters(command=sys.executable, args=[*tee, "--", sys.executable, *server],
                                   cwd=str(REPO_ROOT), env=env)
    summary: dict[str, Any] = {"variant": variant, "tools": [], "outcomes": {}}
    async with Client(target) as client:
        tools = (await client.list_tools()).tools
        await client.list_prompts()
        await client.list_resources()
        summary["tools"] = sorted(t.name for t in tools)
        for i in range(calls):
            for t in tools:
                res = await client.call_tool(t.name, _arguments(t.name, i))
                key = "tool_error" if res.is_error else "ok"
                summary["outcomes"].setdefault(t.name, {}).setdefault(key, 0)
                summary["outcomes"][t.name][key] += 1
    return summary


def capture(variant: str, out: str | os.PathLike, *, calls: int = 5) -> dict[str, Any]:
    """Run the ``variant`` server under ``mcptrace capture stdio`` writing ``out`` (envelope JSONL), with
    the SDK client listing everything and calling each tool ``calls`` times; returns the summary."""
    return anyio.run(_drive, variant, Path(out), calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcptrace.samples.variants")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("serve")
    sp.add_argument("--variant", choices=VARIANTS, required=True)
    cp = sub.add_parser("capture")
    cp.add_argument("--variant", choices=VARIANTS, required=True)
    cp.add_argument("--out", required=True)
    cp.add_argument("--calls", type=int, default=5)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        anyio.run(build(args.variant).run_stdio_async)
    else:
        print(json.dumps(capture(args.variant, args.out, calls=args.calls)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
