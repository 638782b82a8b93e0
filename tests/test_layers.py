"""Imports go one way: ``soundbox/`` (the command) above ``api/`` and ``worker/``, both above
``shared/``; the API never reaches torch or the worker; and no modules import each other in a
circle. Read from the source (every ``import``, also those inside functions), so a violation
fails here before it fails in production."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("api", "worker", "shared", "soundbox")
# package -> what it must never import (even lazily, inside a function)
FORBIDDEN = {
    "shared": ("api", "worker", "soundbox"),
    "api": ("worker", "soundbox", "torch", "torchaudio", "audiocraft", "librosa"),
    "worker": ("api", "soundbox"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(path: Path, known: Iterable[str], top_level_only: bool) -> set[str]:
    """Modules ``path`` imports (``from a.b import c`` names ``a.b.c`` when that is a module)."""
    known = set(known)
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def graph(top_level_only: bool) -> dict[str, set[str]]:
    mods = modules()
    packages = {name for name, path in mods.items() if path.name == "__init__.py"}
    return {
        name: {m for m in imports(path, mods, top_level_only) if m in mods and m not in packages}
        for name, path in mods.items()
    }


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_the_packages():
    assert cycles(graph(top_level_only=True)) == []


def test_no_cycles_even_through_imports_inside_functions():
    assert cycles(graph(top_level_only=False)) == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_one_way(package):
    mods = modules()
    bad = sorted(
        f"{name} imports {target}"
        for name, path in mods.items()
        if name.split(".")[0] == package
        for target in imports(path, mods, top_level_only=False)
        if target.split(".")[0] in FORBIDDEN[package]
    )
    assert bad == []


def test_the_import_reader_sees_lazy_and_relative_imports(tmp_path):
    probe = ROOT / "shared" / "domain" / "jobs.py"  # imports inside functions are read too
    found = imports(probe, modules(), top_level_only=False)
    assert {"shared.domain.events", "shared.infra.db", "sqlalchemy"} <= found
    assert "shared.domain.limits" in imports(probe, modules(), top_level_only=True)
