"""Magnitude pruning of a network (issue 19): the smallest weights of a part's conv and linear layers (the
frozen feature extractor, or the retrainable layers) set to 0, with a mask in the IR that says which remain.

The frozen part's masks only record what was removed (the FE engine reads the zeros like any weight).
A retrainable layer's mask goes to the RL engine (`Layer.mask`; the project's `rl_train.npz`, the host's
LOAD_M), whose UPDATE writes 0 where it is 0, so a re-trained pruned network stays pruned (strategy
"fixed"); a plan without the masks lets the removed weights grow back ("regrow").
"""

from __future__ import annotations

import numbers
from dataclasses import replace
from typing import Any

import numpy as np

from dtlgen.errors import ModelSpecError
from dtlgen.model.ir import Network

PARTS = ("fe", "rl")


def check_prune(prune: Any) -> dict[str, float]:
    """{"fe": s, "rl": s} with each sparsity s in [0, 1): the share of each part's weights to remove."""
    if not isinstance(prune, dict) or not prune or set(prune) - set(PARTS):
        raise ModelSpecError(f"prune {prune!r}: give a dict of sparsities, e.g. {{'fe': 0.7, 'rl': 0.8}} (keys "
                             f"{', '.join(PARTS)}; each the share of a layer's weights removed, from 0 to below 1)")
    out = {}
    for part, value in prune.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:  # (NaN fails too)
            raise ModelSpecError(f"prune['{part}'] is {value!r}: a share of the weights from 0 to below 1 (0.8 removes "
                                 "80 % of the part's weights)")
        out[part] = float(value)
    return out


def layer_mask(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """1 for the weights that stay: all but the round(sparsity * size) smallest magnitudes (ties go by
    position, so the mask is a function of the weights alone)."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    drop = int(round(sparsity * w.size))
    mask = np.ones(w.size, dtype=np.uint8)
    mask[np.argsort(np.abs(w), kind="stable")[:drop]] = 0
    return mask.reshape(np.shape(weight))


def part_masks(network: Network, sparsity: dict[str, float]) -> dict[str, np.ndarray]:
    """Layer name -> mask for every conv and linear layer of a part with a share to remove: one magnitude
    threshold over all of the part's weights (global magnitude pruning: a layer of small weights loses more
    of them than one of large weights; a share of the part's weights, not of each layer's)."""
    sparsity = check_prune(sparsity)
    masks: dict[str, np.ndarray] = {}
    for part, share in sparsity.items():
        layers = [layer for layer in network.layers if layer.weight is not None and layer.op in ("conv2d", "linear")
                  and layer.frozen == (part == "fe")]
        if share == 0.0 or not layers:
            continue
        seeded = [layer.name for layer in layers if layer.seed is not None]
        if seeded:
            raise ModelSpecError(f"layer '{seeded[0]}' is a seeded conv: its weights are regenerated from a seed on "
                                 "the chip and cannot be pruned; prune a model without seeded convs, or leave out 'fe'")
        flat = layer_mask(np.concatenate([np.asarray(layer.weight).reshape(-1) for layer in layers]), share)
        start = 0
        for layer in layers:
            size = np.asarray(layer.weight).size
            masks[layer.name] = flat[start:start + size].reshape(np.shape(layer.weight))
            start += size
    return masks


def with_masks(network: Network, masks: dict[str, np.ndarray]) -> Network:
    """A copy of `network` whose layers in `masks` have their weights zeroed where a mask is 0 and carry the
    mask (with one they had already: both, so that what was removed stays removed)."""
    layers = []
    for layer in network.layers:
        if layer.name not in masks:
            layers.append(layer)
            continue
        mask = np.asarray(masks[layer.name], dtype=np.uint8)
        if layer.weight is None or mask.shape != np.shape(layer.weight):
            raise ModelSpecError(f"the pruning mask of layer '{layer.name}' has shape {mask.shape}; its weights have "
                                 f"{None if layer.weight is None else np.shape(layer.weight)}")
        if layer.mask is not None:
            mask = mask & layer.mask
        layers.append(replace(layer, weight=np.where(mask != 0, layer.weight, 0).astype(layer.weight.dtype), mask=mask))
    return Network(network.name, network.input_shape, layers)


def prune(network: Network, sparsity: dict[str, float]) -> Network:
    """A copy of `network` with the given share of each part's conv and linear weights removed by magnitude
    (`part_masks`: "fe" the frozen part's, "rl" the retrainable part's), the masks in its layers."""
    return with_masks(network, part_masks(network, sparsity))


def sparsity_of(network: Network, part: str) -> float:
    """The share of zero-masked weights over the masked conv / linear layers of one part ("fe" or "rl")."""
    masks = [layer.mask for layer in network.layers if layer.mask is not None and layer.frozen == (part == "fe")]
    total = sum(m.size for m in masks)
    return 1.0 - sum(int(m.sum()) for m in masks) / total if total else 0.0
