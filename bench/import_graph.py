"""The import graph of a package, read from its sources (no module is imported), and its cycles.

Usage: ``python bench/import_graph.py [--package fxcap.modeling] [--lazy]``. Prints one line per
module with the modules of the package it imports, then the cycles (strongly connected components of
more than one module, or a module importing itself); exits 1 when there is a cycle.

An edge ``a -> b`` is an ``import`` or ``from ... import`` statement of ``a`` that runs when ``a`` is
imported (module level, including inside ``if``/``try`` blocks and class bodies, but not
``if TYPE_CHECKING:`` blocks) and names ``b`` or something inside ``b``; ``from p import name`` where
``name`` is a submodule of the package ``p`` is an edge to ``p.name``. With ``--lazy``, imports inside
functions count too (an import done on first call still ties the two modules together). A module's
parent packages, which Python imports first, are not edges.

``tests/test_import_graph.py`` runs :func:`find_cycles` on ``fxcap.modeling``; ``docs/architecture.md``
shows the printed graph.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_modules(package: str, root: Path = ROOT) -> dict[str, Path]:
    """Every module of ``package`` (dotted name -> source file), packages as their ``__init__.py``."""
    base = root.joinpath(*package.split("."))
    modules = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(body: list[ast.stmt], lazy: bool):
    """The import statements of ``body`` that run at import time (all of them with ``lazy``)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if lazy:
                yield from _import_nodes(node.body, lazy)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_nodes(node.body, lazy)
            yield from _import_nodes(node.orelse, lazy)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_nodes(block, lazy)
        elif isinstance(node, (ast.ClassDef, ast.With, ast.For, ast.While)):
            yield from _import_nodes(node.body, lazy)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from`` import (relative ones resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def import_graph(package: str, lazy: bool = False, root: Path = ROOT) -> dict[str, set[str]]:
    """``module -> modules of package it imports`` for every module of ``package``."""
    modules = package_modules(package, root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets: set[str] = set()
        for node in _import_nodes(tree.body, lazy):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = _resolve(name, path.name == "__init__.py", node)
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in names:
                while target and target not in modules:  # ``import a.b.c`` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components with more than one module
    (Tarjan's algorithm), each sorted, biggest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles, key=lambda c: (-len(c), c))


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """Modules by layer: layer 0 imports nothing of the package, layer n imports only layers below n
    (only defined without cycles)."""
    level: dict[str, int] = {}

    def depth(node: str) -> int:
        if node not in level:
            level[node] = 0  # guards against cycles (the caller checks there are none)
            level[node] = 1 + max((depth(t) for t in graph[node]), default=-1)
        return level[node]

    for node in graph:
        depth(node)
    out: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in sorted(graph):
        out[level[node]].append(node)
    return out


def render(graph: dict[str, set[str]], package: str) -> str:
    """The graph as text: modules by layer, each with what it imports (names relative to ``package``)."""

    def short(name: str) -> str:
        return name[len(package) + 1 :] if name.startswith(package + ".") else ("(package)" if name == package else name)

    cycles = find_cycles(graph)
    lines = []
    if cycles:
        for cycle in cycles:
            lines.append(f"CYCLE ({len(cycle)} modules): {', '.join(short(m) for m in cycle)}")
        return "\n".join(lines)
    for number, names in enumerate(layers(graph)):
        lines.append(f"layer {number}:")
        for name in names:
            deps = ", ".join(sorted(short(t) for t in graph[name]))
            lines.append(f"  {short(name):<28} <- {deps}" if deps else f"  {short(name)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", default="fxcap.modeling")
    parser.add_argument("--lazy", action="store_true", help="count imports inside functions too")
    args = parser.parse_args(argv)
    graph = import_graph(args.package, args.lazy)
    print(render(graph, args.package))
    return 1 if find_cycles(graph) else 0


if __name__ == "__main__":
    sys.exit(main())
