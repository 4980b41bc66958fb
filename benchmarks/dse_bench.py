"""DSE benchmark: NSGA-II speed on the analytical model and search quality vs exhaustive/random.

Prints two tables:
1. wall time of pop 100 × 100 generations on vgg16_cifar / pynq-z2 (median of repeats; the
   information-loss table is built once beforehand and timed apart), evaluations per second;
2. hypervolume of NSGA-II and of random search (same number of evaluations) as a fraction of the
   exhaustive front's, on `dtlgen.dse.quality.REDUCED_SPACE`, for several budgets.

Run: python benchmarks/dse_bench.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from rich.console import Console
from rich.table import Table

from dtlgen.boards import load_board
from dtlgen.dse import Space
from dtlgen.dse.problem import InfoLossTable
from dtlgen.dse.quality import compare_with_exhaustive
from dtlgen.dse.run import search
from dtlgen.model.calibration import calibration_inputs
from dtlgen.model import load_model
from dtlgen.perf import fe


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def speed(model: str, board_name: str, pop: int, gens: int, repeats: int) -> dict:
    network, board = load_model(model), load_board(board_name)
    space = Space()
    info = InfoLossTable(network, calibration_inputs(network, 0), 16)
    start = time.perf_counter()
    for w in space.fe_w_bits:
        for a in space.fe_a_bits:
            for r in space.rl_bits:
                info(w, a, r)
    table_s = time.perf_counter() - start
    times, evaluations = [], 0
    for _ in range(repeats):
        fe._op_cycles.cache_clear()  # every repeat starts cold: the cache only lives within a run
        start = time.perf_counter()
        _, front, evaluations, _ = search(network, board, info, pop, gens, seed=1, space=space)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"model": model, "board": board_name, "pop": pop, "gens": gens, "evaluations": evaluations,
            "median_s": median, "evals_per_s": evaluations / median, "front": len(front), "table_s": table_s,
            "table_entries": len(info.values)}


def _spread(values) -> str:
    return f"{statistics.median(values):.4f} ({min(values):.4f}..{max(values):.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller budgets (a smoke run)")
    args = parser.parse_args()
    console = Console(width=160)
    pop, gens = (30, 10) if args.quick else (100, 100)
    s = speed("vgg16_cifar", "pynq-z2", pop, gens, args.repeats)
    table = Table(title=f"NSGA-II on the analytical model ({machine()})")
    for column in ("model / board", "pop x gens", "evaluations", "wall time (median)", "evaluations/s",
                   "front size", "info-loss table (built once)"):
        table.add_column(column, justify="right")
    table.add_row(f"{s['model']} / {s['board']}", f"{s['pop']} x {s['gens']}", str(s["evaluations"]),
                  f"{s['median_s']:.2f} s (of {args.repeats})", f"{s['evals_per_s']:.0f}", str(s["front"]),
                  f"{s['table_s']:.1f} s for {s['table_entries']} bit-width choices")
    console.print(table)

    budgets = [(40, 10)] if args.quick else [(40, 10), (40, 25), (50, 40)]
    seeds = (1, 2, 3) if args.quick else (1, 2, 3, 4, 5)
    table = Table(title=f"Search quality on the reduced space (hypervolume / exhaustive hypervolume, seeds {seeds})")
    for column in ("model / board", "space points", "exhaustive front", "pop x gens", "evaluations",
                   "NSGA-II median (min..max)", "random search median (min..max)"):
        table.add_column(column, justify="right")
    for model in ("vgg16_cifar", "digits_cnn"):
        network = load_model(model)
        for b_pop, b_gens in budgets:
            q = compare_with_exhaustive(network, load_board("pynq-z2"), calibration_inputs(network, 0), b_pop,
                                        b_gens, seeds)
            table.add_row(f"{model} / pynq-z2", str(q.space_points), str(q.exhaustive_front), f"{b_pop} x {b_gens}",
                          str(q.evaluations), _spread(q.nsga2_hv_ratios), _spread(q.random_hv_ratios))
    console.print(table)
    console.print("Source: analytical model (dtlgen.perf) and golden-model logit KL (dtlgen.quant); speed run seed 1.")


if __name__ == "__main__":
    main()
