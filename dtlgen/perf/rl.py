"""Retrainable-layer engine: configuration, training-step schedule, cycle model, storage, resources.

The RL engine (hw_templates/rtl/rl_engine.sv) is a tm×tn array of `bits`-wide multipliers with
`acc_bits` accumulators. Each retrainable layer is a GEMM per sample (`gemm_shape`: M outputs,
N inputs, P positions; a linear layer has P = 1); a batch of B samples gives G = B·P GEMM rows.
Weights live on chip in tm·tn banks, one tile per address, read whole in one cycle by both FWD
and BWD_DATA. Activations and gradients live in `stash_lanes` banks, each matrix row-major with
rows padded to whole stash words (`stash_words`), and travel to / from DRAM in that layout.

## Schedule of one training step (descriptors in this order; one overlap, below)
Mt = ceil(M/tm), Nt = ceil(N/tn), Nt' = ceil((N+1)/tn) (the update walks [W | b]), L = DRAM
latency, bus = bytes per cycle, and every descriptor first costs its fetch `L + DESCRIPTOR_BYTES/bus`.
Transfers move `beats = G · stash_words(F) · lanes · 2 / bus` beats.
1. LOAD features (G × N_first):  fetch + L + beats + LOAD_OVERHEAD (request, finish).
2. FWD per layer, first to last:  fetch + Mt·G·Nt + GEMM_OVERHEAD + R (one tile-row product per cycle;
   R = `reduce_depth(tm, tn)`: the lanes' adder tree, one register per level).
3. STORE logits (G × M_last):     fetch + beats + STORE_OVERHEAD. The host computes softmax-CE
   (the PS's share, not engine time); then LOAD dY: fetch + L + beats + LOAD_OVERHEAD.
4. Per layer, last to first: BWD_DATA (not for the first layer) fetch + Nt·G·Mt + GEMM_OVERHEAD + R;
   UPDATE (BWD_WEIGHT fused with the update: each PE accumulates its dW element over the G rows,
   then the tile's tm·tn results drain through the max(tm, tn) requantisers in D = `update_chunks`
   cycles (requantised, stochastically rounded, written back) while the next tile accumulates; tiles
   issue I = max(G, D) cycles apart) fetch + `update_issue` + G + GEMM_OVERHEAD + D − 1. One walker
   steps the LFSR row starts a row of [W | b] a cycle, and a tile's stochastic rounding first reads
   them G + 3 cycles after its first row issues: the first tile issues at S = `update_lead(tm, G)` =
   max(0, tm − 4 − G) (block 0's tm row starts walked), block 0's last tile at
   F = max(S + (Nt' − 1)·I, 2·tm − 4 − G) (block 1's walked too), and each later block's last tile
   max(Nt'·I, tm) after the one before (the walk of the next block's starts), so
   `update_issue` = F + (Mt − 1)·max(Nt'·I, tm).
5. Steps overlap by one transfer: the host keeps two feature regions and, in a run of steps, the
   next step's features load in the background of this step's last descriptor (the first layer's
   UPDATE, which reads no DRAM and writes no stash): a background LOAD descriptor (fetch +
   BACKGROUND_OVERHEAD: set-up, hand-over) just before it, whose beats follow that UPDATE's own
   descriptor beats, so that UPDATE takes max(its cycles, fetch + beats + BACKGROUND_TAIL); the next
   step's forward list starts without its LOAD. Only a run's first step loads in the foreground
   (`step_schedule`); `step_cycles(load=False, prefetch=batch)` is the steady state.
6. A K×K conv (issue 20) runs as a windowed GEMM (`dtlgen.isa.rl`): its rows are output positions, its
   reduction walks taps = K·K taps of Nt n-tiles each (tap-major weight tiles, each tap's N padded alone),
   and the window's rows come from counters, so every term above holds with Nt → taps·Nt (FWD),
   Mt → taps·Mt over the G_in = B·H·W input positions (BWD_DATA: the flipped kernel over dY's grid, stride
   1) and Nt' → (taps − 1)·Nt + Nt' (UPDATE). A layer that is not trained runs no UPDATE.
7. A max-pool (kernel = stride ≤ 2, no padding, an exact tiling) runs on the window walker: MAXPOOL issues one tap a
   cycle for TN channels, fetch + Nt·G·taps + GEMM_OVERHEAD + R; MAXPOOL_BWD walks each window twice (find the
   maximum, then write every tap's dX), fetch + Nt·G·2·taps + GEMM_OVERHEAD + R, with G = B·(output positions).
   It has no weights, never trains, and its comparisons are not MACs (0 ops).
GEMM_OVERHEAD = set-up 1 + pipeline drain 11 (read, operands, product, accumulate; then the output
stages: capture, shift, round/saturate, activation or stochastic-rounding term, its shift,
subtract/write) + finish 1. The figures are exact for a memory that never stalls (tests hold them to the RTL).

## Ops (for GOPs)
Every descriptor counts 2 · its useful MACs, as the FE engine does, and nothing else:
FWD and BWD_DATA G·M·N each, UPDATE the G·M·N MACs of dW = dY·Xᵀ (a K×K conv: G·M·N·K·K each, taps in the
padding included, as Layer.macs counts them; the engine issues them all). A step is therefore
2 · (FWD + BWD_DATA + BWD_WEIGHT MACs). Not counted, on purpose:
- the update itself (W ← W − 2^-lr_shift·dW, one subtract per weight and bias): it runs on the
  write-back path while the next tile accumulates, not on the tm·tn multipliers, so counting it
  against the array's peak 2·tm·tn·f would let UPDATE claim more than the array can do (it did:
  fc1 UPDATE of digits_cnn at 4.02 GOPs on a 4×5 array whose peak at 100 MHz is 4.00);
- the bias gradient (the [W | b] walk's extra column, G·M accumulations of dY): like the FWD bias
  add, bias terms are not MACs of the layer's weights.
Padding never counts; idle PEs of edge tiles do not count. Hence every descriptor's ops ≤
2·tm·tn·(its GEMM cycles) ≤ 2·tm·tn·cycles, and GOPs ≤ the roofline 2·tm·tn·f, modelled or measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from dtlgen.boards import Board
from dtlgen.isa import rl as isa_rl
from dtlgen.errors import UnsupportedLayerError, require_int
from dtlgen.host.rl_program import step_schedule  # the host's schedule, which the model counts
from dtlgen.model.ir import Network, conv_out_size, flattened_map, gemm_shape
from dtlgen.perf.resources import COEFFICIENTS, ResourceUse, array_resources, banked_memory
from dtlgen.quant import fixed

DESCRIPTOR_BYTES = isa_rl.DESCRIPTOR_BYTES
VALUE_BYTES = isa_rl.VALUE_BYTES
GEMM_OVERHEAD = 13
UPDATE_PTR_READ = 4  # issue of a tile's last row -> its stage 4, where the LFSR pointers are read, + 1


def update_chunks(tm: int, tn: int) -> int:
    """Cycles UPDATE takes to drain a tile's tm·tn results through the max(tm, tn) requantisers."""
    return min(tm, tn)


def update_lead(tm: int, rows: int) -> int:
    """Cycles UPDATE waits before issuing: its tm LFSR row starts must be walked (one a cycle, all
    in place after tm − 1) by the time the first tile's rounding reads them, UPDATE_PTR_READ + rows − 1
    cycles after it starts issuing."""
    return max(0, tm - UPDATE_PTR_READ - rows)


def update_issue(tm: int, tn: int, rows: int, m_tiles: int, n_tiles: int) -> int:
    """Cycle at which UPDATE's last tile starts issuing, counted from the descriptor's set-up: tiles
    issue max(rows, drain) cycles apart, but a row block's last tile reads the next block's LFSR row
    starts, which the walker steps a row a cycle after the block before ended (block 0's last tile:
    after the first 2·tm rows)."""
    interval = max(rows, update_chunks(tm, tn))
    first_end = max(update_lead(tm, rows) + (n_tiles - 1) * interval, 2 * tm - UPDATE_PTR_READ - rows)
    return first_end + (m_tiles - 1) * max(n_tiles * interval, tm)


def reduce_depth(tm: int, tn: int) -> int:
    """FWD and BWD_DATA sum a lane's max(tm, tn) products in an adder tree: one register per level."""
    terms = max(tm, tn)
    return (terms - 1).bit_length() if terms > 1 else 0
LOAD_OVERHEAD = 2
STORE_OVERHEAD = 3
BACKGROUND_OVERHEAD = 2  # a background LOAD's own descriptor after its fetch: set-up, hand-over
BACKGROUND_TAIL = 1  # its last beat -> the end of the UPDATE beside it


def stash_lanes(tm: int, tn: int, bus_bytes: float) -> int:
    """Banks of the activation / gradient stashes: a power of two ≥ tm, tn and the values per bus beat."""
    need = max(2, tm, tn, int(bus_bytes) // VALUE_BYTES)
    return 1 << (need - 1).bit_length()


def stash_words(cols: int, lanes: int) -> int:
    """Stash words (of `lanes` values) per matrix row of `cols` values."""
    return -(-cols // lanes)


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
        require_int(self.bits, "rl.bits", 4, 16, "RL bit width (the engine keeps 16-bit values)")
        require_int(self.batch, "rl.batch", 1, meaning="the training batch")
        require_int(self.acc_bits, "rl.acc_bits", 0, isa_rl.ACC_BITS_MAX, "0 derives the provably sufficient width")
        require_int(self.lr_shift, "rl.lr_shift", 0, 30, "the learning rate is 2^-lr_shift")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GemmLayer:
    """A retrainable layer as the RL engine runs it: M outputs, N inputs, `positions` output positions per
    sample; a K×K conv is a windowed GEMM of `taps` = K·K taps over an input of `in_positions` positions
    (its tiles: Mt·taps·Nt; its reduction taps·N; BWD_DATA runs a row per input position)."""

    name: str
    m: int
    n: int
    positions: int
    masked: bool = False  # a pruned layer: the engine keeps a mask bit per weight (HAS_MASK)
    taps: int = 1
    in_positions: int = 0  # 0: positions (a plain GEMM)
    trained: bool = True  # False: FWD and BWD_DATA only
    pool: bool = False  # a max-pool (m = n channels, no weights): MAXPOOL and MAXPOOL_BWD

    @property
    def rows_in(self) -> int:
        return self.in_positions or self.positions


def rl_window(layer, source_map: tuple[int, int, int] | None = None) -> dict[str, int]:
    """A retrainable layer's windowed-GEMM geometry (`dtlgen.isa.rl`): {} for a linear or 1x1 stride-1 unpadded
    conv (a plain GEMM), k/stride/pad and the grids for another dense conv, and for a linear layer reading a
    flatten of the C×H×W map `source_map` (`dtlgen.model.ir.flattened_map`) a window over the whole map (square,
    H ≤ 7); a max-pool's window (`_pool_window`: kernel = stride ≤ 2, no padding, an exact tiling). Raises
    UnsupportedLayerError for what the RL engine cannot run."""
    if source_map is not None:
        _, h, w = source_map
        if h != w or h > isa_rl.WINDOW_K_MAX:
            raise UnsupportedLayerError(f"layer '{layer.name}' reads a flatten of a {h}x{w} map, which the RL engine "
                                        f"runs as one window: square and at most {isa_rl.WINDOW_K_MAX} wide; move the "
                                        "split after it")
        return dict(k=h, stride=1, pad=0, hi=h, wi=w, ro=1, co=1)
    if gemm_shape(layer) is not None:
        return {}
    if layer.op == "maxpool":
        return _pool_window(layer)
    if layer.op != "conv2d" or layer.groups != 1 or layer.seed is not None:
        raise UnsupportedLayerError(f"layer '{layer.name}' ({layer.op}, K={layer.kernel}, stride {layer.stride}, "
                                    f"groups {layer.groups}) cannot be retrained on the RL engine (linear and dense "
                                    "convs only); move the split after it")
    if len(layer.in_shape) != 3 or len(layer.out_shape) != 3 or layer.out_shape[1:] != tuple(
            conv_out_size(size, layer.kernel, layer.stride, layer.padding) for size in layer.in_shape[1:]):
        raise UnsupportedLayerError(f"layer '{layer.name}': its shapes {layer.describe_shape()} do not follow from its "
                                    f"kernel {layer.kernel}, stride {layer.stride} and padding {layer.padding}")
    (_, hi, wi), (_, ro, co) = layer.in_shape, layer.out_shape
    limits = ((f"kernel {layer.kernel}", layer.kernel, isa_rl.WINDOW_K_MAX), (f"stride {layer.stride}", layer.stride, 2),
              (f"padding {layer.padding}", layer.padding, isa_rl.WINDOW_K_MAX),
              (f"padding {layer.padding} with kernel {layer.kernel}", layer.padding, layer.kernel - 1),
              (f"a {hi}x{wi} input and {ro}x{co} output", max(hi, wi, ro, co), isa_rl.WINDOW_GRID_MAX))
    for what, value, limit in limits:
        if value > limit:
            raise UnsupportedLayerError(f"layer '{layer.name}': {what} is beyond the RL engine's windowed GEMMs "
                                        f"(at most {limit}); move the split after it")
    return dict(k=layer.kernel, stride=layer.stride, pad=layer.padding, hi=hi, wi=wi, ro=ro, co=co)


def _pool_window(layer) -> dict[str, int]:
    (_, hi, wi), (_, ro, co) = layer.in_shape, layer.out_shape
    if layer.kernel != layer.stride or layer.padding or layer.kernel > 2 or (hi, wi) != (ro * layer.kernel,
                                                                                     co * layer.kernel):
        raise UnsupportedLayerError(
            f"layer '{layer.name}' (maxpool, K={layer.kernel}, stride {layer.stride}, padding {layer.padding}, "
            f"{hi}x{wi} -> {ro}x{co}): the RL engine pools with kernel = stride <= 2, no padding, over a map the "
            "windows tile exactly; move the split after it")
    if max(hi, wi) > isa_rl.WINDOW_GRID_MAX:
        raise UnsupportedLayerError(f"layer '{layer.name}': a {hi}x{wi} input is beyond the RL engine's windows "
                                    f"(at most {isa_rl.WINDOW_GRID_MAX}); move the split after it")
    return dict(k=layer.kernel, stride=layer.stride, pad=0, hi=hi, wi=wi, ro=ro, co=co)


def gemm_of(network: Network, layer) -> tuple[GemmLayer, dict[str, int]]:
    """A retrainable conv, linear or max-pool layer as the RL engine runs it, and its window (`rl_window`: {} for a plain
    GEMM; a K×K conv, or a linear layer over a flattened map, is a windowed one)."""
    source_map = flattened_map(network, layer)
    window = rl_window(layer, source_map)
    if layer.op == "maxpool":
        return GemmLayer(layer.name, layer.in_shape[0], layer.in_shape[0], window["ro"] * window["co"], taps=window["k"] ** 2,
                         in_positions=window["hi"] * window["wi"], trained=False, pool=True), window
    if not window:
        return GemmLayer(layer.name, *gemm_shape(layer), masked=layer.mask is not None, trained=layer.trained), window
    return GemmLayer(layer.name, layer.m, source_map[0] if source_map else layer.n, window["ro"] * window["co"],
                     layer.mask is not None, window["k"] ** 2, window["hi"] * window["wi"], layer.trained), window


def rl_gemms(network: Network) -> list[GemmLayer]:
    """The retrainable layers as GEMMs (flatten is free, `gemm_of`); anything else cannot be trained
    (UnsupportedLayerError naming the layer)."""
    return [gemm_of(network, layer)[0] for layer in network.retrainable_layers if layer.op != "flatten"]


def required_acc_bits(gemms: list[GemmLayer], cfg: RLConfig) -> int:
    """Accumulator width that holds every FWD (+ bias), BWD_DATA and BWD_WEIGHT sum (fixed.py rules).

    The FWD bias may sit up to `bits` places above the products (its frac is never finer than the
    accumulator's), which `accumulator_bits`' one extra bit covers as long as the bias fits the
    product-sum range; BWD_DATA (M products) and BWD_WEIGHT (batch x positions products, and the bias
    column's sum of as many gradients) add no bias, so their product sums need no extra bit, as the
    quantiser (`quantize._rl_formats`) counts them. The golden model derives the exact per-layer width
    from calibrated fracs.
    """
    widths = [width for g in gemms if not g.pool for width in (
        fixed.accumulator_bits(g.taps * g.n, cfg.bits, cfg.bits),
        *(fixed.product_sum_bits(t, cfg.bits, cfg.bits) for t in (g.taps * g.m, cfg.batch * g.positions)))]
    return max(widths, default=0)


@dataclass(frozen=True)
class DescriptorCycles:
    layer: str
    mode: str  # LOAD | FWD | STORE | BWD_DATA | UPDATE (BWD_WEIGHT fused with the update) | MAXPOOL | MAXPOOL_BWD
    cycles: int
    macs: int
    ops: int


def step_cycles(gemms: list[GemmLayer], cfg: RLConfig, bus_bytes: float, latency: int,
                samples: int | None = None, load: bool = True, prefetch: int = 0) -> list[DescriptorCycles]:
    """Cycles of every descriptor of one training step of `samples` (default: a full batch): with
    `load`, its features load first; with `prefetch` > 0, the next step's `prefetch` samples load in
    the background of its last UPDATE (module docstring, 5)."""
    if not gemms:
        return []
    samples = cfg.batch if samples is None else samples
    lanes = stash_lanes(cfg.tm, cfg.tn, bus_bytes)
    fetch = latency + math.ceil(DESCRIPTOR_BYTES / bus_bytes)
    tree = reduce_depth(cfg.tm, cfg.tn)
    chunks = update_chunks(cfg.tm, cfg.tn)

    def beats(rows: int, cols: int) -> int:
        return math.ceil(rows * stash_words(cols, lanes) * lanes * VALUE_BYTES / bus_bytes)

    out: list[DescriptorCycles] = []
    first, last = gemms[0], gemms[-1]
    if load:
        out.append(DescriptorCycles(first.name, "LOAD", fetch + latency + beats(samples * first.rows_in, first.n)
                                    + LOAD_OVERHEAD, 0, 0))
    for g in gemms:
        rows, mt, nt = samples * g.positions, -(-g.m // cfg.tm), -(-g.n // cfg.tn)
        if g.pool:
            out.append(DescriptorCycles(g.name, "MAXPOOL", fetch + nt * rows * g.taps + GEMM_OVERHEAD + tree, 0, 0))
            continue
        macs = rows * g.m * g.n * g.taps
        out.append(DescriptorCycles(g.name, "FWD", fetch + mt * rows * g.taps * nt + GEMM_OVERHEAD + tree, macs,
                                    2 * macs))
    logits = beats(samples * last.positions, last.m)
    out.append(DescriptorCycles(last.name, "STORE", fetch + logits + STORE_OVERHEAD, 0, 0))
    out.append(DescriptorCycles(last.name, "LOAD", fetch + latency + logits + LOAD_OVERHEAD, 0, 0))
    for g in reversed(gemms):
        rows, mt, nt, nta = samples * g.positions, -(-g.m // cfg.tm), -(-g.n // cfg.tn), -(-(g.n + 1) // cfg.tn)
        macs = rows * g.m * g.n * g.taps
        if g.pool:  # (never the first: that one trains)
            out.append(DescriptorCycles(g.name, "MAXPOOL_BWD", fetch + nt * rows * 2 * g.taps + GEMM_OVERHEAD + tree,
                                        0, 0))
            continue
        if g is not first:  # a windowed GEMM's BWD_DATA: a row per input position, its reduction every tap's m-tiles
            out.append(DescriptorCycles(g.name, "BWD_DATA", fetch + nt * samples * g.rows_in * g.taps * mt
                                        + GEMM_OVERHEAD + tree, macs, 2 * macs))
        if not g.trained:
            continue
        update = (fetch + update_issue(cfg.tm, cfg.tn, rows, mt, isa_rl.update_tiles(g.taps, nt, nta)) + rows + GEMM_OVERHEAD
                  + chunks - 1)
        if g is first and prefetch:
            out.append(DescriptorCycles(first.name, "LOAD", fetch + BACKGROUND_OVERHEAD, 0, 0))
            update = max(update, fetch + beats(prefetch * first.rows_in, first.n) + BACKGROUND_TAIL)
        # the dW MACs only: see "Ops" in the module docstring
        out.append(DescriptorCycles(g.name, "UPDATE", update, macs, 2 * macs))
    return out


def infer_cycles(gemms: list[GemmLayer], cfg: RLConfig, bus_bytes: float, latency: int, samples: int = 1) -> int:
    """Cycles of the forward list alone on `samples` inputs (what `RLHost.infer` runs): the features' LOAD,
    every FWD and the logits' STORE."""
    if not gemms:
        return 0
    step = step_cycles(gemms, cfg, bus_bytes, latency, samples=samples)
    store = next(i for i, d in enumerate(step) if d.mode == "STORE")
    return sum(d.cycles for d in step[:store + 1])


@dataclass(frozen=True)
class RLStorage:
    """On-chip storage of the RL engine, in bits and in memories."""

    weight_bits: int
    stash_bits: int
    gradient_bits: int
    weights: ResourceUse  # the weight + bias banks alone
    total: ResourceUse  # all RL memories


def bank_depths(gemms: list[GemmLayer], cfg: RLConfig, lanes: int) -> dict[str, int]:
    """Words per bank of the RL memories: weight tiles, bias rows, activation stash (every layer's
    input, the last output and a second feature region, which the next step's features load into
    while this step trains) and gradient stash (every layer's output), in `lanes` stash banks."""
    a_depth = sum(cfg.batch * g.rows_in * stash_words(g.n, lanes) for g in gemms)
    if gemms:
        first, last = gemms[0], gemms[-1]
        a_depth += cfg.batch * (last.positions * stash_words(last.m, lanes) + first.rows_in * stash_words(first.n, lanes))
    weighted = [g for g in gemms if not g.pool]
    return {"w_depth": sum(-(-g.m // cfg.tm) * g.taps * -(-g.n // cfg.tn) for g in weighted),
            "b_depth": sum(-(-g.m // cfg.tm) for g in weighted), "a_depth": a_depth,
            "g_depth": sum(cfg.batch * g.positions * stash_words(g.m, lanes) for g in gemms)}


def mask_banks(tm: int, tn: int, bus_bytes: int) -> tuple[int, int]:
    """(banks, bits a word) of rl_engine.sv's pruning-mask memory: bank j holds beat j of every tile's mask."""
    beat_bits = 8 * bus_bytes
    return -(-tm * tn // beat_bits), min(tm * tn, beat_bits)


def rl_storage(gemms: list[GemmLayer], cfg: RLConfig, board: Board) -> RLStorage:
    """The engine's memories as the RTL builds them: tm·tn weight banks, tm bias banks, the pruning-mask
    banks of a pruned network (a tile's tm·tn bits, one bank per bus beat of them), and the activation
    (every layer's input, the last output, the second feature region) and gradient (every layer's output)
    stashes of `stash_lanes` banks. `weight_bits` counts the weights, biases and mask bits."""
    tm, tn, bits = cfg.tm, cfg.tn, cfg.bits
    lanes = stash_lanes(tm, tn, board.dram_bytes_per_cycle)
    d = bank_depths(gemms, cfg, lanes)
    a_depth, g_depth = d["a_depth"], d["g_depth"]
    weights = banked_memory(board, tm * tn, d["w_depth"], bits) + banked_memory(board, tm, d["b_depth"], bits)
    if any(g.masked for g in gemms):
        beats, width = mask_banks(tm, tn, int(board.dram_bytes_per_cycle))
        weights = weights + banked_memory(board, beats, d["w_depth"], width)
    total = weights + banked_memory(board, lanes, a_depth, bits) + banked_memory(board, lanes, g_depth, bits)
    weight_bits = sum(g.m * g.n * g.taps + g.m for g in gemms if not g.pool) * bits + sum(g.m * g.n * g.taps for g in gemms if g.masked)
    return RLStorage(weight_bits, a_depth * lanes * bits, g_depth * lanes * bits, weights, total)


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
