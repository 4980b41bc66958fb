"""RL engine training-step model (`dtlgen.perf.rl`) against its module docstring, storage and resources."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtlgen.boards import load_board
from dtlgen.errors import UnsupportedLayerError
from dtlgen.model import load_model
from dtlgen.model.ir import Layer, Network
from dtlgen.perf import rl
from dtlgen.perf.resources import memory_blocks

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOARDS = ("pynq-z2", "zcu104", "ulx3s-85f", "orangecrab-25f")


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


gemm_lists = st.lists(st.builds(rl.GemmLayer, st.just(""), st.integers(1, 700), st.integers(1, 700),
                                st.sampled_from([1, 1, 1, 4, 16, 64])), min_size=1, max_size=4).map(
    lambda gs: [rl.GemmLayer(f"l{i}", g.m, g.n, g.positions) for i, g in enumerate(gs)])
configs = st.builds(rl.RLConfig, tm=st.integers(1, 32), tn=st.integers(1, 32), bits=st.integers(4, 24),
                    batch=st.integers(1, 64))
memories = st.tuples(st.sampled_from([1, 2, 4, 8, 16]), st.integers(0, 80))


def expected_step(gemms, cfg, bus, latency):
    """The docstring's descriptor list, recomputed: (layer, mode, cycles, macs, ops)."""
    depth = 4 + max(0, math.ceil(math.log2(max(cfg.tm, cfg.tn))))
    fetch = latency + cdiv(rl.DESCRIPTOR_BYTES, bus)
    b = cdiv(cfg.bits, 8)
    first, last = gemms[0], gemms[-1]
    g_first, g_last = cfg.batch * first.positions, cfg.batch * last.positions
    out = [(first.name, "LOAD", fetch + latency + cdiv(g_first * first.n * b, bus), 0, 0)]

    def sweep(g):  # Mt · Nt · G + D
        rows = cfg.batch * g.positions
        return cdiv(g.m, cfg.tm) * cdiv(g.n, cfg.tn) * rows + depth, rows * g.m * g.n

    for g in gemms:
        cycles, macs = sweep(g)
        out.append((g.name, "FWD", fetch + cycles, macs, 2 * macs))
    logits = cdiv(g_last * last.m * b, bus)
    out.append((last.name, "STORE", fetch + logits, 0, 0))
    out.append((last.name, "LOAD", fetch + latency + logits, 0, 0))
    for i in reversed(range(len(gemms))):
        g = gemms[i]
        cycles, macs = sweep(g)
        if i > 0:
            out.append((g.name, "BWD_DATA", fetch + cycles, macs, 2 * macs))
        out.append((g.name, "BWD_WEIGHT", fetch + cycles, macs, 2 * macs))
        out.append((g.name, "UPDATE", fetch + cdiv(g.m, cfg.tm) * cdiv(g.n, cfg.tn) + depth, 0, g.m * g.n + g.m))
    return out


@settings(max_examples=200, **SETTINGS)
@given(gemms=gemm_lists, cfg=configs, mem=memories)
def test_step_cycles_equal_the_docstring(gemms, cfg, mem):
    bus, latency = mem
    got = [(d.layer, d.mode, d.cycles, d.macs, d.ops) for d in rl.step_cycles(gemms, cfg, bus, latency)]
    assert got == expected_step(gemms, cfg, bus, latency)


@settings(max_examples=100, **SETTINGS)
@given(gemms=gemm_lists, cfg=configs, mem=memories)
def test_descriptor_order_ops_and_array_bound(gemms, cfg, mem):
    bus, latency = mem
    step = rl.step_cycles(gemms, cfg, bus, latency)
    names = [g.name for g in gemms]
    order = [("LOAD", names[0])] + [("FWD", n) for n in names] + [("STORE", names[-1]), ("LOAD", names[-1])]
    for i in reversed(range(len(names))):
        order += ([("BWD_DATA", names[i])] if i else []) + [("BWD_WEIGHT", names[i]), ("UPDATE", names[i])]
    assert [(d.mode, d.layer) for d in step] == order
    assert len(step) == 2 + 4 * len(gemms)  # 3 transfers + 3 per layer + BWD_DATA for all but the first
    # ops of a step = 2·(FWD + BWD_DATA + BWD_WEIGHT MACs) + updated weights and biases
    macs = sum(d.macs for d in step if d.mode in ("FWD", "BWD_DATA", "BWD_WEIGHT"))
    assert sum(d.ops for d in step) == 2 * macs + sum(g.m * g.n + g.m for g in gemms)
    assert macs == sum((3 if i else 2) * cfg.batch * g.positions * g.m * g.n for i, g in enumerate(gemms))
    fetch = latency + cdiv(rl.DESCRIPTOR_BYTES, bus)
    for d in step:
        assert d.cycles * cfg.tm * cfg.tn >= d.macs
        if d.mode in ("FWD", "BWD_DATA", "BWD_WEIGHT"):  # the array part alone is bounded by the array size
            assert (d.cycles - fetch - rl.pipeline_depth(cfg.tm, cfg.tn)) * cfg.tm * cfg.tn >= d.macs


def test_hand_computed_step():
    """fc 20→10 (P = 1), batch 4, tm = tn = 4, 16-bit, bus 8, L = 10.

    D = 4 + 2 = 6, fetch = 10 + 4 = 14, Mt·Nt = 3·5 = 15, G = 4.
    LOAD 14 + 10 + ceil(4·20·2 / 8) = 44; FWD 14 + 60 + 6 = 80; STORE 14 + ceil(80/8) = 24;
    LOAD dY 14 + 10 + 10 = 34; BWD_WEIGHT 80; UPDATE 14 + 15 + 6 = 35 → 297 cycles.
    """
    step = rl.step_cycles([rl.GemmLayer("fc", 10, 20, 1)], rl.RLConfig(4, 4, bits=16, batch=4), 8, 10)
    assert [(d.mode, d.cycles) for d in step] == [("LOAD", 44), ("FWD", 80), ("STORE", 24), ("LOAD", 34),
                                                  ("BWD_WEIGHT", 80), ("UPDATE", 35)]
    assert sum(d.ops for d in step) == 2 * 2 * 4 * 200 + 210


def test_rl_gemms_of_networks(vgg_gemms):
    assert vgg_gemms == [rl.GemmLayer("fc1", 256, 512, 1), rl.GemmLayer("fc2", 10, 256, 1)]
    pw = Layer("pw", "conv2d", ["input"], (8, 4, 4), (6, 4, 4), frozen=False)
    assert rl.rl_gemms(Network("t", (8, 4, 4), [pw])) == [rl.GemmLayer("pw", 6, 8, 16)]
    conv3 = Layer("c3", "conv2d", ["input"], (8, 4, 4), (6, 4, 4), kernel=3, padding=1, frozen=False)
    with pytest.raises(UnsupportedLayerError, match="c3"):
        rl.rl_gemms(Network("t", (8, 4, 4), [conv3]))
    assert rl.step_cycles([], rl.RLConfig(4, 4), 8, 10) == []


def test_storage_of_mobilenet_fc_layers_hand_computed():
    """fc1 1024→256 + fc2 256→10 at 16 bit, tm = tn = 8: 64 weight banks of depth 32·128 + 32·2 = 4160,
    each 1024×18-shaped: ceil(4160/1024) = 5 RAMB18 → 320; bias banks 8 × (32 + 2) × 16 bit → LUTRAM."""
    gemms = rl.rl_gemms(load_model("mobilenet_v1_cifar"))
    assert gemms == [rl.GemmLayer("fc1", 256, 1024, 1), rl.GemmLayer("fc2", 10, 256, 1)]
    storage = rl.rl_storage(gemms, rl.RLConfig(8, 8, bits=16), load_board("pynq-z2"))
    assert storage.weight_bits == (256 * 1024 + 256 + 10 * 256 + 10) * 16
    assert storage.weights.bram18 == 320
    assert memory_blocks(4160, 16) == 5 and memory_blocks(34, 16) == 0


# --- resources: monotone in tm and tn ---------------------------------------------------------
@pytest.fixture(scope="module")
def vgg_gemms():
    return rl.rl_gemms(load_model("vgg16_cifar"))


@pytest.fixture(scope="module")
def boards():
    return {name: load_board(name) for name in BOARDS}


@settings(max_examples=80, **SETTINGS)
@given(tm=st.integers(1, 32), tn=st.integers(1, 32), bits=st.sampled_from([8, 12, 16, 24]),
       board=st.sampled_from(BOARDS), double=st.booleans())
def test_rl_dsp_and_ff_monotone_in_tm_and_tn(vgg_gemms, boards, tm, tn, bits, board, double):
    """tm or tn grown by one or doubled never lowers DSPs or FFs. BRAM18 and LUTRAM are monotone only up
    to block rounding: more banks can pack better (test_rl_bram_rounding_explained shows a case)."""
    grow = (lambda t: 2 * t) if double else (lambda t: t + 1)
    base = rl.rl_resources(vgg_gemms, rl.RLConfig(tm, tn, bits), boards[board])
    for bigger in (rl.RLConfig(grow(tm), tn, bits), rl.RLConfig(tm, grow(tn), bits)):
        grown = rl.rl_resources(vgg_gemms, bigger, boards[board])
        assert grown.dsp >= base.dsp and grown.ff >= base.ff, (tm, tn, bigger)


def test_rl_bram_rounding_explained(vgg_gemms, boards):
    """RL BRAM18 can drop when tn grows (167 at tm=1,tn=3 vs 162 at tn=4): block rounding of the
    16-bit memories, by hand:
    weights 3 × ceil((256·171 + 10·86)/1024) = 132 vs 4 × ceil((256·128 + 10·64)/1024) = 132, bias 1;
    stash 3 × ceil(16·171 + 16·86 = 4112 / 1024) = 15 vs 4 × 3 = 12; logits 1;
    gradients 2·3 × ceil(16·171 = 2736 / 1024) = 18 vs 2·4 × 2 = 16. Totals 167 and 162."""
    small = rl.rl_storage(vgg_gemms, rl.RLConfig(1, 3), boards["pynq-z2"])
    large = rl.rl_storage(vgg_gemms, rl.RLConfig(1, 4), boards["pynq-z2"])
    assert small.weights.bram18 == large.weights.bram18 == 133
    assert (small.total.bram18, large.total.bram18) == (133 + 15 + 1 + 18, 133 + 12 + 1 + 16)
    assert small.weight_bits == large.weight_bits
