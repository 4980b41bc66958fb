"""The RL golden model's JSON record (sim/rl_quant.json): a round trip gives the same golden model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.quant.record import rl_view_from_dict, rl_view_to_dict


@pytest.mark.parametrize("model", ["digits_cnn", "mobilenet_v1_cifar"])  # mobilenet: depthwise groups of 1024
def test_round_trip_replays_the_same_training_step(model):
    network = load_model(model, None)
    calib = calibration_inputs(network, 0)[:4]
    qnet = quantize(network, calib, PrecisionConfig(batch=4))
    state = golden.initial_rl_state(qnet)
    data = json.loads(json.dumps(rl_view_to_dict(qnet)))
    loaded = rl_view_from_dict(data, state, "rl_quant.json")
    feature = qnet.rl_layers[0].inputs[0]
    x = golden.fe_forward(qnet, golden.quantize_input(qnet, calib))[feature]
    labels = np.arange(len(calib)) % int(np.prod(network.layers[-1].out_shape))
    want, _ = golden.rl_train_step(qnet, state, {feature: x}, labels, 0, 7)
    got, _ = golden.rl_train_step(loaded, state, {feature: x}, labels, 0, 7)
    for name in want:
        assert np.array_equal(want[name][0], got[name][0]) and np.array_equal(want[name][1], got[name][1])
