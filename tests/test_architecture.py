"""The layering of the package (docs/ARCHITECTURE.md): imports point one way, modules stay small,
nothing cites a design file outside the repository, the runtime never imports the sample generators."""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "mcptrace"

#: layers from the bottom up; a module may import its own layer and those below it
LAYERS = ["core", "ingest", "capture", "analysis", "render", "explorer", "workspace", "cli"]
LAYER_OF = {"core": 0, "ingest": 1, "capture": 1, "analysis": 2, "render": 3, "explorer": 4, "workspace": 5,
            "cli": 6, "demo": 6, "serve": 6, "__main__": 6, "__init__": 6}
MAX_LINES = 600


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(mods: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """Every mcptrace module each module imports, at any depth (inside functions, under TYPE_CHECKING)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                targets = [name] + [f"{name}.{a.name}" for a in node.names]
            else:
                continue
            edges[mod].update(t for t in targets if t in mods and t != mod)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _group(mod: str) -> str:
    """The layer folder (or top-level module) of ``mcptrace.<group>...``; ``__init__`` for the package."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(mod: str) -> int | None:
    """The layer of a runtime module; None for the sample generators (development tools)."""
    return None if _group(mod) == "samples" else LAYER_OF[_group(mod)]


def test_no_import_cycles():
    assert _cycles(_imports(_modules())) == []


def test_imports_point_down_the_layers():
    wrong = []
    for mod, targets in _imports(_modules()).items():
        lm = _layer(mod)
        if lm is None:
            continue
        for t in targets:
            lt = _layer(t)
            if lt is None:
                wrong.append(f"{mod} imports the development tool {t}")
            elif lt > lm or (lt == lm and _group(mod) != _group(t) and lm != LAYER_OF["cli"]):
                wrong.append(f"{mod} (layer {lm}) imports {t} (layer {lt})")
    assert wrong == []


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_nothing_cites_a_design_file_outside_the_repository():
    pattern = re.compile(r"DESIGN\.md|DESIGN §|\.\./shared|shared/(?:design|research|seeds)")
    hits = []
    for p in list(PKG.rglob("*.py")) + list(PKG.rglob("*.sql")) + list((ROOT / "tests").rglob("*.py")) + \
            list(ROOT.glob("*.md")) + list((ROOT / "docs").rglob("*.md")):
        if p.resolve() == pathlib.Path(__file__).resolve():
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{p.relative_to(ROOT)}:{i}")
    assert hits == []


def test_capture_starts_without_the_analysis_stack():
    """``mcptrace capture`` sits in front of a server a host starts and waits for: the command (through the
    ``mcptrace`` entry point, ``mcptrace.__main__:main``) and the recorders' modules import neither DuckDB nor
    pyarrow, pandas or plotly, while the package's public names still resolve (on first use)."""
    import subprocess
    import sys
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["mcptrace"] == "mcptrace.__main__:main"
    heavy = ("duckdb", "pyarrow", "pandas", "plotly")
    script = ("import contextlib, io, sys\n"
              "from mcptrace.__main__ import main\n"
              "import mcptrace.capture.stdio, mcptrace.capture.http\n"
              "for argv in (['capture', '--help'], ['capture', 'stdio', '--help'], ['capture', 'http', '--help']):\n"
              "    out = io.StringIO()\n"
              "    with contextlib.redirect_stdout(out):\n"
              "        try:\n"
              "            main(argv)\n"
              "        except SystemExit as e:\n"
              "            assert e.code == 0, (argv, e.code)\n"
              "    assert out.getvalue().startswith('usage: mcptrace capture'), out.getvalue()\n"
              f"print([m for m in {heavy!r} if m in sys.modules])\n"
              "import mcptrace\n"
              "print(mcptrace.open.__module__, mcptrace.Result.__module__, 'load' in dir(mcptrace))\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[]", "mcptrace.workspace mcptrace.core.result True"]
