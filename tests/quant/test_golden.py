"""dtlgen.quant.golden against naive references written here (explicit loops, Python ints) and torch."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from dtlgen.errors import DesignError, UnsupportedLayerError
from dtlgen.model import import_module, load_model
from dtlgen.model.ir import INPUT, Layer, Network
from dtlgen.quant import fixed, golden, reference
from dtlgen.quant.fixed import QFormat
from dtlgen.quant.quantize import LayerQuant, PrecisionConfig, QuantizedNetwork, quantize

SLOW_OK = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- small independent helpers ---------------------------------------------------------------------
def int_range(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def clamp(v: int, bits: int) -> int:
    lo, hi = int_range(bits)
    return max(lo, min(hi, v))


def rq(acc: int, s: int, bits: int) -> int:
    """Requantise a Python int: floor((acc + 2^(s-1)) / 2^s), exact left shift for s < 0, clamp."""
    if s > 0:
        acc = (acc + 2 ** (s - 1)) // 2 ** s
    elif s < 0:
        acc = acc * 2 ** (-s)
    return clamp(acc, bits)


def six_int(fmt: QFormat) -> int:
    q = 6 * Fraction(2) ** fmt.frac
    return clamp(math.floor(q + Fraction(1, 2)), fmt.bits)  # 6·2^frac ≥ 0: half away = half up


def apply_act(v: int, activation: str | None, fmt: QFormat) -> int:
    if activation == "relu":
        return max(v, 0)
    if activation == "relu6":
        return min(max(v, 0), six_int(fmt))
    return v


def act_mask(v: int, activation: str | None, fmt: QFormat) -> bool:
    if activation == "relu":
        return v > 0
    if activation == "relu6":
        return 0 < v < six_int(fmt)
    return True


def out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def rand_ints(rng: np.random.Generator, bits: int, shape, extreme: bool) -> np.ndarray:
    lo, hi = int_range(bits)
    if extreme:  # corners of the range: the overflow-prone inputs
        return rng.choice(np.array([lo, hi, lo, 0, -1]), size=shape).astype(np.int64)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


# --- FE integer layers vs naive loops ------------------------------------------------------------------
def ref_conv(x, w, bias, stride, pad, depthwise, shift, activation, out_fmt):
    """Explicit loops over output pixels and kernel taps, zero padding, then requantise + activation."""
    b_, n, h, wd = x.shape
    m, _, k, _ = w.shape
    r, c = out_size(h, k, stride, pad), out_size(wd, k, stride, pad)
    xo, wo = x.astype(object), w.astype(object)  # Python ints: no overflow, no float
    y = np.zeros((b_, m, r, c), dtype=np.int64)
    for b in range(b_):
        for i in range(r):
            for j in range(c):
                acc = bias.astype(object).copy()
                for kh in range(k):
                    for kw in range(k):
                        ih, iw = i * stride - pad + kh, j * stride - pad + kw
                        if not (0 <= ih < h and 0 <= iw < wd):
                            continue  # zero padding contributes nothing
                        if depthwise:
                            acc = acc + wo[:, 0, kh, kw] * xo[b, :, ih, iw]
                        else:
                            acc = acc + wo[:, :, kh, kw].dot(xo[b, :, ih, iw])
                for mo in range(m):
                    v = int(fixed.requantise(int(acc[mo]), shift, out_fmt.bits))
                    y[b, mo, i, j] = apply_act(v, activation, out_fmt)
    return y


def ref_pool(x, op, k, stride, pad, activation, fmt):
    b_, n, h, wd = x.shape
    r, c = out_size(h, k, stride, pad), out_size(wd, k, stride, pad)
    mult, shift = fixed.avg_pool_scale(k * k)
    y = np.zeros((b_, n, r, c), dtype=np.int64)
    for b in range(b_):
        for ch in range(n):
            for i in range(r):
                for j in range(c):
                    taps = [int(x[b, ch, i * stride - pad + kh, j * stride - pad + kw])
                            for kh in range(k) for kw in range(k)
                            if 0 <= i * stride - pad + kh < h and 0 <= j * stride - pad + kw < wd]
                    if op == "maxpool":
                        v = max(taps)
                    else:  # zero padding counts in the divisor (count_include_pad)
                        v = int(fixed.requantise(sum(taps) * mult, shift, fmt.bits))
                    y[b, ch, i, j] = apply_act(v, activation, fmt)
    return y


def _qnet(layers: list[Layer], lqs: list[LayerQuant], input_shape, input_fmt, w_bits=8, a_bits=8) -> QuantizedNetwork:
    net = Network("t", tuple(input_shape), layers)
    return QuantizedNetwork(net, PrecisionConfig(w_bits=w_bits, a_bits=a_bits), input_fmt,
                            {lq.name: lq for lq in lqs})


@st.composite
def conv_cases(draw):
    depthwise = draw(st.booleans())
    n = draw(st.integers(1, 6))
    m = n if depthwise else draw(st.integers(1, 6))
    k = draw(st.sampled_from([1, 3, 5, 7]))
    pad = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(1, k - 2 * pad), 9))
    w = draw(st.integers(max(1, k - 2 * pad), 9))
    return dict(depthwise=depthwise, n=n, m=m, k=k, pad=pad, h=h, w=w,
                stride=draw(st.sampled_from([1, 2])), batch=draw(st.integers(1, 2)),
                w_bits=draw(st.integers(2, 8)), a_bits=draw(st.integers(2, 8)),
                in_frac=draw(st.integers(-2, 7)), w_frac=draw(st.integers(-2, 7)), shift=draw(st.integers(-3, 14)),
                activation=draw(st.sampled_from([None, "relu", "relu6"])),
                extreme=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 32 - 1)))


@settings(SLOW_OK, max_examples=40)
@given(case=conv_cases())
def test_fe_conv_matches_naive_loops(case):
    rng = np.random.default_rng(case["seed"])
    n, m, k, groups = case["n"], case["m"], case["k"], (case["n"] if case["depthwise"] else 1)
    r = out_size(case["h"], k, case["stride"], case["pad"])
    c = out_size(case["w"], k, case["stride"], case["pad"])
    terms = k * k * (n // groups)
    psum = fixed.product_sum_bits(terms, case["w_bits"], case["a_bits"])
    acc_frac = case["w_frac"] + case["in_frac"]
    out_fmt = QFormat(case["a_bits"], acc_frac - case["shift"])
    weight = rand_ints(rng, case["w_bits"], (m, n // groups, k, k), case["extreme"])
    bias = rand_ints(rng, psum, (m,), case["extreme"])
    x = rand_ints(rng, case["a_bits"], (case["batch"], n, case["h"], case["w"]), case["extreme"])
    layer = Layer("conv", "conv2d", [INPUT], (n, case["h"], case["w"]), (m, r, c), kernel=k, stride=case["stride"],
                  padding=case["pad"], groups=groups, activation=case["activation"],
                  weight=np.zeros(weight.shape), bias=np.zeros(m))
    lq = LayerQuant("conv", "fe", (case["in_frac"],), out_fmt,
                    acc_bits=fixed.accumulator_bits(terms, case["w_bits"], case["a_bits"]),
                    w_fmt=QFormat(case["w_bits"], case["w_frac"]), b_fmt=QFormat(psum, acc_frac),
                    weight=weight, bias=bias)
    qnet = _qnet([layer], [lq], (n, case["h"], case["w"]), QFormat(case["a_bits"], case["in_frac"]),
                 case["w_bits"], case["a_bits"])
    got = golden.fe_forward(qnet, x)["conv"]
    ref = ref_conv(x, weight, bias, case["stride"], case["pad"], case["depthwise"], case["shift"],
                   case["activation"], out_fmt)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)


@st.composite
def pool_cases(draw):
    k = draw(st.integers(1, 5))
    pad = draw(st.integers(0, k // 2))
    return dict(op=draw(st.sampled_from(["maxpool", "avgpool"])), k=k, pad=pad,
                stride=draw(st.integers(1, 3)), n=draw(st.integers(1, 4)),
                h=draw(st.integers(max(1, k - 2 * pad), 9)), w=draw(st.integers(max(1, k - 2 * pad), 9)),
                batch=draw(st.integers(1, 2)), a_bits=draw(st.integers(2, 8)), frac=draw(st.integers(-2, 7)),
                activation=draw(st.sampled_from([None, "relu", "relu6"])),
                extreme=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 32 - 1)))


@settings(SLOW_OK, max_examples=40)
@given(case=pool_cases())
def test_fe_pool_matches_naive_loops(case):
    rng = np.random.default_rng(case["seed"])
    k, s, p, n = case["k"], case["stride"], case["pad"], case["n"]
    r, c = out_size(case["h"], k, s, p), out_size(case["w"], k, s, p)
    fmt = QFormat(case["a_bits"], case["frac"])
    x = rand_ints(rng, case["a_bits"], (case["batch"], n, case["h"], case["w"]), case["extreme"])
    layer = Layer("pool", case["op"], [INPUT], (n, case["h"], case["w"]), (n, r, c), kernel=k, stride=s, padding=p,
                  activation=case["activation"])
    lq = LayerQuant("pool", "fe", (case["frac"],), fmt, acc_bits=32)
    qnet = _qnet([layer], [lq], (n, case["h"], case["w"]), fmt, a_bits=case["a_bits"])
    got = golden.fe_forward(qnet, x)["pool"]
    np.testing.assert_array_equal(got, ref_pool(x, case["op"], k, s, p, case["activation"], fmt))


@settings(SLOW_OK, max_examples=40)
@given(a_bits=st.integers(2, 8), fa=st.integers(-2, 8), fb=st.integers(-2, 8), shift=st.integers(-3, 6),
       activation=st.sampled_from([None, "relu", "relu6"]), extreme=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_fe_residual_add_matches_naive_loops(a_bits, fa, fb, shift, activation, extreme, seed):
    # add(input, maxpool3x3(input)): two operands with different values and different fracs
    rng = np.random.default_rng(seed)
    shape = (2, 3, 5, 4)
    x = rand_ints(rng, a_bits, shape, extreme)
    common = max(fa, fb)
    out_fmt = QFormat(a_bits, common - shift)
    pool = Layer("pool", "maxpool", [INPUT], shape[1:], shape[1:], kernel=3, stride=1, padding=1)
    add = Layer("add", "add", [INPUT, "pool"], shape[1:], shape[1:], activation=activation)
    lqs = [LayerQuant("pool", "fe", (fb,), QFormat(a_bits, fb)),
           LayerQuant("add", "fe", (fa, fb), out_fmt, acc_bits=a_bits + abs(fa - fb) + 1)]
    qnet = _qnet([pool, add], lqs, shape[1:], QFormat(a_bits, fa), a_bits=a_bits)
    got = golden.fe_forward(qnet, x)["add"]
    pooled = ref_pool(x, "maxpool", 3, 1, 1, None, QFormat(a_bits, fb))
    ref = np.zeros(shape, dtype=np.int64)
    for idx in np.ndindex(*shape):
        acc = int(x[idx]) * 2 ** (common - fa) + int(pooled[idx]) * 2 ** (common - fb)
        ref[idx] = apply_act(int(fixed.requantise(acc, common - out_fmt.frac, a_bits)), activation, out_fmt)
    np.testing.assert_array_equal(got, ref)


@settings(SLOW_OK, max_examples=30)
@given(n=st.integers(1, 20), m=st.integers(1, 8), w_bits=st.integers(2, 8), a_bits=st.integers(2, 8),
       shift=st.integers(-2, 12), extreme=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_fe_linear_matches_naive_loops(n, m, w_bits, a_bits, shift, extreme, seed):
    rng = np.random.default_rng(seed)
    psum = fixed.product_sum_bits(n, w_bits, a_bits)
    w, x = rand_ints(rng, w_bits, (m, n), extreme), rand_ints(rng, a_bits, (3, n), extreme)
    bias = rand_ints(rng, psum, (m,), extreme)
    out_fmt = QFormat(a_bits, 5 - shift)
    layer = Layer("fc", "linear", [INPUT], (n,), (m,), activation="relu", weight=np.zeros((m, n)), bias=np.zeros(m))
    lq = LayerQuant("fc", "fe", (2,), out_fmt, acc_bits=fixed.accumulator_bits(n, w_bits, a_bits),
                    w_fmt=QFormat(w_bits, 3), b_fmt=QFormat(psum, 5), weight=w, bias=bias)
    got = golden.fe_forward(_qnet([layer], [lq], (n,), QFormat(a_bits, 2), w_bits, a_bits), x)["fc"]
    ref = [[max(0, rq(sum(int(w[j, i]) * int(x[b, i]) for i in range(n)) + int(bias[j]), shift, a_bits))
            for j in range(m)] for b in range(3)]
    assert got.tolist() == ref


# --- float_forward vs torch ----------------------------------------------------------------------------
def _randomise_bn(bn: nn.BatchNorm2d, gen: torch.Generator) -> None:
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
        bn.running_var.copy_(0.3 + 2.0 * torch.rand(c, generator=gen))
        bn.weight.copy_(0.5 + torch.rand(c, generator=gen))
        bn.bias.copy_(torch.randn(c, generator=gen) * 0.3)


class SmallNet(nn.Module):
    """conv+BN+act [+ residual conv+BN, add, act] [+ pool] + flatten + linear, by flags."""

    def __init__(self, cfg: dict):
        super().__init__()
        c_in, c = cfg["c_in"], cfg["c"]
        groups = c_in if cfg["depthwise"] else 1
        if cfg["depthwise"]:
            c = c_in
        self.conv1 = nn.Conv2d(c_in, c, cfg["k"], stride=cfg["stride"], padding=cfg["pad"], groups=groups,
                               bias=cfg["bias"])
        self.bn1 = nn.BatchNorm2d(c)
        self.act1 = nn.ReLU6() if cfg["relu6"] else nn.ReLU()
        self.residual = cfg["residual"]
        if self.residual:
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.act2 = nn.ReLU()
        self.pool = {"max": lambda: nn.MaxPool2d(cfg["pk"], cfg["ps"], cfg["pp"]),
                     "avg": lambda: nn.AvgPool2d(cfg["pk"], cfg["ps"], cfg["pp"]),
                     "adaptive": lambda: nn.AdaptiveAvgPool2d(cfg["adaptive_out"]),
                     "none": lambda: nn.Identity()}[cfg["pool"]]()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cfg["features"], 3)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        if self.residual:
            y = self.act2(self.bn2(self.conv2(y)) + y)
        return self.fc(self.flatten(self.pool(y)))


@st.composite
def small_nets(draw):
    cfg = dict(c_in=draw(st.integers(1, 3)), c=draw(st.integers(1, 4)), depthwise=draw(st.booleans()),
               k=draw(st.sampled_from([1, 3, 5])), stride=draw(st.sampled_from([1, 2])), bias=draw(st.booleans()),
               relu6=draw(st.booleans()), residual=draw(st.booleans()),
               pool=draw(st.sampled_from(["max", "avg", "adaptive", "none"])), seed=draw(st.integers(0, 2 ** 31)))
    cfg["pad"] = draw(st.integers(0, cfg["k"] // 2))
    h = draw(st.integers(max(2, cfg["k"] - 2 * cfg["pad"]), 9))
    cfg["h"] = h
    s = out_size(h, cfg["k"], cfg["stride"], cfg["pad"])
    if cfg["pool"] in ("max", "avg"):
        cfg["pk"] = draw(st.integers(1, min(3, s + 2)))
        cfg["pp"] = draw(st.integers(0, cfg["pk"] // 2))
        if s + 2 * cfg["pp"] < cfg["pk"]:
            cfg["pp"] = cfg["pk"] // 2
        if s + 2 * cfg["pp"] < cfg["pk"]:
            cfg["pk"], cfg["pp"] = 1, 0
        cfg["ps"] = draw(st.integers(1, 2))
        s = out_size(s, cfg["pk"], cfg["ps"], cfg["pp"])
    elif cfg["pool"] == "adaptive":
        cfg["adaptive_out"] = draw(st.sampled_from([d for d in range(1, s + 1) if s % d == 0]))
        s = cfg["adaptive_out"]
    c = cfg["c_in"] if cfg["depthwise"] else cfg["c"]
    cfg["features"] = c * s * s
    return cfg


@settings(SLOW_OK, max_examples=25)
@given(cfg=small_nets())
def test_float_forward_matches_torch(cfg):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"])
        model = SmallNet(cfg)
        gen = torch.Generator().manual_seed(cfg["seed"])
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                _randomise_bn(mod, gen)
        x = torch.randn(3, cfg["c_in"], cfg["h"], cfg["h"], generator=gen, dtype=torch.float64)
    model.eval()
    network = import_module(model, (cfg["c_in"], cfg["h"], cfg["h"]), "small")
    ops_seen = {layer.op for layer in network.layers}
    if cfg["residual"]:
        assert "add" in ops_seen
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x).numpy()
    got = reference.float_forward(network, x.numpy())[network.layers[-1].name]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


# --- RL engine: a naive training step ------------------------------------------------------------------
def sr_shift(v: int, s: int, r: int) -> int:
    """Stochastic rounding of v / 2^s with LFSR word r, written out."""
    if s <= 0:
        return v * 2 ** (-s)
    term = r % 2 ** s if s <= 16 else r * 2 ** (s - 16)
    return (v + term) // 2 ** s


def _as4(a: np.ndarray) -> np.ndarray:
    return a if a.ndim == 4 else a.reshape(a.shape[0], a.shape[1], 1, 1)


def naive_rl_step(qnet: QuantizedNetwork, state, features, labels, step, lr_shift):
    """FWD, host gradient, BWD_DATA/BWD_WEIGHT/UPDATE, as loops over Python ints."""
    bits = qnet.precision.rl_bits
    names = [layer.name for layer in qnet.network.layers]
    rl = qnet.rl_layers
    acts = {k: np.asarray(v, dtype=np.int64) for k, v in features.items()}
    # FWD
    for layer in rl:
        lq = qnet.layers[layer.name]
        x = acts[layer.inputs[0]]
        if layer.op == "flatten":
            acts[layer.name] = x.reshape(len(x), -1).copy()
            continue
        weight, bias = state[layer.name]
        wm = weight.reshape(weight.shape[0], -1)
        x4 = _as4(x)
        batch, n, h, w = x4.shape
        m = wm.shape[0]
        acc_frac = lq.w_fmt.frac + lq.in_fracs[0]
        assert acc_frac >= lq.b_fmt.frac
        y = np.zeros((batch, m, h, w), dtype=np.int64)
        for b in range(batch):
            for o in range(m):
                for i in range(h):
                    for j in range(w):
                        acc = sum(int(wm[o, t]) * int(x4[b, t, i, j]) for t in range(n))
                        acc += int(bias[o]) * 2 ** (acc_frac - lq.b_fmt.frac)
                        y[b, o, i, j] = apply_act(rq(acc, acc_frac - lq.out_fmt.frac, bits), layer.activation,
                                                  lq.out_fmt)
        acts[layer.name] = y.reshape((batch, m) + x.shape[2:])
    last = qnet.layers[rl[-1].name]
    logits = acts[rl[-1].name].reshape(len(labels), -1)
    grad = fixed.softmax_ce_grad(logits, labels, last.out_fmt.frac, last.grad_fmt).reshape(acts[rl[-1].name].shape)
    out = dict(activations=acts, output_grad=grad.copy(), grad_in={}, grad_w={}, grad_b={}, seeds={},
               update_saturations=0)
    new_state = dict(state)
    first = next(layer.name for layer in rl if layer.has_weights)
    for layer in reversed(rl):
        lq = qnet.layers[layer.name]
        y = acts[layer.name]
        grad = grad.copy()
        for idx in np.ndindex(*grad.shape):
            if not act_mask(int(y[idx]), layer.activation, lq.out_fmt):
                grad[idx] = 0
        x = acts[layer.inputs[0]]
        if layer.op == "flatten":
            grad = grad.reshape(x.shape)
            continue
        weight, bias = state[layer.name]
        wm = weight.reshape(weight.shape[0], -1)
        m, n = wm.shape
        g4, x4 = _as4(grad), _as4(x)
        batch, _, h, w = x4.shape
        positions = [(b, i, j) for b in range(batch) for i in range(h) for j in range(w)]
        g_frac, x_frac = lq.grad_fmt.frac, lq.in_fracs[0]
        if layer.name != first:
            into = qnet.layers[layer.inputs[0]].grad_fmt
            dx = np.zeros((batch, n, h, w), dtype=np.int64)
            for (b, i, j) in positions:
                for t in range(n):
                    acc = sum(int(wm[o, t]) * int(g4[b, o, i, j]) for o in range(m))
                    dx[b, t, i, j] = rq(acc, lq.w_fmt.frac + g_frac - into.frac, bits)
            out["grad_in"][layer.name] = dx.reshape(x.shape)
        dw = np.zeros((m, n), dtype=np.int64)
        db = np.zeros(m, dtype=np.int64)
        for o in range(m):
            for t in range(n):
                acc = sum(int(g4[b, o, i, j]) * int(x4[b, t, i, j]) for (b, i, j) in positions)
                dw[o, t] = rq(acc, g_frac + x_frac - lq.dw_fmt.frac, bits)
            db[o] = rq(sum(int(g4[b, o, i, j]) for (b, i, j) in positions), g_frac - lq.db_fmt.frac, bits)
        seed = fixed.lfsr_seed(step, names.index(layer.name))
        rand = [int(r) for r in fixed.lfsr_sequence(seed, m * n + m)]
        new_w = np.zeros((m, n), dtype=np.int64)
        new_b = np.zeros(m, dtype=np.int64)
        # row-major over [W | b] (the bias is column n), in the RL engine's column order: a linear layer after a
        # retrainable flatten of a map runs as a window over it, its columns tap-major (position, then channel)
        columns = list(range(n))
        src = qnet.network.layer(layer.inputs[0]) if layer.inputs[0] != INPUT else None
        if (layer.op == "linear" and src is not None and src.op == "flatten" and not src.frozen
                and src.inputs[0] != INPUT and not qnet.network.layer(src.inputs[0]).frozen):
            c, hh, ww = src.in_shape
            columns = [ch * hh * ww + p for p in range(hh * ww) for ch in range(c)]
        k = 0
        for o in range(m):
            for t in columns:
                v = int(wm[o, t]) - sr_shift(int(dw[o, t]), lr_shift + lq.dw_fmt.frac - lq.w_fmt.frac, rand[k])
                new_w[o, t] = clamp(v, bits)
                out["update_saturations"] += new_w[o, t] != v
                k += 1
            v = int(bias[o]) - sr_shift(int(db[o]), lr_shift + lq.db_fmt.frac - lq.b_fmt.frac, rand[k])
            new_b[o] = clamp(v, bits)
            out["update_saturations"] += new_b[o] != v
            k += 1
        new_state[layer.name] = (new_w.reshape(weight.shape), new_b)
        out["grad_w"][layer.name], out["grad_b"][layer.name], out["seeds"][layer.name] = dw, db, seed
        if layer.name == first:
            break
        grad = out["grad_in"][layer.name]
    return new_state, out


def _assert_step_equal(qnet, got_state, trace, ref_state, ref):
    assert got_state.keys() == ref_state.keys()
    for name, (w, b) in ref_state.items():
        np.testing.assert_array_equal(got_state[name][0], w, err_msg=f"{name}: weights")
        np.testing.assert_array_equal(got_state[name][1], b, err_msg=f"{name}: bias")
        assert got_state[name][0].shape == w.shape
    for layer in qnet.rl_layers:
        for key in (layer.name, layer.inputs[0]):
            np.testing.assert_array_equal(trace.activations[key], ref["activations"][key], err_msg=f"activation {key}")
    np.testing.assert_array_equal(trace.output_grad, ref["output_grad"])
    for field in ("grad_in", "grad_w", "grad_b"):
        got_d, ref_d = getattr(trace, field), ref[field]
        assert got_d.keys() == ref_d.keys(), field
        for name in ref_d:
            assert got_d[name].shape == ref_d[name].shape, (field, name)
            np.testing.assert_array_equal(got_d[name], ref_d[name], err_msg=f"{field}[{name}]")
    assert trace.seeds == ref["seeds"]


def _run_steps(qnet, features_per_step, labels_per_step, lr_shift=None, state=None, first_step=0,
               require_progress=True):
    """Golden and naive steps side by side, each from its own previous state; returns (state, stats)."""
    state = golden.initial_rl_state(qnet) if state is None else state
    ref_state = {k: (w.copy(), b.copy()) for k, (w, b) in state.items()}
    start = {k: (w.copy(), b.copy()) for k, (w, b) in state.items()}
    shift = qnet.precision.lr_shift if lr_shift is None else lr_shift
    nonzero_grad_in, saturations = False, 0
    for i, (features, labels) in enumerate(zip(features_per_step, labels_per_step)):
        state, trace = golden.rl_train_step(qnet, state, features, labels, first_step + i, lr_shift)
        ref_state, ref = naive_rl_step(qnet, ref_state, features, labels, first_step + i, shift)
        _assert_step_equal(qnet, state, trace, ref_state, ref)
        nonzero_grad_in |= any(np.any(v != 0) for v in trace.grad_in.values())
        saturations += ref["update_saturations"]
    if not require_progress:
        return state, saturations
    # the comparison is not vacuous: weights and biases moved, and gradients flowed back
    assert any(np.any(state[k][0] != start[k][0]) for k in state)
    assert any(np.any(state[k][1] != start[k][1]) for k in state)
    assert nonzero_grad_in
    return state, saturations


def _seeded(factory, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory().eval()


class Head(nn.Module):
    def __init__(self, relu6: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(12, 6)
        self.act = nn.ReLU6() if relu6 else nn.ReLU()
        self.fc2 = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


@pytest.mark.parametrize("relu6,lr_shift", [(False, None), (False, 2), (True, 3)])
def test_rl_train_step_linear_head_bit_exact(relu6, lr_shift):
    network = import_module(_seeded(lambda: Head(relu6)), (12,), "head").with_split(0)
    assert [layer.op for layer in network.retrainable_layers] == ["linear", "linear"]
    rng = np.random.default_rng(1)
    scale = 10.0 if relu6 else 1.0  # relu6: push some fc1 outputs past 6 so the mask's upper edge matters
    calib = rng.normal(0, scale, size=(24, 12))
    qnet = quantize(network, calib, PrecisionConfig(batch=3))
    steps = 4
    xs = [rng.normal(0, scale, size=(3, 12)) for _ in range(steps)]
    features = [{INPUT: golden.quantize_input(qnet, x)} for x in xs]
    labels = [rng.integers(0, 4, size=3) for _ in range(steps)]
    if relu6:
        six = six_int(qnet.layers["fc1"].out_fmt)
        state0 = golden.initial_rl_state(qnet)
        clipped = sum(int((golden.rl_forward(qnet, state0, f)["fc1"] == six).sum()) for f in features)
        assert clipped > 0, "no fc1 output reaches 6: the relu6 mask's upper edge is untested"
    _run_steps(qnet, features, labels, lr_shift)


def test_rl_train_step_saturates_weights_at_the_range_ends():
    # weights and biases start at the ends of the 16-bit range and lr_shift = 0: updates must saturate
    network = import_module(_seeded(Head), (12,), "head").with_split(0)
    rng = np.random.default_rng(5)
    qnet = quantize(network, rng.normal(0, 1, size=(24, 12)), PrecisionConfig(batch=3))
    lo, hi = int_range(qnet.precision.rl_bits)
    state = {name: (rng.choice([lo, hi, lo + 1, hi - 1], size=w.shape).astype(np.int64),
                    rng.choice([lo, hi], size=b.shape).astype(np.int64))
             for name, (w, b) in golden.initial_rl_state(qnet).items()}
    xs = [rng.normal(0, 1, size=(3, 12)) for _ in range(3)]
    features = [{INPUT: golden.quantize_input(qnet, x)} for x in xs]
    labels = [rng.integers(0, 4, size=3) for _ in range(3)]
    _, saturations = _run_steps(qnet, features, labels, lr_shift=0, state=state, first_step=1000)
    assert saturations > 0


class ConvHead(nn.Module):
    """Frozen 3×3 conv, then retrainable 1×1 conv (GEMM over 3×3 positions), flatten, linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pw = nn.Conv2d(4, 5, 1)
        self.relu_pw = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(5 * 3 * 3, 3)

    def forward(self, x):
        return self.fc(self.flatten(self.relu_pw(self.pw(self.relu(self.conv(x))))))


def test_rl_train_step_conv1x1_flatten_linear_bit_exact():
    network = import_module(_seeded(ConvHead, 3), (2, 3, 3), "convhead")
    network = network.with_split(network.index("pw"))
    assert [(layer.name, layer.op, layer.frozen) for layer in network.layers] == [
        ("conv", "conv2d", True), ("pw", "conv2d", False), ("flatten", "flatten", False), ("fc", "linear", False)]
    rng = np.random.default_rng(2)
    qnet = quantize(network, rng.normal(0, 1, size=(16, 2, 3, 3)), PrecisionConfig(batch=2))
    assert qnet.layers["flatten"].grad_fmt == qnet.layers["pw"].grad_fmt
    steps = 3
    xs = [rng.normal(0, 1, size=(2, 2, 3, 3)) for _ in range(steps)]
    features = [golden.fe_forward(qnet, golden.quantize_input(qnet, x)) for x in xs]
    labels = [rng.integers(0, 3, size=2) for _ in range(steps)]
    state, _ = _run_steps(qnet, features, labels, lr_shift=3)
    assert state["pw"][0].shape == (5, 4, 1, 1)


@settings(SLOW_OK, max_examples=15)
@given(n=st.integers(1, 6), hidden=st.integers(1, 6), classes=st.integers(2, 5), batch=st.integers(1, 4),
       hw=st.integers(1, 3), activation=st.sampled_from([None, "relu", "relu6"]), lr_shift=st.integers(0, 9),
       rl_bits=st.sampled_from([8, 12, 16, 20]), seed=st.integers(0, 2 ** 32 - 1))
def test_rl_train_step_random_heads_bit_exact(n, hidden, classes, batch, hw, activation, lr_shift, rl_bits, seed):
    # 1×1 conv over hw×hw positions → flatten → linear, every layer retrainable, random widths
    rng = np.random.default_rng(seed)
    feat = hidden * hw * hw
    layers = [
        Layer("pw", "conv2d", [INPUT], (n, hw, hw), (hidden, hw, hw), activation=activation, frozen=False,
              weight=rng.normal(0, 1, (hidden, n, 1, 1)), bias=rng.normal(0, 0.5, hidden)),
        Layer("flat", "flatten", ["pw"], (hidden, hw, hw), (feat,), frozen=False),
        Layer("fc", "linear", ["flat"], (feat,), (classes,), frozen=False,
              weight=rng.normal(0, 1 / math.sqrt(feat), (classes, feat)), bias=rng.normal(0, 0.5, classes)),
    ]
    network = Network("rand", (n, hw, hw), layers)
    qnet = quantize(network, rng.normal(0, 2, (8, n, hw, hw)), PrecisionConfig(rl_bits=rl_bits, batch=batch))
    xs = [rng.normal(0, 2, (batch, n, hw, hw)) for _ in range(2)]
    features = [{INPUT: golden.quantize_input(qnet, x)} for x in xs]
    labels = [rng.integers(0, classes, size=batch) for _ in range(2)]
    _run_steps(qnet, features, labels, lr_shift, first_step=seed % 1000, require_progress=False)


def test_float_rl_train_step_matches_torch_sgd():
    torch_head = _seeded(Head, 7)
    network = import_module(torch_head, (12,), "head").with_split(0)
    params = reference.initial_float_params(network)
    rng = np.random.default_rng(7)
    ref = copy.deepcopy(torch_head).double()
    opt = torch.optim.SGD(ref.parameters(), lr=2.0 ** -3)
    for _ in range(3):
        x, labels = rng.normal(0, 1, (5, 12)), rng.integers(0, 4, size=5)
        params = reference.float_rl_train_step(network, params, {INPUT: x}, labels, 2.0 ** -3)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(labels), reduction="sum")
        loss.backward()
        opt.step()
    for name in ("fc1", "fc2"):
        mod = getattr(ref, name)
        np.testing.assert_allclose(params[name][0], mod.weight.detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(params[name][1], mod.bias.detach().numpy(), rtol=0, atol=1e-12)
    assert not np.allclose(params["fc2"][0], torch_head.fc2.weight.detach().double().numpy())


# --- fixed-point gradients track float -----------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_setup():
    from dtlgen.model.digits_task import load_digits_task

    task = load_digits_task()
    network = load_model("digits_cnn")
    precision = PrecisionConfig(batch=16)
    calib_x, calib_y = task.retrain_x[:128], task.retrain_y[:128]
    qnet = quantize(network, calib_x, precision, calib_labels=calib_y)
    return task, network, qnet


def test_fixed_point_gradients_track_float(digits_setup):
    task, network, qnet = digits_setup
    state = golden.initial_rl_state(qnet)
    rl = qnet.rl_layers
    first_input = rl[0].inputs[0]
    for start in (200, 216, 232):
        x, labels = task.retrain_x[start:start + 16], task.retrain_y[start:start + 16]
        features = golden.fe_forward(qnet, golden.quantize_input(qnet, x))
        new_state, trace = golden.rl_train_step(qnet, state, features, labels, step=start)
        # the float backward on the same activations and the same (dequantised) weights
        acts = {first_input: fixed.to_float(features[first_input], qnet.fmt_of(first_input).frac)}
        for layer in rl:
            acts[layer.name] = fixed.to_float(trace.activations[layer.name], qnet.layers[layer.name].out_fmt.frac)
        params = {name: (fixed.to_float(w, qnet.layers[name].w_fmt.frac), fixed.to_float(b, qnet.layers[name].b_fmt.frac))
                  for name, (w, b) in state.items()}
        ref = reference.float_backward(network, params, acts, labels)
        for layer in rl:
            if not layer.has_weights:
                continue
            lq = qnet.layers[layer.name]
            for kind, got, frac in (("dw", trace.grad_w[layer.name], lq.dw_fmt.frac),
                                    ("db", trace.grad_b[layer.name], lq.db_fmt.frac)):
                q = fixed.to_float(got, frac)
                f = ref[layer.name][kind].reshape(q.shape)
                assert np.abs(q).max() > 0
                rel = np.linalg.norm(q - f) / np.linalg.norm(f)
                assert rel <= 0.01, f"{layer.name} {kind}: relative error {rel:.4f}"
                assert np.dot(q.ravel(), f.ravel()) > 0.999 * np.linalg.norm(q) * np.linalg.norm(f)
        state = new_state


# --- quantize rejects what the RL engine cannot train ---------------------------------------------
def test_quantize_rejects_a_pool_no_gradient_reaches_and_admits_pools_after_a_trained_layer():
    calib = np.random.default_rng(0).random((4, 1, 8, 8))
    with pytest.raises(UnsupportedLayerError, match="'pool4' .*before the first trained layer"):
        quantize(load_model("digits_cnn", split="pool4"), calib)
    for split, pools in (("conv4", ["pool4"]), ("conv1", ["pool2", "pool4"])):
        qnet = quantize(load_model("digits_cnn", split=split), calib)
        assert [layer.name for layer in qnet.rl_layers if layer.op == "maxpool"] == pools


def test_quantize_rejects_grouped_conv_retrainable():
    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.gc = nn.Conv2d(2, 4, 3, padding=1, groups=2)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(4 * 4 * 4, 2)

        def forward(self, x):
            return self.fc(self.flatten(self.gc(x)))

    network = import_module(_seeded(Grouped), (2, 4, 4), "grouped").with_split(0)
    with pytest.raises(UnsupportedLayerError, match="'gc'.*groups 2.*dense conv"):
        quantize(network, np.zeros((2, 2, 4, 4)))


@pytest.mark.parametrize("batch", [0, -1, 2.0, None])
def test_precision_config_rejects_bad_batch(batch):
    with pytest.raises(DesignError, match="batch"):
        PrecisionConfig(batch=batch)


@pytest.mark.parametrize("field,value", [("w_bits", 1), ("a_bits", 17), ("rl_bits", 3), ("rl_bits", 25),
                                         ("lr_shift", -1)])
def test_precision_config_rejects_out_of_range_widths(field, value):
    with pytest.raises(DesignError, match=field):
        PrecisionConfig(**{field: value})
