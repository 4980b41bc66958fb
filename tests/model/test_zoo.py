"""Zoo models: forward shape, determinism, activation scale, and digits_cnn layer names."""

import pytest
import torch
from torch import nn

from dtlgen.model.zoo import ZOO, zoo_names

BATCH = 2
NUM_CLASSES = 10
# Output RMS for an N(0, 1) input must stay in this band: init neither explodes nor vanishes.
RMS_MIN, RMS_MAX = 0.1, 100.0


@pytest.fixture(scope="module")
def built():
    """Build each zoo model once per module; building VGG16 twice per test would be slow."""
    return {name: ZOO[name]() for name in zoo_names()}


def _random_input(input_shape, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, *input_shape, generator=gen)


def test_zoo_names_match_registry():
    assert zoo_names() == ["digits_cnn", "vgg16_cifar", "resnet18_cifar", "mobilenet_v1_cifar", "resnet18_imagenet",
                           "mobilenet_v2_imagenet", "squeezenet_cifar", "shufflenet_cifar"]
    assert set(zoo_names()) == set(ZOO)


@pytest.mark.parametrize("name", zoo_names())
def test_factory_contract(built, name):
    module, input_shape, split = built[name]
    assert isinstance(module, nn.Module)
    assert not module.training, "zoo models are returned in eval mode"
    assert isinstance(input_shape, tuple) and len(input_shape) == 3
    # the ImageNet layouts and ShuffleNet re-train their one-layer head, the other CIFAR ones a two-layer head
    assert split == {"retrain_last": 1 if name.endswith("_imagenet") or name == "shufflenet_cifar" else 2}


@pytest.mark.parametrize("name", zoo_names())
def test_forward_shape_and_scale(built, name):
    module, input_shape, _ = built[name]
    with torch.no_grad():
        out = module(_random_input(input_shape))
    assert out.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(out).all()
    rms = out.pow(2).mean().sqrt().item()
    assert RMS_MIN <= rms <= RMS_MAX, f"{name}: output RMS {rms:.3g} outside [{RMS_MIN}, {RMS_MAX}]"
    assert not torch.equal(out[0], out[1]), f"{name}: output does not depend on the input"


@pytest.mark.parametrize("name", zoo_names())
def test_same_factory_same_weights(built, name):
    torch.manual_seed(1234)  # the factory must not depend on the caller's RNG state
    again, _, _ = ZOO[name]()
    first = built[name][0].state_dict()
    second = again.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{name}: {key} differs between builds"


@pytest.mark.parametrize("name", zoo_names())
def test_batchnorm_is_not_identity(built, name):
    """BN folding is only exercised if the running stats and affine params are non-trivial."""
    bns = [m for m in built[name][0].modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns or name == "squeezenet_cifar"  # (SqueezeNet 1.0 has none, as torchvision's)
    for bn in bns:
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
        assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))
        assert not torch.allclose(bn.bias, torch.zeros_like(bn.bias))


def test_digits_cnn_layer_names(built):
    module, input_shape, _ = built["digits_cnn"]
    assert input_shape == (1, 8, 8)
    assert [n for n, _ in module.named_children()] == [
        "conv1", "bn1", "relu1",
        "conv2", "bn2", "relu2", "pool2",
        "conv3", "bn3", "relu3",
        "conv4", "bn4", "relu4", "pool4",
        "flatten", "dropout",
        "fc1", "relu_fc1", "fc2",
    ]
    weighted = [n for n, m in module.named_children() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert weighted == ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2"]


def test_resnet18_block_structure(built):
    module = built["resnet18_cifar"][0]
    for layer_name in ("layer1", "layer2", "layer3", "layer4"):
        layer = getattr(module, layer_name)
        assert isinstance(layer, nn.Sequential) and len(layer) == 2
    # The first block of layers 2-4 downsamples through a 1x1 conv + BN shortcut.
    assert len(module.layer1[0].shortcut) == 0
    for layer in (module.layer2, module.layer3, module.layer4):
        conv, bn = layer[0].shortcut
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and isinstance(bn, nn.BatchNorm2d)
        assert len(layer[1].shortcut) == 0


def test_mobilenet_uses_depthwise_convs(built):
    convs = [m for m in built["mobilenet_v1_cifar"][0].modules() if isinstance(m, nn.Conv2d)]
    depthwise = [c for c in convs if c.groups > 1]
    assert len(convs) == 27 and len(depthwise) == 13
    assert all(c.groups == c.in_channels == c.out_channels for c in depthwise)
