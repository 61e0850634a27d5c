"""The import structure ARCHITECTURE.md promises, checked from the source: every import (function-level
ones included) points to the importer's own layer or a lower one, no module reaches the package
façade, and no modules import each other in a cycle."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kvmtrace"


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The kvmtrace modules ``name`` imports anywhere in its file (a name imported from a package
    counts as that submodule when it is one)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for t in targets:
            while t not in known and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in known and t != name:
                out.add(t)
    return out


def layers() -> dict[str, int]:
    """Top-level module or folder → its layer, from ARCHITECTURE.md's numbered list."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = text[text.index("Import layers"):]
    out = {}
    for number, names in re.findall(r"^(\d+)\. (`.*`)$", block, re.M):
        for n in re.findall(r"`(\w+)`", names):
            out[n] = int(number)
    return out


def graph() -> nx.DiGraph:
    known = modules()
    g = nx.DiGraph()
    for name, path in known.items():
        g.add_node(name)
        g.add_edges_from((name, t) for t in imports(name, path, known))
    return g


def top(name: str) -> str:
    return name.split(".")[1] if "." in name else name


def test_every_module_has_a_layer():
    placed = layers()
    assert len(placed) > 10
    missing = sorted({top(m) for m in modules()} - set(placed) - {"kvmtrace", "__main__"})
    assert not missing, f"not in ARCHITECTURE.md's import layers: {missing}"


def test_imports_point_down_the_layers():
    placed, g = layers(), graph()
    upward = [f"{a} -> {b}" for a, b in g.edges if b == "kvmtrace" or
              (top(a) in placed and top(b) in placed and placed[top(b)] > placed[top(a)])]
    assert not upward, "imports against ARCHITECTURE.md's layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph()) if len(c) > 1]
    assert not cycles, f"modules importing each other: {cycles}"


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks would fail on the kinds of import they exist to catch."""
    known = {"kvmtrace.trace": tmp_path / "trace.py", "kvmtrace.cache": tmp_path / "cache.py",
             "kvmtrace.analyzers": tmp_path / "analyzers.py"}
    known["kvmtrace.trace"].write_text("def load():\n    from . import cache\n")
    known["kvmtrace.cache"].write_text("from .trace import Trace\nfrom .analyzers import x\n")
    assert imports("kvmtrace.trace", known["kvmtrace.trace"], known) == {"kvmtrace.cache"}
    assert imports("kvmtrace.cache", known["kvmtrace.cache"], known) == {"kvmtrace.trace", "kvmtrace.analyzers"}
    assert layers()["analyzers"] > layers()["cache"]
