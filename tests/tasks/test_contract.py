"""The plugin contract as the code shows it: first-party plugins use only the public plugin API, and neither the
core packages nor a plugin's modules import each other in a loop (function-level imports included)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_PACKAGES = sorted(p for p in (*ROOT.glob("plugins/*/*"), *ROOT.glob("examples/*/*"))
                         if p.is_dir() and (p / "__init__.py").is_file() and p.name != "tests")
ALLOWED = {"egokit.tasks.api"}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every module ``path`` imports, anywhere in the file (top level or inside functions), with line numbers;
    also dotted ``egokit.*`` strings (modules imported lazily by name)."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("egokit.")
              and all(part.isidentifier() for part in node.value.split("."))):
            out.append((node.value, node.lineno))
    return out


def test_the_plugin_packages_are_found():
    names = {p.name for p in PLUGIN_PACKAGES}
    assert {"egokit_egomcq", "egokit_ek100", "egokit_charades", "egokit_nlq", "egokit_mq", "egokit_egotaskqa",
            "egokit_qfvs", "egokit_task_template"} <= names


@pytest.mark.parametrize("package", PLUGIN_PACKAGES, ids=lambda p: p.name)
def test_first_party_plugins_import_only_the_plugin_api(package):
    offending = []
    for path in sorted(package.rglob("*.py")):
        for name, line in _imports(path, _module_name(path, package.parent)):
            if (name == "egokit" or name.startswith("egokit.")) and name not in ALLOWED:
                offending.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not offending, "plugins may import only egokit.tasks.api from egokit:\n" + "\n".join(offending)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _graph(root: Path, package: str, unit) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for path in sorted((root / package).rglob("*.py")):
        src = unit(_module_name(path, root))
        for name, line in _imports(path, _module_name(path, root)):
            if not name.startswith(package + "."):
                continue
            dst = unit(name)
            if dst != src and dst != package:
                edges[src].add(dst)
                where.setdefault((src, dst), f"{path.relative_to(ROOT)}:{line}")
    return edges, where


def _describe(cycles, edges, where) -> str:
    lines = []
    for component in cycles:
        lines.append(" <-> ".join(component))
        lines += [f"  {a} -> {b} ({where[a, b]})" for a in component for b in component if b in edges.get(a, ())]
    return "\n".join(lines)


def test_no_import_loops_between_core_packages():
    """Units are egokit's sub-packages and top-level modules (egokit.tasks, egokit.engine, egokit.checkpoint...)."""
    edges, where = _graph(ROOT, "egokit", lambda m: ".".join(m.split(".")[:2]))
    assert edges, "no imports found: the scan is broken"
    cycles = _cycles(edges)
    assert not cycles, _describe(cycles, edges, where)


@pytest.mark.parametrize("package", PLUGIN_PACKAGES, ids=lambda p: p.name)
def test_no_import_loops_inside_a_plugin(package):
    edges, where = _graph(package.parent, package.name, lambda m: m)
    cycles = _cycles(edges)
    assert not cycles, _describe(cycles, edges, where)


def test_the_loop_detector_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
