"""The FE engine on its AXI4 master (dtl_axi_master.sv) against the ideal memory port, in RTL simulation.

digits_cnn's feature extractor, one image, FE 4×4 with 4×8 tiles, 8-bit values, on an 8-byte bus:
on the testbench's ideal memory (dram_model.sv: a read's first beat LATENCY cycles after its
request, then a beat a cycle, requests queued; the analytical model's memory) and through the AXI4
master to cocotbext-axi's AxiRam, without pauses and with every channel pausing at random about one
cycle in `--pause-period`. Cycles from the engine's perf counters (Verilator, cocotb); outputs
checked bit for bit against the golden model. AxiRam is a simulation model, not a Zynq HP port or
a DDR3 controller: the table shows what the master itself costs (write bursts only as long as the
engine's back-to-back beats, one cycle of realignment, its own request pipeline), not a board's
memory system; the bursts are counted on the bus.

Run: python benchmarks/axi_bench.py [--latency 4] [--pause-period 4] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dtlgen.generator.fe_program import build_fe_program
from dtlgen.isa.params import FEParams, FESimBuild, SimDram
from dtlgen.model import load_model
from dtlgen.model.digits_task import load_digits_task
from dtlgen.perf.fe import FEConfig, op_cycles
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim import axi_sim, fe_sim

BUS, MEMORY = 8, 1 << 18


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=4, help="the ideal memory's latency (default %(default)s)")
    parser.add_argument("--pause-period", type=int, default=4, help="AxiRam pauses ~1 cycle in N (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=1, help="wall-time repeats (median; default %(default)s)")
    args = parser.parse_args()
    console = Console()
    task = load_digits_task()
    qnet = quantize(load_model("digits_cnn"), task.retrain_x, PrecisionConfig())
    x_int = golden.quantize_input(qnet, task.test_x[:1])[0]
    cfg = FEConfig(4, 4, 4, 8)
    fe = FEParams(4, 4, 4, 8, a_bits=8, w_bits=8, bus_bytes=BUS, m_max=1024)
    program = build_fe_program(qnet, cfg, x_int, MEMORY, bus_bytes=BUS)
    reference = golden.fe_forward(qnet, x_int[None])
    predicted = sum(op_cycles(img.op, cfg, BUS, args.latency).cycles for img in program.ops)
    runs = [("ideal port (dram_model.sv, latency %d)" % args.latency, None),
            ("AXI4 master + AxiRam, no pauses", 0), (f"AXI4 master + AxiRam, pauses ~1 in {args.pause_period}", 5)]
    table = Table(title="digits_cnn FE (4 ops) on an 8-byte bus: ideal port vs AXI4")
    for column in ("memory", "bit-exact", "cycles", "vs ideal", "model (ideal)", "read bursts",
                   "write bursts / beats", "wall s"):
        table.add_column(column, justify="left" if column == "memory" else "right")
    ideal = None
    with tempfile.TemporaryDirectory(prefix="axi_bench_") as work:
        for label, seed in runs:
            walls, result = [], None
            for k in range(args.repeats):
                start = time.perf_counter()
                workdir = Path(work) / f"{len(walls)}_{seed}_{k}"
                if seed is None:
                    result = fe_sim.run(program, FESimBuild(fe, SimDram(args.latency, MEMORY)), workdir,
                                        max_cycles=10 * predicted + 10_000)
                else:
                    result = axi_sim.run_image(program.memory, program.desc_addr, len(program.ops), fe, workdir,
                                               max_cycles=10 * predicted + 20_000, pause_seed=seed,
                                               pause_period=args.pause_period)
                walls.append(time.perf_counter() - start)
            exact = all(np.array_equal(program.read(result.memory, i), reference[img.layer][0])
                        for i, img in enumerate(program.ops))
            cycles = sum(result.cycles)
            ideal = ideal or cycles
            bursts = ("–", "–") if seed is None else \
                (f"{result.read_bursts:,}", f"{result.write_bursts:,} / {result.write_beats:,}")
            table.add_row(label, "yes" if exact else "NO", f"{cycles:,}", f"{cycles / ideal:.3f}×",
                          f"{predicted:,}" if seed is None else "–", *bursts, f"{statistics.median(walls):.1f}")
    console.print(table)
    console.print(f"Source: RTL simulation (Verilator via cocotb; the AXI4 slave cocotbext-axi's AxiRam). Machine: "
                  f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; wall time "
                  "includes Verilator builds when not cached.")


if __name__ == "__main__":
    main()
