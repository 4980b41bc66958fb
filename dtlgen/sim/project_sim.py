"""`dtlgen sim PRJ [--retrain]`: simulate a generated project against the golden model and the model.

Per FE descriptor: bit-exact check of the stored output against the golden model, measured cycles
(the engine's perf counter, RTL simulation) against predicted cycles (analytical model), GOPs of
both at the design's clock, relative error. With `--retrain`, the RL engine re-trains on the
project's re-training set through the host loop: weights read back after every step and held
against the golden model bit for bit, cycles of every descriptor of a training step against the
model. Writes sim/sim_report.json (DESIGN.md §3; "training" holds the RL part), sim/sim_report.md
and sim/predicted_vs_measured.png. `simulator` (FE and RL each) gives the Verilator build time
(`build_s`, near 0 when the cached build was reused) apart from the run (`run_s`: simulator start,
test, read-back); `cycles_per_s` is the simulated cycles over `run_s` alone.

With `ddr`, the FE runs on the testbench's DDR-like memory with the board file's DRAM timing (rows,
banks, row misses, refresh: `dtlgen.boards.DdrSpec`) instead of the ideal one, and each descriptor's
prediction is the model's closed form for that memory (`dtlgen.perf.fe.op_cycles(..., ddr=)`), an
expectation rather than an exact count; the RL engine's figures stay on the ideal memory.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dtlgen.atomic import check_owned, check_writable, publish, record_files, write_json, write_text
from dtlgen.generator.loader import check_sources, load_rl_project, open_project
from dtlgen.errors import DesignError
from dtlgen.host.rl_plan import check_steps, sample_plan
from dtlgen.perf import peak_gops
from dtlgen.perf.fe import op_cycles, require_ddr_timing
from dtlgen.quant.fixed import Distillation
from dtlgen.sim.fe_sim import run_image

REPORT = "sim_report.json"
OUTPUTS = ("run", REPORT, "sim_report.md", "predicted_vs_measured.png")  # what `dtlgen sim` writes into sim/


def simulate_project(project: Path, progress: Callable[[str], None] = lambda message: None,
                     retrain: bool = False, steps: int = 20, ddr: bool = False,
                     train: tuple[np.ndarray, np.ndarray] | None = None,
                     teacher: tuple[np.ndarray, Distillation] | None = None, replay: float = 0.0,
                     regrow: bool = False) -> dict[str, Any]:
    """Simulate `project`; with `retrain`, re-train `steps` steps on the project's re-training set, or
    on `train` (FE features and labels: `dtlgen.api.Project.training_set`) when given; with `teacher`
    (a teacher's float logits of that set, and the distillation weights) the host distils; `replay` and
    `regrow` as `RLProject.strategies` takes them."""
    if not isinstance(retrain, (bool, np.bool_)):
        raise DesignError(f"retrain {retrain!r}: True (re-train on the RL engine too) or False")
    if retrain:
        try:
            steps = check_steps(steps)
        except ValueError as error:
            raise DesignError(str(error)) from None
    project = Path(project).resolve()  # the simulator runs in its own working directory
    sim = project / "sim"
    data = open_project(project)
    if retrain and not data.has_rl:
        raise DesignError(f"project '{project}' has no RL engine (the network has no retrainable layers); "
                          "generate it with a split (--split or --retrain-last) to re-train on the device")
    if (train is not None or replay or regrow) and not retrain:
        raise DesignError("a re-training set (--data), --replay and --regrow are for re-training: add --retrain "
                          "(retrain=True in the API)")
    rl = load_rl_project(data) if data.has_rl else None
    # The project's rtl/ and sim/ copies must be dtlgen's own; the simulation builds and runs the
    # package's files, so nothing in a project folder is ever compiled or imported.
    check_sources(data, rl, ("rtl", "sim"))
    replayed = 0
    if rl is not None and retrain:
        if replay and teacher is not None:
            raise DesignError("replay mixes the project's cached samples into the set, and the teacher's logits cover "
                              "--data only: give --replay or --teacher, not both")
        rl, replayed = rl.strategies(train, replay, regrow)
    if teacher is not None:
        if not retrain:
            raise DesignError("a teacher (--teacher) is for re-training: add --retrain")
        cached = rl.teacher_logits(teacher[0])
    check_writable(sim, "the project's sim folder")
    # Everything this command writes into the project; what is there must be dtlgen's (never a link).
    check_owned(project, [sim / name for name in OUTPUTS] + ([sim / "rl_run"] if retrain else []))
    params, ops = data.params, data.program["ops"]
    timing = None
    if ddr:
        timing = require_ddr_timing(data.board)
        ops = [{**op, "predicted_cycles": op_cycles(fe_op, data.design.fe, params.fe.bus_bytes, params.dram.latency,
                                                     timing).cycles} for op, fe_op in zip(ops, data.fe_ops)]
    progress(f"building the FE engine in Verilator ({params.fe.tm}x{params.fe.tn} array"
             f"{', DDR-like memory' if ddr else ''}, cached per parameter set)")
    predicted_total = sum(op["predicted_cycles"] for op in ops)
    # The simulator runs in a fresh folder of its own (cocotb puts its working folder on sys.path:
    # never a folder of the project), and its files are published into sim/run afterwards.
    with tempfile.TemporaryDirectory(prefix="dtlgen-sim-") as scratch:
        try:
            result = run_image(data.memory, data.program["desc_addr"], len(ops), params, Path(scratch) / "run",
                               max_cycles=4 * predicted_total + 10_000, ddr=timing)
        finally:  # a failed run's log is worth keeping
            if (Path(scratch) / "run").is_dir():
                publish(project, sim / "run", Path(scratch) / "run")
    report = _fe_report(data, result, ops, predicted_total, timing)
    if retrain:
        plan = None
        if teacher is not None:
            plan = replace(sample_plan(rl.features, rl.labels, rl.layout.batch, steps, rl.qnet.precision.lr_shift,
                                       masks=rl.masks),
                           teacher=cached, kd=teacher[1])
        report["training"] = simulate_retraining(project, data.program["clock_mhz"], steps, progress, plan, rl=rl)
        report["training"].update(replayed_samples=replayed, regrow=bool(regrow))
    with tempfile.TemporaryDirectory(prefix="dtlgen-sim-") as scratch:
        plot(report, Path(scratch) / "plot.png")
        write_json(sim / REPORT, report)
        write_text(sim / "sim_report.md", markdown(report))
        write_text(sim / "predicted_vs_measured.png", (Path(scratch) / "plot.png").read_bytes())
    record_files(project, [sim / name for name in OUTPUTS if name != "run"])
    return report


def _fe_report(data, result, ops: list[dict[str, Any]], predicted_total: int, timing: Any) -> dict[str, Any]:
    program = data.program
    expected = {"memory": data.memory, **{f"op{i}": array for i, array in enumerate(data.expected)}}
    clock_hz = program["clock_mhz"] * 1e6
    rows = []
    fe_program = data.fe_program()
    for i, (op, measured) in enumerate(zip(ops, result.cycles)):
        got = fe_program.read_images(result.memory, i)
        bit_exact = bool(np.array_equal(got.reshape(op["out_shape"]), expected[f"op{i}"]))
        images = data.fe_ops[i].total_images  # a descriptor of a batch runs several
        name = op["name"] + (f" ({images} images)" if images > 1 else "")
        rows.append(_row(name, "fe", op["macs"], op["predicted_cycles"], measured, clock_hz, bit_exact)
                    | {"sparse": data.fe_ops[i].sparse is not None,  # (weights stored sparse: dtlgen.isa.fe)
                       "prefetch": data.fe_ops[i].prefetch})  # (requests a trip ahead: dtlgen.isa.fe)
    total = _row("total", "fe", sum(r["macs"] for r in rows), predicted_total, sum(result.cycles), clock_hz,
                 all(r["bit_exact"] for r in rows))
    report = {"model": program["model"], "board": program["board"], "clock_mhz": program["clock_mhz"],
              "batch": data.design.fe.batch,
              "memory": {"kind": "ideal"} if timing is None else {"kind": "ddr_like", **asdict(data.board.dram_ddr)},
              "source": {"measured": "RTL simulation (Verilator, cocotb), cycles from the engine's perf counter"
                                     + ("" if timing is None else ", on the DDR-like memory with the board file's timing"),
                         "predicted": "analytical model (dtlgen.perf)" + ("" if timing is None else
                                      ", the DDR-like memory's closed form (an expectation)")},
              "layers": rows, "totals": {"fe": total},
              # the array's ceiling: 2 ops per multiplier and cycle at the design clock
              "fe_peak_gops": peak_gops(data.params.fe.tm * data.params.fe.tn, program["clock_mhz"]),
              "max_layer_abs_error": max((abs(r["rel_error"]) for r in rows), default=0.0),
              "simulator": simulator_speed(result.build_s, result.run_s, sum(result.cycles))}
    return report


def simulate_retraining(project: Path, clock_mhz: float, steps: int,
                        progress: Callable[[str], None] = lambda message: None,
                        plan: Any = None, rl: Any = None, run_name: str = "rl_run") -> dict[str, Any]:
    """Re-train in RTL simulation (`steps` steps of the project's set, or `plan`); the report's training part.
    `rl` is the project's checked RL data (`dtlgen.generator.loader.load_rl_project`), loaded if not given.
    The run's files go to sim/`run_name`. A plan with a halting rule reports its probes and where it stopped."""
    from dtlgen.sim.rl_sim import first_mismatch, golden_replay, predict_plan, predict_probe, simulate_training

    sim = project / "sim"
    data = open_project(project)
    if rl is None:
        rl = load_rl_project(data)
        check_sources(data, rl, ("rtl", "sim"))
    check_owned(project, [sim / run_name])
    layout, qnet, state = rl.layout, rl.qnet, rl.state
    if plan is None:
        plan = sample_plan(rl.features, rl.labels, layout.batch, steps, qnet.precision.lr_shift, masks=rl.masks)
    latency = data.params.dram.latency
    progress(f"re-training in RTL simulation: {plan.steps} steps of batch {layout.batch} on a "
             f"{layout.engine.tm}x{layout.engine.tn} RL engine (Verilator build cached per parameter set)"
             + (f", halting once {plan.halt.agreement:g} of the {_halt_samples(plan.halt)} agree with the teacher"
                if plan.halt is not None else ""))
    with tempfile.TemporaryDirectory(prefix="dtlgen-sim-") as scratch:
        run = Path(scratch) / run_name
        try:
            result = simulate_training(layout, plan, state, run, latency)
        except Exception:  # a run that failed keeps its logs in the project; an interrupted one leaves nothing
            if run.is_dir():
                publish(project, sim / run_name, run)
            raise
        publish(project, sim / run_name, run)
    ran = result.plan  # the plan the steps followed: `plan`, or its annealed form when the halting rule fired
    progress("replaying the steps in the golden model")
    mismatch = first_mismatch(result.weights, golden_replay(qnet, ran, state))
    clock_hz = clock_mhz * 1e6
    # the steady state (step 1: its features loaded in step 0's background) when the run has one
    shown = 1 if result.steady_cycles is not None else 0
    counters = result.steady_cycles if shown else result.descriptor_cycles
    predicted_steps = predict_plan(layout, latency, ran.batch_sizes, ran.breaks())
    rows = []
    for (layer, mode, measured), d in zip(counters, predicted_steps[shown]):
        # ops = 2 · MACs, as the model counts them (dtlgen.perf.rl, "Ops"): no update or bias ops
        row = _row(f"{layer} {mode}", "rl", d.macs, d.cycles, measured, clock_hz, mismatch is None)
        row.update(mode=mode, layer=layer)
        rows.append(row)
    step = _row("training step", "rl", sum(r["macs"] for r in rows), sum(r["predicted_cycles"] for r in rows),
                sum(r["measured_cycles"] for r in rows), clock_hz, mismatch is None)
    step.update(array_efficiency=step["macs"] / (step["measured_cycles"] * layout.engine.tm * layout.engine.tn),
                host_measured_cycles=int(result.step_cycles[shown].sum()))
    total_cycles = int(result.step_cycles.sum())
    report = {"steps": ran.steps, "batch": layout.batch, "tm": layout.engine.tm, "tn": layout.engine.tn,
              "bit_exact": mismatch is None, "first_mismatch": mismatch, "steps_checked": len(ran.check_steps),
              "final_step": ran.steps - 1,
              "descriptors": rows, "step": step, "step_shown": shown,
              "cycles": {"measured": total_cycles,
                         "predicted": sum(d.cycles for one in predicted_steps for d in one)},
              "source": {"measured": "RTL simulation (Verilator, cocotb host loop), the engine's perf counters of "
                                     + ("step 1 (the steady state: its features loaded in the background of step 0, "
                                        "step 2's in its own)" if shown else "the first step")
                                     + "; weights read back after every checked step; cycles: the host's count of "
                                       "every step's descriptor lists",
                         "predicted": "analytical model (dtlgen.perf.rl)", "bit_exact": "golden model replay"},
              "simulator": simulator_speed(result.build_s, result.wall_s, total_cycles),
              "final_logits": result.logits[-layout.batch:].tolist() if len(result.logits) else []}
    if ran.kd is not None:
        report["distillation"] = ran.kd.to_dict()
    if ran.masks is not None:
        report["pruning"] = pruning_report(ran.masks, result.weights)
    if ran.halt is not None:
        probe_model = predict_probe(layout, latency, len(ran.halt.probe)) if ran.halt.probe is not None else 0
        report["halting"] = {
            "agreement": ran.halt.agreement, "samples": _halt_samples(ran.halt),
            "probe_samples": len(ran.halt.probe) if ran.halt.probe is not None else 0,
            "halted_epoch": result.halted_epoch,
            "epochs_run": len(ran.epoch_ends), "epochs_planned": len(plan.epoch_ends),
            "final_lr_shift": ran.halt.final_lr_shift,
            "probes": [{"epoch": p.epoch, "agreement": p.agreement, "cycles": p.cycles} for p in result.probes],
            "probe_cycles": {"measured": sum(p.cycles for p in result.probes),
                             "predicted": probe_model * len(result.probes)},
            "total_cycles": {"measured": total_cycles + sum(p.cycles for p in result.probes),
                             "predicted": report["cycles"]["predicted"] + probe_model * len(result.probes)}}
    return report


def pruning_report(masks: dict[str, np.ndarray], weights: dict[int, Any]) -> dict[str, Any]:
    """Each masked layer's sparsity, and how many pruned weights are not 0 in the weights read back after
    any step (measured: the engine's UPDATE must hold them at 0)."""
    revived = sum(int(np.count_nonzero(np.asarray(step[name][0]).reshape(-1)[np.asarray(mask).reshape(-1) == 0]))
                  for step in weights.values() for name, mask in masks.items())
    return {"sparsity": {name: float(1.0 - np.mean(mask)) for name, mask in masks.items()},
            "steps_read": len(weights), "pruned_nonzero": revived, "held_at_zero": revived == 0 and bool(weights)}


def held_out_accuracy(network: Any, design: Any, calibration: np.ndarray, qnet: Any,
                      sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> Callable[[Any], dict[str, float]]:
    """weights -> {set name: accuracy} of the RL layers with those weights on held-out float sets (x, y), their
    FE features from the golden model with the project's quantisation (its FE formats come from the
    `calibration` inputs it was generated with)."""
    from dtlgen.generator.project import quantize_for_design
    from dtlgen.model.digits_task import accuracy
    from dtlgen.quant import golden

    fe_q = quantize_for_design(network, design, calibration)
    name = qnet.rl_layers[0].inputs[0]
    last = network.layers[-1].name
    features = {key: {name: golden.fe_output(fe_q, golden.quantize_input(fe_q, x), name)} for key, (x, _) in sets.items()}
    return lambda weights: {key: accuracy(golden.rl_forward(qnet, weights, features[key])[last], y)
                            for key, (_, y) in sets.items()}


def _halt_samples(rule) -> str:
    return f"{len(rule.probe)} probe samples" if rule.probe is not None else "epoch's training samples"


def simulator_speed(build_s: float, run_s: float, cycles: int) -> dict[str, float]:
    """The simulator's figures: build apart from run, speed over the run alone."""
    return {"build_s": build_s, "run_s": run_s, "cycles_per_s": cycles / run_s if run_s else 0.0}


def _row(name: str, engine: str, macs: int, predicted: int, measured: int, clock_hz: float,
         bit_exact: bool) -> dict[str, Any]:
    ops = 2 * macs
    return {"name": name, "engine": engine, "macs": macs, "ops": ops, "predicted_cycles": predicted,
            "measured_cycles": measured, "predicted_gops": ops / (predicted / clock_hz) / 1e9 if predicted else 0.0,
            "measured_gops": ops / (measured / clock_hz) / 1e9 if measured else 0.0,
            "rel_error": (predicted - measured) / measured if measured else 0.0, "bit_exact": bit_exact}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['model']} on {report['board']} at {report['clock_mhz']:g} MHz (design clock)", "",
             f"Measured: {report['source']['measured']}. Predicted: {report['source']['predicted']}.", "",
             "| layer | engine | MACs | predicted cycles | measured cycles | predicted GOPs | measured GOPs | "
             "rel. error | bit-exact |", "|---|---|---|---|---|---|---|---|---|"]
    training = report.get("training")
    extra = training["descriptors"] + [training["step"]] if training else []
    for r in report["layers"] + [report["totals"]["fe"]] + extra:
        lines.append(f"| {r['name']} | {r['engine']} | {r['macs']:,} | {r['predicted_cycles']:,} | "
                     f"{r['measured_cycles']:,} | {r['predicted_gops']:.2f} | {r['measured_gops']:.2f} | "
                     f"{100 * r['rel_error']:+.2f} % | {'yes' if r['bit_exact'] else 'NO'} |")
    if training:
        lines += ["", f"Re-training: {training['steps']} steps of batch {training['batch']}, weights bit-exact with "
                      f"the golden model after every step: {'yes' if training['bit_exact'] else 'NO'}."]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Predicted against measured GOPs per FE layer and, after `--retrain`, per descriptor of the RL
    engine's training step; each engine's array peak as a line, each bar pair's model error above it,
    the legend below the panels (never over a bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clock = report["clock_mhz"]
    panels = [(f"FE engine, per layer (batch {report.get('batch', 1)})", report["layers"],
               report.get("fe_peak_gops"))]
    training = report.get("training")
    if training:
        panels.append((f"RL engine {training['tm']}x{training['tn']}, one training step (batch {training['batch']})",
                       training["descriptors"], peak_gops(training["tm"] * training["tn"], clock)))
    widths = [max(3, len(rows)) for _, rows, _ in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7, 0.55 * sum(widths) + 2.5), 4.8), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, (title, rows, peak) in zip(axes[0], panels):
        x = np.arange(len(rows))
        predicted = [r["predicted_gops"] for r in rows]
        measured = [r["measured_gops"] for r in rows]
        ax.bar(x - 0.2, predicted, 0.4, label="predicted (analytical model)", color="tab:blue")
        ax.bar(x + 0.2, measured, 0.4, label="measured (RTL simulation)", color="tab:orange")
        top = max(predicted + measured + [peak or 0.0, 1e-9])
        if peak:
            ax.axhline(peak, color="black", linestyle="--", linewidth=1, label="array peak (2 ops per multiplier a cycle)")
        for xi, r in zip(x, rows):  # the model's error per layer, above its pair of bars
            ax.text(xi, max(r["predicted_gops"], r["measured_gops"]) + 0.02 * top, f"{100 * r['rel_error']:+.2f} %",
                    ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_ylim(0, 1.25 * top)
        ax.set_xticks(x, [r["name"] for r in rows], rotation=45, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0][0].set_ylabel(f"GOPs at {clock:g} MHz (ops = 2 x MACs)")
    memory = "ideal memory" if report["memory"]["kind"] == "ideal" else "DDR-like memory"
    fig.suptitle(f"{report['model']} on {report['board']} ({memory}): predicted vs measured; above each pair the "
                 "model's error", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
