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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dtlgen.errors import DesignError, brief
from dtlgen.host.rl_plan import MAX_STEPS, HaltRule
from dtlgen.model.data import check_batch, check_labels, output_classes
from dtlgen.model.ir import Network
from dtlgen.perf.design import Design
from dtlgen.quant.fixed import Distillation, real_or_nan, teacher_logits

__all__ = ["ExploredDesign", "Project", "explore", "generate", "list_boards", "load_model", "open_project"]


@dataclass(frozen=True)
class ExploredDesign(Design):
    """The design `explore` chose, with the whole Pareto front it was chosen from (per point: its
    variables, objectives and predictions, as pareto.json holds them)."""

    pareto: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    chosen: int = field(default=0, compare=False)  # the design's index in pareto
    evaluations: int = field(default=0, compare=False)  # designs the search evaluated
    seconds: float = field(default=0.0, compare=False)  # the search's wall time


def list_boards() -> list[str]:
    """The names of the boards dtlgen ships (dtlgen/boards/*.yaml; `dtlgen.boards` is that package)."""
    from dtlgen.boards import list_boards as names

    return names()


def load_model(model: Any, input_shape: tuple[int, ...] | None = None, *, retrain_last: int | None = None,
               split: str | int | None = None, name: str | None = None, weights: str | Path | None = None,
               seeded: str | list[str] | None = None, source: tuple[np.ndarray, np.ndarray] | None = None,
               weight_seed: int = 1, seeded_kind: str = "sign", epochs: int = 40,
               prune: dict[str, float] | None = None, adapters: str | None = None) -> Network:
    """A model as dtlgen's Network IR, with the layers before the split frozen (the FE engine's) and
    the rest retrainable (the RL engine's).

    `model` is a torch.nn.Module, imported with the weights it holds (the user's trained ones), or a
    MODEL argument of the CLI: a zoo name or "path/to/file.py:factory". `input_shape` (C, H, W) is
    needed for a module. The split: `retrain_last` K (the last K conv/linear layers and what follows
    them) or `split` (the first retrainable layer's name or index); neither keeps a zoo or factory
    model's own split, and leaves a module all frozen (with a warning). `weights` is a state_dict file
    (torch.save(model.state_dict(), PATH)) loaded into a MODEL string's model, safely (weights_only);
    a module carries its own weights.

    `seeded` ("auto": every frozen conv; or a list of frozen conv layer names) replaces those convs by
    seeded ones (`dtlgen.model.seeded`: weights from `weight_seed` and the layer's number, of
    `seeded_kind`), in a copy of the model, and trains the copy's learnable parameters (the seeded convs'
    scales and biases, BatchNorms, the other layers) on `source` = (x, y), the source task's float inputs
    and integer labels, for `epochs` epochs (Adam, cross-entropy); without `source` the scales stay at
    their initial value (a DtlgenWarning: fine for hardware figures, not for accuracy).

    `prune` ({"fe": 0.7, "rl": 0.8}): magnitude pruning of that share of the conv and linear weights of the
    frozen part (fe) and of the retrainable part (rl), one threshold over each part (`dtlgen.model.prune`). The
    retrainable layers keep their masks: the project's RL engine holds the pruned weights at 0 while
    re-training (a mask bit per weight on chip).

    `adapters` ("tail", "deep" or "all") inserts residual adapters, identity-initialised 1×1 convs, after the
    last block, the deeper half of the blocks or every block of the frozen part (a block: a dense conv and the
    max-pool right after it; `dtlgen.model.adapters`). The split then falls at the first adapter: the adapters
    and the head (the layers the split made retrainable) train, the convs between adapters run forward and
    backward only. The RL engine runs K×K convs and a linear layer over a flattened map (windowed GEMMs) and
    max-pools (kernel = stride ≤ 2, no padding, an exact tiling), so every placement re-trains on the device;
    `generate` names a layer it cannot run.
    """
    if adapters is not None and (prune is not None or seeded is not None):
        from dtlgen.errors import ModelSpecError

        raise ModelSpecError("adapters are not combined with prune or seeded yet: give adapters alone")
    network = _unpruned_model(model, input_shape, retrain_last, split, name, weights, seeded, source, weight_seed,
                              seeded_kind, epochs)
    if adapters is not None:
        from dtlgen.model.adapters import add_adapters

        return add_adapters(network, adapters)
    if prune is None:
        return network
    from dtlgen.model.prune import prune as prune_network

    return prune_network(network, prune)


def _unpruned_model(model: Any, input_shape: Any, retrain_last: Any, split: Any, name: Any, weights: Any, seeded: Any,
                    source: Any, weight_seed: Any, seeded_kind: Any, epochs: Any) -> Network:
    import warnings

    from dtlgen import model as models
    from dtlgen.errors import DtlgenWarning, ModelSpecError

    if retrain_last is not None and split is not None:
        raise ModelSpecError("give retrain_last or split, not both")
    wanted = {"retrain_last": retrain_last} if retrain_last is not None else split
    if seeded is not None:
        return _seeded_model(model, input_shape, wanted, name, weights, seeded, source, weight_seed, seeded_kind, epochs)
    if isinstance(model, str):
        if input_shape is not None:
            raise ModelSpecError(f"input_shape is for a module; '{model}' names its own input shape")
        return models.load_model(model, wanted, weights)
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover - torch is a dependency
        raise ModelSpecError("torch is not installed: install dtlgen's dependencies") from None
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model is a {type(model).__name__}: give a torch.nn.Module or a MODEL string (a zoo "
                             "name or 'path/to/file.py:factory')")
    if weights is not None:
        raise ModelSpecError("weights is for a MODEL string; a module carries its weights: call "
                             "module.load_state_dict(torch.load(PATH, weights_only=True)) before load_model")
    shape = _shape(input_shape)
    network = models.import_module(model, shape, name or type(model).__name__.lower(), f"module {type(model).__name__}")
    if wanted is None:
        warnings.warn(DtlgenWarning(f"no split given, so every layer of '{network.name}' is frozen and nothing "
                                    "re-trains on the device; pass retrain_last=K or split=NAME"), stacklevel=2)
        return network.with_split(len(network.layers))
    return network.with_split(models.resolve_split(network, wanted, "the split"))


def _seeded_model(model: Any, input_shape: Any, wanted: Any, name: str | None, weights: Any, seeded: Any,
                  source: Any, weight_seed: Any, kind: Any, epochs: Any) -> Network:
    """`load_model` with `seeded`: the model's frozen convs seeded in a copy, trained on `source`."""
    import copy

    from dtlgen import model as models
    from dtlgen.errors import ModelSpecError
    from dtlgen.isa import seeded as isa_seeded
    from dtlgen.model.digits_task import pretrain
    from dtlgen.model.seeded import seed_frozen_convs, seedable_convs

    if isinstance(model, str):
        if input_shape is not None:
            raise ModelSpecError(f"input_shape is for a module; '{model}' names its own input shape")
        from dtlgen.model.factory import call_factory

        result = call_factory(model)
        if weights is not None:
            models.load_weights(result.module, weights, result.origin)
        module, shape, label = result.module, result.input_shape, result.name
        wanted = wanted if wanted is not None else result.split
    else:
        import torch.nn as nn

        if not isinstance(model, nn.Module):
            raise ModelSpecError(f"model is a {type(model).__name__}: give a torch.nn.Module or a MODEL string")
        if weights is not None:
            raise ModelSpecError("weights is for a MODEL string; a module carries its weights")
        module, shape, label = copy.deepcopy(model), _shape(input_shape), name or type(model).__name__.lower()
    if wanted is None:
        raise ModelSpecError("seeded needs a split (retrain_last=K or split=NAME): only frozen convs are seeded")
    if kind not in isa_seeded.KINDS:
        raise ModelSpecError(f"seeded_kind {kind!r}: one of {', '.join(isa_seeded.KINDS)}")
    for what, value, lo, hi in (("weight_seed", weight_seed, 0, isa_seeded.MASK), ("epochs", epochs, 1, 10_000)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ModelSpecError(f"{what} is {value!r}: an integer from {lo} to {hi}")
    if source is not None and (not isinstance(source, tuple) or len(source) != 2):
        raise ModelSpecError("source is the source task's (x, y): a tuple of its inputs and labels")
    network = models.import_module(module, shape, label)
    network = network.with_split(models.resolve_split(network, wanted, "the split"))
    convs = [layer for layer in network.frozen_layers if layer.op == "conv2d"]
    frozen = [layer.name for layer in seedable_convs(network)]
    grouped = {layer.name: layer.groups for layer in convs if layer.name not in frozen}
    if not frozen:
        raise ModelSpecError(f"seeded: {label} has no frozen dense or depthwise conv to seed (its frozen layers: "
                             f"{', '.join(l.name for l in network.frozen_layers) or 'none'}); drop seeded, or move the "
                             "split after a conv")
    named_grouped = [name for name in seeded if name in grouped] if isinstance(seeded, list) else []
    if named_grouped:
        raise ModelSpecError(f"seeded: '{named_grouped[0]}' is a grouped conv (groups {grouped[named_grouped[0]]}): only "
                             f"dense or depthwise convs can be seeded ({', '.join(frozen)})")
    if seeded != "auto" and (not isinstance(seeded, list) or not seeded or any(n not in frozen for n in seeded)):
        raise ModelSpecError(f"seeded is {seeded!r}: \"auto\" or a list of frozen conv layers ({', '.join(frozen)})")
    twice = sorted({name for name in seeded if seeded.count(name) > 1}) if seeded != "auto" else []
    if twice:
        raise ModelSpecError(f"seeded names '{twice[0]}' more than once: list each frozen conv once")
    if source is not None:
        x = check_batch(source[0], shape, "source x")
        y = check_labels(source[1], len(x), output_classes(network), "source y")
    try:
        seed_frozen_convs(module, network, weight_seed, kind, None if seeded == "auto" else seeded)
    except ValueError as exc:
        raise ModelSpecError(f"seeded: {exc}") from None
    if source is None:
        import warnings

        from dtlgen.errors import DtlgenWarning

        warnings.warn(DtlgenWarning(f"{label}'s seeded convs keep untrained scales (He's initial value) and the rest "
                                    "its weights as they are: fine for the hardware figures, not for accuracy; give "
                                    "the source task (source=(x, y), the CLI's --source DATA.npz) to train them"),
                      stacklevel=3)
    else:
        pretrain(module, x, y, epochs, seed=0)
    seeded_net = models.import_module(module, shape, label)
    return seeded_net.with_split(models.resolve_split(seeded_net, wanted, "the split"))


def explore(network: Network, board: str = "pynq-z2", *, pop: int = 40, gens: int = 20, seed: int = 1,
            calibration: np.ndarray | None = None, prefer: str = "knee", out: str | Path | None = None,
            force: bool = False, on_generation: Callable[[int], None] | None = None, workers: int = 0,
            dask: str | None = None, fe_batch: int = 1, ddr: bool = False,
            overrides: dict[str, dict[str, int]] | None = None,
            calibration_file: str | Path | None = None, max_latency_ms: float | None = None,
            max_param_bytes: int | None = None, prefetch: str = "auto") -> ExploredDesign:
    """NSGA-II over tiling and bit widths of both engines for `board` (a shipped board's name or a
    board YAML file; the `dse` command): the chosen design (`prefer`: knee, throughput, accuracy or
    resources), its front in `.pareto`. `calibration` is a float batch of inputs (N, C, H, W) for the
    information-loss objective and the quantisation (default: the model's built-in calibration
    inputs, seeded by `seed`); `out` also writes pareto.json/csv/png and design.json there. `workers`
    or `dask` evaluate on Dask; `fe_batch` is the images per FE run; `ddr` scores FE cycles on the
    board's DDR-like memory. `overrides` fixes fractional bits per layer, {layer: {"w_frac": F,
    "a_frac": F}}, for every design the search scores; the chosen design records them (design.json
    "overrides") and generate quantises with them. `calibration_file`, the NPZ file `calibration`
    was read from (the CLI's --calib), is recorded in the design (design.json "calibration": its
    path and SHA-256). `max_latency_ms` and `max_param_bytes` are the device's limits: every design
    on the front takes an image to its logits within that time at the design clock (its FE run and
    the RL forward, analytical model) and stores its parameters in that many bytes. `prefetch` is the FE
    engine's read FIFO of prefetched requests (design field `fe.prefetch`) on a board whose memory latency
    calls for one: "auto" gives each design of the front the FIFO where it still fits and the model finds it
    faster, "search" lets NSGA-II search it, "off" never builds it."""
    from dtlgen.boards import load_board
    from dtlgen.dse import run_dse
    from dtlgen.dse.problem import PREFETCH_MODES, Fixed

    record = load_board(board)
    if ddr:  # before the search, not after it
        from dtlgen.perf.fe import require_ddr_timing

        require_ddr_timing(record)
    calib = _calibration(network, calibration, seed)
    calibration_record = _calibration_record(calibration, calibration_file)
    if overrides is not None:
        from dtlgen.quant.quantize import check_overrides

        check_overrides(network, overrides)
    if not isinstance(prefetch, str) or prefetch not in PREFETCH_MODES:
        raise DesignError(f"prefetch={prefetch!r}: give \"auto\" (the read FIFO of prefetched requests where it fits "
                          "and the model finds it faster), \"search\" (NSGA-II searches it) or \"off\"")
    for name, value in (("max_latency_ms", max_latency_ms), ("max_param_bytes", max_param_bytes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not np.isfinite(value) or value <= 0):
            raise DesignError(f"{name}={value!r}: give a positive number, or None for no limit")
    result = run_dse(network, record, calib, Path(out) if out is not None else None, pop, gens, seed, prefer,
                     workers, dask, fixed=Fixed(fe_batch=fe_batch, ddr=ddr, overrides=overrides, max_latency_ms=max_latency_ms,
                                                max_param_bytes=max_param_bytes, prefetch=prefetch),
                     on_generation=on_generation, force=force,
                     calibration=calibration_record)
    design = Design.from_dict(result.design, "the explored design")
    return ExploredDesign(**{f: getattr(design, f) for f in Design.__dataclass_fields__}, pareto=tuple(result.front),
                          chosen=result.chosen, evaluations=result.evaluations, seconds=result.seconds)


def generate(network: Network, design: Design, out: str | Path, *, calibration: np.ndarray | None = None,
             train: tuple[np.ndarray, np.ndarray] | None = None, flow: str = "auto", engine_ip: str = "rtl",
             force: bool = False, board: str | None = None, calibration_file: str | Path | None = None,
             progress: Callable[[str], None] = lambda message: None) -> "Project":
    """Write the project for `design` (the `generate` command) and open it. `calibration` as for
    `explore` (use the same batch, so that the quantisation is the one the DSE scored); `train` the
    re-training set (float inputs, class labels) whose FE features the project caches for
    C-simulation and `dtlgen sim --retrain` (default: the calibration inputs with seeded labels, a
    hardware check rather than a task). `board` (a name or YAML file) is for a design that does not
    embed its board record; it must be the board the design was made for. `calibration_file` as for
    `explore`: the project's design.json records the file this quantisation came from (and none
    when `calibration` is not given, whatever the DSE's design recorded)."""
    from dtlgen.generator.project import generate_project, quantize_for_design
    from dtlgen.perf.validate import check_design_matches

    if not isinstance(design, Design):
        raise DesignError(f"design is a {type(design).__name__}: give the Design that explore returns, or "
                          "dtlgen.perf.load_design('design.json')")
    board = design.board_record(board, "the design")
    check_design_matches(network, design, "the design")  # generate_project checks it against the board
    calib = _calibration(network, calibration, 0)
    record = _calibration_record(calibration, calibration_file)
    _warn_if_calibrated_otherwise(design.calibration, record, calibration is not None)
    design = replace(design, calibration=record)
    samples = calib[:design.fe.batch] if len(calib) >= design.fe.batch else np.repeat(calib[:1], design.fe.batch, 0)
    if train is not None:
        train = _training_set(network, train)
    path = generate_project(network, design, board, calib, samples if design.fe.batch > 1 else samples[0], Path(out),
                            progress, train=train, flow=flow, force=force, engine_ip=engine_ip)
    return Project(path, quantize_for_design(network, design, calib))


def open_project(path: str | Path) -> "Project":
    """A project `generate` (or `dtlgen generate`) wrote, checked as data from a stranger."""
    return Project(Path(path))


def _retrain_strategies(teacher: Any, kd_alpha: Any, kd_temperature: Any, distill: Any, halt: Any,
                        halt_probe: Any, epochs: int) -> tuple[Distillation | None, HaltRule | None]:
    """`Project.retrain`'s distillation weights and halting rule (its probe drawn later), checked."""
    import numbers

    kd = _distillation(kd_alpha, kd_temperature)
    if not isinstance(distill, (bool, np.bool_)):
        raise DesignError(f"distill {distill!r}: True (distil from the teacher) or False (cross-entropy alone)")
    if halt is not None and (isinstance(halt, (bool, np.bool_)) or not isinstance(halt, numbers.Real)
                             or not 0 <= real_or_nan(halt) <= 1):
        raise DesignError(f"halt {halt!r}: the share of predictions agreeing with the teacher's, from 0 to 1, or None")
    if halt is not None and teacher is None:
        raise DesignError("halt needs a teacher: give teacher= (its logits of x), or halt=None")
    if halt is not None and epochs < 2:
        raise DesignError(f"halt looks after every epoch but the last, and epochs={epochs} has none to look after: "
                          "give epochs >= 2")
    if teacher is not None and not distill and halt is None:
        raise DesignError("the teacher is used for nothing: distill=True to distil from it, or halt= to halt on it")
    if isinstance(halt_probe, (bool, np.bool_)) or not isinstance(halt_probe, numbers.Integral) or \
            not 0 <= halt_probe <= 100_000:
        raise DesignError(f"halt_probe {halt_probe!r}: 0 (the epoch's own predictions) or a number of samples up "
                          "to 100000")
    if halt_probe and halt is None:
        raise DesignError("halt_probe is the halting rule's probe: give halt= too, or drop halt_probe")
    return (kd if teacher is not None and distill else None), \
        (HaltRule(float(halt), 0) if halt is not None else None)


def _replay_share(value: Any) -> float:
    """retrain's replay: cached samples per new sample, a real number from 0 to 16."""
    import numbers

    share = real_or_nan(value) if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) \
        else float("nan")
    if not 0.0 <= share <= 16.0:
        raise DesignError(f"replay {brief(value, 40)}: the project's cached samples mixed in per sample of x, a number from 0 "
                          "to 16 (0.5: half as many)")
    return share


def _distillation(kd_alpha: Any, kd_temperature: Any) -> Distillation:
    try:
        return Distillation.from_values(kd_alpha, kd_temperature)
    except ValueError as error:
        raise DesignError(f"kd_alpha / kd_temperature: {error}") from None


class Project:
    """A generated project: its files, checked on opening, and what runs on them."""

    def __init__(self, path: Path, qnet: Any = None):
        from dtlgen.generator.loader import load_rl_project
        from dtlgen.generator.loader import open_project as load

        self.data = load(path)
        self.path = self.data.root
        self.design = self.data.design
        self.rl = load_rl_project(self.data) if self.data.has_rl else None
        self.state = self.rl.state if self.rl is not None else None  # the RL weights predict uses
        self._steps = 0  # training steps run so far (the next one's number seeds its LFSR)
        self._engines = None
        self._qnet = qnet  # the whole quantised network, when this process generated the project (fe="golden")

    def __repr__(self) -> str:
        return f"Project('{self.path}')"

    def predict(self, x: np.ndarray, *, fe: str = "csim") -> np.ndarray:
        """The network's outputs for a float batch `x` (N, C, H, W) from the C-simulation of the
        project's HLS engines: the FE engine on each image (in batches of the design's FE batch), then
        the RL engine's forward pass on the features with the project's weights (those `retrain` left,
        else the project's own); bit for bit the golden model's. Logits as floats (the last layer's
        fixed point, scaled); with no RL engine, the FE's output (integers). `fe` as for `features`."""
        features = self.features(x, fe=fe)
        if self.rl is None:
            return features
        return self._rl_forward(features.reshape(len(features), -1), self._csim())

    def retrain(self, x: np.ndarray, y: np.ndarray, epochs: int = 1, *, seed: int = 1, lr_shift: int | None = None,
                check: bool = True, engine: str = "csim", fe: str = "csim", teacher: np.ndarray | None = None,
                kd_alpha: float = 0.5, kd_temperature: int = 2, distill: bool = True, halt: float | None = None,
                halt_probe: int = 0, replay: float = 0.0, regrow: bool = False) -> dict[str, Any]:
        """On-device SGD of the retrainable layers on (x, y): the FE engine's C-simulation computes the
        features once, then the RL engine runs `epochs` epochs (a fresh permutation each, batches of the
        design's RL batch, the last one short) with the learning rate 2^-lr_shift (default the design's)
        through the host loop, on the C-simulated HLS engine (`engine="csim"`) or on the RTL engine in
        Verilator (`engine="rtl"`: minutes for a few hundred steps, and the measured cycles of the whole
        run beside the model's). The weights stay in this Project (predict uses them; save_weights
        writes them). With `check`, the golden model replays the same steps and any difference raises.
        Returns the steps, each epoch's training accuracy (from the logits of its forward passes),
        whether it was checked bit-exact, and with "rtl" the cycles. `fe` as for `features`.

        `teacher`: a teacher's float logits of `x` (samples x the network's outputs, from any model, computed
        off the device), cached in the last layer's output format. With it and `distill`, the host's gradient
        is the distillation one: (1 - kd_alpha) cross-entropy on `y` and kd_alpha on the teacher's soft
        targets at temperature kd_temperature (a power of two from 1 to 16; kd_alpha in steps of 1/256).
        `halt` (a share from 0 to 1, needs `teacher`): after each epoch, the share of predictions that agree
        with the teacher's (the epoch's own, or with `halt_probe` those of that many samples of `x` in extra
        forward passes); once it reaches `halt`, one more epoch, then stop. The result then says when it
        fired (`halting`) and counts the epochs run.

        A pruned network (`load_model(..., prune=...)`) re-trains with its masks: the engine holds the pruned
        weights at 0 (the result's `pruning` counts any that are not). `regrow=True` leaves the masks out, so
        they may grow back. `replay` (a share, e.g. 0.5) mixes that many of the project's cached re-training
        samples per sample of x (their features, cached at generate time from its `train` set: the source
        data, against forgetting) into every epoch."""
        from dtlgen.host.rl_host import RLHost
        from dtlgen.csim.engines import CsimDevice
        from dtlgen.sim.rl_sim import (TrainingPlan, first_mismatch, golden_halting, golden_replay, plan_epochs,
                                       predict_plan)

        if engine not in ("csim", "rtl"):
            raise DesignError(f"engine {engine!r}: 'csim' (the C-simulated HLS engine) or 'rtl' (the RTL engine in "
                              "Verilator)")
        rl = self._require_rl()
        if isinstance(epochs, (bool, np.bool_)) or not isinstance(epochs, (int, np.integer)) or not 1 <= epochs <= 10_000:
            raise DesignError(f"epochs {epochs!r}: an integer from 1 to 10000")
        epochs = int(epochs)
        layout, qnet = rl.layout, rl.qnet
        shift = qnet.precision.lr_shift if lr_shift is None else lr_shift
        if isinstance(shift, (bool, np.bool_)) or not isinstance(shift, (int, np.integer)) or not 0 <= shift <= 30:
            raise DesignError(f"lr_shift {shift!r}: the learning rate is 2^-lr_shift, lr_shift an integer from 0 to 30")
        shift = int(shift)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
            raise DesignError(f"seed {brief(seed)}: a non-negative integer (the epochs' permutations)")
        kd, rule = _retrain_strategies(teacher, kd_alpha, kd_temperature, distill, halt, halt_probe, epochs)
        cached = None
        if teacher is not None:  # checked before the FE's C-simulation of x
            last = layout.layers[-1]
            logits = check_batch(teacher, (last.m * last.positions,), "teacher")
            count = len(y) if np.ndim(y) == 1 else None  # (y's own shape is checked below)
            if count is not None and len(logits) != count:
                raise DesignError(f"teacher has logits of {len(logits)} samples; give one row per sample of x "
                                  f"({count})")
            cached = teacher_logits(logits, qnet.layers[qnet.rl_layers[-1].name].out_fmt.frac)
        replay, replayed = _replay_share(replay), 0
        if not isinstance(regrow, (bool, np.bool_)):
            raise DesignError(f"regrow {regrow!r}: True (the pruned weights may grow back) or False")
        if replay and rl.seeded_labels:
            rl.replay_samples(0, replay, seed)  # (refused: seeded labels)
        if replay and teacher is not None:
            raise DesignError("replay mixes the project's cached samples into the set, and the teacher's logits cover x "
                              "only: give replay or teacher, not both")
        features = self.features(x, fe=fe).reshape(-1, int(np.prod(layout.feature_shape)))
        labels = check_labels(y, len(features), layout.layers[-1].m)
        if replay:
            extra = rl.replay_samples(len(labels), replay, seed)
            features, labels = np.concatenate([features, extra[0]]), np.concatenate([labels, extra[1]])
            replayed = len(extra[1])
        per_epoch = -(-len(labels) // layout.batch)
        if epochs * per_epoch > MAX_STEPS:
            raise DesignError(f"epochs={epochs} of {per_epoch} steps each is {epochs * per_epoch:,} steps, more than "
                              f"{MAX_STEPS:,}; give fewer epochs, or re-train on a part of x")
        order, sizes, shifts = plan_epochs(labels, layout.batch, epochs, lambda epoch: shift, seed)
        if rule is not None:
            probe = np.random.default_rng(seed).choice(len(labels), min(int(halt_probe), len(labels)), replace=False) \
                if halt_probe else None
            rule = HaltRule(float(halt), shift, probe)
        plan = TrainingPlan(features, labels, order, sizes, shifts, self._steps, [len(sizes) - 1], cached, kd,
                            [(e + 1) * per_epoch - 1 for e in range(epochs)], rule, None if regrow else rl.masks)
        extra: dict[str, Any] = {}
        if engine == "csim":
            from dtlgen.progress import current, step_counter

            with current().task("training steps on the C-simulated RL engine", total=len(sizes)) as bar:
                run = asyncio.run(RLHost(CsimDevice(self._csim(), layout.memory_bytes), layout).train(
                    plan, self.state, step_counter(bar)))
            weights, logits, ran, probes, halted = run.weights, run.logits, run.plan, run.probes, run.halted_epoch
            source = "C-simulation of the HLS RL engine through the host loop"
        else:
            import tempfile

            from dtlgen.sim.rl_sim import predict_probe, simulate_training

            latency = self.data.params.dram.latency
            with tempfile.TemporaryDirectory(prefix="dtlgen-retrain-") as scratch:
                result = simulate_training(layout, plan, self.state, Path(scratch) / "rl_run", latency)
            weights, logits, ran, probes, halted = (result.weights, result.logits, result.plan, result.probes,
                                                    result.halted_epoch)
            source = "RTL simulation of the RL engine (Verilator, cocotb host loop)"
            probe_model = predict_probe(layout, latency, len(rule.probe)) if rule and rule.probe is not None else 0
            extra = {"measured_cycles": int(result.step_cycles.sum()) + sum(p.cycles for p in probes),
                     "predicted_cycles": sum(d.cycles for step in predict_plan(layout, latency, ran.batch_sizes,
                                                                               ran.breaks()) for d in step)
                     + probe_model * len(probes),
                     "cycles_source": {"measured": "RTL simulation, the host's count of every step's descriptor "
                                                   "lists (and the halting rule's probes)",
                                       "predicted": "analytical model (dtlgen.perf.rl)"}}
        steps = ran.steps
        state = weights[steps - 1]
        if check:
            if rule is not None:  # the host's halting decisions too: the golden model decides on its own
                golden_plan, agreements, final = golden_halting(qnet, plan, self.state)
                if golden_plan.lr_shifts != ran.lr_shifts or agreements != [p.agreement for p in probes]:
                    raise DesignError(f"the {engine} RL engine's run and the golden model halt differently: agreements "
                                      f"{[p.agreement for p in probes]} against {agreements}")
                expected = {steps - 1: final}
            else:
                expected = golden_replay(qnet, ran, self.state, {steps - 1})
            mismatch = first_mismatch(weights, expected)
            if mismatch is not None:
                raise DesignError(f"the {engine} RL engine and the golden model differ after re-training: {mismatch}")
        predicted = np.asarray(logits).reshape(len(ran.order), -1).argmax(1)
        epochs_run = len(ran.epoch_ends)
        per_epoch = len(labels)
        accuracy = [float(np.mean(predicted[e * per_epoch:(e + 1) * per_epoch] == labels[ran.order[e * per_epoch:
                                                                                                  (e + 1) * per_epoch]]))
                    for e in range(epochs_run)]
        self.state, self._steps = state, self._steps + steps
        if kd is not None:
            extra["distillation"] = kd.to_dict()
        if rl.masks is not None:
            from dtlgen.sim.project_sim import pruning_report

            extra["pruning"] = {"regrow": bool(regrow), **pruning_report(rl.masks, {steps - 1: state})}
        if replay:
            extra["replayed_samples"] = replayed
        if rule is not None:
            extra["halting"] = {"agreement": float(halt), "probe_samples": 0 if rule.probe is None else len(rule.probe),
                                "halted_epoch": halted,
                                "agreements": [p.agreement for p in probes]}
        return {"steps": steps, "epochs": epochs_run, "train_accuracy": accuracy, "bit_exact": True if check else None,
                "engine": engine, "source": source + ("; checked against the golden model" if check else ""), **extra}

    def simulate(self, *, retrain: bool = False, steps: int = 20, ddr: bool = False,
                 train: tuple[np.ndarray, np.ndarray] | None = None, teacher: np.ndarray | None = None,
                 kd_alpha: float = 0.5, kd_temperature: int = 2, replay: float = 0.0, regrow: bool = False,
                 progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
        """RTL simulation of the project (the `sim` command): the FE engine on the project's image,
        every layer bit-exact against the golden model and its measured cycles against the model's;
        with `retrain`, `steps` training steps on the RL engine (on `train`, a float batch and its
        labels, instead of the project's re-training set), weights checked after every step; with
        `teacher` (its float logits of that set, one row per sample) the host distils (`retrain`'s
        kd_alpha, kd_temperature); `replay` and `regrow` as `retrain` takes them (replay needs `train`).
        Writes sim/sim_report.json, .md and predicted_vs_measured.png; returns the report."""
        from dtlgen.sim.project_sim import simulate_project

        weights = _distillation(kd_alpha, kd_temperature)  # (checked with or without a teacher)
        replay = _replay_share(replay)
        if not isinstance(regrow, (bool, np.bool_)):
            raise DesignError(f"regrow {regrow!r}: True (the pruned weights may grow back) or False")
        distill = (teacher, weights) if teacher is not None else None
        return simulate_project(self.path, progress, retrain, steps, ddr, self.training_set(train), distill, replay,
                                regrow)

    def training_set(self, train: tuple[np.ndarray, np.ndarray] | None, *,
                     names: tuple[str, str] = ("train x", "train y")) -> tuple[np.ndarray, np.ndarray] | None:
        """(FE features, labels) of a re-training set (float inputs, class labels), the features from
        the FE engine's C-simulation: what `dtlgen csim/sim --data` re-train on. None for None. Both
        arrays are checked before the C-simulation runs; `names` name them in messages (the CLI's
        name the --data file: `dtlgen.model.data.array_names`)."""
        if train is None:
            return None
        if not isinstance(train, (tuple, list)) or len(train) != 2:
            raise DesignError("train must be a pair (x, y): float inputs (N, C, H, W) and N class labels")
        rl = self._require_rl()
        x = check_batch(train[0], self._input_shape(), names[0])
        labels = check_labels(train[1], len(x), rl.layout.layers[-1].m, names[1])
        return self.features(x).reshape(-1, int(np.prod(rl.layout.feature_shape))), labels

    def save_weights(self, path: str | Path) -> Path:
        """Write the RL weights predict uses (after retrain: the re-trained ones) to an NPZ file: per
        layer `w_<layer>` and `b_<layer>` as the engine's integers, `w_<layer>_float` /
        `b_<layer>_float` scaled by their fixed-point formats, and `fmt_<layer>` the formats
        themselves, [w_bits, w_frac, b_bits, b_frac] (load_weights holds them against its project's).
        An existing file is not overwritten."""
        from dtlgen.atomic import write_bytes_new

        self._require_rl()
        arrays = {}
        for name, (w, b) in self.state.items():
            lq = self.rl.qnet.layers[name]
            arrays[f"w_{name}"], arrays[f"b_{name}"] = w, b
            arrays[f"w_{name}_float"] = np.asarray(w, dtype=np.float64) * 2.0 ** -lq.w_fmt.frac
            arrays[f"b_{name}_float"] = np.asarray(b, dtype=np.float64) * 2.0 ** -lq.b_fmt.frac
            arrays[f"fmt_{name}"] = np.array(_formats(lq), dtype=np.int64)
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return write_bytes_new(Path(path), buffer.getvalue(), "the weights file")

    def load_weights(self, path: str | Path) -> None:
        """Use the RL weights of an NPZ file `save_weights` wrote for predict and retrain: each layer's
        fixed-point formats (`fmt_<layer>`) must be this project's (integers of another scale would
        be read at the wrong one), its weights integers of the layer's shape and bit range."""
        from dtlgen.model.data import read_arrays

        fix = "write it with Project.save_weights of a project of this design"
        self._require_rl()
        arrays = read_arrays(path, "a weights file from Project.save_weights", fix)
        state = {}
        for name, (w, b) in self.rl.state.items():
            lq = self.rl.qnet.layers[name]
            want = _formats(lq)
            got = arrays.get(f"fmt_{name}")
            if got is None or got.shape != (4,) or got.dtype.kind not in "iu":
                raise DesignError(f"{path}: fmt_{name} must be layer '{name}''s fixed-point formats, 4 integers "
                                  f"[w_bits, w_frac, b_bits, b_frac] (this project's: {want}); {fix}")
            if [int(v) for v in got] != want:
                raise DesignError(f"{path}: layer '{name}' was saved in the formats {_describe(got)}, this project's "
                                  f"are {_describe(want)}: the integers would be read at another scale; load weights "
                                  f"saved from a project of this design, or re-train this one")
            loaded = []
            for key, like, fmt in ((f"w_{name}", w, lq.w_fmt), (f"b_{name}", b, lq.b_fmt)):
                value = arrays.get(key)
                lo, hi = -(1 << (fmt.bits - 1)), (1 << (fmt.bits - 1)) - 1
                if value is None or value.shape != np.shape(like) or value.dtype.kind not in "iu" or (
                        value.size and (value.min() < lo or value.max() > hi)):
                    raise DesignError(f"{path}: {key} must be integers of shape {np.shape(like)} from {lo} to {hi} "
                                      f"(the layer's {fmt.bits}-bit format); {fix}")
                loaded.append(value.astype(np.asarray(like).dtype))
            state[name] = (loaded[0], loaded[1])
        self.state = state

    def _require_rl(self):
        if self.rl is None:
            raise DesignError(f"project '{self.path}' has no RL engine (nothing re-trains); generate it with a split "
                              "(load_model(..., retrain_last=K))")
        return self.rl

    def features(self, x: np.ndarray, *, fe: str = "csim") -> np.ndarray:
        """The FE engine's last output for each sample of a float batch `x` (N, C, H, W): integers as
        the engine writes them (the RL engine's input). `fe="csim"` runs the FE engine's C-simulation
        (milliseconds to a minute an image, by the network); `fe="golden"` the golden model (hundreds
        of times faster on big networks), bit for bit the same, for a project this process
        generated (it holds the quantised network; a project opened from a folder does not)."""
        from dtlgen.isa import fe as isa_fe
        from dtlgen.quant import fixed, golden

        if fe not in ("csim", "golden"):
            raise DesignError(f"fe {fe!r}: 'csim' (the FE engine's C-simulation) or 'golden' (the golden model)")
        if fe == "golden":
            if self._qnet is None:
                raise DesignError(f"fe='golden' needs the quantised network, which only a Project from "
                                  f"dtlgen.generate holds; '{self.path}' was opened from its folder: use fe='csim'")
            x = check_batch(x, self._input_shape(), "x")
            # the layer the engine's last descriptor writes
            return golden.fe_output(self._qnet, golden.quantize_input(self._qnet, x), self.data.fe_program().ops[-1].layer)

        data = self.data
        fmt = data.program.get("input_format")
        if fmt is None:
            raise DesignError(f"{self.path}/sim/program.json has no input_format (a project of an older dtlgen); "
                              "regenerate it with 'dtlgen generate' or dtlgen.generate")
        in_shape = self._input_shape()
        x = check_batch(x, in_shape, "x")
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
        from dtlgen.generator.loader import check_sources

        if self._engines is None:
            # g++ compiles only what dtlgen writes for this design: a project folder is data from a stranger
            check_sources(self.data, self.rl, ("hls",))
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


def _formats(lq: Any) -> list[int]:
    """An RL layer's weight and bias formats as a weights file stores them: [w_bits, w_frac, b_bits, b_frac]."""
    return [lq.w_fmt.bits, lq.w_fmt.frac, lq.b_fmt.bits, lq.b_fmt.frac]


def _describe(formats: Any) -> str:
    w_bits, w_frac, b_bits, b_frac = (int(v) for v in formats)
    return f"weights Q({w_bits}, {w_frac}), bias Q({b_bits}, {b_frac})"


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


def _calibration(network: Network, calibration: Any, seed: int) -> np.ndarray:
    from dtlgen.model.calibration import calibration_inputs

    if calibration is None:
        return calibration_inputs(network, seed)
    return check_batch(calibration, tuple(network.input_shape), "calibration")


def _calibration_record(calibration: Any, calibration_file: str | Path | None) -> dict[str, str] | None:
    from dtlgen.model.data import file_record

    if calibration_file is None:
        return None
    if calibration is None:
        raise DesignError("calibration_file names the file the calibration inputs came from: give calibration (its "
                          "x) too")
    path = Path(calibration_file)
    if not path.is_file():
        raise DesignError(f"calibration_file {path}: {'not a file' if path.exists() else 'no such file'}; give the NPZ "
                          "file the calibration inputs were read from")
    return file_record(path)


def _warn_if_calibrated_otherwise(explored: dict[str, str] | None, record: dict[str, str] | None, given: bool) -> None:
    """A DtlgenWarning when the design was explored on a calibration file (design.json "calibration") and this
    quantisation uses other inputs: its formats, and so its information loss, are not the ones the DSE scored."""
    if explored is None or (record is not None and record.get("sha256") == explored.get("sha256")):
        return
    import warnings

    from dtlgen.errors import DtlgenWarning

    now = (f"{record['path']} (another SHA-256)" if record is not None
           else "inputs given without their file" if given else "the model's built-in calibration inputs")
    warnings.warn(DtlgenWarning(f"the design was explored with --calib {explored.get('path')} but this project quantises "
                                f"with {now}: the formats, and the information loss, may differ from what the DSE "
                                f"scored; give --calib {explored.get('path')} (calibration_file) to quantise the same way"),
                  stacklevel=3)


def _training_set(network: Network, train: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(train, (tuple, list)) or len(train) != 2:
        raise DesignError("train must be a pair (x, y): float inputs (N, C, H, W) and N class labels")
    x = check_batch(train[0], tuple(network.input_shape), "train x")
    return x, check_labels(train[1], len(x), output_classes(network), "train y")
