"""The FE engine on the testbench memory with DDR-like timing (rows, banks, refresh) against the ideal
memory the analytical model assumes, in RTL simulation.

Layers on pynq-z2's memory bus at 40 cycles of latency (16 bytes: two ganged 8-byte HP ports, board file): digits_cnn's feature extractor (FE 4×4,
4×8 tiles; compute-bound), a 64→64 3×3 convolution on a 4×4 map (FE 8×8, 4×4 tiles; its weights
stream through every trip, so the memory side sets the pace), and a 256→256 1×1 convolution on 4×4
maps running a batch of 8 in one descriptor (FE 16×8, 32×4 tiles), twice: its 4 KB samples one after
another (images two rows apart: pairs share a bank, and every visit reopens a row), then an odd number
of rows apart (`isa.fe.image_pitch`, the layout `dtlgen generate` makes for a board with DRAM timing). The DDR-like memory
(`dtlgen.isa.params.DdrTiming`, dram_model.sv) takes pynq-z2's board file timing (dram.row_bytes ..
dram.refresh_cycles), a DDR3-1066 x16 part seen from a 90 MHz fabric (the ganged ports keep a 2 KB page
of the engine's memory in one row): 2 KB rows in 8 banks, a row miss 6 cycles (precharge + activate,
about 60 ns with the controller),
refresh 24 cycles every 702 (260 ns every 7.8 µs). Cycles from the engine's perf counters
(Verilator, cocotb), outputs checked bit for bit against the golden model. The model columns are
the analytical model on the ideal memory and with the DDR-like memory's closed form
(`dtlgen.perf.fe.op_cycles(..., ddr=)`: rows each trip's streams open, refresh as an expectation over
where it falls), its error against the RTL on the DDR-like memory for the whole run and its worst
descriptor. `--networks` adds whole feature extractors of the model zoo (one image, FE 16×16, 8×8
tiles, 8-bit; about a minute each after a 2-minute build).

`--prefetch` gives every case's FE the read FIFO of prefetched requests (`fe.prefetch` 1: the ops the
model finds faster that way prefetch, as `dtlgen generate` makes them), to measure the closed form on them.

Run: python benchmarks/ddr_bench.py [--networks vgg16_cifar resnet18_cifar mobilenet_v1_cifar] [--prefetch]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from torch import nn

from dtlgen.boards import load_board
from dtlgen.generator.fe_program import build_fe_program
from dtlgen.isa.params import FEParams, FESimBuild, SimDram
from dtlgen.model import import_module, load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.model.digits_task import load_digits_task
from dtlgen.perf.fe import FEConfig, ddr_timing, engine_prefetch_beats, op_cycles
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim import fe_sim

PYNQ_Z2 = load_board("pynq-z2")  # its DRAM port and timing (board file: dram)
BUS, LATENCY, MEMORY = int(PYNQ_Z2.dram_bytes_per_cycle), PYNQ_Z2.dram_latency_cycles, 1 << 18
DDR3 = ddr_timing(PYNQ_Z2)


def cases(networks=()):
    """(label, quantised network, images (B, C, H, W), FE config, bias table depth, DRAM row bytes the
    program's batch layout spreads its images over: isa.fe.image_pitch) per row."""
    task = load_digits_task()
    digits = quantize(load_model("digits_cnn"), task.retrain_x, PrecisionConfig())
    yield "digits_cnn FE (compute-bound)", digits, golden.quantize_input(digits, task.test_x[:1]), FEConfig(4, 4, 4, 8), \
        1024, 0
    rng = np.random.default_rng(0)
    wide = import_module(nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()).eval(), (64, 4, 4))
    qnet = quantize(wide, rng.standard_normal((4, 64, 4, 4)), PrecisionConfig())
    yield "conv 64→64 3×3 on 4×4 (memory-bound)", qnet, golden.quantize_input(qnet, rng.standard_normal((1, 64, 4, 4))), \
        FEConfig(8, 8, 4, 4), 1024, 0
    # a batch of 8 in one descriptor: each 4 KB sample is two DRAM rows, so images one after another sit
    # in the same bank pairwise and every visit reopens a row; a pitch of an odd number of rows spreads them
    pointwise = import_module(nn.Sequential(nn.Conv2d(256, 256, 1), nn.ReLU()).eval(), (256, 4, 4))
    qnet = quantize(pointwise, rng.standard_normal((4, 256, 4, 4)), PrecisionConfig())
    batch = golden.quantize_input(qnet, rng.standard_normal((8, 256, 4, 4)))
    for label, row_bytes in (("samples one after another", 0), ("samples an odd number of rows apart", DDR3.row_bytes)):
        yield f"conv 256→256 1×1 on 4×4, batch 8 ({label})", qnet, batch, FEConfig(16, 8, 32, 4), 256, row_bytes
    for name in networks:
        network = load_model(name)
        x = calibration_inputs(network, 0, 1)
        qnet = quantize(network, x, PrecisionConfig())
        m_max = 1 << max(0, (max(layer.m for layer in network.frozen_layers) - 1).bit_length())
        yield f"{name} FE (16×16, 8×8 tiles)", qnet, golden.quantize_input(qnet, x[:1]), FEConfig(16, 16, 8, 8), m_max, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="*", default=[], help="zoo models whose whole FE to add")
    parser.add_argument("--prefetch", action="store_true", help="every FE with the read FIFO of prefetched requests")
    args = parser.parse_args()
    console = Console(width=200)
    table = Table(title=f"FE on the ideal memory vs DDR-like timing ({DDR3})")
    for column in ("layer(s)", "model (ideal)", "RTL ideal", "RTL DDR-like", "DDR cost", "model (DDR-like)",
                   "model error (all / worst descriptor)", "bit-exact", "wall s"):
        table.add_column(column, justify="left" if column == "layer(s)" else "right")
    with tempfile.TemporaryDirectory(prefix="ddr_bench_") as work:
        for label, qnet, x_int, cfg, m_max, row_bytes in cases(args.networks):
            cfg = replace(cfg, prefetch=int(args.prefetch))
            # as `dtlgen generate` makes it for pynq-z2: the ops the model finds faster so prefetch their requests
            program = build_fe_program(qnet, cfg, x_int, m_max=m_max, bus_bytes=BUS, dram_row_bytes=row_bytes,
                                       latency=LATENCY)
            memory = max(MEMORY, len(program.memory))
            reference = golden.fe_forward(qnet, x_int)
            params = FESimBuild(FEParams.for_array(cfg, BUS, m_max, pf_beats=engine_prefetch_beats(cfg, LATENCY)),
                                SimDram(LATENCY, memory))
            predicted = sum(op_cycles(img.op, cfg, BUS, LATENCY).cycles for img in program.ops)
            with_ddr = [op_cycles(img.op, cfg, BUS, LATENCY, DDR3).cycles for img in program.ops]
            cycles, exact, start = [], True, time.perf_counter()
            for ddr in (None, DDR3):
                workdir = Path(work) / f"{len(cycles)}_{cfg.tm}"
                result = fe_sim.run_image(program.memory, program.desc_addr, len(program.ops), params, workdir,
                                          max_cycles=20 * predicted + 10_000, ddr=ddr)
                cycles.append(result.cycles)
                exact &= all(np.array_equal(program.read_images(result.memory, i),
                                            reference[img.layer][img.image0:img.image0 + img.op.total_images])
                             for i, img in enumerate(program.ops))
            ideal, ddr_cycles = sum(cycles[0]), sum(cycles[1])
            errors = [(abs(m / r - 1), m / r - 1, img.op.name)
                      for m, r, img in zip(with_ddr, cycles[1], program.ops)]
            _, worst, worst_name = max(errors)
            ahead = sum(img.op.prefetch for img in program.ops)
            label += f" ({ahead} of {len(program.ops)} descriptors prefetch)" if ahead else ""
            table.add_row(label, f"{predicted:,}", f"{ideal:,}", f"{ddr_cycles:,}", f"{ddr_cycles / ideal - 1:+.2%}",
                          f"{sum(with_ddr):,}", f"{sum(with_ddr) / ddr_cycles - 1:+.2%} / {worst:+.2%} ({worst_name})",
                          "yes" if exact else "NO", f"{time.perf_counter() - start:.1f}")
    console.print(table)
    console.print(f"Source: RTL simulation (Verilator via cocotb; the testbench memory dram_model.sv), the model "
                  f"dtlgen.perf.fe. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
                  f"{platform.python_version()}; wall time includes Verilator builds when not cached.")


if __name__ == "__main__":
    main()
