"""The seeded-weight generator (dtlgen.isa.seeded): the golden model, the C++ (g++) and the RTL
(Verilator) give the same words; its statistics are those of independent fair bits; any slice of a
layer's weights is computed without the ones before it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlgen.generator.rtl import rtl_dir
from dtlgen.isa import seeded

HLS = Path(seeded.__file__).resolve().parents[1] / "hw_templates" / "hls"


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, seeded.MASK), layer=st.integers(0, 300), kind=st.sampled_from(seeded.KINDS),
       start=st.integers(0, 5000), count=st.integers(0, 300))
def test_any_slice_is_the_same_as_generating_from_the_start(seed, layer, kind, start, count):
    whole = seeded.weights(seed, layer, start + count, kind)
    assert np.array_equal(seeded.weights(seed, layer, count, kind, start=start), whole[start:])
    bits = 1 if kind == "sign" else int(kind[3:])
    if kind == "sign":
        assert set(np.unique(whole)) <= {-1, 1}
    else:
        assert whole.min(initial=0) >= -(1 << (bits - 1)) and whole.max(initial=0) < 1 << (bits - 1)


def test_the_statistics_of_a_layer_are_those_of_fair_independent_bits():
    n = 1 << 20
    signs = seeded.weights(12345, 7, n, "sign")
    z = signs.sum() / np.sqrt(n)  # a fair coin: |z| < 5 all but never
    assert abs(z) < 5
    for lag in (1, 2, 32, 33):  # neighbours within and across words
        assert abs(np.mean(signs[:-lag] * signs[lag:])) * np.sqrt(n) < 5, lag
    other = seeded.weights(12345, 8, n, "sign")  # the next layer: uncorrelated
    assert abs(np.mean(signs * other)) * np.sqrt(n) < 5
    reseeded = seeded.weights(12346, 7, n, "sign")  # the next seed: uncorrelated
    assert abs(np.mean(signs * reseeded)) * np.sqrt(n) < 5
    ints = seeded.weights(99, 0, n, "int4")
    counts = np.bincount(ints + 8, minlength=16)
    chi2 = float(((counts - n / 16) ** 2 / (n / 16)).sum())
    assert chi2 < 60  # 15 degrees of freedom: p ~ 1e-7 at 60
    # consecutive LFSR states as weights collapsed a float DTL run (issue 18: 45.9 %); here adjacent
    # 4-bit weights of a word are independent: the pair histogram is flat too
    pairs = np.bincount((ints[0::2] + 8) * 16 + ints[1::2] + 8, minlength=256)
    chi2 = float(((pairs - n / 2 / 256) ** 2 / (n / 2 / 256)).sum())
    assert chi2 < 350  # 255 degrees of freedom


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frac=st.integers(8, 24), bound_log2=st.integers(-5, 2))
def test_initial_weights_fill_their_range_uniformly(seed, frac, bound_log2):
    n = 1 << 14  # 2^3 .. 2^26 levels each side of 0
    w = seeded.initial_weights(seed, seeded.HEAD_LAYER, n, frac, bound_log2)
    top = 1 << (frac + bound_log2)  # uniform over [-2^(frac+e), 2^(frac+e))
    assert w.min() >= -top and w.max() < top and w.dtype == np.int64
    # the mean of -top .. top - 1 (the shift rounds down) is -1/2: within 5 standard errors of it
    assert abs(w.mean() + 0.5) < 5 * top / np.sqrt(3 * n)
    assert abs(np.mean(w.astype(float) ** 2) / (top * top / 3) - 1) < 0.05  # its variance, 2^(2(frac+e)) / 3
    counts = np.histogram(w, bins=8, range=(-top, top))[0]
    assert counts.min() > n / 8 * 0.85
    # the words are the layer's first ones: the weights are their signed values, shifted
    words = seeded.words(seeded.layer_key(seed, seeded.HEAD_LAYER), 0, 4).astype(np.int64)
    assert np.array_equal(w[:4], (words - ((words >> 31) << 32)) >> (31 - frac - bound_log2))


def test_initial_weights_bound_and_range_are_checked():
    assert [seeded.he_bound_log2(n) for n in (1, 6, 32, 256, 4608)] == [1, 0, -1, -3, -5]
    with pytest.raises(ValueError, match="0 .. 31"):
        seeded.initial_weights(1, 0, 4, 30, 2)
    with pytest.raises(ValueError, match="fan_in"):
        seeded.he_bound_log2(0)


def test_words_do_not_repeat_within_a_layer():
    w = seeded.words(seeded.layer_key(3, 1), 0, 1 << 22)
    assert len(np.unique(w)) == len(w)


def test_bad_seeds_and_kinds_are_refused():
    for seed in (-1, 1 << 32, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            seeded.layer_key(seed, 0)
    with pytest.raises(ValueError, match="kind 'int9'"):
        seeded.weights(1, 0, 10, "int9")


def test_the_cpp_generator_equals_the_golden_model(tmp_path):
    main = tmp_path / "main.cpp"
    main.write_text('#include <cstdio>\n#include <cstdlib>\n#include "dtl_seeded.h"\n'
                    "int main(int argc, char **argv) {\n"
                    "  uint32_t seed = strtoul(argv[1], 0, 10), layer = strtoul(argv[2], 0, 10);\n"
                    "  int bits = atoi(argv[3]), count = atoi(argv[4]);\n"
                    "  uint32_t key = dtl_seeded_key(seed, layer);\n"
                    "  int per = bits == 1 ? 32 : 32 / bits;\n"
                    "  for (int i = 0; i < count; i++)\n"
                    "    printf(\"%d\\n\", dtl_seeded_weight(dtl_seeded_word(key, (uint32_t)(i / per)), i % per, bits));\n"
                    "  return 0;\n}\n")
    exe = tmp_path / "gen"
    subprocess.run(["g++", "-O1", "-std=c++14", f"-I{HLS}", str(main), "-o", str(exe)], check=True)
    for seed, layer, kind in ((0, 0, "sign"), (0xFFFFFFFF, 17, "int4"), (2024, 3, "int3"), (7, 250, "int8")):
        bits = 1 if kind == "sign" else int(kind[3:])
        out = subprocess.run([str(exe), str(seed), str(layer), str(bits), "2000"], capture_output=True, text=True,
                             check=True).stdout.split()
        assert np.array_equal(np.array(out, dtype=np.int64), seeded.weights(seed, layer, 2000, kind)), kind


def test_the_rtl_generator_equals_the_golden_model(tmp_path):
    from dtlgen.sim.fe_sim import build_top, run_test

    build = build_top([rtl_dir() / "dtl_seeded.sv"], "dtl_seeded", {}, "seeded")
    assert run_test(build, "dtl_seeded", "seeded_cocotb", Path(__file__).parent, tmp_path, {})
