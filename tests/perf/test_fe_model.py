"""FE engine cycle model (`dtlgen.perf.fe`) against its module docstring, and resource arithmetic.

The centre piece is `reference_schedule`: a deliberately plain re-implementation of the schedule
in `fe.py`'s docstring (explicit loops over output tiles and input-channel trips, double
buffering, descriptor/bias overhead, first load, last store, output stage). `op_cycles` is a
vectorised version of the same schedule and must agree with it exactly.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from dtlgen.boards import load_board
from dtlgen.isa import fe as isa_fe
from dtlgen.isa.params import DdrTiming
from dtlgen.model import import_module, load_model
from dtlgen.model.ir import Layer, Network, conv_out_size
from dtlgen.perf import fe, rl
from dtlgen.perf.resources import (LUTRAM_MAX_DEPTH, array_resources, dsp_packing, memory_blocks)

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUSES = (1, 2, 4, 8, 16)
HUGE_BUS = 10 ** 9  # "infinitely fast": every ceil(bytes / bus) of a non-empty transfer is 1 beat


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


# --- the reference schedule (module docstring of dtlgen/perf/fe.py, term by term) -----------------
def reference_schedule(op: fe.FEOp, cfg: fe.FEConfig, bus: int, latency: int, nonconv_depth: int | None = None):
    """Cycles and side figures of one FE operation, following the docstring literally.

    `nonconv_depth` overrides D for pool/add operations (the docstring says D = pipeline_depth(tn)
    for every trip); None means "as the docstring says".
    """
    assert isinstance(bus, int)
    is_conv = op.kind == "conv"
    per_channel = op.depthwise or not is_conv  # tm lanes, one channel each, no n loop
    depth = fe.pipeline_depth(cfg.tn) if (is_conv or nonconv_depth is None) else nonconv_depth
    a_bytes = cdiv(cfg.a_bits, 8)
    slot = next(bits for bits in (2, 4, 8, 16) if cfg.w_bits <= bits)  # weights packed in 2/4/8-bit slots
    inputs = 2 if op.kind == "add" else 1
    k = op.k
    tr, tc = min(cfg.tr, op.r), min(cfg.tc, op.c)

    def valid(start_out: int, extent: int, size: int) -> int:
        lo = start_out * op.s - op.p
        hi = lo + (extent - 1) * op.s + k
        return min(max(hi, 0), size) - min(max(lo, 0), size)

    tiles = []  # (list of (compute, load) per trip, store), in visiting order
    in_elems = w_moved = out_elems = 0
    for r0 in [r0 for _group in range(op.groups) for r0 in range(0, op.r, tr)]:  # image group, row tile
        tr_e = min(tr, op.r - r0)
        rows_v = valid(r0, tr_e, op.h)
        for c0 in range(0, op.c, tc):  # column tile
            tc_e = min(tc, op.c - c0)
            cols_v = valid(c0, tc_e, op.w)
            for m0 in range(0, op.m, cfg.tm):  # output-channel tile
                tm_e = min(cfg.tm, op.m - m0)
                trips = []
                n_tiles = [tm_e] if per_channel else [min(cfg.tn, op.n - n0) for n0 in range(0, op.n, cfg.tn)]
                for j, tn_e in enumerate(n_tiles):
                    taps = op.images * tr_e * tc_e * k * k
                    if op.depthwise and 3 <= k <= cfg.tn // 2 and op.s <= 2:  # kernel rows over the columns:
                        # per output row and kernel row the row's elements, one an issue, at least 5 (an
                        # output word's read behind its last write), or k on a trip one column wide
                        row = k if tc_e == 1 else max((tc_e - 1) * op.s + k, 5)
                        taps = op.images * tr_e * k * row
                    # the pipeline drains after a trip shorter than it (and after the op's last: below)
                    compute = (taps, depth if taps < depth else 0)
                    if op.keep:  # whole planes, during the first output-channel tile only
                        in_beats = inputs * tn_e * cdiv(op.h * op.w * a_bytes, bus) if m0 == 0 else 0
                        in_elems += inputs * tn_e * op.h * op.w if m0 == 0 else 0
                    elif (k, op.s) == (1, 2):  # only the rows the taps read: every other one
                        in_beats = inputs * tn_e * cdiv(rows_v, 2) * cdiv(cols_v * a_bytes, bus)
                    elif op.r <= cfg.tr and op.c <= cfg.tc and (rows_v, cols_v) == (op.h, op.w):  # a plane a request
                        in_beats = inputs * tn_e * cdiv(op.h * op.w * a_bytes, bus)
                    else:
                        in_beats = inputs * tn_e * rows_v * cdiv(cols_v * a_bytes, bus)
                    if not op.keep:
                        in_elems += inputs * tn_e * (cdiv(rows_v, 2) if (k, op.s) == (1, 2) else rows_v) * cols_v
                    w_beats = 0
                    if is_conv:  # K·K tap rows of tm_e × wn weights, each padded to whole beats
                        row_beats = cdiv(tm_e * (1 if per_channel else tn_e) * slot, 8 * bus)
                        w_beats = k * k * row_beats
                        w_moved += k * k * row_beats * bus
                    trips.append((compute, latency + in_beats + w_beats))
                out_rows = tr_e // op.pool if op.pool else tr_e
                out_cols = tc_e // op.pool if op.pool else tc_e
                out_elems += tm_e * out_rows * out_cols
                tiles.append((trips, tm_e * out_rows * cdiv(out_cols * a_bytes, bus)))
    # Flatten to the trip sequence; each trip loads the next one, then stores what is left of the
    # previous output tile (pending from the tile's first trip) until the array is done with the trip,
    # a cycle late when it pauses; the tile's last trip waits for the whole store.
    sequence = []  # (compute, load, last trip of its tile, drained)
    for t, (trips, _store) in enumerate(tiles):
        for j, ((taps, drain), load) in enumerate(trips):
            if t == len(tiles) - 1 and j == len(trips) - 1:
                drain = depth  # the op's last trip drains: the last store reads what it wrote
            sequence.append((taps + drain, load, j == len(trips) - 1, drain > 0))
    starts = [sum(len(t) for t, _ in tiles[:i]) for i in range(len(tiles))]
    pending_from = {start: tiles[i - 1][1] for i, start in enumerate(starts) if i > 0}
    total = pending = 0
    for i, (compute, _load, tile_end, _drained) in enumerate(sequence):
        next_load = sequence[i + 1][1] if i + 1 < len(sequence) else 0
        start = next_load  # the store's first beat after the load
        if i in pending_from:
            pending += pending_from[i]
            # the previous tile's last trip went on without its drain: its last writes may be in flight
            if pending and not sequence[i - 1][3]:
                start = max(next_load, depth)
        if tile_end or start + pending <= compute:
            trip = max(compute, start + pending if pending else next_load)
            pending = 0
        elif next_load > compute:  # the load outlasts the array: nothing stored this trip
            trip = next_load
        else:  # stores until the array is done, then pauses (one cycle)
            pending -= max(0, compute - start)
            trip = compute + 1
        total += trip + fe.TRIP_HANDOFF_CYCLES  # double buffering, one bus
    overhead = latency + cdiv(fe.DESCRIPTOR_BYTES, bus)
    if is_conv:
        overhead += latency + cdiv(op.m * fe.BIAS_BYTES, bus)
    else:
        overhead += isa_fe.geometry_wait(bus)
    first_load, last_store = sequence[0][1], tiles[-1][1]
    phases = 4 if is_conv else 3  # descriptor, (bias,) first load, last store
    cycles = overhead + first_load + total + last_store + fe.OUTPUT_STAGE_CYCLES + phases * fe.PHASE_HANDOFF_CYCLES
    return dict(
        cycles=cycles,
        compute_cycles=sum(s[0] for s in sequence),
        bus_cycles=overhead + sum(s[1] for s in sequence) + sum(t[1] for t in tiles),
        trips=len(sequence),
        dram_bytes=in_elems * a_bytes + w_moved + out_elems * a_bytes,
        overhead=overhead, first_load=first_load, last_store=last_store,
    )


def assert_matches_reference(op, cfg, bus, latency, nonconv_depth=None):
    got = fe.op_cycles(op, cfg, bus, latency)
    ref = reference_schedule(op, cfg, bus, latency, nonconv_depth)
    context = f"op={op} cfg={cfg} bus={bus} latency={latency}"
    assert got.cycles == ref["cycles"], context
    assert got.compute_cycles == ref["compute_cycles"], context
    assert got.bus_cycles == ref["bus_cycles"], context
    assert got.trips == ref["trips"], context
    assert got.dram_bytes == ref["dram_bytes"], context
    return got, ref


# --- hand-built IR ------------------------------------------------------------------------------
def conv_layer(name, n, h, m, k, s, p, depthwise=False, inputs=("input",)):
    r = conv_out_size(h, k, s, p)
    return Layer(name, "conv2d", list(inputs), (n, h, h), (m, r, r), kernel=k, stride=s, padding=p,
                 groups=n if depthwise else 1, activation="relu")


def pool_layer(name, op, src, c, h, k, s, p=0):
    r = conv_out_size(h, k, s, p)
    return Layer(name, op, [src], (c, h, h), (c, r, r), kernel=k, stride=s, padding=p)


@st.composite
def conv_networks(draw):
    """One conv (dense or depthwise, maybe followed by a fusable 2/2 max-pool) or one linear layer."""
    if draw(st.integers(0, 9)) == 0:
        n, m = draw(st.integers(1, 96)), draw(st.integers(1, 96))
        layer = Layer("fc", "linear", ["input"], (n,), (m,))
        return Network("t", (n,), [layer])
    depthwise = draw(st.booleans())
    n = draw(st.integers(1, 96))
    m = n if depthwise else draw(st.integers(1, 96))
    if depthwise and n == 1:
        depthwise = False  # groups=1: an ordinary conv
    k = draw(st.sampled_from(fe.SUPPORTED_KERNELS))
    p = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(1, k - 2 * p), 32))
    s = draw(st.sampled_from(fe.SUPPORTED_STRIDES))
    conv = conv_layer("conv", n, h, m, k, s, p, depthwise)
    layers = [conv]
    if conv.r >= 2 and draw(st.booleans()):
        layers.append(pool_layer("pool", "maxpool", "conv", m, conv.r, 2, 2))
    return Network("t", (n, h, h), layers)


@st.composite
def tilings(draw, network: Network, max_tiles: int = 6):
    """tm, tn, tr, tc ≤ 32 with at most 8 channel tiles and `max_tiles` row/col tiles (keeps the
    reference loops short); half of the draws stay within the dimension so that edge tiles and
    several n-trips per output tile are common."""
    first = network.layers[0]

    def tile(dim: int, most: int) -> int:
        lo = max(1, cdiv(dim, most))
        return draw(st.one_of(st.integers(lo, 32), st.integers(lo, max(lo, min(32, dim - 1)))))

    tm, tn = tile(first.m, 8), tile(first.n, 8)
    tr, tc = tile(first.r, max_tiles), tile(first.c, max_tiles)
    bits = st.integers(2, 16)
    return fe.FEConfig(tm, tn, tr, tc, w_bits=draw(bits), a_bits=draw(bits))


memories = st.tuples(st.sampled_from(BUSES), st.integers(0, 80))


# --- 1. the schedule, exactly ----------------------------------------------------------------------
@settings(max_examples=250, **SETTINGS)
@given(data=st.data())
def test_op_cycles_equals_the_docstring_schedule_for_convs(data):
    network = data.draw(conv_networks())
    cfg = data.draw(tilings(network))
    bus, latency = data.draw(memories)
    # input banks of no words, a random size, or the engine's for these tiles: kept inputs where they fit
    words = data.draw(st.one_of(st.just(0), st.integers(1, 4096),
                                st.just(2 * isa_fe.input_words(cfg.tr, cfg.tc, bus))))
    ops = fe.batched_ops(fe.fe_ops(network, cfg), cfg, 1, bus, words)
    for op in ops:
        groups = data.draw(st.integers(1, 3))  # image groups one after another (isa.fe, Image groups)
        if isa_fe.groups_problem(groups, op.keep, op.n, cfg.tn) is None:
            op = replace(op, groups=groups)
        if op.kind == "conv":
            assert_matches_reference(op, cfg, bus, latency)
        else:  # an unfused max-pool after the conv: no adder tree, D = pipeline_depth(1)
            assert_matches_reference(op, cfg, bus, latency, nonconv_depth=fe.pipeline_depth(1))


@pytest.mark.parametrize("n, keep", [(4, False), (8, False), (12, True), (12, False)])
@pytest.mark.parametrize("latency", [0, 1, 3])
def test_a_store_held_past_the_load_matches_the_docstring_schedule(n, keep, latency):
    """1×1 convs of one, two and three input-channel tiles on 4×4 maps: at these latencies a tile's first
    load (one plane beat a channel, one tap row of weights) ends before the hold on the previous tile's
    store (isa.fe.store_hold), the case the random schedules above rarely draw."""
    op = fe.FEOp("pw", "conv", n=n, h=4, w=4, m=12, r=4, c=4, k=1, s=1, p=0, keep=keep)
    cfg = fe.FEConfig(4, 4, 4, 4)
    assert isa_fe.store_hold(16, fe.pipeline_depth(4)) > latency + cdiv(4 * 16, 16) + 1  # the hold binds
    assert_matches_reference(op, cfg, 16, latency)


@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_op_cycles_equals_the_docstring_schedule_for_pools_and_adds(data):
    """Standalone pools (max/avg, any K, stride ≤ K) and adds: tm lanes, two inputs for add, no weights.

    They bypass the multipliers and adder tree: D = pipeline_depth(1), as the docstring says.
    """
    c = data.draw(st.integers(1, 96))
    if data.draw(st.booleans()):
        h = data.draw(st.integers(1, 32))
        network = Network("t", (c, h, h), [Layer("add", "add", ["input", "input"], (c, h, h), (c, h, h))])
    else:
        k = data.draw(st.integers(1, 4))
        s = data.draw(st.integers(1, k))
        h = data.draw(st.integers(k, 32))
        kind = data.draw(st.sampled_from(["maxpool", "avgpool"]))
        network = Network("t", (c, h, h), [pool_layer("pool", kind, "input", c, h, k, s)])
    cfg = data.draw(tilings(network))
    bus, latency = data.draw(memories)
    (op,) = fe.fe_ops(network, cfg)
    assert op.kind == ("add" if network.layers[0].op == "add" else "pool")
    assert_matches_reference(op, cfg, bus, latency, nonconv_depth=fe.pipeline_depth(1))


class _Block(nn.Module):
    """conv → ReLU → 2/2 max-pool, depthwise conv, 1×1 conv, residual add, avg-pool, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 12, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.dw = nn.Conv2d(12, 12, 3, stride=1, padding=1, groups=12)
        self.pw = nn.Conv2d(12, 12, 1)
        self.down = nn.Conv2d(12, 20, 5, stride=2, padding=2)
        self.avg = nn.AvgPool2d(3, 2)
        self.fc = nn.Linear(20, 10)

    def forward(self, x):
        x = self.pool1(torch.relu(self.conv1(x)))
        y = self.pw(torch.relu(self.dw(x)))
        x = torch.relu(x + y)
        x = self.avg(torch.relu(self.down(x)))
        return self.fc(torch.flatten(x, 1))


@pytest.fixture(scope="module")
def block_network():
    return import_module(_Block(), (3, 14, 14), "block")


@pytest.mark.parametrize("tiling", [(4, 3, 2, 2), (8, 4, 3, 5), (16, 16, 7, 7), (5, 7, 4, 6), (1, 1, 1, 2)])
@pytest.mark.parametrize("bus, latency", [(1, 80), (8, 40), (16, 0)])
def test_imported_torch_network_matches_reference(block_network, tiling, bus, latency):
    cfg = fe.FEConfig(*tiling)
    ops = fe.fe_ops(block_network, cfg)
    kinds = [(op.name, op.kind, op.pool, op.depthwise) for op in ops]
    fused = cfg.tr % 2 == 0 and cfg.tc % 2 == 0  # conv1's output is 14×14: fusion needs even tr, tc
    expected = ([("conv1", "conv", 2, False)] if fused else [("conv1", "conv", 0, False), ("pool1", "pool", 0, False)])
    expected += [("dw", "conv", 0, True), ("pw", "conv", 0, False), (kinds[-4][0], "add", 0, False),
                 ("down", "conv", 0, False), ("avg", "pool", 0, False), ("fc", "conv", 0, False)]
    assert kinds == expected
    for op in ops:
        assert_matches_reference(op, cfg, bus, latency, nonconv_depth=None if op.kind == "conv" else fe.pipeline_depth(1))


def test_fe_ops_mapping():
    """linear → 1×1 conv, flatten free, fused pool only for even or whole-output tiles."""
    network = load_model("digits_cnn").with_split(9)  # everything on the FE
    ops = fe.fe_ops(network, fe.FEConfig(4, 4, 4, 4))
    assert [(o.name, o.kind, o.pool, o.pool_layer) for o in ops] == [
        ("conv1", "conv", 0, ""), ("conv2", "conv", 2, "pool2"), ("conv3", "conv", 0, ""),
        ("conv4", "conv", 2, "pool4"), ("fc1", "conv", 0, ""), ("fc2", "conv", 0, "")]
    fc1 = ops[4]
    assert (fc1.n, fc1.m, fc1.h, fc1.w, fc1.r, fc1.c, fc1.k, fc1.macs) == (256, 32, 1, 1, 1, 1, 1, 256 * 32)
    # tr = 3 is odd and below both convs' rows (8, 4): both pools are ops of their own
    ops = fe.fe_ops(network, fe.FEConfig(4, 4, 3, 4))
    assert [(o.name, o.kind, o.pool) for o in ops] == [
        ("conv1", "conv", 0), ("conv2", "conv", 0), ("pool2", "pool", 0), ("conv3", "conv", 0), ("conv4", "conv", 0),
        ("pool4", "pool", 0), ("fc1", "conv", 0), ("fc2", "conv", 0)]
    # tr = tc = 5: odd, below conv2's 8 rows (not fused) but covering conv4's 4 rows (fused)
    ops = fe.fe_ops(network, fe.FEConfig(4, 4, 5, 5))
    assert [(o.name, o.pool) for o in ops] == [("conv1", 0), ("conv2", 0), ("pool2", 0), ("conv3", 0), ("conv4", 2),
                                               ("fc1", 0), ("fc2", 0)]


# --- 1. invariants -------------------------------------------------------------------------------
@settings(max_examples=200, **SETTINGS)
@given(data=st.data())
def test_cycle_bounds(data):
    """Lower bounds from the array size and exact bounds that follow from the docstring schedule.

    cycles = overhead + first load + Σ_i (max(compute_i, load_{i+1} + stored_i) + 1 [+ 1 if paused]) + last store + OUT
             + phase handoffs
      ≥ compute_cycles + overhead + first load + last store + OUT     (each max ≥ compute_i)
      ≥ bus_cycles + OUT                         (Σ of the second arguments = all loads but the first
                                                  + all stores but the last: a tile's stores add up)
      ≤ compute_cycles + bus_cycles + OUT + handoffs   (max(a, b) ≤ a + b; one handoff per trip
                                                        and two per memory phase)
    """
    network = data.draw(conv_networks())
    cfg = data.draw(tilings(network, max_tiles=32))  # cheap: no reference loops here
    bus, latency = data.draw(memories)
    for op in fe.fe_ops(network, cfg):
        oc = fe.op_cycles(op, cfg, bus, latency)
        if op.kind != "conv":
            continue
        # (a depthwise lane: a kernel row's k taps an issue over the columns, else one)
        lanes = cfg.tm * (op.k if op.s <= 2 and 3 <= op.k <= cfg.tn // 2 else 1) if op.depthwise else cfg.tm * cfg.tn
        assert op.macs > 0 and oc.cycles * lanes >= op.macs
        assert oc.compute_cycles * lanes >= op.macs
        overhead = 2 * latency + cdiv(fe.DESCRIPTOR_BYTES, bus) + cdiv(op.m * fe.BIAS_BYTES, bus)
        # first load ≥ L + 1 beat (a window has ≥ 1 valid pixel), last store ≥ 1 beat
        assert oc.cycles >= oc.compute_cycles + overhead + (latency + 1) + 1 + fe.OUTPUT_STAGE_CYCLES
        assert oc.cycles >= oc.bus_cycles + fe.OUTPUT_STAGE_CYCLES
        handoffs = oc.trips * fe.TRIP_HANDOFF_CYCLES + 4 * fe.PHASE_HANDOFF_CYCLES
        assert oc.cycles <= oc.compute_cycles + oc.bus_cycles + fe.OUTPUT_STAGE_CYCLES + handoffs
        assert oc.trips == (cdiv(op.r, min(cfg.tr, op.r)) * cdiv(op.c, min(cfg.tc, op.c)) * cdiv(op.m, cfg.tm)
                            * (1 if op.depthwise else cdiv(op.n, cfg.tn)))


@settings(max_examples=120, **SETTINGS)
@given(data=st.data())
def test_cycles_monotone_in_latency_and_bus_width(data):
    network = data.draw(conv_networks())
    cfg = data.draw(tilings(network, max_tiles=32))
    l1, l2 = sorted(data.draw(st.lists(st.integers(0, 80), min_size=2, max_size=2)))
    b_small, b_big = sorted(data.draw(st.lists(st.sampled_from(BUSES), min_size=2, max_size=2)))
    for op in fe.fe_ops(network, cfg):
        assert fe.op_cycles(op, cfg, b_small, l1).cycles <= fe.op_cycles(op, cfg, b_small, l2).cycles
        assert fe.op_cycles(op, cfg, b_big, l2).cycles <= fe.op_cycles(op, cfg, b_small, l2).cycles


@settings(max_examples=60, **SETTINGS)
@given(n=st.sampled_from([32, 64, 96]), m=st.sampled_from([32, 64, 96]),
       tm=st.sampled_from([1, 2, 4, 8, 16]), tn=st.sampled_from([1, 2, 4, 8, 16]),
       which=st.sampled_from(["tm", "tn"]))
def test_compute_bound_scaling_with_array_size(n, m, tm, tn, which):
    """Infinitely fast bus, latency 0, 3×3 conv on 16×16 with tr = tc = 16 (one spatial tile), tiles
    dividing M and N: every trip is compute bound (its 2304 taps outlast its load, at most 18·tn + 1
    beats, plus a store of at most 16·tm), so cycles = fixed + trips·(tr·tc·K² + handoff) + D (the pipeline drains once per
    operation, after its last trip), fixed = overhead + first load + last store + OUT.

    Doubling tm halves trips at equal D: the array part but D halves exactly. Doubling tn halves
    trips while D grows by one (one more adder-tree level): the array part but D halves, and D is
    the pipeline-depth term and nothing else.
    """
    assume((m % (2 * tm) == 0) if which == "tm" else (n % (2 * tn) == 0))
    network = Network("t", (n, 16, 16), [conv_layer("conv", n, 16, m, 3, 1, 1)])
    small = fe.FEConfig(tm, tn, 16, 16)
    big = fe.FEConfig(2 * tm if which == "tm" else tm, 2 * tn if which == "tn" else tn, 16, 16)
    (op,) = fe.fe_ops(network, small)
    parts = []
    for cfg in (small, big):
        oc = fe.op_cycles(op, cfg, HUGE_BUS, 0)
        ref = reference_schedule(op, cfg, HUGE_BUS, 0)
        fixed = (ref["overhead"] + ref["first_load"] + ref["last_store"] + fe.OUTPUT_STAGE_CYCLES
                 + 4 * fe.PHASE_HANDOFF_CYCLES)
        assert oc.bound == "compute"
        # every trip compute bound, plus its handoff cycle
        assert oc.cycles == fixed + oc.compute_cycles + oc.trips * fe.TRIP_HANDOFF_CYCLES
        assert oc.compute_cycles == oc.trips * 16 * 16 * 9 + fe.pipeline_depth(cfg.tn)
        parts.append(oc.cycles - fixed - fe.pipeline_depth(cfg.tn))
    assert parts[0] == 2 * parts[1]


def test_bound_memory_when_starved_compute_when_fast():
    big = conv_layer("conv", 64, 32, 64, 3, 1, 1)
    network = Network("t", (64, 32, 32), [big])
    cfg = fe.FEConfig(8, 8, 16, 16)
    (op,) = fe.fe_ops(network, cfg)
    assert fe.op_cycles(op, cfg, 1, 80).bound == "memory"
    assert fe.op_cycles(op, cfg, HUGE_BUS, 0).bound == "compute"
    zcu = load_board("zcu104")
    assert fe.op_cycles(op, cfg, zcu.dram_bytes_per_cycle, zcu.dram_latency_cycles).bound == "compute"
    # a 1×1 conv with a big array is memory bound even on a 16-byte bus
    pw = Network("t", (64, 32, 32), [conv_layer("pw", 64, 32, 64, 1, 1, 0)])
    cfg = fe.FEConfig(32, 32, 8, 8)
    (op,) = fe.fe_ops(pw, cfg)
    assert fe.op_cycles(op, cfg, 16, 60).bound == "memory"


def test_hand_computed_small_conv():
    """A 2-input, 2-output 3×3 pad-1 conv on 4×4, tm=tn=1, tr=tc=4, 8-bit, bus 4, L = 10, by hand.

    Per trip: compute 16·9 = 144 taps, plus D(1) = 7 on the op's last trip → 144, 144, 144, 151 (the
    second tile's store waits D after its first dispatch, less than the load it follows); load
    = 10 + rows 4·ceil(4/4)=4 + 9 tap rows of one weight, a beat each → 23; store = 1·4·ceil(4/4) = 4.
    Trips (m, n): (0,0) (0,1) (1,0) (1,1): all compute bound. overhead = 10 + ceil(64/4)=16 + 10 +
    ceil(2·4/4)=2 → 38; cycles = 38 + 23 + (3·144 + 151 + 4 handoffs) + 4 + 10 (store pipeline)
    + 4 phases · 2 = 670.
    """
    network = Network("t", (2, 4, 4), [conv_layer("c", 2, 4, 2, 3, 1, 1)])
    cfg = fe.FEConfig(1, 1, 4, 4)
    (op,) = fe.fe_ops(network, cfg)
    oc = fe.op_cycles(op, cfg, 4, 10)
    assert oc.cycles == 670 and oc.trips == 4 and oc.compute_cycles == 3 * 144 + 151
    assert oc.bus_cycles == 38 + 4 * 23 + 2 * 4


# --- 2. resources -------------------------------------------------------------------------------
BOARDS = ("pynq-z2", "zcu104", "ulx3s-85f", "orangecrab-25f")


@pytest.fixture(scope="module")
def vgg():
    return load_model("vgg16_cifar")


@pytest.fixture(scope="module")
def boards():
    return {name: load_board(name) for name in BOARDS}


@settings(max_examples=60, **SETTINGS)
@given(tm=st.integers(1, 31), tn=st.integers(1, 31), tr=st.sampled_from([4, 8, 13, 16]),
       bits=st.sampled_from([4, 8, 12, 16]), board=st.sampled_from(BOARDS), double=st.booleans())
def test_fe_dsp_and_ff_monotone_in_tm_and_tn(vgg, boards, tm, tn, tr, bits, board, double):
    """tm or tn grown by one or doubled never lowers DSPs or FFs (LUT and BRAM18: see the tests below)."""
    cfg = fe.FEConfig(tm, tn, tr, tr, w_bits=bits, a_bits=bits)
    ops = fe.fe_ops(vgg, cfg)
    base = fe.fe_resources(ops, cfg, boards[board])
    grow = (lambda t: 2 * t) if double else (lambda t: t + 1)
    for bigger in (fe.FEConfig(grow(tm), tn, tr, tr, bits, bits), fe.FEConfig(tm, grow(tn), tr, tr, bits, bits)):
        grown = fe.fe_resources(ops, bigger, boards[board])
        assert grown.dsp >= base.dsp and grown.ff >= base.ff, (cfg, bigger)


def test_fe_lut_monotone_in_tn_across_the_old_lutram_threshold(vgg, boards):
    """Weight-tile banks are K·K ≤ 49 words deep: distributed RAM at any width, so growing tn adds LUTs
    instead of trading them for block RAM (a bits-based rule used to drop LUTs at tn 14 → 15)."""
    cfg, bigger = fe.FEConfig(8, 14, 8, 8), fe.FEConfig(8, 15, 8, 8)
    ops = fe.fe_ops(vgg, cfg)
    small, large = fe.fe_resources(ops, cfg, boards["pynq-z2"]), fe.fe_resources(ops, bigger, boards["pynq-z2"])
    assert large.lut >= small.lut and large.bram18 >= small.bram18


def test_fe_bram_monotone_in_tm_across_the_bias_table(vgg, boards):
    cfg, bigger = fe.FEConfig(16, 8, 8, 8), fe.FEConfig(17, 8, 8, 8)
    ops = fe.fe_ops(vgg, cfg)
    small = fe.fe_resources(ops, cfg, boards["pynq-z2"])
    large = fe.fe_resources(ops, bigger, boards["pynq-z2"])
    assert large.bram18 >= small.bram18


def test_dsp_packing():
    """Two FE products per Xilinx DSP48 where (w_hi << (a + w)) + w_lo fits the A port (25 / 27 bits), as
    fe_engine.sv's PACK computes them; never on an ECP5; never in the RL array."""
    b = {name: load_board(name) for name in BOARDS}
    assert dsp_packing(b["zcu104"], 8, 8) == 2 and dsp_packing(b["pynq-z2"], 8, 8) == 2  # 25 bits: E1 and E2
    assert dsp_packing(b["zcu104"], 9, 8) == 2 and dsp_packing(b["pynq-z2"], 9, 8) == 1  # 26 bits: E2 only
    assert dsp_packing(b["zcu104"], 8, 10) == 1 and dsp_packing(b["zcu104"], 16, 16) == 1
    for name in ("ulx3s-85f", "orangecrab-25f"):
        assert dsp_packing(b[name], 8, 8) == 1 and dsp_packing(b[name], 4, 4) == 1
    network = Network("t", (64, 8, 8), [conv_layer("c", 64, 8, 64, 3, 1, 1)])
    for tm, tn, bits, name, dsp in [(8, 8, 8, "zcu104", 32), (5, 3, 8, "zcu104", 9), (8, 8, 16, "zcu104", 64),
                                    (8, 8, 8, "pynq-z2", 32), (8, 8, 8, "ulx3s-85f", 64), (8, 1, 8, "pynq-z2", 8),
                                    (4, 4, 16, "pynq-z2", 16)]:
        cfg = fe.FEConfig(tm, tn, 8, 8, w_bits=bits, a_bits=bits)
        assert fe.fe_resources(fe.fe_ops(network, cfg), cfg, b[name]).dsp == dsp, (tm, tn, bits, name)
    cfg = fe.FEConfig(8, 8, 8, 8, lut_mults=10)
    # the last 10 products in LUTs: lanes 0-5 packed (24 DSPs), products 48-53 one DSP each
    assert fe.fe_resources(fe.fe_ops(network, cfg), cfg, b["zcu104"]).dsp == 30
    assert rl.rl_resources([rl.GemmLayer("fc", 32, 64, 1)], rl.RLConfig(4, 4, bits=8), b["zcu104"]).dsp == 16
    assert rl.rl_resources([rl.GemmLayer("fc", 32, 64, 1)], rl.RLConfig(4, 4, bits=16), b["zcu104"]).dsp == 16


@pytest.mark.parametrize("depth, width, blocks", [
    (512, 36, 1), (1024, 36, 2), (2048, 18, 2), (100, 8, 1), (16384, 1, 1), (1024, 18, 1), (2048, 9, 1),
    (513, 36, 2), (16385, 1, 2), (1024, 1, 1), (1023, 1, 1), (4096, 16, 4), (300, 72, 2), (0, 36, 0), (64, 0, 0),
    (LUTRAM_MAX_DEPTH, 512, 0), (LUTRAM_MAX_DEPTH + 1, 1, 1), (32, 32, 0), (49, 120, 0)])
def test_memory_blocks_hand_computed(depth, width, blocks):
    assert memory_blocks(depth, width) == blocks


def test_adder_tree_power_of_two_counts():
    """tm trees of tn inputs: tn−1 adders, level l adders have product_bits + l + 1 bits (LUT6: 1 LUT/bit)."""
    board = load_board("pynq-z2")
    for tn in (1, 2, 4, 8, 16, 32):
        levels = int(math.log2(tn))
        tree = sum((tn >> (lv + 1)) * (16 + lv + 1) for lv in range(levels))
        assert array_resources(board, 0, 0, 8, 8, tn, 1, 0).lut == tree


def test_adder_tree_has_tn_minus_one_adders():
    board = load_board("pynq-z2")
    for tn in range(1, 33):
        # each adder is at least product_bits + 1 = 17 bits wide: a lower bound independent of level widths
        assert array_resources(board, 0, 0, 8, 8, tn, 1, 0).lut >= (tn - 1) * 17, tn


def test_ddr_shared_bank_misses_are_charged_to_loads_that_happen():
    """On the DDR-like memory the weights' row shares a bank with the image's open row in a fraction
    rows_open / banks of loads (two misses there). A conv of one tile has one load, its first: fewer
    banks raise its cost by the change of that expectation and no more (no next tile's load after the
    last trip to charge; review of the drain-once-per-tile change found one charged)."""
    network = Network("t", (4, 1, 1), [conv_layer("c", 4, 1, 4, 1, 1, 0)])
    cfg = fe.FEConfig(4, 4, 4, 4)
    (op,) = fe.fe_ops(network, cfg)
    cycles = {banks: fe.op_cycles(op, cfg, 8, 20, DdrTiming(2048, banks, 30, 702, 24)).cycles for banks in (2, 8)}
    first_load = (1 / 2 - 1 / 8) * 2 * 30
    assert 0 <= cycles[2] - cycles[8] <= math.ceil(first_load) + 1, cycles


def test_the_store_hold_never_makes_an_op_faster(monkeypatch):
    """The hold on a tile's store only delays it (isa.fe.store_hold): with it, no op of small maps and
    several input-channel tiles takes fewer cycles than without it, on the ideal memory and in the DDR-like
    closed form (whose rows reopened after a store the held trip's own term leaves out); it binds in some."""
    ddr = DdrTiming(row_bytes=2048, banks=8, t_miss=6, t_refi=702, t_rfc=24)
    cases = [(fe.FEOp("x", "conv", n=n, h=4, w=4, m=8, r=4, c=4, k=k, s=1, p=k // 2, groups=groups, keep=keep),
              fe.FEConfig(4, tn, 4, 4), latency, timing)
             for k in (1, 3) for groups in (1, 3) for n in (4, 8, 12) for tn in (2, 4) for keep in (False, True)
             for latency in (1, 2, 4) for timing in (None, ddr)]
    fe._op_cycles.cache_clear()
    held = [fe.op_cycles(op, cfg, 8, latency, timing).cycles for op, cfg, latency, timing in cases]
    monkeypatch.setattr(isa_fe, "store_hold", lambda taps, depth: np.zeros_like(np.asarray(taps)))
    fe._op_cycles.cache_clear()
    try:
        free = [fe.op_cycles(op, cfg, 8, latency, timing).cycles for op, cfg, latency, timing in cases]
    finally:
        monkeypatch.undo()
        fe._op_cycles.cache_clear()
    assert all(h >= f for h, f in zip(held, free))
    assert sum(h > f for h, f in zip(held, free)) >= 10  # and it binds, on both memories


@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([3, 16, 64, 130]), m=st.sampled_from([8, 64, 200]), size=st.sampled_from([2, 4, 7, 12]),
       k=st.sampled_from([1, 3]), tiles=st.sampled_from([(4, 4, 4, 4), (8, 16, 8, 4), (16, 8, 32, 4)]),
       images=st.sampled_from([1, 3]), keep=st.booleans(), refresh=st.sampled_from([0, 702]))
def test_prefetching_ops_on_the_ddr_like_memory_cost_at_least_the_ideal(n, m, size, k, tiles, images, keep, refresh):
    """The DDR-like walk of a prefetching op (`_prefetched_trips`' `extra`) only slows its trips: never below
    the ideal memory's cycles, and whole cycles (tests/sim/test_fe_prefetch.py checks it against the RTL)."""
    tm, tn, tr, tc = tiles
    geometry = ("conv", n, size, size, m, size, size, k, 1, k // 2, False, 0, images, 1, keep and size <= tr,
                tm, tn, min(tr, size), min(tc, size), 1, 8, 16.0, 40)
    timing = (2048, 6, refresh, 24 if refresh else 0, 8)  # row_bytes, t_miss, t_refi, t_rfc, banks
    ideal = fe._op_cycles(*geometry, None, prefetch=128)
    ddr = fe._op_cycles(*geometry, timing, prefetch=128)
    assert isinstance(ddr.cycles, int) and ddr.cycles >= ideal.cycles
