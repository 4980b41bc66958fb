"""Model import: a MODEL argument (zoo name or `path/to/file.py:factory`) → Network IR with its split.

The split marks layers before it frozen (feature-extractor engine) and the rest retrainable
(retrainable-layer engine). It is given as a layer name, an integer layer index, or
`{"retrain_last": K}` (the last K conv/linear layers and everything after the first of them).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from dtlgen.errors import ModelSpecError
from dtlgen.model.ir import INPUT, Layer, Network

__all__ = ["INPUT", "Layer", "Network", "import_module", "load_factory", "load_model", "resolve_split"]


def import_module(module, input_shape, name: str = "model") -> Network:
    """torch.fx import (`fx_import.import_module`); torch loads only here, so the IR stays torch-free."""
    from dtlgen.model import fx_import

    return fx_import.import_module(module, input_shape, name)


def resolve_split(network: Network, split: Any) -> int:
    """Index of the first retrainable layer for a split given as name, index or {'retrain_last': K}."""
    names = [layer.name for layer in network.layers]
    if split is None:
        return len(names)
    if isinstance(split, bool):  # bool is an int: reject it before the int branch accepts it
        raise ModelSpecError(f"split {split!r}: give a layer name, an index or {{'retrain_last': K}}")
    if isinstance(split, int):
        if not 0 <= split < len(names):
            raise ModelSpecError(f"split index {split} is out of range; '{network.name}' has layers 0..{len(names) - 1}")
        return split
    if isinstance(split, str):
        if split not in names:
            raise ModelSpecError(f"split layer '{split}' is not in '{network.name}'; layers are: {', '.join(names)}")
        return names.index(split)
    if isinstance(split, dict) and set(split) == {"retrain_last"}:
        k = split["retrain_last"]
        weighted = [i for i, layer in enumerate(network.layers) if layer.has_weights]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(weighted):
            raise ModelSpecError(f"retrain_last={k!r}: '{network.name}' has {len(weighted)} conv/linear layers; "
                                 f"give K from 1 to {len(weighted)}")
        return weighted[-k]
    raise ModelSpecError(f"split {split!r}: give a layer name, an index or {{'retrain_last': K}}")


def load_factory(spec: str) -> tuple[Any, tuple[int, ...], Any, str]:
    """Resolve MODEL to (module, input_shape, split-or-None, name) without tracing it."""
    from dtlgen.model import zoo

    if ":" in spec and not spec.startswith(":"):
        path_text, factory_name = spec.rsplit(":", 1)
        factory = _factory_from_file(Path(path_text), factory_name, spec)
        name = factory_name
    elif spec in zoo.ZOO:
        factory, name = zoo.ZOO[spec], spec
    else:
        raise ModelSpecError(f"model '{spec}' is neither a zoo model ({', '.join(zoo.zoo_names())}) "
                             "nor 'path/to/file.py:factory'")
    try:
        result = factory()
    except Exception as exc:
        raise ModelSpecError(f"model '{spec}': the factory raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise ModelSpecError(f"model '{spec}': the factory must return (module, input_shape) or "
                             f"(module, input_shape, split), got {type(result).__name__}")
    module, input_shape = result[0], result[1]
    split = result[2] if len(result) == 3 else None
    import torch.nn as nn

    if not isinstance(module, nn.Module):
        raise ModelSpecError(f"model '{spec}': the factory's first value must be a torch.nn.Module")
    if not (isinstance(input_shape, (tuple, list)) and input_shape and all(isinstance(d, int) and d > 0 for d in input_shape)):
        raise ModelSpecError(f"model '{spec}': input_shape {input_shape!r} must be a tuple of positive ints, "
                             "per sample, e.g. (3, 32, 32)")
    return module, tuple(input_shape), split, name


def load_model(spec: str, split: Any = None) -> Network:
    """MODEL → Network IR with `frozen` set from `split` (if given) or from the factory's split."""
    module, input_shape, factory_split, name = load_factory(spec)
    network = import_module(module, input_shape, name)
    return network.with_split(resolve_split(network, split if split is not None else factory_split))


def _factory_from_file(path: Path, factory_name: str, spec: str):
    if path.suffix != ".py" or not path.is_file():
        raise ModelSpecError(f"model '{spec}': '{path}' is not a Python file; give path/to/file.py:factory")
    module_name = f"dtlgen_user_model_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    user_module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = user_module  # lets dataclasses/pickle inside the file resolve their module
    try:
        loader_spec.loader.exec_module(user_module)
    except Exception as exc:
        raise ModelSpecError(f"model '{spec}': importing '{path}' raised {type(exc).__name__}: {exc}") from exc
    factory = getattr(user_module, factory_name, None)
    if not callable(factory):
        raise ModelSpecError(f"model '{spec}': '{path}' has no function '{factory_name}'")
    return factory
