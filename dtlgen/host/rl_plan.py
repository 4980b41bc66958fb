"""The host's integer part of an RL training step, and the training plan: what the host loop
(`dtlgen.host.rl_host`) runs on a device, and what the C-simulation testbench vectors replay.

Pure numpy on the RL layout (`dtlgen.host.rl_program`): the plan (cached features, sample order,
batch sizes, learning-rate shifts), features as the engine's GEMM rows and back, and the softmax
cross-entropy output gradient in the golden model's integer rules. The host loop imports them from
here, the generator writes test vectors with the same functions, and the PYNQ driver vendors this
code; like the rest of the runtime half it must not import the generator, the perf model, the
quantiser or the network model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dtlgen.host import rl_program as prog
from dtlgen.host.rl_program import RLLayout
from dtlgen.quant import fixed
from dtlgen.quant.fixed import QFormat


@dataclass
class TrainingPlan:
    """What the host does: cached FE features of the re-training set, the sample order, batch sizes,
    learning-rate shifts and the step number of the first step (it seeds the UPDATE's LFSR)."""

    features: np.ndarray  # (S, ...) integer inputs of the first retrainable layer, one per sample
    labels: np.ndarray  # (S,)
    order: np.ndarray  # sample indices, consumed batch by batch
    batch_sizes: list[int]
    lr_shifts: list[int]
    first_step: int = 0
    check_steps: list[int] = field(default_factory=list)  # step positions whose weights are read back

    @property
    def steps(self) -> int:
        return len(self.batch_sizes)

    def batches(self):
        pos = 0
        for k, size in enumerate(self.batch_sizes):
            yield k, self.order[pos:pos + size]
            pos += size



def to_rows(features: np.ndarray, feature_shape: tuple[int, ...]) -> np.ndarray:
    """A batch of first-layer inputs as GEMM rows: (B, F) stays; (B, C, H, W) becomes (B*H*W, C)."""
    x = np.asarray(features, dtype=np.int64).reshape((len(features),) + tuple(feature_shape))
    return x if x.ndim == 2 else x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def from_rows(rows: np.ndarray, samples: int, positions: int) -> np.ndarray:
    """GEMM rows of the last layer back to the golden model's per-sample flattening (NCHW order)."""
    if positions == 1:
        return rows
    return rows.reshape(samples, positions, -1).transpose(0, 2, 1).reshape(samples, -1)


def output_gradient(layout: RLLayout, logit_rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The host's part of a step: dY = softmax(Y) - onehot in the golden model's integer rules, per
    sample, then as the last layer's GEMM rows masked with its activation. Returns (per-sample, rows)."""
    last = layout.layers[-1]
    samples = len(labels)
    logits = from_rows(logit_rows, samples, last.positions)
    grad = fixed.softmax_ce_grad(logits, labels, layout.logit_frac, QFormat(layout.grad_bits, layout.grad_frac))
    grad_rows = _to_last_rows(grad, samples, last.positions, last.m)
    if last.act == prog.ACTIVATIONS["relu"]:
        grad_rows = np.where(logit_rows > 0, grad_rows, 0)
    elif last.act == prog.ACTIVATIONS["relu6"]:
        grad_rows = np.where((logit_rows > 0) & (logit_rows < last.six), grad_rows, 0)
    return grad, grad_rows


def sample_plan(features: np.ndarray, labels: np.ndarray, batch: int, steps: int, lr_shift: int,
                seed: int = 1) -> TrainingPlan:
    """`steps` full batches drawn at random from a re-training set, weights checked after every step:
    the plan `dtlgen sim --retrain` and `dtlgen csim` run, and the C-simulation testbench replays."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    order = np.concatenate([rng.choice(n, batch, replace=n < batch) for _ in range(steps)]) if steps else \
        np.zeros(0, dtype=np.int64)
    return TrainingPlan(features, labels, order, [batch] * steps, [lr_shift] * steps, 0, list(range(steps)))


def _to_last_rows(grad: np.ndarray, samples: int, positions: int, m: int) -> np.ndarray:
    if positions == 1:
        return grad
    return grad.reshape(samples, m, positions).transpose(0, 2, 1).reshape(-1, m)
