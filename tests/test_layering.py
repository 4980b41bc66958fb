"""No import cycle between dtlgen's packages (DESIGN: one direction of data flow; a package imports only
from packages upstream of it). Imports inside functions count too: they are cycles all the same."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import dtlgen

ROOT = Path(dtlgen.__file__).resolve().parent


def package_imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if rel[0] == "hw_templates":  # test benches and the board driver run beside a project, not in dtlgen
            continue
        package = rel[0] if len(rel) > 1 else path.stem
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "dtlgen" and len(parts) > 1 and parts[1] != package:
                    edges[package].add(parts[1])
    return edges


def test_no_import_cycle_between_packages():
    edges = package_imports()
    cycles = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert cycles == [], f"packages that import each other: {cycles}"


def test_the_instruction_sets_depend_on_nothing_else():
    assert package_imports().get("isa", set()) == set()
