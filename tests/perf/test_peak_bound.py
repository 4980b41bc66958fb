"""No GOPs figure above its physical ceiling (`dtlgen.perf.predict`, both engines).

For random small FE and RL engines and layer shapes: every FE operation, every RL descriptor,
every RL layer (its descriptors together) and both engine totals stay at or below the array's
peak at the design clock, 2 · multipliers · f (FE: tm·tn, or tm lanes for depthwise convs, pools
and adds; RL: tm·tn), and every row at or below the roofline printed beside it. The RL ops of a
descriptor are also bounded by the array's busy cycles alone, so a measured (RTL) cycle count,
which can never be below those, cannot lift a GOPs figure above the peak either.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtlgen.boards import load_board
from dtlgen.model.ir import Layer, Network, conv_out_size
from dtlgen.perf import Design, predict, rl
from dtlgen.perf.fe import SUPPORTED_KERNELS, SUPPORTED_STRIDES, FEConfig
from dtlgen.perf.rl import RLConfig

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BOARDS = {name: load_board(name) for name in ("pynq-z2", "zcu104", "ulx3s-85f", "orangecrab-25f")}
REL = 1e-9  # float rounding of the GOPs division, nothing more


def peak_gops(multipliers: int, clock_mhz: float) -> float:
    return 2 * multipliers * clock_mhz * 1e6 / 1e9


def at_most(value: float, ceiling: float) -> bool:
    return value <= ceiling * (1 + REL)


@st.composite
def fe_networks(draw) -> Network:
    """Frozen layers only: a linear layer, or a dense / depthwise conv, maybe a fusable 2/2 max-pool."""
    if draw(st.integers(0, 5)) == 0:
        n, m = draw(st.integers(1, 80)), draw(st.integers(1, 80))
        return Network("fe", (n,), [Layer("fc", "linear", ["input"], (n,), (m,))])
    n = draw(st.integers(1, 48))
    depthwise = n > 1 and draw(st.booleans())
    m = n if depthwise else draw(st.integers(1, 48))
    k = draw(st.sampled_from(SUPPORTED_KERNELS))
    p = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(1, k - 2 * p), 20))
    s = draw(st.sampled_from(SUPPORTED_STRIDES))
    r = conv_out_size(h, k, s, p)
    layers = [Layer("conv", "conv2d", ["input"], (n, h, h), (m, r, r), kernel=k, stride=s, padding=p,
                    groups=n if depthwise else 1, activation="relu")]
    if r >= 2 and draw(st.booleans()):
        q = conv_out_size(r, 2, 2, 0)
        layers.append(Layer("pool", "maxpool", ["conv"], (m, r, r), (m, q, q), kernel=2, stride=2))
    return Network("fe", (n, h, h), layers)


@st.composite
def rl_networks(draw) -> Network:
    """Retrainable layers only: a chain of one to three GEMMs (linear, or 1×1 convs over P positions)."""
    count = draw(st.integers(1, 3))
    widths = draw(st.lists(st.integers(1, 300), min_size=count + 1, max_size=count + 1))
    if draw(st.booleans()):  # 1×1 convs: a GEMM per position
        side = draw(st.integers(1, 4))
        layers = [Layer(f"pw{i}", "conv2d", [f"pw{i - 1}" if i else "input"], (widths[i], side, side),
                        (widths[i + 1], side, side), frozen=False) for i in range(count)]
        return Network("rl", (widths[0], side, side), layers)
    layers = [Layer(f"fc{i}", "linear", [f"fc{i - 1}" if i else "input"], (widths[i],), (widths[i + 1],),
                    frozen=False) for i in range(count)]
    return Network("rl", (widths[0],), layers)


tiles = st.integers(1, 20)
clocks = st.sampled_from([10.0, 50.0, 100.0, 125.5, 200.0, 300.0])


@settings(max_examples=300, **SETTINGS)
@given(network=rl_networks(), tm=tiles, tn=tiles, batch=st.integers(1, 32), clock_mhz=clocks,
       board=st.sampled_from(sorted(BOARDS)))
def test_rl_gops_never_exceed_the_array_peak_or_the_roofline(network, tm, tn, batch, clock_mhz, board):
    cfg = RLConfig(tm, tn, batch=batch)
    design = Design(board, clock_mhz, FEConfig(4, 4, 4, 4), cfg)
    prediction = predict(network, design, BOARDS[board])
    peak = peak_gops(tm * tn, clock_mhz)
    rows = prediction.rl_descriptors
    assert rows
    for p in rows:
        assert at_most(p.gops, peak), (p, peak)
        assert at_most(p.gops, p.roofline_gops), p
        assert p.roofline_gops <= peak * (1 + REL), p
    per_layer: dict[str, list] = {}
    for p in rows:
        per_layer.setdefault(p.name, []).append(p)
    for name, descriptors in per_layer.items():
        ops, cycles = sum(p.ops for p in descriptors), sum(p.cycles for p in descriptors)
        assert at_most(ops / (cycles / (clock_mhz * 1e6)) / 1e9, peak), (name, descriptors)
    assert at_most(prediction.rl_gops, peak), (prediction.rl_gops, peak)
    # The array's busy cycles alone bound the ops: a measured count cannot beat them.
    board_obj = BOARDS[board]
    fetch = board_obj.dram_latency_cycles + math.ceil(rl.DESCRIPTOR_BYTES / board_obj.dram_bytes_per_cycle)
    gemms = rl.rl_gemms(network)
    positions = {g.name: g.positions for g in gemms}
    for d in rl.step_cycles(gemms, cfg, board_obj.dram_bytes_per_cycle, board_obj.dram_latency_cycles):
        lead = rl.update_lead(cfg.tm, batch * positions[d.layer]) if d.mode == "UPDATE" else 0
        busy = d.cycles - fetch - rl.GEMM_OVERHEAD - lead
        if d.ops:
            assert d.ops <= 2 * tm * tn * busy, d


@settings(max_examples=300, **SETTINGS)
@given(network=fe_networks(), tm=tiles, tn=tiles, tr=st.integers(1, 12), tc=st.integers(1, 12),
       bits=st.sampled_from([4, 8, 16]), clock_mhz=clocks, board=st.sampled_from(sorted(BOARDS)))
def test_fe_gops_never_exceed_the_array_peak_or_the_roofline(network, tm, tn, tr, tc, bits, clock_mhz, board):
    design = Design(board, clock_mhz, FEConfig(tm, tn, tr, tc, w_bits=bits, a_bits=bits), RLConfig(4, 4))
    prediction = predict(network, design, BOARDS[board])
    peak = peak_gops(tm * tn, clock_mhz)
    assert prediction.fe_layers
    for p in prediction.fe_layers:
        lanes = tm if ("(dw)" in p.op or not p.op.startswith("conv")) else tm * tn
        layer = network.layer(p.name)
        if "(dw)" in p.op and layer.stride <= 2 and 3 <= layer.kernel <= tn // 2:  # a kernel row an issue
            lanes = tm * layer.kernel
        assert at_most(p.gops, peak_gops(lanes, clock_mhz)), (p, lanes)
        assert at_most(p.gops, p.roofline_gops), p
        assert p.roofline_gops <= peak_gops(lanes, clock_mhz) * (1 + REL), p
        assert 0 <= p.utilisation <= 1, p
    assert at_most(prediction.fe_gops, peak), (prediction.fe_gops, peak)
