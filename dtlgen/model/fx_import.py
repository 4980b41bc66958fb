"""torch.fx import: trace a `torch.nn.Module` and map it onto the Network IR.

What is mapped: conv2d (dense, depthwise or grouped; stride, zero padding, bias), linear, relu/relu6 (fused into the
producing layer), max/avg pool (a max pool's ceil_mode too), adaptive average pool (to an integer
divisor of the input), flatten, residual add, channel concatenation (`torch.cat` on dim 1 of feature
maps, each input a layer's output that feeds only the concatenation: the FE engine writes it into its
slice), channel shuffle (view to (B, g, C/g, H, W), transpose 1 and 2, view back: folded into the
output channels of the dense convolution that produces it, its only consumer), batchnorm (folded
into the preceding conv or linear), dropout and identity (dropped: the module is traced in eval mode). Anything else raises `UnsupportedLayerError` naming
the module path and the op, that the IR does not map it and what to do instead; nothing is
silently skipped.

Shapes come from running the traced graph once on a zero input (`ShapeProp`), so the IR never
re-derives torch's shape rules. A model that does not run on the given input shape, or whose
weights are not finite, is a `ModelSpecError` naming the model, the shape or layer, and the fix:
a user's model must never reach the user as a torch traceback.
"""

from __future__ import annotations

import contextlib
import io
import operator
import sys
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import GraphModule, Node, Tracer
from torch.fx.passes.shape_prop import ShapeProp

from dtlgen.errors import DtlgenError, ModelSpecError, UnsupportedLayerError
from dtlgen.model.ir import INPUT, Layer, Network, check_input_shape, joined_activation
from dtlgen.isa import seeded as isa_seeded
from dtlgen.model.seeded import SeededConv2d
from dtlgen.errors import brief, reason

_ADD_FUNCS = (operator.add, operator.iadd, torch.add)
_RELU_FUNCS = {F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu6: "relu6"}
_RELU_METHODS = {"relu": "relu", "relu_": "relu"}
_DROP_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_SHAPE_METHODS = ("size", "dim")  # produce ints, not tensors: ignored
_CONCAT_FUNCS = {torch.cat, torch.concat, torch.concatenate}
_STACK_FUNCS = {torch.stack, torch.hstack, torch.vstack}
_SUPPORTED_OPS = ("conv2d, linear, batchnorm, relu/relu6, max/avg pooling, flatten, residual add, channel concatenation, "
                  "channel shuffle")
MAX_CONCAT_INPUTS = 8
_SHUFFLE_FIX = ("dtlgen maps a channel shuffle written as x.view(B, g, C // g, H, W).transpose(1, 2).contiguous()"
                ".view(B, C, H, W)")


def import_module(module: nn.Module, input_shape: tuple[int, ...], name: str = "model",
                  origin: str | None = None) -> Network:
    """Trace `module` (put in eval mode) for a per-sample `input_shape` and return its IR.

    `origin` says where the model came from in error messages (e.g. "factory `f` in net.py").
    """
    origin = origin or f"model '{name}'"
    if not isinstance(module, nn.Module):
        raise ModelSpecError(f"{origin}: {brief(module)} is not a torch.nn.Module; give a module instance")
    input_shape = check_input_shape(input_shape, origin)
    module = module.eval()
    try:
        traced = GraphModule(module, _Tracer().trace(module))
    except Exception as exc:  # torch raises many types for untraceable Python
        raise ModelSpecError(
            f"{origin}: torch.fx cannot trace it ({reason(exc)}); "
            "remove data-dependent control flow from forward()") from exc
    placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedLayerError(
            f"{origin}: forward() takes {len(placeholders)} tensors; exactly one input is supported")
    _propagate_shapes(traced, input_shape, origin)
    return _Importer(traced, name, input_shape, origin).run()


class _Tracer(Tracer):
    """torch.fx's tracer, with dtlgen's own modules (a seeded conv) kept whole as torch's are."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, SeededConv2d) or super().is_leaf_module(m, module_qualified_name)


class _NodeTrackingShapeProp(ShapeProp):
    """ShapeProp that remembers the node it is running, so a failure can name the module."""

    node: Node | None = None

    def run_node(self, n: Node) -> Any:
        self.node = n
        return super().run_node(n)


def _propagate_shapes(traced: GraphModule, input_shape: tuple[int, ...], origin: str) -> None:
    """Run the graph once on zeros (a batch of 2) so every node records its shape; a model that does
    not run on `input_shape` is the user's to fix, so torch's reason becomes a ModelSpecError."""
    dtype = next((p.dtype for p in traced.parameters() if p.is_floating_point()), torch.float32)
    prop = _NodeTrackingShapeProp(traced)
    printed = io.StringIO()  # ShapeProp prints the traceback of a failing node itself; we report it in one line
    try:
        with torch.no_grad(), contextlib.redirect_stderr(printed):
            prop.propagate(torch.zeros((2, *input_shape), dtype=dtype))
        sys.stderr.write(printed.getvalue())  # the model's own warnings, if it ran
    except Exception as exc:  # whatever the model's own code raises on this input
        root = _root_cause(exc)
        where = f" at {_describe_node(traced, prop.node)}" if prop.node is not None else ""
        if isinstance(root, MemoryError) or "allocate" in str(root):
            fix = "the activations do not fit in memory; give a smaller input shape"
        else:
            fix = ("give the per-sample input shape the model expects (no batch dimension; the importer adds a "
                   "batch of 2), e.g. (C, H, W) with C the first conv's in_channels")
        raise ModelSpecError(f"{origin}: the model does not run on input_shape {input_shape}{where}: "
                             f"{reason(root)}; {fix}") from exc


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost explicit cause: ShapeProp wraps the model's own error in a long RuntimeError."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def _owner(node: Node) -> tuple[str, str] | None:
    """(module path, class name) of the module whose forward() holds `node`; None for the top level."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    key, value = list(stack.items())[-1]
    path, cls = value if isinstance(value, tuple) else (key, value)  # older torch: path -> class
    return str(path), getattr(cls, "__name__", str(cls))


def _describe_node(traced: GraphModule, node: Node) -> str:
    """Where a node is, for a message: its module path and class, or the op and the forward() it is in."""
    if node.op == "call_module":
        try:
            kind = type(traced.get_submodule(node.target)).__name__
        except AttributeError:
            kind = "module"
        return f"module '{node.target}' ({kind})"
    if node.op == "call_function":
        op = f"{getattr(node.target, '__name__', node.target)}()"
    elif node.op == "call_method":
        op = f".{node.target}()"
    else:
        op = f"{node.op} '{node.target}'"
    owner = _owner(node)
    inside = f"the forward() of '{owner[0]}' ({owner[1]})" if owner else "the top-level forward()"
    return f"{op} in {inside}"


def _shape(node: Node) -> tuple[int, ...]:
    """Per-sample shape (batch dropped) recorded by ShapeProp."""
    return tuple(int(d) for d in node.meta["tensor_meta"].shape[1:])


def _tensor_users(node: Node) -> int:
    """How many nodes use `node`'s tensor (x.size() and x.dim() read only its shape: not counted)."""
    return sum(1 for user in node.users if not (user.op == "call_method" and user.target in _SHAPE_METHODS))


def _finite_array(tensor: torch.Tensor, origin: str, path: str, kind: str, what: str) -> np.ndarray:
    """A parameter or buffer as float64 numpy; NaN/inf would poison calibration and every report after it."""
    array = tensor.detach().double().cpu().numpy().copy()
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ModelSpecError(
            f"{origin}: layer '{path}' ({kind}) {what} has {bad} NaN/inf value(s) of {array.size}; the weights are "
            "broken (a diverged training run or a bad checkpoint): load finite weights before importing (check "
            f"torch.isfinite(model.get_submodule('{path}').{what}).all())")
    return array


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

    def __init__(self, traced: GraphModule, name: str, input_shape: tuple[int, ...], origin: str):
        self.traced = traced
        self.origin = origin  # names the model in ModelSpecErrors (bad weights); layer errors name the module
        self.network = Network(name, input_shape)
        self.value_of: dict[str, str] = {}  # fx node name -> IR layer name (or INPUT)
        self.node_of: dict[str, Node] = {}  # IR layer name -> fx node that produced it
        self.shuffles: dict[Node, tuple[str, int, list[Node]]] = {}  # a channel shuffle's nodes so far (below)

    def run(self) -> Network:
        for node in self.traced.graph.nodes:
            try:
                self._visit(node)
            except DtlgenError:
                raise
            except Exception as exc:  # a graph shape the mapping rules did not foresee: name the node
                raise UnsupportedLayerError(
                    f"{_describe_node(self.traced, node)}: cannot be mapped onto the IR ({reason(exc)}); "
                    f"the IR supports {_SUPPORTED_OPS}") from exc
        if not self.network.layers:
            raise UnsupportedLayerError(f"{self.origin}: no layers found to map; the IR supports {_SUPPORTED_OPS}")
        return self.network

    # --- dispatch -------------------------------------------------------------------------
    def _visit(self, node: Node) -> None:
        if any(source in self.shuffles for source in node.all_input_nodes) and not self._shuffle_continues(node):
            # a shuffle's 5-D intermediate maps to its producer's unshuffled output: nothing else may read it
            raise UnsupportedLayerError(
                f"{_describe_node(self.traced, node)}: reads a channel shuffle's intermediate (5-D) tensor; "
                f"{_SHUFFLE_FIX}")
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
        elif isinstance(mod, SeededConv2d):
            self._seeded_conv(node, mod, path)
        elif isinstance(mod, nn.Linear):
            self._linear(node, mod, path)
        elif isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            self._fold_batchnorm(node, mod, path)
        elif isinstance(mod, (nn.ReLU, nn.ReLU6)):
            self._fuse_activation(node, "relu6" if isinstance(mod, nn.ReLU6) else "relu", path)
        elif isinstance(mod, nn.MaxPool2d):
            self._check_pool_options(node, path, "MaxPool2d", mod.dilation, mod.ceil_mode, mod.kernel_size,
                                     mod.stride, mod.padding)
            self._pool(node, "maxpool", path, mod.kernel_size, mod.stride, mod.padding)
        elif isinstance(mod, nn.AvgPool2d):
            self._check_pool_options(node, path, "AvgPool2d", 1, mod.ceil_mode, mod.kernel_size, mod.stride,
                                     mod.padding)
            self._check_avgpool_options(path, mod.count_include_pad, mod.divisor_override, mod.padding)
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
        elif fn is torch.flatten and node.args and node.args[0] in self.shuffles:
            self._shuffle_step(node, "view")
        elif fn is torch.flatten:
            self._flatten(node, path, self._arg(node, 1, "start_dim", 0), self._arg(node, 2, "end_dim", -1))
        elif fn is F.max_pool2d:
            k = self._arg(node, 1, "kernel_size", None)
            stride, pad = self._arg(node, 2, "stride", None) or k, self._arg(node, 3, "padding", 0)
            self._check_pool_options(node, path, "max_pool2d", self._arg(node, 4, "dilation", 1),
                                     self._arg(node, 5, "ceil_mode", False), k, stride, pad)
            self._pool(node, "maxpool", path, k, stride, pad)
        elif fn is F.avg_pool2d:
            k = self._arg(node, 1, "kernel_size", None)
            stride, pad = self._arg(node, 2, "stride", None) or k, self._arg(node, 3, "padding", 0)
            self._check_pool_options(node, path, "avg_pool2d", 1, self._arg(node, 4, "ceil_mode", False), k, stride,
                                     pad)
            self._check_avgpool_options(path, self._arg(node, 5, "count_include_pad", True),
                                        self._arg(node, 6, "divisor_override", None), pad)
            self._pool(node, "avgpool", path, k, stride, pad)
        elif fn is F.adaptive_avg_pool2d:
            self._adaptive_avgpool(node, path, self._arg(node, 1, "output_size", None))
        elif fn in (F.dropout, F.dropout2d):
            self._alias(node)
        elif fn in _CONCAT_FUNCS:
            self._concat(node)
        elif fn is torch.transpose and node.args and node.args[0] in self.shuffles:
            self._shuffle_step(node, "transpose", self._arg(node, 1, "dim0", None), self._arg(node, 2, "dim1", None))
        elif fn in _STACK_FUNCS:
            raise UnsupportedLayerError(
                f"{_describe_node(self.traced, node)}: {fn.__name__} is not supported by the IR; concatenate feature "
                "maps along the channels with torch.cat(tensors, dim=1), or cut the model before it")
        elif fn in (operator.getitem, operator.floordiv, operator.mul) and "tensor_meta" not in node.meta:
            return  # arithmetic on shapes (x.size() unpacked, channels // groups): no tensor
        else:
            raise UnsupportedLayerError(
                f"{_describe_node(self.traced, node)}: function {getattr(fn, '__name__', fn)} is not supported by "
                f"the IR yet; express it with {_SUPPORTED_OPS}, or cut the model before it")

    def _visit_method(self, node: Node) -> None:
        method, path = node.target, node.name
        if method in _SHAPE_METHODS:
            return
        if node.args and node.args[0] in self.shuffles or (
                method in ("view", "reshape") and len(_shape(node)) == 4 and len(self._in_shape(node)) == 3):
            return self._shuffle_step(node, "view" if method in ("view", "reshape", "flatten") else method,
                                      *node.args[1:])
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
            raise UnsupportedLayerError(
                f"{_describe_node(self.traced, node)}: tensor method .{method}() is not supported by the IR yet; "
                f"express it with {_SUPPORTED_OPS}, or cut the model before it")

    # --- layer builders ---------------------------------------------------------------------
    def _conv(self, node: Node, mod: nn.Conv2d, path: str) -> None:
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            raise UnsupportedLayerError(f"{path}: Conv2d padding={mod.padding!r} padding_mode={mod.padding_mode!r}; "
                                        "use integer zero padding")
        if _pair(mod.dilation, "dilation", path) != 1:
            raise UnsupportedLayerError(f"{path}: Conv2d dilation {mod.dilation} is not supported; use dilation 1")
        weight = _finite_array(mod.weight, self.origin, path, "Conv2d", "weight")
        bias = (_finite_array(mod.bias, self.origin, path, "Conv2d", "bias") if mod.bias is not None
                else np.zeros(mod.out_channels))
        self._new_layer(node, Layer(
            name=path, op="conv2d", inputs=[self._input_of(node)], in_shape=self._in_shape(node),
            out_shape=_shape(node), kernel=_pair(mod.kernel_size, "kernel", path),
            stride=_pair(mod.stride, "stride", path), padding=_pair(mod.padding, "padding", path),
            groups=mod.groups, weight=weight, bias=bias, module_path=path))

    def _seeded_conv(self, node: Node, mod: SeededConv2d, path: str) -> None:
        """A seeded conv: its weights the generator's integers (regenerated here from its seed, whatever
        its buffer holds), its scale and bias learnable."""
        shape = (mod.out_channels, mod.in_channels // mod.groups, mod.kernel_size, mod.kernel_size)
        try:
            weight = isa_seeded.conv_weights(mod.seed, mod.index, shape, mod.kind, mod.groups > 1).astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise UnsupportedLayerError(f"{path}: SeededConv2d: {exc}; build it with valid values") from None
        # what the module computes with must be what the engines regenerate
        buffer = getattr(mod, "weight", None)
        m = _shape(node)[0]
        if not isinstance(buffer, torch.Tensor) or tuple(buffer.shape) != shape or m != shape[0] \
                or not np.array_equal(buffer.detach().cpu().numpy(), weight) \
                or tuple(mod.scale.shape) != (m,) or tuple(mod.bias.shape) != (m,):
            raise UnsupportedLayerError(
                f"{path}: SeededConv2d's weight buffer, scale or bias do not match its seed {mod.seed}, index "
                f"{mod.index}, kind {mod.kind!r} and {m} output channels; build it anew instead of changing them")
        self._new_layer(node, Layer(
            name=path, op="conv2d", inputs=[self._input_of(node)], in_shape=self._in_shape(node),
            out_shape=_shape(node), kernel=mod.kernel_size, stride=mod.stride, padding=mod.padding, groups=mod.groups,
            weight=weight, bias=_finite_array(mod.bias, self.origin, path, "SeededConv2d", "bias"), module_path=path,
            seed=mod.seed_spec, scale=_finite_array(mod.scale, self.origin, path, "SeededConv2d", "scale")))

    def _linear(self, node: Node, mod: nn.Linear, path: str) -> None:
        in_shape = self._in_shape(node)
        if len(in_shape) != 1:
            raise UnsupportedLayerError(f"{path}: Linear on a {len(in_shape) + 1}-D tensor; flatten its input first")
        bias = (_finite_array(mod.bias, self.origin, path, "Linear", "bias") if mod.bias is not None
                else np.zeros(mod.out_features))
        self._new_layer(node, Layer(
            name=path, op="linear", inputs=[self._input_of(node)], in_shape=in_shape, out_shape=_shape(node),
            weight=_finite_array(mod.weight, self.origin, path, "Linear", "weight"), bias=bias, module_path=path))

    def _fold_batchnorm(self, node: Node, bn: nn.BatchNorm2d | nn.BatchNorm1d, path: str) -> None:
        producer = self._sole_producer(node, path, "BatchNorm")
        if not producer.has_weights or producer.activation is not None:
            raise UnsupportedLayerError(
                f"{path}: BatchNorm must directly follow a conv or linear layer (it follows '{producer.name}', "
                f"op {producer.op}); move it after a conv so that it can be folded")
        if bn.running_mean is None or bn.running_var is None:
            raise UnsupportedLayerError(f"{path}: BatchNorm without running statistics cannot be folded; "
                                        "use track_running_stats=True")
        kind = type(bn).__name__
        var = _finite_array(bn.running_var, self.origin, path, kind, "running_var")
        mean = _finite_array(bn.running_mean, self.origin, path, kind, "running_mean")
        gamma = _finite_array(bn.weight, self.origin, path, kind, "weight") if bn.affine else np.ones_like(var)
        beta = _finite_array(bn.bias, self.origin, path, kind, "bias") if bn.affine else np.zeros_like(var)
        if not np.all(var + bn.eps > 0):
            raise ModelSpecError(
                f"{self.origin}: layer '{path}' ({kind}) running_var + eps is not positive for "
                f"{int(np.sum(var + bn.eps <= 0))} of {var.size} channels, so it cannot be folded; re-estimate the "
                "running statistics on data (or call reset_running_stats()) and keep eps > 0")
        scale = gamma / np.sqrt(var + bn.eps)
        if producer.seed is not None:  # a seeded conv keeps the generator's weights: its channel scale takes it
            weight, producer.scale = producer.weight, producer.scale * scale
        else:
            weight = producer.weight * scale.reshape((-1,) + (1,) * (producer.weight.ndim - 1))
        bias = (producer.bias - mean) * scale + beta
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))
                and (producer.scale is None or np.all(np.isfinite(producer.scale)))):
            raise ModelSpecError(
                f"{self.origin}: layer '{path}' ({kind}): folding it into '{producer.name}' overflows "
                "(gamma / sqrt(running_var + eps) is too large); check this layer's running_var, weight and eps")
        producer.weight, producer.bias = weight, bias
        self._alias(node)

    def _fuse_activation(self, node: Node, activation: str, path: str) -> None:
        producer = self._sole_producer(node, path, activation)
        if producer.activation is not None:
            raise UnsupportedLayerError(f"{path}: {activation} after an activation of '{producer.name}' is not supported")
        if producer.op == "flatten":
            raise UnsupportedLayerError(f"{path}: {activation} after flatten is not supported; apply it before flatten")
        if producer.op == "concat":  # it acts channel by channel: each input's layer applies it
            for name in self._concat_sources(producer):
                source = self.network.layer(name)
                source.activation = joined_activation(source.activation, activation)
            self._alias(node)
            return
        producer.activation = activation
        self._alias(node)

    def _concat_sources(self, concat: Layer) -> list[str]:
        """The layers that store a concatenation's slices (an inner concatenation's, in turn)."""
        names = []
        for name in concat.inputs:
            layer = self.network.layer(name)
            names += self._concat_sources(layer) if layer.op == "concat" else [name]
        return names

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
        name = self._function_layer_name(node, inputs[0], "add")
        self._new_layer(node, Layer(name=name, op="add", inputs=inputs, in_shape=_shape(operands[0]),
                                    out_shape=_shape(node), module_path=name))

    def _concat(self, node: Node) -> None:
        where = _describe_node(self.traced, node)
        # torch takes numpy's spelling too: torch.cat(tensors, axis=1)
        tensors, dim = self._arg(node, 0, "tensors", None), self._arg(node, 1, "dim", node.kwargs.get("axis", 0))
        if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, Node) for t in tensors) or not tensors:
            raise UnsupportedLayerError(f"{where}: expected a list of tensors to concatenate")
        shapes = [_shape(t) for t in tensors]
        if any(len(shape) != 3 for shape in shapes) or dim not in (1, -3):
            raise UnsupportedLayerError(
                f"{where}: concatenation along dim {dim} of per-sample shapes {shapes}; the IR concatenates feature "
                "maps (C, H, W) along the channels only: torch.cat(tensors, dim=1)")
        if not 2 <= len(tensors) <= MAX_CONCAT_INPUTS:
            raise UnsupportedLayerError(f"{where}: a concatenation of {len(tensors)} tensors; the IR takes 2 to "
                                        f"{MAX_CONCAT_INPUTS}")
        inputs = [self.value_of[t.name] for t in tensors]
        for tensor, name in zip(tensors, inputs):
            if name == INPUT:
                raise UnsupportedLayerError(
                    f"{where}: concatenates the network input; the FE engine writes each input of a concatenation "
                    "into its slice of the result as the layer that computes it stores it, and the input is stored "
                    "by the host: put a layer (e.g. a conv) on that branch, or concatenate after the first layer")
            producer = self.node_of[name]
            if _tensor_users(tensor) != 1 or _tensor_users(producer) != 1 or inputs.count(name) > 1:
                raise UnsupportedLayerError(
                    f"{where}: the output of '{name}' is also used elsewhere; the FE engine writes each input of a "
                    "concatenation into its slice of the result, so each must be a layer's output that feeds only "
                    "the concatenation (DenseNet-style reuse of a concatenated input is not supported)")
        name = self._function_layer_name(node, inputs[0], "cat")
        out = _shape(node)
        self._new_layer(node, Layer(name=name, op="concat", inputs=inputs, in_shape=out, out_shape=out,
                                    module_path=name))

    def _shuffle_step(self, node: Node, method: str, *args: Any) -> None:
        """One node of a channel shuffle: x.view(B, g, C/g, H, W) → .transpose(1, 2) (or .permute(0, 2, 1,
        3, 4)) → .contiguous() → .view(B, C, H, W) (or .reshape, .flatten(1, 2)). The last step folds it
        into the producing convolution (`_fold_shuffle`); anything else on the way is refused."""
        where, fix = _describe_node(self.traced, node), _SHUFFLE_FIX
        if node.args and node.args[0] in self.shuffles:
            stage, groups, chain = self.shuffles[node.args[0]]
        else:
            stage, groups, chain = "", 0, []
        if len(args) == 1 and isinstance(args[0], (tuple, list)):  # .permute((0, 2, 1, 3, 4))
            args = tuple(args[0])
        shape = _shape(node)
        if not stage:  # the first view: (g, C/g, H, W) per sample
            self._sole_producer(node, where, "a channel shuffle")
            in_shape = self._in_shape(node)
            if shape[0] * shape[1] != in_shape[0] or shape[2:] != in_shape[1:]:
                raise UnsupportedLayerError(f"{where}: .{method}() of a {in_shape} feature map to {shape} is not "
                                            f"supported; {fix}")
            self.shuffles[node] = ("split", shape[0], [node])
            self.value_of[node.name] = self._input_of(node)
            return
        if method == "contiguous":
            self.shuffles[node] = (stage, groups, chain + [node])
        elif stage == "split" and method in ("transpose", "permute") and (
                sorted(int(a) % 5 for a in args if isinstance(a, int)) == [1, 2] and len(args) == 2
                or [int(a) % 5 for a in args] == [0, 2, 1, 3, 4]):
            self.shuffles[node] = ("swapped", groups, chain + [node])
        elif stage == "swapped" and method == "view" and shape == self._in_shape(chain[0]):  # back to (C, H, W)
            self._fold_shuffle(node, groups, chain + [node])
            return
        else:
            raise UnsupportedLayerError(f"{where}: .{method}() inside a channel shuffle is not supported; {fix}")
        if _tensor_users(chain[-1]) != 1:
            raise UnsupportedLayerError(f"{where}: a channel shuffle's intermediate tensor is used elsewhere; {fix}")
        self.value_of[node.name] = self.value_of[chain[0].name]

    def _shuffle_continues(self, node: Node) -> bool:
        """Whether `node` is a step of the channel shuffle its first argument is in (`_shuffle_step` judges
        the step) or reads only its shape."""
        if not node.args or node.args[0] not in self.shuffles:
            return False
        return node.op == "call_method" or (node.op == "call_function" and node.target in (torch.transpose,
                                                                                              torch.flatten))

    def _fold_shuffle(self, node: Node, groups: int, chain: list[Node]) -> None:
        """Channel j of the shuffled map is channel (j % g)·(C/g) + j // g of its input: the producing
        dense convolution computes its output channels in that order (weights' and biases' rows permuted)."""
        name = self.value_of[chain[0].name]
        producer = self.network.layer(name)
        if any(_tensor_users(n) != 1 for n in chain[:-1]) or producer.op != "conv2d" or producer.groups != 1 \
                or producer.seed is not None:
            raise UnsupportedLayerError(
                f"{_describe_node(self.traced, node)}: a channel shuffle of '{name}' ({producer.op}, groups "
                f"{producer.groups}{', seeded' if producer.seed is not None else ''}); dtlgen folds a shuffle into the "
                "output channels of the dense, stored (not seeded) convolution that produces it (its BatchNorm and "
                "ReLU may come between) and that feeds only the shuffle")
        channels = producer.m
        order = np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)
        producer.weight, producer.bias = producer.weight[order], producer.bias[order]
        self.value_of[node.name] = name
        self.node_of[name] = node

    def _function_layer_name(self, node: Node, first_input: str, suffix: str) -> str:
        """A layer name for a function node (add, cat): `<module>.<suffix>` of the module whose forward()
        holds it (else of its first input's parent module), unique; the fx node's name at the top level."""
        owner = _owner(node)
        if owner is not None:
            parent = owner[0]
        else:
            path = self.network.layer(first_input).module_path if first_input != INPUT else ""
            parent = path.rsplit(".", 1)[0] if "." in path else ""
        name = f"{parent}.{suffix}" if parent else node.name
        if any(layer.name == name for layer in self.network.layers):
            name = f"{parent}.{node.name}" if parent else node.name
        return name

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _arg(node: Node, position: int, keyword: str, default: Any) -> Any:
        if len(node.args) > position:
            return node.args[position]
        return node.kwargs.get(keyword, default)

    def _check_pool_options(self, node: Node, path: str, kind: str, dilation: Any, ceil_mode: Any,
                            kernel: Any, stride: Any, padding: Any) -> None:
        if node.op != "call_module":
            path = _describe_node(self.traced, node)
        if _pair(dilation, "dilation", path) != 1:
            raise UnsupportedLayerError(f"{path}: {kind} with dilation {dilation} is not supported by the IR yet; "
                                        "use dilation 1")
        if not ceil_mode:
            return
        k, s, p = (_pair(kernel, "kernel", path), _pair(stride, "stride", path), _pair(padding, "padding", path))
        in_shape, out_shape = self._in_shape(node), _shape(node)
        floor = tuple((size + 2 * p - k) // s + 1 for size in in_shape[1:]) if len(in_shape) == 3 else None
        if kind.lower().startswith("max") or floor == tuple(out_shape[1:]):
            return  # a max pool's windows past the edge see only the input (torch pads them with -inf)
        raise UnsupportedLayerError(
            f"{path}: {kind}(ceil_mode=True) on a {in_shape[1]}x{in_shape[2]} input gives {out_shape[1]}x"
            f"{out_shape[2]} outputs whose last windows run past the padded input, where torch divides by fewer "
            "values; the FE engine's average divides every window by K*K. Use ceil_mode=False, or pad the input so "
            f"that input + 2*padding - kernel is a multiple of the stride ({s})")

    @staticmethod
    def _check_avgpool_options(path: str, count_include_pad: bool, divisor: Any, padding: Any) -> None:
        if divisor is not None or (not count_include_pad and _pair(padding, "padding", path) > 0):
            raise UnsupportedLayerError(f"{path}: AvgPool2d with divisor_override or count_include_pad=False is "
                                        "not supported by the IR yet; use the defaults (divisor_override=None, "
                                        "count_include_pad=True) or padding=0")

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
        if _tensor_users(source) != 1 or _tensor_users(producer_node) != 1:
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
