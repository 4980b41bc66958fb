"""FE engine benchmark: whole feature extractors simulated in RTL against the analytical model.

For each (network, board, design, batch): the FE part of a batch of images runs in Verilator
(cocotb, free running), layer after layer, each layer as few descriptors as the engine allows
(a descriptor runs every image of its batch with each weight tile it loads: dtlgen.perf.fe, Batches);
the table gives measured and predicted cycles and GOPs at the design clock, their error,
the array efficiency (useful MACs / (cycles × tm·tn)) overall and on the compute-bound layers, the
simulator's speed and the wall time. Designs come from the DSE (`--prefer throughput`, the CLI's
default budget, an inference-only workload so that the time objective is the FE's alone, at the
largest batch asked for; arrays and tiles up to 32×32, 8-bit) unless `--design FILE` is given;
every figure says where it came from.

Run: python benchmarks/fe_bench.py [--models vgg16_cifar resnet18_cifar mobilenet_v1_cifar]
                                   [--boards pynq-z2 zcu104] [--batch 1 8] [--pop 100 --gens 100] [--design FILE]
                                   [--array TM TN TR TC] [--prefetch auto|search|off]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dtlgen.boards import load_board
from dtlgen.dse import Space, run_dse
from dtlgen.dse.problem import PREFETCH_MODES, Fixed, Workload
from dtlgen.errors import DtlgenError
from dtlgen.generator.fe_program import build_fe_program
from dtlgen.generator.project import quantize_for_design, sim_params
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import Design, load_design
from dtlgen.perf.fe import batched_ops, fe_ops, op_cycles
from dtlgen.quant import golden
from dtlgen.sim import fe_sim

# The FE's throughput alone: no re-training in the time objective (the RL engine then takes what is left).
FE_WORKLOAD = Workload(inference_images=1000, retrain_images=0)
# Arrays the simulator builds in reasonable time (up to 32x32 multipliers) and the CLI's tiles (up to
# 32x32 outputs: a tile of 32 rows holds eight images of a 4x4 map, dtlgen.isa.fe.max_images), 8-bit.
BENCH_SPACE = Space(fe_tm=tuple(range(4, 33)), fe_tn=tuple(range(4, 33)), fe_tr=tuple(range(2, 33)),
                    fe_tc=tuple(range(2, 33)), fe_w_bits=(8,), fe_a_bits=(8,))


def array_space(array: list[int] | None, program: str) -> Space:
    """BENCH_SPACE, or with `--array TM TN TR TC` only that FE array and tiling (each 1..32); a bad one exits."""
    if not array:
        return BENCH_SPACE
    tm, tn, tr, tc = array
    if min(array) < 1 or max(tm, tn) > 32 or max(tr, tc) > 32:
        sys.exit(f"{program}: error: --array {tm} {tn} {tr} {tc}: each must be 1..32 (the bench's search space)")
    return replace(BENCH_SPACE, fe_tm=(tm,), fe_tn=(tn,), fe_tr=(tr,), fe_tc=(tc,))


def bench_one(model: str, board_name: str, design: Design | None, pop: int, gens: int, batch: int = 1,
              dse_batch: int = 1, space: Space = BENCH_SPACE, network=None, prefetch: str = "auto") -> dict:
    """One row: `model` (a zoo name; or the IR `network` under that name) on the board's FE engine."""
    network, board = network or load_model(model), load_board(board_name)
    calib = calibration_inputs(network, 0, max(batch, 1))
    source = "given"
    if design is None:
        result = run_dse(network, board, calib, None, pop, gens, seed=1, prefer="throughput", space=space,
                         fixed=Fixed(fe_batch=dse_batch, prefetch=prefetch), workload=FE_WORKLOAD)
        design = Design.from_dict(result.design)
        source = f"DSE (throughput at batch {dse_batch}, pop {pop} x {gens}, read FIFO {prefetch}" + \
            (f", the array {space.fe_tm[0]}x{space.fe_tn[0]} tiles {space.fe_tr[0]}x{space.fe_tc[0]} alone)"
             if space is not BENCH_SPACE else ")")
    qnet = quantize_for_design(network, design, calib)
    x_int = golden.quantize_input(qnet, calib[:batch])
    m_max = 1 << max(0, (max(l.m for l in network.frozen_layers) - 1).bit_length())
    program = build_fe_program(qnet, design.fe, x_int, m_max=m_max, bus_bytes=int(board.dram_bytes_per_cycle),
                               latency=board.dram_latency_cycles)
    params = sim_params(design, board, len(program.memory), m_max)
    predicted = [op_cycles(img.op, design.fe, params.fe.bus_bytes, params.dram.latency).cycles for img in program.ops]
    start = time.perf_counter()
    fe_sim.build(params)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as work:
        sim = fe_sim.run(program, params, Path(work), max_cycles=4 * sum(predicted) + 10_000)
    run_s = sim.run_s  # the cocotb run alone, as `dtlgen sim` reports it (the build is timed above)
    reference = golden.fe_forward(qnet, x_int)
    exact = all(np.array_equal(program.read_images(sim.memory, i), reference[img.layer][img.image0:img.image0 + img.op.total_images])
                for i, img in enumerate(program.ops))
    macs = [img.op.macs * img.op.total_images for img in program.ops]
    lanes = design.fe.tm * design.fe.tn
    f = design.clock_mhz * 1e6
    measured, model_total = sum(sim.cycles), sum(predicted)
    # Compute-bound dense convs whose input channels can fill the array (the 3-channel input layer
    # cannot use a wider tn whatever the schedule): where array efficiency is the schedule's figure.
    compute_bound = [i for i, img in enumerate(program.ops)
                     if img.op.kind == "conv" and not img.op.depthwise and img.op.n >= design.fe.tn
                     and op_cycles(img.op, design.fe, params.fe.bus_bytes, params.dram.latency).bound == "compute"]
    cb_macs = sum(macs[i] for i in compute_bound)
    cb_cycles = sum(sim.cycles[i] for i in compute_bound)
    errors = [abs(m - p) / m for m, p in zip(sim.cycles, predicted) if m]
    return {"model": model, "board": board_name, "design": design, "source": source, "bit_exact": exact, "batch": batch,
            "descriptors": len(program.ops), "prefetching": sum(img.op.prefetch for img in program.ops),
            "measured_cycles": measured, "predicted_cycles": model_total,
            "measured_gops": 2 * sum(macs) / (measured / f) / 1e9, "predicted_gops": 2 * sum(macs) / (model_total / f) / 1e9,
            "error": (model_total - measured) / measured, "max_layer_error": max(errors),
            "efficiency": sum(macs) / (measured * lanes),
            "compute_bound_efficiency": cb_macs / (cb_cycles * lanes) if cb_cycles else None,  # none such
            "sim_cycles_per_s": measured / run_s, "build_s": build_s, "run_s": run_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16_cifar", "resnet18_cifar", "mobilenet_v1_cifar"])
    parser.add_argument("--boards", nargs="+", default=["pynq-z2", "zcu104"])
    parser.add_argument("--pop", type=int, default=100)
    parser.add_argument("--gens", type=int, default=100)
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="images per run (each a row of the table)")
    parser.add_argument("--design", help="use this design.json instead of running the DSE")
    parser.add_argument("--array", type=int, nargs=4, metavar=("TM", "TN", "TR", "TC"),
                        help="the DSE searches only this FE array and tiling (the LUT multipliers and bits' fractions "
                             "are still its choice)")
    parser.add_argument("--prefetch", choices=PREFETCH_MODES, default="auto",
                        help="the FE's read FIFO of prefetched requests as dtlgen dse --prefetch takes it (default "
                             "%(default)s: each design of the front gets it where it fits and is faster)")
    args = parser.parse_args()
    space = array_space(args.array, "fe_bench")
    console = Console(width=200)
    try:
        design = load_design(args.design) if args.design else None
    except DtlgenError as err:
        sys.exit(f"fe_bench: error: {err}")
    table = Table(title=f"FE engine: RTL simulation (Verilator) vs analytical model, a batch of images "
                        f"({platform.machine()}, {os.cpu_count()} cores)")
    for column in ("model / board", "design (FE tm x tn, tr x tc, bits)", "clock", "batch", "bit-exact", "measured cycles",
                   "predicted cycles", "measured GOPs", "predicted GOPs", "network error", "max layer error",
                   "array efficiency", "compute-bound layers", "sim speed", "build + run"):
        table.add_column(column, justify="right")
    sources = set()
    for model in args.models:
        for board in args.boards:
            chosen, source = design, None  # the DSE runs once per model and board, for the first batch
            for batch in args.batch:
                r = bench_one(model, board, chosen, args.pop, args.gens, batch, max(args.batch), space,
                              prefetch=args.prefetch)
                chosen, source = r["design"], source or r["source"]
                fe = r["design"].fe
                sources.add(source)
                table.add_row(f"{model} / {board}", f"{fe.tm}x{fe.tn}, {fe.tr}x{fe.tc}, w{fe.w_bits}/a{fe.a_bits}, "
                              f"{fe.lut_mults} LUT mults" + (", read FIFO" if fe.prefetch else ""),
                              f"{r['design'].clock_mhz:g} MHz",
                              f"{batch} ({r['descriptors']} desc., {r['prefetching']} prefetch)",
                              "yes" if r["bit_exact"] else "NO",
                              f"{r['measured_cycles']:,}", f"{r['predicted_cycles']:,}", f"{r['measured_gops']:.2f}",
                              f"{r['predicted_gops']:.2f}", f"{100 * r['error']:+.2f} %",
                              f"{100 * r['max_layer_error']:.2f} %", f"{100 * r['efficiency']:.1f} %",
                              "–" if r["compute_bound_efficiency"] is None else f"{100 * r['compute_bound_efficiency']:.1f} %",
                              f"{r['sim_cycles_per_s'] / 1e6:.2f} M cycles/s", f"{r['build_s']:.0f} + {r['run_s']:.0f} s")
    console.print(table)
    console.print(f"Designs: {', '.join(sorted(sources))}. Measured: RTL simulation (cocotb + Verilator, perf "
                  "counters). Predicted: analytical model (dtlgen.perf). GOPs at the design clock, ops = 2 x useful "
                  "MACs. Compute-bound layers: dense convs the model calls compute bound with N >= tn. Prefetch: "
                  "descriptors whose requests go out a trip ahead (dtlgen.isa.fe, Prefetched requests).", soft_wrap=True)


if __name__ == "__main__":
    main()
