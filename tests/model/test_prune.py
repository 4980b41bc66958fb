"""Magnitude pruning (dtlgen.model.prune) and the pruning-mask plane the RL engine loads (LOAD_M)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dtlgen.errors import DesignError, ModelSpecError
from dtlgen.generator.rl_program import plan_rl
from dtlgen.host import rl_program as prog
from dtlgen.isa import rl as isa_rl
from dtlgen.model.ir import Layer, Network
from dtlgen.model.prune import check_prune, layer_mask, prune, sparsity_of
from dtlgen.perf.rl import RLConfig
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize


def _head(n: int = 12, hidden: int = 9, classes: int = 5, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    layers = [Layer("conv", "conv2d", ["input"], (3, 4, 4), (n, 1, 1), kernel=4, weight=rng.normal(size=(n, 3, 4, 4)),
                    bias=np.zeros(n)),
              Layer("flat", "flatten", ["conv"], (n, 1, 1), (n,)),
              Layer("fc1", "linear", ["flat"], (n,), (hidden,), activation="relu", weight=rng.normal(size=(hidden, n)),
                    bias=rng.normal(size=hidden), frozen=False),
              Layer("fc2", "linear", ["fc1"], (hidden,), (classes,), weight=rng.normal(size=(classes, hidden)),
                    bias=np.zeros(classes), frozen=False)]
    return Network("head", (3, 4, 4), layers)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=7),
                  elements=st.floats(-4, 4, allow_nan=False)), st.floats(0, 0.999))
def test_a_mask_removes_the_smallest_magnitudes(weight, share):
    mask = layer_mask(weight, share)
    assert mask.shape == weight.shape and mask.dtype == np.uint8
    assert int(weight.size - mask.sum()) == int(round(share * weight.size))
    kept, removed = np.abs(weight[mask == 1]), np.abs(weight[mask == 0])
    if kept.size and removed.size:
        assert removed.max() <= kept.min()


def test_pruning_masks_the_parts_it_is_asked_to():
    net = _head()
    pruned = prune(net, {"rl": 0.8})
    assert pruned.layer("conv").mask is None and np.array_equal(pruned.layer("conv").weight, net.layer("conv").weight)
    for name in ("fc1", "fc2"):
        layer = pruned.layer(name)
        assert np.all(layer.weight[layer.mask == 0] == 0)
        assert np.array_equal(layer.weight[layer.mask == 1], net.layer(name).weight[layer.mask == 1])
    assert sparsity_of(pruned, "rl") == pytest.approx(0.8, abs=0.005) and sparsity_of(pruned, "fe") == 0.0
    # one threshold over the part: no removed weight of either layer is larger than a kept one of either
    kept = np.concatenate([np.abs(net.layer(n).weight[pruned.layer(n).mask == 1]) for n in ("fc1", "fc2")])
    removed = np.concatenate([np.abs(net.layer(n).weight[pruned.layer(n).mask == 0]) for n in ("fc1", "fc2")])
    assert removed.max() <= kept.min()
    both = prune(pruned, {"fe": 0.5, "rl": 0.5})  # pruning again keeps what was removed removed
    assert np.all(both.layer("fc1").mask <= pruned.layer("fc1").mask)
    assert sparsity_of(both, "fe") == pytest.approx(0.5, abs=0.01)
    assert net.layer("fc1").mask is None  # the original is untouched


@pytest.mark.parametrize("bad", [None, {}, {"head": 0.5}, {"rl": 1.0}, {"rl": -0.1}, {"rl": True}, {"rl": "0.5"},
                                 {"fe": float("nan")}, [0.5]])
def test_bad_pruning_shares_are_refused_with_the_fix(bad):
    with pytest.raises(ModelSpecError, match="prune"):
        check_prune(bad)


def _layout(network: Network, tm: int, tn: int, bus: int):
    qnet = quantize(network, np.random.default_rng(1).standard_normal((8, 3, 4, 4)), PrecisionConfig(batch=4))
    return qnet, plan_rl(qnet, RLConfig(tm, tn, batch=4), bus)


@pytest.mark.parametrize("tm, tn, bus", [(2, 3, 8), (8, 9, 8), (4, 4, 2), (16, 16, 16)])
def test_the_mask_plane_holds_every_tiles_bits_in_engine_order(tm, tn, bus):
    qnet, layout = _layout(prune(_head(40, 33, 10), {"rl": 0.7}), tm, tn, bus)
    masks = golden.rl_masks(qnet)
    assert layout.engine.has_mask == 1 and layout.mask_addr >= layout.params_addr + layout.params_bytes
    plane = np.frombuffer(prog.mask_image(layout, masks), dtype=np.uint8)
    beats = isa_rl.mask_tile_beats(tm, tn, bus)
    assert plane.size == layout.mask_bytes == layout.w_depth_used * beats * bus
    bits = np.unpackbits(plane, bitorder="little").reshape(layout.w_depth_used, beats * bus * 8)
    for p in layout.layers:
        keep = np.zeros((p.mt * tm, p.nt * tn), dtype=np.uint8)
        keep[:p.m, :p.n] = masks[p.name]
        for t in range(p.mt * p.nt):
            t_m, t_n = divmod(t, p.nt)
            assert np.array_equal(bits[p.wbase + t, :tm * tn], keep[t_m * tm:(t_m + 1) * tm, t_n * tn:(t_n + 1) * tn].reshape(-1))
            assert not bits[p.wbase + t, tm * tn:].any()  # padding
    desc = isa_rl.decode(prog.masks_list(layout))
    assert (desc["mode"], desc["n"], desc["dram"], desc["beats"]) == (isa_rl.MODES["LOAD_M"], layout.w_depth_used,
                                                                     layout.mask_addr, layout.w_depth_used * beats)


def test_a_dense_network_gets_no_mask_memory_and_no_load_m():
    qnet, layout = _layout(_head(), 2, 3, 8)
    assert golden.rl_masks(qnet) is None and layout.engine.has_mask == 0 and layout.mask_addr == -1
    with pytest.raises(DesignError, match="without pruning masks"):
        prog.masks_list(layout)


def test_a_mask_of_the_wrong_size_or_layer_is_refused():
    qnet, layout = _layout(prune(_head(), {"rl": 0.5}), 2, 3, 8)
    with pytest.raises(DesignError, match=r"has shape \(3,\)"):
        prog.mask_image(layout, {"fc1": np.ones(3)})  # (the size and the shape are checked)
    with pytest.raises(DesignError, match="not retrainable layers"):
        prog.mask_image(layout, {"conv": np.ones(3)})


def test_the_golden_update_holds_pruned_weights_at_zero():
    qnet, layout = _layout(prune(_head(), {"rl": 0.6}), 2, 3, 8)
    masks = golden.rl_masks(qnet)
    rng = np.random.default_rng(3)
    features = {"flat": rng.integers(-100, 100, (4, 12))}
    labels = rng.integers(0, 5, 4)
    state = golden.initial_rl_state(qnet)
    masked, _ = golden.rl_train_step(qnet, state, features, labels, 0, 2, masks=masks)
    dense, _ = golden.rl_train_step(qnet, state, features, labels, 0, 2)
    for name, mask in masks.items():
        assert not masked[name][0][mask == 0].any()
        assert np.array_equal(masked[name][0][mask == 1], dense[name][0][mask == 1])
        assert np.array_equal(masked[name][1], dense[name][1])  # biases are never masked
    assert any(dense[name][0][mask == 0].any() for name, mask in masks.items()), "no pruned weight would revive"


def test_load_model_prunes_and_refuses_bad_shares():
    import dtlgen

    net = dtlgen.load_model("digits_cnn", prune={"fe": 0.5, "rl": 0.8})
    assert sparsity_of(net, "fe") == pytest.approx(0.5, abs=1e-3) and sparsity_of(net, "rl") == pytest.approx(0.8, abs=1e-3)
    assert all(layer.mask is not None for layer in net.layers if layer.op in ("conv2d", "linear"))
    with pytest.raises(ModelSpecError, match="prune"):
        dtlgen.load_model("digits_cnn", prune={"rl": 1})


@pytest.mark.parametrize("value, message", [("rl=1", "from 0 to below 1"), ("rl=", "PART=SHARE"), ("x=0.5", "keys fe, rl"),
                                            ("rl=nan", "from 0 to below 1"), ("", "PART=SHARE"), ("rl=0_5", "PART=SHARE")])
def test_the_prune_option_refuses_bad_values_with_the_fix(capsys, value, message):
    from dtlgen.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["dse", "digits_cnn", "--board", "pynq-z2", "--out", "never", "--prune", value])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_neuron_share_that_removes_no_neuron_says_so():
    import dtlgen

    with pytest.raises(ModelSpecError, match=r"removes no neuron of fc1 \(32 outputs\); give more than 0.0156"):
        dtlgen.load_model("digits_cnn", prune={"rl_neurons": 0.01})
    assert dtlgen.load_model("digits_cnn", prune={"rl_neurons": 0.02}).layer("fc1").out_shape == (31,)


def test_neuron_pruning_narrows_the_head_and_computes_what_zeroed_neurons_would():
    """prune_neurons removes fc1's weakest output units and fc2's inputs that read them: the narrower network's
    float outputs are the original's with those units' weights and biases set to 0, and its RL GEMMs shrink."""
    from dtlgen.model.prune import prune_neurons
    from dtlgen.quant.reference import float_forward

    net = _head(40, 33, 10)
    narrow = prune_neurons(net, 0.5)
    fc1, fc2 = narrow.layer("fc1"), narrow.layer("fc2")
    assert fc1.weight.shape == (17, 40) and fc1.out_shape == (17,) and fc2.weight.shape == (10, 17) and fc2.in_shape == (17,)
    norms = np.linalg.norm(net.layer("fc1").weight, axis=1)
    kept = np.sort(np.argsort(-norms)[:17])  # 33 - round(16.5)
    assert np.array_equal(fc1.weight, net.layer("fc1").weight[kept])
    zeroed = Network(net.name, net.input_shape, [l for l in net.layers])
    gone = np.setdiff1d(np.arange(33), kept)
    w, b = net.layer("fc1").weight.copy(), net.layer("fc1").bias.copy()
    w[gone], b[gone] = 0, 0
    from dataclasses import replace as _replace
    zeroed.layers[2] = _replace(net.layer("fc1"), weight=w, bias=b)
    x = np.random.default_rng(4).standard_normal((6, 3, 4, 4))
    assert np.allclose(float_forward(narrow, x)["fc2"], float_forward(zeroed, x)["fc2"])
    _, wide = _layout(net, 4, 4, 8)
    _, thin = _layout(narrow, 4, 4, 8)
    assert thin.w_depth_used < wide.w_depth_used
    with pytest.raises(ModelSpecError, match="rl_neurons"):
        prune_neurons(Network("one", (4,), [Layer("fc", "linear", ["input"], (4,), (3,), weight=np.ones((3, 4)),
                                                  bias=np.zeros(3), frozen=False)]), 0.5)


def test_pruning_refuses_weights_drawn_from_a_seed_and_odd_masks():
    from dataclasses import replace as _replace

    from dtlgen.model.prune import with_masks

    net = _head()
    seeded = Network(net.name, net.input_shape, [_replace(l, init_seed={"seed": 1}) if l.name == "fc1" else l
                                                 for l in net.layers])
    with pytest.raises(ModelSpecError, match="drawn from a seed"):
        prune(seeded, {"rl": 0.5})
    with pytest.raises(ModelSpecError, match="removes every one"):
        prune(net, {"rl": 0.9999})
    tiny = Network(net.name, net.input_shape, [_replace(l, weight=l.weight * 1e-3) if l.name == "fc2" else l
                                               for l in net.layers])
    with pytest.raises(ModelSpecError, match="every weight of layer 'fc2'"):  # the part keeps some, fc2 none
        prune(tiny, {"rl": 0.5})
    with pytest.raises(ModelSpecError, match="prune"):
        check_prune({"rl": 10 ** 400})
    twos = with_masks(net, {"fc2": np.full((5, 9), 2)})
    assert twos.layer("fc2").mask.max() == 1 and sparsity_of(twos, "rl") == 0.0
    with pytest.raises(ModelSpecError, match="finite"):
        with_masks(net, {"fc2": np.full((5, 9), np.nan)})


def test_the_design_fingerprint_knows_which_layers_are_pruned_not_their_weights():
    from dtlgen.perf.validate import network_fingerprint

    net = _head()
    other = _head(seed=5)
    assert network_fingerprint(prune(net, {"rl": 0.8})) == network_fingerprint(prune(other, {"rl": 0.8}))
    assert network_fingerprint(prune(net, {"rl": 0.8})) != network_fingerprint(net)
