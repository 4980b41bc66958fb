"""Seeded convolutions (ReFrame, issue 18): frozen weights that are a pure function of a seed.

A `SeededConv2d` holds no weight tensor in its state: its weights are
`dtlgen.isa.seeded.conv_weights(seed, index, shape, kind)`, regenerated on construction (a non-persistent
buffer), and only a per-output-channel `scale` and a `bias` are parameters. Its output is

    conv2d(x, weights) · scale[m] + bias[m]

which is what the FE engines compute for it (the generator's integers in the weight banks, the scale and
bias in the output stage: `dtlgen.isa.fe`, Per-channel scale). The torch.fx importer maps it to a
`conv2d` layer whose `seed` names the generator's inputs (`dtlgen.model.fx_import`), and a BatchNorm
after it folds into its scale and bias, not into its weights.

A model is sent as its seeds plus its learnable parameters (`transmitted_bytes`, below).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dtlgen.isa import seeded as isa_seeded


class SeededConv2d(nn.Module):
    """A convolution whose weights come from the seeded-weight generator (module docstring).

    `seed` is the model's seed and `index` the layer's number under it (0 .. 2^32 − 1 each); `kind` is
    "sign" (±1) or "int<b>" (b-bit two's complement integers). `groups` is 1 or depthwise (= in_channels
    = out_channels), as for the FE engine's convolutions. The scale starts at He's standard deviation
    for the weights' variance, so that a ReLU network of seeded layers keeps its activations' scale.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, *, seed: int, index: int, kind: str = "sign"):
        super().__init__()
        if groups not in (1, in_channels) or (groups > 1 and out_channels != in_channels):
            raise ValueError(f"groups {groups}: 1, or depthwise (in_channels = out_channels = groups)")
        isa_seeded.layer_key(seed, index)  # refuses a seed or index outside 0 .. 2^32 - 1
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding, self.groups = int(kernel_size), int(stride), int(padding), int(groups)
        self.seed, self.index, self.kind = int(seed), int(index), kind
        shape = (self.out_channels, self.in_channels // self.groups, self.kernel_size, self.kernel_size)
        values = isa_seeded.conv_weights(self.seed, self.index, shape, kind, self.groups > 1)
        self.register_buffer("weight", torch.from_numpy(values).to(torch.float32), persistent=False)
        fan_in = shape[1] * self.kernel_size * self.kernel_size
        variance = float(self.weight.pow(2).mean())  # 1 for ±1; about 2^(2b)/12 for b-bit integers
        self.scale = nn.Parameter(torch.full((self.out_channels,), math.sqrt(2.0 / (fan_in * variance))))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, None, self.stride, self.padding, 1, self.groups)
        return y * self.scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    @property
    def seed_spec(self) -> dict[str, Any]:
        """What regenerates the weights: the IR layer's `seed`."""
        return {"seed": self.seed, "index": self.index, "kind": self.kind}

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, seed={self.seed}, index={self.index}, kind={self.kind}")


def seed_convs(module: nn.Module, paths: list[str], seed: int, kind: str = "sign") -> list[str]:
    """Replace the torch.nn.Conv2d submodules at `paths` (module paths, as the IR's layer names) of
    `module` by SeededConv2d of the same geometry, in place, layer index i for the i-th of `paths`; a
    conv's bias, if it has one, starts as the seeded conv's. Returns `paths`. A path that is not a
    Conv2d the FE engine can run seeded (groups 1 or depthwise, zero padding, no dilation) is a
    ValueError naming it."""
    for index, path in enumerate(paths):
        conv = module.get_submodule(path) if path else None
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"'{path}' is not a Conv2d of the model ({type(conv).__name__})")
        pairs = [v if isinstance(v, tuple) else (v, v) for v in (conv.kernel_size, conv.stride, conv.padding,
                                                                  conv.dilation) if not isinstance(v, str)]
        if conv.padding_mode != "zeros" or len(pairs) != 4 or any(a != b for a, b in pairs) or pairs[3][0] != 1:
            raise ValueError(f"'{path}': a Conv2d with zero padding, no dilation and a square kernel can be seeded")
        (k, _), (s, _), (p, _), _ = pairs
        seeded = SeededConv2d(conv.in_channels, conv.out_channels, k, s, p, conv.groups, seed=seed, index=index,
                              kind=kind)
        if conv.bias is not None:
            with torch.no_grad():
                seeded.bias.copy_(conv.bias)
        parent, _, name = path.rpartition(".")
        setattr(module.get_submodule(parent) if parent else module, name, seeded)
    return list(paths)


def seedable_convs(network: Any) -> list[Any]:
    """The frozen convs of `network` that can be seeded: dense or depthwise (`SeededConv2d`'s groups)."""
    return [layer for layer in network.frozen_layers
            if layer.op == "conv2d" and (layer.groups == 1 or layer.depthwise)]


def seed_frozen_convs(module: nn.Module, network: Any, seed: int, kind: str = "sign",
                      names: list[str] | None = None) -> list[str]:
    """Seed the frozen convs of `module` (by default every dense or depthwise one; else the layers `names`,
    each such a frozen conv of `network`, the module's IR with its split) with `seed_convs`; returns the
    layer names seeded."""
    frozen = {layer.name: layer.module_path for layer in seedable_convs(network)}
    names = list(frozen) if names is None else names
    unknown = [name for name in names if name not in frozen]
    if unknown:
        raise ValueError(f"'{unknown[0]}' is not a frozen conv of {network.name} ({', '.join(frozen)})")
    seed_convs(module, [frozen[name] for name in names], seed, kind)
    return names


def seed_head(network: Any, w_fracs: dict[str, int], seed: int) -> Any:
    """A copy of `network` whose retrainable layers with weights start from values drawn from `seed`
    rather than their own: the i-th one's weights `isa_seeded.initial_weights` (layer number
    HEAD_LAYER + i, uniform within the power of two nearest He's bound for its fan-in) at `w_fracs[name]`
    fractional bits, its bias 0, recorded in `Layer.init_seed`. A host can draw them from the seed on the
    device, so sending the model costs the seed instead of the layers (`quant.metrics.transmitted_bytes`);
    training on the target starts from them. `w_fracs` are the weights' formats, from the trained layers' own
    quantisation (fixed by overrides, since random initial values would calibrate a narrower range)."""
    from dataclasses import replace

    from dtlgen.model.ir import Network

    isa_seeded.layer_key(seed, 0)  # refuses a seed outside 0 .. 2^32 - 1
    layers, index = [], 0
    for layer in network.layers:
        if not layer.frozen and layer.has_weights:
            if layer.name not in w_fracs:
                raise ValueError(f"no weight format for retrainable layer '{layer.name}'")
            fan_in = int(layer.weight.size // layer.weight.shape[0])
            spec = {"seed": int(seed), "index": isa_seeded.HEAD_LAYER + index,
                    "bound_log2": isa_seeded.he_bound_log2(fan_in), "frac": int(w_fracs[layer.name])}
            layer = replace(layer, weight=isa_seeded.initial_values(spec, layer.weight.shape),
                            bias=None if layer.bias is None else np.zeros_like(layer.bias), init_seed=spec)
            index += 1
        layers.append(layer)
    return Network(network.name, network.input_shape, layers)
