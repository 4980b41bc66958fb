"""How good is the search? NSGA-II against the exhaustive front and against random search.

On a space small enough to enumerate, every point is evaluated; the exhaustive Pareto front is
the truth. NSGA-II and random search (uniform samples, as many evaluations as NSGA-II used)
are scored by the hypervolume of their feasible non-dominated points, as a fraction of the
exhaustive front's. Objectives are normalised by the exhaustive front's ideal and nadir points
(time on a log scale, since designs differ by orders of magnitude) and the reference point is
1.1 in every normalised objective.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from dtlgen.boards import Board
from dtlgen.dse.problem import DSEProblem, Fixed, InfoLossTable, Space, Workload
from dtlgen.dse.run import search, shapes_only
from dtlgen.model.ir import Network

# A space of a few thousand points: every variable keeps a handful of values.
REDUCED_SPACE = Space(fe_tm=(4, 8, 16, 32), fe_tn=(4, 8, 16), fe_tr=(4, 8, 16), fe_tc=(8,),
                      fe_w_bits=(4, 5, 6, 7, 8), fe_a_bits=(5, 6, 7, 8), fe_lut_32nds=(0, 16, 32), rl_tm=(4, 8),
                      rl_tn=(8,), rl_bits=(8, 12, 16))


@dataclass
class QualityReport:
    space_points: int
    exhaustive_front: int
    evaluations: int  # per run, NSGA-II's; random search gets the same number
    seeds: tuple[int, ...]
    nsga2_hv_ratios: tuple[float, ...]  # one per seed
    random_hv_ratios: tuple[float, ...]

    @property
    def nsga2_hv_ratio(self) -> float:
        return float(np.median(self.nsga2_hv_ratios))

    @property
    def random_hv_ratio(self) -> float:
        return float(np.median(self.random_hv_ratios))

    def to_dict(self) -> dict:
        return {**self.__dict__, "nsga2_median": self.nsga2_hv_ratio, "random_median": self.random_hv_ratio}


def _feasible_front(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    ok = np.all(g <= 0, axis=1)
    f = f[ok]
    if not len(f):
        return f
    return f[NonDominatedSorting().do(f, only_non_dominated_front=True)]


def _evaluate(problem: DSEProblem, index_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out: dict = {}
    problem._evaluate(index_rows, out)
    return out["F"], out["G"]


def compare_with_exhaustive(network: Network, board: Board, calib_x: np.ndarray, pop: int, gens: int,
                            seeds: tuple[int, ...] = (1,), space: Space = REDUCED_SPACE,
                            workload: Workload = Workload(), fixed: Fixed = Fixed()) -> QualityReport:
    """Enumerate `space` once, then score one NSGA-II run and one random search per seed."""
    info = InfoLossTable(network, calib_x, fixed.batch, fixed.overrides)
    problem = DSEProblem(shapes_only(network), board, info, space, workload, fixed)
    every = np.array(list(itertools.product(*(range(n) for n in space.sizes()))))
    truth = _feasible_front(*_evaluate(problem, every))
    lo, hi = _scale_bounds(truth)
    indicator = HV(ref_point=np.full(3, 1.1))

    def hv(front: np.ndarray) -> float:
        return float(indicator(_scaled(front, lo, hi))) if len(front) else 0.0

    exact = hv(truth)
    nsga2_ratios, random_ratios, n_eval = [], [], 0
    for seed in seeds:
        _, f_nsga, n_eval, _ = search(network, board, info, pop, gens, seed, space, workload, fixed)
        sample = every[np.random.default_rng(seed).choice(len(every), size=min(n_eval, len(every)), replace=False)]
        nsga2_ratios.append(hv(f_nsga) / exact)
        random_ratios.append(hv(_feasible_front(*_evaluate(problem, sample))) / exact)
    return QualityReport(len(every), len(truth), n_eval, tuple(seeds), tuple(nsga2_ratios), tuple(random_ratios))


def _log_time(f: np.ndarray) -> np.ndarray:
    f = np.array(f, dtype=float)
    f[:, 1] = np.log10(f[:, 1])
    return f


def _scale_bounds(front: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logged = _log_time(front)
    return logged.min(axis=0), logged.max(axis=0)


def _scaled(front: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = np.where(hi > lo, hi - lo, 1.0)
    return (_log_time(front) - lo) / span
