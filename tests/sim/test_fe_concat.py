"""Concatenation, ceil-mode max pools and channel shuffles on the FE engines.

A concatenation costs no descriptor: each input's op stores its output into its slice of the result
(the slice's address, the result's image pitch), and a concatenation that is the FE's last tensor is
copied by one 1×1 max-pool descriptor. The RTL and the C++ engine must give every op's output bit for
bit as the golden model does, the RTL in the cycles the analytical model predicts (test_fe_rtl.py's
tolerances), for one image and for a batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dtlgen.boards import load_board
from dtlgen.csim import CsimEngines
from dtlgen.generator.fe_program import build_fe_program, check_descriptors
from dtlgen.generator.project import generate_project
from dtlgen.model import import_module
from dtlgen.perf import Design
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize

from test_fe_batch import check_batch, check_csim_batch, quantised

SHAPE = (3, 8, 8)


class Fire(nn.Module):
    def __init__(self, c_in, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.e1 = nn.Conv2d(squeeze, expand, 1)
        self.e3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.e1(x)), torch.relu(self.e3(x))], 1)


class ConcatNet(nn.Module):
    """conv, ceil-mode 3/2 max pool (8 -> 4, floor mode gives 3), a fire module, a shuffle unit (1×1 conv +
    BN + ReLU, shuffle of 3 groups, depthwise 3×3) whose output is concatenated with an average pool of its
    input; the outer concatenation holds a max pool of that and a second fire module (a concatenation
inside a concatenation); ReLU after the outer one."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fire = Fire(8, 4, 6)
        self.c1 = nn.Conv2d(12, 12, 1)
        self.bn = nn.BatchNorm2d(12)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.avg = nn.AvgPool2d(3, 1, 1)
        self.max = nn.MaxPool2d(3, 1, 1)
        self.fire2 = Fire(24, 4, 5)

    def forward(self, x):
        x = self.fire(self.pool(torch.relu(self.conv(x))))
        y = torch.relu(self.bn(self.c1(x)))
        b, c, h, w = y.size()
        y = self.dw(y.view(b, 3, c // 3, h, w).transpose(1, 2).contiguous().view(b, c, h, w))
        inner = torch.cat([self.avg(x), y], 1)
        return torch.relu(torch.cat([self.max(inner), self.fire2(inner)], 1))


def concat_net(batch: int, seed: int = 0):
    torch.manual_seed(seed)
    module = ConcatNet().eval()
    with torch.no_grad():
        module.bn.running_mean.uniform_(-0.2, 0.2)
        module.bn.running_var.uniform_(0.5, 2.0)
    return module, *quantised(module, SHAPE, batch, seed)


def test_the_ir_computes_what_torch_does():
    from dtlgen.quant.reference import float_forward

    module, qnet, _ = concat_net(2)
    x = np.random.default_rng(5).standard_normal((2, *SHAPE))
    want = module(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    got = float_forward(qnet.network, x)[qnet.network.layers[-1].name]
    assert np.abs(got - want).max() < 1e-4
    ops = [layer.op for layer in qnet.network.layers]
    assert ops.count("concat") == 4 and qnet.network.layer("pool").out_shape == (8, 4, 4)


def test_the_inputs_of_a_concatenation_share_one_format():
    _, qnet, _ = concat_net(2)
    for layer in qnet.network.layers:
        if layer.op == "concat":
            assert len(set(qnet.layers[layer.name].in_fracs)) == 1, layer.name


@pytest.mark.parametrize("batch, tiles", [(1, (4, 4)), (3, (12, 4))])
def test_concatenations_on_the_rtl_bit_exact_and_on_the_model(tmp_path, batch, tiles):
    _, qnet, x_int = concat_net(batch)
    program = check_batch(qnet, x_int, tiles, tmp_path)
    layers = [img.layer for img in program.ops]
    assert "cat" not in layers and layers[-1] == qnet.network.layers[-1].name  # no descriptor but the final copy
    outer = qnet.network.layers[-1]
    base = program.ops[-1]  # the copy reads the outer concatenation, where its inputs' ops wrote their slices
    assert base.op.kind == "pool" and base.op.k == 1
    ops = [{"name": img.op.name, "kind": img.op.kind, "out_addr": img.out_addr, "out_shape": list(img.stored_shape),
            "out_pitch": img.image_pitch} for img in program.ops]
    check_descriptors(program.memory, 0, ops, 64, (4, 4, *tiles), 8, "test image")  # the loader takes it
    assert outer.op == "concat"


def test_concatenations_in_c_simulation_bit_exact(tmp_path):
    _, qnet, x_int = concat_net(3)
    check_csim_batch(qnet, x_int, tmp_path)


class PooledBranches(nn.Module):
    """A ReLU after a 2x2 max pool that fuses into its conv: after one of its own (a), after a concatenation
    of two (b, c; the importer moves the ReLU onto the pools)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.pa, self.pb, self.pc = nn.MaxPool2d(2), nn.MaxPool2d(2), nn.MaxPool2d(2)

    def forward(self, x):
        x = torch.relu(self.pa(self.a(x)))
        return torch.relu(torch.cat([self.pb(self.b(x)), self.pc(self.c(x))], 1))


def test_a_relu_after_a_fused_max_pool_runs_on_the_engine(tmp_path):
    network = import_module(PooledBranches().eval(), SHAPE)
    assert {layer.name: layer.activation for layer in network.layers if layer.op == "maxpool"} == \
        {"pa": "relu", "pb": "relu", "pc": "relu"}
    x = np.random.default_rng(0).standard_normal((1, *SHAPE))
    qnet = quantize(network, x, PrecisionConfig())
    design = Design.from_dict({"board": "pynq-z2", "clock_mhz": 100,
                               "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
                               "rl": {"tm": 2, "tn": 2, "bits": 16, "batch": 4}})
    board = load_board("pynq-z2")
    project = generate_project(network, design, board, x, x[0], tmp_path / "prj")
    program = build_fe_program(qnet, design.fe, golden.quantize_input(qnet, x), bus_bytes=int(board.bus_bytes))
    # every pool fused into its conv, then the copy of the concatenation (the FE's output)
    assert [img.op.pool_layer for img in program.ops] == ["pa", "pb", "pc", ""]
    memory = program.memory.copy()
    CsimEngines(project).run_fe(memory, program.desc_addr, len(program.ops))
    reference = golden.fe_forward(qnet, golden.quantize_input(qnet, x))
    for i, img in enumerate(program.ops):
        assert np.array_equal(program.read_images(memory, i), reference[img.layer]), img.op.name
    check_batch(qnet, golden.quantize_input(qnet, x), (4, 4), tmp_path / "rtl")  # and the RTL


def test_the_models_view_of_the_memory_image_holds_the_slices():
    """perf.board.fe_image_bytes (the DSE's view of the FE image, before generation) counts each
    concatenation's buffer once and its inputs' slices not again: the program's extent to the byte's
    alignment. M_MAX covers the widest descriptor (the final copy of 34 channels; the widest conv has 12)."""
    from dtlgen.perf.board import ALIGN, fe_image_bytes
    from dtlgen.perf.fe import FEConfig, fe_ops, widest_channels

    _, qnet, x_int = concat_net(1)
    cfg = FEConfig(4, 4, 4, 4)
    program = build_fe_program(qnet, cfg, x_int, bus_bytes=8)
    ops = fe_ops(qnet.network, cfg)
    size = fe_image_bytes(qnet.network, ops, cfg, 8)
    assert program.extent <= size < program.extent + ALIGN
    assert widest_channels(ops) == 64 and max(op.m for op in ops) == 34


@pytest.mark.slow  # about 1 min a model: python -m pytest -m slow tests/sim/test_fe_concat.py
@pytest.mark.parametrize("name", ["squeezenet_cifar", "shufflenet_cifar"])
def test_the_zoos_concatenating_models_end_to_end(tmp_path, name):
    """benchmarks/concat_models.py in small: explore, generate, C-simulate against the golden model, and
    RTL-simulate the FE (every op bit-exact, cycles = model) and two re-training steps."""
    import dtlgen

    net = dtlgen.load_model(name)
    design = dtlgen.explore(net, board="pynq-z2", pop=8, gens=2, seed=1)
    prj = dtlgen.generate(net, design, tmp_path / name)
    x = np.random.default_rng(2).standard_normal((1, *net.input_shape))
    assert np.array_equal(prj.features(x, fe="csim"), prj.features(x, fe="golden"))
    report = prj.simulate(retrain=True, steps=2)
    fe = report["totals"]["fe"]
    assert fe["bit_exact"] and fe["measured_cycles"] == fe["predicted_cycles"]
    assert all(layer["bit_exact"] for layer in report["layers"]) and report["training"]["bit_exact"]
