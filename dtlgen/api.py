"""dtlgen's Python API: the CLI's steps on a user's own model, trained weights and data.

    import dtlgen
    net = dtlgen.load_model(module, (1, 8, 8), retrain_last=2)      # torch module, its weights as they are
    design = dtlgen.explore(net, board="pynq-z2", pop=40, gens=20, calibration=x_calib)
    prj = dtlgen.generate(net, design, "prj", calibration=x_calib, train=(x, y))
    logits = prj.predict(x)                                          # bit-true C-simulation of the engines

The commands of `dtlgen` (cli.py) are thin shells around the same functions (model import, DSE,
project generation, C-simulation), so a figure the API gives is the one the CLI prints. Every problem
with the user's model, data or folders is a DtlgenError naming it and the fix. docs/api.md documents
each call.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dtlgen.errors import DesignError
from dtlgen.model.ir import Network
from dtlgen.perf.design import Design

__all__ = ["ExploredDesign", "Project", "explore", "generate", "list_boards", "load_model", "open_project"]


@dataclass(frozen=True)
class ExploredDesign(Design):
    """The design `explore` chose, with the whole Pareto front it was chosen from (per point: its
    variables, objectives and predictions, as pareto.json holds them)."""

    pareto: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)


def list_boards() -> list[str]:
    """The names of the boards dtlgen ships (dtlgen/boards/*.yaml; `dtlgen.boards` is that package)."""
    from dtlgen.boards import list_boards as names

    return names()


def load_model(model: Any, input_shape: tuple[int, ...] | None = None, *, retrain_last: int | None = None,
               split: str | int | None = None, name: str | None = None) -> Network:
    """A model as dtlgen's Network IR, with the layers before the split frozen (the FE engine's) and
    the rest retrainable (the RL engine's).

    `model` is a torch.nn.Module, imported with the weights it holds (the user's trained ones), or a
    MODEL argument of the CLI: a zoo name or "path/to/file.py:factory". `input_shape` (C, H, W) is
    needed for a module. The split: `retrain_last` K (the last K conv/linear layers and what follows
    them) or `split` (the first retrainable layer's name or index); neither keeps a zoo or factory
    model's own split, and leaves a module all frozen (with a warning).
    """
    import warnings

    from dtlgen import model as models
    from dtlgen.errors import DtlgenWarning, ModelSpecError

    if retrain_last is not None and split is not None:
        raise ModelSpecError("give retrain_last or split, not both")
    wanted = {"retrain_last": retrain_last} if retrain_last is not None else split
    if isinstance(model, str):
        if input_shape is not None:
            raise ModelSpecError(f"input_shape is for a module; '{model}' names its own input shape")
        return models.load_model(model, wanted)
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover - torch is a dependency
        raise ModelSpecError("torch is not installed: install dtlgen's dependencies") from None
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model is a {type(model).__name__}: give a torch.nn.Module or a MODEL string (a zoo "
                             "name or 'path/to/file.py:factory')")
    shape = _shape(input_shape)
    network = models.import_module(model, shape, name or type(model).__name__.lower(), f"module {type(model).__name__}")
    if wanted is None:
        warnings.warn(DtlgenWarning(f"no split given, so every layer of '{network.name}' is frozen and nothing "
                                    "re-trains on the device; pass retrain_last=K or split=NAME"), stacklevel=2)
        return network.with_split(len(network.layers))
    return network.with_split(models.resolve_split(network, wanted, "the split"))


def explore(network: Network, board: str = "pynq-z2", *, pop: int = 40, gens: int = 20, seed: int = 1,
            calibration: np.ndarray | None = None, prefer: str = "knee", out: str | Path | None = None,
            force: bool = False, on_generation: Callable[[int], None] | None = None) -> ExploredDesign:
    """NSGA-II over tiling and bit widths of both engines for `board` (the `dse` command): the chosen
    design (`prefer`: knee, throughput, accuracy or resources), its front in `.pareto`. `calibration`
    is a float batch of inputs (N, C, H, W) for the information-loss objective and the quantisation
    (default: seeded synthetic inputs); `out` also writes pareto.json/csv/png and design.json there."""
    from dtlgen.boards import load_board
    from dtlgen.dse import run_dse

    record = load_board(board)
    calib = _calibration(network, calibration, seed)
    result = run_dse(network, record, calib, Path(out) if out is not None else None, pop, gens, seed, prefer,
                     on_generation=on_generation, force=force)
    design = Design.from_dict(result.design, "the explored design")
    return ExploredDesign(**{f: getattr(design, f) for f in Design.__dataclass_fields__}, pareto=tuple(result.front))


def generate(network: Network, design: Design, out: str | Path, *, calibration: np.ndarray | None = None,
             train: tuple[np.ndarray, np.ndarray] | None = None, flow: str = "auto", engine_ip: str = "rtl",
             force: bool = False, progress: Callable[[str], None] = lambda message: None) -> "Project":
    """Write the project for `design` (the `generate` command) and open it. `calibration` as for
    `explore` (use the same batch, so that the quantisation is the one the DSE scored); `train` the
    re-training set (float inputs, class labels) whose FE features the project caches for
    C-simulation and `dtlgen sim --retrain`."""
    from dtlgen.generator.project import generate_project
    from dtlgen.perf.validate import check_design_matches

    if not isinstance(design, Design):
        raise DesignError(f"design is a {type(design).__name__}: give the Design that explore returns, or "
                          "dtlgen.perf.load_design('design.json')")
    board = design.board_record(None, "the design")
    check_design_matches(network, design, "the design")  # generate_project checks it against the board
    calib = _calibration(network, calibration, 0)
    samples = calib[:design.fe.batch] if len(calib) >= design.fe.batch else np.repeat(calib[:1], design.fe.batch, 0)
    if train is not None:
        train = _training_set(network, train)
    path = generate_project(network, design, board, calib, samples if design.fe.batch > 1 else samples[0], Path(out),
                            progress, train=train, flow=flow, force=force, engine_ip=engine_ip)
    return Project(path)


def open_project(path: str | Path) -> "Project":
    """A project `generate` (or `dtlgen generate`) wrote, checked as data from a stranger."""
    return Project(Path(path))


class Project:
    """A generated project: its files, checked on opening, and what runs on them."""

    def __init__(self, path: Path):
        from dtlgen.generator.loader import load_rl_project
        from dtlgen.generator.loader import open_project as load

        self.data = load(path)
        self.path = self.data.root
        self.design = self.data.design
        self.rl = load_rl_project(self.data) if self.data.has_rl else None
        self.state = self.rl.state if self.rl is not None else None  # the RL weights predict uses
        self._steps = 0  # training steps run so far (the next one's number seeds its LFSR)
        self._engines = None

    def __repr__(self) -> str:
        return f"Project('{self.path}')"

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs for a float batch `x` (N, C, H, W) from the C-simulation of the
        project's HLS engines: the FE engine on each image (in batches of the design's FE batch), then
        the RL engine's forward pass on the features with the project's weights (those `retrain` left,
        else the project's own); bit for bit the golden model's. Logits as floats (the last layer's
        fixed point, scaled); with no RL engine, the FE's output (integers)."""
        features = self._features(x)
        if self.rl is None:
            return features
        return self._rl_forward(features.reshape(len(features), -1), self._csim())

    def retrain(self, x: np.ndarray, y: np.ndarray, epochs: int = 1, *, seed: int = 1, lr_shift: int | None = None,
                check: bool = True, engine: str = "csim") -> dict[str, Any]:
        """On-device SGD of the retrainable layers on (x, y): the FE engine computes the features once,
        then the RL engine runs `epochs` epochs (a fresh permutation each, batches of the design's RL
        batch, the last one short) with the learning rate 2^-lr_shift (default the design's), through
        the host loop on the C-simulated engine. The weights stay in this Project (predict uses them;
        the project's files are not changed). With `check`, the golden model replays the same steps
        and any difference raises. Returns the steps, each epoch's training accuracy (from the logits
        of its forward passes) and whether it was checked bit-exact."""
        from dtlgen.host.rl_host import RLHost
        from dtlgen.csim.engines import CsimDevice
        from dtlgen.sim.rl_sim import TrainingPlan, first_mismatch, golden_replay, plan_epochs

        if engine != "csim":
            raise DesignError(f"engine {engine!r}: Project.retrain runs the C-simulated engine ('csim'); re-train in "
                              f"RTL simulation with 'dtlgen sim {self.path} --retrain'")
        if self.rl is None:
            raise DesignError(f"project '{self.path}' has no RL engine (nothing re-trains); generate it with a split "
                              "(load_model(..., retrain_last=K))")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 10_000:
            raise DesignError(f"epochs {epochs!r}: an integer from 1 to 10000")
        layout, qnet = self.rl.layout, self.rl.qnet
        shift = qnet.precision.lr_shift if lr_shift is None else lr_shift
        if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= 30:
            raise DesignError(f"lr_shift {shift!r}: the learning rate is 2^-lr_shift, lr_shift an integer from 0 to 30")
        features = self._features(x).reshape(-1, int(np.prod(layout.feature_shape)))
        labels = _labels(y, len(features), layout.layers[-1].m)
        order, sizes, shifts = plan_epochs(labels, layout.batch, epochs, lambda epoch: shift, seed)
        steps = len(sizes)
        plan = TrainingPlan(features, labels, order, sizes, shifts, self._steps, [steps - 1])
        run = asyncio.run(RLHost(CsimDevice(self._csim(), layout.memory_bytes), layout).train(plan, self.state))
        state = run.weights[steps - 1]
        if check:
            mismatch = first_mismatch(run.weights, golden_replay(qnet, plan, self.state, {steps - 1}))
            if mismatch is not None:
                raise DesignError(f"the C-simulated RL engine and the golden model differ after re-training: {mismatch}")
        predicted = run.logits.reshape(len(order), -1).argmax(1)
        per_epoch = len(labels)
        accuracy = [float(np.mean(predicted[e * per_epoch:(e + 1) * per_epoch] == labels[order[e * per_epoch:
                                                                                              (e + 1) * per_epoch]]))
                    for e in range(epochs)]
        self.state, self._steps = state, self._steps + steps
        return {"steps": steps, "epochs": epochs, "train_accuracy": accuracy, "bit_exact": True if check else None,
                "source": "C-simulation of the HLS RL engine through the host loop; checked against the golden model"
                          if check else "C-simulation of the HLS RL engine through the host loop"}

    def _features(self, x: np.ndarray) -> np.ndarray:
        """The FE engine's last output for each sample of `x`, from its C-simulation."""
        from dtlgen.isa import fe as isa_fe
        from dtlgen.quant import fixed

        data = self.data
        fmt = data.program.get("input_format")
        if fmt is None:
            raise DesignError(f"{self.path}/sim/program.json has no input_format (a project of an older dtlgen); "
                              "regenerate it with 'dtlgen generate' or dtlgen.generate")
        in_shape = self._input_shape()
        x = _batch(x, in_shape, "x")
        x_int = fixed.to_fixed(x, fixed.QFormat(fmt["bits"], fmt["frac"]))
        engines = self._csim()
        program = data.fe_program()
        batch = data.design.fe.batch
        sample = int(np.prod(in_shape))
        row_bytes = data.board.dram_ddr.row_bytes if data.board.dram_ddr is not None else 0
        pitch = isa_fe.image_pitch(sample, row_bytes) if batch > 1 else sample
        last = program.ops[-1].layer
        stored = [i for i, op in enumerate(program.ops) if op.layer == last]
        features = []
        for start in range(0, len(x_int), batch):
            chunk = x_int[start:start + batch]
            memory = np.array(data.memory, dtype=np.uint8)
            for k, image in enumerate(chunk):
                at = program.input_addr + k * pitch
                memory[at:at + sample] = image.reshape(-1).astype(np.int8).view(np.uint8)
            engines.run_fe(memory, program.desc_addr, len(program.ops), origin=f"{self.path}/sim")
            outputs = np.concatenate([program.read_images(memory, i) for i in stored])
            features.append(outputs[:len(chunk)])
        return np.concatenate(features)

    def _input_shape(self) -> tuple[int, ...]:
        op = self.data.fe_ops[0]
        return (op.n, op.h, op.w)

    def _csim(self):
        from dtlgen.csim.engines import CsimEngines

        if self._engines is None:
            self._engines = CsimEngines(self.path)
        return self._engines

    def _rl_forward(self, features: np.ndarray, engines) -> np.ndarray:
        from dtlgen.csim.engines import CsimDevice
        from dtlgen.host.rl_host import RLHost
        from dtlgen.quant import golden

        rl = self.rl
        width = int(np.prod(rl.layout.feature_shape))
        if features.shape[1] != width:
            raise DesignError(f"{self.path}: the FE's last output holds {features.shape[1]} values a sample, the RL "
                              f"engine takes {width}; regenerate the project")

        async def run() -> np.ndarray:
            host = RLHost(CsimDevice(engines, rl.layout.memory_bytes), rl.layout)
            await host.load_params(self.state)
            out = []
            for start in range(0, len(features), rl.layout.batch):
                out.append(await host.infer(features[start:start + rl.layout.batch]))
            return np.concatenate(out)

        logits = asyncio.run(run())
        return logits.reshape(len(features), -1) * 2.0 ** -golden.output_frac(rl.qnet)


def _shape(input_shape: Any) -> tuple[int, ...]:
    from dtlgen.errors import ModelSpecError

    if input_shape is None:
        raise ModelSpecError("a module needs input_shape, e.g. (3, 32, 32): one sample's (C, H, W)")
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ModelSpecError(f"input_shape {input_shape!r} must be a tuple of positive integers (C, H, W)") from None
    if not shape or any(v < 1 for v in shape) or any(float(v) != float(w) for v, w in zip(shape, input_shape)):
        raise ModelSpecError(f"input_shape {input_shape!r} must be a tuple of positive integers (C, H, W)")
    return shape


def _batch(x: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A float batch (N, *shape) of finite values (one sample of `shape` becomes a batch of one)."""
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise DesignError(f"{what} must be a numeric array of shape (N, {', '.join(map(str, shape))})") from None
    if array.shape == shape:
        array = array[None]
    if array.ndim != len(shape) + 1 or array.shape[1:] != shape or len(array) < 1:
        raise DesignError(f"{what} has shape {array.shape}; the network takes (N, {', '.join(map(str, shape))})")
    if not np.all(np.isfinite(array)):
        raise DesignError(f"{what} holds NaN or infinite values; give finite inputs")
    return array


def _calibration(network: Network, calibration: Any, seed: int) -> np.ndarray:
    from dtlgen.model.calibration import calibration_inputs

    if calibration is None:
        return calibration_inputs(network, seed)
    return _batch(calibration, tuple(network.input_shape), "calibration")


def _training_set(network: Network, train: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(train, (tuple, list)) or len(train) != 2:
        raise DesignError("train must be a pair (x, y): float inputs (N, C, H, W) and N class labels")
    x = _batch(train[0], tuple(network.input_shape), "train x")
    return x, _labels(train[1], len(x), int(math.prod(network.layers[-1].out_shape)), "train y")


def _labels(y: Any, count: int, classes: int, what: str = "y") -> np.ndarray:
    labels = np.asarray(y)
    if labels.shape != (count,) or labels.dtype.kind not in "iu" or (
            labels.size and (labels.min() < 0 or labels.max() >= classes)):
        raise DesignError(f"{what} must be {count} integer class labels from 0 to {classes - 1}")
    return labels.astype(np.int64)
