"""Calibration inputs: the data that picks each tensor's fixed-point format and scores information loss."""

from __future__ import annotations

import numpy as np

from dtlgen.model.ir import Network

CALIBRATION_SAMPLES = 4


def calibration_inputs(network: Network, seed: int = 0, count: int = CALIBRATION_SAMPLES) -> np.ndarray:
    """Calibration inputs for the information-loss proxy: the digits task's images for digits_cnn,
    seeded N(0, 1) inputs for the zoo's randomly initialised performance models."""
    if network.name == "digits_cnn":
        from dtlgen.model.digits_task import load_digits_task

        return load_digits_task(seed).retrain_x[: 4 * count]
    return np.random.default_rng(seed).standard_normal((count, *network.input_shape))
