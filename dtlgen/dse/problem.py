"""The design-space exploration problem: variables, objectives and constraints as a pymoo Problem.

Every variable is a choice from an ordered tuple of allowed values, encoded as an integer index;
pymoo's integer machinery (integer random sampling, SBX and polynomial mutation with rounding
repair) searches the indices. The space is data (`Space`), so a reduced space for the
exhaustive-front comparison is the same problem with shorter tuples.

Objectives (all minimised):
1. information loss: logit KL of the hybrid fixed-point network vs float on calibration data
   (`dtlgen.quant.metrics.info_loss`), cached per (w_bits, a_bits, rl_bits);
2. time of the workload in seconds: (inference + re-training images) × FE time per image +
   re-training steps × RL time per step, from `dtlgen.perf`;
3. resource utilisation: the largest of the DSP, BRAM18 and LUT fractions of the board.
Constraints (≤ 0): each of DSP, BRAM18, LUT, FF utilisation − 1; RL weight memories − board BRAM18;
and every other problem `dtlgen.perf.validate.design_problems` finds (engine limits, operations the
RTL cannot run) or the quantisation finds (per-layer overrides whose formats the engines cannot run
at the design's bit widths), so that the DSE proposes only designs that `generate` accepts. The
device's own limits, when given (`Fixed`): an image's latency to its logits over `max_latency_ms`
(`NetworkPrediction.latency_ms`) and the parameters' stored bytes over `max_param_bytes`
(`quant.metrics.model_size_bytes` "hybrid", at the design's bit widths), as fractions − 1.

Information loss is computed in the driver process only; the analytical model (pure, cheap)
is what runs on Dask workers, so a distributed run returns exactly the in-process numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np
from pymoo.core.problem import Problem
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from dtlgen.boards import Board
from dtlgen.errors import DesignError
from dtlgen.model.ir import Network
from dtlgen.perf import Design, predict
from dtlgen.perf.fe import FEConfig, ddr_timing, generated_layers
from dtlgen.perf.rl import RLConfig
from dtlgen.perf.validate import structural_problems
from dtlgen.quant import golden, reference
from dtlgen.quant.metrics import info_loss, model_size_bytes
from dtlgen.quant.quantize import PrecisionConfig, quantize

OBJECTIVES = ("info_loss", "time_s", "utilisation")
REFUSED_LOSS = 1e30  # the information loss of bit widths the overrides cannot be quantised at (infeasible anyway)
LUT_FRACTION_STEPS = 32  # lut_mults = round(tm·tn·k / 32), k = 0..32: fine enough to fill the DSPs exactly


PREFETCH_MODES = ("auto", "search", "off")  # Fixed.prefetch
CHOICES = ("fe_gen", "fe_prefetch")  # Space's variables searched only when given more than one value


@dataclass(frozen=True)
class Space:
    """Allowed values per design variable (ordered tuples)."""

    fe_tm: tuple[int, ...] = tuple(range(1, 65))
    fe_tn: tuple[int, ...] = tuple(range(1, 65))
    fe_tr: tuple[int, ...] = tuple(range(1, 33))
    fe_tc: tuple[int, ...] = tuple(range(1, 33))
    fe_w_bits: tuple[int, ...] = (4, 5, 6, 7, 8)
    fe_a_bits: tuple[int, ...] = (4, 5, 6, 7, 8)
    fe_lut_32nds: tuple[int, ...] = tuple(range(LUT_FRACTION_STEPS + 1))
    rl_tm: tuple[int, ...] = tuple(range(1, 33))
    rl_tn: tuple[int, ...] = tuple(range(1, 33))
    rl_bits: tuple[int, ...] = tuple(range(8, 17))
    fe_gen: tuple[int, ...] = (1,)  # (0, 1) for a network with seeded ±1 convs (`run.run_dse`): generated or stored
    # (0, 1) with Fixed.prefetch "search" on a board whose memory latency calls for the read FIFO of
    # prefetched requests (`run.run_dse`)
    fe_prefetch: tuple[int, ...] = (0,)

    @property
    def names(self) -> tuple[str, ...]:
        """The variables NSGA-II searches (`fe_gen`, `fe_prefetch` only when they have a choice: a network
        without seeded convs on a board without the FIFO searches the space it always did)."""
        return tuple(name for name in self.__dataclass_fields__
                     if name not in CHOICES or len(getattr(self, name)) > 1)

    def sizes(self) -> list[int]:
        return [len(getattr(self, name)) for name in self.names]

    def decode(self, index_row) -> dict[str, int]:
        return ({name: getattr(self, name)[0] for name in CHOICES}
                | {name: getattr(self, name)[int(i)] for name, i in zip(self.names, index_row)})

    def count(self) -> int:
        return math.prod(self.sizes())

    def to_dict(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Workload:
    """What the device does per adaptation round (weights of the time objective)."""

    inference_images: int = 1000
    retrain_images: int = 512
    epochs: int = 10


@dataclass(frozen=True)
class Fixed:
    """Design parameters the DSE does not vary."""

    batch: int = 16  # the RL engine's training batch
    lr_shift: int = 7
    fe_batch: int = 1  # images per FE run (the workload's: feature caching runs the re-training set in batches)
    ddr: bool = False  # FE cycles on the board's DDR-like memory (perf.fe's closed form), not the ideal one
    overrides: Any = None  # per-layer fractional bits ({layer: {"w_frac", "a_frac"}}: quant.quantize)
    max_latency_ms: float | None = None  # an image to its logits, at most (NetworkPrediction.latency_ms)
    max_param_bytes: int | None = None  # the parameters' stored bytes, at most (model_size_bytes "hybrid")
    # the FE's read FIFO of prefetched requests (on a board whose memory latency calls for one): "auto", each
    # design of the front gets it where it still fits and the model finds it faster (`run.with_fifo`; the
    # search itself is the one without it); "search", NSGA-II searches it (Space.fe_prefetch); "off", never
    prefetch: str = "auto"


# The problem's inequality constraints, in the order of G's columns (each ≤ 0 when met): the board's
# resources, the RL weights' BRAM share, structural problems (the design fits the board when these hold),
# then the device limits (Fixed.max_latency_ms, Fixed.max_param_bytes).
CONSTRAINTS = ("dsp", "bram18", "lut", "ff", "rl_weight_bram18", "structural", "latency", "param_bytes")
BOARD_FIT = CONSTRAINTS.index("latency")  # G[:, :BOARD_FIT]: the design fits the board and can be built


def limit_excess(value, limit: float | None):
    """A device limit as a constraint (≤ 0 when met): value / limit − 1, or −1 with no limit (element-wise)."""
    value = np.asarray(value, dtype=float)
    return np.full_like(value, -1.0) if limit is None else value / limit - 1.0


def fe_memory(board: Board, fixed: Fixed):
    """The DRAM timing the FE is ranked on: the board file's with `fixed.ddr`, else None (the ideal memory)."""
    return ddr_timing(board) if fixed.ddr else None


def make_design(values: dict[str, int], board: Board, fixed: Fixed = Fixed(), network: Network | None = None) -> Design:
    """The design of decoded variables. With `network`, a design that builds the weight generator (fe_gen 1)
    generates the weights of those seeded convs where that is no slower than reading them
    (`perf.fe.generated_layers`: the choice per layer), and stores the others'."""
    tm, tn = values["fe_tm"], values["fe_tn"]
    fe = FEConfig(tm, tn, values["fe_tr"], values["fe_tc"], values["fe_w_bits"], values["fe_a_bits"],
                  round(tm * tn * values["fe_lut_32nds"] / LUT_FRACTION_STEPS), fixed.fe_batch, values.get("fe_gen", 1),
                  values.get("fe_prefetch", 0))
    if network is not None and fe.gen == 1:
        memory = fe_memory(board, fixed)
        fe = replace(fe, gen=generated_layers(network, fe, board.dram_bytes_per_cycle, board.dram_latency_cycles,
                                              memory))
    rl = RLConfig(values["rl_tm"], values["rl_tn"], values["rl_bits"], 0, fixed.batch, fixed.lr_shift)
    return Design(board.name, board.clock_mhz, fe, rl, board_spec=board.to_dict())


def evaluate_model(network: Network, board: Board, workload: Workload, fixed: Fixed,
                   rows: list[dict[str, int]]) -> np.ndarray:
    """Time, utilisation and constraint values of decoded rows (the part Dask workers run).

    Returns an array (len(rows), 2 + 7): time_s, utilisation, then the constraints (the last: latency).
    """
    out = np.empty((len(rows), 9))
    steps = workload.epochs * -(-workload.retrain_images // fixed.batch)
    for i, values in enumerate(rows):
        design = make_design(values, board, fixed, network)
        p = predict(network, design, board, fe_memory(board, fixed))
        f = design.clock_mhz * 1e6
        time_s = ((workload.inference_images + workload.retrain_images) * p.fe_cycles_per_image
                  + steps * p.rl_step_cycles) / f
        util = p.resources.utilisation(board)
        out[i, 0] = time_s
        out[i, 1] = max(util["dsp"], util["bram18"], util["lut"])
        out[i, 2:6] = [util["dsp"] - 1, util["bram18"] - 1, util["lut"] - 1, util["ff"] - 1]
        out[i, 6] = p.rl_weight_bram18 / board.resources.bram18 - 1
        # Resource problems are the columns above; any other problem makes the design invalid.
        out[i, 7] = 1.0 if structural_problems(network, design, board) else -1.0
        out[i, 8] = limit_excess(p.latency_ms, fixed.max_latency_ms)
    return out


class InfoLossTable:
    """Logit KL per (w_bits, a_bits, rl_bits) on fixed calibration data, computed on first use.

    The float reference and the integer FE outputs (which depend only on w_bits and a_bits) are
    shared between entries. Bit widths at which the overrides give formats the engines cannot run
    (`quantize` refuses them: the calibrated formats around an override move with the bit widths) are
    infeasible: their loss is REFUSED_LOSS and `refused` keeps the quantisation's error.
    """

    def __init__(self, network: Network, calib_x: np.ndarray, batch: int, overrides: Any = None):
        self.network, self.calib_x, self.batch, self.overrides = network, calib_x, batch, overrides
        self.reference = reference.float_forward(network, calib_x)
        self._fe: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self._fe_quant: dict = {}
        self.values: dict[tuple[int, int, int], float] = {}
        self.sizes: dict[tuple[int, int, int], float] = {}  # model_size_bytes "hybrid" (inf: refused)
        self.refused: dict[tuple[int, int, int], DesignError] = {}

    def param_bytes(self, w_bits: int, a_bits: int, rl_bits: int) -> float:
        """The parameters' stored bytes at these widths (`model_size_bytes` "hybrid"; inf where refused)."""
        self(w_bits, a_bits, rl_bits)
        return self.sizes[(w_bits, a_bits, rl_bits)]

    def __call__(self, w_bits: int, a_bits: int, rl_bits: int) -> float:
        key = (w_bits, a_bits, rl_bits)
        if key not in self.values:
            try:
                qnet = quantize(self.network, self.calib_x, PrecisionConfig(w_bits, a_bits, rl_bits, self.batch),
                                float_acts=self.reference, fe_cache=self._fe_quant, overrides=self.overrides)
            except DesignError as exc:
                if not self.overrides:  # only overrides make a bit width unquantisable
                    raise
                self.refused[key] = exc
                self.values[key] = REFUSED_LOSS
                self.sizes[key] = math.inf
                return REFUSED_LOSS
            if (w_bits, a_bits) not in self._fe:
                self._fe[(w_bits, a_bits)] = golden.fe_forward(qnet, golden.quantize_input(qnet, self.calib_x))
            self.values[key] = info_loss(qnet, self.calib_x, self.reference, self._fe[(w_bits, a_bits)])["logit_kl"]
            self.sizes[key] = model_size_bytes(qnet)["hybrid"]
        return self.values[key]


Mapper = Callable[[list[list[dict[str, int]]]], list[np.ndarray]]


class DSEProblem(Problem):
    """pymoo Problem over `space`. `mapper`, when given, runs the chunks of a population's rows
    elsewhere (a Dask cluster) and returns their `evaluate_model` arrays in order."""

    def __init__(self, network: Network, board: Board, info: InfoLossTable, space: Space = Space(),
                 workload: Workload = Workload(), fixed: Fixed = Fixed(), mapper: Mapper | None = None,
                 chunks: int = 1):
        self.network, self.board, self.info, self.space = network, board, info, space
        self.workload, self.fixed, self.mapper, self.chunks = workload, fixed, mapper, max(1, chunks)
        self.archive: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # every evaluated (X, F, G)
        self.discarded = 0  # model evaluations of first-population draws that did not fit (run.FittingSampling)
        sizes = space.sizes()
        super().__init__(n_var=len(sizes), n_obj=3, n_ieq_constr=len(CONSTRAINTS), xl=np.zeros(len(sizes)),
                         xu=np.array(sizes) - 1, vtype=int)

    def decode_all(self, x: np.ndarray) -> list[dict[str, int]]:
        return [self.space.decode(np.rint(row).astype(int)) for row in np.atleast_2d(x)]

    def model_rows(self, rows: list[dict[str, int]]) -> np.ndarray:
        """`evaluate_model` of decoded rows, in chunks (here or on the mapper's workers)."""
        parts = [rows[i::self.chunks] for i in range(self.chunks)]
        if self.mapper is None:
            results = [evaluate_model(self.network, self.board, self.workload, self.fixed, part) for part in parts]
        else:
            results = self.mapper(parts)
        model = np.empty((len(rows), 9))
        for i, result in enumerate(results):
            model[i::self.chunks] = result
        return model

    def _evaluate(self, x, out, *args, **kwargs):
        rows = self.decode_all(x)
        model = self.model_rows(rows)
        loss = np.array([self.info(r["fe_w_bits"], r["fe_a_bits"], r["rl_bits"]) for r in rows])
        # bit widths the overrides cannot be quantised at: infeasible like a design the engines cannot build
        model[loss == REFUSED_LOSS, 7] = 1.0
        out["F"] = np.column_stack([loss, model[:, 0], model[:, 1]])
        sizes = np.array([self.info.param_bytes(r["fe_w_bits"], r["fe_a_bits"], r["rl_bits"]) for r in rows])
        out["G"] = np.column_stack([model[:, 2:], limit_excess(sizes, self.fixed.max_param_bytes)])
        self.archive.append((np.rint(np.atleast_2d(x)).astype(int), out["F"], out["G"]))

    def archive_front(self) -> tuple[np.ndarray, np.ndarray]:
        """Feasible non-dominated points among everything evaluated (the final population holds at
        most pop points; a 3-objective front is often larger)."""
        x = np.concatenate([a[0] for a in self.archive])
        f = np.concatenate([a[1] for a in self.archive])
        g = np.concatenate([a[2] for a in self.archive])
        ok = np.all(g <= 0, axis=1)
        x, f = x[ok], f[ok]
        if not len(f):
            return x, f
        _, unique = np.unique(x, axis=0, return_index=True)
        x, f = x[np.sort(unique)], f[np.sort(unique)]
        front = NonDominatedSorting().do(f, only_non_dominated_front=True)
        return x[front], f[front]
