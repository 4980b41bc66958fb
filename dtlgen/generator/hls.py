"""The project's hls/ directory: the engines' Vitis HLS C++, their parameters header and the
C-simulation testbenches with test vectors from the golden model.

The C++ sources are real files in `hw_templates/hls/` (copied as they are); only `dtl_params.h` is
rendered from a Jinja2 template, with the numerics constants read from `dtlgen.quant.fixed`. The
test vectors (`hls/tb_data/`) are scripts of host actions and the golden model's expected bytes:
the FE testbench runs one input sample through every FE descriptor and checks every op's output;
the RL testbench runs the first TB_STEPS training steps of `dtlgen csim`'s plan (`sample_plan`),
checking the logits and the parameters after every step. Each has a reduced script for Vitis HLS
co-simulation (`*_cosim_script.txt`: the first descriptor, the first step). Nothing here compiles
or simulates.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from dtlgen.errors import DesignError
from dtlgen.generator.fe_program import FEProgram
from dtlgen.host import rl_program as prog
from dtlgen.host.rl_plan import output_gradient, sample_plan, to_rows
from dtlgen.host.rl_program import RLLayout
from dtlgen.isa.params import FESimBuild
from dtlgen.perf import Design
from dtlgen.perf.rl import step_schedule
from dtlgen.quant import fixed, golden
from dtlgen.quant.quantize import QuantizedNetwork

FE_SOURCES = ("dtl_numerics.h", "dtl_engines.h", "dtl_seeded.h", "dtl_csim_check.h", "dtl_bytes.h", "tb_dtl.h", "dtl_fe_engine.cpp",
              "tb_fe.cpp", "csim_api.cpp")
RL_SOURCES = ("dtl_rl_engine.cpp", "tb_rl.cpp")
HLS_MAX_BUS_BYTES = 64  # the FE engine's descriptor: static_assert in dtl_fe_engine.cpp
TB_STEPS = 5  # training steps the RL testbench replays (Vitis HLS cosim runs them too: keep it short)


def hls_template_dir() -> Path:
    return Path(str(files("dtlgen.hw_templates").joinpath("hls")))


def params_header(design: Design, model: str, board: str, fe: FESimBuild, layout: RLLayout | None) -> str:
    """hls/dtl_params.h: the engines' parameters; each engine's C-simulation memory is its simulation DRAM."""
    values: dict[str, Any] = {
        "model": model, "board": board, "clock_mhz": design.clock_mhz, "lfsr_mask": fixed.LFSR_MASK,
        "latency": fe.dram.latency,
        "fe": fe.fe.hls_values(fe.dram.memory_bytes),
        "rl": layout.engine.hls_values(layout.memory_bytes) if layout is not None else None}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(hls_template_dir())),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template("dtl_params.h.j2").render(**values)


def write_hls(project: Path, design: Design, model: str, board: str, fe: FESimBuild, program: FEProgram,
              fe_outputs: list[np.ndarray], rl: tuple | None = None) -> None:
    """Write project/hls for the FE engine `fe` running `program`. `fe_outputs` are the golden outputs of
    the program's ops for its sample; `rl` is (qnet, layout, features, labels, state) when the network
    has retrainable layers."""
    bus = fe.fe.bus_bytes
    if bus > HLS_MAX_BUS_BYTES:  # the engines read a 64-byte FE descriptor in whole beats
        raise DesignError(f"board {board}'s memory bus is {bus} bytes a cycle; the HLS engines take buses of up to "
                          f"{HLS_MAX_BUS_BYTES} bytes (a power of two): describe the board's memory as fewer or "
                          "narrower ports")
    hls = Path(project) / "hls"
    data = hls / "tb_data"
    data.mkdir(parents=True)
    layout = rl[1] if rl is not None else None
    for name in FE_SOURCES + (RL_SOURCES if rl is not None else ()):
        shutil.copy(hls_template_dir() / name, hls / name)
    (hls / "dtl_params.h").write_text(params_header(design, model, board, fe, layout))
    write_test_vectors(data, program, fe_outputs, rl)


def write_test_vectors(data: Path, program: FEProgram, fe_outputs: list[np.ndarray], rl: tuple | None) -> None:
    """hls/tb_data: the testbenches' scripts and vectors (`dtlgen csim` renders them again from a project's
    checked data and runs its testbenches on those, never on a project's own scripts)."""
    _write_fe_vectors(data, program, fe_outputs)
    if rl is not None:
        _write_rl_vectors(data, *rl)


def _write_fe_vectors(data: Path, program: FEProgram, outputs: list[np.ndarray]) -> None:
    image_bytes = program.memory[:program.extent].tobytes()
    (data / "fe_memory.bin").write_bytes(image_bytes)
    lines = [f"memory {len(program.memory)}", f"load 0 fe_memory.bin {len(image_bytes)}",
             f"run {program.desc_addr} {len(program.ops)}"]
    first_op: list[str] = []  # the first descriptor's checks
    for i, (image, expected) in enumerate(zip(program.ops, outputs)):
        values = np.asarray(expected, dtype=np.int64).astype(np.int8).reshape(image.op.total_images, -1)
        for j, sample in enumerate(values):  # a batch's outputs lie image_pitch bytes apart
            name = f"fe_op{i}.bin" if image.op.total_images == 1 else f"fe_op{i}_{j}.bin"
            (data / name).write_bytes(sample.tobytes())
            label = image.op.name if image.op.total_images == 1 else f"{image.op.name}[{image.image0 + j}]"
            lines.append(f"expect {image.out_addr + j * image.image_pitch} {name} {label} {sample.size}")
            if i == 0:
                first_op.append(lines[-1])
    (data / "fe_script.txt").write_text("\n".join(lines) + "\n")
    # co-simulation runs the RTL that Vitis made, cycle by cycle: its script runs the first descriptor alone
    cosim = lines[:2] + ([f"run {program.desc_addr} 1"] + first_op if program.ops else [])
    (data / "fe_cosim_script.txt").write_text("\n".join(cosim) + "\n")


def _write_rl_vectors(data: Path, qnet: QuantizedNetwork, layout: RLLayout, features: np.ndarray,
                      labels: np.ndarray, state: golden.RLState) -> None:
    """The first TB_STEPS steps of `sample_plan`, as the host loop runs them, checked against the golden model."""
    plan = sample_plan(features, labels, layout.batch, TB_STEPS, qnet.precision.lr_shift, masks=golden.rl_masks(qnet))
    last = layout.layers[-1]
    feature_name = qnet.rl_layers[0].inputs[0]
    schedule = step_schedule(plan.batch_sizes)
    pitch = -(-last.m // layout.engine.lanes) * layout.engine.lanes
    files_ = {"rl_params0.bin": prog.params_image(layout, state),
              "rl_load_params.bin": prog.params_list(layout, "LOAD_P"),
              "rl_store_params.bin": prog.params_list(layout, "STORE_P")}

    def sized(name: str) -> str:  # a file name and its size: the testbench refuses a file of another size
        return f"{name} {len(files_[name])}"

    lines = [f"memory {layout.memory_bytes}", f"load {layout.params_addr} {sized('rl_params0.bin')}",
             f"load {layout.desc_addr} {sized('rl_load_params.bin')}", f"run {layout.desc_addr} 1"]
    if plan.masks is not None:  # the pruning masks, after LOAD_P (which leaves every weight unmasked)
        files_.update({"rl_masks.bin": prog.mask_image(layout, plan.masks), "rl_load_masks.bin": prog.masks_list(layout)})
        lines += [f"load {layout.mask_addr} {sized('rl_masks.bin')}", f"load {layout.desc_addr} {sized('rl_load_masks.bin')}",
                  f"run {layout.desc_addr} 1"]
    first_step = len(lines)  # the lines through the first step's checks (co-simulation runs those)
    batches = list(plan.batches())
    for k, idx in batches:
        load, prefetch = schedule[k]  # the next step's features load in this step's background (perf.rl, 5.)
        fwd_count, bwd_count = prog.step_descriptor_counts(layout, load, bool(prefetch))
        x = plan.features[idx].reshape((len(idx),) + tuple(layout.feature_shape))
        state, trace = golden.rl_train_step(qnet, state, {feature_name: x}, plan.labels[idx], plan.first_step + k,
                                            plan.lr_shifts[k], masks=plan.masks)
        logits = trace.activations[last.name]
        logit_rows = to_rows(logits, logits.shape[1:])
        params = f"rl_params{k + 1}.bin"
        _, grad_rows = output_gradient(layout, logit_rows, plan.labels[idx])
        files_.update({f"rl_features{k}.bin": prog.matrix_bytes(layout, to_rows(x, layout.feature_shape)),
                       f"rl_forward{k}.bin": prog.forward_list(layout, len(idx), k % 2, load),
                       f"rl_logits{k}.bin": logit_rows.astype("<i2").tobytes(),
                       f"rl_dy{k}.bin": prog.matrix_bytes(layout, grad_rows),
                       f"rl_backward{k}.bin": prog.backward_list(layout, len(idx), plan.first_step + k,
                                                                 plan.lr_shifts[k], k % 2, prefetch),
                       params: prog.params_image(layout, state)})
        if k == 0:
            lines.append(f"load {layout.feature_region(0)[1]} {sized('rl_features0.bin')}")
        if prefetch:  # written before the step's backward list, which loads them into the other region
            upcoming = plan.features[batches[k + 1][1]]
            files_[f"rl_features{k + 1}.bin"] = prog.matrix_bytes(layout, to_rows(upcoming, layout.feature_shape))
        lines += [f"load {layout.desc_addr} {sized(f'rl_forward{k}.bin')}", f"run {layout.desc_addr} {fwd_count}",
                  f"expect_rows {layout.logit_addr} {len(logit_rows)} {last.m} {pitch} rl_logits{k}.bin step{k}_logits",
                  f"load {layout.dy_addr} {sized(f'rl_dy{k}.bin')}"]
        if prefetch:
            lines.append(f"load {layout.feature_region(1 - k % 2)[1]} {sized(f'rl_features{k + 1}.bin')}")
        lines += [f"load {layout.desc_addr} {sized(f'rl_backward{k}.bin')}", f"run {layout.desc_addr} {bwd_count}",
                  f"load {layout.desc_addr} {sized('rl_store_params.bin')}", f"run {layout.desc_addr} 1",
                  f"expect {layout.params_addr} {params} step{k}_params {len(files_[params])}"]
        if k == 0:
            first_step = len(lines)
    for name, blob in files_.items():
        (data / name).write_bytes(blob)
    (data / "rl_script.txt").write_text("\n".join(lines) + "\n")
    # co-simulation: the parameters' load and the first training step, through its parameters' check
    (data / "rl_cosim_script.txt").write_text("\n".join(lines[:first_step]) + "\n")
