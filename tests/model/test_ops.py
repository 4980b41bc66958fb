"""The op registry (dtlgen.model.ops): every op the importer produces has a class, an unknown op is one
clear error, and each class's FE quantisation rule, golden step, float step and FE descriptor geometry
are the ones the modules computed before the classes gathered them (the `_before_*` functions below are
those if-chains, copied from 771f054), on random layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtlgen.errors import UnsupportedLayerError
from dtlgen.model import import_module
from dtlgen.model import ir
from dtlgen.model.ir import Layer, conv_out_size
from dtlgen.model.ops import OP_CLASSES, op_of
from dtlgen.perf.fe import FEOp, _candidate_ops
from dtlgen.quant import fixed, golden, ops, reference
from dtlgen.quant.fixed import QFormat
from dtlgen.quant.quantize import LayerQuant, PrecisionConfig, _quantize_fe_layer


class _EveryOp(nn.Module):
    """conv (dense, depthwise, 1×1), max pool, avg pool, adaptive avg pool, residual add, concat, flatten,
    linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.pw = nn.Conv2d(4, 4, 1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.left, self.right = nn.Conv2d(4, 2, 1), nn.Conv2d(4, 3, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        y = F.relu(self.conv(x))
        y = self.pw(self.dw(y)) + y
        y = self.avg(self.pool(y))
        y = torch.cat([self.left(y), self.right(y)], 1)
        return self.fc(torch.flatten(self.gap(y), 1))


def test_every_op_the_importer_produces_has_a_class_and_every_class_is_produced():
    network = import_module(_EveryOp().eval(), (3, 8, 8), "every_op", "test")
    produced = {layer.op for layer in network.layers}
    assert produced == set(OP_CLASSES) == set(ir.OPS)
    for layer in network.layers:
        assert op_of(layer).name == layer.op
    assert [layer.depthwise for layer in network.layers if layer.op == "conv2d"] == [False, True, False, False, False]


def test_an_unknown_op_is_one_clear_error():
    with pytest.raises(UnsupportedLayerError, match=r"op 'gather' is not an IR op .*conv2d.*dtlgen/model/ops\.py"):
        op_of("gather")
    layer = Layer("g1", "gather", ["input"], (4, 8, 8), (8, 8, 8))
    with pytest.raises(UnsupportedLayerError, match=r"layer 'g1': op 'gather' is not an IR op"):
        layer.macs


# --- the pre-refactor if-chains (771f054), the oracle of the classes ------------------------------
_BEFORE_OPS = ("conv2d", "linear", "maxpool", "avgpool", "add", "flatten")  # (concat came after: its own tests)

def _before_quant(layer, in_fracs, y_max, p):
    out_frac = fixed.frac_for_range(y_max, p.a_bits)
    if layer.op in ("maxpool", "avgpool", "flatten"):
        acc_bits = p.a_bits
        if layer.op == "avgpool":
            mult, _ = fixed.avg_pool_scale(layer.kernel * layer.kernel)
            acc_bits += (layer.kernel * layer.kernel - 1).bit_length() + mult.bit_length()
        return LayerQuant(layer.name, "fe", in_fracs, QFormat(p.a_bits, in_fracs[0]), acc_bits=acc_bits)
    if layer.op == "add":
        span = max(in_fracs) - min(in_fracs)
        return LayerQuant(layer.name, "fe", in_fracs, QFormat(p.a_bits, out_frac), acc_bits=p.a_bits + span + 1)
    w_max = float(np.max(np.abs(layer.weight))) if layer.weight.size else 0.0
    w_fmt = QFormat(p.w_bits, fixed.frac_for_range(w_max, p.w_bits))
    terms = layer.kernel * layer.kernel * (layer.n // layer.groups)
    psum_bits = fixed.product_sum_bits(terms, p.w_bits, p.a_bits)
    b_fmt = QFormat(psum_bits, w_fmt.frac + in_fracs[0])
    return LayerQuant(layer.name, "fe", in_fracs, QFormat(p.a_bits, out_frac),
                      acc_bits=fixed.accumulator_bits(terms, p.w_bits, p.a_bits), w_fmt=w_fmt, b_fmt=b_fmt,
                      weight=fixed.to_fixed(layer.weight, w_fmt), bias=fixed.to_fixed(layer.bias, b_fmt))


def _before_golden(layer, lq, inputs):
    bits = lq.out_fmt.bits
    x = inputs[0]

    def matmul(a, b):
        return fixed.exact_matmul(a, b, lq.acc_bits)

    if layer.op == "conv2d":
        acc = ops.conv2d(x, lq.weight, layer.stride, layer.padding, layer.groups, matmul) + lq.bias.reshape(1, -1, 1, 1)
        y = fixed.requantise(acc, lq.out_shift, bits)
    elif layer.op == "linear":
        y = fixed.requantise(ops.linear(x, lq.weight, matmul) + lq.bias, lq.out_shift, bits)
    elif layer.op == "maxpool":
        y = ops.max_pool(x, layer.kernel, layer.stride, layer.padding, lq.out_fmt.min_int)
    elif layer.op == "avgpool":
        mult, shift = fixed.avg_pool_scale(layer.kernel * layer.kernel)
        y = fixed.requantise(ops.sum_pool(x, layer.kernel, layer.stride, layer.padding) * mult, shift, bits)
    elif layer.op == "add":
        acc = sum(np.asarray(v, dtype=np.int64) << shift for v, shift in zip(inputs, lq.align_shifts))
        y = fixed.requantise(acc, lq.out_shift, bits)
    else:
        y = x.reshape(len(x), -1)
    if layer.activation == "relu":
        return np.maximum(y, 0)
    if layer.activation == "relu6":
        return np.clip(y, 0, int(fixed.to_fixed(6.0, lq.out_fmt)))
    return y


def _before_float(layer, inputs, weight, bias):
    x = inputs[0]
    if layer.op == "conv2d":
        y = ops.conv2d(x, weight, layer.stride, layer.padding, layer.groups, ops.float_matmul) + bias.reshape(1, -1, 1, 1)
    elif layer.op == "linear":
        y = ops.linear(x, weight, ops.float_matmul) + bias
    elif layer.op == "maxpool":
        y = ops.max_pool(x, layer.kernel, layer.stride, layer.padding, -np.inf)
    elif layer.op == "avgpool":
        y = ops.sum_pool(x, layer.kernel, layer.stride, layer.padding) / (layer.kernel * layer.kernel)
    elif layer.op == "add":
        y = inputs[0] + inputs[1]
    else:
        y = x.reshape(len(x), -1)
    if layer.activation == "relu":
        y = np.maximum(y, 0.0)
    elif layer.activation == "relu6":
        y = np.clip(y, 0.0, 6.0)
    return y


def _before_fe_op(layer):
    n, h, w = layer.in_shape if len(layer.in_shape) == 3 else (layer.n, 1, 1)
    if layer.op == "linear":
        return FEOp(layer.name, "conv", layer.n, 1, 1, layer.m, 1, 1, macs=layer.m * layer.n)
    if layer.op == "conv2d":
        macs = layer.m * layer.r * layer.c * (layer.n // layer.groups) * layer.kernel * layer.kernel
        return FEOp(layer.name, "conv", n, h, w, layer.m, layer.r, layer.c, layer.kernel, layer.stride, layer.padding,
                    layer.groups > 1 and layer.groups == layer.n == layer.m, macs=macs)
    if layer.op in ("maxpool", "avgpool"):
        return FEOp(layer.name, "pool", n, h, w, layer.m, layer.r, layer.c, layer.kernel, layer.stride, layer.padding)
    return FEOp(layer.name, "add", n, h, w, n, h, w)


# --- random layers -------------------------------------------------------------------------------
@st.composite
def _cases(draw):
    """A random layer of any IR op, its integer and float inputs, precision and calibrated ranges."""
    op = draw(st.sampled_from(sorted(_BEFORE_OPS)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, size = draw(st.integers(1, 6)), draw(st.integers(1, 9))
    k = draw(st.sampled_from([1, 2, 3, 5, 7]))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    if op in ("conv2d", "maxpool", "avgpool"):
        k = min(k, size + 2 * padding)
        padding = min(padding, (k - 1) // 2 if op == "conv2d" else k // 2)
        k = min(k, size + 2 * padding)
    groups, m = 1, draw(st.integers(1, 6))
    if op == "conv2d" and draw(st.booleans()):
        groups = m = n  # depthwise
        if n == 1:
            groups = 1
    activation = draw(st.sampled_from(ir.ACTIVATIONS)) if op != "flatten" else None
    p = PrecisionConfig(w_bits=draw(st.integers(2, 8)), a_bits=draw(st.integers(2, 8)))
    in_shape = (n,) if op == "linear" else (n, size, size)
    if op == "linear":
        out_shape = (m,)
    elif op == "conv2d":
        r = conv_out_size(size, k, stride, padding)
        out_shape = (m, r, r)
    elif op in ("maxpool", "avgpool"):
        r = conv_out_size(size, k, stride, padding)
        out_shape = (n, r, r)
    elif op == "add":
        out_shape = in_shape
    else:
        out_shape = (n * size * size,)
    weight = bias = None
    if op == "conv2d":
        weight, bias = rng.normal(0, 0.5, (m, n // groups, k, k)), rng.normal(0, 0.5, m)
    elif op == "linear":
        weight, bias = rng.normal(0, 0.5, (m, n)), rng.normal(0, 0.5, m)
    arity = 2 if op == "add" else 1
    layer = Layer("l", op, ["a", "b"][:arity], in_shape, out_shape,
                  kernel=k if op in ("conv2d", "maxpool", "avgpool") else 1,
                  stride=stride if op in ("conv2d", "maxpool", "avgpool") else 1,
                  padding=padding if op in ("conv2d", "maxpool", "avgpool") else 0, groups=groups,
                  activation=activation, weight=weight, bias=bias)
    batch = draw(st.integers(1, 3))
    in_fracs = tuple(draw(st.integers(0, p.a_bits)) for _ in range(arity))
    lo, hi = -(1 << (p.a_bits - 1)), (1 << (p.a_bits - 1)) - 1
    x_int = [rng.integers(lo, hi + 1, size=(batch, *in_shape)) for _ in range(arity)]
    x_float = [rng.normal(0, 2, size=(batch, *in_shape)) for _ in range(arity)]
    # (vanishing ranges: tests/quant/test_fixed.py, frac_for_range stops at MAX_FRAC)
    y_max = draw(st.one_of(st.just(0.0), st.floats(1e-6, 100)))
    return layer, p, in_fracs, y_max, x_int, x_float


def _same_quant(a: LayerQuant, b: LayerQuant) -> None:
    for key in ("name", "engine", "in_fracs", "out_fmt", "acc_bits", "w_fmt", "b_fmt"):
        assert getattr(a, key) == getattr(b, key), key
    for key in ("weight", "bias"):
        if getattr(b, key) is None:
            assert getattr(a, key) is None
        else:
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
            assert getattr(a, key).dtype == getattr(b, key).dtype


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_each_class_quantises_and_steps_as_the_modules_did_before(case):
    layer, p, in_fracs, y_max, x_int, x_float = case
    lq = _quantize_fe_layer(layer, in_fracs, y_max, p)
    _same_quant(lq, _before_quant(layer, in_fracs, y_max, p))
    new, old = golden._fe_layer(layer, lq, x_int, None), _before_golden(layer, lq, x_int)
    assert new.dtype == old.dtype and new.shape == old.shape
    np.testing.assert_array_equal(new, old)
    weight, bias = layer.weight, layer.bias
    new_f, old_f = reference._float_layer(layer, x_float, weight, bias), _before_float(layer, x_float, weight, bias)
    assert new_f.dtype == old_f.dtype
    np.testing.assert_array_equal(new_f, old_f)
    if layer.op != "flatten":
        assert FEOp(layer.name, **op_of(layer).fe_geometry(layer)) == _before_fe_op(layer)


def test_the_fe_descriptors_of_a_network_follow_the_classes():
    network = import_module(_EveryOp().eval(), (3, 8, 8), "every_op", "test")
    candidates = _candidate_ops(network)
    assert [(op.name, op.kind) for op, _ in candidates] == [
        ("conv", "conv"), ("dw", "conv"), ("pw", "conv"), ("add", "add"), ("pool", "pool"), ("avg", "pool"),
        ("left", "conv"), ("right", "conv"), ("gap", "pool"), ("fc", "conv")]
    assert all(op == _before_fe_op(network.layer(op.name)) for op, _ in candidates)
