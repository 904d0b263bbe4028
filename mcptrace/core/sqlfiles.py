"""Access to the SQL shipped in ``mcptrace/sql``."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def text(name: str) -> str:
    return resources.files("mcptrace").joinpath("sql").joinpath(name).read_text(encoding="utf-8")


@cache
def statements(name: str) -> tuple[str, ...]:
    """The statements of ``sql/<name>``: each ends with ``;`` at the end of a line."""
    out, cur = [], []
    for line in text(name).splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("--")):
            continue
        cur.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(cur).rstrip().rstrip(";"))
            cur = []
    if any(s.strip() for s in cur):
        out.append("\n".join(cur))
    return tuple(out)
