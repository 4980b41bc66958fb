"""A digits CNN whose last two convolutions re-train on the device: a 3x3 conv (padding 1) and a 4x4 conv over
the whole 4x4 map that gives the ten logits. The RL engine runs both as windowed GEMMs (forward, the gradient
through the 4x4 conv's flipped kernel, and the weight update), bit-exact with the golden model and the HLS C++.

    dtlgen generate examples/digits_convhead.py:build --design design.json --out prj-convhead
    dtlgen sim prj-convhead --retrain     # RTL: bit-exact, cycles against the model
    dtlgen csim prj-convhead              # HLS C++ under g++: bit-exact
    python benchmarks/rl_bench.py --models examples/digits_convhead.py:build --configs pynq-z2:16x13
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsConvHead(nn.Module):
    """Two frozen 3x3 convs (16 channels on the 8x8 digit, 32 at stride 2: a 4x4 map), then the retrainable
    3x3 conv (32 channels, padding 1) and the 4x4 conv to the ten classes; no linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(32, 10, 4)
        self.flatten = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))
        return self.flatten(self.conv4(self.relu3(self.conv3(x))))


def build() -> tuple[nn.Module, tuple[int, int, int], dict[str, int]]:
    """The network (seeded random weights: bring your own trained ones), its input shape, its split."""
    torch.manual_seed(0)
    return DigitsConvHead().eval(), (1, 8, 8), {"retrain_last": 2}
