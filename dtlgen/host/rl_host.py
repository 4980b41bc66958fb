"""The RL engine's host loop: what the Zynq's processor runs on the board, and the cocotb testbench
runs against the simulator, through the same `Device` interface (write, read, run).

Per mini-batch: the cached FE features of the batch go to the engine's feature buffer; the forward
list (LOAD features, FWD per layer, STORE logits) runs; the host computes the softmax cross-entropy
gradient with the golden model's integer rules (`fixed.softmax_ce_grad`), masks it with the last
layer's activation, and writes it; the backward list (LOAD dY, BWD_DATA / UPDATE per layer from the
last) runs. Weights go in once (`load_params`) and come back when asked (`read_params`).

The methods are coroutines so that a simulator can advance its clock inside `Device.run`; a board
driver implements `Device` with plain memory-mapped I/O and drives them with `asyncio.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

import numpy as np

from dtlgen.generator import rl_program as prog
from dtlgen.generator.rl_program import RLLayout
from dtlgen.quant import fixed
from dtlgen.quant.fixed import QFormat


class Device(Protocol):
    async def write(self, addr: int, data: bytes) -> None: ...

    async def read(self, addr: int, size: int) -> bytes: ...

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        """Run `count` descriptors from `desc_addr`; returns the engine's cycles (start to done)."""
        ...


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


@dataclass
class TrainingRun:
    """What the host saw while running a plan."""

    weights: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]]  # step position -> weights read back
    logits: np.ndarray  # every step's logits, concatenated
    cycles: np.ndarray  # (steps, 2): the forward and backward lists' cycles as the device reports them


@dataclass
class StepResult:
    logits: np.ndarray  # integer logits of the batch, (B, classes)
    output_grad: np.ndarray  # the gradient the host wrote, (B, classes)
    forward_cycles: int
    backward_cycles: int


def to_rows(features: np.ndarray, feature_shape: tuple[int, ...]) -> np.ndarray:
    """A batch of first-layer inputs as GEMM rows: (B, F) stays; (B, C, H, W) becomes (B*H*W, C)."""
    x = np.asarray(features, dtype=np.int64).reshape((len(features),) + tuple(feature_shape))
    return x if x.ndim == 2 else x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def from_rows(rows: np.ndarray, samples: int, positions: int) -> np.ndarray:
    """GEMM rows of the last layer back to the golden model's per-sample flattening (NCHW order)."""
    if positions == 1:
        return rows
    return rows.reshape(samples, positions, -1).transpose(0, 2, 1).reshape(samples, -1)


class RLHost:
    def __init__(self, device: Device, layout: RLLayout):
        self.device = device
        self.layout = layout

    async def load_params(self, state: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        lay = self.layout
        await self.device.write(lay.params_addr, prog.params_image(lay, state))
        await self._run(prog.params_list(lay, "LOAD_P"), 1, prog.PERF_BASE["params"])

    async def read_params(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        lay = self.layout
        await self._run(prog.params_list(lay, "STORE_P"), 1, prog.PERF_BASE["params"] + 1)
        return prog.params_from_image(lay, await self.device.read(lay.params_addr, lay.params_bytes), shapes)

    async def train_step(self, features: np.ndarray, labels: np.ndarray, step: int, lr_shift: int) -> StepResult:
        lay = self.layout
        last = lay.layers[-1]
        samples = len(labels)
        await self.device.write(lay.feat_addr, prog.matrix_bytes(lay, to_rows(features, lay.feature_shape)))
        fwd_count, bwd_count = prog.step_descriptor_counts(lay)
        forward = await self._run(prog.forward_list(lay, samples), fwd_count, prog.PERF_BASE["forward"])
        rows = samples * last.positions
        raw = await self.device.read(lay.logit_addr, rows * last.pitch_m * lay.lanes * prog.VALUE_BYTES)
        logit_rows = prog.matrix_from_bytes(lay, raw, rows, last.m)
        logits = from_rows(logit_rows, samples, last.positions)
        grad, grad_rows = output_gradient(lay, logit_rows, labels)
        await self.device.write(lay.dy_addr, prog.matrix_bytes(lay, grad_rows))
        backward = await self._run(prog.backward_list(lay, samples, step, lr_shift), bwd_count,
                                   prog.PERF_BASE["backward"])
        return StepResult(logits, grad, forward, backward)

    async def train(self, plan: TrainingPlan, state: dict[str, tuple[np.ndarray, np.ndarray]],
                    after_step: Callable[[int, StepResult], Awaitable[None]] | None = None) -> TrainingRun:
        """Load `state`, run every step of `plan`, read the weights back after plan.check_steps."""
        shapes = {name: tuple(np.shape(w)) for name, (w, _) in state.items()}
        await self.load_params(state)
        checks = set(plan.check_steps)
        weights, logits, cycles = {}, [], []
        for k, idx in plan.batches():
            result = await self.train_step(plan.features[idx], plan.labels[idx], plan.first_step + k,
                                           plan.lr_shifts[k])
            cycles.append((result.forward_cycles, result.backward_cycles))
            logits.append(result.logits)
            if after_step is not None:
                await after_step(k, result)
            if k in checks:
                weights[k] = await self.read_params(shapes)
        return TrainingRun(weights, np.concatenate(logits) if logits else np.zeros((0,)),
                           np.array(cycles, dtype=np.int64).reshape(-1, 2))

    async def _run(self, descriptors: bytes, count: int, perf_base: int) -> int:
        await self.device.write(self.layout.desc_addr, descriptors)
        return await self.device.run(self.layout.desc_addr, count, perf_base)


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
