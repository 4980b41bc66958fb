"""`dtlgen demo`: the whole chain on built-in defaults, on the digits DTL task.

Stages so far: pre-train digits_cnn on the source environment; import it (frozen conv layers,
retrainable fc1/fc2); quantise with hybrid precision; re-train the retrainable layers on the
shifted target environment twice — float64 SGD, and the bit-true fixed-point golden model of the
RL engine with the same batches and learning-rate schedule; report accuracies, information loss
and model size; explore the design space of both engines on the board with NSGA-II and keep the
knee design; generate its project and simulate the FE engine in RTL (cocotb + Verilator), bit-exact
against the golden model and cycle by cycle against the analytical model; then re-train on the
device in RTL simulation: the host loop drives the knee design's RL engine through the whole
re-training schedule, the weights are read back and held against the golden model after each of
the first `check_steps` steps and at the end, and the re-trained weights' target accuracy is
reported next to the golden model's and float's (with an output directory).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dtlgen.atomic import atomic_directory, check_destination, write_json
from dtlgen.bitstream import build_bitstream
from dtlgen.boards import load_board
from dtlgen.errors import BoardError
from dtlgen.dse.problem import Fixed, Space, Workload
from dtlgen.dse.run import run_dse
from dtlgen.dse.run import write_outputs as write_dse_outputs
from dtlgen.csim import csim_project
from dtlgen.demo_pruning import pruning_section
from dtlgen.generator.loader import load_rl_project
from dtlgen.generator.project import generate_project
from dtlgen.progress import as_progress
from dtlgen.perf import Design
from dtlgen.perf.fe import fe_ops
from dtlgen.sim.project_sim import held_out_accuracy, simulate_project, simulate_retraining
from dtlgen.host.rl_plan import HaltRule
from dtlgen.sim.rl_sim import TrainingPlan, golden_replay, plan_epochs, run_weights
from dtlgen.model import import_module, load_factory, resolve_split
from dtlgen.model import digits_task
from dtlgen.model.seeded import seed_frozen_convs, seed_head
from dtlgen.quant import golden, reference
from dtlgen.quant.fixed import Distillation, teacher_logits
from dtlgen.quant.metrics import info_loss, model_size_bytes, retrainable_bytes, transmitted_bytes
from dtlgen.quant.quantize import PrecisionConfig, QuantizedNetwork, quantize

Progress = Callable[[str], None]
REPORT_NAME = "demo_report.json"
KIND = "demo"  # the manifest kind of a demo folder (dtlgen.atomic)


@dataclass(frozen=True)
class DemoConfig:
    """Re-training hyper-parameters. The learning rate is 2^-lr_shift on the batch-summed loss,
    raised by one bit (halved) at each epoch in `lr_decay_epochs`, as the host would program it."""

    model: str = "digits_cnn"
    pretrain_epochs: int = 40
    epochs: int = 30
    batch: int = 16
    lr_shift: int = 9
    lr_decay_epochs: tuple[int, ...] = (20, 25)
    w_bits: int = 8
    a_bits: int = 8
    rl_bits: int = 16
    seed: int = 0
    board: str = "pynq-z2"
    bitstream: bool = False  # ECP5 boards: build the knee design's bitstream with the open flow (slow)
    dse_pop: int = 40
    dse_gens: int = 20
    check_steps: int = 20  # RTL re-training: weights read back and compared after each of these steps
    seeded: bool = False  # the frozen convs seeded (issue 18): weights from (weight_seed, layer), scales learnt
    seeded_kind: str = "sign"
    weight_seed: int = 1
    seeded_head: bool = True  # with `seeded`, the retrainable layers start from values drawn from weight_seed
    # strategies (issue 19): a teacher, the source model fine-tuned end to end in float on the re-training set;
    # distillation from its cached logits against cross-entropy; early halting on agreement with it
    teacher_epochs: int = 30
    kd_alpha: float = 0.5  # the distillation weight on the teacher's soft targets (1 - kd_alpha on the labels)
    kd_temperature: int = 2  # a power of two
    distill: bool = False  # the demo's own re-training (golden and RTL) distils too, not only the comparison
    halt: float | None = 0.92  # halting run in RTL: stop once this share of predictions agrees with the teacher's
    halt_probe: int = 0  # 0: the epoch's own predictions; else probe samples drawn from the re-training set
    halt_distill: bool = True  # the halting run distils (early-halting distillation), else cross-entropy alone
    # pruning (issue 19): the source model pruned by magnitude, fine-tuned on the source with its masks, its
    # head re-trained in RTL on new data (jittered, noisier digits) with replayed source features (`demo_pruning`)
    prune: bool = True
    prune_fe: float = 0.7  # the share of the frozen part's weights removed
    prune_rl: float = 0.8  # ... of the retrainable part's
    prune_replay: float = 0.5  # replayed source samples per new sample in the device's re-training set
    prune_finetune_epochs: int = 10

    def lr_shift_at(self, epoch: int) -> int:
        return self.lr_shift + sum(epoch >= e for e in self.lr_decay_epochs)

    def precision(self) -> PrecisionConfig:
        return PrecisionConfig(self.w_bits, self.a_bits, self.rl_bits, self.batch, self.lr_shift)

    def distillation(self) -> Distillation:
        return Distillation.from_values(self.kd_alpha, self.kd_temperature)


@dataclass
class Teacher:
    """The strategies' teacher: its float logits on the re-training and test sets, its test accuracy."""

    retrain_logits: np.ndarray
    test_logits: np.ndarray
    acc_test: float
    params: int
    epochs: int

    def fixed_logits(self, qnet: QuantizedNetwork) -> np.ndarray:
        """The re-training set's logits cached at the student's logit fraction bits (fixed.teacher_logits)."""
        return teacher_logits(self.retrain_logits, qnet.layers[qnet.rl_layers[-1].name].out_fmt.frac)


def fine_tuned_teacher(module, task: digits_task.DigitsTask, config: DemoConfig, progress: Progress) -> Teacher:
    """A copy of the source-trained float model fine-tuned end to end (every layer) on the re-training set,
    off the device: the teacher whose logits the device caches."""
    import copy

    import torch

    teacher = copy.deepcopy(module)
    with as_progress(progress).task(f"fine-tuning the teacher end to end in float on the re-training set "
                                    f"({len(task.retrain_y)} images), epochs", total=config.teacher_epochs) as bar:
        digits_task.pretrain(teacher, task.retrain_x, task.retrain_y, config.teacher_epochs, config.seed, bar.update)
    with torch.no_grad():
        logits = {split: teacher(torch.tensor(x, dtype=torch.float32)).double().numpy()
                  for split, x in (("retrain", task.retrain_x), ("test", task.test_x))}
    return Teacher(logits["retrain"], logits["test"], digits_task.accuracy(logits["test"], task.test_y),
                   int(sum(p.numel() for p in teacher.parameters())), config.teacher_epochs)


def retrain(qnet: QuantizedNetwork, task: digits_task.DigitsTask, config: DemoConfig,
            teacher: Teacher | None = None, with_float: bool = True) -> dict[str, Any]:
    """Re-train the retrainable layers in float64 and in fixed point on identical batches; with `teacher`
    the fixed-point run distils from its cached logits (config.distillation()), the float one stays on
    cross-entropy (`with_float=False` skips it)."""
    network = qnet.network
    rl_layers = network.retrainable_layers
    feature_name = rl_layers[0].inputs[0]
    last = rl_layers[-1].name
    # FE outputs of the re-training set are computed once and cached, as on the device.
    float_features = {split: reference.float_forward(network, x)[feature_name]
                      for split, x in (("retrain", task.retrain_x), ("test", task.test_x))}
    fixed_features = {split: golden.fe_forward(qnet, golden.quantize_input(qnet, x))[feature_name]
                      for split, x in (("retrain", task.retrain_x), ("test", task.test_x))}

    def float_acc(params) -> float:
        out = reference.float_forward(network, None, params, rl_layers, {feature_name: float_features["test"]})
        return digits_task.accuracy(out[last], task.test_y)

    def fixed_acc(state) -> float:
        out = golden.rl_forward(qnet, state, {feature_name: fixed_features["test"]})
        return digits_task.accuracy(out[last], task.test_y)

    params, state = reference.initial_float_params(network), golden.initial_rl_state(qnet)
    before = {"acc_before": float_acc(params), "acc_before_fixed": fixed_acc(state)}
    plan = training_plan(task, config)
    kd = config.distillation() if teacher is not None else None
    cached = teacher.fixed_logits(qnet) if teacher is not None else None
    for step, idx in plan.batches():
        labels = task.retrain_y[idx]
        if with_float:
            params = reference.float_rl_train_step(network, params, {feature_name: float_features["retrain"][idx]},
                                                   labels, 2.0 ** -plan.lr_shifts[step])
        state, _ = golden.rl_train_step(qnet, state, {feature_name: fixed_features["retrain"][idx]},
                                        labels, step, plan.lr_shifts[step], None if kd is None else cached[idx], kd)
    step = plan.steps
    return {**before, "acc_float": float_acc(params) if with_float else None, "acc_fixed": fixed_acc(state),
            "loss": "distillation" if kd is not None else "cross-entropy",
            "epochs": config.epochs, "steps": step, "batch": config.batch,
            "retrain_samples": int(len(task.retrain_y)), "test_samples": int(len(task.test_y))}


def training_plan(task: digits_task.DigitsTask, config: DemoConfig, features: np.ndarray | None = None,
                  check_steps: int = 0) -> TrainingPlan:
    """The demo's schedule: a fresh permutation per epoch (seed + 1), batch 16, lr halved at set epochs."""
    order, sizes, shifts = plan_epochs(task.retrain_y, config.batch, config.epochs, config.lr_shift_at,
                                       config.seed + 1)
    checks = list(range(min(check_steps, len(sizes)))) + ([len(sizes) - 1] if check_steps else [])
    per_epoch = -(-len(task.retrain_y) // config.batch)
    return TrainingPlan(features if features is not None else np.zeros((len(task.retrain_y), 0)), task.retrain_y,
                        order, sizes, shifts, 0, sorted(set(checks)),
                        epoch_ends=[(e + 1) * per_epoch - 1 for e in range(config.epochs)])


def halting_plan(task: digits_task.DigitsTask, config: DemoConfig, features: np.ndarray, teacher: np.ndarray) -> TrainingPlan:
    """The demo's schedule under the halting rule: it reads the epoch's own predictions, or with `halt_probe`
    those of that many re-training samples drawn with the demo's seed (the teacher's predictions stand in
    for labels either way); the run distils with `halt_distill`."""
    probe = np.random.default_rng(config.seed + 2).choice(len(task.retrain_y), min(config.halt_probe,
                                                                                  len(task.retrain_y)), replace=False) \
        if config.halt_probe else None
    return replace(training_plan(task, config, features), teacher=teacher,
                   kd=config.distillation() if config.halt_distill else None,
                   halt=HaltRule(config.halt, config.lr_shift_at(config.epochs - 1), probe))


def device_retrain(project: Path, network, design: Design, task: digits_task.DigitsTask, config: DemoConfig,
                   float_acc: float, progress: Progress, teacher: Teacher) -> dict[str, Any]:
    """Re-train the whole schedule on the project's RL engine in RTL simulation; accuracies of the result."""
    rl = load_rl_project(project)
    qnet, features = rl.qnet, rl.features
    plan = training_plan(task, config, features, config.check_steps)
    if config.distill:
        plan = replace(plan, teacher=teacher.fixed_logits(qnet), kd=config.distillation())
    training = simulate_retraining(Path(project), design.clock_mhz, plan.steps, progress, plan)
    test_accuracy = _test_accuracy(project, network, design, task, qnet)
    acc_device = test_accuracy(run_weights(Path(project) / "sim" / "rl_run", qnet, plan.steps - 1))
    replayed = golden_replay(qnet, plan, golden.initial_rl_state(qnet), {plan.steps - 1})[plan.steps - 1]
    return {"acc_device": acc_device, "acc_golden": test_accuracy(replayed), "acc_float": float_acc,
            "loss": "distillation" if config.distill else "cross-entropy", "steps": plan.steps,
            "steps_checked": training["steps_checked"], "bit_exact": training["bit_exact"],
            "first_mismatch": training["first_mismatch"], "step": training["step"], "cycles": training["cycles"],
            "descriptors": training["descriptors"], "simulator": training["simulator"],
            "precision": {"w_bits": design.fe.w_bits, "a_bits": design.fe.a_bits, "rl_bits": design.rl.bits},
            "figures_from": "weights: RTL simulation of the RL engine (host loop in cocotb), read back after each "
                            "checked step and compared with the golden model's replay; accuracy: the read-back "
                            "weights evaluated on the target test set by the golden model's forward pass"}


def device_halting(project: Path, network, design: Design, task: digits_task.DigitsTask, config: DemoConfig,
                   teacher: Teacher, fixed: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """The demo's schedule under the halting rule on the project's RL engine in RTL simulation, held against
    the fixed schedule: its cycles (`fixed`, device_retrain's run: the engine's cycles do not depend on the
    gradient's values, so they are those of either loss) and its accuracy with the same loss (the RTL run's
    when the losses match, else the golden model's replay of the fixed schedule with the halting run's loss,
    which the RTL equals bit for bit)."""
    rl = load_rl_project(project)
    plan = halting_plan(task, config, rl.features, teacher.fixed_logits(rl.qnet))
    training = simulate_retraining(Path(project), design.clock_mhz, plan.steps, progress, plan, run_name="rl_halt")
    halting = training["halting"]
    accuracy = _test_accuracy(project, network, design, task, rl.qnet)
    acc = accuracy(run_weights(Path(project) / "sim" / "rl_halt", rl.qnet, training["final_step"]))
    loss = "distillation" if plan.kd is not None else "cross-entropy"
    if loss == fixed["loss"]:
        acc_fixed, fixed_from = fixed["acc_device"], "RTL simulation (device_retrain)"
    else:
        progress(f"replaying the fixed schedule with {loss} in the golden model")
        full = replace(plan, halt=None, check_steps=[plan.steps - 1])
        acc_fixed = accuracy(golden_replay(rl.qnet, full, golden.initial_rl_state(rl.qnet))[plan.steps - 1])
        fixed_from = "the golden model's replay (bit-exact with the RTL)"
    total, fixed_total = halting["total_cycles"]["measured"], fixed["cycles"]["measured"]
    return {
        "rule": f"after each epoch, the share of the {halting['samples']} predicted as the teacher predicts them "
                f"(no labels); once at least {config.halt:g}, one epoch at the schedule's final learning rate, "
                "then stop",
        "agreement": config.halt, "probe_samples": halting["probe_samples"], "halted_epoch": halting["halted_epoch"],
        "epochs_run": halting["epochs_run"], "epochs_planned": halting["epochs_planned"],
        "steps": training["steps"], "steps_planned": fixed["steps"], "loss": loss,
        "cycles": {"training": training["cycles"]["measured"], "probes": halting["probe_cycles"]["measured"],
                   "total": total, "fixed_schedule": fixed_total, "ratio": total / fixed_total,
                   "predicted_total": halting["total_cycles"]["predicted"]},
        "acc_halted": acc, "acc_fixed_schedule": acc_fixed, "acc_fixed_schedule_from": fixed_from,
        "loss_pt": 100 * (acc_fixed - acc), "acc_fixed_schedule_device": fixed["acc_device"],
        "device_loss": fixed["loss"], "bit_exact": training["bit_exact"], "first_mismatch": training["first_mismatch"],
        "probes": halting["probes"],
        "figures_from": "cycles: RTL simulation of the knee design's RL engine (Verilator, cocotb host loop), the "
                        "host's count of every descriptor list, probes included, for both runs; predicted_total: "
                        "the analytical model (dtlgen.perf.rl); accuracies: the read-back weights on the target test "
                        "set by the golden model's forward pass (acc_fixed_schedule: see acc_fixed_schedule_from); "
                        "bit_exact: the golden model's replay of the steps the halted run took",
    }


def _test_accuracy(project: Path, network, design: Design, task: digits_task.DigitsTask, qnet: QuantizedNetwork):
    """weights -> the target test accuracy of the project's RL layers with them (golden forward pass; the
    project was calibrated on the re-training set)."""
    accuracy = held_out_accuracy(network, design, task.retrain_x, qnet, {"test": (task.test_x, task.test_y)})
    return lambda weights: accuracy(weights)["test"]


def strategies_section(qnet: QuantizedNetwork, task: digits_task.DigitsTask, config: DemoConfig, teacher: Teacher,
                       result: dict[str, Any]) -> dict[str, Any]:
    """The report's `strategies`: the teacher, and distillation from its cached logits against cross-entropy
    on identical batches in the golden model (the halting run joins it after the RTL re-training)."""
    other = retrain(qnet, task, config, None if config.distill else teacher, with_float=False)
    kd, ce = (result, other) if config.distill else (other, result)
    student = sum(layer.weight.size + layer.bias.size for layer in qnet.rl_layers if layer.has_weights)
    return {
        "teacher": {"what": f"the source-trained float model fine-tuned end to end on the re-training set (Adam, "
                            f"{teacher.epochs} epochs), off the device; its logits cached in the student's logit "
                            "format", "acc_test": teacher.acc_test, "trainable_params": teacher.params},
        "student": {"what": "the frozen FE and the re-trained layers", "trainable_params": int(student),
                    "acc_float": result["acc_float"]},
        "distillation": {**config.distillation().to_dict(), "acc_cross_entropy": ce["acc_fixed"],
                         "acc_distillation": kd["acc_fixed"], "gain_pt": 100 * (kd["acc_fixed"] - ce["acc_fixed"]),
                         "figures_from": "the golden model's fixed-point re-training on identical batches (the same "
                                         "integers as the engines: the host computes the gradient)"},
    }


def pretrained_model(task: digits_task.DigitsTask, config: DemoConfig, progress: Progress,
                     seeded: bool = False, teacher: Teacher | None = None
                     ) -> tuple[Any, QuantizedNetwork, dict[str, Any], Teacher]:
    """The demo model pre-trained on the source environment (with `seeded`, its frozen convs replaced by
    seeded ones first, so that pre-training learns their scales and biases), imported, quantised, and its
    retrainable layers re-trained on the target environment in float64 and in the golden model (distilling
    from `teacher` under config.distill). Without a `teacher`, the pre-trained model's fine-tuned copy
    (`fine_tuned_teacher`) is made and returned."""
    module, input_shape, split, name = load_factory(config.model)
    if seeded:
        frozen = import_module(module, input_shape, name)
        frozen = frozen.with_split(resolve_split(frozen, split))
        seed_frozen_convs(module, frozen, config.weight_seed, config.seeded_kind)
    what = "with seeded frozen convs " if seeded else ""
    with as_progress(progress).task(f"pre-training {name} {what}on the source environment ({len(task.source_y)} "
                                    "images), epochs", total=config.pretrain_epochs) as bar:
        digits_task.pretrain(module, task.source_x, task.source_y, config.pretrain_epochs, config.seed, bar.update)
    if teacher is None:
        teacher = fine_tuned_teacher(module, task, config, progress)
    network = import_module(module, input_shape, name)
    network = network.with_split(resolve_split(network, split))
    progress("quantising with hybrid precision (calibration on the re-training set)")
    qnet = quantize(network, task.retrain_x, config.precision(), task.retrain_y)
    progress(f"re-training {', '.join(l.name for l in network.retrainable_layers)} on the target environment "
             "(float64 and fixed-point golden model)")
    return network, qnet, retrain(qnet, task, config, teacher if config.distill else None), teacher


def head_from_seed(network, qnet: QuantizedNetwork, task: digits_task.DigitsTask, config: DemoConfig,
                   progress: Progress, teacher: Teacher
                   ) -> tuple[Any, QuantizedNetwork, dict[str, Any], dict[str, dict[str, int]]]:
    """The seeded model with its retrainable layers starting from values drawn from the weight seed
    (`seed_head`) instead of the source-trained ones, which then need not be sent. Their formats stay
    those of the source-trained layers (per-layer overrides, which the DSE and the project keep): the
    seed's small initial values would calibrate a range that training outgrows. Returns the network,
    its quantisation, its re-training result and the overrides."""
    overrides = {layer.name: {"w_frac": qnet.layers[layer.name].w_fmt.frac, "a_frac": qnet.layers[layer.name].out_fmt.frac}
                 for layer in network.retrainable_layers if layer.has_weights}
    network = seed_head(network, {name: o["w_frac"] for name, o in overrides.items()}, config.weight_seed)
    qnet = quantize(network, task.retrain_x, config.precision(), task.retrain_y, overrides=overrides)
    progress(f"re-training {', '.join(overrides)} from values drawn from seed {config.weight_seed} (float64 and "
             "fixed-point golden model)")
    return network, qnet, retrain(qnet, task, config, teacher if config.distill else None), overrides


def seeded_section(qnet: QuantizedNetwork, config: DemoConfig, baseline: dict[str, Any],
                   baseline_sizes: dict[str, int], result: dict[str, Any]) -> dict[str, Any]:
    """The report's `seeded` section: what sending the seeded model costs against the pretrained-frozen
    hybrid model, and the two models' target accuracies after the same re-training."""
    sent = transmitted_bytes(qnet)
    layers = [layer for layer in qnet.network.layers if layer.seed is not None]
    head = retrainable_bytes(qnet)
    return {
        "layers": [layer.name for layer in layers], "kind": config.seeded_kind, "weight_seed": config.weight_seed,
        "seeded_weights": int(sum(layer.weight.size for layer in layers)),
        "transmitted_bytes": sent, "hybrid_bytes": baseline_sizes["hybrid"],
        "transmitted_reduction": 1 - sent["total"] / baseline_sizes["hybrid"],
        "head_start": "seed" if any(layer.init_seed for layer in qnet.network.layers) else "source-trained",
        "retrainable_bytes": head,
        "pretrained_frozen": {key: baseline[key] for key in ("acc_float", "acc_fixed")},
        "acc_float": result["acc_float"], "acc_fixed": result["acc_fixed"],
        "fixed_vs_pretrained_frozen_pt": 100 * (result["acc_fixed"] - baseline["acc_fixed"]),
        "figures_from": "bytes: parameter counts x stored bit widths, seeds 4 bytes each and 5 per seeded layer; "
                        "accuracies: the golden model's re-training of both models on identical batches (and the "
                        "RTL re-training's read-back weights, acc_device); the FE engines generate a ±1 dense seeded "
                        "conv's weights on chip and read b-bit seeded weights from DRAM; with head_start 'seed' the "
                        "retrainable layers start from values drawn from the weight seed (dtlgen.isa.seeded."
                        "initial_weights, in the source-trained layers' formats), the pretrained-frozen model's "
                        "from their source-trained values",
    }


def run_demo(out_dir: Path | None = None, config: DemoConfig = DemoConfig(),
             progress: Progress = lambda message: None, force: bool = False) -> dict[str, Any]:
    """Run every demo stage; write `out_dir/demo_report.json` (atomically) when `out_dir` is given."""
    if out_dir is not None:
        check_destination(Path(out_dir), KIND, force)
    board = load_board(config.board)
    if config.bitstream and board.toolchain != "open-ecp5":
        raise BoardError(f"--bitstream builds with the open ECP5 flow and {board.name} is a {board.vendor} board; choose "
                         "an ECP5 board (--board ulx3s-85f) or build the project's Vivado flow with 'make bitstream' "
                         "on a machine with Vivado")
    progress("loading the digits task (scikit-learn's 8x8 handwritten digits)")
    task = digits_task.load_digits_task(config.seed)
    network, qnet, retrain_result, teacher = pretrained_model(task, config, progress)
    seeded, overrides = None, None
    if config.seeded:  # the pretrained-frozen model above is the baseline; the seeded one runs the chain
        baseline_result, baseline_sizes = retrain_result, model_size_bytes(qnet)
        network, qnet, retrain_result, _ = pretrained_model(task, config, progress, seeded=True, teacher=teacher)
        if config.seeded_head:
            network, qnet, retrain_result, overrides = head_from_seed(network, qnet, task, config, progress, teacher)
        seeded = seeded_section(qnet, config, baseline_result, baseline_sizes, retrain_result)
    progress(f"re-training with distillation from the teacher (alpha {config.kd_alpha:g}, T {config.kd_temperature}) "
             "and with cross-entropy (fixed-point golden model)")
    strategies = strategies_section(qnet, task, config, teacher, retrain_result)
    sizes = model_size_bytes(qnet)
    progress(f"design-space exploration on {board.name} (NSGA-II, pop {config.dse_pop} x {config.dse_gens} gens)")
    # The demo's workload: infer the target test set, re-train on the target set for the demo's epochs;
    # both engines keep the demo's precision (FE w_bits/a_bits, 16-bit RL), so the design the demo
    # builds and re-trains on is the one its accuracy and size figures describe.
    workload = Workload(len(task.test_y), len(task.retrain_y), config.epochs)
    with as_progress(progress).task("NSGA-II generations", total=config.dse_gens) as bar:
        dse = run_dse(network, board, task.retrain_x[:16], None, config.dse_pop, config.dse_gens, config.seed + 1,
                      space=Space(fe_w_bits=(config.w_bits,), fe_a_bits=(config.a_bits,), rl_bits=(config.rl_bits,)),
                      workload=workload, fixed=Fixed(overrides=overrides), on_generation=bar.update)
    report = {
        "model": network.name,
        "task": {"source": "sklearn digits 8x8", "target": digits_task.TARGET_DESCRIPTION,
                 "source_train": int(len(task.source_y))},
        "source_accuracy": digits_task.accuracy(
            reference.float_forward(network, task.source_x)[network.layers[-1].name], task.source_y),
        "retrain": retrain_result,
        "size_bytes": sizes,
        "size_reduction": {"vs_fp32": 1 - sizes["hybrid"] / sizes["fp32"],
                           "vs_uniform16": 1 - sizes["hybrid"] / sizes["uniform16"]},
        "info_loss": info_loss(qnet, task.test_x),
        "clock": {"mhz": dse.design["clock_mhz"], "basis": board.clock_basis},
        "dse": {"board": board.name, "evaluations": dse.evaluations, "front_size": len(dse.front),
                "design": dse.design, "seconds": dse.seconds},
        "precision": config.precision().to_dict(),
        "per_layer": qnet.per_layer_dict(),
        "strategies": strategies,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "figures_from": "accuracies: numpy float64 reference and the bit-true integer golden model; "
                        "sizes: parameter counts x bit widths",
    }
    if seeded is not None:
        # the knee design's choice per layer (fe.gen): the seeded convs whose weights the FE generates on chip
        knee = Design.from_dict(dse.design, "the DSE's design").fe
        seeded["generated_on_chip"] = [op.name for op in fe_ops(network, knee) if op.gen]
        report["seeded"] = seeded
    if out_dir is not None:
        with atomic_directory(Path(out_dir), KIND, force) as staging:
            write_dse_outputs(staging / "dse", dse, board, network, "knee", config.dse_pop, config.dse_gens,
                              config.seed + 1)
            report["dse"]["out_dir"] = str(Path(out_dir).resolve() / "dse")
            progress("generating the project for the knee design; C-simulating its HLS engines and simulating its RTL")
            design = Design.from_dict(dse.design, "the DSE's design")
            project = generate_project(network, design, board, task.retrain_x, task.test_x[0], staging / "project",
                                       progress, train=(task.retrain_x, task.retrain_y))
            csim = csim_project(project, steps=5, progress=progress)
            report["csim"] = {"bit_exact": csim["bit_exact"], "build_s": csim["build_s"],
                              "testbenches": csim["testbenches"], "fe_bit_exact": csim["fe"]["bit_exact"],
                              "training_steps": csim.get("training", {}).get("steps", 0),
                              "report": str(Path(out_dir).resolve() / "project" / "hls" / "csim_report.json")}
            sim_report = simulate_project(project, progress)
            report["sim"] = {"project": str(Path(out_dir).resolve() / "project"),
                             "totals": sim_report["totals"], "layers": sim_report["layers"],
                             "max_layer_abs_error": sim_report["max_layer_abs_error"],
                             "report": str(Path(out_dir).resolve() / "project" / "sim" / "sim_report.json")}
            progress(f"re-training on the device in RTL simulation: {retrain_result['steps']} steps on the knee "
                     f"design's {design.rl.tm}x{design.rl.tn} RL engine")
            report["device_retrain"] = device_retrain(project, network, design, task, config,
                                                      retrain_result["acc_float"], progress, teacher)
            if config.halt is not None and config.epochs >= 2:  # (the rule looks after every epoch but the last)
                progress(f"re-training on the device in RTL simulation under the halting rule (agreement "
                         f"{config.halt:g} with the teacher)")
                strategies["halting"] = device_halting(project, network, design, task, config, teacher,
                                                       report["device_retrain"], progress)
            if config.prune:
                strategies["pruning"] = pruning_section(staging, Path(out_dir).resolve(), design, board, config,
                                                        progress)
            if seeded is not None:
                seeded["acc_device"] = report["device_retrain"]["acc_device"]
                seeded["device_vs_pretrained_frozen_pt"] = 100 * (seeded["acc_device"]
                                                                  - seeded["pretrained_frozen"]["acc_fixed"])
            if config.bitstream:
                progress(f"building the knee design's {board.name} bitstream (yosys, nextpnr, ecppack)")
                start = time.perf_counter()
                post = build_bitstream(project, progress)
                report["bitstream"] = {**post, "bitstream": str(Path(out_dir).resolve() / "project" / post["bitstream"]),
                                       "wall_s_total": time.perf_counter() - start}
            write_json(staging / REPORT_NAME, report)
        report["out_dir"] = str(Path(out_dir).resolve())
    return report
