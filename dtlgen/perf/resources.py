"""Resource arithmetic shared by both engines: DSP packing, memories, LUT/FF coefficients.

What is exact and what is an estimate:
- DSP counts are exact for the array as the RTL instantiates it: one multiplier per DSP, or, in the
  FE array on a Xilinx DSP48E1 / DSP48E2, two products that share their activation per DSP (Xilinx
  WP486, "Deep Learning with INT8 Optimization on Xilinx Devices": one multiply of
  (w_hi << PS) + w_lo by a, fe_engine.sv's PACK) when the packed operand fits the DSP's A port. The
  count of DSPs Vivado would use is not measured here; yosys's synth_xilinx maps the packed array to
  one DSP48E1 per lane pair and column (tests/sim/test_synth.py, -m slow). No other packing is claimed (the RL array none).
- Block RAM counts follow the aspect ratios of a RAMB18 / DP16KD (16K×1, 8K×2, 4K×4, 2K×9,
  1K×18, 512×36; both primitives offer the same set); a memory of at most `LUTRAM_MAX_DEPTH`
  words goes to distributed RAM instead, whatever its width (as synthesis tools map shallow
  memories), so growing an array never moves a buffer between the two kinds.
- LUT and FF figures are ESTIMATES from per-unit coefficients (`COEFFICIENTS` below): first-order
  counts of a textbook implementation (an n×m LUT multiplier ≈ n·m partial-product LUTs on LUT6,
  twice that on LUT4; one LUT per adder bit; registers where the pipeline has them), plus a fixed
  control/interface overhead. They are to be calibrated against yosys/nextpnr post-route results
  (the ECP5 open flow of a later issue); until then treat them as ±30 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dtlgen.boards import Board

# Memory aspect ratios (depth, width) common to Xilinx RAMB18 and Lattice DP16KD.
BRAM_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
LUTRAM_MAX_DEPTH = 64  # memories this shallow go to distributed RAM (one LUT per bit column per 64 words)

# Per-unit LUT/FF estimates by LUT kind; see the module docstring.
COEFFICIENTS = {
    "LUT6": {"lut_per_mult_bit2": 1.0, "lut_per_adder_bit": 1.0, "lutram_bits_per_lut": 64,
             "fe_control_lut": 2500, "fe_control_ff": 3000, "rl_control_lut": 2000, "rl_control_ff": 2500},
    "LUT4": {"lut_per_mult_bit2": 2.0, "lut_per_adder_bit": 1.0, "lutram_bits_per_lut": 16,
             "fe_control_lut": 3500, "fe_control_ff": 3000, "rl_control_lut": 3000, "rl_control_ff": 2500},
}


@dataclass(frozen=True)
class ResourceUse:
    """Resources of one engine (or of both, added)."""

    dsp: int = 0
    bram18: int = 0
    lut: int = 0
    ff: int = 0

    def __add__(self, other: "ResourceUse") -> "ResourceUse":
        return ResourceUse(self.dsp + other.dsp, self.bram18 + other.bram18, self.lut + other.lut, self.ff + other.ff)

    def utilisation(self, board: Board) -> dict[str, float]:
        r = board.resources
        return {"dsp": self.dsp / r.dsp, "bram18": self.bram18 / r.bram18, "lut": self.lut / r.lut, "ff": self.ff / r.ff}

    def fits(self, board: Board) -> bool:
        return all(v <= 1.0 for v in self.utilisation(board).values())

    def to_dict(self) -> dict[str, int]:
        return {"dsp": self.dsp, "bram18": self.bram18, "lut": self.lut, "ff": self.ff}


DSP_A_PORT = {"DSP48E1": 25, "DSP48E2": 27}  # the multiplier's wide input (after the pre-adder), bits


def dsp_packing(board: Board, a_bits: int, w_bits: int) -> int:
    """Products per DSP for w-bit weights against one a-bit activation: 2 when (w_hi << (a + w)) + w_lo
    (2w + a + 1 bits signed) fits the A port of a DSP48E1 (25 bits) or DSP48E2 (27) and a the B port
    (18), else 1 (an ECP5 MULT18X18D is 18×18: never)."""
    port = DSP_A_PORT.get(board.dsp_kind, 0)
    return 2 if 2 * w_bits + a_bits + 1 <= port and a_bits <= 18 else 1


def dsps_per_mult(board: Board, a_bits: int, b_bits: int) -> int:
    """DSPs for one multiplier too wide for one DSP (DSP48E1/E2 25×18 or 27×18, MULT18X18D 18×18)."""
    wide, narrow = max(a_bits, b_bits), min(a_bits, b_bits)
    limits = {"DSP48E1": (25, 18), "DSP48E2": (27, 18), "MULT18X18D": (18, 18)}[board.dsp_kind]
    return 1 if wide <= limits[0] and narrow <= limits[1] else 4


def lut_mult_cost(board: Board, a_bits: int, b_bits: int) -> int:
    """LUTs of one a×b multiplier built in fabric (estimate)."""
    return math.ceil(COEFFICIENTS[board.lut_kind]["lut_per_mult_bit2"] * a_bits * b_bits)


def memory_blocks(depth: int, width: int) -> int:
    """Block RAMs (RAMB18 / DP16KD) for a depth × width memory, best aspect ratio; 0 if it belongs in LUTRAM."""
    if depth <= LUTRAM_MAX_DEPTH or width <= 0:
        return 0
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM_SHAPES)


def memory_luts(board: Board, depth: int, width: int) -> int:
    """LUTs of a memory small enough for distributed RAM (0 when it maps to block RAM)."""
    if memory_blocks(depth, width) or depth <= 0:
        return 0
    return math.ceil(depth / COEFFICIENTS[board.lut_kind]["lutram_bits_per_lut"]) * width


def banked_memory(board: Board, banks: int, depth: int, width: int) -> ResourceUse:
    """`banks` independent memories of depth × width (each bank is its own block, read in parallel)."""
    return ResourceUse(bram18=banks * memory_blocks(depth, width), lut=banks * memory_luts(board, depth, width))


def _adder_tree_bits(inputs: int, operand_bits: int) -> int:
    """Adder bits of a balanced tree over `inputs` operands: inputs − 1 adders, one bit wider per level."""
    total, remaining, level = 0, inputs, 0
    while remaining > 1:
        adders = remaining // 2
        total += adders * (operand_bits + level + 1)
        remaining -= adders
        level += 1
    return total


def packed_pairs(trees: int, tree_inputs: int, lut_mults: int) -> int:
    """Tree pairs (2j, 2j+1) that share their DSPs under packing (fe_engine.sv's PAIRS): those whose
    products (lane-major, q = tree * tree_inputs + input) all lie before the last `lut_mults`, which are
    built in fabric."""
    if tree_inputs < 2:
        return 0
    return min(trees // 2, (trees * tree_inputs - lut_mults) // (2 * tree_inputs))


def array_resources(board: Board, multipliers: int, lut_mults: int, a_bits: int, b_bits: int,
                    tree_inputs: int, trees: int, acc_bits: int, packing: int = 1) -> ResourceUse:
    """A multiplier array with `trees` adder trees of `tree_inputs` products and accumulators;
    `packing` 2: trees 2j and 2j+1 share one DSP per input (`packed_pairs`; the last tree alone when
    odd), and each pair's high product is recovered by a product-wide adder in fabric. The last
    `lut_mults` products are LUT multipliers (fe_engine.sv's LUT_MULTS, marked USE_DSP "no")."""
    coeff = COEFFICIENTS[board.lut_kind]
    dsp_mults = multipliers - lut_mults
    product_bits = a_bits + b_bits
    pairs = packed_pairs(trees, tree_inputs, lut_mults) if packing == 2 else 0
    dsp = (dsp_mults - pairs * tree_inputs) * dsps_per_mult(board, a_bits, b_bits)
    split = pairs * tree_inputs * product_bits
    tree_bits = trees * _adder_tree_bits(tree_inputs, product_bits)
    lut = (lut_mults * lut_mult_cost(board, a_bits, b_bits)
           + math.ceil(coeff["lut_per_adder_bit"] * (tree_bits + trees * acc_bits + split)))
    # Registers: operands, products, each tree level, accumulators.
    ff = multipliers * (a_bits + b_bits + product_bits) + tree_bits + trees * acc_bits
    return ResourceUse(dsp=dsp, lut=lut, ff=ff)
