"""torch.fx import: every zoo model equals torch eval in the float path, splits, and every bad input."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dtlgen.errors import DtlgenWarning, ModelSpecError, UnsupportedLayerError
from dtlgen.model import import_module, load_factory, load_model, resolve_split
from dtlgen.model.zoo import zoo_names
from dtlgen.quant.reference import float_forward

TOLERANCE = 1e-5  # relative to the output's scale (torch runs float32)


def _assert_matches_torch(module: nn.Module, input_shape: tuple[int, ...], batch: int = 3) -> None:
    network = import_module(module, input_shape)
    x = np.random.default_rng(1).standard_normal((batch, *input_shape))
    ours = float_forward(network, x)[network.layers[-1].name]
    with torch.no_grad():
        ref = module(torch.tensor(x, dtype=torch.float32)).double().numpy()
    assert ours.shape == ref.shape
    scale = max(1.0, float(np.max(np.abs(ref))))
    assert np.max(np.abs(ours - ref)) <= TOLERANCE * scale


@pytest.mark.parametrize("name", zoo_names())
def test_zoo_float_path_equals_torch_eval(name):
    module, input_shape, _, _ = load_factory(name)
    _assert_matches_torch(module, input_shape, batch=2)


def test_digits_cnn_layers_and_split():
    network = load_model("digits_cnn")
    assert [l.name for l in network.layers] == ["conv1", "conv2", "pool2", "conv3", "conv4", "pool4",
                                                "flatten", "fc1", "fc2"]
    assert [l.name for l in network.retrainable_layers] == ["fc1", "fc2"]
    conv2 = network.layer("conv2")
    assert (conv2.op, conv2.activation, conv2.kernel, conv2.padding, conv2.macs) == ("conv2d", "relu", 3, 1, 294_912)
    assert network.layer("pool2").op == "maxpool"


def test_resnet_residual_adds_name_their_inputs():
    network = load_model("resnet18_cifar")
    adds = [l for l in network.layers if l.op == "add"]
    assert len(adds) == 8 and all(len(a.inputs) == 2 and a.activation == "relu" for a in adds)
    downsample = network.layer("layer2.0.add")
    assert downsample.inputs == ["layer2.0.conv2", "layer2.0.shortcut.0"]
    assert network.layer("layer2.0.shortcut.0").kernel == 1


def test_mobilenet_depthwise_is_recognised():
    network = load_model("mobilenet_v1_cifar")
    depthwise = [l for l in network.layers if l.depthwise]
    assert len(depthwise) == 13
    assert network.layers[-3].op == "flatten" or network.layers[-3].op == "avgpool"


@pytest.mark.parametrize("split, expected", [("fc1", 7), (8, 8), ({"retrain_last": 1}, 8), ({"retrain_last": 2}, 7),
                                             (None, 9)])
def test_split_forms(split, expected):
    network = load_model("digits_cnn")
    assert resolve_split(network, split) == expected


@pytest.mark.parametrize("split, words", [("fc9", "not in"), (42, "out of range"), ({"retrain_last": 0}, "1 to 6"),
                                          ({"retrain_last": 7}, "1 to 6"), (True, "give a layer name"),
                                          ({"last": 1}, "give a layer name")])
def test_bad_split_names_input_and_fix(split, words):
    with pytest.raises(ModelSpecError, match=words):
        load_model("digits_cnn", split)


# --- random small networks vs torch (hypothesis) -----------------------------------------------
@st.composite
def conv_blocks(draw):
    channels = draw(st.integers(1, 6))
    size = draw(st.integers(5, 12))
    kernel = draw(st.sampled_from([1, 3, 5, 7]).filter(lambda k: k <= size))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.integers(0, kernel // 2))
    depthwise = draw(st.booleans())
    out = channels if depthwise else draw(st.integers(1, 6))
    tail = draw(st.sampled_from(["none", "maxpool", "avgpool", "adaptive", "residual"]))
    act = draw(st.sampled_from([nn.ReLU, nn.ReLU6, nn.Identity]))
    return channels, size, kernel, stride, padding, depthwise, out, tail, act


class _Block(nn.Module):
    """conv + BN + activation, then a tail chosen up front (fx cannot trace shape-dependent code)."""

    def __init__(self, channels, size, kernel, stride, padding, depthwise, out, tail, act):
        super().__init__()
        groups = channels if depthwise else 1
        self.conv = nn.Conv2d(channels, out, kernel, stride, padding, groups=groups, bias=depthwise)
        self.bn = nn.BatchNorm2d(out)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.3, 0.3)
        self.act = act()
        conv_size = (size + 2 * padding - kernel) // stride + 1
        self.tail = tail if tail in ("adaptive", "residual") or conv_size >= 2 else "none"
        # The projection has the main path's geometry, so the residual shapes always match.
        self.proj = nn.Conv2d(channels, out, kernel, stride, padding) if tail == "residual" else None

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        if self.tail == "maxpool":
            y = F.max_pool2d(y, 2)
        elif self.tail == "avgpool":
            y = F.avg_pool2d(y, 2)
        elif self.tail == "adaptive":
            y = F.adaptive_avg_pool2d(y, 1)
        elif self.tail == "residual":
            y = torch.relu(y + self.proj(x))
        return torch.flatten(y, 1)


@settings(max_examples=25, deadline=None)
@given(conv_blocks())
def test_random_conv_blocks_match_torch(params):
    channels, size, kernel, stride, padding, depthwise, out, tail, act = params
    torch.manual_seed(0)
    block = _Block(channels, size, kernel, stride, padding, depthwise, out, tail, act).eval()
    _assert_matches_torch(block, (channels, size, size))


def test_functional_ops_and_view_flatten():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 3 * 3, 5)

        def forward(self, x):
            y = F.max_pool2d(F.relu(self.conv(x)), kernel_size=2, stride=2)
            y = F.dropout(y, 0.5, training=False)
            return F.relu6(self.fc(y.view(y.size(0), -1)))

    _assert_matches_torch(Functional().eval(), (2, 6, 6))


# --- unsupported ops name the module path ---------------------------------------------------
class _Wrap(nn.Module):
    def __init__(self, inner: nn.Module, first: nn.Module | None = None):
        super().__init__()
        self.first = first or nn.Conv2d(3, 4, 3, padding=1)
        self.inner = inner

    def forward(self, x):
        return self.inner(self.first(x))


@pytest.mark.parametrize("model, path, what", [
    (_Wrap(nn.GELU()), "inner", "GELU"),
    (_Wrap(nn.Sigmoid()), "inner", "Sigmoid"),
    (_Wrap(nn.Identity(), nn.Conv2d(3, 4, 3, dilation=2)), "first", "dilation"),
    (_Wrap(nn.Identity(), nn.Conv2d(3, 4, (3, 1))), "first", "non-square"),
    (_Wrap(nn.Identity(), nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")), "first", "padding_mode"),
    (_Wrap(nn.AvgPool2d(3, 2, ceil_mode=True)), "inner", "ceil_mode"),
    (_Wrap(nn.AdaptiveAvgPool2d(3)), "inner", "not an even pooling"),
    (_Wrap(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4))), "inner.1", "BatchNorm must directly follow"),
])
def test_unsupported_layer_names_module_and_op(model, path, what):
    with pytest.raises(UnsupportedLayerError) as info:
        import_module(model.eval(), (3, 8, 8))
    message = str(info.value)
    assert message.startswith(path) and what in message


def test_relu_on_shared_output_is_rejected():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return torch.relu(y) + y

    with pytest.raises(UnsupportedLayerError, match="used elsewhere"):
        import_module(Shared().eval(), (3, 6, 6))


def test_untraceable_model_is_a_clear_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(ModelSpecError, match="cannot trace"):
        import_module(Branchy(), (3, 4, 4))


# --- MODEL given as path/to/file.py:factory ----------------------------------------------------
def test_factory_file_with_split(tmp_path):
    source = tmp_path / "net.py"
    source.write_text(textwrap.dedent("""
        import torch.nn as nn
        def build():
            model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8),
                                  nn.ReLU(), nn.Linear(8, 3))
            return model.eval(), (1, 8, 8), "3"
        def plain():
            return nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), (1, 4, 4)
    """))
    network = load_model(f"{source}:build")
    assert network.name == "build" and network.split_index == 2 and network.layers[2].name == "3"
    with pytest.warns(DtlgenWarning, match="gives no split.*--retrain-last K"):
        assert load_model(f"{source}:plain").split_index == 2  # no split: everything frozen, and a warning
    assert load_model(f"{source}:plain", 1).retrainable_layers[0].op == "linear"


@pytest.mark.parametrize("body, spec_suffix, words", [
    ("def f():\n    return 3\n", ":f", "must return"),
    ("def f():\n    import torch.nn as nn\n    return nn.Linear(2, 2), (0,)\n", ":f", "positive ints"),
    ("def f():\n    return 'x', (1,)\n", ":f", "torch.nn.Module"),
    ("def f():\n    raise RuntimeError('boom')\n", ":f", "raised RuntimeError"),
    ("x = 1\n", ":missing", "no function 'missing'"),
    ("def f(:\n", ":f", "raised SyntaxError"),
])
def test_bad_factory_files(tmp_path, body, spec_suffix, words):
    source = tmp_path / "bad.py"
    source.write_text(body)
    with pytest.raises(ModelSpecError, match=words):
        load_model(f"{source}{spec_suffix}")


def test_unknown_model_lists_the_zoo(tmp_path):
    with pytest.raises(ModelSpecError, match="digits_cnn"):
        load_model("resnet50")
    with pytest.raises(ModelSpecError, match="not a Python file"):
        load_model(f"{tmp_path}/absent.py:f")
