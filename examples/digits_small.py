"""A small CNN for scikit-learn's 8x8 digits: a model whose whole memory image fits a small ECP5.

digits_cnn needs 64 KB of frozen weights alone, more block RAM than the OrangeCrab 25F has (its
board design keeps the engines' memory on chip); this network keeps digits_cnn's shape at a quarter
of its channels (3.5 KB of frozen weights, fc1 and fc2 retrainable):

    dtlgen dse examples/digits_small.py:build --board orangecrab-25f --pop 12 --gens 3 --out dse-25f
    dtlgen generate examples/digits_small.py:build --design dse-25f/design.json --out prj-25f
    dtlgen bitstream prj-25f
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsSmall(nn.Module):
    """Three 3x3 conv layers (8, 16, 16 channels, two 2x2 max-pools) and two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 2 * 2, 16)
        self.relu_fc1 = nn.ReLU()
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
        x = self.relu_fc1(self.fc1(self.flatten(x)))
        return self.fc2(x)


def build() -> tuple[nn.Module, tuple[int, int, int], dict[str, int]]:
    """The network (seeded random weights: bring your own trained ones), its input shape, its split."""
    torch.manual_seed(0)
    return DigitsSmall().eval(), (1, 8, 8), {"retrain_last": 2}
