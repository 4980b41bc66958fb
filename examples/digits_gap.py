"""A digits CNN that ends in a global average pool over a 10x10 map: a pool kernel (10) beyond the
convolutions' K <= 7, which the FE engine runs because a pool has no weights and its 10x10 window
fits the input buffer of tiles from 3x3 up ((tr - 1) * 2 + 7 rows).

    dtlgen perf examples/digits_gap.py:build --design design.json
    dtlgen generate examples/digits_gap.py:build --design design.json --out prj-gap
    dtlgen sim prj-gap --retrain          # RTL: bit-exact, cycles against the model
    dtlgen csim prj-gap                   # HLS C++ under g++: bit-exact
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsGAP(nn.Module):
    """Two 3x3 conv layers (8 and 16 channels on a 10x10 map: the first pads the 8x8 digit by 2), a
    global average pool (AdaptiveAvgPool2d(1)) and one linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.fc(self.flatten(self.gap(x)))


def build() -> tuple[nn.Module, tuple[int, int, int], dict[str, int]]:
    """The network (seeded random weights: bring your own trained ones), its input shape, its split."""
    torch.manual_seed(0)
    return DigitsGAP().eval(), (1, 8, 8), {"retrain_last": 1}
