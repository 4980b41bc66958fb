"""Analytical throughput and resource model of both engines (pure functions, no I/O).

`predict(network, design, board)` walks the FE descriptors (`fe.py`) and the RL training step
(`rl.py`) and returns per-layer cycles, GOPs, roofline bound and utilisation, plus resources and
the feasibility verdict. GOPs = ops / (cycles / f_clk) at the design's clock; ops = 2 × useful MACs
(RL: see `rl.py` "Ops"), never an op the multiplier array does not do, so no figure exceeds its peak.
Roofline of a row = min(compute roof, CTC × DRAM bandwidth): the compute roof is 2 × the multipliers
the operation can use × f (FE: `fe.multipliers_used`, tm·tn, tm·K for a depthwise conv over the
columns, tm lanes for other depthwise convs, pools and adds; RL: tm·tn);
RL GEMM descriptors move no bulk data (weights and stashes are on chip), so theirs is the compute
roof, and LOAD/STORE do no ops (roofline 0).
The DRAM port moves `board.dram_bytes_per_cycle` bytes per engine clock (port-width limited).
FE figures are those of one run of `design.fe.batch` images (each layer's descriptors, `fe.batched_ops`):
a layer's cycles and MACs are the batch's, GOPs the same either way; `fe_cycles_per_image` divides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dtlgen.boards import Board
from dtlgen.isa.params import DdrTiming
from dtlgen.model.ir import Network
from dtlgen.perf import board as board_model, fe, rl
from dtlgen.perf.design import Design, load_design
from dtlgen.perf.resources import ResourceUse

__all__ = ["Design", "LayerPrediction", "NetworkPrediction", "load_design", "peak_gops", "predict"]


@dataclass(frozen=True)
class LayerPrediction:
    """One FE operation or one RL descriptor."""

    name: str
    engine: str  # fe | rl
    op: str  # FE: conv/pool/add (+pool; ", sparse": stored sparse; ", prefetch": prefetches); RL: FWD/BWD_DATA/...
    macs: int
    ops: int
    cycles: int
    gops: float
    bound: str  # compute | memory
    utilisation: float  # useful MACs / (cycles × multipliers): the array's efficiency
    roofline_gops: float  # min(compute roof, CTC × bandwidth)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NetworkPrediction:
    clock_mhz: float
    fe_layers: list[LayerPrediction] = field(default_factory=list)
    rl_descriptors: list[LayerPrediction] = field(default_factory=list)
    fe_resources: ResourceUse = ResourceUse()
    rl_resources: ResourceUse = ResourceUse()
    rl_weight_bits: int = 0
    rl_weight_bram18: int = 0
    board_core: board_model.BoardUse | None = None  # open-flow boards: the whole RTL board design
    violations: list[str] = field(default_factory=list)
    fe_batch: int = 1  # images of one FE run: fe_layers' cycles and MACs are the batch's
    rl_infer_cycles: int = 0  # the RL engine's forward of one image (LOAD, FWD, STORE: rl.infer_cycles)

    @property
    def fe_cycles(self) -> int:
        """Cycles of one FE run (the batch)."""
        return sum(p.cycles for p in self.fe_layers)

    @property
    def fe_cycles_per_image(self) -> float:
        return self.fe_cycles / self.fe_batch

    @property
    def latency_cycles(self) -> int:
        """One image from input to logits: the FE run it belongs to (its batch's, layer after layer) and the
        RL engine's forward of it."""
        return self.fe_cycles + self.rl_infer_cycles

    @property
    def latency_ms(self) -> float:
        return self.latency_cycles / (self.clock_mhz * 1e3)

    @property
    def rl_step_cycles(self) -> int:
        return sum(p.cycles for p in self.rl_descriptors)

    @property
    def fe_gops(self) -> float:
        return _gops(sum(p.ops for p in self.fe_layers), self.fe_cycles, self.clock_mhz)

    @property
    def rl_gops(self) -> float:
        return _gops(sum(p.ops for p in self.rl_descriptors), self.rl_step_cycles, self.clock_mhz)

    @property
    def resources(self) -> ResourceUse:
        """What the board must hold: on an open-flow (ECP5) board the calibrated RTL board design
        (MULT18X18D as dsp, DP16KD as bram18), elsewhere both engines as the HLS builds them."""
        if self.board_core is not None:
            b = self.board_core
            return ResourceUse(dsp=b.mult18, bram18=b.dp16kd, lut=b.lut4, ff=b.ff)
        return self.fe_resources + self.rl_resources

    @property
    def feasible(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "clock_mhz": self.clock_mhz, "source": "analytical model (dtlgen.perf)",
            "fe": {"batch": self.fe_batch, "cycles": self.fe_cycles, "cycles_per_image": self.fe_cycles_per_image,
                   "gops": self.fe_gops, "layers": [p.to_dict() for p in self.fe_layers],
                   "resources": self.fe_resources.to_dict()},
            "rl": {"step_cycles": self.rl_step_cycles, "gops": self.rl_gops,
                   "descriptors": [p.to_dict() for p in self.rl_descriptors], "resources": self.rl_resources.to_dict(),
                   "weight_bits": self.rl_weight_bits, "weight_bram18": self.rl_weight_bram18},
            "latency": {"cycles": self.latency_cycles, "ms": self.latency_ms,
                        "what": "one image to its logits: its FE run (the batch's) and the RL forward of it"},
            "resources": self.resources.to_dict(), "feasible": self.feasible, "violations": self.violations,
            **({"board_core": {**self.board_core.to_dict(), "source": "dtlgen.perf.board (calibrated against "
                               "yosys/nextpnr)"}} if self.board_core is not None else {}),
        }


def peak_gops(multipliers: int, clock_mhz: float) -> float:
    """The compute roof of an array: 2 ops (a multiply and an add) per multiplier per cycle at the clock."""
    return 2 * multipliers * clock_mhz * 1e6 / 1e9


def _gops(ops: int, cycles: int, clock_mhz: float) -> float:
    return ops / (cycles / (clock_mhz * 1e6)) / 1e9 if cycles else 0.0


def predict(network: Network, design: Design, board: Board, ddr: DdrTiming | None = None) -> NetworkPrediction:
    """Per-layer cycles/GOPs/bound of both engines, resources, and what makes the design infeasible. With
    `ddr`, the FE's cycles are the DDR-like memory's closed form (an estimate; the RL's stay ideal)."""
    f_mhz = design.clock_mhz
    bus, latency = board.dram_bytes_per_cycle, board.dram_latency_cycles
    cfg = design.fe
    result = NetworkPrediction(f_mhz, fe_batch=cfg.batch)
    ops = fe.fe_ops(network, cfg, bus)
    kept = fe.keep_words(cfg, bus, ops)
    for op in ops:
        descriptors = fe.batched_ops([op], cfg, cfg.batch, bus, kept, latency)
        runs = [fe.op_cycles(d, cfg, bus, latency, ddr) for d in descriptors]
        cycles, dram = sum(r.cycles for r in runs), sum(r.dram_bytes for r in runs)
        bound = "compute" if sum(r.compute_cycles for r in runs) >= sum(r.bus_cycles for r in runs) else "memory"
        macs = op.macs * cfg.batch
        roof = peak_gops(fe.multipliers_used(op, cfg), f_mhz)
        ctc = 2 * macs / dram if dram else float("inf")
        label = (op.kind + ("+pool" if op.pool else "") + ("(dw)" if op.depthwise else "")
                 + (", sparse" if op.sparse is not None else "")
                 + (", prefetch" if any(d.prefetch for d in descriptors) else ""))
        result.fe_layers.append(LayerPrediction(
            op.name, "fe", label, macs, 2 * macs, cycles, _gops(2 * macs, cycles, f_mhz), bound,
            macs / (cycles * cfg.tm * cfg.tn), min(roof, ctc * bus * f_mhz * 1e6 / 1e9)))
    if ops:
        result.fe_resources = fe.fe_resources(ops, cfg, board)
    gemms = rl.rl_gemms(network)
    if gemms:
        rcfg = design.rl
        # the steady state of a run of steps: features loaded in the previous step's background
        for d in rl.step_cycles(gemms, rcfg, bus, latency, load=False, prefetch=rcfg.batch):
            compute = d.mode in ("FWD", "BWD_DATA", "UPDATE", "MAXPOOL", "MAXPOOL_BWD")  # (pools: issue-bound, no MACs)
            result.rl_descriptors.append(LayerPrediction(
                d.layer, "rl", d.mode, d.macs, d.ops, d.cycles, _gops(d.ops, d.cycles, f_mhz),
                "compute" if compute else "memory", d.macs / (d.cycles * rcfg.tm * rcfg.tn),
                peak_gops(rcfg.tm * rcfg.tn, f_mhz) if compute else 0.0))
        result.rl_infer_cycles = rl.infer_cycles(gemms, rcfg, bus, latency)
        storage = rl.rl_storage(gemms, rcfg, board)
        result.rl_resources = rl.rl_resources(gemms, rcfg, board)
        result.rl_weight_bits, result.rl_weight_bram18 = storage.weight_bits, storage.weights.bram18
        if storage.weights.bram18 > board.resources.bram18:
            result.violations.append(
                f"RL weights need {storage.weights.bram18} BRAM18 on chip, {board.name} has {board.resources.bram18}")
        needed = rl.required_acc_bits(gemms, rcfg)
        if rcfg.acc_bits and rcfg.acc_bits < needed:
            result.violations.append(f"rl.acc_bits={rcfg.acc_bits} is below the {needed} bits that provably "
                                     "never overflow")
    if board.toolchain == "open-ecp5":
        result.board_core = board_model.board_resources(board_model.core_parameters(network, design, board))
    for resource, used in result.resources.utilisation(board).items():
        if used > 1.0:
            have = getattr(board.resources, resource)
            result.violations.append(f"{resource}: needs {getattr(result.resources, resource)}, "
                                     f"{board.name} has {have}")
    return result
