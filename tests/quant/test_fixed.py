"""dtlgen.quant.fixed against independent references (Python ints and fractions.Fraction).

None of the references below reuse the module's own formulas: rounding is done on exact
rationals, shifts are floor divisions of Python ints, the LFSR mask is rebuilt from the
polynomial's exponents, the softmax is float64 numpy.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dtlgen.quant import fixed
from dtlgen.quant.fixed import QFormat

FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# --- independent references ---------------------------------------------------------------------
def int_range(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def clamp(v: int, bits: int) -> int:
    lo, hi = int_range(bits)
    return max(lo, min(hi, v))


def ref_round_half_away(q: Fraction) -> int:
    """Round an exact rational half away from zero."""
    n = math.floor(abs(q) + Fraction(1, 2))
    return n if q >= 0 else -n


def ref_to_fixed(x: float, bits: int, frac: int) -> int:
    return clamp(ref_round_half_away(Fraction(x) * Fraction(2) ** frac), bits)


def ref_requantise(acc: int, s: int, bits: int) -> int:
    if s > 0:
        v = (acc + 2 ** (s - 1)) // 2 ** s  # Python // is floor division on exact ints
    elif s < 0:
        v = acc * 2 ** (-s)
    else:
        v = acc
    return clamp(v, bits)


def fits(value: int, bits: int) -> bool:
    lo, hi = int_range(bits)
    return lo <= value <= hi


# The LFSR polynomial x^16 + x^14 + x^13 + x^11 + 1 in Galois (right-shift) form: the feedback
# mask has bit (e - 1) set for every non-constant term x^e.
POLY_EXPONENTS = (16, 14, 13, 11)
REF_MASK = sum(1 << (e - 1) for e in POLY_EXPONENTS)
PERIOD = 2 ** 16 - 1


def ref_lfsr_step(state: int) -> int:
    out = state & 1
    state >>= 1
    return state ^ REF_MASK if out else state


@pytest.fixture(scope="module")
def lfsr_cycle() -> list[int]:
    """The 65535 states after successive steps from seed 1 (reference implementation)."""
    states, s = [], 1
    for _ in range(PERIOD):
        s = ref_lfsr_step(s)
        states.append(s)
    return states


# --- to_fixed / to_float ---------------------------------------------------------------------------
bits_st = st.integers(2, 24)
frac_st = st.integers(-4, 20)


@FAST
@given(bits=bits_st, frac=frac_st, k=st.integers(-(2 ** 25), 2 ** 25), half=st.booleans())
def test_to_fixed_exact_halves_round_away_from_zero(bits, frac, k, half):
    # x = (k + 1/2) · 2^-frac exactly (or k · 2^-frac): a tie, or a representable value
    q = Fraction(k) + (Fraction(1, 2) if half else 0)
    x = float(q / Fraction(2) ** frac)
    assert Fraction(x) == q / Fraction(2) ** frac
    got = fixed.to_fixed(np.array([x, -x]), QFormat(bits, frac))
    assert got.dtype == np.int64
    assert got.tolist() == [ref_to_fixed(x, bits, frac), ref_to_fixed(-x, bits, frac)]


@pytest.mark.parametrize("q,expected", [(Fraction(1, 2), 1), (Fraction(-1, 2), -1), (Fraction(3, 2), 2),
                                        (Fraction(-3, 2), -2), (Fraction(5, 2), 3), (Fraction(-5, 2), -3),
                                        (Fraction(-7, 2), -4), (Fraction(49, 100), 0), (Fraction(-51, 100), -1)])
@pytest.mark.parametrize("frac", [-4, 0, 3, 20])
def test_to_fixed_hand_picked_ties(q, expected, frac):
    x = float(q / Fraction(2) ** frac)
    assert int(fixed.to_fixed(x, QFormat(16, frac))) == expected


@pytest.mark.filterwarnings("ignore:overflow encountered in multiply")  # huge x · 2^frac → inf → saturates
@FAST
@given(bits=bits_st, frac=frac_st, x=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_to_fixed_matches_exact_reference_on_any_float(bits, frac, x):
    assert int(fixed.to_fixed(x, QFormat(bits, frac))) == ref_to_fixed(x, bits, frac)


@FAST
@given(bits=bits_st, frac=frac_st, k=st.integers(-3, 3) | st.integers(-(2 ** 26), 2 ** 26), inward=st.booleans())
def test_to_fixed_one_ulp_off_a_tie(bits, frac, k, inward):
    # x · 2^frac is the float next to the tie k/2, toward zero or away from it
    scaled = math.nextafter(k / 2, 0.0 if inward else math.copysign(math.inf, k))
    x = scaled * 2.0 ** -frac  # exact: a power-of-two scale of a normal float
    assert int(fixed.to_fixed(x, QFormat(bits, frac))) == ref_to_fixed(x, bits, frac)


@FAST
@given(bits=bits_st, frac=frac_st, data=st.data())
def test_to_fixed_near_range_ends_and_beyond(bits, frac, data):
    lo, hi = int_range(bits)
    # integers around both ends, as values and as values ± a fraction of an LSB
    k = data.draw(st.sampled_from([lo - 3, lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, hi + 7]))
    off = data.draw(st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(-1, 2), Fraction(1, 4), Fraction(-3, 4)]))
    x = float((k + off) / Fraction(2) ** frac)
    assert int(fixed.to_fixed(x, QFormat(bits, frac))) == ref_to_fixed(x, bits, frac)


@pytest.mark.parametrize("bits,frac", [(2, 0), (8, 3), (16, -4), (24, 20)])
def test_to_fixed_saturates_at_both_ends(bits, frac):
    lo, hi = int_range(bits)
    big = [1e30, -1e30, np.inf, -np.inf, (hi + 0.5) * 2.0 ** -frac, (lo - 0.5) * 2.0 ** -frac,
           (hi + 0.49) * 2.0 ** -frac, (lo - 0.49) * 2.0 ** -frac]
    assert fixed.to_fixed(big, QFormat(bits, frac)).tolist() == [hi, lo, hi, lo, hi, lo, hi, lo]


@pytest.mark.parametrize("frac", [0, 7, -3])
def test_to_fixed_just_below_half_rounds_to_zero(frac):
    # regression: floor(|x| + 0.5) in float64 rounds 0.5 - 2^-54 up to 1
    x = math.nextafter(0.5, 0.0) * 2.0 ** -frac  # 0.49999999999999994 LSB: strictly below the tie
    assert ref_to_fixed(x, 8, frac) == 0 and ref_to_fixed(-x, 8, frac) == 0
    assert fixed.to_fixed([x, -x], QFormat(8, frac)).tolist() == [0, 0]


@FAST
@given(bits=bits_st, frac=frac_st, data=st.data())
def test_to_float_inverts_to_fixed_on_representable_values(bits, frac, data):
    lo, hi = int_range(bits)
    ks = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=8)) + [lo, hi, 0]
    values = fixed.to_float(np.array(ks), frac)
    assert [Fraction(v) for v in values.tolist()] == [k / Fraction(2) ** frac for k in ks]
    assert fixed.to_fixed(values, QFormat(bits, frac)).tolist() == ks


def test_qformat_limits():
    for bits in range(2, 33):
        f = QFormat(bits, 3)
        assert (f.min_int, f.max_int) == int_range(bits)
        assert f.step == 2.0 ** -3


# --- frac_for_range ------------------------------------------------------------------------------------
def _near_power_of_two(m: float) -> bool:
    return abs(m / 2.0 ** round(math.log2(m)) - 1.0) < 1e-9


@FAST
@given(m=st.floats(1e-6, 1e6), bits=st.integers(2, 24), headroom=st.integers(0, 2))
def test_frac_for_range_is_the_finest_frac_whose_range_holds_max_abs(m, bits, headroom):
    assume(not _near_power_of_two(m))  # log2 of 2^k - ulp may round up to k: a wasted bit, not an error
    frac = fixed.frac_for_range(m, bits, headroom)
    assert frac == fixed.frac_for_range(m, bits) - headroom
    max_int = 2 ** (bits - 1) - 1

    def rounded(f):  # m in Q(., f), rounded half away from zero
        return math.floor(Fraction(m) * Fraction(2) ** f + Fraction(1, 2))

    assert rounded(frac + headroom) <= max_int  # m fits after rounding, with headroom bits spare
    assert rounded(frac + headroom + 1) > max_int  # one frac bit more would saturate


@pytest.mark.parametrize("bad", [0.0, -0.0, math.inf, math.nan])
def test_frac_for_range_of_empty_or_nonfinite_is_all_fraction(bad):
    assert fixed.frac_for_range(bad, 16) == 15


@pytest.mark.parametrize("m,bits", [(0.999, 8), (1.999, 8), (127.9, 8), (0.99999, 16)])
def test_frac_for_range_max_abs_quantises_within_half_an_lsb(m, bits):
    frac = fixed.frac_for_range(m, bits)
    q = int(fixed.to_fixed(m, QFormat(bits, frac)))
    assert abs(Fraction(q) / Fraction(2) ** frac - Fraction(m)) <= Fraction(1, 2) / Fraction(2) ** frac


# --- requantise / saturate ----------------------------------------------------------------------
@FAST
@given(acc=st.integers(-(2 ** 46), 2 ** 46), s=st.integers(1, 40), bits=st.integers(2, 40))
def test_requantise_positive_shift_rounds_half_up_then_saturates(acc, s, bits):
    assert int(fixed.requantise(acc, s, bits)) == ref_requantise(acc, s, bits)


@FAST
@given(s=st.integers(1, 30), q=st.integers(-(2 ** 20), 2 ** 20), bits=st.integers(24, 40))
def test_requantise_ties_go_toward_plus_infinity(s, q, bits):
    acc = q * 2 ** s + 2 ** (s - 1)  # exactly q + 1/2 after the shift
    assert int(fixed.requantise(acc, s, bits)) == q + 1
    assert int(fixed.requantise(acc - 1, s, bits)) == q  # just below the tie
    assert int(fixed.requantise(-acc, s, bits)) == -q  # -(q + 1/2) → -q, not -q - 1


def test_requantise_hand_picked():
    acc = np.array([-3, -2, -1, 0, 1, 2, 3, 5, -5])
    assert fixed.requantise(acc, 1, 8).tolist() == [-1, -1, 0, 0, 1, 1, 2, 3, -2]
    assert fixed.requantise(acc, 0, 3).tolist() == [-3, -2, -1, 0, 1, 2, 3, 3, -4]
    assert fixed.requantise(acc, -2, 4).tolist() == [-8, -8, -4, 0, 4, 7, 7, 7, -8]


@FAST
@given(acc=st.lists(st.integers(-(2 ** 50), 2 ** 50), min_size=1, max_size=10), bits=st.integers(2, 52))
def test_requantise_zero_shift_is_clamp_only(acc, bits):
    assert fixed.requantise(np.array(acc), 0, bits).tolist() == [clamp(a, bits) for a in acc]


@FAST
@given(acc=st.integers(-(2 ** 30), 2 ** 30), s=st.integers(-31, -1), bits=st.integers(2, 40))
def test_requantise_negative_shift_is_exact_left_shift_then_clamp(acc, s, bits):
    assert int(fixed.requantise(acc, s, bits)) == ref_requantise(acc, s, bits)


@pytest.mark.parametrize("acc,s,bits", [(2 ** 40, -30, 16), (-(2 ** 40), -30, 16), (3, -62, 16), (1, -63, 24)])
def test_requantise_negative_shift_saturates_instead_of_wrapping(acc, s, bits):
    assert int(fixed.requantise(acc, s, bits)) == ref_requantise(acc, s, bits)


@pytest.mark.parametrize("acc,s,bits", [(2 ** 63 - 1, 1, 16), (2 ** 63 - 2 ** 9, 10, 63)])
def test_requantise_rounding_term_does_not_wrap(acc, s, bits):
    assert int(fixed.requantise(acc, s, bits)) == ref_requantise(acc, s, bits)


@pytest.mark.parametrize("bits", [2, 3, 8, 16, 24, 40, 63])
def test_saturate_edges(bits):
    lo, hi = int_range(bits)
    got = fixed.saturate([lo - 1, lo, lo + 1, 0, hi - 1, hi, hi + 1], bits)
    assert got.dtype == np.int64
    assert got.tolist() == [lo, lo, lo + 1, 0, hi - 1, hi, hi]


# --- accumulator widths and exact products ---------------------------------------------------------
TERMS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 25, 49, 64, 100, 128, 255, 256, 257, 576, 1024, 4608]


@pytest.mark.parametrize("terms", TERMS)
@pytest.mark.parametrize("a_bits,b_bits", [(2, 2), (4, 8), (8, 8), (8, 16), (16, 16), (24, 16)])
def test_product_sum_bits_holds_the_extremes_and_is_tight(terms, a_bits, b_bits):
    a_lo, a_hi = int_range(a_bits)
    b_lo, b_hi = int_range(b_bits)
    largest = terms * (a_lo * b_lo)  # every operand at its minimum
    most_negative = terms * min(a_lo * b_hi, a_hi * b_lo)
    # the extremes really are the extremes over every single product
    corner = [x * y for x in (a_lo, a_hi) for y in (b_lo, b_hi)]
    assert largest == terms * max(corner) and most_negative == terms * min(corner)
    p = fixed.product_sum_bits(terms, a_bits, b_bits)
    assert fits(largest, p) and fits(most_negative, p)
    assert not fits(largest, p - 1), f"product_sum_bits={p} is not tight for T={terms}"
    # an accumulator adds a bias saturated to the product-sum range, and is tight as well
    acc = fixed.accumulator_bits(terms, a_bits, b_bits)
    bias_lo, bias_hi = int_range(p)
    assert fits(largest + bias_hi, acc) and fits(most_negative + bias_lo, acc)
    assert not fits(largest + bias_hi, acc - 1)
    # the extreme sum as numpy computes it
    a = np.full(terms, a_lo, dtype=np.int64)
    b = np.full(terms, b_lo, dtype=np.int64)
    assert int(a @ b) == largest


@MEDIUM
@given(terms=st.integers(1, 300), a_bits=st.integers(2, 16), b_bits=st.integers(2, 16), data=st.data())
def test_random_product_sums_fit(terms, a_bits, b_bits, data):
    a_lo, a_hi = int_range(a_bits)
    b_lo, b_hi = int_range(b_bits)
    a = data.draw(st.lists(st.sampled_from([a_lo, a_hi, 0, 1, -1]) | st.integers(a_lo, a_hi), min_size=terms, max_size=terms))
    b = data.draw(st.lists(st.sampled_from([b_lo, b_hi, 0, 1, -1]) | st.integers(b_lo, b_hi), min_size=terms, max_size=terms))
    total = sum(x * y for x, y in zip(a, b))
    assert fits(total, fixed.product_sum_bits(terms, a_bits, b_bits))


def _object_matmul(a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    return [[sum(int(a[i, t]) * int(b[t, j]) for t in range(a.shape[1])) for j in range(b.shape[1])]
            for i in range(a.shape[0])]


def _int_matrix(draw, rows, cols, bits):
    lo, hi = int_range(bits)
    values = draw(st.lists(st.sampled_from([lo, hi]) | st.integers(lo, hi), min_size=rows * cols, max_size=rows * cols))
    return np.array(values, dtype=np.int64).reshape(rows, cols)


@MEDIUM
@given(data=st.data(), r=st.integers(1, 5), k=st.integers(1, 40), c=st.integers(1, 5),
       a_bits=st.integers(2, 24), b_bits=st.integers(2, 24))
def test_exact_matmul_float_path_is_exact(data, r, k, c, a_bits, b_bits):
    bound = fixed.accumulator_bits(k, a_bits, b_bits)
    assume(bound <= 53)
    a = _int_matrix(data.draw, r, k, a_bits)
    b = _int_matrix(data.draw, k, c, b_bits)
    got = fixed.exact_matmul(a, b, bound)
    assert got.dtype == np.int64
    assert got.tolist() == _object_matmul(a, b)


@MEDIUM
@given(data=st.data(), r=st.integers(1, 4), k=st.integers(1, 3), c=st.integers(1, 4),
       a_bits=st.integers(27, 31), b_bits=st.integers(27, 31))
def test_exact_matmul_int64_path_is_exact(data, r, k, c, a_bits, b_bits):
    bound = fixed.accumulator_bits(k, a_bits, b_bits)
    assert 53 < bound <= 64
    a = _int_matrix(data.draw, r, k, a_bits)
    b = _int_matrix(data.draw, k, c, b_bits)
    assert fixed.exact_matmul(a, b, bound).tolist() == _object_matmul(a, b)


def test_exact_matmul_above_2_53_is_not_rounded():
    # (2^30 + 1)^2 = 2^60 + 2^31 + 1 is odd and above 2^53: float64 would lose the +1
    a = np.array([[2 ** 30 + 1]], dtype=np.int64)
    bound = fixed.accumulator_bits(1, 32, 32)
    assert int(fixed.exact_matmul(a, a, bound)[0, 0]) == (2 ** 30 + 1) ** 2


# --- LFSR ------------------------------------------------------------------------------------------
def test_lfsr_mask_is_the_documented_polynomial():
    assert fixed.LFSR_MASK == REF_MASK == 0xB400


def test_lfsr_first_step_from_seed_1():
    assert fixed.lfsr_step(1) == 0xB400
    assert int(fixed.lfsr_sequence(1, 1)[0]) == 0xB400


def test_lfsr_is_maximal_length(lfsr_cycle):
    # every non-zero 16-bit state appears exactly once, and the cycle closes on the seed
    assert len(set(lfsr_cycle)) == PERIOD and 0 not in lfsr_cycle and max(lfsr_cycle) < 2 ** 16
    assert lfsr_cycle[-1] == 1
    # and the module's sequence is the reference's
    assert fixed.lfsr_sequence(1, PERIOD).tolist() == lfsr_cycle


@MEDIUM
@given(seed=st.integers(1, PERIOD), count=st.integers(1, 300))
def test_lfsr_from_any_seed_walks_the_same_cycle(lfsr_cycle, seed, count):
    start = lfsr_cycle.index(seed)
    expected = [lfsr_cycle[(start + 1 + i) % PERIOD] for i in range(count)]
    assert fixed.lfsr_sequence(seed, count).tolist() == expected
    state = seed
    for value in expected[:20]:
        state = fixed.lfsr_step(state)
        assert state == value


@pytest.mark.parametrize("seed", [1, 0xACE1, PERIOD])
def test_lfsr_period_is_exactly_65535(lfsr_cycle, seed):
    seq = fixed.lfsr_sequence(seed, PERIOD)
    assert int(seq[-1]) == seed  # back to the seed after 65535 steps
    assert seed not in seq[:-1].tolist()  # and not before


@pytest.mark.parametrize("bad", [0, -1, 2 ** 16, 2 ** 20])
def test_lfsr_rejects_bad_seeds(bad):
    with pytest.raises(ValueError):
        fixed.lfsr_sequence(bad, 4)


@pytest.mark.parametrize("seed", [1, 0x1234])
def test_lfsr_sequence_wraps_consistently(lfsr_cycle, seed):
    count = 2 * PERIOD + 777
    seq = fixed.lfsr_sequence(seed, count).tolist()
    start = lfsr_cycle.index(seed)
    assert seq == [lfsr_cycle[(start + 1 + i) % PERIOD] for i in range(count)]


def test_lfsr_seed_is_a_valid_nonzero_state():
    seeds = {fixed.lfsr_seed(step, layer) for step in range(0, 3000, 7) for layer in range(0, 40)}
    assert all(1 <= s <= PERIOD for s in seeds)
    assert len(seeds) > 1000  # different steps/layers get different streams
    assert fixed.lfsr_seed(5, 3) == fixed.lfsr_seed(5, 3)
    assert fixed.lfsr_seed(5, 3) != fixed.lfsr_seed(6, 3) and fixed.lfsr_seed(5, 3) != fixed.lfsr_seed(5, 4)


# --- stochastic rounding ---------------------------------------------------------------------------
def ref_stochastic(v: int, s: int, r: int) -> int:
    if s <= 0:
        return v * 2 ** (-s)
    term = r % 2 ** s if s <= 16 else r * 2 ** (s - 16)
    return (v + term) // 2 ** s


@FAST
@given(v=st.integers(-(2 ** 40), 2 ** 40), s=st.integers(1, 24), r=st.integers(1, PERIOD))
def test_stochastic_round_is_floor_or_floor_plus_one(v, s, r):
    got = int(fixed.stochastic_round_shift(np.array([v]), s, np.array([r]))[0])
    fl = v // 2 ** s
    assert got in (fl, fl + 1)
    assert got == ref_stochastic(v, s, r)
    if v % 2 ** s == 0:
        assert got == fl  # an exact multiple never rounds up


@pytest.mark.parametrize("s", [1, 3, 7, 12, 16, 17, 20, 24])
@pytest.mark.parametrize("v", [1, -1, 5, -77, 12345, -99999, 2 ** 20 + 3, 0])
def test_stochastic_round_is_unbiased_over_one_period(lfsr_cycle, v, s):
    r = np.array(lfsr_cycle, dtype=np.int64)
    got = fixed.stochastic_round_shift(np.full(PERIOD, v, dtype=np.int64), s, r)
    assert abs(float(np.mean(got)) - v / 2 ** s) <= 1e-3


def test_stochastic_round_above_16_bits_scales_the_random_word():
    # s = 20: term = r << 4, so r = 0xFFFF adds 0xFFFF0 < 2^20 (never a carry from 0)...
    assert int(fixed.stochastic_round_shift(np.array([0]), 20, np.array([0xFFFF]))[0]) == 0
    # ...but lifts 16 (= 2^20 - 0xFFFF0) to one, and r = 1 lifts only values ≥ 2^20 - 16
    assert int(fixed.stochastic_round_shift(np.array([16]), 20, np.array([0xFFFF]))[0]) == 1
    assert int(fixed.stochastic_round_shift(np.array([2 ** 20 - 16]), 20, np.array([1]))[0]) == 1
    assert int(fixed.stochastic_round_shift(np.array([2 ** 20 - 17]), 20, np.array([1]))[0]) == 0


@FAST
@given(v=st.lists(st.integers(-(2 ** 30), 2 ** 30), min_size=1, max_size=6), s=st.integers(-20, 0))
def test_stochastic_round_nonpositive_shift_is_exact_left_shift(v, s):
    r = np.arange(1, len(v) + 1)
    assert fixed.stochastic_round_shift(np.array(v), s, r).tolist() == [x * 2 ** (-s) for x in v]


# --- softmax cross-entropy gradient ---------------------------------------------------------------
def float_softmax_grad(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1.0
    return p


@MEDIUM
@given(data=st.data(), batch=st.integers(1, 8), classes=st.integers(2, 16), logit_frac=st.integers(4, 12),
       grad_bits=st.sampled_from([12, 16, 20, 24]))
def test_softmax_ce_grad_tracks_float(data, batch, classes, logit_frac, grad_bits):
    lo, hi = int_range(16)
    flat = data.draw(st.lists(st.integers(lo, hi) | st.integers(-40, 40), min_size=batch * classes,
                              max_size=batch * classes))
    logits = np.array(flat, dtype=np.int64).reshape(batch, classes)
    labels = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)))
    fmt = QFormat(grad_bits, grad_bits - 2)
    grad = fixed.softmax_ce_grad(logits, labels, logit_frac, fmt)
    assert grad.shape == (batch, classes) and grad.dtype == np.int64
    assert grad.min() >= fmt.min_int and grad.max() <= fmt.max_int
    ref = float_softmax_grad(logits * 2.0 ** -logit_frac, labels)
    err = np.abs(grad * 2.0 ** -fmt.frac - ref)
    assert err.max() <= 2 ** -7, f"max error {err.max()}"
    # Σ softmax = 1 and Σ onehot = 1: each p is rounded once, so a row sum is off by ≤ classes/2 LSB
    assert np.abs(grad.sum(axis=1)).max() <= classes / 2
    # the label's entry is p - 1 ≤ 0, the others p ≥ 0
    assert (grad[np.arange(batch), labels] <= 0).all()
    others = np.ones_like(grad, dtype=bool)
    others[np.arange(batch), labels] = False
    assert (grad[others] >= 0).all()


@pytest.mark.parametrize("z_frac", [0, 4, 8, 12, 16])
def test_exp_of_zero_is_exactly_one(z_frac):
    assert int(fixed.exp_neg_fixed(np.array([0]), z_frac)[0]) == 2 ** 16


@MEDIUM
@given(z=st.integers(-(2 ** 20), 0), z_frac=st.integers(4, 12))
def test_exp_neg_fixed_relative_accuracy(z, z_frac):
    got = int(fixed.exp_neg_fixed(np.array([z]), z_frac)[0])
    ref = math.exp(z * 2.0 ** -z_frac) * 2 ** 16
    # an 8-bit table index truncates the exponent's fraction: ≤ 2^(1/256) - 1 relative, + rounding
    assert abs(got - ref) <= ref * (2 ** (1 / 256) - 1) + 1.0


def test_softmax_row_max_gets_2_to_16_and_huge_negative_gives_zero():
    z = np.array([0, -(2 ** 23), -(2 ** 24), -(2 ** 31), -(2 ** 40)], dtype=np.int64)
    with np.errstate(all="raise"):
        e = fixed.exp_neg_fixed(z, 0)
    assert e.tolist() == [2 ** 16, 0, 0, 0, 0]
    # a 24-bit logit row with one dominant class: p = (1, 0, 0) exactly
    logits = np.array([[2 ** 23 - 1, -(2 ** 23), -(2 ** 23)], [-(2 ** 23), 2 ** 23 - 1, 5]])
    fmt = QFormat(16, 14)
    g = fixed.softmax_ce_grad(logits, np.array([0, 2]), 0, fmt)
    assert g.tolist() == [[0, 0, 0], [0, 2 ** 14, -(2 ** 14)]]


def test_softmax_equal_logits_are_uniform():
    fmt = QFormat(16, 14)
    g = fixed.softmax_ce_grad(np.full((2, 4), 1234), np.array([1, 3]), 8, fmt)
    q = 2 ** 14 // 4
    assert g.tolist() == [[q, q - 2 ** 14, q, q], [q, q, q, q - 2 ** 14]]


# --- average pool reciprocal ---------------------------------------------------------------------------
@pytest.mark.parametrize("count", [2 ** k for k in range(0, 13)])
def test_avg_pool_scale_power_of_two_is_an_exact_shift(count):
    mult, shift = fixed.avg_pool_scale(count)
    assert Fraction(mult, 2 ** shift) == Fraction(1, count)
    assert mult == 1


@pytest.mark.parametrize("count", [3, 5, 6, 7, 9, 10, 12, 15, 25, 36, 49, 63, 65, 100, 196, 255, 1000, 3000])
def test_avg_pool_scale_other_counts_within_2_pow_minus_15(count):
    mult, shift = fixed.avg_pool_scale(count)
    assert 0 < mult < 2 ** 16
    rel = abs(Fraction(mult, 2 ** shift) * count - 1)
    assert rel <= Fraction(1, 2 ** 15)


@given(st.integers(0, 200_000), st.integers(1, 65535))
@settings(max_examples=40, deadline=None)
def test_lfsr_jump_matrix_equals_stepping(steps, state):
    """A^k as a GF(2) matrix takes a state exactly where k single steps do (period 65535)."""
    expected = state
    for _ in range(steps % 65535):
        expected = fixed.lfsr_step(expected)
    assert fixed.lfsr_jump(fixed.lfsr_jump_matrix(steps), state) == expected


@FAST
@given(m=st.floats(0.0, 1e-9, exclude_min=True), bits=st.integers(2, 24), headroom=st.integers(0, 2))
def test_frac_for_range_of_a_vanishing_range_stops_at_max_frac(m, bits, headroom):
    # a subnormal range once overflowed in to_fixed; at most MAX_FRAC bits, and m never saturates
    frac = fixed.frac_for_range(m, bits, headroom)
    assert frac <= fixed.MAX_FRAC
    assert abs(int(fixed.to_fixed(m, QFormat(bits, frac)))) <= 2 ** (bits - 1) - 1


# --- distillation gradient ---------------------------------------------------------------------------
def _float_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


logit_rows = st.integers(1, 5).flatmap(lambda b: st.integers(2, 12).flatmap(
    lambda c: st.tuples(st.just(b), st.just(c), st.lists(st.integers(-8000, 8000), min_size=2 * b * c,
                                                          max_size=2 * b * c), st.lists(st.integers(0, c - 1),
                                                                                        min_size=b, max_size=b))))


@settings(max_examples=300, deadline=None)
@given(rows=logit_rows, frac=st.integers(6, 12), alpha=st.integers(0, 256), t_shift=st.integers(0, 4))
def test_distillation_grad_follows_the_float_formula(rows, frac, alpha, t_shift):
    """(1 - a)(softmax(Y) - onehot) + a T (softmax(Y/T) - softmax(Z/T)) within the integer softmax's error
    (the exp table's 2^-8 step, scaled by T), and saturated like every gradient."""
    b, c, values, labels = rows
    y, z = np.array(values[:b * c]).reshape(b, c), np.array(values[b * c:]).reshape(b, c)
    fmt, kd = QFormat(16, 13), fixed.Distillation(alpha, t_shift)
    got = fixed.distillation_grad(y, np.array(labels), z, frac, fmt, kd)
    a, t = alpha / 256, 2 ** t_shift
    onehot = np.eye(c)[labels]
    ref = (1 - a) * (_float_softmax(y / 2 ** frac) - onehot) + \
        a * t * (_float_softmax(y / 2 ** frac / t) - _float_softmax(z / 2 ** frac / t))
    expected = np.clip(ref * 2 ** fmt.frac, fmt.min_int, fmt.max_int)
    assert np.all(np.abs(got - expected) <= 2 ** (fmt.frac - 7) * (1 + a * t) + 2)


@settings(max_examples=100, deadline=None)
@given(rows=logit_rows, frac=st.integers(6, 12), t_shift=st.integers(0, 4))
def test_distillation_weights_at_the_ends(rows, frac, t_shift):
    """alpha 0 is cross-entropy bit for bit; alpha 1 against a teacher equal to the student is zero."""
    b, c, values, labels = rows
    y = np.array(values[:b * c]).reshape(b, c)
    fmt = QFormat(16, 14)
    assert np.array_equal(fixed.distillation_grad(y, np.array(labels), -y, frac, fmt, fixed.Distillation(0, t_shift)),
                          fixed.softmax_ce_grad(y, np.array(labels), frac, fmt))
    assert not fixed.distillation_grad(y, np.array(labels), y, frac, fmt, fixed.Distillation(256, t_shift)).any()


def test_distillation_values_are_checked():
    kd = fixed.Distillation.from_values(0.5, 4)
    assert (kd.alpha, kd.t_shift, kd.to_dict()) == (128, 2, {"alpha": 0.5, "temperature": 4})
    assert fixed.Distillation.from_values(1, 1) == fixed.Distillation(256, 0)
    for alpha, temperature in ((-0.1, 2), (1.5, 2), (float("nan"), 2), ("0.5", 2), (True, 2), (0.5, 3), (0.5, 32),
                               (0.5, 0), (0.5, 2.5), (0.5, None)):
        with pytest.raises(ValueError, match="distillation"):
            fixed.Distillation.from_values(alpha, temperature)
