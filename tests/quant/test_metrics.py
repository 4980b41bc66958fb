"""dtlgen.quant.metrics: model size accounting counted by hand, SQNR on known signals, info loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
from torch import nn

from dtlgen.model import load_factory, load_model
from dtlgen.quant import fixed, golden, metrics, reference
from dtlgen.quant.quantize import PrecisionConfig, quantize

DIGITS_PARAMS = (1 * 16 * 9 + 16) + (16 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 64 * 9 + 64) + \
    (256 * 32 + 32) + (32 * 10 + 10)  # conv weights + folded-BN biases, fc weights + biases


@pytest.fixture(scope="module")
def digits_network():
    return load_model("digits_cnn")


@pytest.fixture(scope="module")
def calib():
    return np.random.default_rng(0).random((32, 1, 8, 8))


def _psum_bits_by_search(terms: int, a_bits: int, b_bits: int) -> int:
    """Smallest signed width that holds terms · (largest product), found by search."""
    worst = terms * 2 ** (a_bits - 1) * 2 ** (b_bits - 1)
    p = 2
    while worst > 2 ** (p - 1) - 1:
        p += 1
    return p


def test_digits_cnn_parameter_count_matches_the_torch_module(digits_network):
    module = load_factory("digits_cnn")[0]
    by_torch = sum(m.weight.numel() + (m.out_channels if isinstance(m, nn.Conv2d) else m.out_features)
                   for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert by_torch == DIGITS_PARAMS == digits_network.params == 68778


@pytest.mark.parametrize("w_bits,a_bits,rl_bits", [(8, 8, 16), (4, 6, 12), (16, 3, 24)])
def test_model_size_bytes_hybrid_counted_by_hand(digits_network, calib, w_bits, a_bits, rl_bits):
    qnet = quantize(digits_network, calib, PrecisionConfig(w_bits=w_bits, a_bits=a_bits, rl_bits=rl_bits))
    size = metrics.model_size_bytes(qnet)
    assert size["fp32"] == 4 * DIGITS_PARAMS
    assert size["uniform16"] == 2 * DIGITS_PARAMS
    bits = 0
    for layer in digits_network.layers:
        if layer.op not in ("conv2d", "linear"):
            continue
        m = layer.out_shape[0]
        if layer.frozen:
            terms = layer.kernel * layer.kernel * (layer.in_shape[0] // layer.groups)
            b_bits = qnet.layers[layer.name].b_fmt.bits
            assert b_bits == _psum_bits_by_search(terms, w_bits, a_bits)  # the bias's stored width
            bits += layer.weight.size * w_bits + m * b_bits
        else:
            bits += (layer.weight.size + m) * rl_bits
    assert [layer.name for layer in digits_network.layers if not layer.frozen] == ["fc1", "fc2"]
    assert size["hybrid"] == math.ceil(bits / 8)
    assert size["hybrid"] < size["uniform16"] or w_bits == 16


def test_model_size_bytes_rounds_bits_up_once_per_network(calib):
    # 13-bit RL tensors: 8554 values · 13 bits is not a whole number of bytes; round up once, at the end
    network = load_model("digits_cnn")
    qnet = quantize(network, calib, PrecisionConfig(rl_bits=13))
    size = metrics.model_size_bytes(qnet)
    fe_bits = sum(layer.weight.size * 8 + layer.bias.size * qnet.layers[layer.name].b_fmt.bits
                  for layer in network.layers if layer.frozen and layer.has_weights)
    rl_bits = (256 * 32 + 32 + 32 * 10 + 10) * 13
    assert (fe_bits + rl_bits) % 8 != 0
    assert size["hybrid"] == (fe_bits + rl_bits) // 8 + 1


# --- SQNR ------------------------------------------------------------------------------------------
def test_sqnr_noise_ten_times_smaller_is_20_db():
    ref = np.sin(np.linspace(0, 7, 1000)) * 3.0 + 0.5
    noise = ref[::-1] * np.where(np.arange(1000) % 2, 1.0, -1.0)  # same energy as the signal
    assert metrics.sqnr_db(ref, ref + 0.1 * noise) == pytest.approx(20.0, abs=1e-9)
    assert metrics.sqnr_db(ref, ref - 0.01 * noise) == pytest.approx(40.0, abs=1e-9)
    assert metrics.sqnr_db(ref, ref + noise) == pytest.approx(0.0, abs=1e-9)
    assert metrics.sqnr_db(5 * ref, 5 * (ref + 0.1 * noise)) == pytest.approx(20.0, abs=1e-9)


def test_sqnr_identical_is_inf_and_zero_signal_is_minus_inf():
    ref = np.arange(-5.0, 6.0).reshape(1, 11)
    assert metrics.sqnr_db(ref, ref.copy()) == math.inf
    assert metrics.sqnr_db(np.zeros(4), np.zeros(4)) == math.inf
    assert metrics.sqnr_db(np.zeros(4), np.ones(4)) == -math.inf


def test_sqnr_of_uniform_quantisation_is_about_6_db_per_bit():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 200_000)
    s8 = metrics.sqnr_db(x, fixed.to_float(fixed.to_fixed(x, fixed.QFormat(8, 7)), 7))
    s12 = metrics.sqnr_db(x, fixed.to_float(fixed.to_fixed(x, fixed.QFormat(12, 11)), 11))
    # uniform input over ±1 with step 2^-(bits-1): (1/3) / (step²/12) = 4^bits, i.e. 6.02 dB per bit
    assert s8 == pytest.approx(6.02 * 8, abs=0.2)
    assert s12 - s8 == pytest.approx(6.02 * 4, abs=0.2)


# --- information loss ------------------------------------------------------------------------------
def test_info_loss_feature_sqnr_and_kl(digits_network, calib):
    x = np.random.default_rng(1).random((16, 1, 8, 8))
    losses = {}
    for bits in (4, 8):
        qnet = quantize(digits_network, calib, PrecisionConfig(w_bits=bits, a_bits=bits))
        loss = metrics.info_loss(qnet, x)
        # the same SQNR computed here from the golden model and the float reference
        quantised = golden.fe_forward(qnet, golden.quantize_input(qnet, x))["flatten"]
        ref = reference.float_forward(digits_network, x)["flatten"]
        err = fixed.to_float(quantised, qnet.layers["flatten"].out_fmt.frac) - ref
        own = 10 * math.log10(float(np.sum(ref ** 2)) / float(np.sum(err ** 2)))
        assert loss["feature_sqnr_db"] == pytest.approx(own, rel=1e-9)
        assert loss["logit_kl"] >= 0.0
        losses[bits] = loss
    assert losses[8]["feature_sqnr_db"] > losses[4]["feature_sqnr_db"] + 10.0
    assert losses[8]["logit_kl"] < losses[4]["logit_kl"]
    assert losses[8]["feature_sqnr_db"] > 20.0
