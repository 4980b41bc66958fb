"""K×K convs re-trained on the RL engine (issue 20) through the product flow: a project whose retrainable part
is a 3x3 conv with padding and a 4x4 conv over the whole map (and digits_cnn with an adapter after every block:
frozen convs, max-pools, a linear layer over a map), generated, then re-trained in the golden model,
the C-simulation of the HLS C++ engine and the RTL simulation: weights equal bit for bit after every step, the
RTL's cycles equal the model's descriptor by descriptor."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
import torch.nn as nn

from dtlgen.boards import load_board
from dtlgen.csim import CsimDevice, CsimEngines
from dtlgen.generator.loader import load_rl_project
from dtlgen.generator.project import generate_project
from dtlgen.host.rl_host import RLHost, sample_plan
from dtlgen.model import import_module
from dtlgen.perf import Design
from dtlgen.sim.rl_sim import golden_replay, predict_plan, simulate_training

# RL array 4 x 3: conv3's 8 inputs take 3 n-tiles a tap (the last partial), its 10 outputs 3 m-tiles
DESIGN = {"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 4, "tn": 3, "bits": 16, "batch": 4}}
LATENCY = 20  # the project's simulated DRAM latency is the board's; the RTL run below passes its own


class ConvHead(nn.Module):
    """Two frozen convs (the second strided) on 1x8x8, then the retrainable 3x3 (padding 1) and 4x4 convs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(8, 10, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(10, 10, 4)
        self.flatten = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.flatten(self.conv4(self.relu3(self.conv3(x))))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    torch.manual_seed(3)
    network = import_module(ConvHead().eval(), (1, 8, 8), "convhead")
    network = network.with_split(network.index("conv3"))
    rng = np.random.default_rng(0)
    calib = rng.random((32, 1, 8, 8))
    return generate_project(network, Design.from_dict(DESIGN), load_board(DESIGN["board"]), calib, calib[0],
                            tmp_path_factory.mktemp("convhead") / "prj")


def retrain_three_ways(project, workdir):
    """Three steps of the project's re-training in the golden model, the C-simulation and the RTL simulation:
    asserts the weights equal after every step; returns the layout, the plan and the RTL run."""
    rl = load_rl_project(project)
    layout, qnet, state = rl.layout, rl.qnet, rl.state
    plan = sample_plan(rl.features, rl.labels, layout.batch, 3, qnet.precision.lr_shift)
    reference = golden_replay(qnet, plan, state)
    trained = {p.name: p.trained for p in layout.layers}
    csim = asyncio.run(RLHost(CsimDevice(CsimEngines(project), layout.memory_bytes), layout).train(plan, state))
    rtl = simulate_training(layout, plan, state, workdir / "rl_rtl", LATENCY, sources_dir=project / "rtl",
                            test_folder=project / "sim", test_module="test_rl_engine")
    for k in plan.check_steps:
        for name, (w, b) in reference[k].items():
            assert np.array_equal(w, state[name][0]) != trained[name]  # it trained, or it stays frozen
            for got in (csim.weights[k][name], rtl.weights[k][name]):
                assert np.array_equal(np.reshape(got[0], w.shape), w) and np.array_equal(got[1], b), (k, name)
    assert np.array_equal(csim.logits, rtl.logits)
    return layout, plan, rtl


def test_conv_training_is_bit_exact_in_golden_csim_and_rtl(project, tmp_path):
    layout, plan, rtl = retrain_three_ways(project, tmp_path)
    assert [(p.name, p.k, p.pad, p.hi, p.ro) for p in layout.layers] == [("conv3", 3, 1, 4, 4), ("conv4", 4, 0, 4, 1)]
    predicted = predict_plan(layout, LATENCY, plan.batch_sizes)
    assert rtl.descriptor_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[0]]
    assert rtl.steady_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[1]]


@pytest.fixture(scope="module")
def adapters_project(tmp_path_factory):
    from dtlgen.api import load_model
    from dtlgen.model.calibration import calibration_inputs

    network = load_model("digits_cnn", adapters="all")
    calib = calibration_inputs(network, 0)
    return generate_project(network, Design.from_dict(DESIGN), load_board(DESIGN["board"]), calib, calib[0],
                            tmp_path_factory.mktemp("adapters") / "prj")


def test_adapters_in_every_block_retrain_bit_exact_in_golden_csim_and_rtl(adapters_project, tmp_path):
    """digits_cnn with a residual adapter after every block: the adapters (1x1 convs) and the head train on the RL
    engine, the frozen 3x3 convs pass gradients (FWD, BWD_DATA), the max-pools run as MAXPOOL / MAXPOOL_BWD (32
    channels on a 3-wide array: a partial lane tile), fc1 as a window over the flattened 2x2 map; golden = C-sim =
    RTL after every step, the RTL's cycles the model's."""
    layout, plan, rtl = retrain_three_ways(adapters_project, tmp_path)
    assert [(p.name, p.k, p.pool, p.trained) for p in layout.layers] == [
        ("conv1_adapter", 0, False, True), ("conv2", 3, False, False), ("pool2", 2, True, False),
        ("pool2_adapter", 0, False, True), ("conv3", 3, False, False), ("conv3_adapter", 0, False, True),
        ("conv4", 3, False, False), ("pool4", 2, True, False), ("pool4_adapter", 0, False, True), ("fc1", 2, False, True),
        ("fc2", 0, False, True)]
    predicted = predict_plan(layout, LATENCY, plan.batch_sizes)
    assert rtl.descriptor_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[0]]
    assert rtl.steady_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[1]]
