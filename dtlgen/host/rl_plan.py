"""The host's integer part of an RL training step, and the training plan: what the host loop
(`dtlgen.host.rl_host`) runs on a device, and what the C-simulation testbench vectors replay.

Pure numpy on the RL layout (`dtlgen.host.rl_program`): the plan (cached features, sample order,
batch sizes, learning-rate shifts; optionally the teacher's cached logits with the distillation
weights, and the early-halting rule with its epochs), features as the engine's GEMM rows and back,
and the output gradient (softmax cross-entropy, or distillation) in the golden model's integer rules. The host loop imports them from
here, the generator writes test vectors with the same functions, and the PYNQ driver vendors this
code; like the rest of the runtime half it must not import the generator, the perf model, the
quantiser or the network model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from dtlgen.host import rl_program as prog
from dtlgen.host.rl_program import RLLayout
from dtlgen.quant import fixed
from dtlgen.quant.fixed import Distillation, QFormat


MASK_PREFIX = "mask_"  # plan_arrays' key of a layer's pruning mask
MAX_STEPS = 100_000  # re-training steps a command or API call may ask for (the demo's whole schedule is 870)


def check_steps(steps, least: int = 1, what: str = "steps") -> int:
    """A number of re-training steps from `least` to MAX_STEPS, or ValueError naming it."""
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or not least <= steps <= MAX_STEPS:
        raise ValueError(f"{what} {steps!r}: an integer from {least} to {MAX_STEPS}")
    return int(steps)


@dataclass
class HaltRule:
    """Label-free early halting: after each epoch the host compares predictions with the teacher's, and
    once the share that agree reaches `agreement`, one last epoch runs at `final_lr_shift` (the schedule's
    last learning rate: the halted run ends annealed, as the full schedule does) and the run stops.
    The predictions are those of the epoch's own forward passes (every training sample once, at no extra
    cost: the host reads the logits anyway), or with `probe` (indices into the plan's features) those of
    forward lists over the probe samples run after the epoch."""

    agreement: float
    final_lr_shift: int
    probe: np.ndarray | None = None


@dataclass
class TrainingPlan:
    """What the host does: cached FE features of the re-training set, the sample order, batch sizes,
    learning-rate shifts and the step number of the first step (it seeds the UPDATE's LFSR).
    With `teacher` (S × the last layer's outputs, integers in its output format) and `kd` the output
    gradient is the distillation one; `halt` needs the teacher and `epoch_ends` (each epoch's last step).
    With `masks` (layer -> its weight shape, 1 keeps a weight) the engine re-trains a pruned network:
    the host loads them after the weights and every UPDATE holds the pruned weights at 0."""

    features: np.ndarray  # (S, ...) integer inputs of the first retrainable layer, one per sample
    labels: np.ndarray  # (S,)
    order: np.ndarray  # sample indices, consumed batch by batch
    batch_sizes: list[int]
    lr_shifts: list[int]
    first_step: int = 0
    check_steps: list[int] = field(default_factory=list)  # step positions whose weights are read back
    teacher: np.ndarray | None = None
    kd: Distillation | None = None
    epoch_ends: list[int] = field(default_factory=list)
    halt: HaltRule | None = None
    masks: dict[str, np.ndarray] | None = None

    def __post_init__(self):
        if self.halt is not None and (self.teacher is None or not self.epoch_ends):
            raise ValueError("a halting rule compares predictions with a teacher's after each epoch: the plan needs "
                             "teacher logits and epoch_ends")
        if self.epoch_ends and (sorted(set(self.epoch_ends)) != list(self.epoch_ends)
                                or self.epoch_ends[-1] != len(self.batch_sizes) - 1):
            raise ValueError(f"epoch_ends {self.epoch_ends[:5]}...: increasing step positions, the last one the plan's "
                             f"last step ({len(self.batch_sizes) - 1})")

    @property
    def steps(self) -> int:
        return len(self.batch_sizes)

    def batches(self):
        pos = 0
        for k, size in enumerate(self.batch_sizes):
            yield k, self.order[pos:pos + size]
            pos += size

    def teacher_of(self, idx: np.ndarray) -> np.ndarray | None:
        """The teacher's logits of samples `idx` when the plan distils, else None."""
        return self.teacher[idx] if self.teacher is not None and self.kd is not None else None

    def breaks(self) -> set[int]:
        """Steps after which the host runs a probe (an epoch's end under a `halt` with a probe): the next
        step loads its own features, since the probe's forward lists replace the ones a background load
        would leave."""
        return set(self.epoch_ends[:-1]) if self.halt is not None and self.halt.probe is not None else set()

    def halt_checks(self) -> set[int]:
        """Steps after which the halting rule is evaluated: every epoch's end but the last."""
        return set(self.epoch_ends[:-1]) if self.halt is not None else set()

    def annealed(self, epochs_done: int) -> TrainingPlan:
        """The plan the host switches to when `halt` fires after `epochs_done` epochs: those epochs, then the
        next one at the final learning rate, then the end (the plan itself when no epoch follows)."""
        if epochs_done >= len(self.epoch_ends):
            return self
        end = self.epoch_ends[epochs_done] + 1
        start = self.epoch_ends[epochs_done - 1] + 1 if epochs_done else 0
        shifts = self.lr_shifts[:start] + [self.halt.final_lr_shift if self.halt else self.lr_shifts[-1]] * (end - start)
        checks = sorted({k for k in self.check_steps if k < end} | {end - 1})
        return replace(self, order=self.order[:sum(self.batch_sizes[:end])], batch_sizes=self.batch_sizes[:end],
                       lr_shifts=shifts, check_steps=checks, epoch_ends=self.epoch_ends[:epochs_done + 1])


def plan_arrays(plan: TrainingPlan) -> dict[str, np.ndarray]:
    """The plan as named arrays (an npz a simulator's host loop reads back with `plan_from_arrays`)."""
    out = {"features": plan.features, "labels": plan.labels, "order": plan.order,
           "batch_sizes": np.array(plan.batch_sizes, dtype=np.int64), "lr_shifts": np.array(plan.lr_shifts, dtype=np.int64),
           "first_step": np.int64(plan.first_step), "check_steps": np.array(plan.check_steps, dtype=np.int64),
           "epoch_ends": np.array(plan.epoch_ends, dtype=np.int64)}
    if plan.teacher is not None:
        out["teacher"] = plan.teacher
    if plan.kd is not None:
        out["kd"] = np.array([plan.kd.alpha, plan.kd.t_shift], dtype=np.int64)
    if plan.halt is not None:
        out["halt_agreement"] = np.float64(plan.halt.agreement)
        out["halt_final_lr_shift"] = np.int64(plan.halt.final_lr_shift)
        if plan.halt.probe is not None:
            out["halt_probe"] = np.asarray(plan.halt.probe, dtype=np.int64)
    for name, mask in (plan.masks or {}).items():
        out[MASK_PREFIX + name] = np.asarray(mask, dtype=np.uint8)
    return out


def plan_from_arrays(data) -> TrainingPlan:
    ints = lambda key: [int(v) for v in data[key]]  # noqa: E731
    kd = Distillation(*ints("kd")) if "kd" in data else None
    halt = HaltRule(float(data["halt_agreement"]), int(data["halt_final_lr_shift"]),
                    np.asarray(data["halt_probe"]) if "halt_probe" in data else None) if "halt_agreement" in data else None
    masks = {key[len(MASK_PREFIX):]: np.asarray(data[key]) for key in data if key.startswith(MASK_PREFIX)}
    return TrainingPlan(data["features"], data["labels"], data["order"], ints("batch_sizes"), ints("lr_shifts"),
                        int(data["first_step"]), ints("check_steps"), data["teacher"] if "teacher" in data else None,
                        kd, ints("epoch_ends") if "epoch_ends" in data else [], halt, masks or None)



def to_rows(features: np.ndarray, feature_shape: tuple[int, ...]) -> np.ndarray:
    """A batch of first-layer inputs as GEMM rows: (B, F) stays; (B, C, H, W) becomes (B*H*W, C)."""
    x = np.asarray(features, dtype=np.int64).reshape((len(features),) + tuple(feature_shape))
    return x if x.ndim == 2 else x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def from_rows(rows: np.ndarray, samples: int, positions: int) -> np.ndarray:
    """GEMM rows of the last layer back to the golden model's per-sample flattening (NCHW order)."""
    if positions == 1:
        return rows
    return rows.reshape(samples, positions, -1).transpose(0, 2, 1).reshape(samples, -1)


def output_gradient(layout: RLLayout, logit_rows: np.ndarray, labels: np.ndarray, teacher: np.ndarray | None = None,
                    kd: Distillation | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The host's part of a step: dY = softmax(Y) - onehot in the golden model's integer rules (with
    `teacher` logits and `kd`, the distillation gradient), per sample, then as the last layer's GEMM
    rows masked with its activation. Returns (per-sample, rows)."""
    last = layout.layers[-1]
    samples = len(labels)
    logits = from_rows(logit_rows, samples, last.positions)
    fmt = QFormat(layout.grad_bits, layout.grad_frac)
    if teacher is not None and kd is not None:
        grad = fixed.distillation_grad(logits, labels, np.asarray(teacher, dtype=np.int64).reshape(logits.shape),
                                       layout.logit_frac, fmt, kd)
    else:
        grad = fixed.softmax_ce_grad(logits, labels, layout.logit_frac, fmt)
    grad_rows = _to_last_rows(grad, samples, last.positions, last.m)
    if last.act == prog.ACTIVATIONS["relu"]:
        grad_rows = np.where(logit_rows > 0, grad_rows, 0)
    elif last.act == prog.ACTIVATIONS["relu6"]:
        grad_rows = np.where((logit_rows > 0) & (logit_rows < last.six), grad_rows, 0)
    return grad, grad_rows


def teacher_agreement(logits: np.ndarray, teacher: np.ndarray) -> int:
    """How many samples' predictions (argmax of their logits, the first on ties) are the teacher's."""
    n = len(logits)
    return int(np.sum(np.asarray(logits).reshape(n, -1).argmax(1) == np.asarray(teacher).reshape(n, -1).argmax(1)))


def sample_plan(features: np.ndarray, labels: np.ndarray, batch: int, steps: int, lr_shift: int,
                seed: int = 1, masks: dict[str, np.ndarray] | None = None) -> TrainingPlan:
    """`steps` full batches drawn at random from a re-training set, weights checked after every step:
    the plan `dtlgen sim --retrain` and `dtlgen csim` run, and the C-simulation testbench replays."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    order = np.concatenate([rng.choice(n, batch, replace=n < batch) for _ in range(steps)]) if steps else \
        np.zeros(0, dtype=np.int64)
    return TrainingPlan(features, labels, order, [batch] * steps, [lr_shift] * steps, 0, list(range(steps)),
                        masks=masks)


def _to_last_rows(grad: np.ndarray, samples: int, positions: int, m: int) -> np.ndarray:
    if positions == 1:
        return grad
    return grad.reshape(samples, m, positions).transpose(0, 2, 1).reshape(-1, m)
