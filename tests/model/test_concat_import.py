"""Concatenation, channel shuffle and ceil-mode pools through the importer, the IR's float step and
quantisation; what cannot map is refused with one error naming the node and the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dtlgen.errors import DesignError, UnsupportedLayerError
from dtlgen.isa import fe as isa
from dtlgen.model import import_module
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.quant.reference import float_forward


def ir_matches_torch(module: nn.Module, shape, seed=0, atol=1e-4):
    network = import_module(module.eval(), shape)
    x = np.random.default_rng(seed).standard_normal((2, *shape))
    want = module(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    got = float_forward(network, x)[network.layers[-1].name]
    assert got.shape == want.shape and np.abs(got - want).max() < atol
    return network


class Shuffled(nn.Module):
    def __init__(self, c_in, channels, groups, use_permute=False, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, channels, 1)
        self.bn = nn.BatchNorm2d(channels) if bn else nn.Identity()
        self.groups, self.use_permute = groups, use_permute
        self.after = nn.Conv2d(channels, 4, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        b, c, h, w = y.size()
        y = y.view(b, self.groups, c // self.groups, h, w)
        y = y.permute(0, 2, 1, 3, 4) if self.use_permute else torch.transpose(y, 1, 2)
        return self.after(y.contiguous().view(b, c, h, w))


@settings(max_examples=25, deadline=None)
@given(groups=st.integers(1, 4), per_group=st.integers(1, 5), permute=st.booleans(), bn=st.booleans(),
       seed=st.integers(0, 1000))
def test_a_channel_shuffle_folds_into_the_producing_conv(groups, per_group, permute, bn, seed):
    torch.manual_seed(seed)
    module = Shuffled(3, groups * per_group, groups, permute, bn)
    if bn:
        with torch.no_grad():
            module.bn.running_mean.uniform_(-1, 1)
            module.bn.running_var.uniform_(0.5, 2)
            module.bn.weight.uniform_(0.5, 1.5)
    network = ir_matches_torch(module, (3, 5, 5), seed)
    assert [layer.op for layer in network.layers] == ["conv2d", "conv2d"]  # BN and the shuffle folded


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2), size=st.integers(1, 12))
def test_ceil_mode_max_pools_agree_with_torch(k, s, p, size):
    if p > k // 2 or size + 2 * p < k:
        return
    pool = nn.MaxPool2d(k, s, p, ceil_mode=True)
    shape = (2, size, size)
    out = pool(torch.zeros(1, *shape)).shape[-1]
    assert out in isa.out_sizes(isa.KIND_MAXPOOL, size, k, s, p)  # what the descriptor check admits
    network = ir_matches_torch(nn.Sequential(nn.Conv2d(2, 2, 1), pool), shape)
    assert network.layers[-1].out_shape == (2, out, out)


def test_an_average_pool_whose_ceil_mode_windows_run_past_the_input_is_refused():
    with pytest.raises(UnsupportedLayerError, match=r"AvgPool2d\(ceil_mode=True\) on a 8x8 input gives 4x4 .*divides "
                                                    r"every window by K\*K"):
        import_module(nn.Sequential(nn.Conv2d(1, 2, 1), nn.AvgPool2d(3, 2, ceil_mode=True)).eval(), (1, 8, 8))
    ir_matches_torch(nn.Sequential(nn.Conv2d(1, 2, 1), nn.AvgPool2d(3, 2, ceil_mode=True)), (1, 9, 9))  # no overhang


class Cat(nn.Module):
    def __init__(self, forward):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 3, 1), nn.Conv2d(2, 4, 3, padding=1)
        self.flat = nn.Flatten()
        self.f = forward

    def forward(self, x):
        return self.f(self, x)


def test_a_relu_after_a_concatenation_moves_into_its_inputs():
    module = Cat(lambda m, x: torch.nn.functional.relu6(torch.cat([torch.relu(m.a(x)), m.b(x)], 1)))
    network = ir_matches_torch(module, (2, 4, 4))
    assert {layer.name: layer.activation for layer in network.layers if layer.op == "conv2d"} == \
        {"a": "relu6", "b": "relu6"}


@pytest.mark.parametrize("cat", [lambda ts: torch.cat(ts, axis=1), lambda ts: torch.concatenate(ts, axis=1),
                                 lambda ts: torch.cat(tensors=ts, dim=-3)])
def test_a_concatenation_along_the_channels_in_any_spelling_is_mapped(cat):
    network = ir_matches_torch(Cat(lambda m, x: cat([m.a(x), m.b(x)])), (2, 4, 4))
    assert network.layers[-1].op == "concat"


@pytest.mark.parametrize("forward, match", [
    (lambda m, x: torch.cat([m.a(x), m.a(x)], 2), r"along dim 2 .*channels only: torch.cat\(tensors, dim=1\)"),
    (lambda m, x: torch.stack([m.a(x), m.a(x)], 1), r"stack is not supported .*torch.cat\(tensors, dim=1\)"),
    (lambda m, x: torch.cat([x, m.b(x)], 1), "concatenates the network input; .*put a layer"),
    (lambda m, x: (lambda y: torch.cat([y, m.b(x)], 1) + torch.cat([y, m.b(x)], 1))(m.a(x)),
     "the output of 'a' is also used elsewhere.*DenseNet"),
])
def test_concatenations_the_engine_cannot_write_in_place_are_refused(forward, match):
    with pytest.raises(UnsupportedLayerError, match=match):
        import_module(Cat(forward).eval(), (2, 4, 4))


def test_a_shuffle_may_end_in_torch_flatten_of_dims_1_and_2():
    def forward(m, x):
        y = m.b(x)
        return torch.flatten(torch.transpose(y.view(y.size(0), 2, 2, 4, 4), 1, 2), 1, 2)

    network = ir_matches_torch(Cat(forward), (2, 4, 4))
    assert [layer.op for layer in network.layers] == ["conv2d"]


def _split(m, x):
    y = m.b(x)
    return y.view(y.size(0), 2, 2, 4, 4).transpose(1, 2)


@pytest.mark.parametrize("forward", [
    lambda m, x: _split(m, x).contiguous(),  # the network ends inside the shuffle
    lambda m, x: m.flat(_split(m, x)),  # a module reads the 5-D tensor
    lambda m, x: torch.flatten(_split(m, x), 1),
    lambda m, x: _split(m, x).reshape(x.size(0), 2, 2, 16),  # a 3-D view that is not (C, H, W)
])
def test_a_shuffle_that_does_not_end_in_the_producers_shape_is_refused(forward):
    with pytest.raises(UnsupportedLayerError, match=r"channel shuffle.*x.view\(B, g, C // g, H, W\)"):
        import_module(Cat(forward).eval(), (2, 4, 4))


def test_a_shuffle_not_after_a_dense_conv_is_refused():
    class AfterDepthwise(nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)

        def forward(self, x):
            y = self.dw(x)
            return y.view(2, 2, 2, 4, 4).transpose(1, 2).contiguous().view(2, 4, 4, 4)

    with pytest.raises(UnsupportedLayerError, match=r"channel shuffle of 'dw' \(conv2d, groups 4\).*dense, stored"):
        import_module(AfterDepthwise().eval(), (4, 4, 4))


def test_the_inputs_of_a_concatenation_share_one_format_and_an_override_cannot_split_them():
    module = Cat(lambda m, x: torch.cat([m.a(x), m.b(x)], 1))
    with torch.no_grad():
        module.b.weight.mul_(20)  # a much wider range than a's
    network = import_module(module.eval(), (2, 4, 4))
    x = np.random.default_rng(0).standard_normal((8, 2, 4, 4))
    qnet = quantize(network, x, PrecisionConfig())
    cat = network.layers[-1]
    assert qnet.layers["a"].out_fmt == qnet.layers["b"].out_fmt == qnet.layers[cat.name].out_fmt
    with pytest.raises(DesignError, match=rf"layer '{cat.name}': its inputs come in different formats .*'a' 3"):
        quantize(network, x, PrecisionConfig(), overrides={"a": {"a_frac": 3}})


def test_a_pool_of_the_network_input_shares_its_format_with_the_other_inputs():
    """The input's format is calibrated with the group: a wide-ranged conv beside a pool of the input."""
    module = Cat(lambda m, x: torch.cat([m.pool(x), m.b(x)], 1))
    module.pool = nn.MaxPool2d(3, 1, 1)
    with torch.no_grad():
        module.b.weight.mul_(50)
    network = import_module(module.eval(), (2, 4, 4))
    x = np.random.default_rng(0).standard_normal((8, 2, 4, 4))
    qnet = quantize(network, x, PrecisionConfig())
    assert qnet.input_fmt == qnet.layers["pool"].out_fmt == qnet.layers["b"].out_fmt


def test_a_concatenation_cannot_re_train():
    module = Cat(lambda m, x: torch.cat([m.a(x), m.b(x)], 1))
    network = import_module(module.eval(), (2, 4, 4))
    x = np.random.default_rng(0).standard_normal((4, 2, 4, 4))
    with pytest.raises(UnsupportedLayerError, match=r"\(concat, .*cannot be retrained on the RL engine"):
        quantize(network.with_split(2), x, PrecisionConfig())
