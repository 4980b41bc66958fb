"""Early halting and distillation on the demo's task: how the halting rule's threshold trades cycles for accuracy.

The demo's model and teacher (`dtlgen demo`: digits_cnn pre-trained on the source digits, the teacher its
copy fine-tuned end to end in float on the target re-training set), re-trained in the golden model (bit for
bit what the RL engine computes: tests/sim/test_rl_rtl.py holds the two equal, halting decisions included)
with cross-entropy and with distillation, on several shuffles of the demo's 30-epoch schedule. For each
halting threshold the rule (`dtlgen.host.rl_plan.HaltRule`: after each epoch, the share of predictions that
agree with the teacher's; once it reaches the threshold, one epoch at the final learning rate, then stop)
runs on each shuffle; the table gives the epoch it fired after (median), the cycles against the full
schedule's and the accuracy lost against it (median and worst over the shuffles), and against the full
schedule with cross-entropy (the demo's default re-training; median). Cycles: the analytical
model (`dtlgen.perf.rl`) of the demo's knee RL engine (4x6, batch 16, an 8-byte bus at pynq-z2's memory
latency), probes included. Accuracy: the target test set (450 images; one image is 0.22 pt).

Run: python benchmarks/halting.py [--thresholds 0.9 0.92 0.93 0.94] [--shuffles 1 2 3 4 5] [--probe 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from dataclasses import replace

import numpy as np
from rich.console import Console
from rich.table import Table

from dtlgen.boards import load_board
from dtlgen.demo import DemoConfig, pretrained_model, training_plan
from dtlgen.generator.rl_program import plan_rl
from dtlgen.host.rl_plan import HaltRule
from dtlgen.model import digits_task
from dtlgen.perf.rl import RLConfig
from dtlgen.quant import golden
from dtlgen.sim.rl_sim import golden_halting, predict_plan, predict_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.91, 0.92, 0.93, 0.94])
    parser.add_argument("--shuffles", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                        help="shuffle seeds of the schedule (the demo's is 1)")
    parser.add_argument("--detail", action="store_true", help="print every shuffle's run")
    parser.add_argument("--probe", type=int, default=0,
                        help="probe samples (0: the epoch's own predictions, as the demo's rule)")
    args = parser.parse_args()
    config = DemoConfig()
    task = digits_task.load_digits_task(config.seed)
    network, qnet, _, teacher = pretrained_model(task, config, print)
    feature = qnet.rl_layers[0].inputs[0]
    features = golden.fe_forward(qnet, golden.quantize_input(qnet, task.retrain_x))[feature]
    features = features.reshape(len(features), -1)
    tests = {feature: golden.fe_forward(qnet, golden.quantize_input(qnet, task.test_x))[feature]}
    last = network.layers[-1].name
    accuracy = lambda state: digits_task.accuracy(golden.rl_forward(qnet, state, tests)[last], task.test_y)  # noqa: E731
    board = load_board(config.board)
    layout = plan_rl(qnet, RLConfig(4, 6, config.rl_bits, batch=config.batch), 8)
    latency = board.dram_latency_cycles
    cycles = lambda plan: sum(d.cycles for step in predict_plan(layout, latency, plan.batch_sizes, plan.breaks())  # noqa: E731
                              for d in step)
    probe_cycles = predict_probe(layout, latency, args.probe) if args.probe else 0
    cached = teacher.fixed_logits(qnet)
    rows = []
    ce_full: dict[int, float] = {}  # each shuffle's full cross-entropy schedule: the demo's default re-training
    for loss in ("cross-entropy", "distillation"):
        kd = config.distillation() if loss == "distillation" else None
        runs = {}
        for shuffle in args.shuffles:
            base = replace(training_plan(task, replace(config, seed=shuffle - 1), features), teacher=cached, kd=kd)
            probe = np.random.default_rng(config.seed + 2).choice(len(task.retrain_y), args.probe, replace=False) \
                if args.probe else None
            full, _, state = golden_halting(qnet, base, golden.initial_rl_state(qnet))
            runs[shuffle] = (base, probe, cycles(full), accuracy(state))
            ce_full.setdefault(shuffle, runs[shuffle][3])
        rows.append((loss, "full schedule", "-", 1.0, 1.0, 0.0, 0.0,
                     statistics.median(100 * (ce_full[k] - r[3]) for k, r in runs.items()),
                     statistics.median(r[3] for r in runs.values())))
        for threshold in args.thresholds:
            fired, ratios, losses, accs, vs_ce = [], [], [], [], []
            for shuffle, (base, probe, full_cycles, full_acc) in runs.items():
                rule = HaltRule(threshold, config.lr_shift_at(config.epochs - 1), probe)
                ran, agreements, state = golden_halting(qnet, replace(base, halt=rule), golden.initial_rl_state(qnet))
                fired.append(len(agreements) if ran.steps < base.steps or agreements[-1] >= threshold else None)
                ratios.append((cycles(ran) + probe_cycles * len(agreements)) / full_cycles)
                acc = accuracy(state)
                losses.append(100 * (full_acc - acc))
                vs_ce.append(100 * (ce_full[shuffle] - acc))
                accs.append(acc)
                if args.detail:
                    print(f"{loss} >= {threshold:g} shuffle {shuffle}: fired after {fired[-1]}, "
                          f"{100 * ratios[-1]:.1f} % of the cycles, {100 * acc:.2f} % against {100 * full_acc:.2f} %")
            epochs = [f for f in fired if f is not None]
            rows.append((loss, f"agreement >= {threshold:g}",
                         f"{statistics.median(epochs):g}" + (f" ({len(fired) - len(epochs)} never)" if
                                                             len(epochs) < len(fired) else "") if epochs else "never",
                         statistics.median(ratios), max(ratios), statistics.median(losses), max(losses),
                         statistics.median(vs_ce), statistics.median(accs)))
    table = Table(title=f"Early halting on the demo's task: {len(args.shuffles)} shuffles, "
                        f"{'the epoch' + chr(39) + 's own predictions' if not args.probe else f'{args.probe} probe samples'}"
                        f" (machine: {platform.machine()}, {os.cpu_count()} cores)")
    for column in ("loss", "rule", "fired after epoch (median)", "cycles / full (median)", "(worst)",
                   "accuracy lost, pt (median)", "(worst)", "lost vs full cross-entropy (median)",
                   "accuracy (median)"):
        table.add_column(column, justify="left" if column in ("loss", "rule") else "right")
    for loss, rule, fired, ratio, worst_ratio, lost, worst_lost, lost_ce, acc in rows:
        table.add_row(loss, rule, fired, f"{100 * ratio:.1f} %", f"{100 * worst_ratio:.1f} %", f"{lost:+.2f}",
                      f"{worst_lost:+.2f}", f"{lost_ce:+.2f}", f"{100 * acc:.2f} %")
    Console(width=200).print(table)
    print(f"Teacher: {100 * teacher.acc_test:.2f} % on the test set. Figures: the golden model (bit-exact with the "
          "RL engine's RTL); cycles: the analytical model (dtlgen.perf.rl).")


if __name__ == "__main__":
    main()
