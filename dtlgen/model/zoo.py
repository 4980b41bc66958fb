"""Reference models for dtlgen: small, deterministic PyTorch networks to import and map.

Each zoo entry is a factory with no arguments that returns ``(module, input_shape, split)``:
``module`` is an ``nn.Module`` in eval mode, ``input_shape`` is the per-sample ``(C, H, W)``
and ``split`` is ``{"retrain_last": K}`` (DESIGN.md §3). The CLI resolves a zoo name through
``ZOO``; tests and the demo use the same factories.

The models are built only from what the torch.fx importer maps: ``nn.Conv2d`` (groups
allowed), ``nn.BatchNorm2d``, ``nn.ReLU``/``nn.ReLU6``, ``nn.MaxPool2d``, ``nn.AvgPool2d``,
``nn.AdaptiveAvgPool2d``, ``nn.Linear``, ``nn.Dropout``, ``nn.Flatten``, residual ``+``, channel
concatenation (``torch.cat(..., 1)``) and channel shuffle (view, transpose, view).
Every activation is its own module instance so each fx node has its own readable path.

The weights are untrained but not arbitrary: convs and linears are Kaiming-initialised so
activations keep their scale through depth, and every BatchNorm gets non-trivial running
statistics and affine parameters so that BN folding is really exercised. The same factory
always gives the same weights, and it leaves the caller's global RNG state untouched.

This module must not depend on torchvision (not installable on the build hosts), must not
train, download or do any file I/O, and must not use layers the importer cannot map.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

InputShape = tuple[int, int, int]
ZooEntry = tuple[nn.Module, InputShape, dict[str, int]]

_SEED = 0
NUM_CLASSES = 10


# --------------------------------------------------------------------------------------------
# Initialisation helpers
# --------------------------------------------------------------------------------------------

def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal weights (fan_in, relu gain) and zero biases for every conv and linear.

    fan_in rather than fan_out: PyTorch counts a depthwise conv's fan_out as C*k*k, which
    would shrink activations by sqrt(C) per depthwise layer in MobileNet.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _randomize_batchnorm(module: nn.Module, seed: int = _SEED) -> None:
    """Give every BatchNorm2d non-trivial running statistics and affine parameters.

    Freshly built BNs are identities (mean 0, var 1, weight 1, bias 0) in eval mode, which
    would let a wrong BN fold pass every test. The ranges keep E[weight^2 / var] close to 1
    so the activation scale survives depth.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def _build(model_cls: Callable[[], nn.Module]) -> nn.Module:
    """Instantiate ``model_cls`` under a fixed seed, initialise it and put it in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        model = model_cls()
        _init_weights(model)
    _randomize_batchnorm(model)
    return model.eval()


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """3x3 conv (padding 1, no bias: BN follows) + BatchNorm + ReLU."""
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]


# --------------------------------------------------------------------------------------------
# digits_cnn: 8x8 handwritten digits (scikit-learn's digits data set)
# --------------------------------------------------------------------------------------------

class DigitsCNN(nn.Module):
    """Four conv layers and two FC layers for 1x8x8 inputs; every layer a direct attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm2d(64)
        self.relu4 = nn.ReLU()
        self.pool4 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.fc1 = nn.Linear(64 * 2 * 2, 32)
        self.relu_fc1 = nn.ReLU()
        self.fc2 = nn.Linear(32, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.pool4(self.relu4(self.bn4(self.conv4(x))))
        x = self.dropout(self.flatten(x))
        x = self.relu_fc1(self.fc1(x))
        return self.fc2(x)


def digits_cnn() -> ZooEntry:
    """Small CNN for scikit-learn's 8x8 digits; fc1 and fc2 retrainable."""
    return _build(DigitsCNN), (1, 8, 8), {"retrain_last": 2}


# --------------------------------------------------------------------------------------------
# vgg16_cifar: VGG16 feature stack (with BN) for 32x32 inputs
# --------------------------------------------------------------------------------------------

# Output channels of each 3x3 conv; "M" is a 2x2 max-pool.
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


class VGG16Cifar(nn.Module):
    """13 conv+BN+ReLU layers in ``features`` (five pools: 32x32 -> 1x1), then fc1, fc2."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += _conv_bn_relu(c_in, int(item))
                c_in = int(item)
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(512, 256)
        self.relu_fc1 = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(256, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.features(x))
        x = self.dropout(self.relu_fc1(self.fc1(x)))
        return self.fc2(x)


def vgg16_cifar() -> ZooEntry:
    """VGG16-BN adapted to CIFAR-10 (3x32x32); fc1 and fc2 retrainable."""
    return _build(VGG16Cifar), (3, 32, 32), {"retrain_last": 2}


# --------------------------------------------------------------------------------------------
# resnet18_cifar: CIFAR ResNet-18 (3x3 stem, no stem pool)
# --------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); shortcut is 1x1 conv+BN or empty."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet18Cifar(nn.Module):
    """Stem conv1/bn1, layer1..layer4 (two BasicBlocks each), pool, fc1, fc2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU()
        ResNet18Cifar.add_stages(self)
        self.pool = nn.AvgPool2d(4)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(512, 256)
        self.relu_fc1 = nn.ReLU()
        self.fc2 = nn.Linear(256, NUM_CLASSES)

    @staticmethod
    def _make_layer(c_in: int, c_out: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1))

    @staticmethod
    def add_stages(module: nn.Module) -> None:
        """ResNet-18's four stages of two BasicBlocks (64 to 512 channels) as module.layer1..layer4."""
        module.layer1 = ResNet18Cifar._make_layer(64, 64, stride=1)
        module.layer2 = ResNet18Cifar._make_layer(64, 128, stride=2)
        module.layer3 = ResNet18Cifar._make_layer(128, 256, stride=2)
        module.layer4 = ResNet18Cifar._make_layer(256, 512, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.flatten(self.pool(x))
        x = self.relu_fc1(self.fc1(x))
        return self.fc2(x)


def resnet18_cifar() -> ZooEntry:
    """ResNet-18 adapted to CIFAR-10 (3x32x32); fc1 and fc2 retrainable."""
    return _build(ResNet18Cifar), (3, 32, 32), {"retrain_last": 2}


# --------------------------------------------------------------------------------------------
# mobilenet_v1_cifar: MobileNet v1 (width 1.0), stride-1 stem for 32x32 inputs
# --------------------------------------------------------------------------------------------

# (output channels, stride) of the 13 depthwise-separable blocks.
MOBILENET_V1_CFG: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.dw_conv = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.dw_bn = nn.BatchNorm2d(c_in)
        self.dw_relu = nn.ReLU()
        self.pw_conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(c_out)
        self.pw_relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_relu(self.dw_bn(self.dw_conv(x)))
        return self.pw_relu(self.pw_bn(self.pw_conv(x)))


class MobileNetV1Cifar(nn.Module):
    """Stem conv1/bn1, 13 depthwise-separable ``blocks``, global pool, fc1, fc2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu1 = nn.ReLU()
        blocks: list[nn.Module] = []
        c_in = 32
        for c_out, stride in MOBILENET_V1_CFG:
            blocks.append(DepthwiseSeparable(c_in, c_out, stride))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(1024, 256)
        self.relu_fc1 = nn.ReLU()
        self.fc2 = nn.Linear(256, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.flatten(self.pool(self.blocks(x)))
        x = self.relu_fc1(self.fc1(x))
        return self.fc2(x)


def mobilenet_v1_cifar() -> ZooEntry:
    """MobileNet v1 (width 1.0) adapted to CIFAR-10 (3x32x32); fc1 and fc2 retrainable."""
    return _build(MobileNetV1Cifar), (3, 32, 32), {"retrain_last": 2}


# --------------------------------------------------------------------------------------------
# resnet18_imagenet, mobilenet_v2_imagenet: torchvision's ImageNet layouts at 224x224 with a
# replaced 10-class head (the usual transfer-learning set-up), seeded random weights
# --------------------------------------------------------------------------------------------

class ResNet18ImageNet(nn.Module):
    """torchvision's resnet18: 7x7/2 stem, 3x3/2 max pool, four stages of two BasicBlocks, global
    average pool, and a 10-class fc in place of the 1000-class one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        ResNet18Cifar.add_stages(self)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def resnet18_imagenet() -> ZooEntry:
    """ResNet-18 in torchvision's ImageNet layout (3x224x224), a 10-class head; fc retrainable."""
    return _build(ResNet18ImageNet), (3, 224, 224), {"retrain_last": 1}


# (expansion t, output channels c, blocks n, first stride s) of MobileNet-V2's bottleneck stages
MOBILENET_V2_CFG: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """1x1 expansion + BN + ReLU6 (not when t = 1), 3x3 depthwise + BN + ReLU6, 1x1 linear
    projection + BN, and the input added when the block keeps stride 1 and its width."""

    def __init__(self, c_in: int, c_out: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = c_in * t
        layers: list[nn.Module] = []
        if t != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(), nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2ImageNet(nn.Module):
    """torchvision's mobilenet_v2 (width 1.0): 3x3/2 stem, 17 inverted residual blocks, 1x1 conv to
    1280, global average pool, dropout and a 10-class linear head."""

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        c_in = 32
        for t, c, n, s in MOBILENET_V2_CFG:
            for i in range(n):
                blocks.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        blocks += [nn.Conv2d(c_in, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()]
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(1280, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.flatten(self.avgpool(self.features(x)))))


def mobilenet_v2_imagenet() -> ZooEntry:
    """MobileNet-V2 in torchvision's ImageNet layout (3x224x224), a 10-class head; classifier retrainable."""
    return _build(MobileNetV2ImageNet), (3, 224, 224), {"retrain_last": 1}


# --------------------------------------------------------------------------------------------
# squeezenet_cifar, shufflenet_cifar: concatenating models at 3x32x32
# --------------------------------------------------------------------------------------------

class Fire(nn.Module):
    """SqueezeNet's fire module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, c_in: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.squeeze_relu = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand1x1_relu = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)
        self.expand3x3_relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_relu(self.squeeze(x))
        return torch.cat([self.expand1x1_relu(self.expand1x1(x)), self.expand3x3_relu(self.expand3x3(x))], 1)


class SqueezeNetCifar(nn.Module):
    """torchvision's squeezenet1_0 feature layout (eight fire modules, 3x3/2 max pools in ceil mode)
    with a 3x3 stem for 32x32 inputs, and a transfer-learning head: global average pool, fc1, fc2."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(96, 16, 64), Fire(128, 16, 64), Fire(128, 32, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 32, 128), Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256),
            nn.MaxPool2d(3, 2, ceil_mode=True), Fire(512, 64, 256))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(512, 128)
        self.relu_fc1 = nn.ReLU()
        self.fc2 = nn.Linear(128, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.pool(self.features(x)))
        return self.fc2(self.relu_fc1(self.fc1(x)))


def squeezenet_cifar() -> ZooEntry:
    """SqueezeNet 1.0-style (fire modules, ceil-mode pools) for CIFAR-10 (3x32x32); fc1 and fc2 retrainable."""
    return _build(SqueezeNetCifar), (3, 32, 32), {"retrain_last": 2}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: channel j of the result is channel (j % g)·(C/g) + j // g of `x`."""
    b, c, h, w = x.size()
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet v1's unit with dense 1x1 convolutions (ShuffleNet's grouped ones would be run as dense by
    the FE engine, and a channel shuffle folds only into a dense conv): 1x1
    bottleneck + BN + ReLU, channel shuffle, 3x3 depthwise + BN, 1x1 + BN; the input added (stride 1) or
    its 3x3/2 average pool concatenated (stride 2), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int) -> None:
        super().__init__()
        branch_out = c_out - c_in if stride == 2 else c_out
        mid = c_out // 4
        self.groups, self.stride = groups, stride
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channel_shuffle(self.relu1(self.bn1(self.conv1(x))), self.groups)
        y = self.bn3(self.conv3(self.bn2(self.conv2(y))))
        return self.relu(torch.cat([self.shortcut(x), y], 1) if self.shortcut is not None else x + y)


class ShuffleNetCifar(nn.Module):
    """ShuffleNet v1-style (g = 2) for 32x32 inputs: 1x1 stem to 24 channels, three stages of shuffle units
    (the first of each halves the map and concatenates), global average pool, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.relu1 = nn.ReLU()
        units: list[nn.Module] = []
        c_in = 24
        for c_out, blocks in ((200, 2), (400, 3), (800, 2)):
            for i in range(blocks):
                units.append(ShuffleUnit(c_in, c_out, 2 if i == 0 else 1, 2))
                c_in = c_out
        self.stages = nn.Sequential(*units)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(800, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        return self.fc(self.flatten(self.pool(self.stages(x))))


def shufflenet_cifar() -> ZooEntry:
    """ShuffleNet v1-style (channel shuffle, concatenating stride-2 units) for CIFAR-10 (3x32x32); fc retrainable."""
    return _build(ShuffleNetCifar), (3, 32, 32), {"retrain_last": 1}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

ZOO: dict[str, Callable[[], ZooEntry]] = {
    "digits_cnn": digits_cnn,
    "vgg16_cifar": vgg16_cifar,
    "resnet18_cifar": resnet18_cifar,
    "mobilenet_v1_cifar": mobilenet_v1_cifar,
    "resnet18_imagenet": resnet18_imagenet,
    "mobilenet_v2_imagenet": mobilenet_v2_imagenet,
    "squeezenet_cifar": squeezenet_cifar,
    "shufflenet_cifar": shufflenet_cifar,
}


def zoo_names() -> list[str]:
    """Names of the zoo models, smallest first (the order of ``ZOO``)."""
    return list(ZOO)
