"""The float reference: float64 numpy evaluation of the IR, and the float training step of the
retrainable layers that fixed point is held against.

- `float_forward`: every layer's output (checks the importer against torch; calibrates formats).
- `float_rl_gradients`: the largest gradients of the retrainable layers (their formats).
- `float_rl_train_step`: one SGD step on the batch-summed softmax cross-entropy.

It reads the IR and the shared tensor kernels (`dtlgen.quant.ops`) only: calibration
(`dtlgen.quant.quantize`) runs it before any quantised network exists, and the integer golden model
(`dtlgen.quant.golden`) never needs it.
"""

from __future__ import annotations

import numpy as np

from dtlgen.model.ir import INPUT, Layer, Network, first_trained_layer
from dtlgen.model.ops import op_of
from dtlgen.quant import ops

FloatParams = dict[str, tuple[np.ndarray, np.ndarray]]


def float_forward(network: Network, x: np.ndarray, params: FloatParams | None = None,
                  layers: list[Layer] | None = None, values: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every layer's float64 output. `params` overrides weights; `layers`/`values` run a part."""
    values = dict(values) if values is not None else {INPUT: np.asarray(x, dtype=np.float64)}
    for layer in network.layers if layers is None else layers:
        weight, bias = (params or {}).get(layer.name, (layer.weight, layer.bias))
        values[layer.name] = _float_layer(layer, [values[name] for name in layer.inputs], weight, bias)
    return values


def _float_layer(layer: Layer, inputs: list[np.ndarray], weight, bias) -> np.ndarray:
    y = op_of(layer).reference(layer, inputs, weight, bias, ops)  # the op's step: dtlgen.model.ops
    if layer.activation == "relu":
        y = np.maximum(y, 0.0)
    elif layer.activation == "relu6":
        y = np.clip(y, 0.0, 6.0)
    return y


# --- float training baseline -------------------------------------------------------------------
def initial_float_params(network: Network) -> FloatParams:
    return {layer.name: (layer.weight.copy(), layer.bias.copy())
            for layer in network.retrainable_layers if layer.has_weights}


def float_backward(network: Network, params: FloatParams, acts: dict[str, np.ndarray],
                   labels: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Batch-summed gradients of softmax-CE for every retrainable layer: dy (w.r.t. output), dw (the weight's
    shape), db; a K×K conv's through the tap-major GEMM of `dtlgen.quant.ops`, a max-pool's to each window's
    first maximum. Gradients stop at the first layer whose weights train."""
    rl_layers = network.retrainable_layers
    last = rl_layers[-1]
    logits = acts[last.name].reshape(len(labels), -1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    grad = e / e.sum(axis=1, keepdims=True)
    grad[np.arange(len(labels)), labels] -= 1.0
    grad = grad.reshape(acts[last.name].shape)
    out: dict[str, dict[str, np.ndarray]] = {}
    first_trained = first_trained_layer(rl_layers)
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
        if layer.op == "maxpool":
            grad = ops.max_pool_backward(x, grad, layer.kernel, layer.stride, layer.padding, -np.inf)
            continue
        window = (layer.kernel, layer.stride, layer.padding)
        w = ops.rl_weight_matrix(params[layer.name][0])
        g = ops.gemm_rows(grad)
        dw = ops.from_rl_weight_matrix(g.T @ ops.im2col_rows(x, *window), params[layer.name][0].shape)
        out[layer.name].update(dw=dw, db=g.sum(axis=0))
        if layer.name == first_trained:
            break
        grad = ops.col2im_rows(g @ w, x.shape, *window)
    return out


def float_rl_gradients(network: Network, acts: dict[str, np.ndarray], labels: np.ndarray,
                       batch: int) -> dict[str, dict[str, float]]:
    """Largest |gradient| per retrainable layer and kind over calibration batches (for formats)."""
    params = initial_float_params(network)
    peak: dict[str, dict[str, float]] = {}
    for start in range(0, len(labels), batch):
        part = {k: v[start:start + batch] for k, v in acts.items()}
        for name, grads in float_backward(network, params, part, labels[start:start + batch]).items():
            slot = peak.setdefault(name, {"dy": 0.0, "dw": 0.0, "db": 0.0})
            for kind, value in grads.items():
                slot[kind] = max(slot[kind], float(np.max(np.abs(value))) if value.size else 0.0)
    return peak


def float_rl_train_step(network: Network, params: FloatParams, features: dict[str, np.ndarray],
                        labels: np.ndarray, lr: float) -> FloatParams:
    """SGD on the batch-summed loss with learning rate `lr` (2^-lr_shift for the fixed-point twin)."""
    acts = float_forward(network, None, params, network.retrainable_layers, features)
    grads = float_backward(network, params, acts, labels)
    new = dict(params)
    for name, (w, b) in params.items():
        if network.layer(name).trained:
            new[name] = (w - lr * grads[name]["dw"].reshape(w.shape), b - lr * grads[name]["db"])
    return new
