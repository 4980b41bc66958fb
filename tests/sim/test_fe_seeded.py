"""Seeded convolutions (issue 18) on the FE engines: the generator's integer weights, a channel scale.

A `SeededConv2d` imports as a conv2d whose weights are `dtlgen.isa.seeded.conv_weights` and whose output
channel m is multiplied by its own 16-bit scale in the engines' output stage (`dtlgen.isa.fe`,
Per-channel scale); its bias table carries the scales. The RTL and the C++ engine must give every op's
output bit for bit as the golden model does, the RTL in the cycles the analytical model predicts
(test_fe_rtl.py's tolerances), for one image and for a batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dtlgen.errors import DesignError
from dtlgen.boards import load_board
from dtlgen.generator.fe_program import build_fe_program, check_descriptors
from dtlgen.isa import fe as isa_fe
from dtlgen.isa import seeded as isa_seeded
from dtlgen.model import import_module
from dtlgen.model.seeded import SeededConv2d
from dtlgen.perf.fe import FEConfig, fe_ops
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.quant.reference import float_forward

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_fe_batch import check_batch, check_csim_batch, quantised
from test_fe_rtl import PARAMS, fe_build, simulate

SHAPE = (3, 8, 8)


class SeededNet(nn.Module):
    """A ±1 seeded conv with a BatchNorm of some negative gammas (negative channel scales: its max pool
    stays a descriptor of its own), a 4-bit seeded conv with a fused pool, a seeded depthwise conv, a
    stored 1×1 conv and a linear layer."""

    def __init__(self):
        super().__init__()
        self.c1 = SeededConv2d(3, 12, 3, padding=1, seed=11, index=0)
        self.bn = nn.BatchNorm2d(12)
        self.p1 = nn.MaxPool2d(2)
        self.c2 = SeededConv2d(12, 10, 3, padding=1, seed=11, index=1, kind="int4")
        self.p2 = nn.MaxPool2d(2)
        self.dw = SeededConv2d(10, 10, 3, padding=1, groups=10, seed=11, index=2)
        self.c3 = nn.Conv2d(10, 6, 1)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        x = self.p1(torch.relu(self.bn(self.c1(x))))
        x = self.p2(torch.relu(self.c2(x)))
        x = torch.relu(self.c3(torch.relu(self.dw(x))))
        return self.fc(x.flatten(1))


def seeded_net(batch: int, seed: int = 0):
    torch.manual_seed(seed)
    module = SeededNet().eval()
    with torch.no_grad():
        module.bn.running_mean.uniform_(-0.2, 0.2)
        module.bn.running_var.uniform_(0.5, 2.0)
        module.bn.weight.uniform_(-1.0, 1.0)
        module.c2.bias.uniform_(-0.1, 0.1)
    return module, *quantised(module, SHAPE, batch, seed)


def test_the_ir_computes_what_torch_does_from_the_seeds():
    module, qnet, _ = seeded_net(2)
    x = np.random.default_rng(5).standard_normal((2, *SHAPE))
    want = module(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    assert np.abs(float_forward(qnet.network, x)["fc"] - want).max() < 1e-4
    c1, c2 = qnet.network.layer("c1"), qnet.network.layer("c2")
    assert c1.seed == {"seed": 11, "index": 0, "kind": "sign"} and set(np.unique(c1.weight)) == {-1.0, 1.0}
    assert np.array_equal(c2.weight, isa_seeded.conv_weights(11, 1, (10, 12, 3, 3), "int4"))
    assert (c1.scale < 0).any() and (c1.scale > 0).any()  # the BatchNorm folded into the scale, signs and all
    assert "p1" in [op.name for op in fe_ops(qnet.network, FEConfig(4, 4, 4, 4))]  # a negative scale: not fused
    assert "p2" not in [op.name for op in fe_ops(qnet.network, FEConfig(4, 4, 4, 4))]


def test_seeded_weights_are_the_generators_in_tap_rows():
    """Word-aligned runs: a dense conv's (tap, output channel) row of N weights starts a word; a depthwise
    conv's tap row of M weights does. Values are the flat generator's."""
    w = isa_seeded.conv_weights(3, 4, (5, 40, 3, 3), "sign")
    flat = isa_seeded.weights(3, 4, 9 * 5 * 64, "sign").reshape(3, 3, 5, 64)[..., :40]
    assert np.array_equal(w, flat.transpose(2, 3, 0, 1))
    dw = isa_seeded.conv_weights(3, 5, (7, 1, 3, 3), "int4", depthwise=True)
    flat = isa_seeded.weights(3, 5, 9 * 8, "int4").reshape(3, 3, 8)[..., :7]
    assert np.array_equal(dw[:, 0], flat.transpose(2, 0, 1))


def test_golden_model_tracks_the_float_model():
    _, qnet, x_int = seeded_net(4)
    x = golden.dequantize_input(qnet, x_int) if hasattr(golden, "dequantize_input") else None
    got = golden.fe_forward(qnet, x_int)["c3"] * qnet.layers["c3"].out_fmt.step
    ref = float_forward(qnet.network, x_int * qnet.input_fmt.step)["c3"]
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
    assert x is None or x.shape == x_int.shape


@pytest.mark.parametrize("batch, tiles", [(1, (4, 4)), (3, (12, 4))])
def test_seeded_convs_on_the_rtl_bit_exact_and_on_the_model(tmp_path, batch, tiles):
    _, qnet, x_int = seeded_net(batch)
    program = check_batch(qnet, x_int, tiles, tmp_path)
    scaled = {img.op.name for img in program.ops if img.op.scaled}
    assert scaled == {"c1", "c2", "dw"}
    ops = [{"name": img.op.name, "kind": img.op.kind, "out_addr": img.out_addr, "out_shape": list(img.stored_shape),
            "out_pitch": img.image_pitch} for img in program.ops]
    check_descriptors(program.memory, 0, ops, 64, (4, 4, *tiles), 8, "test image")  # the loader takes it


def test_a_scale_on_a_pool_descriptor_is_refused():
    _, qnet, x_int = seeded_net(1)
    program = build_fe_program(qnet, FEConfig(4, 4, 4, 4), x_int, bus_bytes=8)
    ops = [{"name": img.op.name, "kind": img.op.kind, "out_addr": img.out_addr, "out_shape": list(img.stored_shape),
            "out_pitch": img.image_pitch} for img in program.ops]
    pool = next(i for i, img in enumerate(program.ops) if img.op.kind == "pool")
    memory = program.memory.copy()
    memory[pool * isa_fe.DESCRIPTOR_BYTES + 1] |= 1  # w0 bit 8: scaled
    with pytest.raises(DesignError, match="a scale on an op that is not a convolution"):
        check_descriptors(memory, 0, ops, 64, (4, 4, 4, 4), 8, "test image")


def test_seeded_convs_in_c_simulation_bit_exact(tmp_path):
    _, qnet, x_int = seeded_net(3)
    check_csim_batch(qnet, x_int, tmp_path)


def test_seeded_weights_wider_than_the_design_are_refused():
    module = SeededNet().eval()
    network = import_module(module, SHAPE)
    with pytest.raises(DesignError, match="c2.*int4 weights need 4 bits.*fe.w_bits >= 4"):
        quantize(network, np.zeros((1, *SHAPE)), PrecisionConfig(w_bits=2))


@st.composite
def seeded_layers(draw):
    k = draw(st.sampled_from([1, 3, 5]))
    h = draw(st.integers(max(k, 2), 9))
    return (draw(st.integers(1, 6)), draw(st.integers(1, 37)), h, k, draw(st.sampled_from([1, 2])),
            draw(st.integers(0, k // 2)), draw(st.sampled_from(["sign", "int2", "int4"])), draw(st.booleans()),
            draw(st.booleans()), draw(st.sampled_from([8, 16])))


@settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seeded_layers())
def test_random_seeded_layers_bit_exact_and_cycle_exact(tmp_path, layer):
    """Any channel count (the scales start at the next 16-word boundary after the biases), any kind, scales
    of both signs, 8- and 16-byte buses (two or four table words a beat): bit-exact, and the ideal memory's
    cycles exactly the model's."""
    check_seeded_layer(tmp_path / "run", *layer)


def test_scales_over_a_two_byte_bus_bit_exact_and_cycle_exact(tmp_path):
    """A table word over two beats (the engines' narrow path), 37 channels, negative scales, a pool; one input
    channel: a dense conv's layout of the seeded weights, generated on chip (a depthwise one's is not)."""
    check_seeded_layer(tmp_path, 1, 37, 7, 3, 1, 1, "sign", True, True, 2)


def check_seeded_layer(workdir, n, m, h, k, s, p, kind, negative, pool, bus):
    torch.manual_seed(n * 131 + m * 17 + h)
    conv = SeededConv2d(n, m, k, s, p, seed=m * 7 + h, index=k, kind=kind)
    with torch.no_grad():
        conv.scale.mul_(torch.empty(m).uniform_(-1.0 if negative else 0.2, 1.0))
        conv.bias.uniform_(-0.2, 0.2)
    r = (h + 2 * p - k) // s + 1
    modules = [conv, nn.ReLU()] + ([nn.MaxPool2d(2)] if pool and r >= 2 else [])
    network = import_module(nn.Sequential(*modules).eval(), (n, h, h))
    x = np.random.default_rng(h).standard_normal((4, n, h, h))
    qnet = quantize(network, x, PrecisionConfig())
    params = fe_build(4, 4, 4, 4, bus=bus)
    program, result, predicted, exact = simulate(qnet, golden.quantize_input(qnet, x[:1])[0], workdir, params)
    assert program.ops[0].op.scaled and all(exact)
    assert result.cycles == predicted


@pytest.mark.parametrize("n, m, h, k", [(32, 32, 2, 1), (24, 40, 2, 1)])
def test_generated_weights_bound_trips_cycle_exact(tmp_path, n, m, h, k):
    """Kept inputs on 2x2 maps: the later output-channel tiles' trips load nothing, and the generator alone
    sets their length (dtlgen.isa.fe.gen_cycles); every trip's weights come from the generator (the
    program holds none), bit-exact with the golden model."""
    from dtlgen.isa.fe import gen_cycles

    torch.manual_seed(n + m + k)
    conv = SeededConv2d(n, m, k, 1, k // 2, seed=9, index=2)
    network = import_module(nn.Sequential(conv, nn.ReLU()).eval(), (n, h, h))
    x = np.random.default_rng(k).standard_normal((2, n, h, h))
    qnet = quantize(network, x, PrecisionConfig())
    program, result, predicted, exact = simulate(qnet, golden.quantize_input(qnet, x[:1])[0], tmp_path)
    op = program.ops[0].op
    assert op.gen and op.keep and all(exact) and result.cycles == predicted
    assert gen_cycles(k, 4, 4) > h * h * k * k  # the generator, not the array, bounds the kept trips
    weights = isa_fe.weight_bytes(m, n, k, False, 4, 4, 8)
    assert program.extent < weights  # no weights in the memory image


def test_the_xilinx_rtl_ip_has_the_scale_banks_and_generator_only_where_the_program_uses_them(tmp_path):
    """The Vivado project's FE IP is full size, but its scale banks and weight generator (44 DSP48s by the
    resource model) are built only for a program with seeded convs, as the resource model charges them."""
    from dtlgen.generator.project import generate_project
    from dtlgen.perf import Design

    design = Design.from_dict({"board": "pynq-z2", "clock_mhz": 100,
                               "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
                               "rl": {"tm": 2, "tn": 2, "bits": 16, "batch": 4}})
    seeded, stored = seeded_net(1)[1].network, import_module(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(),
                                                                           nn.Linear(144, 5)).eval(), SHAPE)
    for name, network, value in (("seeded", seeded, 1), ("stored", stored.with_split(2), 0)):
        project = generate_project(network, design, load_board("pynq-z2"), np.zeros((1, *SHAPE)), np.zeros(SHAPE),
                                   tmp_path / name)
        shell = (project / "vivado" / "rtl" / "dtl_fe_ip.v").read_text()
        assert f".HAS_SCALE({value})," in shell and f".HAS_GEN({value})," in shell, name


def test_generated_and_stored_seeded_convs_in_one_program(tmp_path):
    """The DSE's choice per layer (fe.gen a list of layers): two ±1 seeded convs, the first's weights read
    from memory, the second's generated on chip, in one program on the RTL: bit-exact, cycles the model's,
    and only the first's weights in the memory image."""
    torch.manual_seed(5)
    first, second = (SeededConv2d(n, 8, 3, 1, 1, seed=4, index=i) for i, n in enumerate((3, 8)))
    network = import_module(nn.Sequential(first, nn.ReLU(), second, nn.ReLU()).eval(), (3, 6, 6))
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 6))
    qnet = quantize(network, x, PrecisionConfig())
    names = [layer.name for layer in network.layers if layer.seed is not None]
    cfg = FEConfig(4, 4, 4, 4, gen=(names[1],))
    image = golden.quantize_input(qnet, x[:1])[0]
    program, result, predicted, exact = simulate(qnet, image, tmp_path, cfg=cfg)
    assert [img.op.gen for img in program.ops] == [False, True] and all(exact) and result.cycles == predicted
    stored = build_fe_program(qnet, FEConfig(4, 4, 4, 4, gen=0), image, PARAMS.dram.memory_bytes,
                              bus_bytes=PARAMS.fe.bus_bytes)
    assert program.extent < stored.extent  # the second conv's weights are not in the image
