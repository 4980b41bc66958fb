"""One class per IR op: everything that differs from one op kind to the next, in one place.

The pattern of FINN's CustomOp: a reader finds an op's MAC count, whether it has weights, how the FE
quantises it, its bit-true golden step and its float reference step, how it maps to an FE descriptor
(the kind `perf.fe` schedules and the kind code `generator.fe_program` encodes) in its class. The
other modules ask the registry (`op_of(layer)`) instead of branching on op strings; a new op is one
subclass here plus its engine support (hw_templates, `dtlgen.isa.fe`'s kind code).

`dtlgen.model` sits upstream of `dtlgen.quant` (DESIGN §1; tests/test_layering.py refuses a cycle), so
the steps that need the numerics take them as arguments: `fx` is `dtlgen.quant.fixed` (every rounding
and saturation rule) and `kernels` is `dtlgen.quant.ops` (the tensor kernels); `quant` passes them in.
Nothing here rounds by itself, and this module must not import from `dtlgen.quant` or further down.

Activations (relu/relu6) are a flag on every layer, applied by the callers after the op's step.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from dtlgen.errors import DesignError, UnsupportedLayerError
from dtlgen.isa import fe as isa_fe
from dtlgen.isa import seeded as isa_seeded

SUPPORTED_KERNELS = (1, 3, 5, 7)  # the FE engine's convolution kernels and strides
SUPPORTED_STRIDES = (1, 2)

class LayerOp:
    """What an IR op is, per op kind. Stateless: one instance per kind serves every layer of it."""

    name: ClassVar[str]
    has_weights: ClassVar[bool] = False
    windowed: ClassVar[bool] = False  # kernel/stride/padding describe the op (conv2d and the pools)
    fe_kind: ClassVar[str | None] = None  # the FE descriptor kind (perf.fe.FEOp.kind); None: costs nothing
    descriptor_kind: ClassVar[int | None] = None  # its code in the FE descriptor (dtlgen.isa.fe KIND_*)
    keeps_format: ClassVar[bool] = False  # its output keeps its input's format (no a_frac of its own)

    # --- IR ----------------------------------------------------------------------------------
    def macs(self, layer) -> int:
        """Useful multiply-accumulates per sample (padding taps included, as in the usual count)."""
        return 0

    def depthwise(self, layer) -> bool:
        return False

    def gemm_shape(self, layer) -> tuple[int, int, int] | None:
        """(M, N, positions) when the layer is a GEMM per sample (what the RL engine trains), else None."""
        return None

    def weight_shape(self, layer) -> tuple[int, ...] | None:
        return None

    # --- quantisation (FE) -------------------------------------------------------------------
    def fe_quant(self, layer, in_fracs: tuple[int, ...], y_max: float, p, fx: ModuleType) -> dict[str, Any]:
        """The FE layer's formats as `LayerQuant` keyword arguments (besides name, engine, in_fracs),
        for calibrated output range `y_max` and precision `p` (a `PrecisionConfig`)."""
        raise NotImplementedError

    # --- golden model and float reference ----------------------------------------------------
    def golden(self, layer, lq, inputs: list[np.ndarray], fx: ModuleType, kernels: ModuleType) -> np.ndarray:
        """Bit-true integer output of the FE (before the activation) from integer `inputs`."""
        raise NotImplementedError

    def reference(self, layer, inputs: list[np.ndarray], weight, bias, kernels: ModuleType) -> np.ndarray:
        """float64 output (before the activation)."""
        raise NotImplementedError

    # --- FE descriptor -----------------------------------------------------------------------
    def fe_geometry(self, layer) -> dict[str, Any]:
        """The `perf.fe.FEOp` fields (besides name) of the descriptor that computes this layer."""
        n, h, w = layer.in_shape
        return dict(kind=self.fe_kind, n=n, h=h, w=w, m=layer.m, r=layer.r, c=layer.c, k=layer.kernel,
                    s=layer.stride, p=layer.padding)

    def descriptor_scale(self, layer, lq, fx: ModuleType) -> tuple[int, int]:
        """(multiplier, shift) the descriptor's output stage applies."""
        return 1, lq.out_shift

    def fe_problem(self, layer) -> str | None:
        """Why the FE engine cannot run this layer (the op's own limits), or None."""
        return None

    def output_copy_geometry(self, layer) -> dict[str, Any] | None:
        """The descriptor that copies this layer's output to a buffer of its own when it is the FE's last
        tensor (an op without a descriptor whose output is not one op's store), else None."""
        return None


class Conv2d(LayerOp):
    """Dense, depthwise (groups = N = M) or grouped convolution with bias; BatchNorm folded in at import.
    The FE engine runs a grouped conv (g groups, 1 < g, not depthwise) as a dense one whose weights are
    zero outside the diagonal blocks (`engine_weights`): exact, at g times the useful MACs' cycles, which
    the cycle model counts (its geometry is the dense conv's) while `macs` stays the useful count."""

    name = "conv2d"
    has_weights = True
    windowed = True
    fe_kind = "conv"
    descriptor_kind = isa_fe.KIND_CONV

    def macs(self, layer) -> int:
        return layer.m * layer.r * layer.c * (layer.n // layer.groups) * layer.kernel * layer.kernel

    def depthwise(self, layer) -> bool:
        return layer.groups > 1 and layer.groups == layer.n == layer.m

    def gemm_shape(self, layer) -> tuple[int, int, int] | None:
        # a 1×1 stride-1 unpadded dense conv is a GEMM over its R·C positions
        if layer.kernel == 1 and layer.stride == 1 and layer.padding == 0 and layer.groups == 1:
            return layer.m, layer.n, layer.r * layer.c
        return None

    def weight_shape(self, layer) -> tuple[int, ...]:
        return layer.m, layer.n // layer.groups, layer.kernel, layer.kernel

    def engine_weights(self, layer, weight: np.ndarray) -> np.ndarray:
        """The weights the FE engine holds: a grouped conv's (M, N/g, K, K) as a dense (M, N, K, K) of
        diagonal blocks (zero elsewhere); a dense or depthwise conv's as they are."""
        g = layer.groups
        if g == 1 or self.depthwise(layer):
            return weight
        m, ng = weight.shape[:2]
        dense = np.zeros((m, ng * g, *weight.shape[2:]), dtype=weight.dtype)
        for group in range(g):
            rows = slice(group * (m // g), (group + 1) * (m // g))
            dense[rows, group * ng:(group + 1) * ng] = weight[rows]
        return dense

    def fe_quant(self, layer, in_fracs, y_max, p, fx) -> dict[str, Any]:
        if layer.seed is not None:
            return self._seeded_fe_quant(layer, in_fracs, y_max, p, fx)
        out_frac = fx.frac_for_range(y_max, p.a_bits)
        w_fmt = fx.QFormat(p.w_bits, fx.frac_for_range(_max_abs(layer.weight), p.w_bits))
        terms = layer.kernel * layer.kernel * (layer.n // layer.groups)
        psum_bits = fx.product_sum_bits(terms, p.w_bits, p.a_bits)
        b_fmt = fx.QFormat(psum_bits, w_fmt.frac + in_fracs[0])
        return dict(out_fmt=fx.QFormat(p.a_bits, out_frac), acc_bits=fx.accumulator_bits(terms, p.w_bits, p.a_bits),
                    w_fmt=w_fmt, b_fmt=b_fmt, weight=fx.to_fixed(layer.weight, w_fmt),
                    bias=fx.to_fixed(layer.bias, b_fmt))

    def _seeded_fe_quant(self, layer, in_fracs, y_max, p, fx) -> dict[str, Any]:
        """A seeded conv: the generator's integer weights (frac 0) as they are, a signed 16-bit scale per
        output channel, the bias in the scaled accumulator's frac, in a 32-bit word (the FE engines' output
        stage computes acc · scale[m] + bias[m] in 48 bits: `dtlgen.isa.fe`, Per-channel scale)."""
        bits = isa_seeded.weight_bits(layer.seed["kind"])
        if bits > p.w_bits:
            raise DesignError(f"layer '{layer.name}': its seeded {layer.seed['kind']} weights need {bits} bits; the "
                              f"design's FE weights have {p.w_bits} (fe.w_bits): choose fe.w_bits >= {bits}")
        w_fmt = fx.QFormat(bits, 0)
        s_fmt = fx.QFormat(isa_fe.SCALE_BITS, fx.frac_for_range(_max_abs(layer.scale), isa_fe.SCALE_BITS))
        terms = layer.kernel * layer.kernel * (layer.n // layer.groups)
        b_fmt = fx.QFormat(isa_fe.ACC_BITS, in_fracs[0] + s_fmt.frac)
        return dict(out_fmt=fx.QFormat(p.a_bits, fx.frac_for_range(y_max, p.a_bits)),
                    acc_bits=fx.accumulator_bits(terms, bits, p.a_bits), w_fmt=w_fmt, b_fmt=b_fmt,
                    weight=np.asarray(layer.weight, dtype=np.int64), bias=fx.to_fixed(layer.bias, b_fmt), s_fmt=s_fmt,
                    scale=fx.to_fixed(layer.scale, s_fmt))

    def golden(self, layer, lq, inputs, fx, kernels) -> np.ndarray:
        matmul = _exact(fx, lq.acc_bits)
        acc = kernels.conv2d(inputs[0], lq.weight, layer.stride, layer.padding, layer.groups, matmul)
        if lq.scale is not None:  # a seeded conv's channel scale (48-bit products: no overflow)
            acc = acc * lq.scale.reshape(1, -1, 1, 1)
        return fx.requantise(acc + lq.bias.reshape(1, -1, 1, 1), lq.out_shift, lq.out_fmt.bits)

    def reference(self, layer, inputs, weight, bias, kernels) -> np.ndarray:
        y = kernels.conv2d(inputs[0], weight, layer.stride, layer.padding, layer.groups, kernels.float_matmul)
        if layer.scale is not None:
            y = y * layer.scale.reshape(1, -1, 1, 1)
        return y + bias.reshape(1, -1, 1, 1)

    def fe_geometry(self, layer) -> dict[str, Any]:
        seeded_signs = layer.seed is not None and layer.seed["kind"] == "sign" and not self.depthwise(layer)
        return dict(super().fe_geometry(layer), depthwise=self.depthwise(layer), macs=self.macs(layer),
                    scaled=layer.scale is not None, gen=seeded_signs)

    def fe_problem(self, layer) -> str | None:
        if layer.kernel not in SUPPORTED_KERNELS:
            return f"kernel {layer.kernel} is not supported by the FE engine (K must be one of {SUPPORTED_KERNELS})"
        if layer.stride not in SUPPORTED_STRIDES:
            return f"stride {layer.stride} is not supported by the FE engine (stride must be 1 or 2)"
        return None


class Linear(Conv2d):
    """Fully connected layer; the FE engine runs it as a 1×1 convolution of a 1×1 map."""

    name = "linear"
    windowed = False

    def macs(self, layer) -> int:
        return layer.m * layer.n

    def depthwise(self, layer) -> bool:
        return False

    def gemm_shape(self, layer) -> tuple[int, int, int]:
        return layer.m, layer.n, 1

    def weight_shape(self, layer) -> tuple[int, ...]:
        return layer.m, layer.n

    def golden(self, layer, lq, inputs, fx, kernels) -> np.ndarray:
        acc = kernels.linear(inputs[0], lq.weight, _exact(fx, lq.acc_bits)) + lq.bias
        return fx.requantise(acc, lq.out_shift, lq.out_fmt.bits)

    def reference(self, layer, inputs, weight, bias, kernels) -> np.ndarray:
        return kernels.linear(inputs[0], weight, kernels.float_matmul) + bias

    def fe_geometry(self, layer) -> dict[str, Any]:
        return dict(kind=self.fe_kind, n=layer.n, h=1, w=1, m=layer.m, r=1, c=1, macs=self.macs(layer))

    def fe_problem(self, layer) -> str | None:
        return None


class _Pool(LayerOp):
    """Pools keep their input's format: the maximum or the average stays in the input's range."""

    windowed = True
    fe_kind = "pool"
    keeps_format = True

    def fe_quant(self, layer, in_fracs, y_max, p, fx) -> dict[str, Any]:
        return dict(out_fmt=fx.QFormat(p.a_bits, in_fracs[0]), acc_bits=p.a_bits)


class MaxPool(_Pool):
    name = "maxpool"
    descriptor_kind = isa_fe.KIND_MAXPOOL

    def golden(self, layer, lq, inputs, fx, kernels) -> np.ndarray:
        return kernels.max_pool(inputs[0], layer.kernel, layer.stride, layer.padding, lq.out_fmt.min_int,
                                (layer.r, layer.c))

    def reference(self, layer, inputs, weight, bias, kernels) -> np.ndarray:
        return kernels.max_pool(inputs[0], layer.kernel, layer.stride, layer.padding, -np.inf, (layer.r, layer.c))

    def descriptor_scale(self, layer, lq, fx) -> tuple[int, int]:
        return 1, 0


class AvgPool(_Pool):
    """Average pool (count_include_pad), global or windowed: a window sum times a reciprocal, shifted."""

    name = "avgpool"
    descriptor_kind = isa_fe.KIND_AVGPOOL

    def fe_quant(self, layer, in_fracs, y_max, p, fx) -> dict[str, Any]:
        mult, _ = fx.avg_pool_scale(layer.kernel * layer.kernel)
        acc_bits = p.a_bits + (layer.kernel * layer.kernel - 1).bit_length() + mult.bit_length()
        return dict(super().fe_quant(layer, in_fracs, y_max, p, fx), acc_bits=acc_bits)

    def golden(self, layer, lq, inputs, fx, kernels) -> np.ndarray:
        mult, shift = fx.avg_pool_scale(layer.kernel * layer.kernel)
        window_sums = kernels.sum_pool(inputs[0], layer.kernel, layer.stride, layer.padding)
        return fx.requantise(window_sums * mult, shift, lq.out_fmt.bits)

    def reference(self, layer, inputs, weight, bias, kernels) -> np.ndarray:
        return kernels.sum_pool(inputs[0], layer.kernel, layer.stride, layer.padding) / (layer.kernel * layer.kernel)

    def descriptor_scale(self, layer, lq, fx) -> tuple[int, int]:
        return fx.avg_pool_scale(layer.kernel * layer.kernel)


class Add(LayerOp):
    """Residual add of two equal-shaped maps: both shifted up to the finer frac, summed, requantised."""

    name = "add"
    fe_kind = "add"
    descriptor_kind = isa_fe.KIND_ADD

    def fe_quant(self, layer, in_fracs, y_max, p, fx) -> dict[str, Any]:
        span = max(in_fracs) - min(in_fracs)
        return dict(out_fmt=fx.QFormat(p.a_bits, fx.frac_for_range(y_max, p.a_bits)), acc_bits=p.a_bits + span + 1)

    def golden(self, layer, lq, inputs, fx, kernels) -> np.ndarray:
        acc = sum(np.asarray(v, dtype=np.int64) << shift for v, shift in zip(inputs, lq.align_shifts))
        return fx.requantise(acc, lq.out_shift, lq.out_fmt.bits)

    def reference(self, layer, inputs, weight, bias, kernels) -> np.ndarray:
        return inputs[0] + inputs[1]

    def fe_geometry(self, layer) -> dict[str, Any]:
        n, h, w = layer.in_shape
        return dict(kind=self.fe_kind, n=n, h=h, w=w, m=n, r=h, c=w)


class Flatten(LayerOp):
    """NCHW → (B, N·H·W): free on the FE (the layout in DRAM is already the vector), no descriptor."""

    name = "flatten"
    keeps_format = True

    def fe_quant(self, layer, in_fracs, y_max, p, fx) -> dict[str, Any]:
        return dict(out_fmt=fx.QFormat(p.a_bits, in_fracs[0]), acc_bits=p.a_bits)

    def golden(self, layer, lq, inputs, fx, kernels) -> np.ndarray:
        return inputs[0].reshape(len(inputs[0]), -1)

    def reference(self, layer, inputs, weight, bias, kernels) -> np.ndarray:
        return inputs[0].reshape(len(inputs[0]), -1)

    def fe_geometry(self, layer) -> dict[str, Any]:
        raise ValueError(f"layer '{layer.name}': a flatten has no FE descriptor")


class Concat(LayerOp):
    """Channel concatenation of feature maps of one size. Free on the FE: each input's op writes its
    output into its slice of the concatenated tensor (the inputs share one format, which quantisation
    chooses for all of them: `dtlgen.quant.quantize`). As the FE's last tensor, a 1×1 max-pool
    descriptor copies it to a buffer of its own (the RL engine's input is one op's store)."""

    name = "concat"
    keeps_format = True
    descriptor_kind = isa_fe.KIND_MAXPOOL  # of the output copy only

    def fe_quant(self, layer, in_fracs, y_max, p, fx) -> dict[str, Any]:
        return dict(out_fmt=fx.QFormat(p.a_bits, in_fracs[0]), acc_bits=p.a_bits)

    def golden(self, layer, lq, inputs, fx, kernels) -> np.ndarray:
        return np.concatenate(inputs, axis=1)

    def reference(self, layer, inputs, weight, bias, kernels) -> np.ndarray:
        return np.concatenate(inputs, axis=1)

    def fe_geometry(self, layer) -> dict[str, Any]:
        raise ValueError(f"layer '{layer.name}': a concat has no FE descriptor of its own")

    def descriptor_scale(self, layer, lq, fx) -> tuple[int, int]:
        return 1, 0

    def output_copy_geometry(self, layer) -> dict[str, Any]:
        m, h, w = layer.out_shape
        return dict(kind="pool", n=m, h=h, w=w, m=m, r=h, c=w, k=1, s=1, p=0)


OP_CLASSES: dict[str, LayerOp] = {op.name: op for op in (Conv2d(), Linear(), MaxPool(), AvgPool(), Add(), Flatten(),
                                                         Concat())}


def op_of(layer_or_name) -> LayerOp:
    """The op class of a layer (or of an op name); UnsupportedLayerError for an op the IR does not know."""
    name = layer_or_name if isinstance(layer_or_name, str) else layer_or_name.op
    try:
        return OP_CLASSES[name]
    except (KeyError, TypeError):
        where = "" if isinstance(layer_or_name, str) else f"layer '{layer_or_name.name}': "
        raise UnsupportedLayerError(f"{where}op {name!r} is not an IR op (known: {', '.join(OP_CLASSES)}); add a "
                                    "class for it in dtlgen/model/ops.py") from None


def _exact(fx: ModuleType, bound_bits: int):
    return lambda a, b: fx.exact_matmul(a, b, bound_bits)


def _max_abs(values) -> float:
    values = np.asarray(values)
    return float(np.max(np.abs(values))) if values.size else 0.0
