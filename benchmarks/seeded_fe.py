"""FE cycles with seeded frozen convs whose ±1 weights the engine generates on chip, against stored weights.

For each zoo model, as the zoo builds it (frozen weights read from DRAM at fe.w_bits) and with every
frozen conv seeded (`dtlgen.model.seeded.seed_convs`: a dense ±1 conv's weights made by the engine's
generator, no weight traffic; `dtlgen.isa.fe`, Weights generated on chip), the DSE picks a pynq-z2
design (throughput, as benchmarks/fe_bench.py; `--array` fixes its FE array and tiles). The seeded
model's design holds the generator (its DSPs and LUTs) or keeps the weights stored (`fe.gen`), as the
search finds best. Three RTL simulations (Verilator): the stored model on its own design, the stored
model on the seeded model's design (the same hardware, less the generator), and the seeded model on
it. Every image bit-exact against the golden model, measured cycles against the analytical model's,
and each design checked against the board's resources by the analytical resource model. The weights are
the zoo's seeded random ones and untrained scales: the figures show the engine, not accuracy.

Run: python benchmarks/seeded_fe.py [--models vgg16_cifar resnet18_cifar] [--batch 1] [--array TM TN TR TC]
                                   [--pop 100] [--gens 100]
"""

from __future__ import annotations

import argparse
import os
import platform

from rich.console import Console
from rich.table import Table

from fe_bench import array_space, bench_one
from dtlgen.boards import load_board
from dtlgen.model import import_module, load_factory, resolve_split
from dtlgen.model.seeded import seed_frozen_convs
from dtlgen.perf import predict
from dtlgen.perf.fe import generable_convs


def networks(model: str):
    """The zoo model as built, and with its frozen convs seeded (±1, seed 1)."""
    result = []
    for seeded in (False, True):
        module, shape, split, name = load_factory(model)
        network = import_module(module, shape, name)
        network = network.with_split(resolve_split(network, split))
        if seeded:
            seed_frozen_convs(module, network, 1)
            network = import_module(module.eval(), shape, name)
            network = network.with_split(resolve_split(network, split))
        result.append(network)
    return result


def fits(network, design, board_name: str = "pynq-z2") -> str:
    """'yes', or the analytical resource model's first violation, for `network` on `design`."""
    violations = predict(network, design, load_board(board_name)).violations
    return "yes" if not violations else violations[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16_cifar", "resnet18_cifar"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--array", type=int, nargs=4, metavar=("TM", "TN", "TR", "TC"),
                        help="both searches keep this FE array and tiling (default: the bench's whole space)")
    parser.add_argument("--pop", type=int, default=100)
    parser.add_argument("--gens", type=int, default=100)
    args = parser.parse_args()
    space = array_space(args.array, "seeded_fe")
    table = Table(title=f"FE on pynq-z2, batch {args.batch}: stored vs seeded frozen convs, each design the DSE's "
                        f"(throughput), RTL simulation vs analytical model ({platform.machine()}, {os.cpu_count()} cores)")
    for column in ("model", "design (DSE for)", "weights", "fits pynq-z2 (model)", "bit-exact", "measured cycles",
                   "predicted cycles", "measured GOPs", "cycles vs stored, same design", "vs stored, its own design"):
        table.add_column(column, justify="right")
    for model in args.models:
        stored, seeded = networks(model)
        own = bench_one(model, "pynq-z2", None, args.pop, args.gens, args.batch, args.batch, space, network=stored)
        row = bench_one(model, "pynq-z2", None, args.pop, args.gens, args.batch, args.batch, space, network=seeded)
        same = bench_one(model, "pynq-z2", row["design"], args.pop, args.gens, args.batch, args.batch, space,
                         network=stored)
        gen = row["design"].fe.gen
        stored_ones = ", ".join(name for name in generable_convs(seeded) if gen != 1 and name not in (gen or ()))
        where = "generated on chip" + (f" but {stored_ones}" if stored_ones else "") if gen else "stored"
        for label, weights, r, network in (("stored", "stored (DRAM)", own, stored),
                                           ("seeded", "stored (DRAM)", same, stored),
                                           ("seeded", f"seeded, {where}", row, seeded)):
            d = r["design"]
            table.add_row(model, f"{d.fe.tm}x{d.fe.tn}, {d.fe.tr}x{d.fe.tc}, w{d.fe.w_bits}/a{d.fe.a_bits}, "
                          f"{d.clock_mhz:g} MHz ({label})", weights, fits(network, d),
                          "yes" if r["bit_exact"] else "NO", f"{r['measured_cycles']:,}", f"{r['predicted_cycles']:,}",
                          f"{r['measured_gops']:.2f}",
                          f"{100 * (r['measured_cycles'] / same['measured_cycles'] - 1):+.1f} %" if r is not own else "",
                          f"{100 * (r['measured_cycles'] / own['measured_cycles'] - 1):+.1f} %")
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
