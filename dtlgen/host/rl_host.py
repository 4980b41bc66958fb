"""The RL engine's host loop: what the Zynq's processor runs on the board, and the cocotb testbench
runs against the simulator, through the same `Device` interface (write, read, run).

Per mini-batch: the forward list (FWD per layer, STORE logits; the first step of a run LOADs its
features first) runs; the host computes the softmax cross-entropy gradient with the golden model's
integer rules (`fixed.softmax_ce_grad`), masks it with the last layer's activation, and writes it,
with the next batch's cached FE features into the other of the layout's two feature regions; the
backward list (LOAD dY, BWD_DATA / UPDATE per layer from the last, and the next batch's feature LOAD
in the background of the first layer's UPDATE) runs. Steps alternate regions
(`rl_program.step_schedule`, which the cycle model counts too). Weights go in once (`load_params`, with
the plan's pruning masks after them) and come back when asked (`read_params`).

A plan with a teacher and distillation weights writes the distillation gradient instead; a plan with a
halting rule counts after each epoch how many predictions agree with the teacher's (the epoch's own
logits, or forward lists over the rule's probe samples) and, once the share reaches the rule's, runs
one annealing epoch and stops (`TrainingPlan.annealed`).

The methods are coroutines so that a simulator can advance its clock inside `Device.run`; a board
driver implements `Device` with plain memory-mapped I/O and drives them with `asyncio.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

import numpy as np

from dtlgen.host import rl_program as prog
from dtlgen.host.rl_plan import (HaltRule, TrainingPlan, from_rows, output_gradient,  # noqa: F401 (API)
                                 sample_plan, teacher_agreement, to_rows)
from dtlgen.host.rl_program import RLLayout


class Device(Protocol):
    async def write(self, addr: int, data: bytes) -> None: ...

    async def read(self, addr: int, size: int) -> bytes: ...

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        """Run `count` descriptors from `desc_addr`; returns the engine's cycles (start to done)."""
        ...


@dataclass
class Probe:
    """A halting rule's look after an epoch: the share of samples predicted as the teacher does."""

    epoch: int  # epochs done
    agreement: float
    cycles: int  # the forward lists over the rule's probe samples, as the device reports them (0 without)


@dataclass
class TrainingRun:
    """What the host saw while running a plan."""

    weights: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]]  # step position -> weights read back
    logits: np.ndarray  # every step's logits, concatenated
    cycles: np.ndarray  # (steps, 2): the forward and backward lists' cycles as the device reports them
    plan: TrainingPlan | None = None  # the plan the steps followed (annealed when the halting rule fired)
    probes: list[Probe] = field(default_factory=list)
    halted_epoch: int | None = None  # epochs done when the halting rule fired


@dataclass
class StepResult:
    logits: np.ndarray  # integer logits of the batch, (B, classes)
    output_grad: np.ndarray  # the gradient the host wrote, (B, classes)
    forward_cycles: int
    backward_cycles: int


class RLHost:
    def __init__(self, device: Device, layout: RLLayout):
        self.device = device
        self.layout = layout

    async def load_params(self, state: dict[str, tuple[np.ndarray, np.ndarray]],
                          masks: dict[str, np.ndarray] | None = None) -> None:
        """LOAD_P the weights and biases (every weight unmasked); with pruning `masks`, LOAD_M them after."""
        lay = self.layout
        loads = prog.masks_list(lay) if masks is not None else b""  # (refused before anything is written)
        await self.device.write(lay.params_addr, prog.params_image(lay, state))
        await self._run(prog.params_list(lay, "LOAD_P"), 1, prog.PERF_BASE["params"])
        if masks is not None:
            await self.device.write(lay.mask_addr, prog.mask_image(lay, masks))
            await self._run(loads, 1, prog.PERF_BASE["params"] + 2)

    async def read_params(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        lay = self.layout
        await self._run(prog.params_list(lay, "STORE_P"), 1, prog.PERF_BASE["params"] + 1)
        return prog.params_from_image(lay, await self.device.read(lay.params_addr, lay.params_bytes), shapes)

    async def infer(self, features: np.ndarray) -> np.ndarray:
        """The forward list alone on at most a batch of `features`: the integer logits (samples, ...)."""
        return (await self._forward(features))[0]

    async def _forward(self, features: np.ndarray) -> tuple[np.ndarray, int]:
        lay = self.layout
        samples = len(features)
        await self.device.write(lay.feature_region(0)[1], prog.matrix_bytes(lay, to_rows(features, lay.feature_shape)))
        cycles = await self._run(prog.forward_list(lay, samples, 0, True),
                                 prog.step_descriptor_counts(lay, True, False)[0], prog.PERF_BASE["forward"])
        return from_rows(await self._logits(samples), samples, lay.layers[-1].positions), cycles

    async def agreement(self, plan: TrainingPlan) -> tuple[float, int]:
        """The share of the halting rule's probe samples whose prediction is the teacher's, and the
        forward lists' cycles (batches of the layout's batch)."""
        probe = np.asarray(plan.halt.probe)
        agree, cycles = 0, 0
        for start in range(0, len(probe), self.layout.batch):
            idx = probe[start:start + self.layout.batch]
            logits, spent = await self._forward(plan.features[idx])
            agree += teacher_agreement(logits, plan.teacher[idx])
            cycles += spent
        return agree / len(probe), cycles

    async def _logits(self, samples: int) -> np.ndarray:
        last = self.layout.layers[-1]
        rows = samples * last.positions
        raw = await self.device.read(self.layout.logit_addr,
                                     rows * last.pitch_m * self.layout.engine.lanes * prog.VALUE_BYTES)
        return prog.matrix_from_bytes(self.layout, raw, rows, last.m)

    async def train_step(self, features: np.ndarray | None, labels: np.ndarray, step: int, lr_shift: int,
                         slot: int = 0, next_features: np.ndarray | None = None, teacher: np.ndarray | None = None,
                         kd=None) -> StepResult:
        """One step on the features in region `slot`: `features` are written and loaded first, or None when
        the previous step's backward list loaded them; `next_features` load in the background of this
        step's last UPDATE, into the other region; `teacher` logits and `kd` weights: distillation."""
        lay = self.layout
        last = lay.layers[-1]
        samples = len(labels)
        if features is not None:
            await self.device.write(lay.feature_region(slot)[1],
                                    prog.matrix_bytes(lay, to_rows(features, lay.feature_shape)))
        prefetch = len(next_features) if next_features is not None else 0
        fwd_count, bwd_count = prog.step_descriptor_counts(lay, features is not None, prefetch > 0)
        forward = await self._run(prog.forward_list(lay, samples, slot, features is not None), fwd_count,
                                  prog.PERF_BASE["forward"])
        logit_rows = await self._logits(samples)
        logits = from_rows(logit_rows, samples, last.positions)
        grad, grad_rows = output_gradient(lay, logit_rows, labels, teacher, kd)
        await self.device.write(lay.dy_addr, prog.matrix_bytes(lay, grad_rows))
        if prefetch:
            await self.device.write(lay.feature_region(1 - slot)[1],
                                    prog.matrix_bytes(lay, to_rows(next_features, lay.feature_shape)))
        backward = await self._run(prog.backward_list(lay, samples, step, lr_shift, slot, prefetch), bwd_count,
                                   prog.PERF_BASE["backward"])
        return StepResult(logits, grad, forward, backward)

    async def train(self, plan: TrainingPlan, state: dict[str, tuple[np.ndarray, np.ndarray]],
                    after_step: Callable[[int, StepResult], Awaitable[None]] | None = None) -> TrainingRun:
        """Load `state`, run every step of `plan` (under its halting rule, until it stops), read the weights
        back after the plan's check_steps."""
        shapes = {name: tuple(np.shape(w)) for name, (w, _) in state.items()}
        await self.load_params(state, plan.masks)
        weights, logits, cycles, probes, halted = {}, [], [], [], None
        batches = list(plan.batches())
        schedule = prog.step_schedule(plan.batch_sizes, plan.breaks())
        agreed = seen = 0  # the epoch's predictions that agree with the teacher's, and samples
        k = 0
        while k < plan.steps:
            idx = batches[k][1]
            load, prefetch = schedule[k]
            # step k's features are in region k % 2; step k + 1's load during step k's last UPDATE
            upcoming = plan.features[batches[k + 1][1]] if prefetch else None
            result = await self.train_step(plan.features[idx] if load else None, plan.labels[idx],
                                           plan.first_step + k, plan.lr_shifts[k], k % 2, upcoming,
                                           plan.teacher_of(idx), plan.kd)
            cycles.append((result.forward_cycles, result.backward_cycles))
            logits.append(result.logits)
            if after_step is not None:
                await after_step(k, result)
            if plan.halt is not None and halted is None and plan.halt.probe is None:
                agreed, seen = agreed + teacher_agreement(result.logits, plan.teacher[idx]), seen + len(idx)
            if k in plan.halt_checks() and halted is None:
                epoch = plan.epoch_ends.index(k) + 1
                agreement, spent = await self.agreement(plan) if plan.halt.probe is not None else (agreed / seen, 0)
                agreed = seen = 0
                probes.append(Probe(epoch, agreement, spent))
                if agreement >= plan.halt.agreement:
                    halted, plan = epoch, plan.annealed(epoch)
                    schedule = prog.step_schedule(plan.batch_sizes, plan.breaks())
            if k in plan.check_steps:
                weights[k] = await self.read_params(shapes)
            k += 1
        return TrainingRun(weights, np.concatenate(logits) if logits else np.zeros((0,)),
                           np.array(cycles, dtype=np.int64).reshape(-1, 2), plan, probes, halted)

    async def _run(self, descriptors: bytes, count: int, perf_base: int) -> int:
        await self.device.write(self.layout.desc_addr, descriptors)
        return await self.device.run(self.layout.desc_addr, count, perf_base)
