"""Magnitude pruning of a network (issue 19): the smallest weights of a part's conv and linear layers (the
frozen feature extractor, or the retrainable layers) set to 0, with a mask in the IR that says which remain.

The frozen part's masks only record what was removed (the FE engine reads the zeros like any weight).
A retrainable layer's mask goes to the RL engine (`Layer.mask`; the project's `rl_train.npz`, the host's
LOAD_M), whose UPDATE writes 0 where it is 0, so a re-trained pruned network stays pruned (strategy
"fixed"); a plan without the masks lets the removed weights grow back ("regrow").

Structured pruning ("rl_neurons", `prune_neurons`) removes whole neurons of the retrainable layers instead:
a layer's output units with the smallest weight norms and the next layer's inputs that read them. The
network gets narrower, so the RL engine's GEMMs shrink and nothing needs a mask.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import replace
from typing import Any

import numpy as np

from dtlgen.errors import ModelSpecError, brief
from dtlgen.model.ir import Network

PARTS = ("fe", "rl", "rl_neurons")


def check_prune(prune: Any) -> dict[str, float]:
    """{"fe": s, "rl": s, "rl_neurons": s} with each share s in [0, 1): of each part's weights to remove, and of
    the retrainable layers' neurons."""
    if not isinstance(prune, dict) or not prune or set(prune) - set(PARTS):
        raise ModelSpecError(f"prune {brief(prune, 60)}: give a dict of shares, e.g. {{'fe': 0.7, 'rl': 0.8}} (keys "
                             f"{', '.join(PARTS)}: the share of the part's weights removed, or of the retrainable "
                             "layers' neurons, from 0 to below 1)")
    out = {}
    for part, value in prune.items():
        try:
            share = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
        except OverflowError:  # an int beyond float's range
            share = math.nan
        if not 0.0 <= share < 1.0:  # (NaN fails too)
            raise ModelSpecError(f"prune[{brief(part, 20)}] is {brief(value, 40)}: a share from 0 to below 1 (0.8 removes "
                                 "80 % of the part's weights)")
        out[part] = share
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
        if part not in ("fe", "rl"):
            continue
        layers = [layer for layer in network.layers if layer.weight is not None and layer.op in ("conv2d", "linear")
                  and layer.frozen == (part == "fe")]
        if share == 0.0 or not layers:
            continue
        _refuse_seeded(layers, part)
        flat = layer_mask(np.concatenate([np.asarray(layer.weight).reshape(-1) for layer in layers]), share)
        if not flat.any():
            raise ModelSpecError(f"prune['{part}'] = {share:.8g} removes every one of the part's {flat.size} weights; "
                                 "give a smaller share")
        start = 0
        for layer in layers:
            size = np.asarray(layer.weight).size
            masks[layer.name] = flat[start:start + size].reshape(np.shape(layer.weight))
            if not masks[layer.name].any():  # the network's output would no longer depend on its input
                raise ModelSpecError(f"prune['{part}'] = {share:.8g} removes every weight of layer '{layer.name}' (the "
                                     "part's smallest); give a smaller share")
            start += size
    return masks


def _refuse_seeded(layers: list, part: str) -> None:
    """Weights drawn from a seed (a seeded conv, or a retrainable layer started from a seed) are what the chip
    or the host regenerates: pruned ones would differ from them."""
    for layer in layers:
        if layer.seed is not None or layer.init_seed is not None:
            what = "a seeded conv" if layer.seed is not None else "a layer whose initial values are drawn from a seed"
            raise ModelSpecError(f"layer '{layer.name}' is {what}: its weights are regenerated from the seed and "
                                 f"cannot be pruned; leave out '{part}', or prune a model without seeds")


def with_masks(network: Network, masks: dict[str, np.ndarray]) -> Network:
    """A copy of `network` whose layers in `masks` have their weights zeroed where a mask is 0 and carry the
    mask (with one they had already: both, so that what was removed stays removed)."""
    layers = []
    for layer in network.layers:
        if layer.name not in masks:
            layers.append(layer)
            continue
        given = np.asarray(masks[layer.name])
        if given.dtype.kind not in "biuf" or (given.dtype.kind == "f" and not np.all(np.isfinite(given))):
            raise ModelSpecError(f"the pruning mask of layer '{layer.name}' must be finite numbers (1 keeps a weight, "
                                 f"0 removes it); got {given.dtype}")
        mask = (given != 0).astype(np.uint8)
        if layer.weight is None or mask.shape != np.shape(layer.weight):
            raise ModelSpecError(f"the pruning mask of layer '{layer.name}' has shape {mask.shape}; its weights have "
                                 f"{None if layer.weight is None else np.shape(layer.weight)}")
        if layer.mask is not None:
            mask = mask & layer.mask
        layers.append(replace(layer, weight=np.where(mask != 0, layer.weight, 0).astype(layer.weight.dtype), mask=mask))
    return Network(network.name, network.input_shape, layers)


def prune(network: Network, sparsity: dict[str, float]) -> Network:
    """A copy of `network` with the given share of each part's conv and linear weights removed by magnitude
    (`part_masks`: "fe" the frozen part's, "rl" the retrainable part's), the masks in its layers; with
    "rl_neurons", that share of the retrainable layers' neurons removed first (`prune_neurons`)."""
    sparsity = check_prune(sparsity)
    if sparsity.get("rl_neurons"):
        network = prune_neurons(network, sparsity["rl_neurons"])
    return with_masks(network, part_masks(network, sparsity))


def prune_neurons(network: Network, share: float) -> Network:
    """A copy of `network` whose retrainable linear and 1x1 conv layers lose round(share * M) of their M output
    units (at least one stays), those whose incoming weights have the smallest L2 norm, and whose consumer (a
    retrainable linear or 1x1 conv reading that output alone) loses the matching inputs. The last layer's
    outputs are the network's and stay; so does a layer whose output goes anywhere else (an add, a concat,
    a flatten, two consumers), which is refused when it is the only candidate."""
    layers = list(network.layers)
    index = {layer.name: i for i, layer in enumerate(layers)}
    shrunk, widths, removed = [], {}, 0
    for i, layer in enumerate(network.layers):
        if layer.frozen or layer.weight is None or layer.op not in ("conv2d", "linear") or layer.groups != 1 \
                or i == len(layers) - 1:
            continue
        _refuse_seeded([layer, *[other for other in network.layers if layer.name in other.inputs]], "rl_neurons")
        readers = [other for other in network.layers if layer.name in other.inputs]
        if len(readers) != 1 or readers[0].inputs != [layer.name] or readers[0].op not in ("conv2d", "linear") \
                or readers[0].weight is None or (readers[0].op == "conv2d" and (readers[0].kernel, readers[0].groups)
                                                 != (1, 1)):
            continue
        current, reader = layers[i], layers[index[readers[0].name]]
        weight = np.asarray(current.weight)
        norms = np.linalg.norm(weight.reshape(len(weight), -1), axis=1)
        keep = np.sort(np.argsort(-norms, kind="stable")[:max(1, len(weight) - int(round(share * len(weight))))])
        widths[layer.name] = len(weight)
        removed += len(weight) - len(keep)
        layers[i] = replace(current, weight=weight[keep], bias=None if current.bias is None else current.bias[keep],
                            out_shape=(len(keep), *current.out_shape[1:]),
                            mask=None if current.mask is None else current.mask[keep])
        layers[index[reader.name]] = replace(reader, weight=np.asarray(reader.weight)[:, keep],
                                             in_shape=(len(keep), *reader.in_shape[1:]),
                                             mask=None if reader.mask is None else reader.mask[:, keep])
        shrunk.append(layer.name)
    if not shrunk:
        raise ModelSpecError(f"prune['rl_neurons']: no retrainable layer of '{network.name}' can lose neurons (one whose "
                             "output only a retrainable linear or 1x1 conv reads); leave rl_neurons out")
    if share > 0 and not removed:
        widest = max(widths.values())
        raise ModelSpecError(f"prune['rl_neurons'] is {share:g}: it removes no neuron of "
                             f"{', '.join(f'{name} ({width} outputs)' for name, width in widths.items())}; give more than "
                             f"{1 / (2 * widest):.3g} to remove one of {widest}, or leave rl_neurons out")
    return Network(network.name, network.input_shape, layers)


def zero_share(weights) -> float:
    """The share of exact zeros over weight arrays (an RL state's (weight, bias) pairs: the weights alone)."""
    arrays = [np.asarray(w[0] if isinstance(w, tuple) else w).reshape(-1) for w in weights]
    return float(np.mean(np.concatenate(arrays) == 0))


def sparsity_of(network: Network, part: str) -> float:
    """The share of zero-masked weights over the masked conv / linear layers of one part ("fe" or "rl")."""
    masks = [layer.mask for layer in network.layers if layer.mask is not None and layer.frozen == (part == "fe")]
    total = sum(m.size for m in masks)
    return 1.0 - sum(int(m.sum()) for m in masks) / total if total else 0.0
