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

A second table prunes whole neurons of the head instead (`prune={"rl_neurons": s}`: fc1's output units with
the smallest weight norms and fc2's inputs that read them) after the same FE pruning and fine-tuning, and
re-trains the narrower head with replay (no masks): its RL training step's cycles from the analytical model
of the demo's knee RL engine (4x6, batch 16, pynq-z2's memory), the accuracies as above.

Run: python benchmarks/pruning.py [--shares 0.5 0.7 0.8 0.9] [--fe 0.7] [--shuffles 1 2 3] [--neurons 0 0.25 0.5 0.75]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
from dataclasses import replace

from rich.console import Console
from rich.table import Table

from dtlgen.boards import load_board
from dtlgen.demo import DemoConfig
from dtlgen.demo_pruning import pruned_model, pruning_plan, replay_set, source_model
from dtlgen.generator.rl_program import plan_rl
from dtlgen.model import digits_task
from dtlgen.model.prune import prune_neurons, zero_share
from dtlgen.perf.rl import RLConfig
from dtlgen.quant import golden
from dtlgen.quant.quantize import quantize
from dtlgen.sim.rl_sim import golden_replay, predict_plan

STRATEGIES = ("fixed + replay", "fixed", "regrow + replay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9],
                        help="the head's pruned shares (the demo's: 0.8)")
    parser.add_argument("--fe", type=float, default=0.7, help="the frozen part's pruned share (the demo's: 0.7)")
    parser.add_argument("--shuffles", type=int, nargs="+", default=[1, 2, 3],
                        help="shuffle seeds of the schedule (the demo's is 1)")
    parser.add_argument("--neurons", type=float, nargs="*", default=[0.0, 0.25, 0.5, 0.75],
                        help="shares of the head's neurons removed (structured pruning; none: skip the table)")
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
        qnet, train, accuracy = _golden_setup(network, task, config, train_x)
        state, masks = golden.initial_rl_state(qnet), golden.rl_masks(qnet)
        before = {split: accuracy(state, split) for split in ("new", "source")}
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
                zeros.append(zero_share(after.values()))
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
    if args.neurons:
        neurons_table(args, config, task, trained, train_x, train_y)


def _golden_setup(network, task, config, train_x):
    """The network quantised with the demo's precision (calibrated on the new data); the re-training set's
    cached features; accuracy(state, "new" | "source") on the held-out sets (golden model)."""
    qnet = quantize(network, task.new_x, config.precision(), task.new_y)
    name = qnet.rl_layers[0].inputs[0]
    last = network.layers[-1].name
    features = lambda x: golden.fe_output(qnet, golden.quantize_input(qnet, x), name)  # noqa: E731
    tests = {"new": ({name: features(task.new_test_x)}, task.new_test_y),
             "source": ({name: features(task.source_test_x)}, task.source_test_y)}
    accuracy = lambda state, split: digits_task.accuracy(  # noqa: E731
        golden.rl_forward(qnet, state, tests[split][0])[last], tests[split][1])
    return qnet, features(train_x).reshape(len(train_x), -1), accuracy


def neurons_table(args, config, task, trained, train_x, train_y) -> None:
    """Structured pruning of the head (whole neurons) after the FE's: widths, RL step cycles, accuracies."""
    board = load_board(config.board)
    network, _ = pruned_model(replace(config, prune_fe=args.fe, prune_rl=0.0), task, print,
                              (copy.deepcopy(trained[0]), *trained[1:]))
    rows = []
    for share in args.neurons:
        narrow = prune_neurons(network, share) if share else network
        qnet, train, accuracy = _golden_setup(narrow, task, config, train_x)
        layout = plan_rl(qnet, RLConfig(4, 6, config.rl_bits, batch=config.batch), int(board.dram_bytes_per_cycle))
        step = sum(d.cycles for d in predict_plan(layout, board.dram_latency_cycles, [config.batch] * 3)[1])
        state = golden.initial_rl_state(qnet)
        before = {split: accuracy(state, split) for split in ("new", "source")}
        gains, losses = [], []
        for shuffle in args.shuffles:
            plan = pruning_plan(train_y, train, replace(config, seed=shuffle - 1), None)
            after = golden_replay(qnet, plan, state)[plan.steps - 1]
            gains.append(100 * (accuracy(after, "new") - before["new"]))
            losses.append(100 * (before["source"] - accuracy(after, "source")))
        params = sum(l.weight.size + l.bias.size for l in narrow.retrainable_layers if l.weight is not None)
        rows.append((share, narrow.layer("fc1").out_shape[0], params, step, before["new"], before["source"],
                     statistics.median(gains), min(gains), statistics.median(losses), max(losses)))
    table = Table(title=f"Structured pruning of the head (whole neurons of fc1) after FE {100 * args.fe:.0f} %, re-trained "
                        f"with replay, {len(args.shuffles)} shuffles (machine: {platform.machine()}, {os.cpu_count()} cores)")
    for column in ("neurons removed", "fc1 width", "head params", "RL step cycles (model)", "new data before",
                   "source before", "new-data gain, pt (median)", "(worst)", "source loss, pt (median)", "(worst)"):
        table.add_column(column, justify="right")
    for share, width, params, step, new0, source0, gain, worst_gain, loss, worst_loss in rows:
        table.add_row(f"{100 * share:.0f} %", str(width), f"{params:,}", f"{step:,}", f"{100 * new0:.2f} %",
                      f"{100 * source0:.2f} %", f"{gain:+.2f}", f"{worst_gain:+.2f}", f"{loss:+.2f}", f"{worst_loss:+.2f}")
    Console(width=200).print(table)
    print("Figures: the golden model; cycles: the analytical model (dtlgen.perf.rl, exact on the RL engine's RTL) of "
          "one steady-state training step of batch 16 on the demo's knee RL engine (4x6) at pynq-z2's memory latency. "
          "No fine-tuning after the neurons go: 'before' is the narrowed model as deployed.")


if __name__ == "__main__":
    main()
