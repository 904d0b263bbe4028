"""Following captures being written: ``Workspace.follow`` and ``mcptrace load --follow``.

A writer thread appends the lines of an incident capture (real SDK traffic) and of its trace dump,
cutting some lines in two writes; the follow loads them in parts and the tables equal one load of the
finished files. The live test with ``mcptrace capture`` is in ``tests/test_capture.py``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

import mcptrace
import mcptrace.ingest.follow
import mcptrace.ingest.loader
from mcptrace.analysis.rebuild import rebuild
from mcptrace.core.errors import MCPTraceError
from mcptrace.explorer.model import ExplorerModel
from mcptrace.ingest.options import LoadOptions
from test_incremental import tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCIDENT = os.path.join(ROOT, "data", "incidents", "reconnect_with_session_key")


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines(keepends=True)


def _write_slowly(pairs: list[tuple[list[str], str]], pause: float = 0.08) -> threading.Thread:
    """A thread appending each list of lines to its file, a few lines at a time, every 7th line in two
    writes (a reader sees half a line)."""
    def run() -> None:
        handles = [open(out, "a", encoding="utf-8") for _lines_, out in pairs]  # noqa: SIM115
        try:
            longest = max(len(ls) for ls, _out in pairs)
            for i in range(longest):
                for (ls, _out), f in zip(pairs, handles):
                    if i >= len(ls):
                        continue
                    if i % 7 == 3:
                        f.write(ls[i][:15])
                        f.flush()
                        time.sleep(pause)
                        f.write(ls[i][15:])
                    else:
                        f.write(ls[i])
                    f.flush()
                if i % 2 == 0:
                    time.sleep(pause)
        finally:
            for f in handles:
                f.close()

    t = threading.Thread(target=run)
    t.start()
    return t


def _report(ws: mcptrace.Workspace, path: str, part):
    return mcptrace.ingest.loader.Loader(ws.con).load_part(path, part)


def _same_as_one_load(ws: mcptrace.Workspace, files: list[str]) -> None:
    one = mcptrace.load(files)
    a, b = tables(ws), tables(one)
    for t in b:
        assert a[t] == b[t], t
    assert b["calls"] and b["gaps"]


def test_follow_while_written_equals_one_load(tmp_path):
    transcript, spans = str(tmp_path / "capture.jsonl"), str(tmp_path / "capture.otlp.jsonl")
    ws = mcptrace.open(str(tmp_path / "f.duckdb"))  # before the writer starts: it writes for about two seconds
    writer = _write_slowly([(_lines(INCIDENT + ".jsonl"), transcript), (_lines(INCIDENT + ".otlp.jsonl"), spans)],
                           pause=0.15)
    parts = ws.follow([transcript, spans], interval=0.01, idle_timeout=2.0)
    writer.join()
    assert len(parts) > 2, len(parts)
    assert {p.analysis.mode for p in parts} <= {"incremental", "full"}
    # every line read once, numbered as in the whole file; one sources row per file, at its end
    assert [(p.first_line, p.last_line) for p in parts if p.path == transcript][0][0] == 1
    rows = ws.sql("SELECT path, n_records, read_offset, read_lines, size_bytes FROM sources ORDER BY source_id").rows()
    assert sorted(r[0] for r in rows) == sorted(os.path.abspath(p) for p in (transcript, spans))
    for path, _n, offset, lines, size in rows:
        assert offset == size == os.path.getsize(path) and lines == len(_lines(path))
    _same_as_one_load(ws, [transcript, spans])
    # the finished file loaded again is the same content: nothing new
    assert [f.status for f in ws.load([transcript, spans]).files] == ["duplicate", "duplicate"]
    ws.close()


def test_follow_resumes_from_the_recorded_offset(tmp_path):
    """A follow stopped and started again (a new process, here a new connection) goes on from the offset
    in ``sources``; a file first loaded whole is followed from its end."""
    lines = _lines(INCIDENT + ".jsonl")
    out = str(tmp_path / "capture.jsonl")
    db = str(tmp_path / "f.duckdb")
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines[:6])
    ws = mcptrace.load(out, db=db)  # loaded whole: read_offset at its end
    assert ws.sql("SELECT read_offset, read_lines FROM sources").rows() == [(os.path.getsize(out), 6)]
    ws.close()
    with open(out, "a", encoding="utf-8") as f:
        f.writelines(lines[6:12])
    ws = mcptrace.open(db)
    parts = ws.follow(out, interval=0.01, idle_timeout=0.2)
    assert [(p.first_line, p.last_line) for p in parts] == [(7, 12)]
    ws.close()
    with open(out, "a", encoding="utf-8") as f:
        f.writelines(lines[12:])
    ws = mcptrace.open(db)
    parts = ws.follow(out, interval=0.01, idle_timeout=0.2)
    assert [(p.first_line, p.last_line) for p in parts] == [(13, len(lines))]
    assert ws.sql("SELECT count(*) FROM sources").rows() == [(1,)]
    _same_as_one_load(ws, [out])
    ws.close()


def test_follow_refuses_what_it_cannot_follow(tmp_path):
    lines = _lines(INCIDENT + ".jsonl")
    db = str(tmp_path / "f.duckdb")
    packed = str(tmp_path / "capture.jsonl.gz")
    with gzip.open(packed, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    ws = mcptrace.open(db)
    with pytest.raises(MCPTraceError, match="compressed files cannot be followed"):
        ws.follow(packed, idle_timeout=0.1)
    # a directory or a FIFO has no offsets to go on from (reading a FIFO would wait for a writer)
    os.mkfifo(tmp_path / "pipe")
    for what, path in (("a directory", tmp_path), ("a FIFO", tmp_path / "pipe")):
        with pytest.raises(MCPTraceError, match=f"cannot be followed: not a regular file: {what}"):
            ws.follow(path, idle_timeout=0.1)
    # a file rewritten before the offset already loaded is not appended to
    out = str(tmp_path / "capture.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines[:8])
    ws.follow(out, interval=0.01, idle_timeout=0.1)
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines[:4])
    with pytest.raises(MCPTraceError, match="changed since they were loaded"):  # truncated
        ws.follow(out, interval=0.01, idle_timeout=0.1)
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines[1:10])
    with pytest.raises(MCPTraceError, match="changed since they were loaded"):  # rewritten
        ws.follow(out, interval=0.01, idle_timeout=0.1)
    # and one truncated while it is followed
    followed = mcptrace.ingest.follow.FollowedFile(ws.con, str(tmp_path / "other.jsonl"))
    with open(followed.path, "w", encoding="utf-8") as f:
        f.writelines(lines[:8])
    part = followed.next_part()
    followed.advance(part, _report(ws, followed.path, part))
    with open(followed.path, "w", encoding="utf-8") as f:
        f.writelines(lines[:2])
    with pytest.raises(MCPTraceError, match="shrank"):
        followed.next_part()
    ws.close()


def test_follow_stops_on_the_stop_event_and_waits_for_a_file(tmp_path):
    """A file that does not exist yet is waited for; ``stop`` ends the follow."""
    out = str(tmp_path / "later.jsonl")
    stop = threading.Event()
    ws = mcptrace.open()
    n_lines = len(_lines(INCIDENT + ".jsonl"))
    parts: list = []  # as each part is loaded
    returned: list = []  # what follow returns once stopped
    whole = threading.Event()

    def on_part(part) -> None:
        parts.append(part)
        if part.last_line == n_lines:
            whole.set()

    t = threading.Thread(target=lambda: returned.extend(ws.follow(out, interval=0.01, stop=stop, on_part=on_part)))
    t.start()
    time.sleep(0.2)
    assert t.is_alive() and not parts  # waiting for the file
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(_lines(INCIDENT + ".jsonl"))
    assert whole.wait(20), "the written file was not loaded"
    stop.set()
    t.join(20)
    assert not t.is_alive() and returned == parts and returned[-1].last_line == n_lines


def test_explorer_reload_shows_the_new_calls_and_gaps(tmp_path):
    lines = _lines(INCIDENT + ".jsonl")
    out = str(tmp_path / "capture.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines[:8])
    ws = mcptrace.open()
    ws.follow(out, interval=0.01, idle_timeout=0.1)
    model = ExplorerModel(ws.con)
    before = {sid: len(model.calls(sid)) for sid in model.session_ids()}
    with open(out, "a", encoding="utf-8") as f:
        f.writelines(lines[8:])
    ws.follow(out, interval=0.01, idle_timeout=0.1)
    assert {sid: len(model.calls(sid)) for sid in before} == before  # what was read is kept
    model.invalidate()
    after = {sid: len(model.calls(sid)) for sid in model.session_ids()}
    assert sum(after.values()) == ws.sql("SELECT count(*) FROM calls").rows()[0][0] > sum(before.values())
    assert sum(len(model.gaps(sid)) for sid in after) == ws.sql("SELECT count(*) FROM gaps WHERE session_id IS NOT NULL"
                                                               ).rows()[0][0]


def test_cli_load_follow(tmp_path):
    transcript = str(tmp_path / "capture.jsonl")
    writer = _write_slowly([(_lines(INCIDENT + ".jsonl"), transcript)])
    db = str(tmp_path / "f.duckdb")
    r = subprocess.run([sys.executable, "-m", "mcptrace", "load", "--follow", transcript, "--db", db,
                        "--interval", "0.02", "--idle-timeout", "3"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    writer.join()
    assert r.returncode == 0, r.stderr
    loaded = [line for line in r.stdout.splitlines() if line.startswith("loaded")]
    assert loaded and "lines 1-" in loaded[0] and "analysed" in loaded[0]
    assert r.stdout.splitlines()[0].startswith("following ")
    ws = mcptrace.open(db)
    _same_as_one_load(ws, [transcript])
    ws.close()


def test_a_part_after_a_full_rebuild_catches_up(tmp_path):
    """A part whose analysis ran in full (here the first, into a database without analysis tables) is
    followed by one holding everything written meanwhile (up to CATCH_UP_BYTES), not by parts of
    ``part_bytes`` each paying a rebuild; after a part analysed on its scope, parts are ``part_bytes``
    again. The tables equal one load."""
    small = 8000  # longer than any line of these captures
    incidents = os.path.join(ROOT, "data", "incidents")
    first, later = str(tmp_path / "first.jsonl"), str(tmp_path / "later.jsonl")
    with open(first, "w", encoding="utf-8") as f:
        f.writelines(_lines(os.path.join(incidents, "lookalike_clients_reconnect.jsonl")))  # 83 kB
    ws = mcptrace.open(str(tmp_path / "f.duckdb"))
    parts = ws.follow(first, interval=0.01, idle_timeout=0.1, part_bytes=small)
    assert [p.analysis.mode for p in parts] == ["full", "full"], [(p.analysis.mode, p.analysis.reason) for p in parts]
    assert parts[0].end_offset <= small and parts[1].end_offset == os.path.getsize(first)
    # a capture smaller than the database: its parts are analysed on their scope, each at most part_bytes
    others = [os.path.join(incidents, "colliding_ids_no_extraction.jsonl"), INCIDENT + ".jsonl"]
    ws.load(others)
    with open(later, "w", encoding="utf-8") as f:
        f.writelines(_lines(os.path.join(incidents, "stateless_three_clients.jsonl")))  # 43 kB
    parts = ws.follow(later, interval=0.01, idle_timeout=0.1, part_bytes=small)
    sizes = [b - a for a, b in zip([0] + [p.end_offset for p in parts], [p.end_offset for p in parts])]
    assert len(parts) >= 43000 // small and all(s <= small for s in sizes), sizes
    assert all(p.analysis.mode == "incremental" for p in parts), [(p.analysis.mode, p.analysis.reason) for p in parts]
    _same_as_one_load(ws, [first, *others, later])
    ws.close()


def test_a_long_line_is_followed_in_pieces_and_rejected_as_a_load_rejects_it(tmp_path):
    """A line longer than a part is read on to its newline in pieces, never held whole (a followed capture
    is as hostile as any): while half of it is written nothing is loaded, and once it ends it is rejected
    over the record limit as a load of the whole file rejects it, the lines around it loaded."""
    path = str(tmp_path / "long.jsonl")
    lines = _lines(INCIDENT + ".jsonl")
    long = json.dumps({"ts": "2026-03-01T12:00:00Z", "direction": "client_to_server", "connection_id": "c",
                       "message": {"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                                   "params": {"name": "upload", "arguments": {"blob": "q" * (96 << 20)}}}}).encode()
    half = memoryview(long)[:len(long) // 2], memoryview(long)[len(long) // 2:]  # written without a copy
    options = dataclasses.replace(LoadOptions.of(), max_record_bytes=1 << 20)
    with open(path, "wb") as f:
        f.write("".join(lines[:5]).encode())
        f.write(half[0])
    ws = mcptrace.open(str(tmp_path / "f.duckdb"))
    tracemalloc.start()  # what Python holds from here: the follow's reads, not the test's line
    try:
        first = ws.follow(path, interval=0.01, idle_timeout=0.3, options=options)
        assert [(p.first_line, p.last_line) for p in first] == [(1, 5)]  # the half line waits
        with open(path, "ab") as f:
            f.write(half[1])
            f.write(("\n" + "".join(lines[5:])).encode())
        rest = ws.follow(path, interval=0.01, idle_timeout=0.3, options=options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rest and rest[0].first_line == 6 and rest[-1].last_line == len(lines) + 1
    # lines are read 32 MiB at a time, as in a load of the whole file (two reads at most at once); the
    # 96 MiB line is never held (following it had held it whole, and copies of it: 200 MB)
    assert peak < 80 << 20, peak
    assert ws.sql("SELECT record_no, reason FROM rejects").rows() == [
        (6, f"line 6: record of {len(long)} bytes exceeds the limit of 1048576 bytes")]
    whole = mcptrace.open()
    mcptrace.ingest.loader.Loader(whole.con, options).load([path])
    rebuild(whole.con)
    a, b = tables(ws), tables(whole)
    for t in b:
        assert a[t] == b[t], t
    assert ws.sql("SELECT record_no, reason, raw FROM rejects").rows() == \
        whole.sql("SELECT record_no, reason, raw FROM rejects").rows()
    ws.close()
    whole.close()


@pytest.mark.parametrize("piece", [1, 3, 7, 1 << 20])
def test_a_part_ends_where_the_plain_rule_says_whatever_the_pieces(tmp_path, monkeypatch, piece):
    """A part ends at the last newline in the first max_bytes bytes, or, when these hold none, at the last
    newline of the first max_bytes window after them that holds one; read in pieces of any size, its end,
    line count and hash are those of that rule applied to the whole file."""
    import hashlib
    import random

    monkeypatch.setattr(mcptrace.ingest.follow, "_PIECE", piece)
    rng = random.Random(piece)
    ws = mcptrace.open()
    for _ in range(60):
        data = bytes(rng.choice(b"ab\n\r") for _ in range(rng.randint(1, 40)))
        max_bytes = rng.randint(1, 12)
        path = tmp_path / "f.jsonl"
        path.write_bytes(data)
        followed = mcptrace.ingest.follow.FollowedFile(ws.con, str(path))
        part = followed.next_part(max_bytes)
        # the rule, plainly: windows of max_bytes; the first holding a newline ends the part at its last one
        end = None
        for start in range(0, len(data), max_bytes):
            window = data[start:start + max_bytes]
            if b"\n" in window:
                end = start + window.rindex(b"\n") + 1
                break
        if end is None:
            assert part is None, (data, max_bytes)
            continue
        assert (part.start_offset, part.end_offset, part.end_lines) == (0, end, data[:end].count(b"\n")), \
            (data, max_bytes)
        assert part.sha256 == hashlib.sha256(data[:end]).hexdigest()
    ws.close()
