"""The package's shape: no import cycles (imports inside functions count), and layers that only
import downwards: core <- features <- app <- edges (cli, runs, net deploy)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = "fedloom"

# Modules of the app layer and the edges; features (everything else but core) never import them.
APP = ("fedloom.app",)
EDGES = ("fedloom.cli", "fedloom.__main__", "fedloom.runs", "fedloom.net.deploy", "fedloom.net.config")
# Package namespaces that re-export the layers above them for users (lazily): edges too, matched exactly.
NAMESPACES = {"fedloom", "fedloom.net"}
# Compatibility re-exports of moved modules (thin shims at the edge, imported by nothing inside).
SHIMS = ("fedloom.config", "fedloom.simulation")


def _modules() -> dict[str, Path]:
    mods = {}
    for f in (SRC / PKG).rglob("*.py"):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _graph() -> dict[str, set[str]]:
    """Module -> the fedloom modules it imports anywhere (module level, functions, TYPE_CHECKING)."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, f in mods.items():
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in mods else stem for a in node.names]
            for target in targets:
                if target == PKG or target.startswith(PKG + "."):
                    resolved = resolve(target)
                    if resolved and resolved != mod:
                        edges[mod].add(resolved)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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

    for v in edges:
        if v not in index:
            visit(v)
    return out


def _within(mod: str, prefixes: tuple[str, ...]) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def test_the_checker_finds_a_planted_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_core_imports_only_core() -> None:
    bad = {m: sorted(t for t in ts if not _within(t, ("fedloom.core", "fedloom.errors")))
           for m, ts in _graph().items() if _within(m, ("fedloom.core",))}
    assert {m: ts for m, ts in bad.items() if ts} == {}


@pytest.mark.parametrize("upper", [APP, EDGES, SHIMS], ids=["app", "edges", "shims"])
def test_features_never_import_upper_layers(upper: tuple[str, ...]) -> None:
    features = {m: ts for m, ts in _graph().items()
                if not _within(m, APP + EDGES + SHIMS) and m not in NAMESPACES
                and not _within(m, ("fedloom.core", "fedloom.errors"))}
    bad = {m: sorted(t for t in ts if _within(t, upper)) for m, ts in features.items()}
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_app_never_imports_edges() -> None:
    bad = {m: sorted(t for t in ts if _within(t, EDGES + SHIMS))
           for m, ts in _graph().items() if _within(m, APP)}
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_nothing_inside_imports_the_root_package() -> None:
    """``fedloom/__init__`` re-exports every layer; a module importing it would depend on all of them."""
    assert sorted(m for m, ts in _graph().items() if "fedloom" in ts and m not in NAMESPACES) == []
