"""Re-train in RTL simulation: build the RL engine top, run a training plan through the host loop,
and hold every checked step's weights against the golden model (bit for bit) and every
descriptor's cycles against the analytical model (dtlgen.perf.rl).

A `TrainingPlan` is what the host does: cached FE features of the re-training set, the sample
order, batch sizes, learning-rate shifts and the step number of the first step (it seeds the
UPDATE's LFSR); with a teacher, distillation, and with a halting rule, the host's probes after
each epoch (`dtlgen.host.rl_host`). `golden_replay` runs the same plan through `golden.rl_train_step`
(a halted run's plan is the annealed one the result carries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dtlgen.generator.rtl import rtl_dir
from dtlgen.host import rl_program as prog
from dtlgen.host.rl_host import Probe, TrainingPlan
from dtlgen.host.rl_plan import plan_arrays, teacher_agreement
from dtlgen.host.rl_program import RLLayout
from dtlgen.isa.params import RLSimBuild, SimDram, split_runtime
from dtlgen.perf.rl import DescriptorCycles, GemmLayer, RLConfig, infer_cycles, step_cycles, step_schedule
from dtlgen.progress import counted_file
from dtlgen.progress import current as current_progress
from dtlgen.quant import golden
from dtlgen.quant.golden import RLState
from dtlgen.quant.quantize import QuantizedNetwork
from dtlgen.sim.fe_sim import build_top, read_hex, run_test, sim_log_tail

RL_SOURCES = ("dtl_ram.sv", "rl_engine.sv", "dram_model.sv", "rl_tb_top.sv")
RL_TOP = "rl_tb_top"
# the RL engine's AXI IP on cocotbext-axi's AxiRam and AxiLiteMaster (`simulate_training(axi=True)`)
RL_AXI_SOURCES = ("dtl_ram.sv", "rl_engine.sv", "dtl_axi_master.sv", "dtl_axil_regs.sv", "dtl_rl_axi.sv")
RL_AXI_TOP, RL_AXI_TEST = "dtl_rl_axi", "rl_axi_cocotb_test"
RL_TEST = "rl_cocotb_test"


def plan_epochs(labels: np.ndarray, batch: int, epochs: int, lr_shift_at, seed: int) -> tuple[np.ndarray, list, list]:
    """The demo's schedule: a fresh permutation per epoch, the last batch of an epoch may be short."""
    rng = np.random.default_rng(seed)
    order, sizes, shifts = [], [], []
    for epoch in range(epochs):
        perm = rng.permutation(len(labels))
        order.append(perm)
        for start in range(0, len(perm), batch):
            sizes.append(len(perm[start:start + batch]))
            shifts.append(lr_shift_at(epoch))
    return np.concatenate(order), sizes, shifts


def sim_build(layout: RLLayout, latency: int, stall_period: int = 0) -> RLSimBuild:
    """The RL simulation build for `layout`: its engine and a testbench DRAM of its memory map's size."""
    return RLSimBuild(layout.engine, SimDram(latency, layout.memory_bytes, stall_period))


@dataclass
class RLSimResult:
    weights: dict[int, RLState]  # step position -> weights read back from the engine
    logits: np.ndarray  # every step's logits, concatenated
    step_cycles: np.ndarray  # (steps, 2): forward and backward list cycles (the host's view)
    descriptor_cycles: list[tuple[str, str, int]]  # (layer, mode, cycles) of the first step
    # ... of the second step when the plan has three or more: the steady state (its features loaded in
    # the background of the first step, the third's in its own background)
    steady_cycles: list[tuple[str, str, int]] | None
    wall_s: float  # the cocotb run alone (simulator start, test, read-back), not the build
    build_s: float = 0.0  # Verilator build (near 0 when the cached build was reused)
    plan: TrainingPlan | None = None  # the plan the steps followed (annealed when its halting rule fired)
    probes: list[Probe] = field(default_factory=list)  # the halting rule's looks, one per epoch until it fired
    halted_epoch: int | None = None


def gemm_layers(layout: RLLayout) -> list[GemmLayer]:
    return [GemmLayer(p.name, p.m, p.n, p.positions, taps=p.taps, in_positions=p.in_positions if p.k else 0,
                      trained=p.trained, pool=p.pool) for p in layout.layers]


def simulate_training(layout: RLLayout, plan: TrainingPlan, state: RLState, workdir: Path, latency: int,
                      stall_period: int = 0, sources_dir: Path | None = None,
                      test_folder: Path | None = None, test_module: str = RL_TEST, axi: bool = False,
                      pause_seed: int = 0) -> RLSimResult:
    """Run `plan` on the RL engine RTL from weights `state`; weights are read back at plan.check_steps and
    after the run's last step.
    `axi`: the engine's AXI IP (dtl_rl_axi.sv) on an AXI4 slave model that pauses at random on every
    channel when `pause_seed` > 0, run through its AXI4-Lite registers (`latency` then only sizes the
    time limit)."""
    import time

    if plan.steps and plan.steps - 1 not in plan.check_steps:  # the run's end is always read back (a halted
        plan = replace(plan, check_steps=sorted({*plan.check_steps, plan.steps - 1}))  # run's: `annealed` adds it)
    workdir = Path(workdir).resolve()  # the runner changes directory: every path must be absolute
    workdir.mkdir(parents=True, exist_ok=True)
    params = sim_build(layout, latency, stall_period)
    sources_dir = Path(sources_dir).resolve() if sources_dir else rtl_dir()
    start = time.perf_counter()
    plusargs: list[str] = []  # (the AXI top's memory is cocotbext-axi's, timed by the test)
    if axi:
        from dtlgen.sim.axi_sim import require_cocotbext_axi  # noqa: PLC0415 (the test extra's package)

        require_cocotbext_axi()
        top, test_module = RL_AXI_TOP, RL_AXI_TEST
        build_dir = build_top([sources_dir / name for name in RL_AXI_SOURCES], top, params.rl.hdl_parameters(), "axi")
    else:
        top = RL_TOP
        parameters, plusargs = split_runtime(params.hdl_parameters())
        build_dir = build_top([sources_dir / name for name in RL_SOURCES], top, parameters, "rl")
    build_s = time.perf_counter() - start
    (workdir / "layout.json").write_text(json.dumps(layout.to_dict()))
    np.savez(workdir / "plan.npz", **plan_arrays(plan),
             **{f"w_{name}": w for name, (w, _) in state.items()}, **{f"b_{name}": b for name, (_, b) in state.items()})
    for stale in ("rl_result.npz", "perf_step0.hex", "perf_step1.hex"):
        (workdir / stale).unlink(missing_ok=True)
    predicted_steps = predict_plan(layout, latency, plan.batch_sizes, plan.breaks())
    predicted = max((sum(d.cycles for d in step) for step in predicted_steps), default=0)
    env = {"DTLGEN_RL_LAYOUT": str(workdir / "layout.json"), "DTLGEN_RL_PLAN": str(workdir / "plan.npz"),
           "DTLGEN_MAX_CYCLES": str(20 * predicted + 100_000), "DTLGEN_PAUSE_SEED": str(pause_seed)}
    start = time.perf_counter()
    with current_progress().task(f"training steps on the RL engine in RTL simulation ({layout.engine.tm}x"
                                 f"{layout.engine.tn} array)", total=plan.steps) as bar, \
            counted_file(workdir / "progress.steps", bar) as counter:
        passed = run_test(build_dir, top, test_module, Path(test_folder).resolve() if test_folder else sources_dir,
                          workdir, {**env, "DTLGEN_PROGRESS_FILE": str(counter)}, plusargs)
    wall = time.perf_counter() - start
    if not passed or not (workdir / "rl_result.npz").exists():
        raise RuntimeError(f"RL simulation failed in {workdir}:\n{sim_log_tail(workdir)}")
    raw = np.load(workdir / "rl_result.npz")
    halted = int(raw["halted_epoch"]) if "halted_epoch" in raw else None
    run_plan = plan.annealed(halted) if halted is not None else plan
    weights = {k: _step_weights(raw, k, list(state)) for k in run_plan.check_steps}
    first = _descriptor_counters(workdir / "perf_step0.hex", predicted_steps[0]) if predicted_steps else []
    steady = _descriptor_counters(workdir / "perf_step1.hex", predicted_steps[1]) if len(predicted_steps) > 2 else None
    probes = [Probe(int(e), float(a), int(c)) for e, a, c in raw["probes"]] if "probes" in raw else []
    return RLSimResult(weights, raw["logits"], raw["cycles"], first, steady, wall, build_s, run_plan, probes, halted)


def _step_weights(raw, step: int, names: list[str]) -> RLState:
    """The weights a run read back after `step`, from its rl_result.npz's arrays."""
    return {name: (raw[f"step{step}_w_{name}"], raw[f"step{step}_b_{name}"]) for name in names}


def run_weights(run: Path, qnet: QuantizedNetwork, step: int) -> RLState:
    """The weights an RTL run (`simulate_training`'s folder) read back after `step`."""
    with np.load(Path(run) / "rl_result.npz") as raw:
        return _step_weights(raw, step, [layer.name for layer in qnet.rl_layers if layer.has_weights])


def _descriptor_counters(path: Path, predicted: list[DescriptorCycles]) -> list[tuple[str, str, int]]:
    """(layer, mode, measured cycles) of one step's descriptors from its counter dump; the model lists them
    in the engine's order: the forward list, then the backward list."""
    perf = read_hex(path, 65536, 32)
    n_forward = next(i for i, d in enumerate(predicted) if d.mode == "STORE") + 1
    return [(d.layer, d.mode, int(perf[prog.PERF_BASE["forward"] + i] if i < n_forward
                                  else perf[prog.PERF_BASE["backward"] + i - n_forward]))
            for i, d in enumerate(predicted)]


def predict_step(layout: RLLayout, latency: int, samples: int | None = None, load: bool = True,
                 prefetch: int = 0) -> list[DescriptorCycles]:
    """The model's descriptors of one step (perf.rl.step_cycles) on this layout's engine."""
    engine = layout.engine
    cfg = RLConfig(engine.tm, engine.tn, engine.bits, engine.acc_bits, layout.batch)
    return step_cycles(gemm_layers(layout), cfg, engine.bus_bytes, latency, samples, load, prefetch)


def predict_probe(layout: RLLayout, latency: int, samples: int) -> int:
    """The model's cycles of a halting rule's probe of `samples` (forward lists of at most a batch each,
    as `RLHost.agreement` runs them)."""
    engine = layout.engine
    cfg = RLConfig(engine.tm, engine.tn, engine.bits, engine.acc_bits, layout.batch)
    return sum(infer_cycles(gemm_layers(layout), cfg, engine.bus_bytes, latency, min(layout.batch, samples - start))
               for start in range(0, samples, layout.batch))


def predict_plan(layout: RLLayout, latency: int, batch_sizes: list[int],
                 breaks: set[int] | frozenset[int] = frozenset()) -> list[list[DescriptorCycles]]:
    """The model's descriptors of every step of a run of batches, as the host schedules them."""
    return [predict_step(layout, latency, samples, load, prefetch)
            for samples, (load, prefetch) in zip(batch_sizes, step_schedule(list(batch_sizes), breaks))]


def golden_replay(qnet: QuantizedNetwork, plan: TrainingPlan, state: RLState,
                  checks: set[int] | None = None) -> dict[int, RLState]:
    """The golden model's weights after each step in `checks` (default plan.check_steps)."""
    wanted = set(plan.check_steps if checks is None else checks)
    feature_name = qnet.rl_layers[0].inputs[0]
    shape = tuple(qnet.rl_layers[0].in_shape)
    out: dict[int, RLState] = {}
    for k, idx in plan.batches():
        features = {feature_name: plan.features[idx].reshape((len(idx),) + shape)}
        state, _ = golden.rl_train_step(qnet, state, features, plan.labels[idx], plan.first_step + k,
                                        plan.lr_shifts[k], plan.teacher_of(idx), plan.kd, plan.masks)
        if k in wanted:
            out[k] = state
    return out


def golden_halting(qnet: QuantizedNetwork, plan: TrainingPlan, state: RLState) -> tuple[TrainingPlan, list[float], RLState]:
    """`plan` under its halting rule in the golden model, deciding as the host loop does (`RLHost.train`):
    the plan the steps follow (annealed when the rule fired), the agreement after each epoch the rule looked
    at, and the final weights."""
    feature_name = qnet.rl_layers[0].inputs[0]
    shape = tuple(qnet.rl_layers[0].in_shape)
    last = qnet.rl_layers[-1].name
    inputs = lambda idx: {feature_name: plan.features[idx].reshape((len(idx),) + shape)}  # noqa: E731
    agreements: list[float] = []
    agreed = seen = 0
    halted = plan.halt is None
    batches = list(plan.batches())
    k = 0
    while k < plan.steps:
        idx = batches[k][1]
        state, trace = golden.rl_train_step(qnet, state, inputs(idx), plan.labels[idx], plan.first_step + k,
                                            plan.lr_shifts[k], plan.teacher_of(idx), plan.kd, plan.masks)
        if not halted and plan.halt.probe is None:
            agreed, seen = agreed + teacher_agreement(trace.activations[last], plan.teacher[idx]), seen + len(idx)
        if not halted and k in plan.halt_checks():
            if plan.halt.probe is None:
                agreement = agreed / seen
            else:
                probe = np.asarray(plan.halt.probe)
                agreement = teacher_agreement(golden.rl_forward(qnet, state, inputs(probe))[last],
                                              plan.teacher[probe]) / len(probe)
            agreed = seen = 0
            agreements.append(agreement)
            if agreement >= plan.halt.agreement:
                halted, plan = True, plan.annealed(len(agreements))
        k += 1
    return plan, agreements, state


def first_mismatch(got: dict[int, RLState], expected: dict[int, RLState]) -> str | None:
    """A description of the first step / layer where the engine's weights differ, or None."""
    for k in sorted(expected):
        if k not in got:
            return f"step {k}: no weights read back"
        for name, (w, b) in expected[k].items():
            gw, gb = got[k][name]
            if not np.array_equal(np.asarray(gw).reshape(w.shape), w):
                return f"step {k}, layer {name}: weights differ in {int(np.sum(np.asarray(gw).reshape(w.shape) != w))} places"
            if not np.array_equal(gb, b):
                return f"step {k}, layer {name}: biases differ in {int(np.sum(gb != b))} places"
    return None

