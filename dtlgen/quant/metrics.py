"""Information-loss metrics and model-size accounting of a hybrid-precision network.

- Feature SQNR (dB): the FE output of the integer golden model against the float reference.
- Logit KL: KL(float softmax ‖ hybrid fixed-point softmax), mean over samples, in nats.
- Size: bytes of all weights and biases as fp32, as uniform 16-bit, and as hybrid
  (FE weights at w_bits and biases at their stored width, RL tensors at rl_bits; a seeded conv's
  generated weights at their own width and its channel scales at theirs).
- Transmitted bytes (`transmitted_bytes`): what sends a model whose seeded convs are regenerated from
  their seeds (issue 18, ReFrame): the seeds, and every learnable tensor at its stored width.
"""

from __future__ import annotations

import math

import numpy as np

from dtlgen.isa import seeded as isa_seeded
from dtlgen.quant import fixed
from dtlgen.quant.golden import fe_forward, initial_rl_state, output_frac, quantize_input, rl_forward
from dtlgen.quant.reference import float_forward
from dtlgen.quant.quantize import QuantizedNetwork


def sqnr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    noise = float(np.sum((reference - approximation) ** 2))
    signal = float(np.sum(reference ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def info_loss(qnet: QuantizedNetwork, x: np.ndarray, reference: dict[str, np.ndarray] | None = None,
              fe_values: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Feature SQNR of the FE output and logit KL of the whole hybrid network, on samples `x`.

    `reference` (float outputs on `x`) and `fe_values` (integer FE outputs on `x`, which depend
    only on the FE precision) may be passed in when many precisions are scored on the same data.
    """
    network = qnet.network
    reference = reference if reference is not None else float_forward(network, x)
    if fe_values is None:
        fe_values = fe_forward(qnet, quantize_input(qnet, x))
    result: dict[str, float] = {}
    fe = qnet.fe_layers
    if fe:
        last_fe = fe[-1].name
        result["feature_sqnr_db"] = sqnr_db(reference[last_fe],
                                            fixed.to_float(fe_values[last_fe], qnet.layers[last_fe].out_fmt.frac))
    values = rl_forward(qnet, initial_rl_state(qnet), fe_values) if qnet.rl_layers else fe_values
    last = network.layers[-1].name
    logits_float = reference[last].reshape(len(x), -1)
    logits_fixed = fixed.to_float(values[last], output_frac(qnet)).reshape(len(x), -1)
    p, q = _softmax(logits_float), _softmax(logits_fixed)
    result["logit_kl"] = float(np.mean(np.sum(p * (np.log(p + 1e-300) - np.log(q + 1e-300)), axis=1)))
    return result


def stored_bits(layer, lq, weights: bool = True) -> int:
    """Bits of a layer's parameters at their stored widths: its weights (unless `weights` is False), its
    biases and a seeded conv's channel scales; 0 for a layer without weights."""
    if not layer.has_weights:
        return 0
    bits = layer.bias.size * lq.b_fmt.bits + (lq.scale.size * lq.s_fmt.bits if lq.scale is not None else 0)
    return bits + (layer.weight.size * lq.w_fmt.bits if weights else 0)


def model_size_bytes(qnet: QuantizedNetwork) -> dict[str, int]:
    """Parameter storage as fp32, uniform 16-bit and hybrid, in bytes (bits rounded up per network)."""
    params = qnet.network.params
    hybrid_bits = sum(stored_bits(layer, qnet.layers[layer.name]) for layer in qnet.network.layers)
    return {"fp32": 4 * params, "uniform16": 2 * params, "hybrid": math.ceil(hybrid_bits / 8)}


def retrainable_bytes(qnet: QuantizedNetwork) -> int:
    """Bytes of the retrainable layers' parameters (the head a device re-trains: sent, unless drawn from a seed)."""
    return math.ceil(sum(stored_bits(layer, qnet.layers[layer.name]) for layer in qnet.rl_layers) / 8)


SEED_BYTES = 4  # a seed, once for the layers that share it
SEEDED_LAYER_BYTES = 5  # a seeded layer's index (4 bytes) and its weights' kind or range (1 byte)


def transmitted_bytes(qnet: QuantizedNetwork) -> dict[str, int]:
    """Bytes that send the model (its architecture and formats aside): the seeds of its seeded convs and of
    its layers whose initial values are drawn from a seed (`seeds`), and its learnable tensors at their
    stored widths (`learnable`: a seeded conv's channel scales and biases, every other layer's weights and
    biases as `model_size_bytes` counts them); `total` their sum. A layer claims a seeded start
    (`Layer.init_seed`) only if its weights are the seed's values and its bias 0 (else a ValueError)."""
    seeded = [layer for layer in qnet.network.layers if layer.seed is not None]
    started = [layer for layer in qnet.network.layers if layer.init_seed is not None]
    for layer in started:
        drawn = isa_seeded.initial_values(layer.init_seed, layer.weight.shape)
        if not np.array_equal(drawn, layer.weight) or (layer.bias is not None and np.any(layer.bias)):
            raise ValueError(f"layer '{layer.name}' is marked as starting from seed {layer.init_seed['seed']}, "
                             "but its weights or bias are not the seed's")
    seed_values = {layer.seed["seed"] for layer in seeded} | {layer.init_seed["seed"] for layer in started}
    seeds = SEED_BYTES * len(seed_values) + SEEDED_LAYER_BYTES * (len(seeded) + len(started))
    bits = sum(stored_bits(layer, qnet.layers[layer.name], weights=layer.seed is None)
               for layer in qnet.network.layers if layer.init_seed is None)
    learnable = math.ceil(bits / 8)
    return {"seeds": seeds, "learnable": learnable, "total": seeds + learnable}
