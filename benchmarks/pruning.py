"""Pruned re-training on new data: how much the head's sparsity and the strategy cost or buy (issue 19).

The demo's pruning scenario (`dtlgen demo`, `dtlgen/demo_pruning.py`): digits_cnn trained on the source
digits, pruned by global magnitude (the frozen part at --fe, the head at each --shares value), fine-tuned on
the source with its masks, quantised with the demo's precision; its head then re-trains on new data (the
source's kind of digits, shifted by up to a pixel, noisier) in the golden model, bit for bit what the RL
engine computes (tests/sim/test_rl_rtl.py holds the two equal for pruned networks), on several shuffles of
the demo's 30-epoch schedule. Strategies: `fixed + replay` (the demo's: masks on, the new data mixed with
replayed cached source features, half as many), `fixed` (masks on, new data only), `regrow + replay` (no
masks: pruned weights grow back). Accuracies on held-out new data (450 images) and held-out clean source
digits (450); one image is 0.22 pt. Medians over the shuffles, worst in brackets.

Run: python benchmarks/pruning.py [--shares 0.5 0.7 0.8 0.9] [--fe 0.7] [--shuffles 1 2 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
from dataclasses import replace

import numpy as np
from rich.console import Console
from rich.table import Table

from dtlgen.demo import DemoConfig
from dtlgen.demo_pruning import pruned_model, pruning_plan, replay_set, source_model
from dtlgen.model import digits_task
from dtlgen.quant import golden
from dtlgen.quant.quantize import quantize
from dtlgen.sim.rl_sim import golden_replay

STRATEGIES = ("fixed + replay", "fixed", "regrow + replay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9],
                        help="the head's pruned shares (the demo's: 0.8)")
    parser.add_argument("--fe", type=float, default=0.7, help="the frozen part's pruned share (the demo's: 0.7)")
    parser.add_argument("--shuffles", type=int, nargs="+", default=[1, 2, 3],
                        help="shuffle seeds of the schedule (the demo's is 1)")
    args = parser.parse_args()
    config = DemoConfig()
    task = digits_task.load_new_data_task(config.seed)
    trained = source_model(config, task, print)
    train_x, train_y = replay_set(task, config.prune_replay, config.seed + 3)
    rows = []
    for share in args.shares:
        module = copy.deepcopy(trained[0])
        network, _ = pruned_model(replace(config, prune_fe=args.fe, prune_rl=share), task, print,
                                  (module, *trained[1:]))
        qnet = quantize(network, task.new_x, config.precision(), task.new_y)
        name = qnet.rl_layers[0].inputs[0]
        last = network.layers[-1].name
        features = lambda x: golden.fe_output(qnet, golden.quantize_input(qnet, x), name)  # noqa: E731
        train = features(train_x).reshape(len(train_x), -1)
        tests = {"new": ({name: features(task.new_test_x)}, task.new_test_y),
                 "source": ({name: features(task.source_test_x)}, task.source_test_y)}
        accuracy = lambda state, split: digits_task.accuracy(  # noqa: E731
            golden.rl_forward(qnet, state, tests[split][0])[last], tests[split][1])
        state, masks = golden.initial_rl_state(qnet), golden.rl_masks(qnet)
        before = {split: accuracy(state, split) for split in tests}
        for strategy in STRATEGIES:
            gains, losses, zeros = [], [], []
            for shuffle in args.shuffles:
                shuffled = replace(config, seed=shuffle - 1)
                if strategy == "fixed":
                    plan = pruning_plan(task.new_y, train[:len(task.new_y)], shuffled, masks)
                else:
                    plan = pruning_plan(train_y, train, shuffled, masks if strategy.startswith("fixed") else None)
                after = golden_replay(qnet, plan, state)[plan.steps - 1]
                gains.append(100 * (accuracy(after, "new") - before["new"]))
                losses.append(100 * (before["source"] - accuracy(after, "source")))
                zeros.append(float(np.mean(np.concatenate([w.reshape(-1) for w, _ in after.values()]) == 0)))
            rows.append((share, strategy, before["new"], before["source"], statistics.median(gains), min(gains),
                         statistics.median(losses), max(losses), statistics.median(zeros)))
    table = Table(title=f"Pruned re-training on new data: FE {100 * args.fe:.0f} % pruned, {len(args.shuffles)} "
                        f"shuffles of the demo's schedule (machine: {platform.machine()}, {os.cpu_count()} cores)")
    for column in ("head pruned", "strategy", "new data before", "source before", "new-data gain, pt (median)",
                   "(worst)", "source loss, pt (median)", "(worst)", "head weights 0 after"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for share, strategy, new0, source0, gain, worst_gain, loss, worst_loss, zero in rows:
        table.add_row(f"{100 * share:.0f} %", strategy, f"{100 * new0:.2f} %", f"{100 * source0:.2f} %",
                      f"{gain:+.2f}", f"{worst_gain:+.2f}", f"{loss:+.2f}", f"{worst_loss:+.2f}", f"{100 * zero:.1f} %")
    Console(width=200).print(table)
    print("Figures: the golden model (bit-exact with the RL engine's RTL and C++); 'before' is the deployed pruned "
          "model (fine-tuned on the source with its masks, quantised).")


if __name__ == "__main__":
    main()
