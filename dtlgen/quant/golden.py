"""Golden model: the bit-true integer model of both engines (the float reference they are held
against is `dtlgen.quant.reference`).

- `fe_forward` / `hybrid_forward`: integer FE inference (every IR op) and the RL forward pass.
- `rl_train_step`: one on-device training step of the retrainable layers, in the order the RL
  engine runs its descriptors: FWD per layer; host softmax-cross-entropy gradient; then per layer
  from the last: BWD_DATA (not for the first trained layer), BWD_WEIGHT summed over the batch,
  UPDATE with LFSR stochastic rounding over [W | b] row-major (a layer with `trained` False: no
  BWD_WEIGHT or UPDATE). A linear layer after a retrainable flatten of a map (`ir.flattened_map`) trains as
  the RL engine runs it: a conv whose kernel covers the map (its [W | b] tap-major). A K×K conv is a GEMM over tap-major windows (`dtlgen.quant.ops.im2col_rows`):
  BWD_DATA sums each window's products back onto the input (`col2im_rows`) before requantising; a
  max-pool routes each window's gradient to its first maximum.

Every rounding and saturation rule comes from `dtlgen.quant.fixed`; this module only orders them.
Arrays are NCHW (feature maps) or (B, F) (vectors), batch first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dtlgen.model.ir import INPUT, Layer, first_trained_layer, flattened_map
from dtlgen.model.ops import op_of
from dtlgen.quant import fixed, ops
from dtlgen.quant.fixed import QFormat
from dtlgen.quant.quantize import LayerQuant, QuantizedNetwork

RLState = dict[str, tuple[np.ndarray, np.ndarray]]  # layer name -> (weight, bias) integers


# --- integer FE inference ----------------------------------------------------------------------
def quantize_input(qnet: QuantizedNetwork, x: np.ndarray) -> np.ndarray:
    return fixed.to_fixed(x, qnet.input_fmt)


def fe_output(qnet: QuantizedNetwork, x_int: np.ndarray, name: str, chunk: int = 8) -> np.ndarray:
    """Layer `name`'s integer outputs (INPUT: the input itself) for a quantised batch, `chunk` samples at
    a time: fe_forward keeps every layer's outputs, gigabytes for a few dozen 224x224 images."""
    x_int = np.asarray(x_int, dtype=np.int64)
    if name == INPUT:
        return x_int
    return np.concatenate([fe_forward(qnet, x_int[i:i + chunk])[name] for i in range(0, len(x_int), chunk)])


def fe_forward(qnet: QuantizedNetwork, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Integer outputs of every frozen layer for an already quantised input batch."""
    values = {INPUT: np.asarray(x_int, dtype=np.int64)}
    for layer in qnet.fe_layers:
        values[layer.name] = _fe_layer(layer, qnet.layers[layer.name], [values[n] for n in layer.inputs], qnet)
    return values


def _fe_layer(layer: Layer, lq: LayerQuant, inputs: list[np.ndarray], qnet: QuantizedNetwork) -> np.ndarray:
    y = op_of(layer).golden(layer, lq, inputs, fixed, ops)  # the op's step: dtlgen.model.ops
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


# --- RL engine -------------------------------------------------------------------------------
def initial_rl_state(qnet: QuantizedNetwork) -> RLState:
    return {layer.name: (qnet.layers[layer.name].weight.copy(), qnet.layers[layer.name].bias.copy())
            for layer in qnet.rl_layers if layer.has_weights}


def rl_masks(qnet: QuantizedNetwork) -> dict[str, np.ndarray] | None:
    """The retrainable layers' pruning masks (`Layer.mask`), or None for a network that was not pruned."""
    masks = {layer.name: layer.mask for layer in qnet.rl_layers if layer.mask is not None}
    return masks or None


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
        if layer.op == "maxpool":
            y = ops.max_pool(x, layer.kernel, layer.stride, layer.padding, lq.out_fmt.min_int)
            values[layer.name] = _activation(y, layer.activation, lq.out_fmt)
            continue
        weight, bias = state[layer.name]
        acc = (fixed.exact_matmul(ops.im2col_rows(x, layer.kernel, layer.stride, layer.padding),
                                  ops.rl_weight_matrix(weight).T, lq.acc_bits)
               + fixed.align(bias, lq.b_fmt.frac, lq.acc_frac))
        y = fixed.requantise(acc, lq.out_shift, bits)
        values[layer.name] = _activation(ops.from_gemm_rows(y, (len(x), *layer.out_shape)), layer.activation,
                                         lq.out_fmt)
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
    output_grad: np.ndarray  # the host's gradient (softmax-CE, or distillation)
    grad_in: dict[str, np.ndarray]  # BWD_DATA results (gradient w.r.t. the layer's input)
    grad_w: dict[str, np.ndarray]
    grad_b: dict[str, np.ndarray]
    seeds: dict[str, int]


def rl_train_step(qnet: QuantizedNetwork, state: RLState, features: dict[str, np.ndarray],
                  labels: np.ndarray, step: int, lr_shift: int | None = None, teacher: np.ndarray | None = None,
                  kd: fixed.Distillation | None = None,
                  masks: dict[str, np.ndarray] | None = None) -> tuple[RLState, StepTrace]:
    """One mini-batch: FWD, host gradient, BWD_DATA/BWD_WEIGHT/UPDATE per layer from the last.

    `lr_shift` (default: the precision's) is the UPDATE descriptor's shift, so a host can decay it.
    With `teacher` (the batch's teacher logits in the last layer's output format) and `kd`, the host's
    gradient is the distillation one (`fixed.distillation_grad`), else softmax cross-entropy.
    With pruning `masks` (layer -> weight shape, 0 where pruned), the UPDATE writes 0 where a mask is 0;
    every element still consumes its random number, as in the engine.
    """
    p = qnet.precision
    lr_shift = p.lr_shift if lr_shift is None else lr_shift
    bits = p.rl_bits
    rl_layers = qnet.rl_layers
    acts = rl_forward(qnet, state, features)
    last = rl_layers[-1]
    logits = acts[last.name].reshape(len(labels), -1)
    last_q = qnet.layers[last.name]
    if teacher is not None and kd is not None:
        grad = fixed.distillation_grad(logits, labels, np.asarray(teacher).reshape(logits.shape), last_q.out_fmt.frac,
                                       last_q.grad_fmt, kd)
    else:
        grad = fixed.softmax_ce_grad(logits, labels, last_q.out_fmt.frac, last_q.grad_fmt)
    grad = grad.reshape(acts[last.name].shape)
    trace = StepTrace(acts, grad, {}, {}, {}, {})
    new_state = dict(state)
    first_trained = first_trained_layer(rl_layers)
    for layer in reversed(rl_layers):
        lq = qnet.layers[layer.name]
        mask = _activation_mask(acts[layer.name], layer.activation, lq.out_fmt)
        if mask is not None:
            grad = np.where(mask, grad, 0)
        x = acts[layer.inputs[0]]
        if layer.op == "flatten":
            grad = grad.reshape(x.shape)
            continue
        if layer.op == "maxpool":  # the gradient goes to each window's first maximum, in the same format
            # (padding below every value of the format: a window's first maximum is never in its padding)
            grad = ops.max_pool_backward(x, grad, layer.kernel, layer.stride, layer.padding, lq.out_fmt.min_int - 1)
            continue
        weight, bias = state[layer.name]
        window = (layer.kernel, layer.stride, layer.padding)
        source_map = flattened_map(qnet.network, layer)
        if source_map is not None:  # the RL engine runs it as a conv whose kernel covers the whole map
            x, weight = x.reshape(len(x), *source_map), weight.reshape(layer.m, *source_map)
            window = (source_map[1], 1, 0)
        w, g = ops.rl_weight_matrix(weight), ops.gemm_rows(grad)
        g_frac, x_frac = lq.grad_fmt.frac, lq.in_fracs[0]
        if layer.name != first_trained:  # BWD_DATA: gradient w.r.t. the input, in its producer's format
            into = qnet.layers[layer.inputs[0]].grad_fmt
            dx = ops.col2im_rows(fixed.exact_matmul(g, w, lq.acc_bits), x.shape, *window)
            trace.grad_in[layer.name] = fixed.requantise(dx, lq.w_fmt.frac + g_frac - into.frac,
                                                         bits).reshape(acts[layer.inputs[0]].shape)
        if layer.trained:
            # BWD_WEIGHT, summed over the batch (and output positions of a conv)
            xr = ops.im2col_rows(x, *window)
            dw = fixed.requantise(fixed.exact_matmul(g.T, xr, lq.acc_bits), g_frac + x_frac - lq.dw_fmt.frac, bits)
            db = fixed.requantise(g.sum(axis=0), g_frac - lq.db_fmt.frac, bits)
            # UPDATE: W -= 2^-lr_shift dW, stochastic rounding, LFSR over [W | b] row-major (b is column N)
            seed = fixed.lfsr_seed(step, qnet.network.index(layer.name))
            rand = fixed.lfsr_sequence(seed, w.size + bias.size).reshape(w.shape[0], w.shape[1] + 1)
            dw_step = fixed.stochastic_round_shift(dw, lr_shift + lq.dw_fmt.frac - lq.w_fmt.frac, rand[:, :-1])
            db_step = fixed.stochastic_round_shift(db, lr_shift + lq.db_fmt.frac - lq.b_fmt.frac, rand[:, -1])
            new_w = fixed.saturate(w - dw_step, bits)
            if masks is not None and layer.name in masks:
                new_w = np.where(ops.rl_weight_matrix(np.asarray(masks[layer.name]).reshape(weight.shape)) != 0,
                                 new_w, 0)
            layer_shape = state[layer.name][0].shape
            new_state[layer.name] = (ops.from_rl_weight_matrix(new_w, weight.shape).reshape(layer_shape),
                                     fixed.saturate(bias - db_step, bits))
            if source_map is not None:  # dW in the layer's own column order
                dw = ops.from_rl_weight_matrix(dw, weight.shape).reshape(layer_shape)
            trace.grad_w[layer.name], trace.grad_b[layer.name], trace.seeds[layer.name] = dw, db, seed
        if layer.name == first_trained:
            break
        grad = trace.grad_in[layer.name]
    return new_state, trace
