"""The numerics rules of DESIGN.md §5, in one place: every implementation reads them from here.

The golden model calls these functions on numpy int64 arrays; the HLS and RTL generators read
the same constants (exp table, rounding conventions) from here when they emit code. The LFSR mask
is a parameter of the RL engine: it is defined with the engine's spec (`dtlgen.isa.rl`), which the
engines' parameter record hands to the RTL and the HLS header, and stepped here.
A rule written a second time elsewhere is a bug waiting.

Conventions:
- `Q(bits, frac)`: two's complement, value = integer · 2^-frac.
- float → fixed: round half away from zero, then saturate.
- requantise by `s` bits: `sat((acc + (1 << (s-1))) >> s)` with an arithmetic shift, i.e. round
  half up (toward +inf); `s = 0` is saturation only; `s < 0` is an exact left shift, then saturation.
- stochastic rounding: `(v + (r mod 2^s)) >> s` with r from the 16-bit Galois LFSR (mask 0xB400);
  for s > 16 the 16 random bits are the top bits of the s-bit rounding term. An UPDATE consumes
  the LFSR in row-major order of the augmented matrix [W | b] (the bias is column N).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from dtlgen.isa.rl import LFSR_MASK  # the RL engine's polynomial, defined with its spec (Galois form)

LFSR_BITS = 16
EXP_TABLE_BITS = 8  # 2^(k/256) table: the fractional part of the exponent to 8 bits
EXP_FRAC = 16  # the table's entries and the softmax numerators are Q(.,16)
LOG2E_FRAC = 16
LOG2E_Q = 94548  # round(log2(e) · 2^16)
EXP2_TABLE = tuple(int(round(2.0 ** (k / 2 ** EXP_TABLE_BITS) * 2 ** EXP_FRAC)) for k in range(2 ** EXP_TABLE_BITS))
FLOAT_EXACT_LIMIT = 2 ** 53  # integer sums below this are exact in float64 BLAS


@dataclass(frozen=True)
class QFormat:
    """Two's complement fixed point Q(bits, frac)."""

    bits: int
    frac: int

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def step(self) -> float:
        return 2.0 ** -self.frac

    def to_dict(self) -> dict[str, int]:
        return {"bits": self.bits, "frac": self.frac}


def saturate(values, bits: int) -> np.ndarray:
    """Clamp integers to the signed `bits`-bit range."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.asarray(values, dtype=np.int64), lo, hi)


def to_fixed(values, fmt: QFormat) -> np.ndarray:
    """Float → fixed: round half away from zero, saturate."""
    # Clip far outside any format first so that ±inf saturates without NaN from inf − trunc(inf).
    scaled = np.clip(np.asarray(values, dtype=np.float64) * (2.0 ** fmt.frac), -2.0 ** 62, 2.0 ** 62)
    whole = np.trunc(scaled)
    # Half away from zero, exactly: x − trunc(x) is exact in float64, x + 0.5 is not.
    rounded = whole + np.where(np.abs(scaled - whole) >= 0.5, np.sign(scaled), 0.0)
    return np.clip(rounded, fmt.min_int, fmt.max_int).astype(np.int64)


def to_float(values, frac: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64) * (2.0 ** -frac)


def requantise(acc, shift: int, bits: int) -> np.ndarray:
    """Requantise an accumulator by `shift` bits to a `bits`-bit result (DESIGN.md §5)."""
    acc = np.asarray(acc, dtype=np.int64)
    if shift > 0:
        # floor((acc + 2^(s-1)) / 2^s) without forming the sum, which could overflow int64
        acc = (acc >> shift) + ((acc >> (shift - 1)) & 1)
    elif shift < 0:
        # Clip first to just beyond what the shift maps into range: values further out saturate
        # anyway, and the shift can then never wrap int64.
        k = -shift
        if k >= bits:  # every non-zero value leaves the range
            acc = np.sign(acc) * (1 << (bits - 1))
        else:
            edge = 1 << (bits - 1 - k)
            acc = np.clip(acc, -edge - 1, edge) << k
    return saturate(acc, bits)


def align(values, from_frac: int, to_frac: int) -> np.ndarray:
    """Exact change of fractional bits upward (a left shift); callers guarantee to_frac ≥ from_frac."""
    if to_frac < from_frac:
        raise ValueError(f"align would lose bits: frac {from_frac} -> {to_frac}")
    return np.asarray(values, dtype=np.int64) << (to_frac - from_frac)


MAX_FRAC = 48  # fractional bits of the finest format (project files accept up to 64)


def frac_for_range(max_abs: float, bits: int, headroom_bits: int = 0) -> int:
    """Fractional bits that hold ±max_abs in `bits` bits with `headroom_bits` spare integer bits.

    Integer bits (excluding sign) = floor(log2(max_abs)) + 1, so max_abs itself fits; a zero
    tensor gets all bits fractional. At most MAX_FRAC fractional bits: a tensor smaller than that
    scale rounds to zeros, as a zero tensor would (a subnormal range once overflowed here).
    """
    if max_abs <= 0 or not math.isfinite(max_abs):
        return bits - 1
    int_bits = math.floor(math.log2(max_abs)) + 1
    frac = bits - 1 - int_bits - headroom_bits
    if frac >= MAX_FRAC:
        return MAX_FRAC
    # max_abs just below a power of two can round up to 2^(bits-1) and saturate: one bit less then.
    if int(to_fixed(max_abs, QFormat(64, frac + headroom_bits))) > (1 << (bits - 1)) - 1:
        frac -= 1
    return frac


def product_sum_bits(terms: int, a_bits: int, b_bits: int) -> int:
    """Bits that hold any sum of `terms` products of signed a_bits × b_bits integers.

    The largest product magnitude is 2^(a-1)·2^(b-1) (both operands at their minimum), so
    |sum| ≤ terms · 2^(a+b-2): that needs bit_length(terms) + a + b - 2 magnitude bits, plus a sign.
    """
    return terms.bit_length() + a_bits + b_bits - 1


def accumulator_bits(terms: int, a_bits: int, b_bits: int) -> int:
    """Accumulator width for a product sum plus a bias saturated to the product-sum range.

    The bias is stored saturated to ±(2^(p-1) - 1) where p = product_sum_bits, so
    |sum + bias| < 2^p and one more bit than the product sum can never overflow.
    """
    return product_sum_bits(terms, a_bits, b_bits) + 1


def exact_matmul(a: np.ndarray, b: np.ndarray, bound_bits: int) -> np.ndarray:
    """Integer matrix product, exact. Uses float64 BLAS when every partial sum is below 2^53.

    `bound_bits` is the proven width of the result (as from `accumulator_bits`); float64 holds
    every integer partial sum exactly below 2^53, whatever the summation order.
    """
    if bound_bits <= 53:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


# --- stochastic rounding -----------------------------------------------------------------------
def lfsr_step(state: int) -> int:
    """One step of the 16-bit Galois LFSR (mask 0xB400). State 0 is a fixed point: never seed 0."""
    lsb = state & 1
    state >>= 1
    if lsb:
        state ^= LFSR_MASK
    return state


def lfsr_sequence(seed: int, count: int) -> np.ndarray:
    """The `count` states after successive steps from `seed` (the first output is one step on)."""
    if not 0 < seed < (1 << LFSR_BITS):
        raise ValueError(f"LFSR seed {seed} must be in 1..65535")
    out = np.empty(count, dtype=np.int64)
    state = seed
    period = (1 << LFSR_BITS) - 1  # maximal-length: the sequence repeats after 65535 steps
    head = min(count, period)
    for i in range(head):
        state = lfsr_step(state)
        out[i] = state
    if count > period:
        out[period:] = np.resize(out[:period], count - period)
    return out


def lfsr_seed(step: int, layer_index: int) -> int:
    """Seed of an UPDATE descriptor: a fixed, non-zero function of training step and layer."""
    return 1 + (step * 40503 + layer_index * 12345 + 7) % ((1 << LFSR_BITS) - 1)


def lfsr_jump_matrix(steps: int) -> tuple[int, ...]:
    """A^steps over GF(2), A one LFSR step, as 16 row masks: bit r of the jumped state is the
    parity of (row r & state). The hardware jumps row-start states with these (the period is 65535)."""
    def apply(rows: tuple[int, ...], v: int) -> int:
        return sum(((bin(rows[r] & v).count("1") & 1) << r) for r in range(LFSR_BITS))

    def compose(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:  # a after b
        columns = [apply(a, apply(b, 1 << c)) for c in range(LFSR_BITS)]
        return tuple(sum(((columns[c] >> r) & 1) << c for c in range(LFSR_BITS)) for r in range(LFSR_BITS))

    step_columns = [lfsr_step(1 << c) for c in range(LFSR_BITS)]
    power = tuple(sum(((step_columns[c] >> r) & 1) << c for c in range(LFSR_BITS)) for r in range(LFSR_BITS))
    result = tuple(1 << r for r in range(LFSR_BITS))
    k = steps % ((1 << LFSR_BITS) - 1)
    while k:
        if k & 1:
            result = compose(power, result)
        power = compose(power, power)
        k >>= 1
    return result


def lfsr_jump(rows: tuple[int, ...], state: int) -> int:
    return sum(((bin(rows[r] & state).count("1") & 1) << r) for r in range(LFSR_BITS))


def stochastic_round_shift(values, shift: int, random: np.ndarray) -> np.ndarray:
    """(v + rounding term) >> shift, the term drawn from 16-bit LFSR states (no saturation here)."""
    values = np.asarray(values, dtype=np.int64)
    if shift <= 0:
        return values << (-shift)
    random = np.asarray(random, dtype=np.int64)
    if shift <= LFSR_BITS:
        return (values + (random & ((1 << shift) - 1))) >> shift
    # The term is random << (shift - 16): floor((v + r·2^j) / 2^(j+16)) = floor((floor(v / 2^j) + r) / 2^16),
    # which never forms v + r·2^j (it overflows int64 from shift ≈ 47 on).
    return ((values >> (shift - LFSR_BITS)) + random) >> LFSR_BITS


# --- softmax cross-entropy gradient (host side, integer only) -----------------------------------
def exp_neg_fixed(z: np.ndarray, z_frac: int) -> np.ndarray:
    """exp(z) for z ≤ 0 in Q(z_frac) → Q(., EXP_FRAC) using only integer operations.

    exp(z) = 2^(z·log2 e): t = z·LOG2E rounded to Q(16); the integer part shifts, the top
    EXP_TABLE_BITS of the fraction index the 2^(k/256) table.
    """
    z = np.asarray(z, dtype=np.int64)
    t = requantise(z * LOG2E_Q, z_frac + LOG2E_FRAC - EXP_FRAC, 63)  # Q(16), ≤ 0
    int_part = t >> EXP_FRAC  # floor, ≤ 0
    frac_part = t - (int_part << EXP_FRAC)  # 0 .. 2^16-1
    index = frac_part >> (EXP_FRAC - EXP_TABLE_BITS)
    mantissa = np.asarray(EXP2_TABLE, dtype=np.int64)[index]
    shift = np.minimum(-int_part, 62)
    return (mantissa + ((np.int64(1) << shift) >> 1)) >> shift


def softmax_fixed(logits: np.ndarray, logit_frac: int, out_frac: int) -> np.ndarray:
    """softmax(Y) per row of `logits` (B × classes) in Q(., out_frac), integer only.

    p = round(e_i · 2^out_frac / Σe) with round half up by integer division; Σe ≥ 2^16 because the
    row maximum contributes exp(0) = 2^16, so the division is always defined. softmax(Y / 2^t) is
    the same integers read with logit_frac + t fraction bits.
    """
    logits = np.asarray(logits, dtype=np.int64)
    z = logits - logits.max(axis=1, keepdims=True)
    e = exp_neg_fixed(z, logit_frac)
    total = e.sum(axis=1, keepdims=True)
    return ((e << out_frac) + (total >> 1)) // total


def softmax_ce_grad(logits: np.ndarray, labels: np.ndarray, logit_frac: int, grad_fmt: QFormat) -> np.ndarray:
    """dY = softmax(Y) − onehot(labels) in `grad_fmt`, per row of `logits` (B × classes), integer only."""
    p = softmax_fixed(logits, logit_frac, grad_fmt.frac)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(labels)), np.asarray(labels)] = 1 << grad_fmt.frac
    return saturate(p - onehot, grad_fmt.bits)


KD_ALPHA_BITS = 8  # the distillation weight α in units of 2^-8
KD_MAX_T_SHIFT = 4  # temperatures 1, 2, 4, 8, 16
TEACHER_BITS = 32  # cached teacher logits: the student's logit fraction bits, a wider range (host side only)


def teacher_logits(logits, logit_frac: int) -> np.ndarray:
    """A teacher's float logits cached for the host: the student's logit fraction bits, TEACHER_BITS wide,
    so that a confident teacher's large logits keep their order (the student's 16-bit format would tie them)."""
    with np.errstate(over="ignore"):  # float64's largest values saturate, quietly
        return to_fixed(logits, QFormat(TEACHER_BITS, logit_frac))


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation's loss weights: α = alpha / 2^KD_ALPHA_BITS on the teacher's soft targets
    (1 − α on the labels' cross-entropy), temperature T = 2^t_shift."""

    alpha: int
    t_shift: int

    @classmethod
    def from_values(cls, alpha: float, temperature: float) -> Distillation:
        """α in [0, 1] (rounded to 2^-KD_ALPHA_BITS) and T a power of two from 1 to 2^KD_MAX_T_SHIFT;
        ValueError naming the value otherwise."""
        if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real) or not 0.0 <= real_or_nan(alpha) <= 1.0:
            raise ValueError(f"distillation alpha {alpha!r}: a number from 0 (labels only) to 1 (teacher only)")
        temps = [1 << t for t in range(KD_MAX_T_SHIFT + 1)]
        if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, numbers.Real) or \
                real_or_nan(temperature) not in temps:
            raise ValueError(f"distillation temperature {temperature!r}: a power of two, one of "
                             f"{', '.join(map(str, temps))} (dividing the logits is then a change of fraction bits)")
        return cls(int(round(float(alpha) * (1 << KD_ALPHA_BITS))), temps.index(int(temperature)))

    @property
    def alpha_value(self) -> float:
        return self.alpha / (1 << KD_ALPHA_BITS)

    @property
    def temperature(self) -> int:
        return 1 << self.t_shift

    def to_dict(self) -> dict[str, float]:
        return {"alpha": self.alpha_value, "temperature": self.temperature}


def real_or_nan(value) -> float:
    """float(value), or NaN for a number beyond float's range (refused as out of range, not an OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return math.nan


def distillation_grad(logits: np.ndarray, labels: np.ndarray, teacher: np.ndarray, logit_frac: int,
                      grad_fmt: QFormat, kd: Distillation) -> np.ndarray:
    """dY of (1 − α)·CE(Y, labels) + α·T²·KL(softmax(Z/T) ‖ softmax(Y/T)) in `grad_fmt`, integer only:
    (1 − α)(softmax(Y) − onehot) + α·T·(softmax(Y/T) − softmax(Z/T)), with Z the teacher's logits in
    the student's logit fraction bits (`teacher_logits`). Both softmaxes at T are `softmax_fixed` with
    t_shift more fraction bits; the sum is weighted in units of 2^-KD_ALPHA_BITS, rounded half up, then
    saturated to `grad_fmt`: the term reaches (1 - α) + α·T where cross-entropy's stays within ±1, so with
    the RL engine's ±2 gradient format (Q(b, b - 2)) a large α·T saturates the entries that far apart."""
    ce = softmax_ce_grad(logits, labels, logit_frac, grad_fmt)
    soft = softmax_fixed(logits, logit_frac + kd.t_shift, grad_fmt.frac) - \
        softmax_fixed(teacher, logit_frac + kd.t_shift, grad_fmt.frac)
    one = 1 << KD_ALPHA_BITS
    mixed = (one - kd.alpha) * ce + kd.alpha * (soft << kd.t_shift)
    return saturate((mixed + (one >> 1)) >> KD_ALPHA_BITS, grad_fmt.bits)


def avg_pool_scale(count: int) -> tuple[int, int]:
    """(multiplier, shift) with multiplier / 2^shift ≈ 1/count for an average over `count` values.

    A power-of-two count is an exact shift (multiplier 1); otherwise a 16-bit reciprocal.
    """
    if count & (count - 1) == 0:
        return 1, count.bit_length() - 1
    shift = 15 + math.ceil(math.log2(count))
    return int(round((1 << shift) / count)), shift
