"""`dtlgen demo`: the whole chain on built-in defaults, on the digits DTL task.

Stages so far: pre-train digits_cnn on the source environment; import it (frozen conv layers,
retrainable fc1/fc2); quantise with hybrid precision; re-train the retrainable layers on the
shifted target environment twice — float64 SGD, and the bit-true fixed-point golden model of the
RL engine with the same batches and learning-rate schedule; report accuracies, information loss
and model size; explore the design space of both engines on the board with NSGA-II and keep the
knee design; generate its project and simulate the FE engine in RTL (cocotb + Verilator), bit-exact
against the golden model and cycle by cycle against the analytical model (with an output
directory). On-device re-training in RTL joins here next.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dtlgen.atomic import atomic_directory, check_destination, write_json
from dtlgen.boards import load_board
from dtlgen.dse.run import run_dse
from dtlgen.dse.run import write_outputs as write_dse_outputs
from dtlgen.generator.project import generate_project
from dtlgen.perf import Design
from dtlgen.sim.project_sim import simulate_project
from dtlgen.model import import_module, load_factory, resolve_split
from dtlgen.model import digits_task
from dtlgen.quant import golden
from dtlgen.quant.metrics import info_loss, model_size_bytes
from dtlgen.quant.quantize import PrecisionConfig, QuantizedNetwork, quantize

Progress = Callable[[str], None]
REPORT_NAME = "demo_report.json"


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
    dse_pop: int = 40
    dse_gens: int = 20

    def lr_shift_at(self, epoch: int) -> int:
        return self.lr_shift + sum(epoch >= e for e in self.lr_decay_epochs)

    def precision(self) -> PrecisionConfig:
        return PrecisionConfig(self.w_bits, self.a_bits, self.rl_bits, self.batch, self.lr_shift)


def retrain(qnet: QuantizedNetwork, task: digits_task.DigitsTask, config: DemoConfig) -> dict[str, Any]:
    """Re-train the retrainable layers in float64 and in fixed point on identical batches."""
    network = qnet.network
    rl_layers = network.retrainable_layers
    feature_name = rl_layers[0].inputs[0]
    last = rl_layers[-1].name
    # FE outputs of the re-training set are computed once and cached, as on the device.
    float_features = {split: golden.float_forward(network, x)[feature_name]
                      for split, x in (("retrain", task.retrain_x), ("test", task.test_x))}
    fixed_features = {split: golden.fe_forward(qnet, golden.quantize_input(qnet, x))[feature_name]
                      for split, x in (("retrain", task.retrain_x), ("test", task.test_x))}

    def float_acc(params) -> float:
        out = golden.float_forward(network, None, params, rl_layers, {feature_name: float_features["test"]})
        return digits_task.accuracy(out[last], task.test_y)

    def fixed_acc(state) -> float:
        out = golden.rl_forward(qnet, state, {feature_name: fixed_features["test"]})
        return digits_task.accuracy(out[last], task.test_y)

    params, state = golden.initial_float_params(network), golden.initial_rl_state(qnet)
    before = {"acc_before": float_acc(params), "acc_before_fixed": fixed_acc(state)}
    rng = np.random.default_rng(config.seed + 1)
    step = 0
    for epoch in range(config.epochs):
        shift = config.lr_shift_at(epoch)
        order = rng.permutation(len(task.retrain_y))
        for start in range(0, len(order), config.batch):
            idx = order[start:start + config.batch]
            labels = task.retrain_y[idx]
            params = golden.float_rl_train_step(network, params, {feature_name: float_features["retrain"][idx]},
                                                labels, 2.0 ** -shift)
            state, _ = golden.rl_train_step(qnet, state, {feature_name: fixed_features["retrain"][idx]},
                                            labels, step, shift)
            step += 1
    return {**before, "acc_float": float_acc(params), "acc_fixed": fixed_acc(state),
            "epochs": config.epochs, "steps": step, "batch": config.batch,
            "retrain_samples": int(len(task.retrain_y)), "test_samples": int(len(task.test_y))}


def run_demo(out_dir: Path | None = None, config: DemoConfig = DemoConfig(),
             progress: Progress = lambda message: None) -> dict[str, Any]:
    """Run every demo stage; write `out_dir/demo_report.json` (atomically) when `out_dir` is given."""
    if out_dir is not None:
        check_destination(Path(out_dir), REPORT_NAME)
    progress("loading the digits task (scikit-learn's 8x8 handwritten digits)")
    task = digits_task.load_digits_task(config.seed)
    module, input_shape, split, name = load_factory(config.model)
    progress(f"pre-training {name} on the source environment ({len(task.source_y)} images)")
    digits_task.pretrain(module, task.source_x, task.source_y, config.pretrain_epochs, config.seed)
    network = import_module(module, input_shape, name)
    network = network.with_split(resolve_split(network, split))
    progress("quantising with hybrid precision (calibration on the re-training set)")
    qnet = quantize(network, task.retrain_x, config.precision(), task.retrain_y)
    progress(f"re-training {', '.join(l.name for l in network.retrainable_layers)} on the target environment "
             "(float64 and fixed-point golden model)")
    retrain_result = retrain(qnet, task, config)
    sizes = model_size_bytes(qnet)
    board = load_board(config.board)
    progress(f"design-space exploration on {board.name} (NSGA-II, pop {config.dse_pop} x {config.dse_gens} gens)")
    dse = run_dse(network, board, task.retrain_x[:16], None, config.dse_pop, config.dse_gens, config.seed + 1)
    report = {
        "model": name,
        "task": {"source": "sklearn digits 8x8", "target": digits_task.TARGET_DESCRIPTION,
                 "source_train": int(len(task.source_y))},
        "source_accuracy": digits_task.accuracy(
            golden.float_forward(network, task.source_x)[network.layers[-1].name], task.source_y),
        "retrain": retrain_result,
        "size_bytes": sizes,
        "size_reduction": {"vs_fp32": 1 - sizes["hybrid"] / sizes["fp32"],
                           "vs_uniform16": 1 - sizes["hybrid"] / sizes["uniform16"]},
        "info_loss": info_loss(qnet, task.test_x),
        "dse": {"board": board.name, "evaluations": dse.evaluations, "front_size": len(dse.front),
                "design": dse.design, "seconds": dse.seconds},
        "precision": config.precision().to_dict(),
        "per_layer": qnet.per_layer_dict(),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "figures_from": "accuracies: numpy float64 reference and the bit-true integer golden model; "
                        "sizes: parameter counts x bit widths",
    }
    if out_dir is not None:
        with atomic_directory(Path(out_dir), marker=REPORT_NAME) as staging:
            write_dse_outputs(staging / "dse", dse, board, network, "knee", config.dse_pop, config.dse_gens,
                              config.seed + 1)
            report["dse"]["out_dir"] = str(Path(out_dir).resolve() / "dse")
            progress("generating the project for the knee design and simulating its FE engine (Verilator)")
            design = Design.from_dict(dse.design, "the DSE's design")
            project = generate_project(network, design, board, task.retrain_x, task.test_x[0], staging / "project",
                                       progress)
            sim_report = simulate_project(project, progress)
            report["sim"] = {"project": str(Path(out_dir).resolve() / "project"),
                             "totals": sim_report["totals"], "layers": sim_report["layers"],
                             "max_layer_abs_error": sim_report["max_layer_abs_error"],
                             "report": str(Path(out_dir).resolve() / "project" / "sim" / "sim_report.json")}
            write_json(staging / REPORT_NAME, report)
        report["out_dir"] = str(Path(out_dir).resolve())
    return report
