"""The FE engine's descriptor (64 bytes, little-endian 32-bit words) and the limits it implies.

w0 kind | act << 4 | fused pool << 6 | depthwise << 7 | scaled << 8 | gen << 9 | sparse << 10 | prefetch << 11 |
w_first << 16;
w1 N | M << 16; w2 H | W << 16; w3 R | C << 16;
w4 K | S << 8 | P << 16 | shift << 24 (signed); w5 six (signed 16) | average-pool multiplier << 16;
w6 input address; w7 weight address (an add's second input); w8 bias address; w9 output address;
w10 the add's operand shifts sa | sb << 8; w11 more_images (b − 1) | plane << 8 | keep << 9 | more_groups
(g − 1) << 16; w12 input image stride (bytes from one image's input, and an add's second input, to the
next's); w13 output image stride; w14 input group stride (b · w12 when g > 1, else 0); w15 output group
stride (b · w13, or 0).

Plane windows (`plane_window`, the `plane` bit): when an op has one tile of rows and columns and its
input window is the whole map, each channel plane of each image is one contiguous run of H·W bytes
in memory, and the engine loads it as one request of ceil(H·W / bus) beats (not a request per row of
ceil(W / bus) beats: a 4×4 map's rows fill half a beat each) and keeps it in its input buffer as
written, image i's plane from the word where its rows would start. The generator sets the bit, the
loader refuses a descriptor whose bit disagrees with its geometry.

Kept inputs (`keeps_inputs`, the `keep` bit): a convolution of one row and column tile, more than one
output-channel tile, and whose input, every input-channel tile of every image as whole planes, fits the
engine's input buffer (both halves, `input_words`), loads it during its first output-channel tile only
(as plane windows, `plane` set, even where its taps read part of each plane: a stride-2 1×1 conv);
later tiles load weights alone and read the input where it stayed. The buffer holds plane windows
compactly: image i's plane of a channel from word i·ceil(H·W / bus) on, and under `keep` input-channel
tile j's planes from word j·b·ceil(H·W / bus) on (b images), instead of in the half of the trip. The
generator sets the bit where it fits the engine sized for the network (`perf.fe.keep_words`); the loader
checks it the same way.

Skipped rows (`loaded_rows`): a 1×1 kernel of stride 2 (a ResNet's projection shortcut) reads only
every other row of its window, so the engine loads only those, one after another in its input
buffer (columns still come in whole beats of the window's row).

Slices of a concatenation: an op whose output is an input of a concatenation stores it at the input's
slice of the concatenated tensor (out = the tensor's address + the channels before it, per image), so
its output stride is the tensor's image pitch, wider than its own sample (`out_stride` ≥ the sample's
pitch; the loader checks the reach). Ceil-mode max pools: R and C may be torch's ceil-mode sizes
(`out_sizes`); the last window may run past the padded input and sees the pad value there.

A batch (b > 1 images in one descriptor, `max_images`): every trip runs all b images with the weight
tile it loaded once. The b images' output rows stack in the output tile (image i's rows from i·R on)
and their input windows in the input buffer, so the op has one row tile (b·R ≤ TR); image i reads at
in + i·in_stride (second + i·in_stride) and writes at out + i·out_stride.

Image groups (g > 1, `groups_problem`): the descriptor runs g groups of b images one after another,
group j's images at in + j·in_gstride (and second + j·in_gstride) and out + j·out_gstride, its trips
after group j − 1's as if they were further row tiles (order: group, row tile, column tile, m tile, n
tile). A layer's batch in one descriptor instead of one per group: its descriptor, bias table, first
load and last store are paid once, and a group's last tile stores in the gaps of the next group's
trips. A kept input (`keep`) of a single input-channel tile cannot be grouped: the next group's first
trip would load its planes into the one slot the last trip still reads. Trip 1 of a descriptor may be
the second group's, whose offset comes from in_gstride, among the descriptor's last bytes: the engine
dispatches trip 0 at least 4 cycles after the descriptor's last beat, which its first load covers on
any memory of 2 or more cycles' latency (no cycle model term).

Per-channel scale (`scaled`, a seeded convolution's: issue 18): the output stage multiplies output
channel m's accumulator by its own signed SCALE_BITS-bit scale, then adds its bias (acc · scale[m] +
bias[m] in 48 bits, where other ops take the descriptor's `mult`). Its bias table holds the M bias words
zero-padded to a multiple of TABLE_ALIGN_WORDS, then the M scales, one sign-extended 32-bit word each
(`bias_table_words`); the engine reads both in one request.

Weights generated on chip (`gen`, a seeded dense conv of ±1 weights: issue 18): no weights in memory;
the weight address field holds the layer's key (`dtlgen.isa.seeded.layer_key`) and the engine's
generator writes each trip's weight tile itself, in the order of `dtlgen.isa.seeded.conv_weights`: for
tap t (t = kr·K + kc) and lane m of the tile, `gen_words(tn)` words from word (t·M + m0 + m)·ceil(N/32) +
n0 / 32 of the layer, the tile's tn_e bits from bit n0 mod 32 on, GEN_LANES lanes a cycle. The trip's
load then takes max(L + input beats (none for a kept input's later tiles), `gen_cycles`): the generator
runs beside the input reads, on no memory port.

A conv's weights in memory, trip by trip (m tile outer, n tile inner; a depthwise conv: m tiles):
K·K tap rows in (kr, kc) order, each the tap's tm_e × wn weights in (m, n) order (wn = tn_e, or 1
for a depthwise conv), zero-padded to whole bus beats (`weight_row_bytes`), so that a beat never
spans two taps and the engine writes each beat into one tap of its weight banks. Weights are packed
at their bit width rounded up to a slot of 2, 4 or 8 bits (`weight_slot_bits`; two's complement in the
slot's low bits, the lowest slot of a byte first): 4-bit weights move two to a byte, 2-bit ones four.
A slot never spans two bytes, so a beat holds bus·8 / slot whole weights.

Sparse weights (`sparse`, a pruned conv's: issue 19): each trip's weight tile is stored compressed,
in the same trip order, as one run of `sparse_tile_beats` beats: a header beat whose first two bytes
(little-endian) give the beats of the next tile in memory (the last tile's: the first's), then per tap
row (kr, kc order) a bitmap of the engine's whole array, TM × TN bits (TM for a depthwise conv): bit
m·TN + n (m) says whether lane m's weight of input channel n is kept (bits beyond the tile's tm_e × wn
are 0; LSB first, zero-padded to whole beats), so that each weight bank reads a bit of fixed place;
then the kept weights in (m, n) order, in slots as above, zero-padded to whole beats (none when no
bit is set). The descriptor's
`w_first` gives the first tile's beats. The engine requests a tile as one burst of that many beats,
learns the next tile's size from the header, and writes 0 into the weight banks of positions whose
bit is 0: a stored weight may be 0 too (a kept weight that quantises to 0), the bitmap is the layer's
pruning mask. The generator stores a pruned conv this way where it takes fewer beats than dense
(`dtlgen.perf.fe.stores_sparse`); a tile is at most
SPARSE_TILE_BEATS_MAX beats (the request's and the field's 16 bits), on a port of SPARSE_BUS_MIN bytes or more.

Prefetched requests (`prefetch`, issue 15): an engine on a memory of PREFETCH_LATENCY_MIN cycles' latency or
more may have a read FIFO of `prefetch_beats(latency)` beats (fe_engine.sv PF_BEATS; the design's
`fe.prefetch`). A dense conv with stored
weights and the bit set, once the job of a trip that stores nothing has issued its own requests, issues
those of the trip after the one it loads, in their order, while their beats fit the FIFO (a prefix of the
trip's requests), until the next dispatch; their beats wait in the FIFO and the next job takes them one a
cycle while the rest of its trip's requests are in flight. So a trip whose load is shorter than the latency
no longer pays it whole: a kept input's later output-channel tiles (one weight row a trip) are where it
counts. Such a descriptor stores each output tile whole in the job of the next tile's first trip, which
prefetches nothing (reads and writes still take turns on the memory), instead of in the gaps of the next
tile's trips. The generator sets the bit where the cycle model finds the op faster that way
(`dtlgen.perf.fe.prefetching`); the loader refuses it elsewhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dtlgen.isa import ACTIVATION_CODES, Field, decode_words, encode_words

DESCRIPTOR_BYTES = 64
KIND_CONV, KIND_MAXPOOL, KIND_AVGPOOL, KIND_ADD = 1, 2, 3, 4
KINDS = {KIND_CONV: "conv", KIND_MAXPOOL: "maxpool", KIND_AVGPOOL: "avgpool", KIND_ADD: "add"}
K_MAX, S_MAX = 7, 2  # the input buffer's full-size window: (tr-1)·S_MAX + K_MAX rows (fe_engine.sv)
K_FIELD_MAX = 255  # a pool's kernel (no weights) may exceed K_MAX while its window fits the buffer
ACC_BITS = 32  # accumulators and bias words
SHIFT_RANGE = (-127, 127)  # the output stage's signed 8-bit shift (-128 would wrap where the engines negate it)
OUTPUT_STAGE_CYCLES = 10  # the store pipeline: bank read, lane select, pool (2), scale, bias, shift (2), round, saturate
GEOMETRY_BYTES = 20  # the descriptor's leading bytes trip 0's geometry is computed from (fe_engine.sv geom_age)
GEOMETRY_LOAD_AGE = 4  # cycles after they arrive before trip 0's first load may start (stride products, sums)
GEOMETRY_GO_AGE = 6  # ... and before its first dispatch (trip 1's geometry through the scheduler's stages)
SCALE_BITS = 16  # a scaled conv's per-channel scale: signed, in the output stage's 17-bit multiplier operand
TABLE_ALIGN_WORDS = 16  # a scaled conv's scales start this many words apart from the bias table's start
ELEMENT_BITS = 8  # the widest element the FE engines take: a byte (activations one each, weights in slots)
__all__ = ["ACTIVATION_CODES", "DESCRIPTOR_BYTES", "FIELDS", "decode", "encode"]

FIELDS = (
    Field("kind", 0, 0, 4), Field("act", 0, 4, 2), Field("pool", 0, 6, 1), Field("depthwise", 0, 7, 1),
    Field("scaled", 0, 8, 1), Field("gen", 0, 9, 1), Field("sparse", 0, 10, 1), Field("prefetch", 0, 11, 1),
    Field("w_first", 0, 16, 16),
    Field("n", 1, 0, 16), Field("m", 1, 16, 16), Field("h", 2, 0, 16), Field("w", 2, 16, 16),
    Field("r", 3, 0, 16), Field("c", 3, 16, 16),
    Field("k", 4, 0, 8), Field("s", 4, 8, 8), Field("p", 4, 16, 8), Field("shift", 4, 24, 8, signed=True),
    Field("six", 5, 0, 16, signed=True), Field("mult", 5, 16, 16),
    Field("in_addr", 6, 0, 32), Field("second_addr", 7, 0, 32), Field("bias_addr", 8, 0, 32),
    Field("out_addr", 9, 0, 32), Field("sa", 10, 0, 8), Field("sb", 10, 8, 8),
    Field("more_images", 11, 0, 8), Field("plane", 11, 8, 1), Field("keep", 11, 9, 1), Field("more_groups", 11, 16, 8),
    Field("in_stride", 12, 0, 32), Field("out_stride", 13, 0, 32), Field("in_gstride", 14, 0, 32),
    Field("out_gstride", 15, 0, 32),
)
IMAGES_MAX = 256  # more_images is 8 bits
GROUPS_MAX = 256  # more_groups too


def window_problem(kind: int, k: int, s: int, r: int, c: int, tr: int, tc: int) -> str | None:
    """Why an op's kernel or input window does not fit the full-size engine, or None. A convolution's
    kernel is at most K_MAX (its weight banks hold K_MAX² taps); a pool has no weights, so any kernel
    up to K_FIELD_MAX runs whose window fits. The input buffer holds (tr-1)·S_MAX + K_MAX rows by
    (tc-1)·S_MAX + K_MAX columns, which every window with S ≤ S_MAX and K ≤ K_MAX fits; a larger
    stride or pool kernel is checked against it (a trip covers min(tr, r) × min(tc, c) outputs)."""
    if kind == KIND_CONV and k > K_MAX:
        return f"kernel {k} exceeds the FE engine's convolution kernels, K ≤ {K_MAX}"
    if k > K_FIELD_MAX:
        return f"kernel {k} exceeds the descriptor's K ≤ {K_FIELD_MAX}"
    if s <= S_MAX and k <= K_MAX:
        return None
    rows, cols = (min(tr, r) - 1) * s + k, (min(tc, c) - 1) * s + k
    buffer = (tr - 1) * S_MAX + K_MAX, (tc - 1) * S_MAX + K_MAX
    if rows > buffer[0] or cols > buffer[1]:
        return (f"K={k}, S={s} with {tr}x{tc} output tiles needs a {rows}x{cols} input window, larger than the "
                f"engine's {buffer[0]}x{buffer[1]} buffer")
    return None


def out_sizes(kind: int, size: int, k: int, s: int, p: int) -> tuple[int, ...]:
    """The output lengths an op of `kind` may have along an axis of `size` inputs: torch's floor mode, and
    for a max pool its ceil mode too (its last window may run past the padded input, where the engine
    sees the pad value, as torch's -inf; it starts inside the input or its left padding)."""
    floor = (size + 2 * p - k) // s + 1
    if kind != KIND_MAXPOOL:
        return (floor,)
    ceil = -(-(size + 2 * p - k) // s) + 1
    if (ceil - 1) * s >= size + p:
        ceil -= 1
    return (floor, ceil)


def window_rows(k: int, s: int, p: int, h: int, r: int) -> int:
    """Input rows of an op's whole-map window (one row tile): rows 0 .. (R-1)·S + K − P, clipped to the map."""
    return max(0, min((r - 1) * s + k - p, h))


def plane_window(k: int, s: int, p: int, h: int, w: int, r: int, c: int, tr: int, tc: int) -> bool:
    """Whether an op's trips load whole channel planes (module docstring, Plane windows): its outputs
    fit one tile (R ≤ TR, C ≤ TC), the tile's input window covers the map in both directions, and its
    kernel reads every row (not K = 1, S = 2: `loaded_rows`)."""
    return (not skips_rows(k, s) and r <= tr and c <= tc and window_rows(k, s, p, h, r) == h
            and window_rows(k, s, p, w, c) == w)


def input_words(tr: int, tc: int, bus: int, k_max: int = K_MAX, s_max: int = S_MAX) -> int:
    """Words (one bus beat each) of one half of an input bank of fe_engine.sv sized for `k_max`, `s_max`:
    IN_ROWS rows of a power-of-two pitch of whole beats."""
    rows, cols = (tr - 1) * s_max + k_max, (tc - 1) * s_max + k_max
    return rows * (1 << max(0, (max(cols, bus) - 1).bit_length())) // bus


def plane_words(h: int, w: int, bus: int) -> int:
    """Buffer words of one image's channel plane under a plane window: its request's beats."""
    return -(-h * w // bus)


def keeps_inputs(dense_conv: bool, n: int, m: int, h: int, w: int, r: int, c: int, images: int, tm: int, tn: int,
                 tr: int, tc: int, bus: int, words: int) -> bool:
    """Whether a descriptor keeps its input across output-channel tiles (module docstring, Kept inputs) on
    an engine whose input banks hold `words` words (both halves: 2 · `input_words`); `dense_conv`: a
    convolution that is not depthwise."""
    return (dense_conv and m > tm and r <= tr and c <= tc
            and -(-n // tn) * images * plane_words(h, w, bus) <= words)


def loads_planes(k: int, s: int, p: int, h: int, w: int, r: int, c: int, tr: int, tc: int, keep: bool) -> bool:
    """The descriptor's `plane` bit: its trips load whole channel planes, because its window is the whole
    map (`plane_window`) or because it keeps them (`keeps_inputs`, which loads the planes its window lies
    in, whole, once)."""
    return keep or plane_window(k, s, p, h, w, r, c, tr, tc)


PREFETCH_LATENCY_MIN = 16  # a memory answering sooner gains too little from prefetched requests for the FIFO
PREFETCH_BEATS_MAX = 4096   # the read FIFO's beats an engine may build (fe_engine.sv: PF_BEATS)


def prefetch_beats(latency: int) -> int:
    """The read FIFO (beats; 0: none) of the engine on a memory that answers in `latency` cycles (module
    docstring, Prefetched requests): the power of two of at least twice the latency from
    PREFETCH_LATENCY_MIN cycles on, so that a trip's prefetched beats can cover it."""
    if latency < PREFETCH_LATENCY_MIN:
        return 0
    return min(PREFETCH_BEATS_MAX, 1 << (2 * latency - 1).bit_length())


def skips_rows(k: int, s: int) -> bool:
    """Whether the engine loads every other row of a window (module docstring, Skipped rows)."""
    return k == 1 and s == 2


def loaded_rows(k: int, s: int, rows):
    """Rows of a `rows`-row input window (clipped to the map, starting at a row a tap reads) that the
    engine loads: all of them, or every other one for a 1×1 kernel of stride 2 (module docstring,
    Skipped rows)."""
    return -(-rows // 2) if skips_rows(k, s) else rows


def max_images(k: int, s: int, p: int, h: int, r: int, pool: bool, tr: int) -> int:
    """The most images one descriptor runs (see the module docstring): their output rows stack in the
    TR-row output tile, their whole-map input windows in the (TR-1)·S_MAX + K_MAX-row input buffer, and a
    fused pool pairs rows within each image (R even). 1 when the op's rows need more than one tile."""
    if r > tr or (pool and r % 2):
        return 1
    buffer_rows = (tr - 1) * S_MAX + K_MAX
    rows = max(1, window_rows(k, s, p, h, r))
    return max(1, min(IMAGES_MAX, tr // r, buffer_rows // rows))


def batch_problem(images: int, k: int, s: int, p: int, h: int, r: int, pool: bool, tr: int) -> str | None:
    """Why one descriptor cannot run `images` images of this op, or None."""
    most = max_images(k, s, p, h, r, pool, tr)
    if 1 <= images <= most:
        return None
    return (f"{images} images of R={r} rows (K={k}, S={s}, P={p}, H={h}{', fused pool' if pool else ''}) do not fit "
            f"one descriptor: at most {most} with TR={tr}")


def groups_problem(groups: int, keep: bool, n: int, tn: int) -> str | None:
    """Why one descriptor cannot run `groups` image groups (module docstring, Image groups), or None."""
    if not 1 <= groups <= GROUPS_MAX:
        return f"{groups} image groups: a descriptor runs 1 to {GROUPS_MAX}"
    if groups > 1 and keep and n <= tn:
        return (f"{groups} image groups of a kept input of one input-channel tile (N={n} <= TN={tn}): the next "
                "group's load would overwrite the planes the last trip reads")
    return None


GEN_LANES = 4  # lanes the on-chip generator fills a cycle (a mixer each)
GEN_LATENCY = 8  # cycles of a trip's generation besides its words: setup, the mixer's stages, the bank write


def gen_words(tn: int) -> int:
    """Words the generator makes per tap and lane: enough for tn bits at any offset n0 mod 32 that input
    channel tiles of tn start at (all multiples of 32 when tn is one: tn / 32)."""
    return tn // 32 if tn % 32 == 0 else -(-(31 + tn) // 32)


def gen_words_expression(tn: str) -> str:
    """`gen_words` of the engines' TN as a C / SystemVerilog expression of `tn`, for their constants."""
    return f"({tn} % 32 == 0) ? {tn} / 32 : (31 + {tn} + 31) / 32"


def gen_cycles(k: int, tm_e, tn: int, lanes: int = GEN_LANES):
    """Cycles the generator takes for a trip's weight tile of tm_e lanes (element-wise over arrays)."""
    return GEN_LATENCY + k * k * -(-np.asarray(tm_e) // lanes) * gen_words(tn)


def bias_table_words(m: int, scaled: bool) -> int:
    """32-bit words of a conv's bias table: M biases, or for a scaled conv (module docstring, Per-channel
    scale) the biases padded to a multiple of TABLE_ALIGN_WORDS, then M scales."""
    return m + -(-m // TABLE_ALIGN_WORDS) * TABLE_ALIGN_WORDS if scaled else m


def geometry_wait(bus_bytes: int) -> int:
    """Cycles an op without a bias table (pools, adds) waits between its descriptor and its first load
    for trip 0's geometry: the first load starts GEOMETRY_LOAD_AGE cycles after the beat holding the
    descriptor's last geometry byte, and the descriptor's later beats and the phase handoff cover
    beats − that beat's index of them. 1 on a 16-byte bus, 0 up to 8 bytes. (A conv's bias table read
    lies between and covers it.)"""
    beats = math.ceil(DESCRIPTOR_BYTES / bus_bytes)
    return max(0, GEOMETRY_LOAD_AGE - (beats - int((GEOMETRY_BYTES - 1) // bus_bytes)))


def pipeline_depth(tn: int) -> int:
    """Cycles from a tap's issue until its output word is written: input bank read, operand and weight
    registers, multiplier, adder tree over tn (one register per level), the sums' register, accumulate,
    read-modify-add, write."""
    return 7 + max(0, math.ceil(math.log2(tn)))


# issues between two writes of one output word: the accumulator reads it TREE + 2 cycles after its issue and
# the write lands TREE + 6 after (fe_engine.sv, the accumulator)
DW_ROW_MIN = 5


def depthwise_slots(tn: int, k_max: int, dw_k: int = K_MAX) -> int:
    """fe_engine.sv's KS: a lane's weight slots for a depthwise conv's kernel row, min(tn // 2, k_max, dw_k)
    (`dw_k`: the largest depthwise kernel the engine runs over the columns), or 1 (no delay line) when that
    is below 3."""
    slots = min(tn // 2, k_max, dw_k)
    return slots if slots >= 3 else 1


def depthwise_operand_bits(tm: int, tn: int, k_max: int, a_bits: int, dw_k: int = K_MAX) -> int:
    """Bits of fe_engine.sv's depthwise delay line, tm · (KS − 1) · a_bits (`depthwise_slots`): as many
    operand bits gain a select between the lane's own operand and the column's."""
    return tm * (depthwise_slots(tn, k_max, dw_k) - 1) * a_bits


def depthwise_columns(k: int, s: int, tn: int) -> bool:
    """Whether a depthwise conv of kernel k and stride s runs its kernel rows over the array's columns
    (fe_engine.sv, Depthwise taps over the columns): a lane's weight slots KS = min(tn // 2, k_max, dw_k) hold
    a kernel row (k ≤ tn // 2; the engine's buffers and delay line are sized for every such kernel of its
    program, k ≤ k_max and k ≤ dw_k), and it pays for k ≥ 3 and stride 1 or 2; else it issues one tap a cycle."""
    return 3 <= k <= tn // 2 and s <= 2


def depthwise_issues(k: int, s: int, tc_e):
    """Issues per output row and trip of a depthwise conv over the columns (`depthwise_columns`) on a trip
    tc_e output columns wide: for each of the k kernel rows, the row's input elements one an issue,
    (tc_e − 1)·s + k of them and at least DW_ROW_MIN (an output word's kernel rows are folded through the
    output banks), or k when tc_e = 1 (folded in the accumulator). Element-wise over arrays."""
    tc_e = np.asarray(tc_e)
    return k * np.where(tc_e == 1, k, np.maximum((tc_e - 1) * s + k, DW_ROW_MIN))


def trip_drain(taps, depth: int, last):
    """Cycles a trip of `taps` issued taps waits after its last issue for its pipeline (`depth`,
    `pipeline_depth`) before the next trip may issue: all of it when the trip is its operation's last
    (the last store reads what it wrote) or issues fewer taps than the pipeline is deep (a short
    trip's successor could read an output word before this trip's write of it lands — that needs
    5 cycles between the two issues — and the engine's geometry registers for the trips ahead need
    dispatches some 6 cycles apart); none otherwise: the next trip of the same output tile accumulates
    into the same output half behind it (each tap carries its own first-channel-tile flag and output
    half down the pipeline), and the next tile's writes go to the other half while the store of this
    one waits `store_hold` (drain once per operation). Element-wise over arrays."""
    return np.where(np.asarray(last) | (np.asarray(taps) < depth), depth, 0)


def store_hold(prev_taps, depth: int):
    """Cycles after the dispatch of an output tile's first trip before the store of the tile before it
    may read its output half: the pipeline's `depth` when that tile's last trip went on without its
    drain (`trip_drain`: it issued `prev_taps` ≥ depth taps), so its last writes may still be in
    flight; none after a trip that drained. Element-wise over arrays."""
    return np.where(np.asarray(prev_taps) >= depth, depth, 0)


def encode(where: str = "FE descriptor", **values: Any) -> np.ndarray:
    """The descriptor's 64 bytes (uint8) from field values (missing fields are 0)."""
    return encode_words(FIELDS, values, DESCRIPTOR_BYTES // 4, where).view(np.uint8)


def decode(raw: Any) -> dict[str, int]:
    """Field values of one descriptor's 64 bytes."""
    words = np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes()[:DESCRIPTOR_BYTES], dtype="<u4")
    return decode_words(FIELDS, words)


def reserved_bits(raw: Any) -> int:
    """The bits of a descriptor no field uses (a valid descriptor has none set)."""
    words = np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes()[:DESCRIPTOR_BYTES], dtype="<u4")
    used = [0] * (DESCRIPTOR_BYTES // 4)
    for f in FIELDS:
        used[f.word] |= ((1 << f.width) - 1) << f.lsb
    return sum(bin(int(w) & ~u & 0xFFFFFFFF).count("1") for w, u in zip(words, used))


WEIGHT_SLOTS = (2, 4, 8, 16)  # the bits a weight may take in memory (a slot never spans bytes)


def weight_slot_bits(w_bits: int) -> int:
    """Bits one weight takes in memory: its width rounded up to a WEIGHT_SLOTS entry."""
    return next(slot for slot in WEIGHT_SLOTS if w_bits <= slot)


def weight_slot_expression(width: str) -> str:
    """`weight_slot_bits` of the engines' widths (up to ELEMENT_BITS) as a C / SystemVerilog expression of
    `width`, for the engines' constants."""
    slots = [slot for slot in WEIGHT_SLOTS if slot <= ELEMENT_BITS]
    return "".join(f"({width} <= {slot}) ? {slot} : " for slot in slots[:-1]) + str(slots[-1])


def weight_row_bytes(lanes: int, columns: int, bus_bytes: int, slot_bits: int = 8) -> int:
    """Bytes of one tap row of a trip's weight tile: `lanes` × `columns` weights of `slot_bits` each
    (`weight_slot_bits`), padded to whole `bus_bytes` beats."""
    return -(-lanes * columns * slot_bits // (8 * bus_bytes)) * bus_bytes


def image_pitch(sample_bytes: int, row_bytes: int = 0) -> int:
    """Bytes from one image of a batch's activation buffer to the next. On a memory without DRAM rows
    (`row_bytes` 0), the sample itself. With rows, a sample that spans a row or more is rounded up to
    an odd number of rows: the images of a batch then sit in different banks (bank = row mod banks, a
    power of two) and a descriptor's reads, which visit every image for each input channel, keep each
    image's row open. A sample of a power-of-two number of rows would put the images in the same few
    banks, and every visit would open its row again (2.2x the read time of a 1x1 conv's batch of 8 on
    4×4 maps of 256 channels, on the DDR-like memory)."""
    if not row_bytes or sample_bytes < row_bytes:
        return sample_bytes
    return (-(-sample_bytes // row_bytes) | 1) * row_bytes


def pack_weights(values: Any, slot_bits: int) -> np.ndarray:
    """A tap row's weights (signed integers, a multiple of 8 / slot_bits of them) as the bytes that hold
    them, `slot_bits` each, the lowest slot of a byte first (uint8)."""
    v = np.asarray(values, dtype=np.int64)
    if slot_bits >= 8:
        return v.astype(f"<i{slot_bits // 8}").view(np.uint8)
    per = 8 // slot_bits
    fields = (v & ((1 << slot_bits) - 1)).reshape(-1, per) << (slot_bits * np.arange(per))
    return fields.sum(axis=1).astype(np.uint8)


def weight_bytes(m: int, n: int, k: int, depthwise: bool, tm: int, tn: int, bus_bytes: int,
                 slot_bits: int = 8) -> int:
    """Bytes of a conv's weights in memory, every trip's tile laid out as the module docstring says."""
    # (count, extent) of the full tiles and the edge tile along each dimension: a closed form, so that a
    # stranger's descriptor cannot make the check loop for long
    rows = [(m // tm, tm), (1 if m % tm else 0, m % tm)]
    cols = [(1, 1)] if depthwise else [(n // tn, tn), (1 if n % tn else 0, n % tn)]
    return k * k * sum(a * b * weight_row_bytes(lanes, wn, bus_bytes, slot_bits)
                       for a, lanes in rows for b, wn in cols)


# Sparse weights (module docstring)
SPARSE_HEADER_BEATS = 1
SPARSE_BUS_MIN = 2  # a header beat holds the next tile's 16-bit size
SPARSE_TILE_BEATS_MAX = (1 << 16) - 1
SPARSE_WEIGHTS_MAX = 1 << 26  # the positions of one sparse conv a project may hold (its loader reads them all)
SPARSE_ROWS_MAX = 1 << 21     # ... and its tap rows (tiles × K·K), and every sparse conv's of a project together


def sparse_rows(m: int, n: int, k: int, depthwise: bool, tm: int, tn: int) -> int:
    """Tap rows of a conv's weights stored sparse on a tm × tn engine: tiles × K·K."""
    return -(-m // tm) * (1 if depthwise else -(-n // tn)) * k * k


def sparse_problem(m: int, n: int, k: int, depthwise: bool, tm: int, tn: int) -> str | None:
    """Why a conv's weights cannot be stored sparse on a tm × tn engine (None: they can)."""
    cols = 1 if depthwise else n
    rows = sparse_rows(m, n, k, depthwise, tm, tn)
    if m * cols * k * k > SPARSE_WEIGHTS_MAX or rows > SPARSE_ROWS_MAX:
        return (f"{m * cols * k * k} weights in {rows} tap rows, beyond the {SPARSE_WEIGHTS_MAX} and {SPARSE_ROWS_MAX} "
                "a sparse conv may have")
    return None


def sparse_fits(k: int, tm: int, tn: int, slot_bits: int) -> bool:
    """Whether every sparse tile of a K×K conv on a tm × tn array fits SPARSE_TILE_BEATS_MAX beats on any
    bus (the worst case: a one-byte bus, every weight kept)."""
    return SPARSE_HEADER_BEATS + k * k * (-(-tm * tn // 8) + tm * tn * slot_bits // 8 + 1) <= SPARSE_TILE_BEATS_MAX


def sparse_tile_kept(mask: Any, depthwise: bool, tm: int, tn: int) -> np.ndarray:
    """Kept weights per trip tile and tap row of a conv's mask (M, N or 1, K, K; 1 = kept): int64 array
    (m tiles, n tiles, K·K), tiles in trip order."""
    mask = np.asarray(mask)
    m, n, k = mask.shape[0], mask.shape[1], mask.shape[2]
    tn = 1 if depthwise else tn
    mt, nt = -(-m // tm), -(-n // tn)
    padded = np.zeros((mt * tm, nt * tn, k * k), dtype=np.int64)
    padded[:m, :n] = mask.reshape(m, n, k * k) != 0
    return padded.reshape(mt, tm, nt, tn, k * k).sum(axis=(1, 3))


def sparse_map_bits(depthwise: bool, tm: int, tn: int) -> int:
    """Bits of a sparse tap row's bitmap: the engine's TM × TN array (TM for a depthwise conv)."""
    return tm if depthwise else tm * tn


def sparse_tile_beats(kept: Any, map_bits: int, bus_bytes: float, slot_bits: int) -> np.ndarray:
    """Beats of each trip tile stored sparse: the header, then per tap row its `map_bits`-bit bitmap
    (`sparse_map_bits`) and its kept weights, each padded to whole beats. `kept`: (..., K·K) kept weights
    per tap row. (A fractional `bus_bytes`, the analytical model's average port, rounds up the same way.)"""
    kept = np.asarray(kept, dtype=np.int64)
    values = np.ceil(kept * slot_bits / (8 * bus_bytes)).astype(np.int64)
    return SPARSE_HEADER_BEATS + kept.shape[-1] * math.ceil(map_bits / (8 * bus_bytes)) + values.sum(axis=-1)


def sparse_tile_sizes(mask: Any, depthwise: bool, tm: int, tn: int, bus_bytes: int, slot_bits: int) -> np.ndarray:
    """Beats of each trip tile of a conv's mask stored sparse, in trip order (int64, flat)."""
    return sparse_tile_beats(sparse_tile_kept(mask, depthwise, tm, tn), sparse_map_bits(depthwise, tm, tn),
                             bus_bytes, slot_bits).ravel()


def pack_sparse_weights(weight: Any, mask: Any, tm: int, tn: int, bus_bytes: int, slot_bits: int,
                        depthwise: bool = False) -> np.ndarray:
    """A conv's weights (M, N or 1, K, K signed integers) under `mask` (same shape) in the sparse layout
    of the module docstring (uint8). Raises ValueError when a tile exceeds SPARSE_TILE_BEATS_MAX beats."""
    weight, mask = np.asarray(weight, dtype=np.int64), np.asarray(mask) != 0
    m, n, k = weight.shape[0], weight.shape[1], weight.shape[2]
    beats = sparse_tile_sizes(mask, depthwise, tm, tn, bus_bytes, slot_bits)
    map_bits = sparse_map_bits(depthwise, tm, tn)
    stride = 1 if depthwise else tn  # a lane's bits in the bitmap
    tn = 1 if depthwise else tn
    if beats.max() > SPARSE_TILE_BEATS_MAX:
        raise ValueError(f"a sparse weight tile of {int(beats.max())} beats exceeds {SPARSE_TILE_BEATS_MAX}")
    per_beat = 8 * bus_bytes // slot_bits
    blocks, tile = [], 0
    for m0 in range(0, m, tm):
        for n0 in range(0, n, tn):
            header = np.zeros(bus_bytes, dtype=np.uint8)
            header[:2] = np.array([beats[(tile + 1) % len(beats)]], dtype="<u2").view(np.uint8)
            blocks.append(header)
            w = weight[m0:m0 + tm, n0:n0 + tn].transpose(2, 3, 0, 1).reshape(k * k, -1)
            kept = mask[m0:m0 + tm, n0:n0 + tn].transpose(2, 3, 0, 1)  # (K, K, lanes, columns)
            keep = kept.reshape(k * k, -1)
            bits = np.zeros((k * k, -(-map_bits // (8 * bus_bytes)) * 8 * bus_bytes), dtype=np.uint8)
            lanes, cols = kept.shape[2], kept.shape[3]
            places = (np.arange(lanes)[:, None] * stride + np.arange(cols)[None, :]).reshape(-1)
            bits[:, places] = keep
            for t in range(k * k):
                blocks.append(np.packbits(bits[t], bitorder="little"))
                values = w[t][keep[t]]
                padded = np.zeros(-(-len(values) // per_beat) * per_beat, dtype=np.int64)
                padded[:len(values)] = values
                blocks.append(pack_weights(padded, slot_bits))
            tile += 1
    return np.concatenate(blocks)


def unpack_sparse_weights(data: Any, first_beats: int, m: int, n: int, k: int, depthwise: bool, tm: int, tn: int,
                          bus_bytes: int, slot_bits: int, values: bool = True) -> tuple[np.ndarray | None, np.ndarray, int]:
    """Read a sparse weight region back (the project loader's check: a stranger's bytes): returns the
    weights (M, N or 1, K, K, int64; None without `values`), the mask (uint8) and the region's bytes.
    Raises ValueError naming the first tile whose header, size or padding disagrees with the layout (bits
    set outside the tile's weights, a header that is not the next tile's size, weights past the kept
    count not 0, or a region too short), or a conv `sparse_problem` refuses. The walk from row to row
    is a loop (each row's length follows from its bitmap); the checks run on all rows at once."""
    problem = sparse_problem(m, n, k, depthwise, tm, tn)
    if problem or bus_bytes < SPARSE_BUS_MIN:
        raise ValueError(problem or f"a {bus_bytes}-byte port: sparse weights need {SPARSE_BUS_MIN} bytes or more")
    data = np.asarray(data, dtype=np.uint8)
    view, size = memoryview(data), len(data)
    cols_total, tn = (1, 1) if depthwise else (n, tn)
    map_bits = sparse_map_bits(depthwise, tm, tn)
    map_bytes = -(-map_bits // (8 * bus_bytes)) * bus_bytes
    per_beat = 8 * bus_bytes // slot_bits
    tiles = [(m0, n0) for m0 in range(0, m, tm) for n0 in range(0, cols_total, tn)]
    starts, counts = [], []  # each tap row's bitmap offset and its set bits, in tile order
    at, expect, first = 0, first_beats, None
    for i in range(len(tiles)):
        begin = at
        if at + bus_bytes > size:
            raise ValueError(f"tile {i} starts past the region's {size} bytes")
        following = view[at] | view[at + 1] << 8
        if int.from_bytes(view[at + 2:at + bus_bytes], "little"):
            raise ValueError(f"tile {i}'s header has bytes set past its size field")
        at += bus_bytes
        for _ in range(k * k):
            if at + map_bytes > size:
                raise ValueError(f"tile {i} runs past the region's {size} bytes")
            count = int.from_bytes(view[at:at + map_bytes], "little").bit_count()
            starts.append(at)
            counts.append(count)
            at += map_bytes + -(-count // per_beat) * bus_bytes
        if at > size:
            raise ValueError(f"tile {i} runs past the region's {size} bytes")
        beats = (at - begin) // bus_bytes
        if beats != expect:
            raise ValueError(f"tile {i} takes {beats} beats, but {'the descriptor' if i == 0 else f'tile {i - 1}'}'s "
                             f"size for it is {expect}")
        first = beats if first is None else first
        expect = following
    if expect != first:
        raise ValueError(f"the last tile's header gives {expect} beats for the first tile, which takes {first}")
    weight = np.zeros((m, cols_total, k, k), dtype=np.int64) if values else None
    mask = np.zeros((m, cols_total, k, k), dtype=np.uint8)
    origin = np.array(tiles, dtype=np.int64).reshape(-1, 2)
    chunk = max(1, (1 << 22) // (8 * map_bytes))  # rows a pass unpacks (at most 4 M bitmap bits)
    for lo in range(0, len(starts), chunk):
        rows = np.arange(lo, min(lo + chunk, len(starts)))
        _check_rows(data, np.array(starts[lo:lo + len(rows)]), np.array(counts[lo:lo + len(rows)]), rows, origin,
                    m, cols_total, k, tm, tn, map_bits, map_bytes, bus_bytes, slot_bits, mask, weight)
    return weight, mask, at


def _check_rows(data, starts, counts, rows, origin, m, n, k, tm, tn, map_bits, map_bytes, bus_bytes, slot_bits,
                mask, weight) -> None:
    """`unpack_sparse_weights`'s checks and scatter for a run of tap rows (`rows`: their indices in tile
    order, `starts`: their bitmaps' offsets, `counts`: their set bits)."""
    tile, tap = rows // (k * k), rows % (k * k)
    m0, n0 = origin[tile, 0], origin[tile, 1]
    bits = np.unpackbits(data[starts[:, None] + np.arange(map_bytes)], axis=1, bitorder="little").astype(bool)
    place = np.arange(8 * map_bytes)
    inside = ((place < map_bits)[None, :] & ((place // tn)[None, :] < np.minimum(tm, m - m0)[:, None])
              & ((place % tn)[None, :] < np.minimum(tn, n - n0)[:, None]))
    bad = (bits & ~inside).any(axis=1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(f"tile {int(tile[r])}, tap row {int(tap[r])}: bitmap bits set outside its weights")
    per_beat = 8 * bus_bytes // slot_bits
    lengths = -(-counts // per_beat) * bus_bytes  # each row's value bytes
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    at = np.arange(int(lengths.sum())) - np.repeat(first, lengths)  # a value byte's place in its row
    raw = data[np.repeat(starts + map_bytes, lengths) + at]
    used = np.repeat(counts * slot_bits, lengths) - 8 * at  # bits of the byte the kept weights use
    padding = np.where(used >= 8, 0, raw >> np.clip(used, 0, 8).astype(np.uint8))
    if padding.any():
        r = int(np.repeat(np.arange(len(rows)), lengths)[np.flatnonzero(padding)[0]])
        raise ValueError(f"tile {int(tile[r])}, tap row {int(tap[r])}: non-zero padding after its "
                         f"{int(counts[r])} weights")
    r, p = np.nonzero(bits)  # row-major: each row's kept weights in (m, n) order, as they are stored
    where = (m0[r] + p // tn, n0[r] + p % tn, tap[r] // k, tap[r] % k)
    mask[where] = 1
    if weight is not None:
        slots = _unpack_slots(raw, slot_bits)
        per_row = lengths * 8 // slot_bits
        slot_at = np.arange(len(slots)) - np.repeat(np.concatenate(([0], np.cumsum(per_row)[:-1])), per_row)
        weight[where] = slots[slot_at < np.repeat(counts, per_row)]


def sparse_weight_bytes(mask: Any, depthwise: bool, tm: int, tn: int, bus_bytes: int, slot_bits: int) -> int:
    """Bytes of a conv's weights stored sparse."""
    return int(sparse_tile_sizes(mask, depthwise, tm, tn, bus_bytes, slot_bits).sum()) * bus_bytes


def _unpack_slots(raw: np.ndarray, slot_bits: int) -> np.ndarray:
    """`pack_weights` undone: signed slot values of bytes."""
    if slot_bits >= 8:
        return raw.view(f"<i{slot_bits // 8}").astype(np.int64)
    per = 8 // slot_bits
    fields = (raw.astype(np.int64)[:, None] >> (slot_bits * np.arange(per))) & ((1 << slot_bits) - 1)
    fields = fields.reshape(-1)
    return np.where(fields >= 1 << (slot_bits - 1), fields - (1 << slot_bits), fields)
