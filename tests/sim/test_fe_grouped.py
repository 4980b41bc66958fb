"""Grouped convolutions on the FE engines (1 < groups, not depthwise), and ReFrame's block (issue 18):
seeded depthwise 3×3 convs beside max- and average-pool branches, concatenated into a learnable grouped
1×1 conv with a BatchNorm. The engines run a grouped conv as a dense one whose weights are zero outside
the diagonal blocks (`dtlgen.model.ops.Conv2d.engine_weights`): bit-exact with the golden model, which
computes each group on its own channels, and cycle-exact with the model, which counts the dense conv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from dtlgen.model import import_module
from dtlgen.model.ops import op_of
from dtlgen.model.seeded import SeededConv2d
from dtlgen.quant import golden
from dtlgen.quant.reference import float_forward

from test_fe_batch import check_batch, check_csim_batch, quantised

SHAPE = (6, 6, 6)


class ReFrameBlock(nn.Module):
    """ReFrame's block: a seeded depthwise 3×3 conv, a 3×3 max pool and a 3×3 average pool of the input
    (stride 1, padded: same size), concatenated, then a learnable grouped 1×1 conv (one group per branch)
    and a BatchNorm; a second grouped 3×3 conv of two groups after it."""

    def __init__(self, channels: int = 6, out: int = 9, seed: int = 3):
        super().__init__()
        self.dw = SeededConv2d(channels, channels, 3, 1, 1, groups=channels, seed=seed, index=0)
        self.max = nn.MaxPool2d(3, 1, 1)
        self.avg = nn.AvgPool2d(3, 1, 1)
        self.mix = nn.Conv2d(3 * channels, out, 1, groups=3)
        self.bn = nn.BatchNorm2d(out)
        self.conv = nn.Conv2d(out, 4, 3, padding=1, groups=1)
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)

    def forward(self, x):
        x = torch.cat([self.dw(x), self.max(x), self.avg(x)], dim=1)
        x = torch.relu(self.bn(self.mix(x)))
        return torch.relu(self.grouped(torch.relu(self.conv(x))))


def reframe_block(batch: int, seed: int = 0):
    torch.manual_seed(seed)
    module = ReFrameBlock().eval()
    with torch.no_grad():
        module.bn.running_var.uniform_(0.5, 2.0)
        module.bn.weight.uniform_(0.5, 1.5)
    return module, *quantised(module, SHAPE, batch, seed)


def test_the_ir_keeps_the_groups_and_computes_what_torch_does():
    module, qnet, x_int = reframe_block(2)
    network = qnet.network
    mix = network.layer("mix")
    assert mix.groups == 3 and mix.weight.shape == (9, 6, 1, 1) and mix.macs == 9 * 6 * 36
    x = x_int * qnet.input_fmt.step
    want = module(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    assert np.allclose(float_forward(network, x)[network.layers[-1].name], want, atol=1e-4)
    dense = op_of(mix).engine_weights(mix, mix.weight)
    assert dense.shape == (9, 18, 1, 1) and np.array_equal(dense[3:6, 6:12], mix.weight[3:6])
    assert not dense[:3, 6:].any() and not dense[3:6, :6].any() and not dense[6:, :12].any()


@pytest.mark.parametrize("batch, tiles", [(1, (4, 4)), (2, (12, 4))])
def test_reframe_block_on_the_rtl_bit_exact_and_on_the_model(tmp_path, batch, tiles):
    _, qnet, x_int = reframe_block(batch)
    program = check_batch(qnet, x_int, tiles, tmp_path)
    mix = next(img.op for img in program.ops if img.op.name == "mix")
    assert mix.n == 18 and mix.macs == 9 * 6 * 36  # the engine's dense geometry, the useful MACs


def test_reframe_block_in_c_simulation_bit_exact(tmp_path):
    _, qnet, x_int = reframe_block(1)
    check_csim_batch(qnet, x_int, tmp_path)


@st.composite
def grouped_layers(draw):
    groups = draw(st.integers(2, 4))
    return (groups, groups * draw(st.integers(1, 5)), groups * draw(st.integers(1, 5)), draw(st.sampled_from([1, 3])),
            draw(st.integers(1, 2)), draw(st.integers(0, 2 ** 16)))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grouped_layers())
def test_random_grouped_convs_bit_exact_and_cycle_exact(tmp_path_factory, layer):
    groups, n, m, k, s, seed = layer
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Conv2d(n, m, k, s, k // 2, groups=groups), nn.ReLU()).eval()
    qnet, x_int = quantised(module, (n, 5, 5), 1, seed)
    assert np.array_equal(golden.fe_forward(qnet, x_int)["0"].shape[1:], (m, *qnet.network.layers[0].out_shape[1:]))
    check_batch(qnet, x_int, (4, 4), tmp_path_factory.mktemp("grouped"))
