"""Seeded convolutions in torch and in the IR (issue 18): SeededConv2d, seed_convs, their import,
quantisation and the transmitted-bytes account."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from dtlgen.errors import DesignError, DtlgenWarning, UnsupportedLayerError
from dtlgen.isa import seeded as isa_seeded
from dtlgen.model import import_module
from dtlgen.model.seeded import SeededConv2d, seed_convs, seed_head
from dtlgen.quant.metrics import model_size_bytes, transmitted_bytes
from dtlgen.quant.quantize import PrecisionConfig, quantize


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8 * 4 * 4, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.relu(self.conv2(x)).flatten(1))


def test_seed_convs_keeps_only_scales_and_biases_in_the_state():
    torch.manual_seed(0)
    module = Small()
    bias = module.conv1.bias.detach().clone()
    assert seed_convs(module, ["conv1", "conv2"], seed=5) == ["conv1", "conv2"]
    assert isinstance(module.conv1, SeededConv2d) and module.conv2.groups == 8
    assert torch.equal(module.conv1.bias.detach(), bias)  # the conv's bias carries over
    state = module.state_dict()
    assert "conv1.weight" not in state and {"conv1.scale", "conv1.bias", "conv2.scale"} <= set(state)
    expected = isa_seeded.conv_weights(5, 1, (8, 1, 3, 3), "sign", depthwise=True)
    assert np.array_equal(module.conv2.weight.numpy(), expected)
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    assert not any(name.endswith(".weight") and name.startswith("conv") for name in trainable)


def test_the_batchnorm_folds_into_the_scale_and_the_weights_stay_the_generators():
    torch.manual_seed(1)
    module = Small()
    seed_convs(module, ["conv1"], seed=9, kind="int3")
    with torch.no_grad():
        module.bn1.running_var.uniform_(0.5, 2.0)
        module.bn1.weight.uniform_(-1, 1)
    module.eval()
    network = import_module(module, (1, 4, 4))
    conv1 = network.layer("conv1")
    assert np.array_equal(conv1.weight, isa_seeded.conv_weights(9, 0, (8, 1, 3, 3), "int3"))
    gamma = module.bn1.weight.detach().numpy() / np.sqrt(module.bn1.running_var.numpy() + module.bn1.eps)
    assert np.allclose(conv1.scale, module.conv1.scale.detach().numpy() * gamma)
    assert conv1.params == 8 * 9 + 8 + 8 and conv1.to_dict()["seed"] == {"seed": 9, "index": 0, "kind": "int3"}


def test_transmitted_bytes_count_seeds_and_learnable_tensors():
    torch.manual_seed(2)
    module = Small()
    seed_convs(module, ["conv1", "conv2"], seed=3)
    network = import_module(module.eval(), (1, 4, 4)).with_split(4)  # fc retrainable
    qnet = quantize(network, np.random.default_rng(0).standard_normal((4, 1, 4, 4)), PrecisionConfig())
    sent = transmitted_bytes(qnet)
    assert sent["seeds"] == 4 + 2 * 5
    bits = sum(8 * (16 + 32) for _ in range(2))  # two seeded convs: 8 scales of 16 bits, 8 biases of 32
    fc = qnet.layers["fc"]
    bits += 128 * 4 * fc.w_fmt.bits + 4 * fc.b_fmt.bits
    assert sent["learnable"] == -(-bits // 8) and sent["total"] == sent["seeds"] + sent["learnable"]
    # stored, the same model also holds the generated weights (2 bits each)
    assert model_size_bytes(qnet)["hybrid"] == -(-(bits + 2 * (72 + 72)) // 8)


def test_a_head_drawn_from_the_seed_is_sent_as_the_seed():
    torch.manual_seed(2)
    module = Small()
    seed_convs(module, ["conv1", "conv2"], seed=3)
    network = import_module(module.eval(), (1, 4, 4)).with_split(3)  # fc retrainable
    assert [layer.name for layer in network.retrainable_layers] == ["fc"]
    x = np.random.default_rng(0).standard_normal((4, 1, 4, 4))
    trained = quantize(network, x, PrecisionConfig())
    frac = trained.layers["fc"].w_fmt.frac
    started = seed_head(network, {"fc": frac}, seed=3)
    fc = started.layer("fc")
    assert fc.init_seed == {"seed": 3, "index": isa_seeded.HEAD_LAYER, "bound_log2": -2, "frac": frac}  # sqrt(6 / 128) ~ 2^-2.2
    ints = isa_seeded.initial_weights(3, isa_seeded.HEAD_LAYER, 4 * 128, frac, -2)
    assert np.array_equal(fc.weight, ints.reshape(4, 128) * 2.0 ** -frac) and not fc.bias.any()
    assert network.layer("fc").weight is not fc.weight and started.layer("conv1") is network.layers[0]
    qnet = quantize(started, x, PrecisionConfig(), overrides={"fc": {"w_frac": frac}})
    assert np.array_equal(qnet.layers["fc"].weight, ints.reshape(4, 128))  # exact in its format: the device's values
    sent, before = transmitted_bytes(qnet), transmitted_bytes(trained)
    assert sent["seeds"] == 4 + 3 * 5  # one seed shared by two seeded convs and the head
    assert sent["learnable"] == -(-2 * 8 * (16 + 32) // 8) < before["learnable"]  # only the convs' scales, biases
    tampered = replace(started.layer("fc"), bias=np.ones(4))
    started.layers[-1] = tampered
    with pytest.raises(ValueError, match="'fc' is marked as starting from seed 3"):
        transmitted_bytes(quantize(started, x, PrecisionConfig(), overrides={"fc": {"w_frac": frac}}))


def test_seeded_layers_cannot_retrain_or_take_weight_overrides():
    module = Small()
    seed_convs(module, ["conv1"], seed=3)
    network = import_module(module.eval(), (1, 4, 4))
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(UnsupportedLayerError, match="'conv1' is a seeded conv.*move the split after it"):
        quantize(network.with_split(0), x, PrecisionConfig())
    with pytest.raises(DesignError, match="overrides.conv1.w_frac.*seeded.*a_frac instead"):
        quantize(network.with_split(4), x, PrecisionConfig(), overrides={"conv1": {"w_frac": 3}})


def test_what_cannot_be_seeded_is_named():
    module = Small()
    with pytest.raises(ValueError, match="'fc' is not a Conv2d"):
        seed_convs(module, ["fc"], seed=1)
    module.conv1 = nn.Conv2d(1, 8, 3, padding=2, dilation=2)
    with pytest.raises(ValueError, match="'conv1': a Conv2d with zero padding, no dilation"):
        seed_convs(module, ["conv1"], seed=1)
    with pytest.raises(ValueError, match="seed -1"):
        SeededConv2d(1, 2, 3, seed=-1, index=0)
    with pytest.raises(ValueError, match="groups 2"):
        SeededConv2d(4, 4, 3, groups=2, seed=1, index=0)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 70), k=st.sampled_from([1, 3, 5]),
       kind=st.sampled_from(["sign", "int2", "int4", "int8"]), seed=st.integers(0, 2**32 - 1),
       depthwise=st.booleans())
def test_conv_weights_are_rows_of_whole_words(m, n, k, kind, seed, depthwise):
    """Any shape: values in the kind's range, and the (tap, lane) row of a dense conv, of one input channel
    too (a tap's lanes of a depthwise one), is the generator's run from a word boundary."""
    n = 1 if depthwise else n
    w = isa_seeded.conv_weights(seed, 7, (m, n, k, k), kind, depthwise)
    bits = isa_seeded.weight_bits(kind)
    assert w.shape == (m, n, k, k) and w.min() >= -(1 << (bits - 1)) and w.max() < (1 << (bits - 1))
    per = isa_seeded.per_word(kind)
    if kind == "sign":
        assert set(np.unique(w)) <= {-1, 1}
    run = m if depthwise else n
    row = -(-run // per) * per
    kr, kc, lane = k - 1, 0, m - 1
    index = kr * k + kc if depthwise else (kr * k + kc) * m + lane
    start = isa_seeded.weights(seed, 7, run, kind, start=index * row)
    assert np.array_equal(w[:, 0, kr, kc] if depthwise else w[lane, :, kr, kc], start)


def test_load_model_seeds_the_frozen_convs_and_trains_their_scales():
    import dtlgen
    from dtlgen.errors import ModelSpecError

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 1, 8, 8)), rng.integers(0, 10, 32)
    net = dtlgen.load_model("digits_cnn", seeded="auto", source=(x, y), epochs=1)
    seeded = [layer.name for layer in net.layers if layer.seed is not None]
    assert seeded == ["conv1", "conv2", "conv3", "conv4"] and [l.name for l in net.retrainable_layers] == ["fc1", "fc2"]
    assert [net.layer(n).seed["index"] for n in seeded] == [0, 1, 2, 3]
    one = dtlgen.load_model("digits_cnn", seeded=["conv2"], source=(x, y), epochs=1, seeded_kind="int4")
    assert [l.name for l in one.layers if l.seed is not None] == ["conv2"] and one.layer("conv2").seed["kind"] == "int4"
    with pytest.warns(DtlgenWarning, match="untrained scales.*give the source task \\(source=\\(x, y\\)"):
        untrained = dtlgen.load_model("digits_cnn", seeded="auto")  # the hardware figures need no training
    assert untrained.layer("conv2").seed == net.layer("conv2").seed
    assert not np.allclose(untrained.layer("conv2").scale, net.layer("conv2").scale)
    with pytest.raises(ModelSpecError, match="source is the source task's \\(x, y\\)"):
        dtlgen.load_model("digits_cnn", seeded="auto", source=x)
    with pytest.raises(ModelSpecError, match="seeded is \\['fc1'\\].*frozen conv layers \\(conv1, conv2"):
        dtlgen.load_model("digits_cnn", seeded=["fc1"], source=(x, y))
    with pytest.raises(ModelSpecError, match="seeded_kind 'int9'"):
        dtlgen.load_model("digits_cnn", seeded="auto", source=(x, y), seeded_kind="int9")


def test_a_seeded_conv_changed_after_construction_is_refused():
    module = Small()
    seed_convs(module, ["conv1"], seed=3)
    with torch.no_grad():
        module.conv1.weight[0, 0, 0, 0] *= -1  # the model would compute with weights no seed gives
    with pytest.raises(UnsupportedLayerError, match="conv1: SeededConv2d's weight buffer.*build it anew"):
        import_module(module.eval(), (1, 4, 4))
    module = Small()
    seed_convs(module, ["conv2"], seed=3)
    module.conv2.seed = 2 ** 40
    with pytest.raises(UnsupportedLayerError, match=r"conv2: SeededConv2d: seed 1099511627776: an integer from 0 to 2\^32"):
        import_module(module.eval(), (1, 4, 4))


@pytest.mark.parametrize("kwargs, match", [({"weight_seed": -3}, "weight_seed is -3: an integer from 0 to 4294967295"),
                                           ({"epochs": 0}, "epochs is 0: an integer from 1"),
                                           ({"source": (np.zeros((3, 1, 9, 8)), np.zeros(3, int))}, "source x has shape")])
def test_load_model_names_a_bad_seeded_argument(kwargs, match):
    import dtlgen
    from dtlgen.errors import DtlgenError

    args = {"seeded": "auto", "source": (np.zeros((3, 1, 8, 8)), np.zeros(3, int)), **kwargs}
    with pytest.raises(DtlgenError, match=match):
        dtlgen.load_model("digits_cnn", **args)
