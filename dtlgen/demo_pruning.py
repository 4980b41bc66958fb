"""The demo's pruning scenario (issue 19, after Chandakkar et al., EDGE 2017): a pruned network re-trained on
the device with new data from a distribution like the source's, improving on it while keeping what it knew.

The source-trained model loses a share of its frozen and of its retrainable weights by global magnitude
pruning (`dtlgen.model.prune`), is fine-tuned on the source with the removed weights held at 0 (off the
device, as a pruned model is prepared before deployment), and is deployed on the demo's knee design: the
project's RL engine keeps a mask bit per weight. On the device, the head re-trains on new data (the same
kind of digits, shifted by up to a pixel, noisier) mixed with replayed cached source features against
forgetting, the pruned weights held at 0 by the engine's UPDATE. The report holds the accuracies on held-out
new data and held-out source data before and after, from the weights the RTL simulation read back, and, in
the golden model, the same schedule without the masks (the pruned weights grow back: "regrow") and without
replay. The pruned project's FE image runs in RTL simulation too: its pruned convs stored sparse where that
saves memory beats (`dtlgen.isa.fe`, Sparse weights), its cycles against the same weights stored dense.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dtlgen.boards import Board
from dtlgen.generator.loader import load_rl_project
from dtlgen.generator.project import generate_project
from dtlgen.model import digits_task, import_module, load_factory, resolve_split
from dtlgen.model.ir import Network
from dtlgen.model.prune import part_masks, sparsity_of, with_masks, zero_share
from dtlgen.perf import Design
from dtlgen.perf.fe import fe_ops, keep_words, op_runs, stored_weight_bytes
from dtlgen.perf.validate import network_fingerprint
from dtlgen.progress import as_progress
from dtlgen.sim.project_sim import held_out_accuracy, pruning_report, simulate_project, simulate_retraining
from dtlgen.sim.rl_sim import TrainingPlan, golden_replay, plan_epochs, run_weights

Progress = Callable[[str], None]
FINETUNE_LR = 1e-3  # the pruned model's fine-tuning on the source (Adam), a third of pre-training's


def source_model(config: Any, task: digits_task.NewDataTask, progress: Progress) -> tuple[Any, tuple, Any, str]:
    """The demo model trained on the source: (module, input shape, split, name)."""
    module, input_shape, split, name = load_factory(config.model)
    with as_progress(progress).task(f"pre-training {name} on the source ({len(task.source_y)} images), epochs",
                                    total=config.pretrain_epochs) as step:
        digits_task.pretrain(module, task.source_x, task.source_y, config.pretrain_epochs, config.seed, step.update)
    return module, input_shape, split, name


def pruned_model(config: Any, task: digits_task.NewDataTask, progress: Progress,
                 source: tuple | None = None) -> tuple[Network, dict[str, Any]]:
    """The source-trained model (`source`, trained here if not given; its module is changed in place) pruned
    (config.prune_fe / prune_rl of each part's weights by global magnitude) and fine-tuned on the source with
    the masks; the IR with its masks, and the float accuracies on the source test set along the way."""
    import torch

    module, input_shape, split, name = source or source_model(config, task, progress)

    def imported() -> Network:
        network = import_module(module, input_shape, name)
        return network.with_split(resolve_split(network, split))

    dense = imported()
    masks = part_masks(dense, {"fe": config.prune_fe, "rl": config.prune_rl})
    acc = {"dense": _float_accuracy(module, task.source_test_x, task.source_test_y)}
    by_path = {dense.layer(layer).module_path: mask for layer, mask in masks.items()}
    with torch.no_grad():
        for path, mask in by_path.items():
            module.get_submodule(path).weight.mul_(torch.tensor(mask, dtype=torch.float32))
    acc["pruned"] = _float_accuracy(module, task.source_test_x, task.source_test_y)
    with as_progress(progress).task("fine-tuning the pruned model on the source, its pruned weights held at 0, "
                                    "epochs", total=config.prune_finetune_epochs) as step:
        digits_task.pretrain(module, task.source_x, task.source_y, config.prune_finetune_epochs, config.seed,
                             step.update, masks=by_path, lr=FINETUNE_LR)
    acc["fine_tuned"] = _float_accuracy(module, task.source_test_x, task.source_test_y)
    return with_masks(imported(), masks), acc


def _float_accuracy(module: Any, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        return digits_task.accuracy(module(torch.tensor(x, dtype=torch.float32)).numpy(), y)


def replay_set(task: digits_task.NewDataTask, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The device's re-training set: the new data and `share` as many source images drawn at random (their
    features cached on the device like the new data's: replay against forgetting)."""
    count = min(len(task.source_y), int(round(share * len(task.new_y))))
    pick = np.random.default_rng(seed).choice(len(task.source_y), count, replace=False)
    return np.concatenate([task.new_x, task.source_x[pick]]), np.concatenate([task.new_y, task.source_y[pick]])


def pruning_plan(labels: np.ndarray, features: np.ndarray, config: Any, masks: dict[str, np.ndarray] | None,
                 check_steps: int = 0) -> TrainingPlan:
    """The demo's schedule (epochs, batch, learning-rate decay) over the re-training set, with the masks."""
    order, sizes, shifts = plan_epochs(labels, config.batch, config.epochs, config.lr_shift_at, config.seed + 1)
    checks = sorted(set(range(min(check_steps, len(sizes)))) | {len(sizes) - 1})
    return TrainingPlan(features, labels, order, sizes, shifts, 0, checks, masks=masks)


def pruned_fe(project: Path, network: Network, design: Design, board: Board) -> dict[str, Any]:
    """The pruned project's FE image in RTL simulation: which convs are stored sparse, the weights in DRAM
    and the cycles, against the same pruned weights stored dense (the analytical model, exact on the RTL)."""
    report = simulate_project(project)
    cfg, bus = design.fe, int(board.dram_bytes_per_cycle)
    sparse_ops, dense_ops = fe_ops(network, cfg, bus), fe_ops(network, cfg)
    kept = keep_words(cfg, bus, dense_ops)
    dense_cycles = sum(r.cycles for op in dense_ops for r in op_runs(op, cfg, bus, board.dram_latency_cycles, kept))
    total = report["totals"]["fe"]
    return {"sparse_layers": [op.name for op in sparse_ops if op.sparse is not None],
            "weight_bytes": stored_weight_bytes(sparse_ops, cfg, bus),
            "weight_bytes_dense": stored_weight_bytes(dense_ops, cfg, bus),
            "cycles": total["measured_cycles"], "cycles_model": total["predicted_cycles"],
            "cycles_dense_model": int(dense_cycles), "bit_exact": total["bit_exact"],
            "figures_from": "cycles and bit_exact: RTL simulation of the pruned project's FE image (one image), "
                            "cycles_model: the analytical model; cycles_dense_model: the model with the same "
                            "weights stored dense (exact on the RTL)"}


def pruning_section(staging: Path, out_dir: Path, design: Design, board: Board, config: Any,
                    progress: Progress) -> dict[str, Any]:
    """The pruned network's project (beside the demo's: `pruned_project/`), its RTL re-training on new data
    with replay, and the golden model's regrow and no-replay runs of the same schedule."""
    task = digits_task.load_new_data_task(config.seed)
    network, float_acc = pruned_model(config, task, progress)
    design = replace(design, network=network_fingerprint(network))
    train_x, train_y = replay_set(task, config.prune_replay, config.seed + 3)
    progress(f"generating the pruned network's project ({100 * sparsity_of(network, 'rl'):.0f} % of the head's weights "
             "pruned: the RL engine keeps a mask bit per weight)")
    project = generate_project(network, design, board, task.new_x, task.new_test_x[0], staging / "pruned_project",
                               progress, train=(train_x, train_y))
    progress("the pruned project's FE image in RTL simulation (its pruned convs stored sparse where that saves beats)")
    fe = pruned_fe(project, network, design, board)
    rl = load_rl_project(project)
    qnet, state = rl.qnet, rl.state
    plan = pruning_plan(rl.labels, rl.features, config, rl.masks, config.check_steps)
    progress(f"re-training the pruned head on new data with replay in RTL simulation: {plan.steps} steps")
    training = simulate_retraining(project, design.clock_mhz, plan.steps, progress, plan, rl=rl, run_name="rl_run")
    device = run_weights(project / "sim" / "rl_run", qnet, plan.steps - 1)
    accuracy = held_out_accuracy(network, design, task.new_x, qnet, {"new": (task.new_test_x, task.new_test_y),
                                                                       "source": (task.source_test_x, task.source_test_y)})
    progress("the same schedule in the golden model without the masks (regrow) and without replay")
    regrow = golden_replay(qnet, replace(plan, masks=None, check_steps=[plan.steps - 1]), state)[plan.steps - 1]
    new_only = pruning_plan(task.new_y, rl.features[:len(task.new_y)], config, rl.masks)
    no_replay = golden_replay(qnet, new_only, state)[new_only.steps - 1]
    before, after = accuracy(state), accuracy(device)
    revived = pruning_report(rl.masks, {plan.steps - 1: device})["pruned_nonzero"]
    return {
        "scenario": {"source": "sklearn digits 8x8 (the demo's source half)",
                     "new_data": digits_task.NEW_DATA_DESCRIPTION,
                     "source_test": "held-out clean digits (not trained on)", "new_samples": int(len(task.new_y)),
                     "replayed_source_samples": int(len(train_y) - len(task.new_y)),
                     "new_test_samples": int(len(task.new_test_y)), "source_test_samples": int(len(task.source_test_y))},
        "sparsity": {"fe": sparsity_of(network, "fe"), "rl": sparsity_of(network, "rl"),
                     "layers": {layer.name: float(1 - layer.mask.mean()) for layer in network.layers
                                if layer.mask is not None},
                     "rl_zero_after": zero_share(device.values())},
        "float_source_accuracy": float_acc,
        "before": before, "after": after,
        "new_gain_pt": 100 * (after["new"] - before["new"]),
        "source_loss_pt": 100 * (before["source"] - after["source"]),
        "fe": fe,
        "pruned_nonzero_after": revived, "held_at_zero": revived == 0 and training["pruning"]["held_at_zero"],
        "bit_exact": training["bit_exact"], "first_mismatch": training["first_mismatch"],
        "steps": plan.steps, "epochs": config.epochs, "replay_share": config.prune_replay,
        "cycles": training["cycles"],
        "regrow": {**accuracy(regrow), "sparsity_rl_after": zero_share(regrow.values())},
        "no_replay": accuracy(no_replay),
        "project": str(out_dir / "pruned_project"),
        "figures_from": "accuracies: the golden model's forward pass (FE then RL) over the held-out sets with the "
                        "weights the RTL simulation of the knee design's RL engine read back after the last step "
                        "(after) or with the deployed weights (before); bit_exact: the golden model's replay of "
                        "every step; regrow and no_replay: the golden model (bit-exact with the engines); cycles: "
                        "RTL simulation, the host's count of every descriptor list, and the analytical model",
    }
