"""Concatenating models end to end: squeezenet_cifar (fire modules, ceil-mode max pools) and
shufflenet_cifar (channel shuffles, stride-2 units that concatenate an average pool with the branch).

Through the Python API (the CLI's code path): explore pynq-z2 with a small seeded NSGA-II, generate the
project, C-simulate the FE engine on images and compare with the golden model, RTL-simulate the FE
engine on the project's image (every op bit-exact, measured cycles against the analytical model's) and
a few re-training steps of the RL engine (weights checked against the golden model after each).

The models carry the zoo's seeded random weights (no download is possible here); the figures show the
mapping and the engines, not accuracy.

Run: python benchmarks/concat_models.py [--models squeezenet_cifar shufflenet_cifar] [--pop 16] [--gens 6]
                                        [--images 2] [--steps 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import dtlgen

MODELS = ("squeezenet_cifar", "shufflenet_cifar")


def run(name: str, pop: int, gens: int, images: int, steps: int, out: Path) -> dict:
    start = time.perf_counter()
    net = dtlgen.load_model(name)
    design = dtlgen.explore(net, board="pynq-z2", pop=pop, gens=gens, seed=1)
    prj = dtlgen.generate(net, design, out / name)
    x = np.random.default_rng(1).standard_normal((images, *net.input_shape))
    csim, golden = prj.features(x, fe="csim"), prj.features(x, fe="golden")
    report = prj.simulate(retrain=True, steps=steps)
    fe, rl = report["totals"]["fe"], report["training"]
    ops = [layer.op for layer in net.layers]
    fe_cfg = design.fe
    return {"model": name, "concats": ops.count("concat"),
            "design": f"{fe_cfg.tm}x{fe_cfg.tn} {fe_cfg.tr}x{fe_cfg.tc} w{fe_cfg.w_bits}/a{fe_cfg.a_bits}",
            "measured": fe["measured_cycles"], "predicted": fe["predicted_cycles"], "gops": fe["measured_gops"],
            "peak": report["fe_peak_gops"], "rtl_exact": fe["bit_exact"] and rl["bit_exact"],
            "csim_exact": bool(np.array_equal(csim, golden)), "rl_steps": steps,
            "rl_cycles": (rl["step"]["measured_cycles"], rl["step"]["predicted_cycles"]), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--pop", type=int, default=16)
    parser.add_argument("--gens", type=int, default=6)
    parser.add_argument("--images", type=int, default=2, help="images C-simulated against the golden model")
    parser.add_argument("--steps", type=int, default=5, help="RL re-training steps in RTL simulation")
    parser.add_argument("--out", type=Path, default=None, help="where the projects go (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dtlgen-concat-") as scratch:
        out = args.out or Path(scratch)
        rows = [run(name, args.pop, args.gens, args.images, args.steps, out) for name in args.models]
    table = Table(title=f"Concatenating models on pynq-z2 (seeded NSGA-II pop {args.pop}, {args.gens} generations)")
    for column in ("model", "concats", "FE design", "FE cycles measured", "predicted", "FE GOPs", "array peak",
                   "RTL bit-exact (FE + RL steps)", "C-sim = golden", "RL step cycles measured / predicted", "wall s"):
        table.add_column(column, justify="left" if column in ("model", "FE design") else "right")
    for r in rows:
        measured, predicted = r["rl_cycles"]
        table.add_row(r["model"], str(r["concats"]), r["design"], f"{r['measured']:,}", f"{r['predicted']:,}",
                      f"{r['gops']:.2f}", f"{r['peak']:.2f}", "yes" if r["rtl_exact"] else "NO",
                      f"yes ({args.images} images)" if r["csim_exact"] else "NO",
                      f"{measured:,} / {predicted:,} ({r['rl_steps']} steps run)",
                      f"{r['seconds']:.0f}")
    console = Console(width=200)
    console.print(table)
    console.print(f"Sources: FE and RL cycles measured in RTL simulation (Verilator, cocotb), predicted by the analytical "
                  f"model (dtlgen.perf); GOPs at the design's 90 MHz target clock (not measured); peak = FE array x 2 "
                  f"ops x clock; C-simulation of the HLS C++ (g++). Machine: {platform.machine()}, {os.cpu_count()} "
                  f"cores, Python {platform.python_version()}.")


if __name__ == "__main__":
    main()
