"""The RL engine's descriptor (128 bytes) and its modes.

Words 0..15 hold the fields below (little-endian 32-bit); 16-bit halves 32..47 hold `j_row`, 48..63
`j_blk` (the LFSR jump states of an UPDATE's rows and blocks). Counts, addresses in the on-chip banks
and stash word addresses are 16-bit fields; the DRAM address and the beat count 32-bit.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dtlgen.isa import ACTIVATION_CODES, Field, decode_words, encode_words

DESCRIPTOR_BYTES = 128
VALUE_BYTES = 2  # every RL value is a 16-bit word in DRAM and on the bus (LOAD / STORE beats count them)
MODES = {"LOAD_A": 1, "LOAD_G": 2, "STORE_A": 3, "FWD": 4, "BWD_DATA": 5, "UPDATE": 6, "LOAD_P": 7, "STORE_P": 8,
         "LOAD_M": 9, "MAXPOOL": 10, "MAXPOOL_BWD": 11}
# Pruning masks (issue 19): LOAD_P sets the mask bit of every weight it loads; LOAD_M then loads `n` mask tiles
# from tile 0, each tile's TM*TN bits (bit e = PE e, the weight tile's order) packed least significant bit
# first and padded to whole beats (`mask_tile_beats`); UPDATE writes 0 where a weight's bit is 0. An engine
# built without masks (HAS_MASK 0) takes no LOAD_M (the host refuses it).
FIELD_MAX = 0xFFFF  # the 16-bit fields' largest value
JUMP_HALVES = 16  # entries of j_row and of j_blk
# Stochastic rounding's 16-bit Galois LFSR, x^16 + x^14 + x^13 + x^11 + 1 (DESIGN.md §5): rl_engine.sv's
# LFSR_MASK parameter, the golden model's and the C++ engine's (dtlgen.quant.fixed steps it).
LFSR_MASK = 0xB400
# The shifts the engine's arithmetic takes (rl_engine.sv, "Output arithmetic": its requantiser's input is an
# accumulator plus a bias shifted left by up to 31): a requantisation's or an UPDATE's shift, the bias
# alignment. The UPDATE datapath is ACC_BITS + UPDATE_EXTRA_BITS wide and holds the step for every
# learning rate 2^-lr_shift up to LR_SHIFT_MAX.
SHIFT_RANGE = (-31, 127)
BIAS_ALIGN_RANGE = (0, 31)
UPDATE_EXTRA_BITS = 32
LR_SHIFT_MAX = 30
ACC_BITS_MAX = 64  # the widest accumulator an RL engine is built with (design.json's rl.acc_bits)
__all__ = ["ACC_BITS_MAX", "mask_tile_beats", "update_tiles", "ACTIVATION_CODES", "BIAS_ALIGN_RANGE", "DESCRIPTOR_BYTES", "FIELDS", "MODES", "SHIFT_RANGE", "VALUE_BYTES",
           "decode", "encode", "shift_problems"]

# Windowed GEMMs (issue 20): a descriptor with k >= 1 walks a K×K window per GEMM row, tap-major
# (`dtlgen.quant.ops.im2col_rows`): the X operand's row (FWD, UPDATE: the A stash; BWD_DATA: dY in the G stash,
# the flipped kernel's transposed conv) is the window's tap (kr, kc) of output position (b, r, c) in an
# hi×wi input grid, zero where the tap falls outside it; row_pitch and img_step are that grid's words per
# row and per image, tap_nt the tiles of the reduction walked per tap (FWD, UPDATE: n-tiles; BWD_DATA:
# m-tiles), tap_step the weight tiles from one tap to the next (negative: BWD_DATA runs the taps flipped),
# m_step the weight tiles per m-tile row. k = 0: a plain GEMM (rows walk at pitch_n / pitch_m).
# MAXPOOL and MAXPOOL_BWD (kernel = stride = k <= 2, pad 0, hi = ro k, wi = co k) walk the same window, one tap an
# issue for TN channels a lane: m = n the channels, mt the issues per window (k*k; MAXPOOL_BWD 2 k*k: two passes
# over the taps), tap_nt 1, rows the output positions, row_pitch / img_step at pitch_n; no weights, shifts 0.
WINDOW_GRID_MAX = 255  # hi, wi, ro, co are 8-bit fields
WINDOW_K_MAX = 7
FIELDS = (
    Field("mode", 0, 0, 4), Field("act", 0, 4, 2), Field("background", 0, 6, 1),
    Field("k", 0, 8, 3), Field("stride", 0, 11, 2), Field("pad", 0, 13, 3), Field("six", 0, 16, 16, signed=True),
    Field("m", 1, 0, 16), Field("n", 1, 16, 16), Field("rows", 2, 0, 16), Field("seed", 2, 16, 16),
    Field("xa", 3, 0, 16), Field("ya", 3, 16, 16), Field("gy", 4, 0, 16), Field("gx", 4, 16, 16),
    Field("wbase", 5, 0, 16), Field("bbase", 5, 16, 16), Field("dram", 6, 0, 32),
    Field("shift0", 7, 0, 8, signed=True), Field("shift1", 7, 8, 8, signed=True),
    Field("shift2", 7, 16, 8, signed=True), Field("shift3", 7, 24, 8, signed=True),
    Field("mt", 8, 0, 16), Field("nt", 8, 16, 16), Field("nta", 9, 0, 16), Field("pitch_n", 9, 16, 16),
    Field("pitch_m", 10, 0, 16), Field("beats", 11, 0, 32),
    Field("tap_nt", 12, 0, 16), Field("tap_step", 12, 16, 16, signed=True),
    Field("hi", 13, 0, 8), Field("wi", 13, 8, 8), Field("ro", 13, 16, 8), Field("co", 13, 24, 8),
    Field("row_pitch", 14, 0, 16), Field("img_step", 14, 16, 16), Field("m_step", 15, 0, 16),
)


def encode(mode: str, j_row: Sequence[int] = (), j_blk: Sequence[int] = (), **values: Any) -> bytes:
    """The descriptor's 128 bytes. `shifts` (up to four) fill shift0..shift3."""
    shifts = values.pop("shifts", ())
    values.update({f"shift{i}": s for i, s in enumerate(shifts)})
    words = encode_words(FIELDS, {"mode": MODES[mode], **values}, 16, f"RL {mode} descriptor")
    halves = np.zeros(DESCRIPTOR_BYTES // 2, dtype="<u2")
    halves[:32] = words.view("<u2")
    for base, table in ((32, j_row), (48, j_blk)):
        if len(table) > JUMP_HALVES:
            raise ValueError(f"RL {mode} descriptor: {len(table)} jump states, the descriptor holds {JUMP_HALVES}")
        halves[base:base + len(table)] = table
    return halves.tobytes()


def decode(raw: bytes) -> dict[str, Any]:
    """Field values of one descriptor's 128 bytes, with j_row and j_blk as lists."""
    halves = np.frombuffer(bytes(raw)[:DESCRIPTOR_BYTES], dtype="<u2")
    out: dict[str, Any] = decode_words(FIELDS, halves[:32].view("<u4"))
    out["j_row"] = [int(v) for v in halves[32:48]]
    out["j_blk"] = [int(v) for v in halves[48:64]]
    return out


def update_tiles(taps: int, nt: int, nta: int) -> int:
    """The n-tiles an UPDATE walks per m-tile row: every tap's nt n-tiles, the last tap's running on into the
    bias column (nta = ceil((N + 1) / TN) of them); a plain GEMM (taps 1) walks nta."""
    return (taps - 1) * nt + nta


def mask_tile_beats(tm: int, tn: int, bus_bytes: int) -> int:
    """Beats of one mask tile in DRAM (LOAD_M): tm*tn bits padded to whole beats."""
    return -(-tm * tn // (8 * bus_bytes))


def shift_problems(shifts: dict[str, int], acc_bits: int,
                   lr_shift: int | None = None) -> list[tuple[str, int, int | None, int]]:
    """(what, value, lowest, highest) of every shift of one layer's descriptors outside what the engine
    takes (lowest None: no lower limit), and the accumulator width beyond ACC_BITS_MAX. `shifts`: out_shift, bias_align, dx_shift, dw_shift, db_shift,
    w_step_frac, b_step_frac (dtlgen.quant.quantize.rl_shifts); `acc_bits` the engine's accumulators
    (the update step must leave LR_SHIFT_MAX bits of the acc_bits + UPDATE_EXTRA_BITS-bit update
    datapath); with `lr_shift`, the UPDATE's shifts lr_shift + step too."""
    step_max = acc_bits + UPDATE_EXTRA_BITS - 1 - LR_SHIFT_MAX
    limits = [("output requantisation shift", shifts["out_shift"], *SHIFT_RANGE),
              ("bias alignment shift", shifts["bias_align"], *BIAS_ALIGN_RANGE),
              ("BWD_DATA requantisation shift", shifts["dx_shift"], *SHIFT_RANGE),
              ("dW requantisation shift", shifts["dw_shift"], *SHIFT_RANGE),
              ("db requantisation shift", shifts["db_shift"], *SHIFT_RANGE),
              ("weight update step", shifts["w_step_frac"], None, step_max),
              ("bias update step", shifts["b_step_frac"], None, step_max)]
    if lr_shift is not None:
        limits += [("weight update shift", lr_shift + shifts["w_step_frac"], *SHIFT_RANGE),
                   ("bias update shift", lr_shift + shifts["b_step_frac"], *SHIFT_RANGE)]
    limits.append(("accumulator width (bits)", acc_bits, None, ACC_BITS_MAX))
    return [(what, value, lo, hi) for what, value, lo, hi in limits
            if value > hi or (lo is not None and value < lo)]
