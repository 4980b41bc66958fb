"""Sparse FE weights (issue 19): a pruned feature extractor in RTL simulation against the same one dense.

The network's frozen layers are pruned by global magnitude (`dtlgen.model.prune`, `--prune`, default
70 %); the DSE chooses a design for the pruned network (`--prefer throughput`, an inference-only
workload, on the array `--array` unless `--design FILE` is given), and both the dense and the pruned
network run on that design's FE engine in Verilator: the pruned one's convs stored sparse where that
takes fewer beats (`dtlgen.perf.fe.stores_sparse`: a header, bitmaps and the kept weights per trip
tile, expanded on chip). The table gives, per network, the weights in DRAM, bit-exactness against the
golden model, measured and predicted cycles, GOPs counted with the dense network's operations, and
the cycles saved.

Run: python benchmarks/sparse_fe.py [--model vgg16_cifar] [--board pynq-z2] [--prune 0.7] [--batch 1]
                                    [--array 20 32 17 19] [--pop 24 --gens 10] [--design FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dtlgen.boards import load_board
from dtlgen.errors import DtlgenError
from dtlgen.model import load_model
from dtlgen.model.prune import check_prune, prune
from dtlgen.perf import load_design
from dtlgen.perf.fe import fe_ops, stored_weight_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fe_bench import array_space, bench_one  # noqa: E402  (the FE bench's row: DSE, RTL run, model)


def weight_bytes(network, design, board) -> tuple[int, int]:
    """Bytes of the FE's stored weights on `design`'s engine, and how many convs are stored sparse."""
    bus = int(board.dram_bytes_per_cycle)
    ops = fe_ops(network, design.fe, bus)
    return stored_weight_bytes(ops, design.fe, bus), sum(op.sparse is not None for op in ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16_cifar")
    parser.add_argument("--board", default="pynq-z2")
    parser.add_argument("--prune", type=float, default=0.7, help="share of the frozen layers' weights removed")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--array", type=int, nargs=4, default=[20, 32, 17, 19], metavar=("TM", "TN", "TR", "TC"),
                        help="the DSE searches only this FE array and tiling (default 20 32 17 19: the fastest "
                             "array the model finds for the pruned vgg16_cifar on pynq-z2 with 17x19 tiles)")
    parser.add_argument("--pop", type=int, default=24)
    parser.add_argument("--gens", type=int, default=10)
    parser.add_argument("--design", help="use this design.json instead of running the DSE")
    args = parser.parse_args()
    try:
        share = check_prune({"fe": args.prune})["fe"]
        design = load_design(args.design) if args.design else None
        dense = load_model(args.model)
        pruned = prune(dense, {"fe": share})
    except DtlgenError as err:
        sys.exit(f"sparse_fe: error: {err}")
    board = load_board(args.board)
    space = array_space(args.array, "sparse_fe")
    console = Console(width=200)
    rows = []
    for name, network in (("pruned", pruned), ("dense", dense)):
        console.print(f"{args.model} {name}: {'DSE, ' if design is None else ''}RTL simulation ...")
        r = bench_one(args.model, args.board, design, args.pop, args.gens, args.batch, args.batch, space, network)
        design = r["design"]  # the dense network runs on the pruned one's design
        rows.append((name, r, *weight_bytes(network, design, board)))
    fe = design.fe
    table = Table(title=f"Sparse FE weights: {args.model} on {args.board}, FE {fe.tm}x{fe.tn}, tiles {fe.tr}x{fe.tc}, "
                        f"w{fe.w_bits}/a{fe.a_bits}, {fe.lut_mults} LUT mults, {design.clock_mhz:g} MHz, batch "
                        f"{args.batch} ({platform.machine()}, {os.cpu_count()} cores)")
    for column in ("network", "weights in DRAM", "convs sparse", "bit-exact", "measured cycles", "predicted cycles",
                   "error", "GOPs (dense ops)", "cycles vs dense", "sim speed"):
        table.add_column(column, justify="right")
    dense_cycles = rows[1][1]["measured_cycles"]
    for name, r, w_bytes, sparse in rows:
        label = f"{name} (FE {100 * share:.0f} % pruned)" if name == "pruned" else name
        table.add_row(label, f"{w_bytes / 1e6:.2f} MB", str(sparse), "yes" if r["bit_exact"] else "NO",
                      f"{r['measured_cycles']:,}", f"{r['predicted_cycles']:,}", f"{100 * r['error']:+.2f} %",
                      f"{r['measured_gops']:.2f}", f"{100 * (r['measured_cycles'] / dense_cycles - 1):+.1f} %",
                      f"{r['sim_cycles_per_s'] / 1e6:.2f} M cycles/s")
    console.print(table)
    console.print(f"Design: {rows[0][1]['source'] if args.design is None else args.design}, chosen for the pruned "
                  "network; the dense network runs on the same engine. Measured: RTL simulation (cocotb + Verilator, "
                  "perf counters). Predicted: analytical model (dtlgen.perf). GOPs at the design clock, ops = 2 x the "
                  "dense network's MACs.", soft_wrap=True)


if __name__ == "__main__":
    main()
