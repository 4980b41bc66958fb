"""C-simulation benchmark: every zoo model's whole project through `dtlgen csim`, bit-exact and how fast.

For each model: `dtlgen generate` with one hand-given design on zcu104 (FE 8×8 array with 8×8
tiles, 8-bit; RL 8×8, 16-bit, batch 16: every zoo head's weights fit its BRAM), then the checks of
`dtlgen csim` — the FE and RL testbenches, the whole FE network on one image through the
C-simulation library, and `--steps` re-training steps through the host loop — each bit for bit
against the golden model. Printed per model: layers the FE engine runs, MACs per image, the g++
build (cold: an empty cache), FE time per image and C-simulated MAC/s, re-training time per step
(median of `--repeats`), and whether everything was bit-exact. All figures come from
C-simulation (g++ against hls4ml's ap_types headers); no Vitis HLS and no clock: C-simulation
counts no cycles.

Run: python benchmarks/csim_bench.py [--models digits_cnn vgg16_cifar ...] [--steps 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dtlgen.boards import load_board
from dtlgen.csim import csim_project
from dtlgen.generator.project import generate_project
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import Design

MODELS = ("digits_cnn", "vgg16_cifar", "resnet18_cifar", "mobilenet_v1_cifar")
DESIGN = {"board": "zcu104", "clock_mhz": 150, "fe": {"tm": 8, "tn": 8, "tr": 8, "tc": 8, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}


def bench(model: str, steps: int, repeats: int, workdir: Path) -> dict:
    network = load_model(model)
    calib = calibration_inputs(network, 0)
    start = time.perf_counter()
    project = generate_project(network, Design.from_dict(DESIGN), load_board(DESIGN["board"]), calib, calib[0],
                               workdir / model)
    generate_s = time.perf_counter() - start
    os.environ["DTLGEN_CACHE"] = str(workdir / "cache")  # the first run times a cold g++ build
    reports = [csim_project(project, steps) for _ in range(repeats)]
    first = reports[0]
    fe_s = statistics.median(r["fe"]["run_s"] for r in reports)
    step_s = statistics.median(r["training"]["run_s"] for r in reports) / steps if steps else 0.0
    return {"model": model, "ops": len(first["fe"]["ops"]), "macs": first["fe"]["macs"], "generate_s": generate_s,
            "build_s": first["build_s"], "fe_s": fe_s, "step_s": step_s,
            "bit_exact": all(r["bit_exact"] for r in reports),
            "checks": sum(t["checks"] for t in first["testbenches"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    saved = os.environ.get("DTLGEN_CACHE")
    rows = []
    with tempfile.TemporaryDirectory(prefix="csim_bench.") as tmp:
        try:
            for model in args.models:
                rows.append(bench(model, args.steps, args.repeats, Path(tmp)))
        finally:
            if saved is None:
                os.environ.pop("DTLGEN_CACHE", None)
            else:
                os.environ["DTLGEN_CACHE"] = saved
    table = Table(title="dtlgen csim on every zoo model (C-simulation, g++; golden model = reference)")
    for column in ("model", "FE ops", "MACs / image", "g++ build (cold)", "FE / image", "C-sim speed",
                   f"re-training / step (batch {DESIGN['rl']['batch']})", "testbench checks", "bit-exact"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        table.add_row(r["model"], str(r["ops"]), f"{r['macs']:,}", f"{r['build_s']:.1f} s", f"{1e3 * r['fe_s']:.1f} ms",
                      f"{r['macs'] / r['fe_s'] / 1e6:.0f} MMAC/s", f"{1e3 * r['step_s']:.1f} ms", str(r["checks"]),
                      "yes" if r["bit_exact"] else "NO")
    console = Console(width=160)
    console.print(table)
    console.print(f"Design: {DESIGN}. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
                  f"{platform.python_version()}. Times: median of {args.repeats} runs (build: the first, cold). "
                  "No cycles: C-simulation has no clock (cycles come from dtlgen sim and the analytical model).")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
