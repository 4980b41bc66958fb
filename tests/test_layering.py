"""No import cycle in dtlgen, between modules or between packages (DESIGN: one direction of data flow;
a package imports only from packages upstream of it). Imports inside functions count too: they are
cycles all the same, only deferred.

A module's edges are the dtlgen modules it imports: `import a.b` and `from a.b import name` go to
a.b, or to a.b.name when that is a module (`from pkg import submodule` imports the submodule, not
what the package's __init__ defines). The package's __init__ runs first whatever is imported from
it, but that is not an edge of the importer: a package importing its own submodules would
otherwise be a cycle with each of them.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import dtlgen

ROOT = Path(dtlgen.__file__).resolve().parent


def modules() -> dict[str, Path]:
    """Every module of the dtlgen package by its dotted name (a package by its own name)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ("dtlgen", *path.relative_to(ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def module_imports() -> dict[str, set[str]]:
    """module -> the dtlgen modules it imports, at any depth of its body."""
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package, `level - 1` packages up
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            else:
                continue
            edges[name].update(t for t in targets if t in known and t != name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a → ... → a) through every strongly connected component of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(set(edges) | {n for targets in edges.values() for n in targets}):
        if node not in index:
            visit(node)
    return [_path_back(min(component), component, edges) for component in components]


def _path_back(start: str, component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """The shortest a → ... → a inside one strongly connected component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for other in sorted(edges.get(node, set()) & component):
                if other == start:
                    return paths[node] + [start]
                if other not in paths:
                    paths[other] = paths[node] + [other]
                    following.append(other)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def package_of(module: str) -> str:
    """dtlgen.generator.loader -> dtlgen.generator; a top-level module (dtlgen.cli) is its own package."""
    return ".".join(module.split(".")[:2])


def package_imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in module_imports().items():
        edges[package_of(module)].update(package_of(t) for t in targets if package_of(t) != package_of(module))
    return edges


def assert_acyclic(edges: dict[str, set[str]], what: str) -> None:
    found = cycles(edges)
    assert found == [], f"{what} that import each other (directly or around a loop): " + \
        "; ".join(" -> ".join(cycle) for cycle in found)


def test_no_import_cycle_between_modules():
    assert_acyclic(module_imports(), "modules")


def test_no_import_cycle_between_packages():
    assert_acyclic(package_imports(), "packages")


def test_the_instruction_sets_depend_on_nothing_else():
    assert package_imports().get("dtlgen.isa", set()) == set()


def test_the_cycle_finder_sees_function_level_imports_and_submodules(tmp_path, monkeypatch):
    """The checks above can fail: submodules that import each other (one inside a function) are a
    cycle, a package importing its own submodule is not; modules without a cycle can still make one
    between their packages."""
    package = tmp_path / "dtlgen"
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("from dtlgen.a import b\n")
    (package / "a" / "b.py").write_text("def f():\n    from dtlgen.a import c\n")
    (package / "a" / "c.py").write_text("import dtlgen.a.b\n")
    (package / "d.py").write_text("from dtlgen.a import b\n")
    monkeypatch.setitem(globals(), "ROOT", package)
    assert cycles(module_imports()) == [["dtlgen.a.b", "dtlgen.a.c", "dtlgen.a.b"]]
    assert cycles(package_imports()) == []
    (package / "a" / "b.py").write_text("")
    (package / "a" / "c.py").write_text("def g():\n    from dtlgen import d\n")
    assert cycles(module_imports()) == []
    assert cycles(package_imports()) == [["dtlgen.a", "dtlgen.d", "dtlgen.a"]]
