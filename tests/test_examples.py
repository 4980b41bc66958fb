"""The examples/ models, through the commands their docstrings give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dtlgen.cli import main

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "digits_small.py") + ":build"


def test_digits_small_fits_the_orangecrab_25f(tmp_path, capsys):
    """digits_cnn's memory does not fit the 25F's block RAM; the small digits model's does, and its
    DSE front is all designs the model says fit."""
    assert main(["dse", EXAMPLE, "--board", "orangecrab-25f", "--pop", "12", "--gens", "3",
                 "--out", str(tmp_path / "dse")]) == 0
    design = json.loads((tmp_path / "dse" / "design.json").read_text())
    assert design["board"] == "orangecrab-25f"
    assert main(["dse", "digits_cnn", "--board", "orangecrab-25f", "--pop", "12", "--gens", "3",
                 "--out", str(tmp_path / "too_big")]) == 1
    assert "fits" in capsys.readouterr().err


@pytest.mark.slow  # about 7 min on 2 cores
def test_digits_small_bitstream_for_the_orangecrab_25f(tmp_path):
    assert main(["dse", EXAMPLE, "--board", "orangecrab-25f", "--pop", "12", "--gens", "3",
                 "--out", str(tmp_path / "dse")]) == 0
    assert main(["generate", EXAMPLE, "--design", str(tmp_path / "dse" / "design.json"),
                 "--out", str(tmp_path / "prj")]) == 0
    assert main(["bitstream", str(tmp_path / "prj")]) == 0
    assert (tmp_path / "prj" / "ecp5" / "dtl.bit").stat().st_size > 0
