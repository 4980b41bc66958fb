"""The README's generated tables (benchmarks/readme_tables.py) are what today's code prints: a change
that moves a figure fails here until the table is rewritten with the command the failure names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["models", pytest.param("knees", marks=pytest.mark.slow)])
def test_the_readme_table_is_what_the_code_prints(name):
    module = tables()
    _, stale = module.stale_tables((ROOT / "README.md").read_text(), [name])
    assert not stale, f"README table '{name}' is stale: python benchmarks/readme_tables.py --write --tables {name}"


def test_a_changed_figure_is_found_and_rewritten(tmp_path):
    module = tables()
    text = (ROOT / "README.md").read_text().replace("| digits_cnn | 1×8×8 | 9 |", "| digits_cnn | 1×8×8 | 10 |")
    new, stale = module.stale_tables(text, ["models"])
    assert stale == ["models"] and new == (ROOT / "README.md").read_text()
