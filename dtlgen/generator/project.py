"""`dtlgen generate`: write a project directory for (network, design, board).

Layout (DESIGN.md §3):
  design.json            the design, as given
  report.json            the analytical model's per-layer prediction for this design
  rtl/                   the engine sources (copied from hw_templates/rtl), dtl_params.svh,
                         dram_init.hex (descriptors, biases, tile-ordered weights, one input sample)
  hls/                   the engines' Vitis HLS C++ (dtl_fe_engine.cpp, dtl_rl_engine.cpp), dtl_params.h, the
                         C-simulation testbenches tb_fe.cpp / tb_rl.cpp and their golden vectors in tb_data/
  sim/                   test_fe_engine.py (the cocotb test), params.json (the simulation build),
                         program.json (the descriptors' layers, addresses, shapes, predicted cycles),
                         expected.npz (the golden model's outputs and the memory image);
                         with retrainable layers also test_rl_engine.py (the host loop's testbench),
                         rl_layout.json (the RL engine's layout), rl_train.npz (the re-training set's
                         cached FE features, labels, initial weights), rl_quant.json (the RL layers'
                         shapes and fixed-point formats, for the golden model's replay)
  .dtlgen-manifest.json  every file dtlgen wrote here and its SHA-256 (dtlgen.atomic)
A project holds data and the sources dtlgen wrote, never anything dtlgen would unpickle or import.
Everything is written to a temporary directory and moved into place at the end.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from dtlgen.atomic import atomic_directory, check_destination, write_json
from dtlgen.boards import Board
from dtlgen.errors import DesignError
from dtlgen.generator.fe_program import build_fe_program
from dtlgen.generator.driver import write_driver
from dtlgen.generator.ecp5 import board_core, write_ecp5_project
from dtlgen.generator.hls import write_hls
from dtlgen.generator.xilinx import ENGINE_IPS, check_vivado_board, write_xilinx_project
from dtlgen.generator.rl_program import plan_rl
from dtlgen.host.rl_program import RLLayout
from dtlgen.isa.params import FULL_SIZE, FESimBuild, SimDram
from dtlgen.model.data import check_labels, output_classes
from dtlgen.model.ir import Network
from dtlgen.perf import Design, predict
from dtlgen.perf.fe import engine_params, fe_buffer_sizing, fe_ops, op_cycles, widest_channels
from dtlgen.perf.validate import check_design
from dtlgen.quant import golden
from dtlgen.quant.record import rl_view_to_dict
from dtlgen.quant.quantize import PrecisionConfig, QuantizedNetwork, quantize
from dtlgen.generator.rtl import RTL_SOURCES, rtl_dir, write_hex

KIND = "project"  # the manifest kind of a project folder (dtlgen.atomic)
COCOTB_TEST = "test_fe_engine.py"
RL_COCOTB_TEST = "test_rl_engine.py"
RL_SOURCES = ("rl_engine.sv", "rl_tb_top.sv")  # beside RTL_SOURCES, which hold dtl_ram.sv
FLOWS = ("auto", "vivado", "open-ecp5")


def quantize_for_design(network: Network, design: Design, calib_x: np.ndarray) -> QuantizedNetwork:
    precision = PrecisionConfig(design.fe.w_bits, design.fe.a_bits, design.rl.bits, design.rl.batch,
                                design.rl.lr_shift)
    return quantize(network, calib_x, precision, overrides=design.overrides)


def _bus_bytes(board: Board) -> int:
    bus = board.dram_bytes_per_cycle
    if bus != board.bus_bytes:
        raise DesignError(f"board {board.name}: its DRAM's usable {board.dram_usable_mb_per_s} MB/s at "
                          f"{board.clock_mhz} MHz is {bus:.4g} bytes a cycle, less than its ports' {board.bus_bytes}; "
                          "the simulated memory moves a whole beat a cycle, so the engines' measured and predicted "
                          "cycles would disagree: lower dram.port_bytes or dram.ports to the DRAM's rate")
    if bus != int(bus) or bus < 1:
        raise DesignError(f"board {board.name}: dram.bytes_per_cycle={bus} must be a whole number of bytes "
                          "for the simulated memory port")
    return int(bus)


def sim_params(design: Design, board: Board, memory_bytes: int, m_max: int) -> FESimBuild:
    """The FE simulation build for `design`: the engine full size, the board's memory port and latency."""
    return FESimBuild(engine_params(design.fe, board, _bus_bytes(board), m_max),
                      SimDram(board.dram_latency_cycles, memory_bytes))


def generate_project(network: Network, design: Design, board: Board, calib_x: np.ndarray, sample_x: np.ndarray,
                     out_dir: Path, progress: Callable[[str], None] = lambda message: None,
                     train: tuple[np.ndarray, np.ndarray] | None = None, flow: str = "auto",
                     force: bool = False, engine_ip: str = "rtl") -> Path:
    """Write the project for both engines of `network`; returns the project path.

    `sample_x` is the FE program's input: one sample, or `design.fe.batch` of them (a batch runs layer
    after layer; program.json's out_shape of a descriptor that runs several images leads with their count).
    `train` is the re-training set (float inputs, labels) whose FE features `dtlgen sim --retrain`
    re-trains on; by default the calibration inputs with seeded labels (a hardware check, not a task).
    `flow` "auto" follows the board's toolchain; "vivado" (Xilinx boards only) adds the Vitis HLS /
    Vivado project, the Makefile and the PYNQ driver; "open-ecp5" writes the RTL for the open flow.
    `engine_ip` chooses what the Vivado block design instantiates: "rtl", the SystemVerilog engines
    (the ones RTL simulation measures), or "hls", the Vitis HLS IP of the C++ engines.
    """
    if flow not in FLOWS:
        raise DesignError(f"flow '{flow}' is unknown; choose one of {', '.join(FLOWS)}")
    if engine_ip not in ENGINE_IPS:
        raise DesignError(f"engine IP '{engine_ip}' is unknown; choose one of {', '.join(ENGINE_IPS)}")
    flow = board.toolchain if flow == "auto" else flow
    if flow == "vivado":
        check_vivado_board(board)
    elif board.toolchain != flow:
        raise DesignError(f"board {board.name} is built with {board.toolchain}, not {flow}; use --flow auto or "
                          f"--flow {board.toolchain}")
    if train is not None and network.retrainable_layers:  # (the API and the CLI check their files first)
        train_x = np.asarray(train[0])
        if train_x.ndim != 1 + len(network.input_shape) or train_x.shape[1:] != tuple(network.input_shape):
            raise DesignError(f"the re-training inputs have shape {train_x.shape}; the network takes images of "
                              f"{tuple(network.input_shape)}: give (N, {', '.join(map(str, network.input_shape))})")
        train = (train_x, check_labels(train[1], len(train_x), output_classes(network), "the re-training labels"))
    out_dir = check_destination(Path(out_dir), KIND, force)
    prediction = predict(network, design, board)
    check_design(network, design, board, prediction)
    progress("quantising with the design's precision")
    qnet = quantize_for_design(network, design, calib_x)
    rl_layout = None
    if network.retrainable_layers:
        rl_layout = plan_rl(qnet, design.rl, _bus_bytes(board))
    samples = np.asarray(sample_x)
    samples = samples[None] if samples.shape == tuple(network.input_shape) else samples
    if samples.shape != (design.fe.batch, *network.input_shape):
        raise DesignError(f"the FE program's input has shape {samples.shape}; the design runs batches of "
                          f"{design.fe.batch} images of {tuple(network.input_shape)}")
    x_int = golden.quantize_input(qnet, samples)
    m_max = widest_channels(fe_ops(network, design.fe))
    program = build_fe_program(qnet, design.fe, x_int, m_max=m_max, bus_bytes=_bus_bytes(board),
                               dram_row_bytes=board.dram_ddr.row_bytes if board.dram_ddr is not None else 0,
                               latency=board.dram_latency_cycles)
    params = sim_params(design, board, len(program.memory), m_max)
    reference = golden.fe_forward(qnet, x_int)
    # what each descriptor stores: its images' outputs (in memory each image_pitch after the one before)
    outputs = [reference[img.layer][img.image0:img.image0 + img.op.total_images].reshape(img.stored_shape)
               for img in program.ops]
    progress(f"writing the project ({len(program.ops)} FE descriptors, {len(program.memory) >> 10} KiB DRAM image)")
    with atomic_directory(out_dir, KIND, force) as staging:
        rtl, sim = staging / "rtl", staging / "sim"
        rtl.mkdir()
        sim.mkdir()
        for name in RTL_SOURCES:
            shutil.copy(rtl_dir() / name, rtl / name)
        (rtl / "dtl_params.svh").write_text(params_svh(params, design, rl_layout))
        write_hex(rtl / "dram_init.hex", program.memory)
        shutil.copy(rtl_dir() / "fe_cocotb_test.py", sim / COCOTB_TEST)
        write_json(sim / "params.json", params.to_dict())
        ops = []
        bus, latency = params.fe.bus_bytes, params.dram.latency
        for img in program.ops:
            ops.append({"name": img.op.name, "layer": img.layer, "kind": img.op.kind, "pool": img.op.pool,
                        "macs": img.op.macs * img.op.total_images, "out_addr": img.out_addr,
                        "out_shape": list(img.stored_shape), "out_pitch": img.image_pitch,
                        "predicted_cycles": op_cycles(img.op, design.fe, bus, latency).cycles})
        write_json(sim / "program.json", {"desc_addr": program.desc_addr, "input_addr": program.input_addr,
                                          "input_format": qnet.input_fmt.to_dict(),
                                          "clock_mhz": design.clock_mhz, "model": network.name, "board": board.name,
                                          "ops": ops})
        np.savez_compressed(sim / "expected.npz", memory=program.memory,
                            **{f"op{i}": out for i, out in enumerate(outputs)})
        rl_data = None
        if rl_layout is not None:
            progress("writing the RL engine's layout and the re-training set's cached FE features")
            rl_data = _write_rl(staging, qnet, rl_layout, train if train is not None else _default_train(network, calib_x),
                                seeded_labels=train is None)
        progress("writing the HLS C++ engines and their C-simulation test vectors (golden model)")
        write_hls(staging, design, network.name, board.name, params, program, outputs,
                  (qnet, rl_layout, *rl_data) if rl_data is not None else None)
        if flow == "vivado":
            progress(f"writing the Vitis HLS / Vivado project for {board.name} and the PYNQ driver")
            # the RTL IP: full-size buffers; the scale banks, the weight generator, the sparse expander and the
            # depthwise delay line only where the program uses them
            features = {key: value for key, value in fe_buffer_sizing([img.op for img in program.ops], design.fe.tn).items()
                        if key not in FULL_SIZE}
            engines = {"fe": replace(params.fe, **features)} | ({"rl": rl_layout.engine} if rl_layout is not None else {})
            write_xilinx_project(staging, board, design, tuple(engines), ip=engine_ip, params=engines)
            write_driver(staging, engine_ip, int(board.bus_bytes) if engine_ip == "rtl" and board.gangs_ports else 0)
        else:
            progress(f"writing the {board.name} bitstream's top, pins and build settings (dtlgen bitstream)")
            write_ecp5_project(staging, board, design, board_core(design, board, program, m_max, rl_layout))
        write_json(staging / "design.json", replace(design, board_spec=board.to_dict()).to_dict())
        write_json(staging / "report.json", {"model": network.name, "board": board.name,
                                             "design": design.to_dict(), "predicted": prediction.to_dict()})
    return out_dir


def _default_train(network: Network, calib_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes = int(np.prod(network.layers[-1].out_shape))
    return calib_x, np.random.default_rng(0).integers(0, classes, size=len(calib_x))


def _write_rl(staging: Path, qnet: QuantizedNetwork, layout: RLLayout, train: tuple[np.ndarray, np.ndarray],
              seeded_labels: bool = False) -> tuple[np.ndarray, np.ndarray, golden.RLState]:
    """Write the RL engine's sources, layout and cached features; returns (features, labels, initial state).
    `seeded_labels`: the set is the calibration inputs with seeded labels (a hardware check, not a task),
    which rl_train.npz records so that nothing replays it as data."""
    rtl, sim = staging / "rtl", staging / "sim"
    for name in RL_SOURCES:
        shutil.copy(rtl_dir() / name, rtl / name)
    shutil.copy(rtl_dir() / "rl_cocotb_test.py", sim / RL_COCOTB_TEST)
    write_json(sim / "rl_layout.json", layout.to_dict())
    x, y = train
    feature_name = qnet.rl_layers[0].inputs[0]
    x_int = golden.quantize_input(qnet, x)
    features = golden.fe_output(qnet, x_int, feature_name)
    state = golden.initial_rl_state(qnet)
    np.savez_compressed(sim / "rl_train.npz", features=features.reshape(len(x), -1), labels=np.asarray(y),
                        **{f"w_{name}": w for name, (w, _) in state.items()},
                        **{f"b_{name}": b for name, (_, b) in state.items()},
                        **{f"m_{name}": mask.astype(np.uint8) for name, mask in (golden.rl_masks(qnet) or {}).items()},
                        seeded_labels=np.uint8(seeded_labels))
    write_json(sim / "rl_quant.json", rl_view_to_dict(qnet))
    initial = {layer.name: layer.init_seed for layer in qnet.rl_layers if layer.init_seed is not None}
    for name, spec in initial.items():  # drawn at the spec's frac: the design must hold the weights there
        frac = qnet.layers[name].w_fmt.frac
        if frac != spec["frac"]:
            raise DesignError(f"layer '{name}' starts from values drawn from seed {spec['seed']} at {spec['frac']} "
                              f"fractional bits, but the design quantises its weights at {frac}: give the design the "
                              f"override {{\"{name}\": {{\"w_frac\": {spec['frac']}}}}} (dtlgen.demo.head_from_seed does)")
    if initial:  # the layers whose initial values a host draws from the seed (dtlgen.model.seeded.seed_head)
        write_json(sim / "rl_init.json", initial)
    return features.reshape(len(x), -1), np.asarray(y), state


def params_svh(params: FESimBuild, design: Design, layout: RLLayout | None) -> str:
    """rtl/dtl_params.svh: the engines' parameters (dtlgen sim re-renders it to check a project's copy)."""
    lines = ["// Generated by dtlgen: parameters of this project's FE engine (the simulation build passes the",
             "// same values with -G; board tops include this file).", "`ifndef DTL_PARAMS_SVH",
             "`define DTL_PARAMS_SVH"]
    for key, value in params.hdl_parameters().items():
        if not isinstance(value, str):
            lines.append(f"localparam int DTL_FE_{key} = {value};")
    lines.append(f"localparam int DTL_CLOCK_KHZ = {int(round(design.clock_mhz * 1000))};")
    if layout is not None:
        lines += [f"localparam int DTL_RL_{key} = {value};" for key, value in layout.engine.hdl_parameters().items()]
    lines.append("`endif")
    return "\n".join(lines) + "\n"
