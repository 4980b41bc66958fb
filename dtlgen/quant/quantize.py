"""Hybrid-precision quantisation: calibrate each tensor's format and produce a QuantizedNetwork.

Frozen layers (FE engine) get `w_bits`/`a_bits` (default 8/8); retrainable layers (RL engine) get
`rl_bits` (default 16) for weights, activations and gradients, each tensor with its own frac.
Scales are powers of two, chosen from the largest magnitude seen on calibration data
(`fixed.frac_for_range`), so every requantisation is a shift. RL tensors keep spare integer
bits because training moves them (weights and activations 1 bit, gradients 2 bits).

Fractional bits a user fixes per layer (`overrides`) replace the calibrated ones; overrides whose
formats the engines cannot run (a shift or an accumulator beyond their limits, `dtlgen.isa`) are
refused here, where the formats are known, rather than by the generator later.

This module decides formats and integer parameters; it does not run inference (golden.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dtlgen.errors import DesignError, UnsupportedLayerError, require_int
from dtlgen.isa import fe as isa_fe
from dtlgen.isa import rl as isa_rl
from dtlgen.model.ir import INPUT, Layer, Network, conv_out_size
from dtlgen.model.ops import op_of
from dtlgen.quant import fixed
from dtlgen.quant.fixed import QFormat
from dtlgen.quant.reference import float_forward, float_rl_gradients

RL_WEIGHT_HEADROOM_BITS = 1
RL_ACTIVATION_HEADROOM_BITS = 1
RL_GRADIENT_HEADROOM_BITS = 2


@dataclass(frozen=True)
class PrecisionConfig:
    """Bit widths of the two engines and the training hyper-parameters that shape the numerics.

    w_bits/a_bits: FE weights/activations. rl_bits: RL weights, activations, gradients.
    batch: samples per training step (BWD_WEIGHT sums over them). lr_shift: learning rate
    2^-lr_shift applied to the batch-summed gradient.
    """

    w_bits: int = 8
    a_bits: int = 8
    rl_bits: int = 16
    batch: int = 16
    lr_shift: int = 7

    def __post_init__(self) -> None:
        for name, lo, hi in (("w_bits", 2, 16), ("a_bits", 2, 16), ("rl_bits", 4, 24), ("lr_shift", 0, 30)):
            require_int(getattr(self, name), f"precision.{name}", lo, hi)
        require_int(self.batch, "precision.batch", 1, meaning="the training batch")

    def to_dict(self) -> dict[str, int]:
        return {"w_bits": self.w_bits, "a_bits": self.a_bits, "rl_bits": self.rl_bits,
                "batch": self.batch, "lr_shift": self.lr_shift}


@dataclass
class LayerQuant:
    """Formats and integer parameters of one layer.

    FE conv/linear: bias in Q(product-sum bits, w_frac + in_frac), saturated to that range, so
    `acc_bits` = product-sum bits + 1 provably never overflows. RL conv/linear: bias in
    Q(rl_bits, b_frac) and aligned up to the accumulator's frac when added. `grad_fmt` is the
    format of dL/d(output) (RL only); `dw_fmt`/`db_fmt` of the batch-summed weight/bias gradients.
    """

    name: str
    engine: str  # "fe" or "rl"
    in_fracs: tuple[int, ...]
    out_fmt: QFormat
    acc_bits: int = 0
    w_fmt: QFormat | None = None
    b_fmt: QFormat | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    grad_fmt: QFormat | None = None
    dw_fmt: QFormat | None = None
    db_fmt: QFormat | None = None
    s_fmt: QFormat | None = None  # a seeded FE conv's per-channel output scale (`scale`, integers)
    scale: np.ndarray | None = None

    @property
    def acc_frac(self) -> int:
        """Fractional bits of the accumulator: a conv/linear sums w·x (times a seeded conv's channel scale, in
        whose frac its bias is); an add aligns to the finer input."""
        if self.w_fmt is None:
            return max(self.in_fracs)
        return self.w_fmt.frac + self.in_fracs[0] + (self.s_fmt.frac if self.s_fmt is not None else 0)

    @property
    def out_shift(self) -> int:
        """The requantisation shift from the accumulator to the output format (every engine uses it)."""
        return self.acc_frac - self.out_fmt.frac

    @property
    def align_shifts(self) -> tuple[int, ...]:
        """Left shifts that bring each input up to the accumulator's frac (residual add)."""
        return tuple(self.acc_frac - frac for frac in self.in_fracs)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"engine": self.engine, "a_frac": self.out_fmt.frac, "in_fracs": list(self.in_fracs)}
        if self.w_fmt is not None:
            d.update(w_frac=self.w_fmt.frac, b_frac=self.b_fmt.frac, acc_bits=self.acc_bits)
        if self.s_fmt is not None:
            d.update(s_frac=self.s_fmt.frac)
        for key in ("grad_fmt", "dw_fmt", "db_fmt"):
            fmt = getattr(self, key)
            if fmt is not None:
                d[key.replace("_fmt", "_frac")] = fmt.frac
        return d


@dataclass
class QuantizedNetwork:
    network: Network
    precision: PrecisionConfig
    input_fmt: QFormat
    layers: dict[str, LayerQuant] = field(default_factory=dict)

    @property
    def fe_layers(self) -> list[Layer]:
        return self.network.frozen_layers

    @property
    def rl_layers(self) -> list[Layer]:
        return self.network.retrainable_layers

    def fmt_of(self, name: str) -> QFormat:
        return self.input_fmt if name == INPUT else self.layers[name].out_fmt

    def rl_acc_bits(self) -> int:
        """Accumulator width the RL engine needs over all its layers and modes (0 without RL layers)."""
        return max((self.layers[layer.name].acc_bits for layer in self.rl_layers), default=0)

    def per_layer_dict(self) -> dict[str, dict[str, Any]]:
        return {name: lq.to_dict() for name, lq in self.layers.items()}


def training_gemm_shape(layer: Layer) -> tuple[int, int, int] | None:
    """(M, K·K·N, positions) of a linear layer or a dense conv as the golden model trains it (a GEMM over
    tap-major windows, `dtlgen.quant.ops.im2col_rows`), else None."""
    if layer.op == "linear":
        return layer.m, layer.n, 1
    if layer.op == "conv2d" and layer.groups == 1 and layer.seed is None:
        return layer.m, layer.kernel * layer.kernel * layer.n, layer.r * layer.c
    return None


def check_retrainable(network: Network) -> None:
    """Every retrainable layer must be linear, a dense conv (a K×K one runs on the RL engine as a windowed GEMM),
    a floor-mode max-pool (after the first trained layer) or flatten, within the limits `dtlgen.perf.rl.rl_window`
    checks, and take one input; a layer with weights may be not `trained` (forward and backward only), but one
    must train."""
    trained_seen = False
    for layer in network.retrainable_layers:
        if layer.op == "flatten":
            continue
        if layer.op == "maxpool" and not trained_seen:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' (maxpool) comes before the first trained layer of the retrainable part, and no "
                "gradient reaches it; move the split after it")
        trained_seen = trained_seen or (layer.has_weights and layer.trained)
        if layer.seed is not None:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' is a seeded conv, whose weights are frozen (a seed regenerates them); move "
                "the split after it, or make it a Conv2d to retrain it")
        if layer.op == "maxpool" and (layer.r, layer.c) == tuple(
                conv_out_size(size, layer.kernel, layer.stride, layer.padding) for size in layer.in_shape[1:]):
            continue
        if op_of(layer).has_weights and training_gemm_shape(layer) is not None:
            continue
        raise UnsupportedLayerError(
            f"layer '{layer.name}' ({layer.op}, K={layer.kernel}, stride {layer.stride}, groups {layer.groups}) cannot "
            "be retrained on the RL engine (it trains linear and dense conv layers); move the split after it")
    for previous, layer in zip(network.retrainable_layers, network.retrainable_layers[1:]):
        if list(layer.inputs) != [previous.name]:
            raise UnsupportedLayerError(f"layer '{layer.name}' does not take the previous retrainable layer "
                                        f"'{previous.name}' as its only input; the RL engine trains a chain of layers")
    if network.retrainable_layers and not any(layer.has_weights and layer.trained for layer in network.retrainable_layers):
        raise UnsupportedLayerError("no retrainable layer has trained weights; mark at least one layer trained")


def quantize(network: Network, calib_x: np.ndarray, precision: PrecisionConfig = PrecisionConfig(),
             calib_labels: np.ndarray | None = None, float_acts: dict[str, np.ndarray] | None = None,
             fe_cache: dict | None = None, overrides: dict[str, dict[str, int]] | None = None) -> QuantizedNetwork:
    """Calibrate every tensor's fractional bits on `calib_x` (B × input shape, float) and quantise.
    `overrides` fixes fractional bits per layer instead: {layer: {"w_frac": f, "a_frac": f}} for its
    weights' and its output's format (`check_overrides` says which layers take which).

    Gradient formats of the RL layers come from a float backward pass over `calib_labels`
    (seeded random labels when none are given: they give the larger, safer gradients).
    `float_acts`, the float reference's outputs on `calib_x`, and `fe_cache`, a dict that keeps
    the frozen layers' quantisation per (w_bits, a_bits), save recomputing both when the same
    data calibrates many precisions (the DSE does).
    """
    check_retrainable(network)
    acts = float_acts if float_acts is not None else float_forward(network, calib_x)
    first_frozen = bool(network.layers) and network.layers[0].frozen
    in_bits = precision.a_bits if first_frozen else precision.rl_bits
    ranges = shared_ranges(network, {INPUT: _max_abs(calib_x),
                                     **{layer.name: _max_abs(acts[layer.name]) for layer in network.layers}})
    qnet = QuantizedNetwork(network, precision, QFormat(in_bits, fixed.frac_for_range(ranges[INPUT], in_bits)))
    overrides = overrides or {}
    check_overrides(network, overrides)
    cache_key = (precision.w_bits, precision.a_bits, repr(sorted(overrides.items())))
    cached = fe_cache.get(cache_key) if fe_cache is not None else None
    for layer in network.layers:
        in_fracs = tuple(qnet.fmt_of(name).frac for name in layer.inputs)
        y_max = ranges[layer.name]
        wanted = overrides.get(layer.name, {})
        if layer.op == "concat" and len(set(in_fracs)) > 1:
            fracs = ", ".join(f"'{name}' {frac}" for name, frac in zip(layer.inputs, in_fracs))
            raise DesignError(f"layer '{layer.name}': its inputs come in different formats (fractional bits {fracs}); "
                              "a concatenation's inputs share one, so overrides of the layers that compute them "
                              "(overrides.<layer>.a_frac) must give them all the same a_frac")
        if layer.frozen:
            qnet.layers[layer.name] = (cached[layer.name] if cached is not None
                                       else _override_fe(layer, _quantize_fe_layer(layer, in_fracs, y_max, precision),
                                                         wanted))
        else:
            qnet.layers[layer.name] = _quantize_rl_layer(layer, in_fracs, y_max, precision, **wanted)
    if fe_cache is not None and cached is None:
        fe_cache[cache_key] = {l.name: qnet.layers[l.name] for l in network.frozen_layers}
    if network.retrainable_layers:
        labels = calib_labels
        if labels is None:
            classes = int(np.prod(network.layers[-1].out_shape))
            labels = np.random.default_rng(0).integers(0, classes, size=len(calib_x))
        _calibrate_gradients(qnet, float_rl_gradients(network, acts, labels, precision.batch))
    check_override_limits(qnet, overrides)
    return qnet


def shared_ranges(network: Network, ranges: dict[str, float]) -> dict[str, float]:
    """Calibrated output ranges (largest magnitudes) per layer, and the network input's under INPUT,
    where the inputs of a concatenation share one format: each layer that chooses an input's format
    (walking back through the layers that keep their input's format: pools, flattens, inner
    concatenations; the network input's format for a pool of it) calibrates to the largest range among
    them, so all get the same fractional bits."""
    layers = {layer.name: layer for layer in network.layers}
    ranges = dict(ranges)

    def deciders(name: str) -> set[str]:
        if name == INPUT:
            return {INPUT}
        layer = layers[name]
        if layer.op == "concat":
            return set().union(*(deciders(n) for n in layer.inputs))
        return deciders(layer.inputs[0]) if op_of(layer).keeps_format else {name}

    groups = [deciders(layer.name) for layer in network.layers if layer.op == "concat"]
    changed = bool(groups)
    while changed:  # a layer may feed two concatenations: their groups share one range
        changed = False
        for group in groups:
            top = max(ranges[name] for name in group) if group else 0.0
            for name in group:
                if ranges[name] < top:
                    ranges[name], changed = top, True
    return ranges


def _quantize_fe_layer(layer: Layer, in_fracs: tuple[int, ...], y_max: float, p: PrecisionConfig) -> LayerQuant:
    formats = op_of(layer).fe_quant(layer, in_fracs, y_max, p, fixed)  # the op's rule: dtlgen.model.ops
    return LayerQuant(layer.name, "fe", in_fracs, **formats)


OVERRIDE_KEYS = ("w_frac", "a_frac")
FORMAT_OPS = ("conv2d", "linear", "add")  # the ops that compute their output's format; the others keep their input's
OVERRIDE_FRAC = (-16, fixed.MAX_FRAC)  # the fractional bits an override may give


def check_overrides(network: Network, overrides: Any, source: str = "overrides") -> None:
    """Per-layer format overrides: an object of layer names, each an object of `w_frac` (layers with
    weights) and `a_frac` (layers that compute their output's format: conv, linear, add; a pool or
    flatten keeps its input's), integers from -16 to MAX_FRAC. One DesignError naming the entry."""
    if not isinstance(overrides, dict):
        raise DesignError(f"{source} must be an object of layer names, each {{\"w_frac\": F, \"a_frac\": F}}")
    names = {layer.name: layer for layer in network.layers}
    for name, entry in overrides.items():
        layer = names.get(name)
        if layer is None:
            raise DesignError(f"{source}: '{name}' is not a layer of {network.name} (dtlgen import lists them)")
        if not isinstance(entry, dict) or not entry or set(entry) - set(OVERRIDE_KEYS):
            raise DesignError(f"{source}.{name} must be an object of w_frac and/or a_frac")
        for key, value in entry.items():
            lo, hi = OVERRIDE_FRAC
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise DesignError(f"{source}.{name}.{key} is {value!r}: an integer from {lo} to {hi}")
        if "w_frac" in entry and not layer.has_weights:
            raise DesignError(f"{source}.{name}.w_frac: layer '{name}' ({layer.op}) has no weights")
        if "w_frac" in entry and layer.seed is not None:
            raise DesignError(f"{source}.{name}.w_frac: layer '{name}' is seeded: its weights are the generator's "
                              "integers (fractional bits 0); override its a_frac instead")
        if "a_frac" in entry and layer.op not in FORMAT_OPS:
            raise DesignError(f"{source}.{name}.a_frac: a {layer.op} keeps its input's format; override the layer "
                              "before it")


def _override_fe(layer: Layer, lq: LayerQuant, wanted: dict[str, int]) -> LayerQuant:
    """A frozen layer's quantisation with the overridden fractional bits (the bias follows the weights:
    it lives at the products' scale)."""
    if "w_frac" in wanted:
        lq.w_fmt = QFormat(lq.w_fmt.bits, wanted["w_frac"])
        lq.b_fmt = QFormat(lq.b_fmt.bits, wanted["w_frac"] + lq.in_fracs[0])
        lq.weight, lq.bias = fixed.to_fixed(layer.weight, lq.w_fmt), fixed.to_fixed(layer.bias, lq.b_fmt)
    if "a_frac" in wanted:
        lq.out_fmt = QFormat(lq.out_fmt.bits, wanted["a_frac"])
    return lq


def check_override_limits(qnet: QuantizedNetwork, overrides: dict[str, dict[str, int]] | None,
                          source: str = "overrides") -> None:
    """Refuse overrides whose formats the engines cannot run: a descriptor shift or an accumulator
    beyond the FE engine's (`dtlgen.isa.fe`), an RL shift, bias alignment or update step beyond the
    RL engine's (`dtlgen.isa.rl.shift_problems`), in the layer overridden or in a layer that reads its
    output. One DesignError naming the entry (`source.<layer>.<key>`), what it breaks, and the values
    of that entry that fit with the network's other formats as they are. A problem that no override
    can change is left to the generator's checks, which name their own fixes."""
    if not overrides:
        return
    network = qnet.network
    for layer in network.layers:
        problems = _limit_problems(qnet, layer, qnet.layers[layer.name], {})
        entries = [(layer.name, key) for key in OVERRIDE_KEYS if key in overrides.get(layer.name, {})]
        entries += [(name, "a_frac") for name in dict.fromkeys(_format_source(network, i) for i in layer.inputs)
                    if "a_frac" in overrides.get(name, {})]
        # the first problem an entry can change (some value of it removes the problem)
        blamed = next(((problem, entry) for problem in problems for entry in entries
                       if _fitting_values(qnet, *entry, (layer.name, problem[0]))), None)
        if blamed is None:
            continue
        (what, value, lo, hi), (name, key) = blamed
        fitting = _fitting_values(qnet, name, key)
        where = f"layer '{layer.name}'" + ("" if name == layer.name else ", which reads its output,")
        engine = "RL" if qnet.layers[layer.name].engine == "rl" else "FE"
        bits = (f"rl.bits {qnet.precision.rl_bits}, lr_shift {qnet.precision.lr_shift}" if engine == "RL"
                else f"fe.w_bits {qnet.precision.w_bits}, fe.a_bits {qnet.precision.a_bits}")
        fix = (f"give {source}.{name}.{key} an integer {_describe_values(fitting)} for this layer" if fitting
               else "no value of it fits with the other formats: leave it out, or override the formats it meets too")
        limit = f"limit of {hi}" if lo is None else f"range {lo}..{hi}"
        raise DesignError(f"{source}.{name}.{key} is {overrides[name][key]}: {where} would have "
                          f"{'an' if what[0] in 'aeiou' else 'a'} {what} of {value}, outside the {engine} engine's "
                          f"{limit} (with {bits} and the other formats as they are); {fix}")


def _format_source(network: Network, name: str) -> str:
    """The layer whose output format `name`'s output carries (through pools and flattens), or INPUT."""
    while name != INPUT:
        layer = network.layer(name)
        if layer.op in FORMAT_OPS:
            return name
        name = layer.inputs[0]
    return INPUT


def _limit_problems(qnet: QuantizedNetwork, layer: Layer, lq: LayerQuant,
                    others: dict[str, LayerQuant]) -> list[tuple[str, int, int | None, int]]:
    """(what, value, lowest or None, highest) of each engine limit that `lq`, the formats of `layer`
    (maybe a candidate's), breaks; `others` holds candidates of other layers (their accumulators count
    toward the RL engine's)."""
    if lq.engine == "fe":
        if layer.op == "flatten":  # no descriptor
            return []
        shift = op_of(layer).descriptor_scale(layer, lq, fixed)[1]
        lo, hi = isa_fe.SHIFT_RANGE
        problems = [("requantisation shift", shift, lo, hi)] if not lo <= shift <= hi else []
        if lq.acc_bits > isa_fe.ACC_BITS:
            problems.append(("accumulator width (bits)", lq.acc_bits, None, isa_fe.ACC_BITS))
        return problems
    if not layer.has_weights:
        return []
    gemms = [rl.name for rl in qnet.rl_layers if rl.has_weights]
    producer = qnet.layers.get(layer.inputs[0])
    into = producer.grad_fmt if gemms.index(layer.name) > 0 and producer is not None else None
    acc_bits = max(others.get(name, qnet.layers[name]).acc_bits for name in gemms)
    return isa_rl.shift_problems(rl_shifts(lq, into), acc_bits, qnet.precision.lr_shift)


def _fitting_values(qnet: QuantizedNetwork, name: str, key: str,
                    problem: tuple[str, str] | None = None) -> list[int]:
    """The values of override `name.key` (every other format as it is) that break no engine limit in
    the layer or in the layers that read its output; with `problem` (layer, what), only that one."""
    network, p = qnet.network, qnet.precision
    affected = [network.layer(name)] + [layer for layer in network.layers if key == "a_frac" and layer.name != name
                                        and any(_format_source(network, i) == name for i in layer.inputs)]
    fitting = []
    for value in range(OVERRIDE_FRAC[0], OVERRIDE_FRAC[1] + 1):
        candidates = {}
        for layer in affected:
            lq = qnet.layers[layer.name]
            in_fracs = tuple(value if key == "a_frac" and _format_source(network, i) == name else qnet.fmt_of(i).frac
                             for i in layer.inputs)
            w_frac = value if (layer.name, key) == (name, "w_frac") else lq.w_fmt.frac if lq.w_fmt else None
            out_frac = value if (layer.name, key) == (name, "a_frac") else lq.out_fmt.frac
            candidates[layer.name] = _formats_with(layer, lq, in_fracs, w_frac, out_frac, p)
        broken = [(n, what) for n, lq in candidates.items()
                  for what, *_ in _limit_problems(qnet, network.layer(n), lq, candidates)]
        if (problem not in broken) if problem is not None else not broken:
            fitting.append(value)
    return fitting


def _formats_with(layer: Layer, lq: LayerQuant, in_fracs: tuple[int, ...], w_frac: int | None, out_frac: int,
                  p: PrecisionConfig) -> LayerQuant:
    """`lq`'s formats (no values) with other input, weight and output fracs: what the limits depend on."""
    if lq.engine == "rl" and layer.has_weights:
        formats = _rl_formats(layer, in_fracs, p, w_frac, out_frac)
        return replace(formats, grad_fmt=lq.grad_fmt, dw_fmt=lq.dw_fmt, db_fmt=lq.db_fmt)
    if layer.op not in FORMAT_OPS:  # a pool or flatten keeps its input's format
        out_frac = in_fracs[0]
    # A weighted FE op's accumulator follows from its shape and bit widths (its bias saturates to the
    # products' range: dtlgen.model.ops.Conv2d.fe_quant), an add's from its inputs' fracs.
    acc_bits = (op_of(layer).fe_quant(layer, in_fracs, 0.0, p, fixed)["acc_bits"]
                if lq.engine == "fe" and not layer.has_weights else lq.acc_bits)
    return replace(lq, in_fracs=in_fracs, out_fmt=QFormat(lq.out_fmt.bits, out_frac), acc_bits=acc_bits,
                   w_fmt=QFormat(lq.w_fmt.bits, w_frac) if lq.w_fmt is not None else None, weight=None, bias=None)


def _describe_values(values: list[int]) -> str:
    """'from a to b' for each run of consecutive integers, the runs joined by 'or'."""
    runs = [[values[0], values[0]]]
    for value in values[1:]:
        if value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return " or ".join(f"from {lo} to {hi}" if hi > lo else str(lo) for lo, hi in runs)


def _quantize_rl_layer(layer: Layer, in_fracs: tuple[int, ...], y_max: float, p: PrecisionConfig,
                       w_frac: int | None = None, a_frac: int | None = None) -> LayerQuant:
    bits = p.rl_bits
    if layer.op in ("flatten", "maxpool"):  # moves values: its output keeps its input's format
        return LayerQuant(layer.name, "rl", in_fracs, QFormat(bits, in_fracs[0]))
    lq = _rl_formats(layer, in_fracs, p,
                     fixed.frac_for_range(_max_abs(layer.weight), bits, RL_WEIGHT_HEADROOM_BITS) if w_frac is None
                     else w_frac,
                     fixed.frac_for_range(y_max, bits, RL_ACTIVATION_HEADROOM_BITS) if a_frac is None else a_frac)
    lq.weight, lq.bias = fixed.to_fixed(layer.weight, lq.w_fmt), fixed.to_fixed(layer.bias, lq.b_fmt)
    return lq


def _rl_formats(layer: Layer, in_fracs: tuple[int, ...], p: PrecisionConfig, w_frac: int, out_frac: int) -> LayerQuant:
    """An RL conv/linear layer's formats and accumulator width (no values) for its weights' and output's frac."""
    bits = p.rl_bits
    m, n, positions = training_gemm_shape(layer)  # (check_retrainable admitted only layers that have one)
    taps = layer.kernel * layer.kernel if layer.op == "conv2d" else 1
    w_fmt, out_fmt = QFormat(bits, w_frac), QFormat(bits, out_frac)
    acc_frac = w_fmt.frac + in_fracs[0]
    # The bias lives at the output's scale, but never finer than the accumulator it is added to.
    b_fmt = QFormat(bits, min(out_fmt.frac, acc_frac))
    # FWD sums N (K·K·N for a conv) products plus the bias shifted up to the accumulator's frac; BWD_DATA
    # sums M (at most K·K·M) products, BWD_WEIGHT batch × positions. One width, the largest, serves all modes.
    fwd_bits = max(fixed.product_sum_bits(n, bits, bits), bits + acc_frac - b_fmt.frac) + 1
    acc_bits = max(fwd_bits, *(fixed.product_sum_bits(t, bits, bits) for t in (taps * m, p.batch * positions)))
    return LayerQuant(layer.name, "rl", in_fracs, out_fmt, acc_bits=acc_bits, w_fmt=w_fmt, b_fmt=b_fmt)


SHIFT_NAMES = ("out_shift", "bias_align", "dx_shift", "dw_shift", "db_shift", "w_step_frac", "b_step_frac")


def rl_shifts(lq: LayerQuant, into: QFormat | None) -> dict[str, int]:
    """The shifts of an RL conv/linear layer's descriptors (SHIFT_NAMES), from its formats; `into` is
    the format of the gradient its BWD_DATA writes (the previous layer's output gradient), None for
    the first layer, which has none. `dtlgen.generator.rl_program` lays them into the descriptors;
    `dtlgen.isa.rl.shift_problems` says which the engine cannot take."""
    return {"out_shift": lq.out_shift, "bias_align": lq.acc_frac - lq.b_fmt.frac,
            "dx_shift": lq.w_fmt.frac + lq.grad_fmt.frac - into.frac if into is not None else 0,
            "dw_shift": lq.grad_fmt.frac + lq.in_fracs[0] - lq.dw_fmt.frac,
            "db_shift": lq.grad_fmt.frac - lq.db_fmt.frac,
            "w_step_frac": lq.dw_fmt.frac - lq.w_fmt.frac, "b_step_frac": lq.db_fmt.frac - lq.b_fmt.frac}


def _calibrate_gradients(qnet: QuantizedNetwork, grads: dict[str, dict[str, float]]) -> None:
    bits = qnet.precision.rl_bits
    last = qnet.network.layers[-1].name
    for layer in qnet.rl_layers:
        lq = qnet.layers[layer.name]
        g = grads[layer.name]
        # Softmax − onehot lies in (−1, 1): the output gradient has a fixed format.
        grad_frac = bits - 2 if layer.name == last else fixed.frac_for_range(g["dy"], bits, RL_GRADIENT_HEADROOM_BITS)
        lq.grad_fmt = QFormat(bits, grad_frac)
        if layer.has_weights:
            lq.dw_fmt = QFormat(bits, fixed.frac_for_range(g["dw"], bits, RL_GRADIENT_HEADROOM_BITS))
            lq.db_fmt = QFormat(bits, fixed.frac_for_range(g["db"], bits, RL_GRADIENT_HEADROOM_BITS))
    # A flatten or a max-pool passes gradients through unchanged, so it and its producer share one format
    # (along a chain: conv, max-pool, flatten share the finest format that holds all three).
    changed = True
    while changed:
        changed = False
        for layer in qnet.rl_layers:
            lq, producer = qnet.layers[layer.name], qnet.layers.get(layer.inputs[0])
            if (layer.op in ("flatten", "maxpool") and producer is not None and producer.engine == "rl"
                    and lq.grad_fmt != producer.grad_fmt):
                lq.grad_fmt = producer.grad_fmt = QFormat(bits, min(lq.grad_fmt.frac, producer.grad_fmt.frac))
                changed = True


def _max_abs(values) -> float:
    values = np.asarray(values)
    return float(np.max(np.abs(values))) if values.size else 0.0
