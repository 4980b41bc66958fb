"""The sparse-weight layout and its cycle model (issue 19, `dtlgen.isa.fe`, Sparse weights).

`_exact_trips` runs a descriptor's trips one by one for trip loads that differ (sparse tiles); on equal
loads it must give exactly the closed forms' cycles (`_paused_trips`, `_held_trip`), which the RTL
matches. The layout must round-trip through the loader's reader, and the model's tile sizes must be the
packed bytes'.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlgen.isa import fe as isa
from dtlgen.perf.fe import FEConfig, FEOp, WeightMask, _op_cycles, op_cycles, sparse_beats


@st.composite
def conv_ops(draw):
    """A conv descriptor's geometry and an array: (op args of _op_cycles without the memory, tm, tn, tr, tc)."""
    k = draw(st.sampled_from([1, 3, 5]))
    s = draw(st.sampled_from([1, 2]))
    p = draw(st.integers(0, k - 1))
    h = draw(st.integers(k, 14))
    r = (h + 2 * p - k) // s + 1
    per_channel = draw(st.booleans())
    n, m = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    n = m if per_channel else n
    tm, tn = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    tr, tc = min(draw(st.integers(1, 8)), r), min(draw(st.integers(1, 8)), r)
    pool = 2 if draw(st.booleans()) and r % 2 == 0 and tr % 2 == 0 and tc % 2 == 0 else 0
    images = draw(st.integers(1, 3)) if tr >= r else 1
    tr = max(tr, images * r) if images > 1 else tr
    groups = draw(st.integers(1, 2))
    return ("conv", n, h, h, m, r, r, k, s, p, per_channel, pool, images, groups, False, tm, tn, tr, tc)


@settings(max_examples=300, deadline=None)
@given(conv_ops(), st.sampled_from([4.0, 8.0, 16.0]), st.sampled_from([0, 2, 10, 40]), st.sampled_from([2, 4, 8]))
def test_the_trip_by_trip_schedule_equals_the_closed_forms_on_equal_loads(geometry, bus, latency, slot):
    closed = _op_cycles(*geometry, 1, slot, bus, latency)
    exact = _op_cycles(*geometry, 1, slot, bus, latency, exact=True)
    assert (exact.cycles, exact.bus_cycles) == (closed.cycles, closed.bus_cycles)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.sampled_from([1, 3]), st.booleans(), st.integers(1, 6),
       st.integers(1, 6), st.sampled_from([2, 4, 8, 16]), st.sampled_from([2, 4, 8]), st.floats(0, 1), st.integers(0, 99))
def test_sparse_weights_round_trip_and_their_size_is_the_models(m, n, k, depthwise, tm, tn, bus, slot, keep, seed):
    rng = np.random.default_rng(seed)
    cols = 1 if depthwise else n
    mask = (rng.random((m, cols, k, k)) < keep).astype(np.uint8)
    weight = rng.integers(-(1 << (slot - 1)), 1 << (slot - 1), size=mask.shape) * mask
    data = isa.pack_sparse_weights(weight, mask, tm, tn, bus, slot, depthwise)
    sizes = isa.sparse_tile_sizes(mask, depthwise, tm, tn, bus, slot)
    assert len(data) == sizes.sum() * bus == isa.sparse_weight_bytes(mask, depthwise, tm, tn, bus, slot)
    back, back_mask, length = isa.unpack_sparse_weights(data, int(sizes[0]), m, n, k, depthwise, tm, tn, bus, slot)
    assert length == len(data)
    assert np.array_equal(back, weight) and np.array_equal(back_mask, mask)


def test_a_sparse_ops_loads_follow_its_tiles():
    """A memory-bound 3×3 conv on a 2×2 map whose first output-channel tile keeps nothing: its trips load
    header and bitmaps only, the second tile's everything; its cycles lie between the all-pruned op's and
    the dense op's, and its weight bytes are the layout's."""
    m, n, k = 8, 8, 3
    mask = np.ones((m, n, k, k), dtype=np.uint8)
    mask[:4] = 0
    cfg = FEConfig(4, 4, 2, 2)
    op = FEOp("c", "conv", n, 2, 2, m, 2, 2, k, 1, 1)
    sparse = op_cycles(FEOp(**{**op.__dict__, "sparse": WeightMask.of(mask)}), cfg, 4, 20)
    empty = op_cycles(FEOp(**{**op.__dict__, "sparse": WeightMask.of(np.zeros_like(mask))}), cfg, 4, 20)
    dense = op_cycles(op, cfg, 4, 20)
    assert sparse.bound == "memory"
    assert empty.cycles < sparse.cycles < dense.cycles and empty.bus_cycles < sparse.bus_cycles < dense.bus_cycles
    zero = np.zeros_like(mask)
    assert sparse.dram_bytes - empty.dram_bytes == (isa.sparse_weight_bytes(mask, False, 4, 4, 4, 8)
                                                    - isa.sparse_weight_bytes(zero, False, 4, 4, 4, 8))


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.sampled_from([1, 3, 5]), st.booleans(), st.integers(1, 8),
       st.integers(1, 8), st.sampled_from([2, 4, 8, 16]), st.sampled_from([2, 4, 8]), st.floats(0, 1), st.integers(0, 99))
def test_the_models_tile_sizes_from_prefix_sums_are_the_layouts(m, n, k, depthwise, tm, tn, bus, slot, keep, seed):
    """perf.fe.sparse_beats (prefix sums of the mask, for the DSE's many arrays) = isa.fe.sparse_tile_sizes."""
    mask = (np.random.default_rng(seed).random((m, 1 if depthwise else n, k, k)) < keep).astype(np.uint8)
    fast = sparse_beats(WeightMask.of(mask), depthwise, tm, tn, float(bus), slot)
    assert np.array_equal(fast.ravel(), isa.sparse_tile_sizes(mask, depthwise, tm, tn, bus, slot))
