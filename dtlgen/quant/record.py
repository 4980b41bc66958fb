"""The RL golden model's view of a quantised network as plain JSON (a project's `sim/rl_quant.json`).

A project must be data, never code: what the golden model needs to replay re-training on the
device (the layers' shapes and ops, the precision, every RL tensor's fixed-point format) is
written here as JSON, and the integer weights stay in `rl_train.npz`. `rl_view_from_dict` checks
every field before building the QuantizedNetwork, so a tampered file is one `DesignError` naming
the file and the field, never a crash later in the golden model. Frozen layers keep their shapes
and formats' place in the graph but no weights (the RL golden model never reads them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dtlgen.errors import DesignError
from dtlgen.model.ir import ACTIVATIONS, OPS, Layer, Network
from dtlgen.model.ops import op_of
from dtlgen.quant.fixed import QFormat
from dtlgen.quant.quantize import LayerQuant, PrecisionConfig, QuantizedNetwork

FORMAT = "dtlgen-rl-quant/1"
_LAYER_INTS = ("kernel", "stride", "padding", "groups")
_FMT_KEYS = ("out_fmt", "w_fmt", "b_fmt", "grad_fmt", "dw_fmt", "db_fmt")
_MAX_DIM = 1 << 24  # no tensor dimension in a network dtlgen can build comes near this


def rl_view_to_dict(qnet: QuantizedNetwork) -> dict[str, Any]:
    """Everything the RL golden model reads, without any weights."""
    layers = []
    for layer in qnet.network.layers:
        entry = {key: getattr(layer, key) for key in ("name", "op", "activation", "frozen", "trained", *_LAYER_INTS)}
        entry.update(inputs=list(layer.inputs), in_shape=list(layer.in_shape), out_shape=list(layer.out_shape))
        layers.append(entry)
    quant = {}
    for layer in qnet.rl_layers:
        lq = qnet.layers[layer.name]
        quant[layer.name] = {"in_fracs": list(lq.in_fracs), "acc_bits": lq.acc_bits,
                             **{key: None if getattr(lq, key) is None else getattr(lq, key).to_dict()
                                for key in _FMT_KEYS}}
    return {"format": FORMAT, "name": qnet.network.name, "input_shape": list(qnet.network.input_shape),
            "precision": qnet.precision.to_dict(), "input_fmt": qnet.input_fmt.to_dict(), "layers": layers,
            "quant": quant}


def rl_view_from_dict(data: Any, weights: dict[str, tuple[np.ndarray, np.ndarray]],
                      source: str, masks: dict[str, np.ndarray] | None = None) -> QuantizedNetwork:
    """The QuantizedNetwork that `rl_view_to_dict` described, with the RL layers' integer `weights` and
    pruning `masks` (rl_train.npz's m_<layer>: 0 / 1 of the weight's shape)."""
    check = _Checker(source)
    data = check.obj(data, "the file", ("format", "name", "input_shape", "precision", "input_fmt", "layers", "quant"))
    if data["format"] != FORMAT:
        check.fail("format", f"is {data['format']!r}, not {FORMAT!r}")
    precision_data = check.obj(data["precision"], "precision", ("w_bits", "a_bits", "rl_bits", "batch", "lr_shift"))
    try:
        precision = PrecisionConfig(**{k: precision_data[k] for k in ("w_bits", "a_bits", "rl_bits", "batch",
                                                                      "lr_shift")})
    except DesignError as exc:
        raise DesignError(f"{source}: {exc}") from None
    layers, names = [], set()
    for i, entry in enumerate(check.list(data["layers"], "layers", 1, 4096)):
        where = f"layers[{i}]"
        entry = check.obj(entry, where, ("name", "op", "activation", "frozen", "inputs", "in_shape", "out_shape",
                                         *_LAYER_INTS))
        name = check.text(entry["name"], f"{where}.name")
        if entry["op"] not in OPS:
            check.fail(f"{where}.op", f"is {entry['op']!r}; one of {', '.join(OPS)}")
        if entry["activation"] not in ACTIVATIONS:
            check.fail(f"{where}.activation", f"is {entry['activation']!r}; one of {ACTIVATIONS}")
        if not isinstance(entry["frozen"], bool):
            check.fail(f"{where}.frozen", "must be true or false")
        if not isinstance(entry.get("trained", True), bool):  # (absent in projects from before issue 20: trained)
            check.fail(f"{where}.trained", "must be true or false")
        inputs = [check.text(v, f"{where}.inputs") for v in check.list(entry["inputs"], f"{where}.inputs", 1, 8)]
        if any(v != "input" and v not in names for v in inputs):
            check.fail(f"{where}.inputs", f"{inputs} names a layer that does not come before it")
        layers.append(Layer(name, entry["op"], inputs, check.shape(entry["in_shape"], f"{where}.in_shape"),
                            check.shape(entry["out_shape"], f"{where}.out_shape"),
                            *(check.int(entry[k], f"{where}.{k}", 0 if k == "padding" else 1,
                                        _MAX_DIM if k == "groups" else 64) for k in _LAYER_INTS),
                            activation=entry["activation"], frozen=entry["frozen"], trained=entry.get("trained", True)))
        names.add(name)
    network = Network(check.text(data["name"], "name"), check.shape(data["input_shape"], "input_shape"), layers)
    rl_layers = network.retrainable_layers
    if not rl_layers:
        check.fail("layers", "has no retrainable layer")
    quant_data = check.obj(data["quant"], "quant", ())
    if set(quant_data) != {layer.name for layer in rl_layers}:
        check.fail("quant", "must hold exactly the retrainable layers")
    quant = {}
    for layer in rl_layers:
        where = f"quant.{layer.name}"
        entry = check.obj(quant_data[layer.name], where, ("in_fracs", "acc_bits", *_FMT_KEYS))
        fmts = {key: check.fmt(entry[key], f"{where}.{key}", optional=key != "out_fmt") for key in _FMT_KEYS}
        lq = LayerQuant(layer.name, "rl",
                        tuple(check.int(v, f"{where}.in_fracs", -64, 64)
                              for v in check.list(entry["in_fracs"], f"{where}.in_fracs", 1, 8)),
                        acc_bits=check.int(entry["acc_bits"], f"{where}.acc_bits", 0, 96), **fmts)
        if layer.has_weights:
            if lq.w_fmt is None or lq.b_fmt is None or lq.grad_fmt is None or lq.dw_fmt is None or lq.db_fmt is None:
                check.fail(where, "needs w_fmt, b_fmt, grad_fmt, dw_fmt and db_fmt for a layer with weights")
            if layer.name not in weights:
                raise DesignError(f"{source}: layer '{layer.name}' has no weights in the project's rl_train.npz; "
                                  "regenerate the project with 'dtlgen generate'")
            lq.weight, lq.bias = weights[layer.name]
            want = op_of(layer).weight_shape(layer)
            for what, array, shape, fmt in (("weights", lq.weight, want, lq.w_fmt), ("biases", lq.bias, (layer.m,),
                                                                                    lq.b_fmt)):
                if not isinstance(array, np.ndarray) or array.dtype.kind not in "iu" or array.shape != shape \
                        or (array.size and (array.min() < fmt.min_int or array.max() > fmt.max_int)):
                    raise DesignError(f"{source}: the {what} of layer '{layer.name}' in rl_train.npz are not "
                                      f"{fmt.bits}-bit integers of shape {shape}; regenerate the project with "
                                      "'dtlgen generate'")
            if masks and layer.name in masks:
                mask = masks[layer.name]
                if not isinstance(mask, np.ndarray) or mask.dtype.kind not in "biu" or mask.shape != want \
                        or (mask.size and (mask.min() < 0 or mask.max() > 1)):
                    raise DesignError(f"{source}: the pruning mask of layer '{layer.name}' in rl_train.npz (m_{layer.name}) "
                                      f"is not 0 / 1 values of shape {want}; regenerate the project with 'dtlgen generate'")
                layer.mask = mask.astype(np.uint8)
            # The IR keeps float weights; the RL golden model reads only the integer ones.
            layer.weight = lq.weight * lq.w_fmt.step
            layer.bias = lq.bias * lq.b_fmt.step
        quant[layer.name] = lq
    fmt = check.fmt(data["input_fmt"], "input_fmt", optional=False)
    return QuantizedNetwork(network, precision, fmt, quant)


class _Checker:
    """Field checks that raise one DesignError naming the file and the field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, problem: str) -> None:
        raise DesignError(f"{self.source}: field '{field}' {problem}; regenerate the project with 'dtlgen generate'")

    def obj(self, value: Any, field: str, keys: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(field, "must be a JSON object")
        missing = [k for k in keys if k not in value]
        if missing:
            self.fail(field, f"lacks {', '.join(missing)}")
        return value

    def list(self, value: Any, field: str, lo: int, hi: int) -> list[Any]:
        if not isinstance(value, list) or not lo <= len(value) <= hi:
            self.fail(field, f"must be a list of {lo} to {hi} entries")
        return value

    def int(self, value: Any, field: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.fail(field, f"is {value!r}; an integer from {lo} to {hi}")
        return value

    def text(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= 256:
            self.fail(field, "must be a non-empty string")
        return value

    def shape(self, value: Any, field: str) -> tuple[int, ...]:
        return tuple(self.int(v, field, 1, _MAX_DIM) for v in self.list(value, field, 1, 3))

    def fmt(self, value: Any, field: str, optional: bool) -> QFormat | None:
        if value is None and optional:
            return None
        value = self.obj(value, field, ("bits", "frac"))
        return QFormat(self.int(value["bits"], f"{field}.bits", 1, 64), self.int(value["frac"], f"{field}.frac", -64, 64))
