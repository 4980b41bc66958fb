"""`dtlgen generate`: write a project directory for (network, design, board).

Layout (DESIGN.md §3):
  design.json            the design, as given
  report.json            the analytical model's per-layer prediction for this design
  rtl/                   the engine sources (copied from hw_templates/rtl), dtl_params.svh,
                         dram_init.hex (descriptors, biases, tile-ordered weights, one input sample)
  sim/                   test_fe_engine.py (the cocotb test), params.json (the simulation build),
                         program.json (the descriptors' layers, addresses, shapes, predicted cycles),
                         expected.npz (the golden model's outputs and the memory image)
Everything is written to a temporary directory and moved into place at the end.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from dtlgen.atomic import atomic_directory, check_destination, write_json
from dtlgen.boards import Board
from dtlgen.errors import DesignError
from dtlgen.generator.fe_program import build_fe_program
from dtlgen.model.ir import Network
from dtlgen.perf import Design, predict
from dtlgen.perf.fe import op_cycles, pipeline_depth
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, QuantizedNetwork, quantize
from dtlgen.generator.rtl import RTL_SOURCES, FESimParams, rtl_dir, write_hex

MARKER = "report.json"
COCOTB_TEST = "test_fe_engine.py"


def quantize_for_design(network: Network, design: Design, calib_x: np.ndarray) -> QuantizedNetwork:
    precision = PrecisionConfig(design.fe.w_bits, design.fe.a_bits, design.rl.bits, design.rl.batch,
                                design.rl.lr_shift)
    return quantize(network, calib_x, precision)


def sim_params(design: Design, board: Board, memory_bytes: int, m_max: int) -> FESimParams:
    bus = board.dram_bytes_per_cycle
    if bus != int(bus) or bus < 1:
        raise DesignError(f"board {board.name}: dram.bytes_per_cycle={bus} must be a whole number of bytes "
                          "for the simulated memory port")
    fe = design.fe
    return FESimParams(fe.tm, fe.tn, fe.tr, fe.tc, int(bus), board.dram_latency_cycles, pipeline_depth(fe.tn),
                       memory_bytes, fe.a_bits, fe.w_bits, m_max)


def generate_project(network: Network, design: Design, board: Board, calib_x: np.ndarray, sample_x: np.ndarray,
                     out_dir: Path, progress: Callable[[str], None] = lambda message: None) -> Path:
    """Write the project for the frozen (FE) part of `network`; returns the project path."""
    out_dir = check_destination(Path(out_dir), MARKER)
    progress("quantising with the design's precision")
    qnet = quantize_for_design(network, design, calib_x)
    x_int = golden.quantize_input(qnet, sample_x[None])[0]
    widest = max((layer.m for layer in network.frozen_layers if layer.has_weights), default=1)
    m_max = 1 << max(0, (widest - 1).bit_length())
    program = build_fe_program(qnet, design.fe, x_int, m_max=m_max)
    params = sim_params(design, board, len(program.memory), m_max)
    reference = golden.fe_forward(qnet, x_int[None])
    prediction = predict(network, design, board)
    progress(f"writing the project ({len(program.ops)} FE descriptors, {len(program.memory) >> 10} KiB DRAM image)")
    with atomic_directory(out_dir, MARKER) as staging:
        rtl, sim = staging / "rtl", staging / "sim"
        rtl.mkdir()
        sim.mkdir()
        for name in RTL_SOURCES:
            shutil.copy(rtl_dir() / name, rtl / name)
        (rtl / "dtl_params.svh").write_text(_params_header(params, design))
        write_hex(rtl / "dram_init.hex", program.memory)
        shutil.copy(rtl_dir() / "fe_cocotb_test.py", sim / COCOTB_TEST)
        write_json(sim / "params.json", asdict(params))
        ops = []
        for img in program.ops:
            ops.append({"name": img.op.name, "layer": img.layer, "kind": img.op.kind, "pool": img.op.pool,
                        "macs": img.op.macs, "out_addr": img.out_addr, "out_shape": list(img.out_shape),
                        "predicted_cycles": op_cycles(img.op, design.fe, params.bus_bytes, params.latency).cycles})
        write_json(sim / "program.json", {"desc_addr": program.desc_addr, "clock_mhz": design.clock_mhz,
                                          "model": network.name, "board": board.name, "ops": ops})
        np.savez_compressed(sim / "expected.npz", memory=program.memory,
                            **{f"op{i}": reference[img.layer][0] for i, img in enumerate(program.ops)})
        write_json(staging / "design.json", design.to_dict())
        write_json(staging / "report.json", {"model": network.name, "board": board.name,
                                             "design": design.to_dict(), "predicted": prediction.to_dict()})
    return out_dir


def _params_header(params: FESimParams, design: Design) -> str:
    lines = ["// Generated by dtlgen: parameters of this project's FE engine (the simulation build passes the",
             "// same values with -G; board tops include this file).", "`ifndef DTL_PARAMS_SVH",
             "`define DTL_PARAMS_SVH"]
    for key, value in params.hdl_parameters().items():
        if not isinstance(value, str):
            lines.append(f"localparam int DTL_FE_{key} = {value};")
    lines.append(f"localparam int DTL_CLOCK_KHZ = {int(round(design.clock_mhz * 1000))};")
    lines.append("`endif")
    return "\n".join(lines) + "\n"


def load_program(project: Path) -> dict:
    return json.loads((Path(project) / "sim" / "program.json").read_text())
