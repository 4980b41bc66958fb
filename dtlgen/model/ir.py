"""Network IR: the plain-data description of a network that every later stage consumes.

A `Network` is an ordered list of `Layer`s in execution order. Shapes are per sample, CHW for
feature maps and (F,) for vectors; the batch dimension never appears in the IR. Loop-tiling names
follow Zhang et al. (FPGA'15): N input channels, M output channels, R×C output rows×cols,
K kernel, S stride, P padding.

The IR holds float weights only; quantisation lives in `dtlgen.quant` and must not write here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dtlgen.errors import ModelSpecError
from dtlgen.errors import brief
from dtlgen.model.ops import OP_CLASSES, op_of

# Ops the IR knows, one class each in `dtlgen.model.ops`. `linear` keeps its own name (the FE engine
# runs it as a 1×1 conv).
OPS = tuple(OP_CLASSES)
ACTIVATIONS = (None, "relu", "relu6")


def joined_activation(*activations: str | None) -> str | None:
    """One activation that does what `activations` applied one after another do (ReLU6 after or before a
    ReLU is ReLU6). Both are non-decreasing, so they also commute with a max pool and a concatenation:
    the importer moves one across a concatenation, the FE program joins a fused max pool's to its conv's."""
    return "relu6" if "relu6" in activations else "relu" if "relu" in activations else None
INPUT = "input"  # the name that `Layer.inputs` uses for the network's input tensor
# Values per input sample the importer accepts: 3x2048x2048 fits; the shape pass holds a few
# activations of this size, so an absurd shape is refused before torch tries to allocate it.
MAX_INPUT_VALUES = 1 << 24


@dataclass
class Layer:
    """One IR layer. `kernel/stride/padding/groups` are meaningful for conv2d and the pools."""

    name: str
    op: str
    inputs: list[str]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    activation: str | None = None  # fused relu / relu6 applied to this layer's output
    weight: np.ndarray | None = None  # conv: (M, N/groups, K, K); linear: (M, N)
    bias: np.ndarray | None = None  # (M,)
    frozen: bool = True
    # a retrainable layer the RL engine runs forward and backward (BWD_DATA) but never updates: a conv that
    # gradients cross on their way to residual adapters below it (issue 20). Ignored when frozen.
    trained: bool = True
    module_path: str = ""
    # a seeded conv (issue 18): {"seed", "index", "kind"}, its weights `dtlgen.isa.seeded.conv_weights` of
    # them (integers, held in `weight`), its output channel m multiplied by `scale[m]` before the bias
    seed: dict[str, Any] | None = None
    scale: np.ndarray | None = None  # (M,)
    # a retrainable layer whose initial values are drawn from a seed (issue 18): {"seed", "index",
    # "bound_log2", "frac"}; `weight` is `dtlgen.isa.seeded.initial_weights` of them times 2^-frac, `bias` 0
    init_seed: dict[str, Any] | None = None
    # magnitude pruning (issue 19, `dtlgen.model.prune`): 1 keeps a weight, 0 where it was removed (its weight
    # is 0). A retrainable layer's mask goes to the RL engine, whose UPDATE holds the removed weights at 0.
    mask: np.ndarray | None = None  # the weight's shape, uint8

    # Shape names of the tiling literature, per sample.
    @property
    def n(self) -> int:
        return self.in_shape[0]

    @property
    def m(self) -> int:
        return self.out_shape[0]

    @property
    def r(self) -> int:
        return self.out_shape[1] if len(self.out_shape) == 3 else 1

    @property
    def c(self) -> int:
        return self.out_shape[2] if len(self.out_shape) == 3 else 1

    @property
    def depthwise(self) -> bool:
        return op_of(self).depthwise(self)

    @property
    def has_weights(self) -> bool:
        return op_of(self).has_weights

    @property
    def macs(self) -> int:
        """Useful multiply-accumulates per sample (padding taps included, as in the usual count)."""
        return op_of(self).macs(self)

    @property
    def params(self) -> int:
        return sum(int(a.size) for a in (self.weight, self.bias, self.scale) if a is not None)

    def describe_shape(self) -> str:
        return f"{'x'.join(map(str, self.in_shape))} -> {'x'.join(map(str, self.out_shape))}"

    def to_dict(self, with_weights: bool = False) -> dict[str, Any]:
        d = {
            "name": self.name, "op": self.op, "inputs": list(self.inputs),
            "in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
            "kernel": self.kernel, "stride": self.stride, "padding": self.padding,
            "groups": self.groups, "activation": self.activation, "frozen": self.frozen,
            "module_path": self.module_path, "macs": self.macs, "params": self.params,
        }
        if self.seed is not None:
            d["seed"] = dict(self.seed)
        if self.init_seed is not None:
            d["init_seed"] = dict(self.init_seed)
        if not self.frozen and not self.trained:
            d["trained"] = False
        if self.mask is not None:
            d["sparsity"] = round(1.0 - float(np.mean(self.mask)), 6)
        if with_weights:
            d["weight"] = None if self.weight is None else self.weight.tolist()
            d["bias"] = None if self.bias is None else self.bias.tolist()
            if self.scale is not None:
                d["scale"] = self.scale.tolist()
        return d


@dataclass(eq=False)  # identity semantics: networks are hashable and cached by identity
class Network:
    """Layers in execution order plus the per-sample input shape. The last layer is the output."""

    name: str
    input_shape: tuple[int, ...]
    layers: list[Layer] = field(default_factory=list)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def index(self, name: str) -> int:
        return [layer.name for layer in self.layers].index(name)

    @property
    def frozen_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.frozen]

    @property
    def retrainable_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if not layer.frozen]

    @property
    def split_index(self) -> int:
        """Index of the first retrainable layer (len(layers) when everything is frozen)."""
        for i, layer in enumerate(self.layers):
            if not layer.frozen:
                return i
        return len(self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def with_split(self, split_index: int) -> "Network":
        """A copy whose layers from `split_index` on are retrainable (arrays are shared, not copied)."""
        layers = [replace(layer, frozen=i < split_index) for i, layer in enumerate(self.layers)]
        return Network(self.name, self.input_shape, layers)

    def to_dict(self, with_weights: bool = False) -> dict[str, Any]:
        return {
            "name": self.name, "input_shape": list(self.input_shape),
            "split_index": self.split_index, "macs": self.macs, "params": self.params,
            "layers": [layer.to_dict(with_weights) for layer in self.layers],
        }


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a conv or pool along one axis (floor mode, as torch)."""
    return math.floor((size + 2 * padding - kernel) / stride) + 1


def gemm_shape(layer: Layer) -> tuple[int, int, int] | None:
    """(M, N, positions) of a layer that is a GEMM per sample — linear, or 1×1 stride-1 unpadded
    dense conv (a GEMM over its R·C positions) — else None. The RL engine trains exactly these."""
    return op_of(layer).gemm_shape(layer)


def first_trained_layer(rl_layers: list[Layer]) -> str:
    """The first retrainable layer whose weights train: gradients stop there (it needs no BWD_DATA)."""
    return next(layer.name for layer in rl_layers if layer.has_weights and layer.trained)


def flattened_map(network: "Network", layer: Layer) -> tuple[int, int, int] | None:
    """The C×H×W map (H·W > 1) that a retrainable flatten made of a retrainable layer's output, when `layer` is
    the linear layer reading that flatten: the RL engine runs it as a window over the whole map (issue 20).
    None otherwise (a flatten of the FE's output gives the RL engine flat features)."""
    if layer.op != "linear" or layer.inputs[0] == INPUT:
        return None
    flatten = network.layer(layer.inputs[0])
    if flatten.op != "flatten" or flatten.frozen or len(flatten.in_shape) != 3 or flatten.inputs[0] == INPUT:
        return None
    if network.layer(flatten.inputs[0]).frozen or flatten.in_shape[1] * flatten.in_shape[2] == 1:
        return None
    c, h, w = flatten.in_shape
    return c, h, w


def check_input_shape(value: Any, origin: str) -> tuple[int, ...]:
    """The per-sample input shape as a tuple of ints, or ModelSpecError naming `origin` and the shape.

    The IR holds (C, H, W) feature maps and (F,) vectors, so those are the two forms accepted.
    """
    problem = None
    if not isinstance(value, (tuple, list)):
        problem = f"it is a {type(value).__name__}"
    elif len(value) not in (1, 3):
        problem = f"it has {len(value)} dimensions"
    else:
        bad = [d for d in value if isinstance(d, bool) or not isinstance(d, numbers.Integral)]
        if bad:
            problem = f"{brief(bad[0])} is a {type(bad[0]).__name__}, not an int"
        elif any(d <= 0 for d in value):
            problem = "every size must be at least 1"
        elif math.prod(int(d) for d in value) > MAX_INPUT_VALUES:
            problem = (f"that is {math.prod(int(d) for d in value):,} values per sample and the importer takes "
                       f"at most {MAX_INPUT_VALUES:,}")
    if problem:
        raise ModelSpecError(f"{origin}: input_shape {brief(value)} is not a per-sample shape ({problem}); give a "
                             "tuple of positive ints without the batch dimension: (C, H, W) for images or (F,) for "
                             "vectors, e.g. (3, 32, 32)")
    return tuple(int(d) for d in value)
