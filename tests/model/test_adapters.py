"""Residual adapters (issue 20): where they go, what they leave unchanged, the split they make, their
domain files, and the accuracy they buy on the digits task in the golden model."""

from __future__ import annotations

import numpy as np
import pytest

from dtlgen.api import load_model
from dtlgen.errors import ModelSpecError, UnsupportedLayerError
from dtlgen.model.adapters import (adapter_blocks, adapter_names, add_adapters, load_domain, save_domain,
                                   trained_parameters)
from dtlgen.quant import golden, reference
from dtlgen.quant.quantize import PrecisionConfig, quantize


@pytest.fixture(scope="module")
def digits():
    return load_model("digits_cnn")


@pytest.mark.parametrize("where,names", [
    ("tail", ["pool4_adapter"]),
    ("deep", ["conv3_adapter", "pool4_adapter"]),
    ("all", ["conv1_adapter", "pool2_adapter", "conv3_adapter", "pool4_adapter"]),
])
def test_adapters_follow_the_chosen_blocks_and_move_the_split(digits, where, names):
    assert adapter_blocks(digits) == ["conv1", "pool2", "conv3", "pool4"]
    net = add_adapters(digits, where)
    assert adapter_names(net) == names
    assert net.layers[net.split_index].name == names[0]
    trained = [layer.name for layer in net.retrainable_layers if layer.has_weights and layer.trained]
    assert trained == names + ["fc1", "fc2"]
    fixed_convs = [layer.name for layer in net.retrainable_layers if layer.has_weights and not layer.trained]
    assert fixed_convs == {"tail": [], "deep": ["conv4"], "all": ["conv2", "conv3", "conv4"]}[where]
    for name in names:  # each adapter reads its block and feeds what the block fed
        adapter = net.layer(name)
        assert adapter.inputs == [name[:-len("_adapter")]] and adapter.kernel == 1 and adapter.activation is None
        assert sum(name in layer.inputs for layer in net.layers) == 1
    assert trained_parameters(net) == trained_parameters(digits) + sum(net.layer(n).params for n in names)
    # identity at insertion: the same logits
    x = np.random.default_rng(0).random((3, 1, 8, 8))
    np.testing.assert_allclose(reference.float_forward(net, x)["fc2"], reference.float_forward(digits, x)["fc2"],
                               rtol=0, atol=1e-12)


def test_all_adapters_train_under_a_quarter_of_full_fine_tuning(digits):
    net = add_adapters(digits, "all")
    assert trained_parameters(net) == 18202 and trained_parameters(digits.with_split(0)) == 68778


def test_load_model_adapters(digits):
    net = load_model("digits_cnn", adapters="deep")
    assert adapter_names(net) == ["conv3_adapter", "pool4_adapter"]
    with pytest.raises(ModelSpecError, match="adapters='everywhere': give one of tail, deep, all"):
        load_model("digits_cnn", adapters="everywhere")
    with pytest.raises(ModelSpecError, match="not combined with prune"):
        load_model("digits_cnn", adapters="all", prune={"rl": 0.5})
    with pytest.raises(ModelSpecError, match="no retrainable layers"):
        add_adapters(digits.with_split(len(digits.layers)), "all")


def test_adapter_networks_quantise_and_train_only_adapters_and_head(digits):
    calib = np.random.default_rng(0).random((8, 1, 8, 8))
    qnet = quantize(add_adapters(digits, "tail"), calib, PrecisionConfig(batch=4))
    assert [layer.name for layer in qnet.rl_layers] == ["pool4_adapter", "flatten", "fc1", "fc2"]
    qnet = quantize(add_adapters(digits, "all"), calib, PrecisionConfig(batch=4))
    state = golden.initial_rl_state(qnet)
    features = golden.fe_forward(qnet, golden.quantize_input(qnet, calib[:4]))
    new, trace = golden.rl_train_step(qnet, state, features, np.arange(4), 0)
    assert set(trace.grad_w) == {"conv1_adapter", "pool2_adapter", "conv3_adapter", "pool4_adapter", "fc1", "fc2"}
    assert all(new[name] is state[name] for name in ("conv2", "conv3", "conv4"))


def test_domain_files_round_trip_and_refuse_strangers(digits, tmp_path):
    net = add_adapters(digits, "all")
    params = {name: (np.zeros(w.shape, np.int64), np.zeros(b.shape, np.int64))
              for name, (w, b) in reference.initial_float_params(net).items()}
    changed = {name: (w + 3, b - 2 ** 15) for name, (w, b) in params.items()}
    size = save_domain(tmp_path / "rotated.npz", net, changed)
    assert 2 * 18202 < size < 2 * 18202 + 4096  # 16-bit values and the zip's headers
    back = load_domain(tmp_path / "rotated.npz", net, params)
    for name in ("conv1_adapter", "fc2"):
        np.testing.assert_array_equal(back[name][0], changed[name][0])
    assert back["conv2"] is params["conv2"]  # not a trained layer: not in the domain file
    np.savez(tmp_path / "short.npz", **{"fc2.weight": params["fc2"][0]})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "objects.npz", **{f"{n}.{k}": np.array([None], dtype=object)
                                            for n in ("conv1_adapter",) for k in ("weight",)})
    for name, message in (("short.npz", "missing"), ("junk.npz", "not a readable domain file"),
                          ("objects.npz", "not a readable domain file|missing"), ("absent.npz", "not a readable")):
        with pytest.raises(ModelSpecError, match=message):
            load_domain(tmp_path / name, net, params)
