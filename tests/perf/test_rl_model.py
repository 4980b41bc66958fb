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
configs = st.builds(rl.RLConfig, tm=st.integers(1, 32), tn=st.integers(1, 32), bits=st.integers(4, 16),
                    batch=st.integers(1, 64))
memories = st.tuples(st.sampled_from([1, 2, 4, 8, 16]), st.integers(0, 80))


def expected_step(gemms, cfg, bus, latency, load=True, prefetch=0):
    """The docstring's descriptor list, recomputed: (layer, mode, cycles, macs, ops)."""
    lanes = 1 << (max(2, cfg.tm, cfg.tn, bus // 2) - 1).bit_length()
    fetch = latency + cdiv(rl.DESCRIPTOR_BYTES, bus)
    tree = math.ceil(math.log2(max(cfg.tm, cfg.tn)))  # the lanes' adder tree (FWD, BWD_DATA)

    def beats(rows, cols):
        return cdiv(rows * cdiv(cols, lanes) * lanes * 2, bus)

    first, last = gemms[0], gemms[-1]
    g_first, g_last = cfg.batch * first.positions, cfg.batch * last.positions
    out = [(first.name, "LOAD", fetch + latency + beats(g_first, first.n) + 2, 0, 0)] if load else []
    for g in gemms:
        rows = cfg.batch * g.positions
        macs = rows * g.m * g.n
        out.append((g.name, "FWD", fetch + cdiv(g.m, cfg.tm) * rows * cdiv(g.n, cfg.tn) + 13 + tree, macs, 2 * macs))
    out.append((last.name, "STORE", fetch + beats(g_last, last.m) + 3, 0, 0))
    out.append((last.name, "LOAD", fetch + latency + beats(g_last, last.m) + 2, 0, 0))
    for i in reversed(range(len(gemms))):
        g = gemms[i]
        rows = cfg.batch * g.positions
        macs = rows * g.m * g.n
        if i > 0:
            out.append((g.name, "BWD_DATA", fetch + cdiv(g.n, cfg.tn) * rows * cdiv(g.m, cfg.tm) + 13 + tree, macs,
                        2 * macs))
        drain = cdiv(cfg.tm * cfg.tn, max(cfg.tm, cfg.tn))  # a tile's results, max(tm, tn) a cycle
        interval, n_tiles = max(rows, drain), cdiv(g.n + 1, cfg.tn)
        start = max(0, cfg.tm - 4 - rows)  # the first tile: block 0's row starts walked
        for block in range(cdiv(g.m, cfg.tm)):  # each block's last tile waits for the next block's walk
            end = start + (n_tiles - 1) * interval
            end = max(end, 2 * cfg.tm - 4 - rows) if block == 0 else max(end, last_end + cfg.tm)
            last_end, start = end, end + interval
        update = fetch + last_end + rows + 13 + drain - 1
        if i == 0 and prefetch:  # the next step's features, beside the last UPDATE: their beats follow its fetch
            out.append((g.name, "LOAD", fetch + 2, 0, 0))
            update = max(update, fetch + beats(prefetch * g.positions, g.n) + 1)
        out.append((g.name, "UPDATE", update, macs, 2 * macs))  # the dW MACs; the update is not an array op
    return out


@settings(max_examples=200, **SETTINGS)
@given(gemms=gemm_lists, cfg=configs, mem=memories, load=st.booleans(), prefetch=st.integers(0, 64))
def test_step_cycles_equal_the_docstring(gemms, cfg, mem, load, prefetch):
    bus, latency = mem
    got = [(d.layer, d.mode, d.cycles, d.macs, d.ops)
           for d in rl.step_cycles(gemms, cfg, bus, latency, load=load, prefetch=prefetch)]
    assert got == expected_step(gemms, cfg, bus, latency, load, prefetch)


def test_a_run_of_steps_loads_in_the_background_but_first_and_last():
    assert rl.step_schedule([8, 8, 8, 3]) == [(True, 8), (False, 8), (False, 3), (False, 0)]
    assert rl.step_schedule([5]) == [(True, 0)]
    assert rl.step_schedule([]) == []
    # a load that outlasts the UPDATE beside it sets that UPDATE's cycles: fetch + beats + 1
    g, cfg = [rl.GemmLayer("fc", 2, 4096, 1)], rl.RLConfig(4, 4, batch=16)
    alone, beside = (rl.step_cycles(g, cfg, 2, 20, load=False, prefetch=p)[-1].cycles for p in (0, 16))
    assert beside == 20 + 64 + 16 * 4096 + 1 > alone


@settings(max_examples=100, **SETTINGS)
@given(gemms=gemm_lists, cfg=configs, mem=memories)
def test_descriptor_order_ops_and_array_bound(gemms, cfg, mem):
    bus, latency = mem
    step = rl.step_cycles(gemms, cfg, bus, latency)
    names = [g.name for g in gemms]
    order = [("LOAD", names[0])] + [("FWD", n) for n in names] + [("STORE", names[-1]), ("LOAD", names[-1])]
    for i in reversed(range(len(names))):
        order += ([("BWD_DATA", names[i])] if i else []) + [("UPDATE", names[i])]
    assert [(d.mode, d.layer) for d in step] == order
    assert len(step) == 3 + 3 * len(gemms) - 1  # 3 transfers + FWD, UPDATE per layer + BWD_DATA for all but the first
    # ops of a step = 2·(FWD + BWD_DATA + BWD_WEIGHT MACs): no update or bias ops (module docstring, "Ops")
    macs = sum(d.macs for d in step)
    assert sum(d.ops for d in step) == 2 * macs
    assert all(d.ops == 2 * d.macs for d in step)
    assert macs == sum((3 if i else 2) * cfg.batch * g.positions * g.m * g.n for i, g in enumerate(gemms))
    fetch = latency + cdiv(rl.DESCRIPTOR_BYTES, bus)
    for d in step:  # the array part alone is bounded by the array size
        if d.macs:
            assert (d.cycles - fetch - rl.GEMM_OVERHEAD) * cfg.tm * cfg.tn >= d.macs


def test_hand_computed_step():
    """fc 20→10 (P = 1), batch 4, tm = tn = 4, bus 8, L = 10: 4 stash lanes, fetch = 10 + 128/8 = 26.

    LOAD 26 + 10 + (4 rows · 5 words · 4 lanes · 2 B / 8 = 20 beats) + 2 = 58;
    FWD 26 + Mt·G·Nt = 3·4·5 = 60 + 13 + 2 (adder tree over 4 products) = 101; STORE 26 + (4 · 3 · 4 · 2 / 8
    = 12) + 3 = 41; LOAD dY 26 + 10 + 12 + 2 = 50; UPDATE 26 + Mt·Nt'·G = 3·6·4 = 72 + 13 + 3 (the last tile's 16
    results drain through 4 requantisers in 4 cycles; the 4 LFSR row starts are walked while the first
    tile accumulates, max(0, 4 − 4 − 4) = 0 cycles before it) = 114 → 364 cycles.
    """
    step = rl.step_cycles([rl.GemmLayer("fc", 10, 20, 1)], rl.RLConfig(4, 4, bits=16, batch=4), 8, 10)
    assert [(d.mode, d.cycles) for d in step] == [("LOAD", 58), ("FWD", 101), ("STORE", 41), ("LOAD", 50),
                                                  ("UPDATE", 114)]
    assert sum(d.ops for d in step) == 2 * 2 * 4 * 200  # FWD + BWD_WEIGHT MACs; the 210 updates are not ops


def test_rl_gemms_of_networks(vgg_gemms):
    assert vgg_gemms == [rl.GemmLayer("fc1", 256, 512, 1), rl.GemmLayer("fc2", 10, 256, 1)]
    pw = Layer("pw", "conv2d", ["input"], (8, 4, 4), (6, 4, 4), frozen=False)
    assert rl.rl_gemms(Network("t", (8, 4, 4), [pw])) == [rl.GemmLayer("pw", 6, 8, 16)]
    conv3 = Layer("c3", "conv2d", ["input"], (8, 4, 4), (6, 4, 4), kernel=3, padding=1, frozen=False)
    assert rl.rl_gemms(Network("t", (8, 4, 4), [conv3])) == [rl.GemmLayer("c3", 6, 8, 16, taps=9, in_positions=16)]
    grouped = Layer("g3", "conv2d", ["input"], (8, 4, 4), (8, 4, 4), kernel=3, padding=1, groups=2, frozen=False)
    with pytest.raises(UnsupportedLayerError, match="g3"):
        rl.rl_gemms(Network("t", (8, 4, 4), [grouped]))
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
@given(tm=st.integers(1, 32), tn=st.integers(1, 32), bits=st.sampled_from([8, 12, 16]),
       board=st.sampled_from(BOARDS), double=st.booleans())
def test_rl_dsp_and_ff_monotone_in_tm_and_tn(vgg_gemms, boards, tm, tn, bits, board, double):
    """tm or tn grown by one or doubled never lowers DSPs or FFs. BRAM18 and LUTRAM are monotone only up
    to block rounding: more banks can pack better (test_rl_bram_rounding_explained shows a case)."""
    grow = (lambda t: 2 * t) if double else (lambda t: t + 1)
    base = rl.rl_resources(vgg_gemms, rl.RLConfig(tm, tn, bits), boards[board])
    for bigger in (rl.RLConfig(grow(tm), tn, bits), rl.RLConfig(tm, grow(tn), bits)):
        grown = rl.rl_resources(vgg_gemms, bigger, boards[board])
        assert grown.dsp >= base.dsp and grown.ff >= base.ff, (tm, tn, bigger)


def test_rl_storage_hand_computed(vgg_gemms, boards):
    """vgg16 head (fc1 512→256, fc2 256→10), tm = 1, tn = 4, batch 16 on pynq-z2 (8-byte bus → 4 lanes):
    weights 4 banks × ceil((256·128 + 10·64) / 1024) = 33 → 132 BRAM18, bias 1 bank of 266 → 1;
    A stash 4 banks × 16·(128 + 64 + 3 + 128: the second feature region) = 5168 words → 4 × 6 = 24; G stash
    4 × 16·(64 + 3) = 1072 → 4 × 2 = 8."""
    storage = rl.rl_storage(vgg_gemms, rl.RLConfig(1, 4), boards["pynq-z2"])
    assert storage.weights.bram18 == 133
    assert storage.total.bram18 == 133 + 24 + 8
    assert storage.weight_bits == (256 * 512 + 256 + 10 * 256 + 10) * 16


def test_inference_is_the_steps_forward_list():
    """rl.infer_cycles (the latency's RL part) is the forward list RLHost.infer runs: a step's LOAD, FWDs
    and STORE, of one sample by default; the step's backward half is not in it."""
    from dtlgen.model import load_model

    gemms = rl.rl_gemms(load_model("digits_cnn"))
    cfg = rl.RLConfig(4, 4, 16, 0, 16, 7)
    for samples in (1, 5, 16):
        step = rl.step_cycles(gemms, cfg, 8, 40, samples=samples)
        modes = [d.mode for d in step]
        forward = step[:modes.index("STORE") + 1]
        assert [d.mode for d in forward] == ["LOAD"] + ["FWD"] * len(gemms) + ["STORE"]
        assert rl.infer_cycles(gemms, cfg, 8, 40, samples) == sum(d.cycles for d in forward) < sum(d.cycles for d in step)
    assert rl.infer_cycles([], cfg, 8, 40) == 0


@settings(max_examples=40, deadline=None)
@given(widths=st.lists(st.integers(2, 48), min_size=3, max_size=4), batch=st.integers(1, 32),
       hw=st.sampled_from([(1, 1), (2, 2), (1, 3)]), bits=st.sampled_from([8, 10, 16]))
def test_the_models_accumulator_width_is_the_quantisers_bound(widths, batch, hw, bits):
    """The DSE's rl.acc_bits comes from the quantiser; generate refuses one below `required_acc_bits`. Both
    bound the same sums, so a head of 1x1 convs whose BWD_WEIGHT sum (batch x positions terms) is the widest
    needs no more than the quantiser gives it (the model once added the bias bit to the backward sums)."""
    import numpy as np

    from dtlgen.quant.quantize import PrecisionConfig, quantize

    rng = np.random.default_rng(len(widths) * 1000 + batch)
    layers, prev = [], "input"
    for i in range(len(widths) - 1):
        n, m = widths[i], widths[i + 1]
        layers.append(Layer(f"c{i}", "conv2d", [prev], (n, *hw), (m, *hw), activation="relu" if i else None,
                            weight=rng.normal(0, 1 / np.sqrt(n), (m, n, 1, 1)), bias=rng.normal(0, 0.1, m),
                            frozen=i == 0))
        prev = f"c{i}"
    network = Network("head", (widths[0], *hw), layers)
    qnet = quantize(network, rng.standard_normal((8, widths[0], *hw)), PrecisionConfig(rl_bits=bits, batch=batch))
    cfg = rl.RLConfig(4, 4, bits=bits, batch=batch)
    assert rl.required_acc_bits(rl.rl_gemms(network), cfg) <= qnet.rl_acc_bits()
