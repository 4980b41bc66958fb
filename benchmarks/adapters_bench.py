"""Residual adapters (issue 20): target accuracy against adaptation cost, five ways of re-training on a new domain.

digits_cnn is pre-trained once on the source digits (its source half does not depend on the target), imported
with the demo's split (fc1, fc2 retrainable) and re-trained on each shifted target five ways: the head only;
identity 1×1 adapters (`dtlgen.model.adapters.add_adapters`) after the last block ("tail"), the deeper half
("deep") or every block ("all"), trained with the head while the convs between them pass gradients but stay
fixed; and full fine-tuning (split 0, every layer trained). Each is quantised with the demo's precision
(`quantize(golden_only=True)`) and re-trained by `dtlgen.demo.retrain` on identical batches in float64 and in the
bit-true golden model (the RL engine's arithmetic). Costs, counted from the network: trained parameters, the
bytes one domain stores (16-bit values, as the RL engine keeps them), and one training step's MACs per image
(`step_macs`; the frozen part's features are computed once per image, not per step). Accuracies are the mean of
`--orders` re-training runs, each with its own batch order. No cycle figures yet: the
RL engine runs K×K convs (windowed GEMMs, exact cycle model) but not yet the max-pools and the flatten of a 2x2
map that every strategy but the head has in its retrainable part here. Accuracy: the target test set (450 images; one image is
0.22 pt). Targets: `rotated` (the demo's: 90°, noise) and `inverted` (inverted contrast, noise).

Run: python benchmarks/adapters_bench.py [--targets rotated inverted] [--epochs 30] [--orders 3] [--png PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import replace

import numpy as np
from rich.console import Console
from rich.table import Table

from dtlgen.atomic import write_json
from dtlgen.demo import DemoConfig, retrain
from dtlgen.model import digits_task, import_module, load_factory, resolve_split
from dtlgen.model.adapters import adapter_names, add_adapters, trained_parameters
from dtlgen.model.ir import Network
from dtlgen.quant.quantize import quantize

STRATEGIES = ("head", "tail", "deep", "all", "full")
VALUE_BYTES = 2  # the RL engine's 16-bit values
# the must-show on the rotated target: "all" (fixed point) at most this far below float full fine-tuning,
# at least this far above the head alone (fixed point), with at most this share of full fine-tuning's parameters
MUST_GAP_PT, MUST_GAIN_PT, MUST_SHARE = 1.5, 4.0, 0.30
SOURCES = ("params, bytes, MACs: counted from the network; float: float64 reference; before, fixed: golden model "
           "(bit-true fixed point, the RL engine's arithmetic)")


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


def run(target: str, base: Network, task: digits_task.DigitsTask, config: DemoConfig, orders: int) -> list[dict]:
    """Every strategy re-trained `orders` times, each with its own order of the batches (seeds config.seed ..
    config.seed + orders - 1; the pre-trained model and the stochastic rounding's LFSR seeds stay): accuracies
    are the mean over the orders, `*_runs` each one."""
    rows = []
    for strategy in STRATEGIES:
        network = strategy_network(base, strategy)
        qnet = quantize(network, task.retrain_x, config.precision(), task.retrain_y)
        runs = [retrain(qnet, task, replace(config, seed=config.seed + k)) for k in range(orders)]
        result = {key: float(np.mean([r[key] for r in runs])) for key in ("acc_before_fixed", "acc_before",
                                                                          "acc_float", "acc_fixed")}
        result.update({f"{key}_runs": [r[key] for r in runs] for key in ("acc_float", "acc_fixed")})
        params = trained_parameters(network)
        adapters = [name.removesuffix("_adapter") for name in adapter_names(network)]
        rows.append({"target": target, "strategy": strategy, "params": params, "bytes": VALUE_BYTES * params,
                     "trained": ("every layer" if strategy == "full" else
                                 f"adapters after {' '.join(adapters)} + head" if adapters else "fc1, fc2"),
                     "step_macs": step_macs(network), "acc_before_fixed": result["acc_before_fixed"],
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
    for ax, key, label in ((axes[0], "bytes", "trainable bytes per domain (16-bit values, log)"),
                           (axes[1], "macs", "training-step MACs per image (counted from the network, log)")):
        for target, colour in colours.items():
            mine = [row for row in rows if row["target"] == target]
            x = [row["bytes"] if key == "bytes" else row["step_macs"]["total"] for row in mine]
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
    parser.add_argument("--orders", type=int, default=3,
                        help="re-training runs per strategy, each with its own batch order; accuracies are their mean "
                             "(default %(default)s: one run moves by an image, 0.22 pt, on one rounding)")
    parser.add_argument("--png", help="write the Pareto plot (fixed-point accuracy against bytes and step MACs) here")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    if args.orders < 1 or args.epochs < 1:
        parser.error("--orders and --epochs must be at least 1")
    if args.png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--png needs matplotlib (pip install matplotlib, or pip install -e .); run without --png")
    config = replace(DemoConfig(), epochs=args.epochs)
    rows, source, base = [], None, None
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
        rows += run(target, base, task, config, args.orders)
    table = Table(title=f"digits_cnn: accuracy against adaptation cost, {config.epochs} epochs, batch {config.batch}, "
                        f"mean of {args.orders} batch orders (machine: {platform.machine()}, {os.cpu_count()} cores)"
                        f"\n{SOURCES}")
    for column in ("target", "strategy", "trained", "params", "bytes / domain", "of full", "step MACs / image",
                   "before (fixed)", "after (float)", "after (fixed)", "fixed: runs", "vs float full", "vs head (fixed)"):
        table.add_column(column, justify="left" if column in ("target", "strategy", "trained") else "right")
    for row in rows:
        table.add_row(row["target"], row["strategy"], row["trained"], f"{row['params']:,}", f"{row['bytes']:,}",
                      f"{100 * row['share_of_full']:.1f} %", f"{row['step_macs']['total']:,}",
                      f"{100 * row['acc_before_fixed']:.2f} %", f"{100 * row['acc_float']:.2f} %",
                      f"{100 * row['acc_fixed']:.2f} %",
                      " ".join(f"{100 * v:.1f}" for v in row["acc_fixed_runs"]), f"{row['vs_float_full_pt']:+.2f} pt",
                      f"{row['vs_head_fixed_pt']:+.2f} pt", end_section=row["strategy"] == STRATEGIES[-1])
    Console(width=220).print(table)
    print("vs float full, vs head (fixed): the row's fixed-point accuracy minus full fine-tuning's float64 one and "
          "head-only's fixed-point one. Step MACs: FWD of the retrainable layers + BWD_DATA of the layers the gradient "
          "crosses + BWD_WEIGHT of the trained ones (the frozen part's features cached once per image).")
    checks = must_show(rows) if "rotated" in args.targets else []
    for what, numbers, ok in checks:
        print(f"must-show (rotated): {what}: {numbers}  {'PASS' if ok else 'FAIL'}")
    if not checks:
        print("must-show: given on the rotated target; add it to --targets")
    if args.json:
        write_json(args.json, {"config": {"epochs": config.epochs, "batch": config.batch, "seed": config.seed,
                                          "orders": args.orders,
                                          "precision": config.precision().to_dict()},
                               "figures_from": SOURCES, "rows": rows,
                               "must_show": [{"check": w, "numbers": n, "pass": ok} for w, n, ok in checks]})
    if args.png:
        plot(args.png, rows, config.epochs)


if __name__ == "__main__":
    main()
