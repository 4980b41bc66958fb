"""Prefetched requests (dtlgen.isa.fe, Prefetched requests): on a memory of 16 cycles' latency or more the
FE engine has a read FIFO, and a descriptor with the `prefetch` bit issues the requests of the trip after
the one it loads while that trip's beats fit the FIFO, so the next trip's load no longer waits the whole
latency. Memory-bound convs of small maps are where it pays (a kept input's later tiles load a weight row
a trip) and where it can go wrong: trips of one request and of many, a FIFO that holds part of a trip,
tile boundaries where the store runs instead, kept inputs, plane windows, skipped rows, image groups,
prefetches cut short by the next dispatch. Every output must equal the golden model's and every
descriptor take the cycles the model predicts, trip by trip (`dtlgen.perf.fe._prefetched_trips`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

from dtlgen.errors import DesignError
from dtlgen.generator.fe_program import build_fe_program, check_descriptors
from dtlgen.isa import fe as isa
from dtlgen.model import import_module
from dtlgen.perf import fe as fe_model
from dtlgen.perf.fe import FEConfig, op_cycles
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize

from test_fe_loads import _downsample, run_bit_exact_on_the_model, small_maps
from test_fe_rtl import fe_build

LATENCY = 40  # one build serves latencies 33..64: its FIFO, isa.fe.prefetch_beats, is 128 beats for all


def prefetch_build(tm=4, tn=4, tr=4, tc=4, bus=8, latency=LATENCY):
    """fe_build's engine (whose FIFO suits latencies 33..64: it shares those builds) with the FIFO for
    `latency`, at that latency."""
    params = fe_build(tm, tn, tr, tc, bus=bus)
    return replace(params, fe=replace(params.fe, pf_beats=isa.prefetch_beats(latency)),
                   dram=replace(params.dram, latency=latency))


def every_dense_conv(monkeypatch):
    """Make every dense conv with stored weights prefetch, faster or not (the generator picks the faster)."""
    monkeypatch.setattr(fe_model, "prefetching", lambda op, cfg, bus, latency: replace(
        op, prefetch=op.kind == "conv" and not op.per_channel and op.sparse is None and not op.gen))


def run_prefetched(tmp_path, qnet, x_int, cfg: FEConfig, params):
    """The FE program with prefetches, on `params`: every output the golden model's, every descriptor's
    cycles the model's. Returns the program and the cycles measured."""
    return run_bit_exact_on_the_model(tmp_path, qnet, x_int, cfg, params.fe.bus_bytes, params=params)


# 6×6 maps on 4×4 tiles: edge tiles of 2 rows and columns, 1×1 convs of single-beat rows, three
# input-channel tiles (the last of one or two channels) and image groups; latencies across the build's range
@pytest.mark.parametrize("latency", [33, 64])
def test_prefetched_trips_are_bit_exact_and_on_the_model(tmp_path, monkeypatch, latency):
    every_dense_conv(monkeypatch)
    qnet, x_int = small_maps(6)
    cfg = FEConfig(4, 4, 4, 4, batch=2, prefetch=1)
    program, cycles = run_prefetched(tmp_path, qnet, x_int, cfg, prefetch_build(latency=latency))
    ahead = [i for i, img in enumerate(program.ops) if img.op.prefetch]
    assert {program.ops[i].op.name for i in ahead} == {"c1", "c2", "c3"}
    # the memory-bound 1x1 conv pays the latency once per descriptor instead of once per trip
    c3 = next(i for i in ahead if program.ops[i].op.name == "c3")
    plain = op_cycles(replace(program.ops[c3].op, prefetch=False), cfg, 8, latency).cycles
    assert cycles[c3] < 0.85 * plain


def test_prefetching_on_the_ddr_like_memory_is_exact_and_near_the_closed_form(tmp_path, monkeypatch):
    """dram_model.sv's DDR-like timing (pynq-z2's: rows, banks, refresh) under a prefetching conv whose
    weights stream through every trip (64→64 3×3 on a 4×4 map): bit-exact, slower than on the ideal
    memory, and within 2 % of the closed form (`_prefetched_trips`' `extra`; ddr_bench.py --prefetch runs
    whole networks)."""
    from dtlgen.isa.params import DdrTiming
    from dtlgen.sim import fe_sim

    every_dense_conv(monkeypatch)
    timing = DdrTiming(2048, 8, 6, 702, 24)
    rng = np.random.default_rng(1)
    wide = import_module(nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()).eval(), (64, 4, 4))
    qnet = quantize(wide, rng.standard_normal((4, 64, 4, 4)), PrecisionConfig())
    x_int = golden.quantize_input(qnet, rng.standard_normal((1, 64, 4, 4)))
    cfg = FEConfig(8, 8, 4, 4, prefetch=1)
    params = prefetch_build(8, 8, 4, 4)
    program, ideal = run_prefetched(tmp_path / "ideal", qnet, x_int, cfg, params)
    assert all(img.op.prefetch for img in program.ops)
    ddr = fe_sim.run_image(program.memory, program.desc_addr, len(program.ops), params, tmp_path / "ddr",
                           max_cycles=20 * sum(ideal), ddr=timing)
    assert np.array_equal(program.read_images(ddr.memory, 0), golden.fe_forward(qnet, x_int)[program.ops[0].layer])
    assert sum(ideal) < sum(ddr.cycles)
    model = sum(op_cycles(img.op, cfg, 8, LATENCY, timing).cycles for img in program.ops)
    assert abs(model / sum(ddr.cycles) - 1) <= 0.02, (model, sum(ddr.cycles), sum(ideal))


def test_kept_inputs_and_skipped_rows_prefetch_bit_exact_and_on_the_model(tmp_path, monkeypatch):
    """A kept input's later output-channel tiles load one weight row a trip (the case prefetching is for);
    its first tile loads whole planes; the stride-2 projection loads every other row; 9 input channels
    in tiles of 4, 4, 1."""
    every_dense_conv(monkeypatch)
    qnet, x_int = _downsample(7, 2, n=9, m=10)
    program, _ = run_prefetched(tmp_path, qnet, x_int, FEConfig(4, 4, 4, 4, batch=2, prefetch=1), prefetch_build())
    assert {img.op.name for img in program.ops if img.op.prefetch and img.op.keep} == {"c1", "c2", "short"}


@st.composite
def conv_layers(draw):
    k = draw(st.sampled_from([1, 1, 3, 5]))
    s = draw(st.sampled_from([1, 2]))
    h = draw(st.integers(max(k, 2), 10))
    return (draw(st.integers(1, 13)), draw(st.integers(1, 13)), h, k, s, draw(st.integers(0, k // 2)),
            draw(st.booleans()), draw(st.integers(1, 3)), draw(st.integers(LATENCY - 7, 64)))


@settings(max_examples=5, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_layers())
def test_random_prefetching_convs_bit_exact_and_on_the_model(tmp_path, monkeypatch, layer):
    n, m, h, k, s, p, pool, batch, latency = layer
    every_dense_conv(monkeypatch)
    torch.manual_seed(n * 131 + m * 17 + h)
    modules = [nn.Conv2d(n, m, k, s, p), nn.ReLU()]
    if pool and (h + 2 * p - k) // s + 1 >= 2:
        modules.append(nn.MaxPool2d(2))
    network = import_module(nn.Sequential(*modules).eval(), (n, h, h))
    x = np.random.default_rng(h).standard_normal((batch, n, h, h))
    qnet = quantize(network, x, PrecisionConfig())
    run_prefetched(tmp_path / f"run{n}_{m}_{h}_{k}_{batch}", qnet, golden.quantize_input(qnet, x),
                   FEConfig(4, 4, 4, 4, batch=batch, prefetch=1), prefetch_build(latency=latency))


@pytest.mark.slow
@pytest.mark.parametrize("tiles, bus, latency", [((12, 4), 8, 16), ((4, 4), 16, 20), ((8, 8), 16, 100)])
def test_prefetching_on_other_fifos_and_ports(tmp_path, monkeypatch, tiles, bus, latency):
    """FIFOs of 32, 64 and 256 beats; a 16-byte port whose beat holds several planes; 12-row tiles that
    stack a batch's images."""
    every_dense_conv(monkeypatch)
    for name, (qnet, x_int) in {"small": small_maps(4 if tiles[0] == 12 else 6),
                                "down": _downsample(7, 3, n=9, m=10)}.items():
        run_prefetched(tmp_path / name, qnet, x_int, FEConfig(4, 4, *tiles, batch=3, prefetch=1), prefetch_build(
            4, 4, *tiles, bus=bus, latency=latency))


def test_the_generator_prefetches_where_the_model_finds_it_faster():
    """At the board's latency the program prefetches the memory-bound convs the model finds faster that way,
    and only those; below PREFETCH_LATENCY_MIN no engine has the FIFO and nothing prefetches, nor in a
    design without it (`fe.prefetch` 0, the default)."""
    qnet, x_int = _downsample(7, 2, n=9, m=10)
    cfg = FEConfig(4, 4, 4, 4, batch=2, prefetch=1)
    program = build_fe_program(qnet, cfg, x_int, bus_bytes=8, latency=LATENCY)
    for img in program.ops:
        plain, ahead = (op_cycles(replace(img.op, prefetch=flag), cfg, 8, LATENCY).cycles for flag in (False, True))
        if img.op.prefetch:
            assert ahead < plain
        elif img.op.kind == "conv" and op_cycles(img.op, cfg, 8, LATENCY).bound == "memory":
            assert plain <= ahead
    assert any(img.op.prefetch for img in program.ops)
    low = build_fe_program(qnet, cfg, x_int, bus_bytes=8, latency=isa.PREFETCH_LATENCY_MIN - 1)
    assert not any(img.op.prefetch for img in low.ops)
    without = build_fe_program(qnet, replace(cfg, prefetch=0), x_int, bus_bytes=8, latency=LATENCY)
    assert not any(img.op.prefetch for img in without.ops)  # a design without the FIFO


def _checked(program, memory=None, prefetch=True):
    """The loader's reading of `program` (or of its image changed to `memory`)."""
    ops = [{"name": img.layer, "kind": img.op.kind, "out_addr": img.out_addr, "out_shape": list(img.stored_shape),
            "out_pitch": img.image_pitch} for img in program.ops]
    return check_descriptors(program.memory if memory is None else memory, program.desc_addr, ops, 1024, (4, 4, 4, 4),
                             8, "p.json", prefetch=prefetch)


def test_the_loader_refuses_prefetches_the_engine_cannot_run(monkeypatch):
    """A prefetch bit on an engine without the FIFO, on a pool, an add or a depthwise conv: refused, naming
    the descriptor (the engine would ignore it and the model would predict what does not happen)."""
    every_dense_conv(monkeypatch)
    qnet, x_int = small_maps(6)
    program = build_fe_program(qnet, FEConfig(4, 4, 4, 4, batch=2, prefetch=1), x_int, bus_bytes=8, latency=LATENCY)
    assert [op.prefetch for op in _checked(program)] == [img.op.prefetch for img in program.ops]
    with pytest.raises(DesignError, match="no read FIFO"):
        _checked(program, prefetch=False)
    for i, img in enumerate(program.ops):
        if img.op.per_channel:
            memory = program.memory.copy()
            memory[program.desc_addr + i * isa.DESCRIPTOR_BYTES + 1] |= 0x08  # w0 bit 11
            with pytest.raises(DesignError, match=f"descriptor {i} .*only a dense convolution"):
                _checked(program, memory)


def test_prefetching_through_the_axi_master_under_random_pauses(tmp_path, monkeypatch):
    """The engine as a board builds it, behind dtl_axi_master: prefetched requests queue behind few
    outstanding reads and random pauses on every channel, and every output stays the golden model's."""
    from dtlgen.isa.params import FEParams
    from dtlgen.sim import axi_sim

    every_dense_conv(monkeypatch)
    qnet, x_int = _downsample(7, 2, n=9, m=10)
    cfg = FEConfig(4, 4, 4, 8, batch=2, prefetch=1)
    params = FEParams(4, 4, 4, 8, a_bits=8, w_bits=8, bus_bytes=8, m_max=1024, pf_beats=isa.prefetch_beats(LATENCY))
    program = build_fe_program(qnet, cfg, x_int, 1 << 18, bus_bytes=8, latency=LATENCY)
    assert sum(img.op.prefetch for img in program.ops) >= 3
    predicted = sum(op_cycles(img.op, cfg, 8, 0).cycles for img in program.ops)
    result = axi_sim.run_image(program.memory, program.desc_addr, len(program.ops), params, tmp_path,
                               max_cycles=8 * predicted + 20_000, pause_seed=5, max_reads=2)
    reference = golden.fe_forward(qnet, x_int)
    for i, img in enumerate(program.ops):
        want = reference[img.layer][img.image0:img.image0 + img.op.total_images]
        assert np.array_equal(program.read_images(result.memory, i), want), img.op.name


def test_the_dse_gives_the_front_the_fifo_where_it_is_faster(monkeypatch):
    """`Fixed.prefetch` ("auto" by default, `dtlgen dse --prefetch`): "auto" searches the space it always did
    and then gives a front design the FIFO where it still fits and the model finds it faster; "search" adds
    `fe_prefetch` to the search on a board whose memory calls for the FIFO; "off", or an ECP5 board's 4-cycle
    memory, never builds it."""
    import dtlgen
    from dtlgen.boards import load_board
    from dtlgen.dse import run as dse_run
    from dtlgen.dse.problem import Fixed, Space, make_design
    from dtlgen.model import load_model
    from dtlgen.model.calibration import calibration_inputs
    from dtlgen.perf import predict

    network = load_model("mobilenet_v1_cifar")  # its 1x1 convs on small maps are memory-bound at batch 1
    calib = calibration_inputs(network, 0)
    board = load_board("pynq-z2")
    spaces = []
    searched = dse_run.search
    monkeypatch.setattr(dse_run, "search", lambda *args, **kw: spaces.append(args[6]) or searched(*args, **kw))
    off = dse_run.run_dse(network, board, calib, None, 8, 2, fixed=Fixed(prefetch="off"))
    auto = dse_run.run_dse(network, board, calib, None, 8, 2)
    assert spaces[0] == spaces[1] and "fe_prefetch" not in spaces[1].names
    assert {p["fe"]["prefetch"] for p in off.front} == {0} and {p["fe"]["prefetch"] for p in auto.front} == {0, 1}
    plain = {tuple(sorted((k, v) for k, v in p["variables"].items() if k != "fe_prefetch")): p for p in off.front}
    for point in auto.front:
        before = plain[tuple(sorted((k, v) for k, v in point["variables"].items() if k != "fe_prefetch"))]
        assert point["info_loss"] == before["info_loss"]
        if point["fe"]["prefetch"]:  # faster with it, and it fits
            assert point["time_s"] < before["time_s"] and point["lut"] > before["lut"]
            design = make_design(point["variables"], board, Fixed(), network)
            assert design.fe.prefetch == 1 and predict(network, design, board).resources.fits(board)
        else:
            assert point["time_s"] == before["time_s"]
    objectives = np.array([[p[name] for name in ("info_loss", "time_s", "utilisation")] for p in auto.front])
    assert not any(np.all(other <= row) and np.any(other < row) for row in objectives for other in objectives)
    assert auto.design["fe"]["prefetch"] == auto.front[auto.chosen]["fe"]["prefetch"]
    never = dse_run.run_dse(network, board, calib, None, 8, 2, space=Space(fe_prefetch=(0, 1)),
                            fixed=Fixed(prefetch="off"))
    assert "fe_prefetch" not in spaces[-1].names and {p["fe"]["prefetch"] for p in never.front} == {0}
    searched_space = dse_run.run_dse(network, board, calib, None, 8, 2, fixed=Fixed(prefetch="search"))
    assert "fe_prefetch" in spaces[-1].names and {p["fe"]["prefetch"] for p in searched_space.front} <= {0, 1}
    digits = load_model("digits_cnn")
    ecp5 = dse_run.run_dse(digits, load_board("ulx3s-85f"), calibration_inputs(digits, 0), None, 8, 2,
                           fixed=Fixed(prefetch="search"))
    assert "fe_prefetch" not in spaces[-1].names and {p["fe"]["prefetch"] for p in ecp5.front} == {0}
    for wrong in ("yes", True):
        with pytest.raises(DesignError, match=f"prefetch={wrong!r}: give \"auto\""):
            dtlgen.explore(network, "pynq-z2", pop=4, gens=1, prefetch=wrong)


def test_dtlgen_perf_marks_the_prefetching_layers():
    """`dtlgen perf` (`perf.predict`) labels the layers whose descriptors prefetch, counts them faster, and the
    design with the FIFO uses the LUTs the resource model gives it; without `fe.prefetch` nothing changes."""
    from dtlgen.boards import load_board
    from dtlgen.model import load_model
    from dtlgen.perf import Design, predict
    from dtlgen.perf.rl import RLConfig

    board, network = load_board("pynq-z2"), load_model("mobilenet_v1_cifar")
    with_fifo, without = (predict(network, Design("pynq-z2", 90.0, FEConfig(29, 23, 32, 16, batch=8, prefetch=flag),
                                                  RLConfig(4, 4, 16), board_spec=board.to_dict()), board)
                          for flag in (1, 0))
    marked = [layer.name for layer in with_fifo.fe_layers if layer.op.endswith(", prefetch")]
    assert "blocks.12.pw_conv" in marked and not any("prefetch" in layer.op for layer in without.fe_layers)
    assert with_fifo.fe_cycles_per_image < without.fe_cycles_per_image
    fifo = fe_model.prefetch_fifo(board, 128)  # 128 beats of 16 bytes: four RAMB18 (512 x 36 each)
    assert (fifo.bram18, fifo.lut) == (4, 524)
    assert with_fifo.fe_resources.lut - without.fe_resources.lut == fifo.lut
    assert with_fifo.fe_resources.bram18 - without.fe_resources.bram18 == fifo.bram18
