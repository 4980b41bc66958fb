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

__all__ = ["INPUT", "Layer", "Network", "import_module", "load_factory", "load_model", "load_weights", "resolve_split"]


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


def load_model(spec: str, split: Any = None, weights: Any = None) -> Network:
    """MODEL → Network IR with `frozen` set from `split` (if given) or from the factory's split.
    `weights` is a file of the model's trained weights (a `state_dict` saved with torch.save), loaded
    into the model before import (`load_weights`); without it the model keeps the weights its
    factory gives it (the zoo's are seeded random ones).

    Every problem with the user's file, factory, model, input shape or split is a `DtlgenError`
    naming it; nothing the user wrote reaches them as a traceback.
    """
    from dtlgen.model.factory import call_factory

    result = call_factory(spec)
    if weights is not None:
        load_weights(result.module, weights, result.origin)
    network = import_module(result.module, result.input_shape, result.name, result.origin)
    if split is not None:
        return network.with_split(resolve_split(network, split))
    if result.split is None and any(layer.has_weights for layer in network.layers):
        warnings.warn(DtlgenWarning(
            f"{result.origin} gives no split, so every layer of '{network.name}' is frozen and nothing re-trains on "
            "the device; give --split NAME|INDEX or --retrain-last K (or return a split from the factory)"),
            stacklevel=2)
    return network.with_split(resolve_split(network, result.split, result.origin))


def load_weights(module: Any, path: Any, origin: str = "the model") -> None:
    """Load a `state_dict` file into `module`, with torch's safe loader (weights_only=True: tensors and
    plain containers, never pickled code). The file must be torch.save's zip format, unpacking to at
    most `data.MAX_DATA_BYTES` (checked before torch reads it); every key, shape and dtype must match
    the module's own. A checkpoint dict holding the state under "state_dict" or "model" (not both) is
    accepted too."""
    import zipfile
    from pathlib import Path

    import torch

    from dtlgen.model.data import MAX_DATA_BYTES

    path = Path(path)
    fix = "save the weights with torch.save(model.state_dict(), PATH)"
    if not path.is_file():
        raise ModelSpecError(f"weights file '{path}' {'is not a file' if path.exists() else 'does not exist'}; {fix}")
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelSpecError(f"weights file '{path}' is not a state_dict in torch.save's zip format "
                             f"({' '.join(str(exc).split())[:120] or type(exc).__name__}); re-save it with torch.save "
                             "(zip format, torch's default since 1.6): torch.save(model.state_dict(), PATH)") from None
    if declared > MAX_DATA_BYTES:
        raise ModelSpecError(f"weights file '{path}' unpacks to {declared:,} bytes, more than "
                             f"{MAX_DATA_BYTES >> 30} GiB; it is not the state_dict of a model dtlgen builds: {fix}")
    try:
        with warnings.catch_warnings():  # torch's notes on a foreign file's pickle protocol: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a foreign or broken file
        raise ModelSpecError(f"weights file '{path}' is not a state_dict torch can load safely ({' '.join(str(exc).split())[:160] or type(exc).__name__}); {fix} "
                             "(dtlgen loads it with weights_only=True: tensors only, no pickled objects)") from None
    if isinstance(state, dict):
        nested = [key for key in ("state_dict", "model") if isinstance(state.get(key), dict)
                  and all(isinstance(v, torch.Tensor) for v in state[key].values())]
        if len(nested) > 1:
            raise ModelSpecError(f"weights file '{path}' is a checkpoint holding two state_dicts, under \"state_dict\" "
                                 "and under \"model\", and dtlgen will not guess which is the model's; save the one "
                                 "you mean: torch.save(checkpoint[KEY], PATH)")
        if nested:
            state = state[nested[0]]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelSpecError(f"weights file '{path}' holds a {type(state).__name__}, not a state_dict of named "
                             f"tensors; {fix}")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} (the model's {tuple(own[k].shape)})" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = [f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for what, keys in (("missing", missing), ("not in the model", unexpected), ("shapes differ", shapes))
                if keys]
    if problems:
        raise ModelSpecError(f"weights file '{path}' does not fit {origin}: {'; '.join(problems)}; save the "
                             "state_dict of this very model")
    # Weights are real floating tensors (load_state_dict casts float64 or float16 to the model's type, as
    # torch does), buffers (BatchNorm's num_batches_tracked) the model's integer type: load_state_dict
    # would cast an integer, a bool or a complex tensor silently (a complex one drops its imaginary part,
    # whose NaN the finiteness check below would not see).
    dtypes = [f"{k} is {_dtype(state[k])}, the model's {_dtype(own[k])}" for k in own
              if state[k].is_complex() or (not state[k].is_floating_point() if own[k].is_floating_point()
                                           else state[k].dtype != own[k].dtype)]
    if dtypes:
        raise ModelSpecError(f"weights file '{path}' does not fit {origin}: {'; '.join(dtypes[:3])}"
                             f"{' ...' if len(dtypes) > 3 else ''}; save the state_dict of this very model (weights "
                             "as real floating tensors, buffers as the model's integer ones)")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ModelSpecError(f"weights file '{path}': {', '.join(bad[:3])} hold NaN or infinite values; give "
                             "trained, finite weights")
    module.load_state_dict(state, strict=True)


def _dtype(tensor: Any) -> str:
    return str(tensor.dtype).removeprefix("torch.")
