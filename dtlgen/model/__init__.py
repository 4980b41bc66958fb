"""Model import: a MODEL argument (zoo name or `path/to/file.py:factory`) → Network IR with its split.

The split marks layers before it frozen (feature-extractor engine) and the rest retrainable
(retrainable-layer engine). It is given as a layer name, an integer layer index, or
`{"retrain_last": K}` (the last K conv/linear layers and everything after the first of them).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

from dtlgen.errors import DtlgenWarning, ModelSpecError
from dtlgen.model.ir import INPUT, Layer, Network
from dtlgen.errors import brief

__all__ = ["INPUT", "Layer", "Network", "import_module", "load_factory", "load_model", "resolve_split"]


def import_module(module, input_shape, name: str = "model", origin: str | None = None) -> Network:
    """torch.fx import (`fx_import.import_module`); torch loads only here, so the IR stays torch-free."""
    from dtlgen.model import fx_import

    return fx_import.import_module(module, input_shape, name, origin)


def resolve_split(network: Network, split: Any, given_by: str = "") -> int:
    """Index of the first retrainable layer for a split given as name, index or {'retrain_last': K}.

    `given_by` names where the split came from in messages (e.g. "factory `f` in net.py"). A split
    must leave at least one conv/linear layer retrainable: one that leaves only pools or flatten
    after it retrains nothing, which is never what was meant. No split freezes every layer.
    """
    names = [layer.name for layer in network.layers]
    weighted = [i for i, layer in enumerate(network.layers) if layer.has_weights]
    src = f" from {given_by}" if given_by else ""
    forms = "give a layer name, an index or {'retrain_last': K}"
    if split is None:
        return len(names)
    if isinstance(split, bool):  # bool is an int: reject it before the int branch accepts it
        raise ModelSpecError(f"split {split!r}{src} is a bool; {forms}")
    if isinstance(split, numbers.Integral):
        index = int(split)
        if not 0 <= index < len(names):
            negative = "; count from 0 (negative indices are not supported)" if index < 0 else ""
            raise ModelSpecError(f"split index {index}{src} is out of range; '{network.name}' has layers "
                                 f"0..{len(names) - 1}{negative}")
    elif isinstance(split, str):
        if split not in names:
            raise ModelSpecError(f"split layer {brief(split)}{src} is not in '{network.name}'; layers are: "
                                 f"{', '.join(names)}")
        index = names.index(split)
    elif isinstance(split, dict) and set(split) == {"retrain_last"}:
        k = split["retrain_last"]
        if not weighted:
            raise ModelSpecError(f"split retrain_last={brief(k)}{src}: '{network.name}' has no conv/linear layer "
                                 "to retrain; give no split")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= len(weighted):
            raise ModelSpecError(f"split retrain_last={brief(k)}{src}: '{network.name}' has {len(weighted)} "
                                 f"conv/linear layers; give K from 1 to {len(weighted)}")
        return weighted[-int(k)]
    else:
        raise ModelSpecError(f"split {brief(split)}{src} is a {type(split).__name__}; {forms}")
    if not weighted or index > weighted[-1]:
        fix = (f"put the split at or before '{names[weighted[-1]]}' (index {weighted[-1]})" if weighted
               else f"'{network.name}' has no conv/linear layer to retrain")
        raise ModelSpecError(f"split {brief(split)}{src} would retrain only {', '.join(names[index:])}, which have "
                             f"no weights; {fix}, or give no split to freeze every layer")
    return index


def load_factory(spec: str) -> tuple[Any, tuple[int, ...], Any, str]:
    """Resolve MODEL to (module, input_shape, split-or-None, name) without tracing it."""
    from dtlgen.model.factory import call_factory

    result = call_factory(spec)
    return result.module, result.input_shape, result.split, result.name


def load_model(spec: str, split: Any = None) -> Network:
    """MODEL → Network IR with `frozen` set from `split` (if given) or from the factory's split.

    Every problem with the user's file, factory, model, input shape or split is a `DtlgenError`
    naming it; nothing the user wrote reaches them as a traceback.
    """
    from dtlgen.model.factory import call_factory

    result = call_factory(spec)
    network = import_module(result.module, result.input_shape, result.name, result.origin)
    if split is not None:
        return network.with_split(resolve_split(network, split))
    if result.split is None and any(layer.has_weights for layer in network.layers):
        warnings.warn(DtlgenWarning(
            f"{result.origin} gives no split, so every layer of '{network.name}' is frozen and nothing re-trains on "
            "the device; give --split NAME|INDEX or --retrain-last K (or return a split from the factory)"),
            stacklevel=2)
    return network.with_split(resolve_split(network, result.split, result.origin))
