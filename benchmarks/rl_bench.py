"""RL engine benchmark: training steps of the retrainable head simulated in RTL against the analytical model.

For each (network, RL configuration): the head (fc1 512→256 relu, fc2 256→10 for the zoo's
vgg16_cifar and resnet18_cifar) trains `--steps` mini-batches of 32 on the RL engine in Verilator
(cocotb, the host loop of dtlgen.host.rl_host), from the real integer FE outputs of calibration
images (the numpy golden model) and seeded random labels. The table gives the measured and
predicted cycles of one training step (step 1 of a run of three or more: the steady state, whose features
loaded in the background of step 0's last UPDATE and which loads step 2's beside its own) and their GOPs
at the board's clock, the array efficiency
(MACs / (cycles × tm·tn)) over the whole step and over the GEMM descriptors alone, whether every
step's weights equal the golden model's bit for bit, and the simulator's wall time (median of
`--repeats` runs) and speed. A second table breaks one configuration's step into descriptors.

The array is given, not searched: `--configs board:TMxTN,...`, sized to the board's DSP budget
with 16-bit operands (one DSP48 per multiplier, tm·tn ≤ DSPs). Memory bus width and latency come
from the board file.

Run: python benchmarks/rl_bench.py [--models vgg16_cifar resnet18_cifar]
                                   [--configs pynq-z2:16x13,zcu104:32x16] [--steps 3] [--repeats 3]
                                   [--fresh-build]   (compile in an empty cache: times a cold Verilator build)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from rich.console import Console
from rich.table import Table

from dtlgen.boards import Board, load_board
from dtlgen.generator.rl_program import plan_rl
from dtlgen.host.rl_program import RLLayout
from dtlgen.generator.rtl import rtl_dir
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf.resources import ResourceUse
from dtlgen.perf.rl import RLConfig, rl_gemms, rl_resources
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, QuantizedNetwork, quantize
from dtlgen.sim import rl_sim
from dtlgen.sim.fe_sim import build_top
from dtlgen.isa.params import split_runtime

BATCH = 32
LR_SHIFT = 7
# Sized to the DSP budget (16-bit operands, one DSP per multiplier). pynq-z2: 208 of 220 DSPs. zcu104: 1024 of
# 1728, capped by Verilator build time (32x32 compiled in about 4 min on the 2-core bench machine, under the bench's
# 5 min budget), but the resource model puts 32x32's 1024 weight banks over the ZU7EV's RAMB18s: 32x16 fits (576).
DEFAULT_CONFIGS = "pynq-z2:16x13,zcu104:32x16"
CONFIG_NOTE = ("Arrays: sized to the DSP budget with 16-bit operands (one DSP per multiplier): pynq-z2 16x13 (208 of "
               "220 DSPs); zcu104 32x32 (1024 of 1728 DSPs, capped by Verilator build time: about 4 min on a 2-core "
               "machine, 16x13 about 35 s). The resource model puts 32x32's tm*tn weight banks at 1088 RAMB18, over "
               "the ZU7EV's 624: --configs zcu104:32x16 (576 RAMB18) fits.")
GEMM_MODES = ("FWD", "BWD_DATA", "UPDATE")
CLOCK_PERIOD_NS = 10  # rl_cocotb_test's clock


@dataclass(frozen=True)
class BenchConfig:
    """One RL engine on one board: a tm×tn array of 16-bit multipliers (tm outputs × tn inputs per cycle)."""

    board: Board
    tm: int
    tn: int

    @property
    def label(self) -> str:
        return f"{self.board.name} {self.tm}x{self.tn}"


def parse_configs(text: str) -> list[BenchConfig]:
    configs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            board_name, array = item.split(":")
            tm, tn = (int(v) for v in array.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--configs: '{item}' is not BOARD:TMxTN (e.g. pynq-z2:16x13)") from None
        configs.append(BenchConfig(load_board(board_name), tm, tn))
    return configs


def machine() -> str:
    load = ", load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{load}, "
            f"Python {platform.python_version()}")


@dataclass
class Head:
    """A quantised network and the training data of its head: FE outputs of real images, random labels."""

    model: str
    qnet: QuantizedNetwork
    features: np.ndarray
    labels: np.ndarray
    fe_s: float  # golden-model FE time for all images


def prepare_head(model: str, images: int, seed: int) -> Head:
    network = load_model(model)
    x = calibration_inputs(network, seed, images)
    qnet = quantize(network, x, PrecisionConfig(batch=BATCH, lr_shift=LR_SHIFT))
    start = time.perf_counter()
    features = golden.fe_forward(qnet, golden.quantize_input(qnet, x))[qnet.rl_layers[0].inputs[0]]
    fe_s = time.perf_counter() - start
    classes = int(np.prod(network.layers[-1].out_shape))
    labels = np.random.default_rng(seed + 1).integers(0, classes, images)
    return Head(model, qnet, features, labels, fe_s)


def training_plan(head: Head, steps: int, seed: int) -> rl_sim.TrainingPlan:
    """`steps` full batches; samples are drawn from fresh permutations, re-used when steps·32 > images."""
    rng = np.random.default_rng(seed)
    samples = len(head.labels)
    order = np.concatenate([rng.permutation(samples) for _ in range(-(-steps * BATCH // samples))])[:steps * BATCH]
    return rl_sim.TrainingPlan(head.features, head.labels, order, [BATCH] * steps, [LR_SHIFT] * steps,
                               first_step=0, check_steps=list(range(steps)))


def build_engine(layout: RLLayout, latency: int) -> tuple[float, bool]:
    """Compile the RL top for `layout` (what simulate_training would); (seconds, True if it was cached)."""
    params = rl_sim.sim_build(layout, latency)
    start = time.perf_counter()
    build_dir = build_top([rtl_dir() / name for name in rl_sim.RL_SOURCES], rl_sim.RL_TOP,
                          split_runtime(params.hdl_parameters())[0], "rl")
    seconds = time.perf_counter() - start
    log = build_dir / "build.log"
    cached = not log.exists() or log.stat().st_mtime < time.time() - seconds - 1
    return seconds, cached


@dataclass(frozen=True)
class SimRun:
    """One cocotb run: its wall time as simulate_training saw it, and the test's own share (results.xml)."""

    wall_s: float
    test_s: float  # the test coroutine, from reset to the last read-back
    test_cycles: int  # every cycle simulated in the test: parameter load, steps, read-backs

    @property
    def startup_s(self) -> float:
        return self.wall_s - self.test_s


def sim_run(result: rl_sim.RLSimResult, workdir: Path) -> SimRun:
    case = ElementTree.parse(workdir / "results.xml").find(".//testcase")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    return SimRun(result.wall_s, float(case.get("time")),
                  round(float(props["sim_time_duration"]) / CLOCK_PERIOD_NS))


def bench_one(head: Head, cfg: BenchConfig, steps: int, repeats: int, seed: int) -> dict:
    board = cfg.board
    bus = int(board.dram_bytes_per_cycle)
    latency = board.dram_latency_cycles
    rl_cfg = RLConfig(cfg.tm, cfg.tn, batch=BATCH, lr_shift=LR_SHIFT)
    layout = plan_rl(head.qnet, rl_cfg, bus)
    resources = rl_resources(rl_gemms(head.qnet.network), rl_cfg, board)
    plan_steps = rl_sim.predict_plan(layout, latency, [BATCH] * steps)
    shown = 1 if steps > 2 else 0  # the steady state when the run has one
    predicted = plan_steps[shown]
    build_s, cached = build_engine(layout, latency)
    plan = training_plan(head, steps, seed)
    state = golden.initial_rl_state(head.qnet)
    results, runs = [], []
    with tempfile.TemporaryDirectory(prefix="rl_bench_") as work:
        for _ in range(repeats):
            results.append(rl_sim.simulate_training(layout, plan, state, Path(work), latency))
            runs.append(sim_run(results[-1], Path(work)))
    result = results[0]
    repeatable = all(np.array_equal(r.step_cycles, result.step_cycles)
                     and r.descriptor_cycles == result.descriptor_cycles and r.steady_cycles == result.steady_cycles
                     for r in results)
    mismatch = rl_sim.first_mismatch(result.weights, rl_sim.golden_replay(head.qnet, plan, state))

    f_hz = board.clock_mhz * 1e6
    lanes = cfg.tm * cfg.tn
    ops = sum(d.ops for d in predicted)
    macs = sum(d.macs for d in predicted)
    predicted_cycles = sum(d.cycles for d in predicted)
    measured_cycles = int(result.step_cycles[shown].sum())
    counters = result.steady_cycles if shown else result.descriptor_cycles
    gemm_cycles = sum(c for _, mode, c in counters if mode in GEMM_MODES)
    test_s = statistics.median(run.test_s for run in runs)
    return {"head": head, "cfg": cfg, "layout": layout, "predicted": predicted, "result": result, "shown": shown,
            "counters": counters, "predicted_steps": [sum(d.cycles for d in step) for step in plan_steps],
            "predicted_cycles": predicted_cycles, "measured_cycles": measured_cycles,
            "step_cycles": [int(c) for c in result.step_cycles.sum(axis=1)],
            "error": (predicted_cycles - measured_cycles) / measured_cycles, "ops": ops, "macs": macs,
            "peak_gops": 2 * lanes * f_hz / 1e9,
            "predicted_gops": ops / (predicted_cycles / f_hz) / 1e9,
            "measured_gops": ops / (measured_cycles / f_hz) / 1e9,
            "efficiency": macs / (measured_cycles * lanes), "gemm_efficiency": macs / (gemm_cycles * lanes),
            "resources": resources, "bit_exact": mismatch is None, "mismatch": mismatch, "repeatable": repeatable,
            "build_s": build_s, "cached": cached, "runs": runs,
            "wall_s": statistics.median(run.wall_s for run in runs),
            "startup_s": statistics.median(run.startup_s for run in runs), "test_s": test_s,
            "test_cycles": runs[0].test_cycles, "sim_cycles_per_s": runs[0].test_cycles / test_s}


def performance_table(rows: list[dict]) -> Table:
    table = Table(title=f"RL engine: one training step of the head (batch {BATCH}), RTL simulation vs analytical model")
    for column in ("model / board", "array", "clock", "bit-exact", "predicted cycles", "measured cycles",
                   "error", "ops / step", "peak GOPs", "predicted GOPs", "measured GOPs", "array eff.", "GEMM eff.",
                   "RL resources (model)"):
        table.add_column(column, justify="right")
    for r in rows:
        cfg, board = r["cfg"], r["cfg"].board
        table.add_row(
            f"{r['head'].model} / {board.name}", f"{cfg.tm}x{cfg.tn}",
            f"{board.clock_mhz:g} MHz", "yes" if r["bit_exact"] else "NO", f"{r['predicted_cycles']:,}",
            f"{r['measured_cycles']:,}", f"{100 * r['error']:+.2f} %", f"{r['ops'] / 1e6:.2f} M",
            f"{r['peak_gops']:.1f}", f"{r['predicted_gops']:.2f}", f"{r['measured_gops']:.2f}",
            f"{100 * r['efficiency']:.1f} %", f"{100 * r['gemm_efficiency']:.1f} %",
            resource_cell(r["resources"], board))
    return table


def resource_cell(use: ResourceUse, board: Board) -> str:
    """DSP / BRAM18 / LUT use of the RL engine alone against the board, and whether it fits."""
    r = board.resources
    text = f"DSP {use.dsp}/{r.dsp} BRAM18 {use.bram18}/{r.bram18} LUT {use.lut / 1e3:.0f}k/{r.lut / 1e3:.0f}k"
    over = [name for name, share in use.utilisation(board).items() if share > 1]
    return text + (f" (over: {', '.join(over)})" if over else "")


def simulator_table(rows: list[dict], steps: int, repeats: int) -> Table:
    table = Table(title=f"Simulator: {steps} training steps per run, median of {repeats} runs")
    for column in ("model / board", "bus, latency", "Verilator build", "run wall", "start-up", "test",
                   "cycles in test", "sim speed"):
        table.add_column(column, justify="right")
    for r in rows:
        board = r["cfg"].board
        table.add_row(
            f"{r['head'].model} / {board.name} {r['cfg'].tm}x{r['cfg'].tn}",
            f"{int(board.dram_bytes_per_cycle)} B/cycle, {board.dram_latency_cycles} cycles",
            f"{r['build_s']:.0f} s" + (" (cached)" if r["cached"] else ""), f"{r['wall_s']:.1f} s",
            f"{r['startup_s']:.1f} s", f"{r['test_s']:.2f} s", f"{r['test_cycles']:,}",
            f"{r['sim_cycles_per_s'] / 1e3:.0f} k cycles/s")
    return table


def descriptor_table(r: dict) -> Table:
    cfg = r["cfg"]
    lanes = cfg.tm * cfg.tn
    table = Table(title=f"Descriptors of step {r['shown']}: {r['head'].model} on {cfg.label}")
    for column in ("layer", "mode", "predicted cycles", "measured cycles", "difference", "MACs", "array eff."):
        table.add_column(column, justify="right")
    for d, (layer, mode, measured) in zip(r["predicted"], r["counters"]):
        assert (layer, mode) == (d.layer, d.mode), f"descriptor order differs: {(layer, mode)} vs {(d.layer, d.mode)}"
        table.add_row(layer, mode, f"{d.cycles:,}", f"{measured:,}", f"{measured - d.cycles:+,}",
                      f"{d.macs:,}" if d.macs else "", f"{100 * d.macs / (measured * lanes):.1f} %" if d.macs else "")
    predicted = sum(d.cycles for d in r["predicted"])
    measured = sum(c for _, _, c in r["counters"])
    table.add_row("sum", "", f"{predicted:,}", f"{measured:,}", f"{measured - predicted:+,}", f"{r['macs']:,}",
                  f"{100 * r['macs'] / (measured * lanes):.1f} %")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16_cifar", "resnet18_cifar"])
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="BOARD:TMxTN,... (default %(default)s)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per simulation (default %(default)s; "
                        "three or more show the steady state)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="simulations per configuration; times are their median (default %(default)s)")
    parser.add_argument("--images", type=int, default=64, help="calibration images whose FE outputs train the head")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh-build", action="store_true",
                        help="build in an empty, temporary Verilator cache so the build column is a cold compile")
    parser.add_argument("--detail", default=None, help="MODEL:BOARD of the per-descriptor table (default: the first)")
    args = parser.parse_args()
    configs = parse_configs(args.configs)
    if not configs or args.steps < 1 or args.repeats < 1:
        parser.error("need at least one config, one step and one repeat")
    console = Console(width=250)
    started = time.perf_counter()
    if args.fresh_build:  # build_top reads DTLGEN_CACHE on every call; simulate_training then finds this build
        os.environ["DTLGEN_CACHE"] = tempfile.mkdtemp(prefix="rl_bench_cache_")
    console.print(f"Machine: {machine()}")
    console.print("measured: RTL simulation (Verilator via cocotb); predicted: analytical model dtlgen.perf.rl; "
                  "GOPs at the board's clock", soft_wrap=True)
    for cfg in configs:
        if cfg.tm * cfg.tn > cfg.board.resources.dsp:
            console.print(f"warning: {cfg.label} needs {cfg.tm * cfg.tn} multipliers, the board has "
                          f"{cfg.board.resources.dsp} DSPs")
    rows, notes = [], []
    for model in args.models:
        head = prepare_head(model, args.images, args.seed)
        notes.append(f"{model}: FE outputs of {args.images} images in the golden model took {head.fe_s:.1f} s")
        for cfg in configs:
            r = bench_one(head, cfg, args.steps, args.repeats, args.seed)
            rows.append(r)
            console.print(f"  {model} / {cfg.label}: done (build {r['build_s']:.0f} s, {r['wall_s']:.1f} s per run)",
                          highlight=False)
            if not r["bit_exact"]:
                notes.append(f"{model} / {cfg.label}: not bit-exact: {r['mismatch']}")
            if r["step_cycles"] != r["predicted_steps"]:
                notes.append(f"{model} / {cfg.label}: step cycles {r['step_cycles']} differ from the model's "
                             f"{r['predicted_steps']}")
            if not r["repeatable"]:
                notes.append(f"{model} / {cfg.label}: cycles differ between repeated simulations")
            walls = ", ".join(f"{run.wall_s:.1f}" for run in r["runs"])
            tests = ", ".join(f"{run.test_s:.2f}" for run in r["runs"])
            notes.append(f"{model} / {cfg.label}: run wall per repeat {walls} s, test {tests} s")
    console.print(performance_table(rows))
    console.print(
        f"Steps: {args.steps} of batch {BATCH} per simulation, lr 2^-{LR_SHIFT}; bit-exact: every step's weights read "
        "back and compared with golden_replay. Cycles: step 1 of the run (0 with fewer than 3 steps), forward + "
        "backward list, the host's view (the host's softmax-CE time is not counted); step 1 is the steady state: its "
        "features loaded in the background of step 0's last UPDATE, step 2's load beside its own; step 0 adds a "
        "foreground LOAD, the last step has no background LOAD. Ops: 2 x (FWD + BWD_DATA + BWD_WEIGHT MACs); the weight update and bias "
        "terms are not array ops (dtlgen.perf.rl, \"Ops\") (fc1 is the first retrainable layer: no BWD_DATA). Peak "
        "GOPs: 2 x tm x tn x clock. Array eff.: MACs / "
        "(step cycles x tm x tn); GEMM eff.: the same over the FWD, BWD_DATA and UPDATE descriptors' cycles only. "
        "RL resources: dtlgen.perf.rl.rl_resources of the RL engine alone (no FE engine) against the whole part.",
        soft_wrap=True)
    console.print(simulator_table(rows, args.steps, args.repeats))
    console.print(
        "Verilator build: compile of the RL top (cached when an identical build existed). Run wall: one "
        "simulate_training call; start-up: its part before and after the cocotb test (simulator start, Python "
        "imports); test: the test coroutine (parameter load, the steps with the host's work, weight read-back), "
        "from results.xml; sim speed: cycles simulated in the test / test time."
        + (" " + CONFIG_NOTE if args.configs == DEFAULT_CONFIGS else ""), soft_wrap=True)
    for note in notes:
        console.print(f"- {note}", soft_wrap=True, highlight=False)
    detail = rows[0]
    if args.detail:
        wanted = tuple(args.detail.split(":"))
        detail = next((r for r in rows if (r["head"].model, r["cfg"].board.name) == wanted), detail)
    console.print(descriptor_table(detail))
    console.print(f"Total wall time: {time.perf_counter() - started:.0f} s", highlight=False)
    if args.fresh_build:
        shutil.rmtree(os.environ["DTLGEN_CACHE"], ignore_errors=True)


if __name__ == "__main__":
    main()
