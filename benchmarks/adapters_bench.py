"""Residual adapters (issue 20): target accuracy against adaptation cost, five ways of re-training on a new domain.

digits_cnn is pre-trained once on the source digits (its source half does not depend on the target), imported
with the demo's split (fc1, fc2 retrainable) and re-trained on each shifted target five ways: the head only;
identity 1×1 adapters (`dtlgen.model.adapters.add_adapters`) after the last block ("tail"), the deeper half
("deep") or every block ("all"), trained with the head while the convs between them pass gradients but stay
fixed; and full fine-tuning (split 0, every layer trained). Each is quantised with the demo's precision as
`dtlgen generate` quantises a project and re-trained by `dtlgen.demo.retrain` on identical batches in float64 and in the
bit-true golden model (the RL engine's arithmetic). Costs, counted from the network: trained parameters, the
bytes one domain stores (16-bit values, as the RL engine keeps them), and one training step's MACs per image
(`step_macs`; the frozen part's features are computed once per image, not per step). Accuracies are the mean of
`--orders` re-training runs, each with its own batch order. Adaptation cycles: every strategy's whole re-training
schedule on the RL engine (`--board`, `--rl-array`: the run's batches as the host schedules them, the analytical
model `dtlgen.sim.rl_sim.predict_plan`, which the tests hold equal to the RTL simulation descriptor by
descriptor), and its time at the board's clock (a Xilinx board's clock is its stated target). Accuracy: the target test set (450 images; one image is
0.22 pt). Targets: `rotated` (the demo's: 90°, noise) and `inverted` (inverted contrast, noise).

On the device: `--device all` (any strategy) also generates that strategy's project for the board (the RL array
above; a 4x4 FE engine) and re-trains it on the rotated target through the whole schedule in RTL simulation
(`dtlgen.demo.device_retrain`: Verilator, the cocotb host loop; weights read back and compared with the golden
model's replay after the first `check_steps` steps and the last), with the first batch order: its accuracy is the
read-back weights' on the target test set, its cycles the RTL's (and the model's). About 25 min for "all".

Run: python benchmarks/adapters_bench.py [--targets rotated inverted] [--epochs 30] [--batch 16] [--orders 3] [--board zcu104]
     [--rl-array 16x13] [--device STRATEGY --out DIR] [--png PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dtlgen.atomic import check_destination, write_json
from dtlgen.boards import load_board
from dtlgen.demo import DemoConfig, device_retrain, retrain, training_plan
from dtlgen.errors import DtlgenError
from dtlgen.generator.project import KIND as PROJECT_KIND, generate_project
from dtlgen.generator.rl_program import plan_rl
from dtlgen.model import digits_task, import_module, load_factory, resolve_split
from dtlgen.model.adapters import adapter_names, add_adapters, trained_parameters
from dtlgen.model.ir import Network
from dtlgen.perf import Design, predict
from dtlgen.perf.rl import RLConfig
from dtlgen.perf.validate import check_design
from dtlgen.quant.quantize import quantize
from dtlgen.sim.rl_sim import predict_plan

STRATEGIES = ("head", "tail", "deep", "all", "full")
VALUE_BYTES = 2  # the RL engine's 16-bit values
# the must-show on the rotated target: "all" (fixed point) at most this far below float full fine-tuning,
# at least this far above the head alone (fixed point), with at most this share of full fine-tuning's parameters
MUST_GAP_PT, MUST_GAIN_PT, MUST_SHARE = 1.5, 4.0, 0.30
SOURCES = ("params, bytes, MACs: counted from the network; float: float64 reference; before, fixed: golden model "
           "(bit-true fixed point, the RL engine's arithmetic); cycles: analytical model of the RL engine (= RTL)")


def step_macs(network: Network) -> dict[str, int]:
    """Multiply-accumulates of one training step per image, counted from the network's retrainable part: FWD of
    every retrainable layer; BWD_DATA of every layer with weights that the gradient crosses on its way to a
    trained layer below it (none for the first trained layer: nothing below it needs a gradient); BWD_WEIGHT of
    every trained layer with weights. Each pass of a conv or linear layer makes the same products as its forward
    (Layer.macs, per sample), read in another order; pools and flattens make none."""
    fwd = bwd_data = bwd_weight = 0
    carries: set[str] = set()  # outputs that depend on a trained layer's parameters: their gradient is needed
    for layer in network.retrainable_layers:
        fwd += layer.macs
        below = any(name in carries for name in layer.inputs)
        bwd_data += layer.macs if below else 0
        trained = layer.has_weights and layer.trained
        bwd_weight += layer.macs if trained else 0
        if below or trained:
            carries.add(layer.name)
    return {"fwd": fwd, "bwd_data": bwd_data, "bwd_weight": bwd_weight, "total": fwd + bwd_data + bwd_weight}


def strategy_network(base: Network, strategy: str) -> Network:
    if strategy == "head":
        return base
    return base.with_split(0) if strategy == "full" else add_adapters(base, strategy)


def bench_design(board, array: tuple[int, int], config: DemoConfig) -> Design:
    """The project the bench times and builds: the RL engine of `array` (tm, tn) at the demo's precision and batch,
    a 4x4 FE engine, the board's clock."""
    return Design.from_dict({"board": board.name, "clock_mhz": board.clock_mhz,
                             "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": config.w_bits, "a_bits": config.a_bits},
                             "rl": {"tm": array[0], "tn": array[1], "bits": config.rl_bits, "batch": config.batch,
                                    "lr_shift": config.lr_shift}})


def adaptation_cycles(qnet, task: digits_task.DigitsTask, config: DemoConfig, board, array: tuple[int, int]) -> dict:
    """The whole re-training schedule's cycles on the RL engine of `array` (tm, tn) on `board`, from the analytical
    model (exact against the RTL: tests/csim/test_rl_conv_cpp.py, tests/sim/test_rl_rtl.py), their time at the
    board's clock, and `fits`: None when the bench's design builds for the board, else why not (full fine-tuning
    leaves the FE engine nothing: its figures are the RL engine's alone)."""
    try:
        design = bench_design(board, array, config)
        check_design(qnet.network, design, board, predict(qnet.network, design, board))
        fits = None
    except DtlgenError as exc:
        fits = str(exc)
    bus, latency = int(board.dram_bytes_per_cycle), board.dram_latency_cycles
    layout = plan_rl(qnet, RLConfig(*array, batch=config.batch), bus)
    steps = predict_plan(layout, latency, training_plan(task, config).batch_sizes)
    cycles = sum(d.cycles for step in steps for d in step)
    return {"step_cycles": sum(d.cycles for d in steps[1]), "cycles": cycles,
            "seconds": cycles / (board.clock_mhz * 1e6), "clock_mhz": board.clock_mhz, "fits": fits}


def device_run(base: Network, task: digits_task.DigitsTask, config: DemoConfig, strategy: str, board,
               array: tuple[int, int], out: Path, acc_float: float) -> dict:
    """`strategy` re-trained through the demo's whole schedule (batch order config.seed) on the RL engine of its
    generated project, in RTL simulation (`dtlgen.demo.device_retrain`)."""
    network = strategy_network(base, strategy)
    design = bench_design(board, array, config)
    project = generate_project(network, design, board, task.retrain_x, task.test_x[0], out / f"{strategy}_project",
                               print, train=(task.retrain_x, task.retrain_y), force=True)
    return device_retrain(project, network, design, task, config, acc_float, print, None)


def run(target: str, base: Network, task: digits_task.DigitsTask, config: DemoConfig, orders: int, board,
        array: tuple[int, int]) -> list[dict]:
    """Every strategy re-trained `orders` times, each with its own order of the batches (seeds config.seed ..
    config.seed + orders - 1; the pre-trained model and the stochastic rounding's LFSR seeds stay): accuracies
    are the mean over the orders, `*_runs` each one."""
    rows = []
    for strategy in STRATEGIES:
        network = strategy_network(base, strategy)
        # quantised as `generate` quantises a project (gradient formats from seeded random labels), so that the
        # device run below re-trains the very network of its row
        qnet = quantize(network, task.retrain_x, config.precision())
        cost = adaptation_cycles(qnet, task, config, board, array)
        runs = [retrain(qnet, task, replace(config, seed=config.seed + k)) for k in range(orders)]
        result = {key: float(np.mean([r[key] for r in runs])) for key in ("acc_before_fixed", "acc_before",
                                                                          "acc_float", "acc_fixed")}
        result.update({f"{key}_runs": [r[key] for r in runs] for key in ("acc_float", "acc_fixed")})
        params = trained_parameters(network)
        adapters = [name.removesuffix("_adapter") for name in adapter_names(network)]
        rows.append({"target": target, "strategy": strategy, "params": params, "bytes": VALUE_BYTES * params,
                     "trained": ("every layer" if strategy == "full" else
                                 f"adapters after {' '.join(adapters)} + head" if adapters else "fc1, fc2"),
                     "step_macs": step_macs(network), **cost, "acc_before_fixed": result["acc_before_fixed"],
                     "acc_before_float": result["acc_before"], "acc_float": result["acc_float"],
                     "acc_fixed": result["acc_fixed"], "acc_float_runs": result["acc_float_runs"],
                     "acc_fixed_runs": result["acc_fixed_runs"]})
    by = {row["strategy"]: row for row in rows}
    for row in rows:
        row["share_of_full"] = row["params"] / by["full"]["params"]
        row["vs_float_full_pt"] = 100 * (row["acc_fixed"] - by["full"]["acc_float"])
        row["vs_head_fixed_pt"] = 100 * (row["acc_fixed"] - by["head"]["acc_fixed"])
    return rows


def must_show(rows: list[dict]) -> list[tuple[str, str, bool]]:
    by = {row["strategy"]: row for row in rows if row["target"] == "rotated"}
    every = by["all"]
    return [(f"'all' (fixed) at most {MUST_GAP_PT} pt below float full fine-tuning",
             f"{100 * every['acc_fixed']:.2f} % vs {100 * by['full']['acc_float']:.2f} %: "
             f"{every['vs_float_full_pt']:+.2f} pt", every["vs_float_full_pt"] >= -MUST_GAP_PT),
            (f"'all' (fixed) at least {MUST_GAIN_PT} pt above head only (fixed)",
             f"{100 * every['acc_fixed']:.2f} % vs {100 * by['head']['acc_fixed']:.2f} %: "
             f"{every['vs_head_fixed_pt']:+.2f} pt", every["vs_head_fixed_pt"] >= MUST_GAIN_PT),
            (f"'all' trains at most {100 * MUST_SHARE:.0f} % of full fine-tuning's parameters",
             f"{every['params']:,} of {by['full']['params']:,}: {100 * every['share_of_full']:.1f} %",
             every["share_of_full"] <= MUST_SHARE)]


def plot(path: str, rows: list[dict], epochs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = dict(zip(STRATEGIES, "osD^*"))
    colours = {target: f"C{i}" for i, target in enumerate(dict.fromkeys(row["target"] for row in rows))}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    clock = rows[0]["clock_mhz"]
    for ax, key, label in ((axes[0], "bytes", "trainable bytes per domain (16-bit values, log)"),
                           (axes[1], "seconds", f"adaptation time on the RL engine, s ({clock:g} MHz; model = RTL; log)")):
        for target, colour in colours.items():
            mine = [row for row in rows if row["target"] == target]
            x = [row[key] for row in mine]
            ax.plot(x, [100 * row["acc_fixed"] for row in mine], color=colour, lw=0.8, alpha=0.5)
            for xi, row in zip(x, mine):
                ax.scatter(xi, 100 * row["acc_fixed"], color=colour, marker=markers[row["strategy"]], s=60)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("target test accuracy after re-training, %\n(golden model: bit-true fixed point)")
    handles = [plt.Line2D([], [], color="grey", marker=markers[s], ls="", label=s) for s in STRATEGIES]
    handles += [plt.Line2D([], [], color=c, lw=3, label=f"target: {t}") for t, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"digits_cnn on a shifted domain: accuracy against adaptation cost ({epochs} epochs)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", choices=list(digits_task.TARGETS), default=list(digits_task.TARGETS))
    parser.add_argument("--epochs", type=int, default=DemoConfig().epochs, help="re-training epochs (the demo's: 30)")
    parser.add_argument("--batch", type=int, default=DemoConfig().batch, help="re-training batch, also the RL "
                        "engine's (the demo's: %(default)s; the learning rate is per batch-summed loss, so a smaller "
                        "batch takes more, equally long steps)")
    parser.add_argument("--orders", type=int, default=3,
                        help="re-training runs per strategy, each with its own batch order; accuracies are their mean "
                             "(default %(default)s: one run moves by an image, 0.22 pt, on one rounding)")
    parser.add_argument("--board", default="zcu104", help="the board whose memory and clock time the RL engine's "
                        "schedule (default %(default)s: every adapter's stashes at batch 16 take about 400 BRAM18, "
                        "beyond pynq-z2's 280)")
    parser.add_argument("--rl-array", default="16x13", help="the RL engine's array, TMxTN (default %(default)s: "
                        "the DSP budget of benchmarks/rl_bench.py's pynq-z2 array)")
    parser.add_argument("--device", choices=STRATEGIES, help="also re-train this strategy on the rotated target through "
                        "the whole schedule in RTL simulation (its generated project under --out)")
    parser.add_argument("--out", default="adapters-device", help="where --device writes its project (default "
                        "%(default)s; dtlgen replaces only a project it wrote)")
    parser.add_argument("--png", help="write the Pareto plot (fixed-point accuracy against bytes and adaptation time) here")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    if args.orders < 1 or args.epochs < 1 or args.batch < 1:
        parser.error("--orders, --epochs and --batch must be at least 1")
    try:
        if args.device:  # before any training: the project's folder must be new, empty or dtlgen's own
            check_destination(Path(args.out) / f"{args.device}_project", PROJECT_KIND, force=True)
        board = load_board(args.board)
        array = tuple(int(v) for v in args.rl_array.lower().split("x"))
        RLConfig(*array)
    except (ValueError, TypeError, DtlgenError) as exc:
        parser.error(f"--board {args.board} --rl-array {args.rl_array} --out {args.out}: {exc}")
    if args.png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--png needs matplotlib (pip install matplotlib, or pip install -e .); run without --png")
    config = replace(DemoConfig(), epochs=args.epochs, batch=args.batch)
    rows, source, base, device = [], None, None, None
    for target in args.targets:
        task = digits_task.load_digits_task(config.seed, target_kind=target)
        # the source half does not depend on the target: pre-train once (again only if that ever changes)
        if source is None or not all(np.array_equal(a, b) for a, b in zip(source, (task.source_x, task.source_y))):
            module, shape, split, name = load_factory(config.model)
            print(f"pre-training {name} on the source digits ({len(task.source_y)} images, "
                  f"{config.pretrain_epochs} epochs)")
            digits_task.pretrain(module, task.source_x, task.source_y, config.pretrain_epochs, config.seed)
            base = import_module(module, shape, name)
            base, source = base.with_split(resolve_split(base, split)), (task.source_x, task.source_y)
        print(f"re-training on the {target} target five ways (float64 and golden model)")
        rows += run(target, base, task, config, args.orders, board, array)
        if args.device and target == "rotated":
            print(f"re-training '{args.device}' on the device: RTL simulation of the whole schedule "
                  f"({array[0]}x{array[1]} RL engine on {args.board})")
            row = next(r for r in rows if r["target"] == target and r["strategy"] == args.device)
            device = device_run(base, task, config, args.device, board, array, Path(args.out),
                                row["acc_float_runs"][0])
            device["acc_golden_order0"] = row["acc_fixed_runs"][0]
    table = Table(title=f"digits_cnn: accuracy against adaptation cost, {config.epochs} epochs, batch {config.batch}, "
                        f"mean of {args.orders} batch orders (machine: {platform.machine()}, {os.cpu_count()} cores); "
                        f"RL engine {array[0]}x{array[1]} on {args.board} at {board.clock_mhz:g} MHz\n{SOURCES}")
    for column in ("target", "strategy", "trained", "params", "bytes / domain", "of full", "step MACs / image",
                   "step cycles", "adaptation", "before (fixed)", "after (float)", "after (fixed)", "fixed: runs", "vs float full", "vs head (fixed)"):
        table.add_column(column, justify="left" if column in ("target", "strategy", "trained") else "right")
    for row in rows:
        table.add_row(row["target"], row["strategy"], row["trained"], f"{row['params']:,}", f"{row['bytes']:,}",
                      f"{100 * row['share_of_full']:.1f} %", f"{row['step_macs']['total']:,}",
                      f"{row['step_cycles']:,}", f"{row['seconds']:.2f} s" + ("" if row["fits"] is None else " *"),
                      f"{100 * row['acc_before_fixed']:.2f} %", f"{100 * row['acc_float']:.2f} %",
                      f"{100 * row['acc_fixed']:.2f} %",
                      " ".join(f"{100 * v:.1f}" for v in row["acc_fixed_runs"]), f"{row['vs_float_full_pt']:+.2f} pt",
                      f"{row['vs_head_fixed_pt']:+.2f} pt", end_section=row["strategy"] == STRATEGIES[-1])
    Console(width=220).print(table)
    print("vs float full, vs head (fixed): the row's fixed-point accuracy minus full fine-tuning's float64 one and "
          "head-only's fixed-point one. Step MACs: FWD of the retrainable layers + BWD_DATA of the layers the gradient "
          "crosses + BWD_WEIGHT of the trained ones (the frozen part's features cached once per image). Step cycles: "
          "one steady step (the next batch's features loading in the background); adaptation: the whole schedule's "
          "cycles at the board's clock (analytical model, equal to the RTL simulation).")
    for row in rows:
        if row["fits"] is not None:
            print(f"* {row['target']} {row['strategy']}: the bench's design does not build ({row['fits']}); its "
                  "figures are the RL engine's schedule alone")
    if device is not None:
        cycles = device["cycles"]
        print(f"on the device ({args.device}, rotated, batch order 0, RTL simulation of all {device['steps']} steps on "
              f"the {array[0]}x{array[1]} RL engine): target accuracy {100 * device['acc_device']:.2f} % (golden model "
              f"{100 * device['acc_golden_order0']:.2f} %, float64 {100 * device['acc_float']:.2f} %); weights "
              f"{'bit-exact' if device['bit_exact'] else 'NOT bit-exact'} with the golden model at "
              f"{device['steps_checked']} checked steps; {cycles['measured']:,} cycles measured, {cycles['predicted']:,} "
              f"predicted by the model, {cycles['measured'] / (board.clock_mhz * 1e6):.2f} s at {board.clock_mhz:g} MHz")
    checks = must_show(rows) if "rotated" in args.targets else []
    for what, numbers, ok in checks:
        print(f"must-show (rotated): {what}: {numbers}  {'PASS' if ok else 'FAIL'}")
    if not checks:
        print("must-show: given on the rotated target; add it to --targets")
    if args.json:
        write_json(args.json, {"config": {"epochs": config.epochs, "batch": config.batch, "seed": config.seed,
                                          "orders": args.orders, "board": args.board, "rl_array": list(array),
                                          "precision": config.precision().to_dict()},
                               "figures_from": SOURCES, "rows": rows, "device": device,
                               "must_show": [{"check": w, "numbers": n, "pass": ok} for w, n, ok in checks]})
    if args.png:
        plot(args.png, rows, config.epochs)


if __name__ == "__main__":
    main()
