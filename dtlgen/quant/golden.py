"""Golden model: the float reference and the bit-true integer model of both engines.

- `float_forward`: float64 numpy evaluation of the IR (checks the importer against torch).
- `fe_forward` / `hybrid_forward`: integer FE inference (every IR op) and the RL forward pass.
- `rl_train_step`: one on-device training step of the retrainable layers, in the order the RL
  engine runs its descriptors: FWD per layer; host softmax-cross-entropy gradient; then per layer
  from the last: BWD_DATA (not for the first retrainable layer), BWD_WEIGHT summed over the batch,
  UPDATE with LFSR stochastic rounding over [W | b] row-major.
- `float_rl_train_step`: the same step in float64, the baseline that fixed point is held against.

Every rounding and saturation rule comes from `dtlgen.quant.fixed`; this module only orders them.
Arrays are NCHW (feature maps) or (B, F) (vectors), batch first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dtlgen.model.ir import INPUT, Layer, Network
from dtlgen.quant import fixed, ops
from dtlgen.quant.fixed import QFormat
from dtlgen.quant.quantize import LayerQuant, QuantizedNetwork

RLState = dict[str, tuple[np.ndarray, np.ndarray]]  # layer name -> (weight, bias) integers
FloatParams = dict[str, tuple[np.ndarray, np.ndarray]]


# --- float reference ----------------------------------------------------------------------------
def float_forward(network: Network, x: np.ndarray, params: FloatParams | None = None,
                  layers: list[Layer] | None = None, values: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every layer's float64 output. `params` overrides weights; `layers`/`values` run a part."""
    values = dict(values) if values is not None else {INPUT: np.asarray(x, dtype=np.float64)}
    for layer in network.layers if layers is None else layers:
        weight, bias = (params or {}).get(layer.name, (layer.weight, layer.bias))
        values[layer.name] = _float_layer(layer, [values[name] for name in layer.inputs], weight, bias)
    return values


def _float_layer(layer: Layer, inputs: list[np.ndarray], weight, bias) -> np.ndarray:
    x = inputs[0]
    if layer.op == "conv2d":
        y = ops.conv2d(x, weight, layer.stride, layer.padding, layer.groups, ops.float_matmul)
        y = y + bias.reshape(1, -1, 1, 1)
    elif layer.op == "linear":
        y = ops.linear(x, weight, ops.float_matmul) + bias
    elif layer.op == "maxpool":
        y = ops.max_pool(x, layer.kernel, layer.stride, layer.padding, -np.inf)
    elif layer.op == "avgpool":
        y = ops.sum_pool(x, layer.kernel, layer.stride, layer.padding) / (layer.kernel * layer.kernel)
    elif layer.op == "add":
        y = inputs[0] + inputs[1]
    elif layer.op == "flatten":
        y = x.reshape(len(x), -1)
    else:
        raise ValueError(f"unknown op {layer.op}")
    if layer.activation == "relu":
        y = np.maximum(y, 0.0)
    elif layer.activation == "relu6":
        y = np.clip(y, 0.0, 6.0)
    return y


# --- integer FE inference ----------------------------------------------------------------------
def quantize_input(qnet: QuantizedNetwork, x: np.ndarray) -> np.ndarray:
    return fixed.to_fixed(x, qnet.input_fmt)


def fe_forward(qnet: QuantizedNetwork, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Integer outputs of every frozen layer for an already quantised input batch."""
    values = {INPUT: np.asarray(x_int, dtype=np.int64)}
    for layer in qnet.fe_layers:
        values[layer.name] = _fe_layer(layer, qnet.layers[layer.name], [values[n] for n in layer.inputs], qnet)
    return values


def _fe_layer(layer: Layer, lq: LayerQuant, inputs: list[np.ndarray], qnet: QuantizedNetwork) -> np.ndarray:
    bits = lq.out_fmt.bits
    x = inputs[0]
    matmul = _exact(lq.acc_bits)
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
    elif layer.op == "flatten":
        y = x.reshape(len(x), -1)
    else:
        raise ValueError(f"unknown op {layer.op}")
    return _activation(y, layer.activation, lq.out_fmt)


def _activation(y: np.ndarray, activation: str | None, fmt: QFormat) -> np.ndarray:
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "relu6":
        return np.clip(y, 0, _six(fmt))
    return y


def _activation_mask(y: np.ndarray, activation: str | None, fmt: QFormat) -> np.ndarray | None:
    """relu'(x) of a layer's quantised output: 1 where the activation passed the value through."""
    if activation == "relu":
        return y > 0
    if activation == "relu6":
        return (y > 0) & (y < _six(fmt))
    return None


def _six(fmt: QFormat) -> int:
    return int(fixed.to_fixed(6.0, fmt))


def _exact(bound_bits: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda a, b: fixed.exact_matmul(a, b, bound_bits)


# --- RL engine: GEMM views ---------------------------------------------------------------------
def _rows(x: np.ndarray) -> np.ndarray:
    """(B, N) stays; (B, N, H, W) → (B·H·W, N): a 1×1 conv is a GEMM over positions."""
    return x if x.ndim == 2 else x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _unrows(rows: np.ndarray, like: tuple[int, ...]) -> np.ndarray:
    if len(like) == 2:
        return rows
    b, _, h, w = like
    return rows.reshape(b, h, w, -1).transpose(0, 3, 1, 2)


def _matrix(weight: np.ndarray) -> np.ndarray:
    return weight.reshape(weight.shape[0], -1)


def initial_rl_state(qnet: QuantizedNetwork) -> RLState:
    return {layer.name: (qnet.layers[layer.name].weight.copy(), qnet.layers[layer.name].bias.copy())
            for layer in qnet.rl_layers if layer.has_weights}


def rl_forward(qnet: QuantizedNetwork, state: RLState, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """FWD descriptors: integer outputs of every retrainable layer given the FE outputs it reads."""
    values = dict(features)
    bits = qnet.precision.rl_bits
    for layer in qnet.rl_layers:
        lq = qnet.layers[layer.name]
        x = values[layer.inputs[0]]
        if layer.op == "flatten":
            values[layer.name] = x.reshape(len(x), -1)
            continue
        weight, bias = state[layer.name]
        acc = fixed.exact_matmul(_rows(x), _matrix(weight).T, lq.acc_bits) + fixed.align(bias, lq.b_fmt.frac, lq.acc_frac)
        y = fixed.requantise(acc, lq.out_shift, bits)
        values[layer.name] = _activation(_unrows(y, x.shape), layer.activation, lq.out_fmt)
    return values


def hybrid_forward(qnet: QuantizedNetwork, x: np.ndarray, state: RLState | None = None) -> np.ndarray:
    """Float input batch → integer logits of the whole hybrid network (FE then RL engine)."""
    values = fe_forward(qnet, quantize_input(qnet, x))
    if qnet.rl_layers:
        values = rl_forward(qnet, state or initial_rl_state(qnet), values)
    return values[qnet.network.layers[-1].name]


def output_frac(qnet: QuantizedNetwork) -> int:
    return qnet.layers[qnet.network.layers[-1].name].out_fmt.frac


# --- RL engine: one training step ---------------------------------------------------------------
@dataclass
class StepTrace:
    """What one training step computed, by layer, for bit-exact comparison with hardware."""

    activations: dict[str, np.ndarray]
    output_grad: np.ndarray  # host softmax-CE gradient
    grad_in: dict[str, np.ndarray]  # BWD_DATA results (gradient w.r.t. the layer's input)
    grad_w: dict[str, np.ndarray]
    grad_b: dict[str, np.ndarray]
    seeds: dict[str, int]


def rl_train_step(qnet: QuantizedNetwork, state: RLState, features: dict[str, np.ndarray],
                  labels: np.ndarray, step: int, lr_shift: int | None = None) -> tuple[RLState, StepTrace]:
    """One mini-batch: FWD, host gradient, BWD_DATA/BWD_WEIGHT/UPDATE per layer from the last.

    `lr_shift` (default: the precision's) is the UPDATE descriptor's shift, so a host can decay it.
    """
    p = qnet.precision
    lr_shift = p.lr_shift if lr_shift is None else lr_shift
    bits = p.rl_bits
    rl_layers = qnet.rl_layers
    acts = rl_forward(qnet, state, features)
    last = rl_layers[-1]
    logits = acts[last.name].reshape(len(labels), -1)
    grad = fixed.softmax_ce_grad(logits, labels, qnet.layers[last.name].out_fmt.frac, qnet.layers[last.name].grad_fmt)
    grad = grad.reshape(acts[last.name].shape)
    trace = StepTrace(acts, grad, {}, {}, {}, {})
    new_state = dict(state)
    first_trained = next(layer.name for layer in rl_layers if layer.has_weights)
    for layer in reversed(rl_layers):
        lq = qnet.layers[layer.name]
        mask = _activation_mask(acts[layer.name], layer.activation, lq.out_fmt)
        if mask is not None:
            grad = np.where(mask, grad, 0)
        x = acts[layer.inputs[0]]
        if layer.op == "flatten":
            grad = grad.reshape(x.shape)
            continue
        weight, bias = state[layer.name]
        w, g, xr = _matrix(weight), _rows(grad), _rows(x)
        g_frac, x_frac = lq.grad_fmt.frac, lq.in_fracs[0]
        if layer.name != first_trained:  # BWD_DATA: gradient w.r.t. the input, in its producer's format
            into = qnet.layers[layer.inputs[0]].grad_fmt
            dx = fixed.requantise(fixed.exact_matmul(g, w, lq.acc_bits), lq.w_fmt.frac + g_frac - into.frac, bits)
            trace.grad_in[layer.name] = _unrows(dx, x.shape)
        # BWD_WEIGHT, summed over the batch (and positions of a 1×1 conv)
        dw = fixed.requantise(fixed.exact_matmul(g.T, xr, lq.acc_bits), g_frac + x_frac - lq.dw_fmt.frac, bits)
        db = fixed.requantise(g.sum(axis=0), g_frac - lq.db_fmt.frac, bits)
        # UPDATE: W -= 2^-lr_shift dW, stochastic rounding, LFSR over [W | b] row-major (b is column N)
        seed = fixed.lfsr_seed(step, qnet.network.index(layer.name))
        rand = fixed.lfsr_sequence(seed, w.size + bias.size).reshape(w.shape[0], w.shape[1] + 1)
        dw_step = fixed.stochastic_round_shift(dw, lr_shift + lq.dw_fmt.frac - lq.w_fmt.frac, rand[:, :-1])
        db_step = fixed.stochastic_round_shift(db, lr_shift + lq.db_fmt.frac - lq.b_fmt.frac, rand[:, -1])
        new_state[layer.name] = (fixed.saturate(w - dw_step, bits).reshape(weight.shape),
                                 fixed.saturate(bias - db_step, bits))
        trace.grad_w[layer.name], trace.grad_b[layer.name], trace.seeds[layer.name] = dw, db, seed
        if layer.name != first_trained:
            grad = trace.grad_in[layer.name]
        else:
            break
    return new_state, trace


# --- float training baseline -------------------------------------------------------------------
def initial_float_params(network: Network) -> FloatParams:
    return {layer.name: (layer.weight.copy(), layer.bias.copy())
            for layer in network.retrainable_layers if layer.has_weights}


def _float_backward(network: Network, params: FloatParams, acts: dict[str, np.ndarray],
                    labels: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Batch-summed gradients of softmax-CE for every retrainable layer: dy (w.r.t. output), dw, db."""
    rl_layers = network.retrainable_layers
    last = rl_layers[-1]
    logits = acts[last.name].reshape(len(labels), -1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    grad = e / e.sum(axis=1, keepdims=True)
    grad[np.arange(len(labels)), labels] -= 1.0
    grad = grad.reshape(acts[last.name].shape)
    out: dict[str, dict[str, np.ndarray]] = {}
    first_trained = next(layer.name for layer in rl_layers if layer.has_weights)
    for layer in reversed(rl_layers):
        out[layer.name] = {"dy": grad}
        y = acts[layer.name]
        if layer.activation == "relu":
            grad = grad * (y > 0)
        elif layer.activation == "relu6":
            grad = grad * ((y > 0) & (y < 6))
        x = acts[layer.inputs[0]]
        if layer.op == "flatten":
            grad = grad.reshape(x.shape)
            continue
        w = _matrix(params[layer.name][0])
        g, xr = _rows(grad), _rows(x)
        out[layer.name].update(dw=g.T @ xr, db=g.sum(axis=0))
        if layer.name == first_trained:
            break
        grad = _unrows(g @ w, x.shape)
    return out


def float_rl_gradients(network: Network, acts: dict[str, np.ndarray], labels: np.ndarray,
                       batch: int) -> dict[str, dict[str, float]]:
    """Largest |gradient| per retrainable layer and kind over calibration batches (for formats)."""
    params = initial_float_params(network)
    peak: dict[str, dict[str, float]] = {}
    for start in range(0, len(labels), batch):
        part = {k: v[start:start + batch] for k, v in acts.items()}
        for name, grads in _float_backward(network, params, part, labels[start:start + batch]).items():
            slot = peak.setdefault(name, {"dy": 0.0, "dw": 0.0, "db": 0.0})
            for kind, value in grads.items():
                slot[kind] = max(slot[kind], float(np.max(np.abs(value))) if value.size else 0.0)
    return peak


def float_rl_train_step(network: Network, params: FloatParams, features: dict[str, np.ndarray],
                        labels: np.ndarray, lr: float) -> FloatParams:
    """SGD on the batch-summed loss with learning rate `lr` (2^-lr_shift for the fixed-point twin)."""
    acts = float_forward(network, None, params, network.retrainable_layers, features)
    grads = _float_backward(network, params, acts, labels)
    new = dict(params)
    for name, (w, b) in params.items():
        new[name] = (w - lr * grads[name]["dw"].reshape(w.shape), b - lr * grads[name]["db"])
    return new
