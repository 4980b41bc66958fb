"""The seeded-weight generator: frozen weights as a pure function of (seed, layer, index).

A seeded layer (issue 18, ReFrame) stores no weights: the golden model, the HLS C++ and the RTL all
regenerate them from the model's seed, the layer's number and the weight's index with this one
generator, defined here and mirrored bit for bit by `hw_templates/hls/dtl_seeded.h` and
`hw_templates/rtl/dtl_seeded.sv` (tests/isa/test_seeded.py holds the three equal and checks the
statistics).

Counter-based, so any tile's weights come without stepping through the ones before it:
- `mix32(x)`: a bijective 32-bit mixer (two multiplies, three xor-shifts: "lowbias32", bias about
  0.17 on the avalanche measure);
- the layer's key: `mix32(seed ^ mix32(layer + GOLDEN))`;
- word n of the layer: `mix32(key + n * GOLDEN)` (a Weyl sequence into the mixer, as SplitMix does):
  for a fixed key, distinct n below 2^32 give distinct words (both maps are bijections), so a layer
  has 2^32 words (2^37 ±1 weights, 2^34 4-bit ones) before any repeats; one VGG-16 layer needs 2.36 M
  weights;
- values from a word, lowest field first: `sign` (32 weights a word, bit 1 → +1, 0 → −1) or
  `int<b>` (32 // b fields of b bits, two's complement: uniform over −2^(b−1) .. 2^(b−1) − 1).

In hardware a word is one pipelined mixer (two 32×32 multiplies): one word a cycle gives 32 ±1 or
eight 4-bit weights, as many as an 8-byte memory port delivers of stored ones.
"""

from __future__ import annotations

import numpy as np

MASK = 0xFFFF_FFFF
GOLDEN = 0x9E37_79B9  # 2^32 / the golden ratio, odd
MULT_A, MULT_B = 0x7FEB_352D, 0x846C_A68B
KINDS = ("sign", "int2", "int3", "int4", "int5", "int6", "int7", "int8")


def mix32(x):
    """The mixer on uint32 values (a Python int or a numpy array), as uint32 / int."""
    x = np.asarray(x, dtype=np.uint64) & MASK
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(MULT_A)) & np.uint64(MASK)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(MULT_B)) & np.uint64(MASK)
    x ^= x >> np.uint64(16)
    return x.astype(np.uint32)


def layer_key(seed: int, layer: int) -> int:
    """The key of layer number `layer` (0 .. 2^32 − 1) of a model seeded with `seed` (0 .. 2^32 − 1)."""
    for name, value in (("seed", seed), ("layer", layer)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MASK:
            raise ValueError(f"{name} {value!r}: an integer from 0 to 2^32 - 1")
    return int(mix32(int(seed) ^ int(mix32((int(layer) + GOLDEN) & MASK))))


def words(key: int, start: int, count: int) -> np.ndarray:
    """Words start .. start + count − 1 of the layer with `key`, as uint32."""
    n = (np.arange(start, start + count, dtype=np.uint64) & np.uint64(MASK))
    return mix32((np.uint64(key) + n * np.uint64(GOLDEN)) & np.uint64(MASK))


def per_word(kind: str) -> int:
    """Weights one word gives: 32 signs, or 32 // b fields of b bits."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
    return 32 if kind == "sign" else 32 // int(kind[3:])


def weights(seed: int, layer: int, count: int, kind: str = "sign", start: int = 0) -> np.ndarray:
    """Weights start .. start + count − 1 of a seeded layer, as int64: ±1 for `sign`, b-bit two's
    complement integers for `int<b>`."""
    k = per_word(kind)
    first, last = start // k, (start + count + k - 1) // k
    w = words(layer_key(seed, layer), first, last - first).astype(np.uint64)
    if kind == "sign":
        bits = (w[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)
        values = bits.astype(np.int64) * 2 - 1
    else:
        b = int(kind[3:])
        fields = (w[:, None] >> (np.arange(k, dtype=np.uint64) * np.uint64(b))) & np.uint64((1 << b) - 1)
        values = fields.astype(np.int64)
        values -= (values >> (b - 1)) << b  # two's complement
    values = values.reshape(-1)
    return values[start - first * k:start - first * k + count]


def conv_weights(seed: int, layer: int, shape: tuple[int, int, int, int], kind: str = "sign",
                 depthwise: bool = False) -> np.ndarray:
    """A seeded convolution's weights, (M, N/groups, K, K) int64 (torch's layout), in the order the FE
    engine fills its weight banks, a tap row after another: for each tap (kr, kc), a dense conv's output
    channel m takes its N weights from a run of whole words of its own (row (kr·K + kc)·M + m of
    ceil(N / per_word) words), so a tile's weights of a tap and an output channel start at a word
    boundary plus the tile's first input channel (a dense conv of one input channel too); a depthwise
    conv (`depthwise`, N/groups = 1) takes its M weights of tap (kr, kc) from row kr·K + kc."""
    m, n, k, k2 = (int(v) for v in shape)
    if k != k2 or min(m, n, k) < 1 or (depthwise and n != 1):
        raise ValueError(f"shape {shape}: (M, N/groups, K, K) with positive sizes, N/groups = 1 if depthwise")
    run = m if depthwise else n  # weights of one row: a depthwise tap's lanes, or a dense lane's inputs
    row = -(-run // per_word(kind)) * per_word(kind)
    rows = k * k if depthwise else k * k * m
    values = weights(seed, layer, rows * row, kind).reshape(rows, row)[:, :run]
    if depthwise:  # (kr, kc, m) -> (m, 1, kr, kc)
        return values.reshape(k, k, m).transpose(2, 0, 1)[:, None].copy()
    return values.reshape(k, k, m, n).transpose(2, 3, 0, 1).copy()


def weight_bits(kind: str) -> int:
    """Bits a seeded weight needs as a two's complement integer: 2 for ±1, b for `int<b>`."""
    per_word(kind)
    return 2 if kind == "sign" else int(kind[3:])


HEAD_LAYER = 0x8000_0000  # layer numbers of retrainable layers' initial weights: HEAD_LAYER + i


def he_bound_log2(fan_in: int) -> int:
    """The power of two nearest He's uniform bound sqrt(6 / fan_in): a seeded initial weight's range."""
    if fan_in < 1:
        raise ValueError(f"fan_in {fan_in}: a positive integer")
    return round(0.5 * np.log2(6.0 / fan_in))


def initial_weights(seed: int, layer: int, count: int, frac: int, bound_log2: int) -> np.ndarray:
    """`count` initial weights of a retrainable layer (layer number HEAD_LAYER + its position), int64 at
    `frac` fractional bits, uniform over [−2^bound_log2, 2^bound_log2): word n of the layer, read as a
    signed 32-bit integer and shifted right arithmetically by 31 − frac − bound_log2 (0 .. 31), which
    the host computes on the device from the seed instead of receiving the weights."""
    shift = 31 - frac - bound_log2
    if not 0 <= shift <= 31:
        raise ValueError(f"frac {frac} with bound 2^{bound_log2}: the weights' range needs 0 .. 31 integer "
                         "and fractional bits together")
    w = words(layer_key(seed, layer), 0, count).astype(np.int64)
    return (w - ((w >> 31) << 32)) >> shift


def initial_values(spec: dict, shape: tuple[int, ...]) -> np.ndarray:
    """A retrainable layer's seeded initial weights (float64, `shape`, output channel first) from its
    `init_seed` spec {"seed", "index", "bound_log2", "frac"}: `initial_weights` times 2^-frac."""
    count = int(np.prod(shape))
    values = initial_weights(spec["seed"], spec["index"], count, spec["frac"], spec["bound_log2"])
    return (values * 2.0 ** -spec["frac"]).reshape(shape)
