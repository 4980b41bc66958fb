"""Retrainable-layer engine: configuration, training-step schedule, cycle model, storage, resources.

The RL engine is a tm×tn array of `bits`-wide multipliers with `acc_bits` accumulators. Each
retrainable layer is a GEMM per sample (`gemm_shape`: M outputs, N inputs, P positions; a linear
layer has P = 1); a batch of B samples gives G = B·P GEMM rows. Retrainable weights live on chip
in tm×tn banks (bank (m mod tm, n mod tn)), so a tile is read in one cycle both in the normal
(FWD) and the transposed (BWD_DATA) direction.

## Schedule of one training step (descriptors in this order; no overlap between descriptors)
Mt = ceil(M/tm), Nt = ceil(N/tn), D = `pipeline_depth(tm, tn)`, L = DRAM latency, and every
descriptor first costs its fetch `L + ceil(DESCRIPTOR_BYTES / bus)`.
1. LOAD: the cached FE features of the batch (G × N_first, bits-wide) from DRAM into the
   activation stash: `L + ceil(G · N_first · bytes / bus)`.
2. FWD per layer, first to last: `Mt · Nt · G + D` (one G-row sweep per weight tile).
3. STORE logits (G × M_last) for the host: `ceil(G · M_last · bytes / bus)`; the host computes
   softmax-CE (not engine time: the PS's share is reported apart); LOAD dY: `L + ceil(same / bus)`.
4. Per layer, last to first: BWD_DATA (not for the first layer) `Mt · Nt · G + D`;
   BWD_WEIGHT `Mt · Nt · G + D` (each PE accumulates its own dW over the G rows);
   UPDATE `Mt · Nt + D` (the weight tile, updated with its dW tile while it is still in the
   accumulators: one write-back cycle per tile).

Ops of a step (for GOPs): 2 · (FWD + BWD_DATA + BWD_WEIGHT MACs) + one op per updated weight and
bias. Padding never occurs; idle PEs of edge tiles do not count.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from dtlgen.boards import Board
from dtlgen.errors import UnsupportedLayerError, require_int
from dtlgen.model.ir import Network, gemm_shape
from dtlgen.perf.resources import COEFFICIENTS, ResourceUse, array_resources, banked_memory
from dtlgen.quant import fixed

DESCRIPTOR_BYTES = 32


def pipeline_depth(tm: int, tn: int) -> int:
    """Operand register, multiplier (2), the deeper of the two adder trees, accumulate."""
    return 4 + max(0, math.ceil(math.log2(max(tm, tn))))


@dataclass(frozen=True)
class RLConfig:
    """RL engine parameters. `acc_bits` 0 means "derive the provably sufficient width"."""

    tm: int
    tn: int
    bits: int = 16
    acc_bits: int = 0
    batch: int = 16
    lr_shift: int = 7

    def __post_init__(self) -> None:
        for name in ("tm", "tn"):
            require_int(getattr(self, name), f"rl.{name}", 1, meaning="tiling factors")
        require_int(self.bits, "rl.bits", 4, 24, "RL bit width")
        require_int(self.batch, "rl.batch", 1, meaning="the training batch")
        require_int(self.acc_bits, "rl.acc_bits", 0, 64, "0 derives the provably sufficient width")
        require_int(self.lr_shift, "rl.lr_shift", 0, 30, "the learning rate is 2^-lr_shift")

    @property
    def bytes_per_value(self) -> int:
        return math.ceil(self.bits / 8)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GemmLayer:
    name: str
    m: int
    n: int
    positions: int


def rl_gemms(network: Network) -> list[GemmLayer]:
    """The retrainable layers as GEMMs (flatten is free); anything else cannot be trained."""
    gemms = []
    for layer in network.retrainable_layers:
        if layer.op == "flatten":
            continue
        shape = gemm_shape(layer)
        if shape is None:
            raise UnsupportedLayerError(f"layer '{layer.name}' ({layer.op}, K={layer.kernel}) cannot be retrained on "
                                        "the RL engine (linear and 1x1 conv only); move the split after it")
        gemms.append(GemmLayer(layer.name, *shape))
    return gemms


def required_acc_bits(gemms: list[GemmLayer], cfg: RLConfig) -> int:
    """Accumulator width that holds every FWD (+ bias), BWD_DATA and BWD_WEIGHT sum (fixed.py rules).

    The FWD bias may sit up to `bits` places above the products (its frac is never finer than the
    accumulator's), which `accumulator_bits`' one extra bit covers as long as the bias fits the
    product-sum range; the golden model derives the exact per-layer width from calibrated fracs.
    """
    widths = [fixed.accumulator_bits(t, cfg.bits, cfg.bits)
              for g in gemms for t in (g.n, g.m, cfg.batch * g.positions)]
    return max(widths, default=0)


@dataclass(frozen=True)
class DescriptorCycles:
    layer: str
    mode: str  # LOAD | FWD | STORE | BWD_DATA | BWD_WEIGHT | UPDATE
    cycles: int
    macs: int
    ops: int


def step_cycles(gemms: list[GemmLayer], cfg: RLConfig, bus_bytes: float, latency: int) -> list[DescriptorCycles]:
    """Cycles of every descriptor of one training step (module docstring schedule)."""
    if not gemms:
        return []
    depth = pipeline_depth(cfg.tm, cfg.tn)
    fetch = latency + math.ceil(DESCRIPTOR_BYTES / bus_bytes)
    b = cfg.bytes_per_value
    out: list[DescriptorCycles] = []
    first, last = gemms[0], gemms[-1]
    rows_first = cfg.batch * first.positions
    out.append(DescriptorCycles(first.name, "LOAD",
                                fetch + latency + math.ceil(rows_first * first.n * b / bus_bytes), 0, 0))
    for g in gemms:
        rows = cfg.batch * g.positions
        tiles = -(-g.m // cfg.tm) * -(-g.n // cfg.tn)
        macs = rows * g.m * g.n
        out.append(DescriptorCycles(g.name, "FWD", fetch + tiles * rows + depth, macs, 2 * macs))
    rows_last = cfg.batch * last.positions
    logits = math.ceil(rows_last * last.m * b / bus_bytes)
    out.append(DescriptorCycles(last.name, "STORE", fetch + logits, 0, 0))
    out.append(DescriptorCycles(last.name, "LOAD", fetch + latency + logits, 0, 0))
    for g in reversed(gemms):
        rows = cfg.batch * g.positions
        tiles = -(-g.m // cfg.tm) * -(-g.n // cfg.tn)
        macs = rows * g.m * g.n
        if g is not first:
            out.append(DescriptorCycles(g.name, "BWD_DATA", fetch + tiles * rows + depth, macs, 2 * macs))
        out.append(DescriptorCycles(g.name, "BWD_WEIGHT", fetch + tiles * rows + depth, macs, 2 * macs))
        out.append(DescriptorCycles(g.name, "UPDATE", fetch + tiles + depth, 0, g.m * g.n + g.m))
    return out


@dataclass(frozen=True)
class RLStorage:
    """On-chip storage of the RL engine, in bits and in memories."""

    weight_bits: int
    stash_bits: int
    gradient_bits: int
    weights: ResourceUse  # the weight + bias banks alone
    total: ResourceUse  # all RL memories


def rl_storage(gemms: list[GemmLayer], cfg: RLConfig, board: Board) -> RLStorage:
    tm, tn, bits = cfg.tm, cfg.tn, cfg.bits
    weight_depth = sum(-(-g.m // tm) * -(-g.n // tn) for g in gemms)
    bias_depth = sum(-(-g.m // tm) for g in gemms)
    weights = banked_memory(board, tm * tn, weight_depth, bits) + banked_memory(board, tm, bias_depth, bits)
    # Activation stash: every layer's input rows (tn banks) and the last layer's outputs (tm banks).
    stash_depth = sum(cfg.batch * g.positions * -(-g.n // tn) for g in gemms)
    last = gemms[-1] if gemms else None
    logit_depth = cfg.batch * last.positions * -(-last.m // tm) if last else 0
    lanes = max(tm, tn)
    widest = max((max(g.m, g.n) for g in gemms), default=0)
    grad_depth = max((cfg.batch * g.positions for g in gemms), default=0) * -(-widest // lanes)
    total = (weights + banked_memory(board, tn, stash_depth, bits) + banked_memory(board, tm, logit_depth, bits)
             + banked_memory(board, 2 * lanes, grad_depth, bits))
    weight_bits = sum(g.m * g.n + g.m for g in gemms) * bits
    stash_bits = (stash_depth * tn + logit_depth * tm) * bits
    return RLStorage(weight_bits, stash_bits, 2 * lanes * grad_depth * bits, weights, total)


def rl_resources(gemms: list[GemmLayer], cfg: RLConfig, board: Board) -> ResourceUse:
    """DSP/BRAM/LUT/FF of the RL engine (LUT/FF are estimates: see perf.resources)."""
    if not gemms:
        return ResourceUse()
    acc_bits = cfg.acc_bits or required_acc_bits(gemms, cfg)
    coeff = COEFFICIENTS[board.lut_kind]
    # FWD reduces over n (tm trees of tn), BWD_DATA over m (tn trees of tm); every PE accumulates.
    array = array_resources(board, cfg.tm * cfg.tn, 0, cfg.bits, cfg.bits, cfg.tn, cfg.tm, acc_bits)
    transposed = array_resources(board, 0, 0, cfg.bits, cfg.bits, cfg.tm, cfg.tn, 0)
    pe_acc = ResourceUse(lut=cfg.tm * cfg.tn * acc_bits, ff=cfg.tm * cfg.tn * acc_bits)
    control = ResourceUse(lut=coeff["rl_control_lut"], ff=coeff["rl_control_ff"])
    return array + transposed + pe_acc + control + rl_storage(gemms, cfg, board).total
