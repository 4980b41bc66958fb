"""HLS cycle estimate benchmark: how far the HLS C++ would schedule from the measured RTL, per design.

For each case: `dtlgen generate` with a fixed design, then `dtlgen csim` (C-simulation, g++), whose
report holds the HLS cycle estimate (dtlgen.csim.hls_estimate: loop trip counts measured in an
instrumented C-simulation on the project's data, each loop's cost by a stated rule from its pragmas
and the static checker's findings; no Vitis HLS) beside the RTL model's cycles for the same FE
descriptors and RL training step (dtlgen.perf, equal to RTL simulation within its tests'
tolerances), and the checker's findings. The figures are counts, not timings: one run suffices.
Printed per case: FE cycles estimated and modelled and their ratio, the same for a steady RL
training step, the checker's findings, and the costliest FE loops.

Cases: the digits demo's knee design (`dtlgen demo` on pynq-z2: FE 8×8 array, 6×21 tiles, 40 LUT
multipliers; RL 2×15, batch 16) and vgg16_cifar with a 16×16 FE array (8×8 tiles; RL 8×8, batch 16)
on pynq-z2, the two designs of issue 16's figures; resnet18_cifar (residual adds) and
mobilenet_v1_cifar (depthwise, average pool) on zcu104 with csim_bench's FE 8×8 / RL 8×8 design; the
test suite's small digits design.

Run: python benchmarks/hls_estimate_bench.py [--cases demo vgg16 resnet18 mobilenet small]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dtlgen.boards import load_board
from dtlgen.csim import csim_project
from dtlgen.generator.project import generate_project
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import Design

PYNQ = "pynq-z2"
# benchmarks/csim_bench.py's design for every zoo model (zcu104)
ZCU_FE = {"tm": 8, "tn": 8, "tr": 8, "tc": 8, "w_bits": 8, "a_bits": 8}
ZCU_RL = {"tm": 8, "tn": 8, "bits": 16, "batch": 16}
CASES = {
    "demo": ("digits_cnn", {"board": PYNQ, "clock_mhz": 90,
                            "fe": {"tm": 8, "tn": 8, "tr": 6, "tc": 21, "w_bits": 8, "a_bits": 8, "lut_mults": 40},
                            "rl": {"tm": 2, "tn": 15, "bits": 16, "batch": 16}}),
    "vgg16": ("vgg16_cifar", {"board": PYNQ, "clock_mhz": 90,
                              "fe": {"tm": 16, "tn": 16, "tr": 8, "tc": 8, "w_bits": 8, "a_bits": 8},
                              "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}),
    "resnet18": ("resnet18_cifar", {"board": "zcu104", "clock_mhz": 150, "fe": ZCU_FE, "rl": ZCU_RL}),
    "mobilenet": ("mobilenet_v1_cifar", {"board": "zcu104", "clock_mhz": 150, "fe": ZCU_FE, "rl": ZCU_RL}),
    "small": ("digits_cnn", {"board": PYNQ, "clock_mhz": 100,
                             "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
                             "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}),
}


def bench(case: str, workdir: Path) -> dict:
    model, spec = CASES[case]
    network = load_model(model)
    calib = calibration_inputs(network, 0)
    design = Design.from_dict(spec)
    project = generate_project(network, design, load_board(spec["board"]), calib, calib[0], workdir / case)
    report = csim_project(project, steps=2)
    return {"case": case, "model": model, "design": design, "report": report}


def _design(design: Design) -> str:
    fe, rl = design.fe, design.rl
    return f"{design.board}: FE {fe.tm}×{fe.tn}, {fe.tr}×{fe.tc} tiles; RL {rl.tm}×{rl.tn}, batch {rl.batch}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hls_estimate_bench.") as tmp:
        rows = [bench(case, Path(tmp)) for case in args.cases]
    table = Table(title="HLS C++: estimated Vitis cycles vs the RTL model (estimate: instrumented C-simulation + "
                        "per-loop rule; no Vitis HLS)")
    for column in ("case", "design", "FE: HLS estimate", "FE: RTL model", "FE ratio",
                   "RL step: HLS estimate", "RL step: RTL model", "RL ratio", "checker findings", "bit-exact",
                   "costliest FE loops (their cycles / the FE estimate: they overlap)"):
        table.add_column(column, justify="left" if column in ("case", "design") else "right")
    for r in rows:
        est = r["report"]["hls_estimate"]
        loops: dict[str, int] = {}
        for op in est["fe_ops"]:
            for loop in op["worst_loops"]:
                loops[loop["loop"]] = loops.get(loop["loop"], 0) + loop["cycles"]
        worst = ", ".join(f"{name} {cycles / est['fe_cycles']:.0%}"
                          for name, cycles in sorted(loops.items(), key=lambda kv: -kv[1])[:3])
        table.add_row(f"{r['case']} ({r['model']})", _design(r["design"]), f"{est['fe_cycles']:,}",
                      f"{est['rtl_fe_cycles']:,}", f"{est['fe_ratio']:.2f}×", f"{est['rl_step_cycles']:,}",
                      f"{est['rtl_rl_step_cycles']:,}", f"{est['rl_ratio']:.2f}×",
                      str(len(r["report"]["hls_check"]["findings"])), "yes" if r["report"]["bit_exact"] else "NO", worst)
    console = Console(width=220)
    console.print(table)
    console.print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. FE: one "
                  "image through every descriptor; RL: the second of two training steps (the host's steady schedule). "
                  "Counts, not timings: deterministic, one run.")
    return 0 if all(r["report"]["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
