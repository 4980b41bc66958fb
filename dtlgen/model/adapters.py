"""Residual adapters (issue 20, EdgeScaler): identity-initialised 1×1 convs in series after chosen blocks of
the frozen part, trained with the head when a new domain arrives while the convs between them stay fixed.

An adapter computes x + A·x. It is held as one 1×1 conv whose weight is I + A (identity at insertion, bias 0,
no activation): the same output, the same gradients (dA = dW, and the input gradient Wᵀ·dy = dy + Aᵀ·dy), and
no residual add for the engines to run. A block is a dense conv, with the max-pool that directly follows it:
the adapter goes after the pool, where it sees the fewest positions.

`add_adapters` moves the split to the first adapter: the layers from there on are retrainable, the convs
between adapters `trained` False (forward and backward only), the adapters and the head trained.
`domain_parameters` / `load_domain` keep a domain's trained parameters apart from the network (an .npz of
a few kB: a domain switch loads only them).
"""

from __future__ import annotations

from dataclasses import replace
import zipfile
from pathlib import Path

import numpy as np

from dtlgen.errors import ModelSpecError
from dtlgen.model.ir import Layer, Network

PLACEMENTS = ("tail", "deep", "all")
SUFFIX = "_adapter"


def adapter_blocks(network: Network) -> list[str]:
    """Names of the layers an adapter may follow, in order: each dense frozen conv, or the max-pool that is
    its output's only consumer."""
    blocks = []
    for layer in network.frozen_layers:
        if layer.op != "conv2d" or layer.groups != 1 or layer.seed is not None:
            continue
        users = [other for other in network.layers if layer.name in other.inputs]
        pool = users[0] if len(users) == 1 and users[0].op == "maxpool" and users[0].frozen else None
        blocks.append(pool.name if pool is not None else layer.name)
    return blocks


def chosen_blocks(blocks: list[str], where: str) -> list[str]:
    """`where`: "tail" the last block, "deep" the deeper half (the last ceil(n/2)), "all" every block."""
    if where not in PLACEMENTS:
        raise ModelSpecError(f"adapters={where!r}: give one of {', '.join(PLACEMENTS)}")
    if where == "tail":
        return blocks[-1:]
    if where == "deep":
        return blocks[len(blocks) // 2:]
    return list(blocks)


def add_adapters(network: Network, where: str) -> Network:
    """A copy of `network` with an adapter after each chosen block (`chosen_blocks`) and its split at the first
    adapter. The layers retrainable in `network` (the head) stay trained; nothing else changes value."""
    head = network.split_index
    if head == len(network.layers):
        raise ModelSpecError(f"'{network.name}' has no retrainable layers (its head): give a split, e.g. "
                             "retrain_last=2, before adding adapters")
    blocks = adapter_blocks(network)
    if not blocks:
        raise ModelSpecError(f"'{network.name}' has no dense conv before its split for an adapter to follow")
    chosen = set(chosen_blocks(blocks, where))
    names = {layer.name for layer in network.layers}
    layers: list[Layer] = []
    renamed: dict[str, str] = {}
    first = None
    for i, layer in enumerate(network.layers):
        layer = replace(layer, inputs=[renamed.get(name, name) for name in layer.inputs])
        if first is not None and i < head:  # between the first adapter and the head: forward and backward only
            layer = replace(layer, frozen=False, trained=not layer.has_weights)
        layers.append(layer)
        if layer.name in chosen:
            adapter = _adapter(layer, names)
            names.add(adapter.name)
            renamed[layer.name] = adapter.name
            first = len(layers) if first is None else first
            layers.append(adapter)
    return Network(network.name, network.input_shape, layers)


def _adapter(after: Layer, taken: set[str]) -> Layer:
    channels = after.out_shape[0]
    name = after.name + SUFFIX
    while name in taken:
        name += "_"
    weight = np.eye(channels, dtype=np.float64).reshape(channels, channels, 1, 1)
    return Layer(name, "conv2d", [after.name], tuple(after.out_shape), tuple(after.out_shape), kernel=1,
                 weight=weight, bias=np.zeros(channels), frozen=False, trained=True,
                 module_path=f"{after.module_path or after.name}{SUFFIX}")


def adapter_names(network: Network) -> list[str]:
    return [layer.name for layer in network.layers if layer.name.endswith(SUFFIX) and not layer.frozen]


def trained_parameters(network: Network) -> int:
    """Weights and biases of the layers that train (what one domain stores: `domain_parameters`)."""
    return sum(layer.weight.size + layer.bias.size for layer in network.retrainable_layers
               if layer.has_weights and layer.trained)


def domain_parameters(network: Network, params: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """One domain's trained parameters as named arrays ("<layer>.weight", "<layer>.bias"), from `params`
    (layer -> (weight, bias), float or fixed point) restricted to the layers that train."""
    out = {}
    for layer in network.retrainable_layers:
        if layer.has_weights and layer.trained:
            weight, bias = params[layer.name]
            out[f"{layer.name}.weight"], out[f"{layer.name}.bias"] = np.asarray(weight), np.asarray(bias)
    return out


def save_domain(path: Path, network: Network, params: dict[str, tuple[np.ndarray, np.ndarray]]) -> int:
    """Write one domain's trained parameters to an .npz (no pickle); returns the bytes written. Integer
    (fixed-point) values are stored in the narrowest of int16/int32 that holds them: the RL engine's 16-bit
    values take two bytes each."""
    arrays = {}
    for key, value in domain_parameters(network, params).items():
        if value.dtype.kind in "iu":
            value = value.astype(np.int16 if value.size == 0 or (value.min() >= -2 ** 15 and value.max() < 2 ** 15)
                                 else np.int32)
        arrays[key] = value
    np.savez(path, **arrays)
    return Path(path).stat().st_size


def load_domain(path: Path, network: Network, params: dict[str, tuple[np.ndarray, np.ndarray]]) \
        -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`params` with the trained layers' values replaced by a domain file's, each checked by name and shape."""
    want = domain_parameters(network, params)
    try:
        with np.load(path, allow_pickle=False) as data:
            if set(data.files) != set(want):
                missing, extra = sorted(set(want) - set(data.files)), sorted(set(data.files) - set(want))
                raise ModelSpecError(f"{path}: a domain file for '{network.name}' holds {', '.join(want)}; "
                                     f"missing {missing or 'none'}, unexpected {extra or 'none'}")
            got = {}
            for key, value in want.items():
                array = data[key]
                if array.shape != value.shape or array.dtype.kind not in "iuf" or (
                        array.dtype.kind == "f" and not np.all(np.isfinite(array))):
                    raise ModelSpecError(f"{path}: '{key}' is {array.dtype} {array.shape}, expected finite numbers "
                                         f"of shape {value.shape}")
                got[key] = array.astype(value.dtype)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelSpecError(f"{path}: not a readable domain file (an .npz from save_domain): {e}") from None
    out = dict(params)
    for layer in network.retrainable_layers:
        if layer.has_weights and layer.trained:
            out[layer.name] = (got[f"{layer.name}.weight"], got[f"{layer.name}.bias"])
    return out
