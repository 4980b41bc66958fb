"""torch.fx import: trace a `torch.nn.Module` and map it onto the Network IR.

What is mapped: conv2d (groups, stride, zero padding, bias), linear, relu/relu6 (fused into the
producing layer), max/avg pool, adaptive average pool (to an integer divisor of the input),
flatten, residual add, batchnorm (folded into the preceding conv or linear), dropout and identity
(dropped: the module is traced in eval mode). Anything else raises `UnsupportedLayerError` naming
the module path and the op; nothing is silently skipped.

Shapes come from running the traced graph once on a zero input (`ShapeProp`), so the IR never
re-derives torch's shape rules.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import GraphModule, Node, symbolic_trace
from torch.fx.passes.shape_prop import ShapeProp

from dtlgen.errors import ModelSpecError, UnsupportedLayerError
from dtlgen.model.ir import INPUT, Layer, Network

_ADD_FUNCS = (operator.add, operator.iadd, torch.add)
_RELU_FUNCS = {F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu6: "relu6"}
_RELU_METHODS = {"relu": "relu", "relu_": "relu"}
_DROP_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_SHAPE_METHODS = ("size", "dim")  # produce ints, not tensors: ignored


def import_module(module: nn.Module, input_shape: tuple[int, ...], name: str = "model") -> Network:
    """Trace `module` (put in eval mode) for a per-sample `input_shape` and return its IR."""
    module = module.eval()
    try:
        traced = symbolic_trace(module)
    except Exception as exc:  # torch raises many types for untraceable Python
        raise ModelSpecError(
            f"model '{name}': torch.fx cannot trace it ({type(exc).__name__}: {exc}); "
            "remove data-dependent control flow from forward()") from exc
    with torch.no_grad():
        ShapeProp(traced).propagate(torch.zeros((2, *input_shape)))
    return _Importer(traced, name, tuple(input_shape)).run()


def _shape(node: Node) -> tuple[int, ...]:
    """Per-sample shape (batch dropped) recorded by ShapeProp."""
    return tuple(int(d) for d in node.meta["tensor_meta"].shape[1:])


def _pair(value: Any, what: str, where: str) -> int:
    """A square kernel/stride/padding as one int; rectangular ones are not mapped."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise UnsupportedLayerError(f"{where}: non-square {what} {tuple(value)} is not supported; use a square {what}")
        value = value[0]
    if not isinstance(value, int):
        raise UnsupportedLayerError(f"{where}: {what}={value!r} is not supported; use an integer {what}")
    return value


class _Importer:
    """Walks the fx graph once, in order, building layers and an alias table for dropped nodes."""

    def __init__(self, traced: GraphModule, name: str, input_shape: tuple[int, ...]):
        self.traced = traced
        self.network = Network(name, input_shape)
        self.value_of: dict[str, str] = {}  # fx node name -> IR layer name (or INPUT)
        self.node_of: dict[str, Node] = {}  # IR layer name -> fx node that produced it

    def run(self) -> Network:
        placeholders = [n for n in self.traced.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise UnsupportedLayerError(
                f"model '{self.network.name}': forward() takes {len(placeholders)} tensors; exactly one input is supported")
        for node in self.traced.graph.nodes:
            self._visit(node)
        if not self.network.layers:
            raise UnsupportedLayerError(f"model '{self.network.name}': no layers found to map")
        return self.network

    # --- dispatch -------------------------------------------------------------------------
    def _visit(self, node: Node) -> None:
        if node.op == "placeholder":
            self.value_of[node.name] = INPUT
        elif node.op == "output":
            self._visit_output(node)
        elif node.op == "call_module":
            self._visit_module(node, self.traced.get_submodule(node.target))
        elif node.op == "call_function":
            self._visit_function(node)
        elif node.op == "call_method":
            self._visit_method(node)
        else:  # get_attr: parameters used outside a module
            raise UnsupportedLayerError(
                f"{node.target}: op '{node.op}' (a tensor used directly in forward) is not supported; wrap it in a module")

    def _visit_output(self, node: Node) -> None:
        result = node.args[0]
        if not isinstance(result, Node):
            raise UnsupportedLayerError(f"model '{self.network.name}': forward() must return one tensor")
        last = self.value_of[result.name]
        if last == INPUT or last != self.network.layers[-1].name:
            raise UnsupportedLayerError(
                f"model '{self.network.name}': the returned tensor is not produced by the last layer")

    def _visit_module(self, node: Node, mod: nn.Module) -> None:
        path = str(node.target)
        if isinstance(mod, nn.Conv2d):
            self._conv(node, mod, path)
        elif isinstance(mod, nn.Linear):
            self._linear(node, mod, path)
        elif isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            self._fold_batchnorm(node, mod, path)
        elif isinstance(mod, (nn.ReLU, nn.ReLU6)):
            self._fuse_activation(node, "relu6" if isinstance(mod, nn.ReLU6) else "relu", path)
        elif isinstance(mod, nn.MaxPool2d):
            self._check_pool_options(path, mod.dilation, mod.ceil_mode)
            self._pool(node, "maxpool", path, mod.kernel_size, mod.stride, mod.padding)
        elif isinstance(mod, nn.AvgPool2d):
            self._check_avgpool_options(path, mod.ceil_mode, mod.count_include_pad, mod.divisor_override, mod.padding)
            self._pool(node, "avgpool", path, mod.kernel_size, mod.stride, mod.padding)
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            self._adaptive_avgpool(node, path, mod.output_size)
        elif isinstance(mod, nn.Flatten):
            self._flatten(node, path, mod.start_dim, mod.end_dim)
        elif isinstance(mod, _DROP_MODULES):
            self._alias(node)
        else:
            raise UnsupportedLayerError(
                f"{path}: module {type(mod).__name__} is not supported; supported: Conv2d, Linear, BatchNorm, "
                "ReLU/ReLU6, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Dropout, Identity, residual +")

    def _visit_function(self, node: Node) -> None:
        fn, path = node.target, node.name
        if fn in _ADD_FUNCS:
            self._add(node)
        elif fn in _RELU_FUNCS:
            self._fuse_activation(node, _RELU_FUNCS[fn], path)
        elif fn is F.hardtanh and self._arg(node, 1, "min_val", -1.0) == 0.0 and self._arg(node, 2, "max_val", 1.0) == 6.0:
            self._fuse_activation(node, "relu6", path)
        elif fn is torch.flatten:
            self._flatten(node, path, self._arg(node, 1, "start_dim", 0), self._arg(node, 2, "end_dim", -1))
        elif fn is F.max_pool2d:
            self._check_pool_options(path, self._arg(node, 4, "dilation", 1), self._arg(node, 5, "ceil_mode", False))
            k = self._arg(node, 1, "kernel_size", None)
            self._pool(node, "maxpool", path, k, self._arg(node, 2, "stride", None) or k, self._arg(node, 3, "padding", 0))
        elif fn is F.avg_pool2d:
            k = self._arg(node, 1, "kernel_size", None)
            pad = self._arg(node, 3, "padding", 0)
            self._check_avgpool_options(path, self._arg(node, 4, "ceil_mode", False),
                                        self._arg(node, 5, "count_include_pad", True),
                                        self._arg(node, 6, "divisor_override", None), pad)
            self._pool(node, "avgpool", path, k, self._arg(node, 2, "stride", None) or k, pad)
        elif fn is F.adaptive_avg_pool2d:
            self._adaptive_avgpool(node, path, self._arg(node, 1, "output_size", None))
        elif fn in (F.dropout, F.dropout2d):
            self._alias(node)
        else:
            raise UnsupportedLayerError(f"{path}: function {getattr(fn, '__name__', fn)} is not supported")

    def _visit_method(self, node: Node) -> None:
        method, path = node.target, node.name
        if method in _SHAPE_METHODS:
            return
        if method in _RELU_METHODS:
            self._fuse_activation(node, _RELU_METHODS[method], path)
        elif method in ("add", "add_"):
            self._add(node)
        elif method == "flatten":
            self._flatten(node, path, self._arg(node, 1, "start_dim", 0), self._arg(node, 2, "end_dim", -1))
        elif method in ("view", "reshape") and len(_shape(node)) == 1:
            self._flatten(node, path, 1, -1)
        elif method in ("contiguous", "clone"):
            self._alias(node)
        else:
            raise UnsupportedLayerError(f"{path}: tensor method .{method}() is not supported")

    # --- layer builders ---------------------------------------------------------------------
    def _conv(self, node: Node, mod: nn.Conv2d, path: str) -> None:
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            raise UnsupportedLayerError(f"{path}: Conv2d padding={mod.padding!r} padding_mode={mod.padding_mode!r}; "
                                        "use integer zero padding")
        if _pair(mod.dilation, "dilation", path) != 1:
            raise UnsupportedLayerError(f"{path}: Conv2d dilation {mod.dilation} is not supported; use dilation 1")
        if mod.groups not in (1, mod.in_channels) or (mod.groups > 1 and mod.out_channels != mod.in_channels):
            raise UnsupportedLayerError(f"{path}: Conv2d groups={mod.groups} is not supported; "
                                        "use groups=1 or depthwise (groups = in = out channels)")
        weight = mod.weight.detach().double().numpy().copy()
        bias = (mod.bias.detach().double().numpy().copy() if mod.bias is not None
                else np.zeros(mod.out_channels))
        self._new_layer(node, Layer(
            name=path, op="conv2d", inputs=[self._input_of(node)], in_shape=self._in_shape(node),
            out_shape=_shape(node), kernel=_pair(mod.kernel_size, "kernel", path),
            stride=_pair(mod.stride, "stride", path), padding=_pair(mod.padding, "padding", path),
            groups=mod.groups, weight=weight, bias=bias, module_path=path))

    def _linear(self, node: Node, mod: nn.Linear, path: str) -> None:
        in_shape = self._in_shape(node)
        if len(in_shape) != 1:
            raise UnsupportedLayerError(f"{path}: Linear on a {len(in_shape) + 1}-D tensor; flatten its input first")
        bias = (mod.bias.detach().double().numpy().copy() if mod.bias is not None
                else np.zeros(mod.out_features))
        self._new_layer(node, Layer(
            name=path, op="linear", inputs=[self._input_of(node)], in_shape=in_shape, out_shape=_shape(node),
            weight=mod.weight.detach().double().numpy().copy(), bias=bias, module_path=path))

    def _fold_batchnorm(self, node: Node, bn: nn.BatchNorm2d | nn.BatchNorm1d, path: str) -> None:
        producer = self._sole_producer(node, path, "BatchNorm")
        if not producer.has_weights or producer.activation is not None or producer.groups != 1 and not producer.depthwise:
            raise UnsupportedLayerError(
                f"{path}: BatchNorm must directly follow a conv or linear layer (it follows '{producer.name}', "
                f"op {producer.op}); move it after a conv so that it can be folded")
        if bn.running_mean is None or bn.running_var is None:
            raise UnsupportedLayerError(f"{path}: BatchNorm without running statistics cannot be folded; "
                                        "use track_running_stats=True")
        var = bn.running_var.detach().double().numpy()
        mean = bn.running_mean.detach().double().numpy()
        gamma = bn.weight.detach().double().numpy() if bn.affine else np.ones_like(var)
        beta = bn.bias.detach().double().numpy() if bn.affine else np.zeros_like(var)
        scale = gamma / np.sqrt(var + bn.eps)
        producer.weight = producer.weight * scale.reshape((-1,) + (1,) * (producer.weight.ndim - 1))
        producer.bias = (producer.bias - mean) * scale + beta
        self._alias(node)

    def _fuse_activation(self, node: Node, activation: str, path: str) -> None:
        producer = self._sole_producer(node, path, activation)
        if producer.activation is not None:
            raise UnsupportedLayerError(f"{path}: {activation} after an activation of '{producer.name}' is not supported")
        if producer.op == "flatten":
            raise UnsupportedLayerError(f"{path}: {activation} after flatten is not supported; apply it before flatten")
        producer.activation = activation
        self._alias(node)

    def _pool(self, node: Node, op: str, path: str, kernel: Any, stride: Any, padding: Any) -> None:
        in_shape = self._in_shape(node)
        if len(in_shape) != 3:
            raise UnsupportedLayerError(f"{path}: {op} needs a C×H×W feature map, got shape {in_shape}")
        self._new_layer(node, Layer(
            name=path, op=op, inputs=[self._input_of(node)], in_shape=in_shape, out_shape=_shape(node),
            kernel=_pair(kernel, "kernel", path), stride=_pair(stride, "stride", path),
            padding=_pair(padding, "padding", path), module_path=path))

    def _adaptive_avgpool(self, node: Node, path: str, output_size: Any) -> None:
        in_shape = self._in_shape(node)
        out = _pair(output_size, "output_size", path)
        if len(in_shape) != 3 or in_shape[1] != in_shape[2] or in_shape[1] % out:
            raise UnsupportedLayerError(
                f"{path}: AdaptiveAvgPool2d({out}) on input {in_shape} is not an even pooling; "
                "use an output size that divides the square input")
        k = in_shape[1] // out
        self._pool(node, "avgpool", path, k, k, 0)

    def _flatten(self, node: Node, path: str, start_dim: int, end_dim: int) -> None:
        if start_dim != 1 or end_dim != -1:
            raise UnsupportedLayerError(f"{path}: flatten(start_dim={start_dim}, end_dim={end_dim}) is not supported; "
                                        "use flatten(x, 1)")
        self._new_layer(node, Layer(name=path, op="flatten", inputs=[self._input_of(node)],
                                    in_shape=self._in_shape(node), out_shape=_shape(node), module_path=path))

    def _add(self, node: Node) -> None:
        operands = [a for a in node.args[:2]]
        if len(operands) != 2 or not all(isinstance(a, Node) for a in operands) or node.kwargs.get("alpha", 1) != 1:
            raise UnsupportedLayerError(f"{node.name}: only the sum of two tensors is supported (residual add)")
        inputs = [self.value_of[a.name] for a in operands]
        if _shape(operands[0]) != _shape(operands[1]):
            raise UnsupportedLayerError(f"{node.name}: add of shapes {_shape(operands[0])} and {_shape(operands[1])}; "
                                        "broadcasting is not supported")
        owner = self.network.layer(inputs[0]).module_path if inputs[0] != INPUT else ""
        parent = owner.rsplit(".", 1)[0] if "." in owner else ""
        name = f"{parent}.add" if parent else node.name
        if any(layer.name == name for layer in self.network.layers):
            name = f"{parent}.{node.name}" if parent else node.name
        self._new_layer(node, Layer(name=name, op="add", inputs=inputs, in_shape=_shape(operands[0]),
                                    out_shape=_shape(node), module_path=name))

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _arg(node: Node, position: int, keyword: str, default: Any) -> Any:
        if len(node.args) > position:
            return node.args[position]
        return node.kwargs.get(keyword, default)

    @staticmethod
    def _check_pool_options(path: str, dilation: Any, ceil_mode: bool) -> None:
        if _pair(dilation, "dilation", path) != 1 or ceil_mode:
            raise UnsupportedLayerError(f"{path}: pooling with dilation or ceil_mode is not supported")

    @staticmethod
    def _check_avgpool_options(path: str, ceil_mode: bool, count_include_pad: bool, divisor: Any, padding: Any) -> None:
        if ceil_mode or divisor is not None or (not count_include_pad and _pair(padding, "padding", path) > 0):
            raise UnsupportedLayerError(f"{path}: AvgPool2d with ceil_mode, divisor_override or "
                                        "count_include_pad=False is not supported")

    def _input_node(self, node: Node) -> Node:
        source = node.args[0] if node.args else None
        if not isinstance(source, Node):
            raise UnsupportedLayerError(f"{node.name}: expected a tensor as first argument")
        return source

    def _input_of(self, node: Node) -> str:
        return self.value_of[self._input_node(node).name]

    def _in_shape(self, node: Node) -> tuple[int, ...]:
        return _shape(self._input_node(node))

    def _sole_producer(self, node: Node, path: str, what: str) -> Layer:
        """The layer feeding `node`, which must feed nothing else (or fusing would change the others)."""
        source = self._input_node(node)
        producer_name = self.value_of[source.name]
        if producer_name == INPUT:
            raise UnsupportedLayerError(f"{path}: {what} applied to the network input is not supported")
        producer_node = self.node_of[producer_name]
        if len(source.users) != 1 or len(producer_node.users) != 1:
            raise UnsupportedLayerError(
                f"{path}: {what} on '{producer_name}', whose output is also used elsewhere, cannot be fused")
        return self.network.layer(producer_name)

    def _new_layer(self, node: Node, layer: Layer) -> None:
        self.network.layers.append(layer)
        self.value_of[node.name] = layer.name
        self.node_of[layer.name] = node

    def _alias(self, node: Node) -> None:
        """A node that passes its input through (dropout, identity, a fused op)."""
        source = self._input_node(node)
        self.value_of[node.name] = self.value_of[source.name]
        if self.value_of[node.name] != INPUT:
            self.node_of[self.value_of[node.name]] = node
