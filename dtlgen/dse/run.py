"""Run NSGA-II over the design space and export the Pareto front and the chosen design.

`run_dse` returns the front and writes `pareto.json`, `pareto.csv`, `pareto.png` and
`design.json` into an output directory (atomically). The chosen design is the knee of the front
by default — the point nearest the ideal point after scaling each objective to [0, 1] over the
front (time on a log scale) — or the best point for one objective with `prefer`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.callback import Callback
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.core.sampling import Sampling
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from dtlgen.atomic import atomic_directory, check_destination, write_json
from dtlgen.boards import Board
from dtlgen.errors import DesignError
from dtlgen.isa import fe as isa_fe
from dtlgen.model.ir import Network
from dtlgen.perf.validate import network_fingerprint, network_problems
from dtlgen.dse.problem import (BOARD_FIT, CONSTRAINTS, OBJECTIVES, PREFETCH_MODES, DSEProblem, Fixed, InfoLossTable,
                                Space, Workload, evaluate_model, fe_memory, make_design)
from dtlgen.perf import predict
from dtlgen.perf.fe import generable_convs, require_ddr_timing
from dtlgen.quant.quantize import PrecisionConfig, quantize

PREFERENCES = ("knee", "throughput", "accuracy", "resources")
KIND = "dse"  # the manifest kind of a DSE output folder (dtlgen.atomic)


@dataclass
class DSEResult:
    front: list[dict[str, Any]]  # per Pareto point: variables, objectives, predictions
    chosen: int
    design: dict[str, Any]
    evaluations: int
    seconds: float = 0.0


ARRAY_VARIABLES = ("fe_tm", "fe_tn", "fe_tr", "fe_tc", "rl_tm", "rl_tn")
SAMPLING_ROUNDS = 16


class FittingSampling(Sampling):
    """The first population: every variable drawn uniformly, as pymoo's integer sampling does; a
    design the analytical model says does not fit the board, or that the engines cannot build, is
    drawn again with array and tile sizes log-uniform (each octave as likely as the next, so 2x3
    arrays as common as 32x48 ones), up to SAMPLING_ROUNDS times. Uniform draws over 1..64 x 1..64
    arrays almost never fit a small FPGA (an ECP5-85F has 156 multipliers), so a small population
    would start, and often end, with nothing that fits; on a large board most uniform draws fit and
    the population keeps their spread (log-uniform draws for all would crowd the small designs and
    lose the fast ones). The discarded draws count as evaluations (problem.discarded): a comparison
    with random search at equal evaluations stays fair."""

    def _do(self, problem, n_samples: int, *args, random_state=None, **kwargs) -> np.ndarray:
        space = problem.space

        def draw(n: int, log_arrays: bool) -> np.ndarray:
            columns = []
            for name, size in zip(space.names, space.sizes()):
                values = np.asarray(getattr(space, name))
                if log_arrays and name in ARRAY_VARIABLES and size > 1 and values.min() > 0:
                    target = np.exp(random_state.uniform(np.log(values.min()), np.log(values.max() + 1), size=n))
                    columns.append(np.clip(np.searchsorted(values, target, side="right") - 1, 0, size - 1))
                else:
                    columns.append(random_state.integers(0, size, size=n))
            return np.column_stack(columns)

        x = draw(n_samples, log_arrays=False)
        for _ in range(SAMPLING_ROUNDS):
            model = evaluate_model(problem.network, problem.board, problem.workload, problem.fixed,
                                   problem.decode_all(x))
            misfit = np.any(model[:, 2:] > 0, axis=1)
            if not misfit.any():
                break
            problem.discarded += int(misfit.sum())
            x[misfit] = draw(int(misfit.sum()), log_arrays=True)
        return x


def nsga2(pop: int) -> NSGA2:
    """NSGA-II with pymoo's integer operators (SBX and PM with rounding repair), started from
    designs that fit the board (`FittingSampling`)."""
    return NSGA2(pop_size=pop, sampling=FittingSampling(),
                 crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                 mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
                 eliminate_duplicates=True)


class _GenerationCallback(Callback):
    def __init__(self, on_generation: Callable[[int], None]):
        super().__init__()
        self.on_generation = on_generation

    def notify(self, algorithm):
        self.on_generation(algorithm.n_gen)


def shapes_only(network: Network) -> Network:
    """The network without weight arrays: all the analytical model needs (cheap to ship to workers)."""
    return Network(network.name, network.input_shape,
                   [replace(layer, weight=None, bias=None) for layer in network.layers])


def dask_mapper(client, network: Network, board: Board, workload: Workload, fixed: Fixed):
    """Evaluate chunks of rows on a Dask cluster; results come back in submission order."""
    [remote_network] = client.scatter([network], broadcast=True)

    def mapper(parts):
        futures = [client.submit(evaluate_model, remote_network, board, workload, fixed, part, pure=False)
                   for part in parts]
        return client.gather(futures)

    return mapper


def search(network: Network, board: Board, info: InfoLossTable, pop: int, gens: int, seed: int,
           space: Space = Space(), workload: Workload = Workload(), fixed: Fixed = Fixed(),
           client=None, on_generation: Callable[[int], None] | None = None):
    """Run NSGA-II; returns (X index rows, F, evaluations, problem): the feasible non-dominated set of
    every design it evaluated, sorted by the objectives."""
    light = shapes_only(network)
    mapper = dask_mapper(client, light, board, workload, fixed) if client is not None else None
    chunks = max(1, len(client.scheduler_info()["workers"])) if client is not None else 1
    problem = DSEProblem(light, board, info, space, workload, fixed, mapper, chunks)
    options = {"callback": _GenerationCallback(on_generation)} if on_generation else {}
    res = minimize(problem, nsga2(pop), ("n_gen", gens), seed=seed, verbose=False, **options)
    x, f = problem.archive_front()
    if not len(f) and info.refused:  # the overrides fit no bit width the search tried: say why at one of them
        (w_bits, a_bits, rl_bits), error = next(iter(info.refused.items()))
        raise DesignError(f"the overrides fit none of the bit widths the search evaluated; at fe.w_bits {w_bits}, "
                          f"fe.a_bits {a_bits}, rl.bits {rl_bits}: {error}")
    if not len(f):
        n_eval = res.algorithm.evaluator.n_eval + problem.discarded
        limits = _unmet_limits(problem, fixed)
        if limits:
            raise DesignError(f"none of the {n_eval} designs NSGA-II evaluated (--pop {pop} x --gens {gens}) that fit "
                              f"{board.name} meets {limits}; relax the limit, or search longer (--pop, --gens)")
        raise DesignError(f"none of the {n_eval} designs NSGA-II evaluated (--pop {pop} x --gens {gens}) fits "
                          f"{board.name} or can be built; a larger --pop or --gens sees more designs (default 100 x "
                          "100); if none fits then either, try a larger board or a later split with fewer "
                          "retrainable weights")
    order = np.lexsort((f[:, 2], f[:, 1], f[:, 0]))
    return x[order], f[order], res.algorithm.evaluator.n_eval + problem.discarded, problem


def with_fifo(problem: DSEProblem, rows: list[dict[str, int]],
              f: np.ndarray) -> tuple[list[dict[str, int]], np.ndarray, int]:
    """Fixed.prefetch "auto": each design of a front (decoded rows, their objectives) is evaluated again
    with the read FIFO of prefetched requests, and that variant joins the front where it still meets
    every constraint and the model finds it faster (the FIFO changes no numerics, so the information
    loss stays; the parameters' bytes too); returns the non-dominated designs of both, sorted by the
    objectives as `search` sorts them, and the evaluations made. The search itself never saw the FIFO."""
    candidates = [i for i, row in enumerate(rows) if not row.get("fe_prefetch", 0)]
    if not candidates:
        return rows, f, 0
    trials = [rows[i] | {"fe_prefetch": 1} for i in candidates]
    model = problem.model_rows(trials)  # time_s, utilisation, then the constraints but param_bytes (unchanged)
    rows, f = list(rows), [np.asarray(f, dtype=float)]
    for trial, result, i in zip(trials, model, candidates):
        if np.all(result[2:] <= 0) and result[0] < f[0][i, 1]:
            rows.append(trial)
            f.append(np.array([[f[0][i, 0], result[0], result[1]]]))
    f = np.concatenate(f)
    front = NonDominatedSorting().do(f, only_non_dominated_front=True)
    order = front[np.lexsort((f[front, 2], f[front, 1], f[front, 0]))]
    return [rows[i] for i in order], f[order], len(trials)


def _unmet_limits(problem: DSEProblem, fixed: Fixed) -> str:
    """What the device limits left out, when designs that fit the board exist but none within them: each
    limit and the best value the fitting designs reached ("" when none fits the board anyway)."""
    g = np.concatenate([a[2] for a in problem.archive])
    fits = np.all(g[:, :BOARD_FIT] <= 0, axis=1)
    if not fits.any():
        return ""
    said = []
    for name, limit, option, shown in (("latency", fixed.max_latency_ms, "--max-latency-ms", lambda v: f"{v:.4g} ms"),
                                       ("param_bytes", fixed.max_param_bytes, "--max-param-bytes",
                                        lambda v: f"{v:,.0f} B")):
        column = CONSTRAINTS.index(name)
        if limit is not None and not np.any(g[fits, column] <= 0):
            said.append(f"{option} {limit:g} (the best of them: {shown((1 + g[fits, column].min()) * limit)})")
    if not said and fixed.max_latency_ms is not None and fixed.max_param_bytes is not None:
        said.append(f"--max-latency-ms {fixed.max_latency_ms:g} and --max-param-bytes {fixed.max_param_bytes:g} "
                    "together (each alone: some)")
    return " and ".join(said)


def choose(f: np.ndarray, prefer: str = "knee") -> int:
    """Index of the chosen point of a front (rows = points, columns = OBJECTIVES)."""
    if prefer not in PREFERENCES:
        raise DesignError(f"--prefer {prefer!r}: choose one of {', '.join(PREFERENCES)}")
    if prefer != "knee":
        column = {"accuracy": 0, "throughput": 1, "resources": 2}[prefer]
        keys = [column] + [i for i in range(3) if i != column]  # ties broken by the other objectives
        return int(np.lexsort(tuple(f[:, c] for c in reversed(keys)))[0])
    f = np.array(f, dtype=float)
    f[:, 1] = np.log10(np.maximum(f[:, 1], 1e-300))  # designs differ in time by orders of magnitude
    span = f.max(axis=0) - f.min(axis=0)
    scaled = (f - f.min(axis=0)) / np.where(span > 0, span, 1.0)
    return int(np.argmin(np.linalg.norm(scaled, axis=1)))


def run_dse(network: Network, board: Board, calib_x: np.ndarray, out_dir: Path | None = None, pop: int = 100,
            gens: int = 100, seed: int = 1, prefer: str = "knee", workers: int = 0, dask_address: str | None = None,
            space: Space = Space(), workload: Workload = Workload(), fixed: Fixed = Fixed(),
            on_generation: Callable[[int], None] | None = None, force: bool = False,
            calibration: dict[str, str] | None = None) -> DSEResult:
    """The whole DSE: search, choose, describe every front point, write the outputs. `calibration` is
    the record of the file `calib_x` came from (`dtlgen.model.data.file_record`), for design.json."""
    import time

    for name, value in (("--pop", pop), ("--gens", gens)):
        if value < 1:
            raise DesignError(f"{name} {value}: must be at least 1")
    if prefer not in PREFERENCES:
        raise DesignError(f"--prefer {prefer!r}: choose one of {', '.join(PREFERENCES)}")
    if out_dir is not None:
        check_destination(Path(out_dir), KIND, force)
    problems = network_problems(network)
    if problems:
        raise DesignError(f"{network.name}: {problems[0]}")
    if fixed.ddr:
        require_ddr_timing(board)
    info = InfoLossTable(network, calib_x, fixed.batch, fixed.overrides)
    if space.fe_gen == Space().fe_gen and generable_convs(network):
        space = replace(space, fe_gen=(0, 1))  # seeded convs: their weights generated on chip, or stored
    if fixed.prefetch not in PREFETCH_MODES:
        raise DesignError(f"prefetch {fixed.prefetch!r}: choose one of {', '.join(PREFETCH_MODES)}")
    if fixed.prefetch == "off":
        space = replace(space, fe_prefetch=(0,))  # never, whatever a given space allows
    fifo = fixed.prefetch != "off" and space.fe_prefetch == Space().fe_prefetch and \
        isa_fe.prefetch_beats(board.dram_latency_cycles) > 0  # the board's memory latency calls for the read FIFO
    if fifo and fixed.prefetch == "search":
        space = replace(space, fe_prefetch=(0, 1))  # the read FIFO of prefetched requests, or its LUTs elsewhere
    start = time.perf_counter()
    with _client(workers, dask_address) as client:
        x, f, n_eval, problem = search(network, board, info, pop, gens, seed, space, workload, fixed, client,
                                       on_generation)
        rows = [space.decode(row) for row in x]
        if fifo and fixed.prefetch == "auto":
            rows, f, evaluated = with_fifo(problem, rows, f)
            n_eval += evaluated
    seconds = time.perf_counter() - start
    chosen = choose(f, prefer)
    front = []
    for values, objectives in zip(rows, f):
        design = make_design(values, board, fixed, problem.network)
        p = predict(problem.network, design, board, fe_memory(board, fixed))
        front.append({"variables": values, **dict(zip(OBJECTIVES, map(float, objectives))),
                      "fe": design.fe.to_dict(), "rl": design.rl.to_dict(),
                      "fe_gops": p.fe_gops, "rl_gops": p.rl_gops, "latency_ms": p.latency_ms,
                      "param_bytes": int(info.param_bytes(values["fe_w_bits"], values["fe_a_bits"], values["rl_bits"])),
                      **p.resources.to_dict()})
    design = _design_json(network, board, calib_x, front[chosen], fixed)
    if calibration is not None:
        design["calibration"] = calibration
    result = DSEResult(front, chosen, design, n_eval, seconds)
    if out_dir is not None:
        write_outputs(Path(out_dir), result, board, network, prefer, pop, gens, seed, force, workload)
    return result


def _design_json(network: Network, board: Board, calib_x: np.ndarray, point: dict[str, Any],
                 fixed: Fixed) -> dict[str, Any]:
    design = make_design(point["variables"], board, fixed, network)
    qnet = quantize(network, calib_x, PrecisionConfig(design.fe.w_bits, design.fe.a_bits, design.rl.bits,
                                                      fixed.batch, fixed.lr_shift), overrides=fixed.overrides)
    rl = replace(design.rl, acc_bits=qnet.rl_acc_bits())
    split = network.retrainable_layers[0].name if network.retrainable_layers else None
    data = replace(design, rl=rl, split=split, per_layer=qnet.per_layer_dict(), overrides=dict(fixed.overrides or {}),
                   model=network.name,
                   network=network_fingerprint(network)).to_dict()
    data["predicted"] = {key: point[key] for key in ("fe_gops", "rl_gops", "dsp", "bram18", "lut", "ff",
                                                     "info_loss", "time_s", "utilisation")}
    data["predicted"]["source"] = ("analytical model (dtlgen.perf" + ("; FE cycles on the DDR-like memory of the board "
                                   "file's DRAM timing, a closed-form estimate" if fixed.ddr else "")
                                   + ") and golden-model logit KL (dtlgen.quant)")
    return data


class _client:
    """Context manager: no client, a local Dask cluster of N workers, or an existing scheduler."""

    def __init__(self, workers: int, address: str | None):
        self.workers, self.address = workers, address
        self.client = self.cluster = None

    def __enter__(self):
        if not self.workers and not self.address:
            return None
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            from dtlgen.errors import ToolMissingError
            raise ToolMissingError("--workers/--dask need dask.distributed; install it with "
                                   "pip install 'dtlgen[dask]'") from None
        if self.address:
            try:
                self.client = Client(self.address, timeout=10)
            except OSError as exc:
                raise DesignError(f"--dask {self.address}: cannot reach the scheduler ({exc}); "
                                  "check the address and that 'dask scheduler' runs there") from None
        else:
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def write_outputs(out_dir: Path, result: DSEResult, board: Board, network: Network, prefer: str,
                   pop: int, gens: int, seed: int, force: bool = False, workload: Workload = Workload()) -> None:
    with atomic_directory(out_dir, KIND, force) as staging:
        write_json(staging / "pareto.json", {
            "model": network.name, "board": board.name, "pop": pop, "gens": gens, "seed": seed,
            "prefer": prefer, "chosen": result.chosen, "evaluations": result.evaluations,
            "objectives": list(OBJECTIVES), "points": result.front,
            "source": "analytical model (dtlgen.perf) and golden-model logit KL (dtlgen.quant)"})
        write_json(staging / "design.json", result.design)
        (staging / "pareto.csv").write_text(_csv(result.front))
        _plot(staging / "pareto.png", result, f"{network.name} on {board.name}", prefer, workload)


def _csv(front: list[dict[str, Any]]) -> str:
    columns = (list(front[0]["variables"]) + list(OBJECTIVES)
               + ["fe_gops", "rl_gops", "latency_ms", "param_bytes", "dsp", "bram18", "lut", "ff"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for point in front:
        # fe_gen: the design's fe.gen (1, 0, or the layers generated, ';'-joined), not the search variable
        gen = point["fe"].get("gen", 1)
        design = {"fe_gen": ";".join(gen) if isinstance(gen, (list, tuple)) else gen}
        writer.writerow([design[c] if c in design else point["variables"].get(c, point.get(c)) for c in columns])
    return buffer.getvalue()


def _plot(path: Path, result: DSEResult, title: str, prefer: str = "knee", work: Workload = Workload()) -> None:
    """The front in its three pairs of objectives, the chosen design starred and named, each axis saying
    what it measures, the legend below the panels (never over a point)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = np.array([[p[o] for o in OBJECTIVES] for p in result.front])
    labels = {"info_loss": "information loss: logit KL of the fixed-point\nnetwork against float (nats)",
              "time_s": f"workload time (s, log): {work.inference_images} inferences +\n{work.retrain_images} "
                        f"re-training images x {work.epochs} epochs",
              "utilisation": "resource utilisation: the largest of the\nboard's DSP, BRAM18 and LUT fractions"}
    v = result.front[result.chosen]["variables"]
    chosen = (f"chosen ({prefer}): FE {v['fe_tm']}x{v['fe_tn']} w{v['fe_w_bits']}/a{v['fe_a_bits']}, "
              f"RL {v['rl_tm']}x{v['rl_tn']} {v['rl_bits']}-bit")
    pairs = ((1, 0), (1, 2), (0, 2))
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
    for ax, (i, j) in zip(axes, pairs):
        ax.scatter(f[:, i], f[:, j], s=14, label=f"Pareto front ({len(result.front)} designs)")
        ax.scatter(f[result.chosen, i], f[result.chosen, j], s=160, marker="*", color="red", label=chosen)
        if OBJECTIVES[i] == "time_s":
            ax.set_xscale("log")
        ax.set_xlabel(labels[OBJECTIVES[i]], fontsize=9)
        ax.set_ylabel(labels[OBJECTIVES[j]], fontsize=9)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, frameon=False)
    fig.suptitle(f"NSGA-II front, {title} (analytical model; every objective minimised)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
