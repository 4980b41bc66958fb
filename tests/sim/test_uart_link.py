"""The board design (dtl_uart_core) driven over its simulated UART by the PC's host code.

End to end as a user's PC would do it on the board: PING; load an FE program into the on-chip
memory, run it, read every op's output back (bit-exact with the golden model, and the engine's
per-descriptor counters equal to the cycles its RUN reply reports); re-train the RL engine through
`RLHost` on a `UartDevice` (weights bit-exact with the golden replay after every step).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dtlgen.generator.fe_program import build_fe_program
from dtlgen.generator.rl_program import plan_rl
from dtlgen.host.rl_host import TrainingPlan
from dtlgen.isa.params import CoreParams, FEParams
from dtlgen.model import import_module, resolve_split
from dtlgen.boards import load_board
from dtlgen.perf.fe import FEConfig, op_cycles
from dtlgen.perf.rl import RLConfig, rl_gemms, step_cycles, step_schedule
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim.rl_sim import first_mismatch, golden_replay
from dtlgen.sim.uart_sim import simulate_link

BUS = 2  # the ULX3S's SDRAM width, as the ECP5 designs use
# A RUN's cycle count (start to busy falling, counted by the core) holds the descriptors' own counts plus
# the engine's start cycle, and for the FE engine the cycle of its final perf report as well.
FE_RUN_EXTRA, RL_RUN_EXTRA = 2, 1
CLKS_PER_BIT = 4  # a fast line keeps the bit-level simulation short; the RTL is the same at any rate


def tiny_network():
    """conv 2→4 (3×3) + ReLU + 2×2 max-pool on 2×2 inputs (the FE engine), then a retrainable linear 4→3."""
    torch.manual_seed(3)
    module = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 3))
    network = import_module(module, (2, 2, 2), "tiny")
    return network.with_split(resolve_split(network, {"retrain_last": 1}))


def test_fe_and_retraining_over_the_uart_link_bit_exact(tmp_path):
    network = tiny_network()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 2, 2, 2))
    batch = 4
    qnet = quantize(network, x, PrecisionConfig(batch=batch, lr_shift=5))
    x_int = golden.quantize_input(qnet, x)
    cfg = FEConfig(2, 2, 2, 2)
    program = build_fe_program(qnet, cfg, x_int[0], m_max=4, bus_bytes=BUS)
    layout = plan_rl(qnet, RLConfig(2, 2, batch=batch), BUS)
    features = golden.fe_forward(qnet, x_int)[qnet.rl_layers[0].inputs[0]].reshape(len(x), -1)
    plan = TrainingPlan(features, rng.integers(0, 3, len(x)), rng.permutation(len(x))[:2 * batch], [batch] * 2,
                        [5, 5], 0, [0, 1])
    state = golden.initial_rl_state(qnet)
    rl_base = 4096
    fe = FEParams(2, 2, 2, 2, a_bits=8, w_bits=8, bus_bytes=BUS, m_max=4, k_max=3, s_max=1, has_add=0, has_scale=0,
                  has_gen=0, has_sparse=0, dw_k=0)
    core = CoreParams(fe, layout.engine, mem_bytes=rl_base + layout.memory_bytes, rl_base=rl_base,
                      clks_per_bit=CLKS_PER_BIT)
    # buffers sized for the program, as dtlgen generate sizes them for a board (a 3x3 stride-1 conv, no add)
    assert max(img.op.k for img in program.ops) == 3 and max(img.op.s for img in program.ops) == 1
    result = simulate_link(core, program, tmp_path, (layout, plan, state))

    assert bool(result["has_rl"])
    reference = golden.fe_forward(qnet, x_int[:1])
    for i, image in enumerate(program.ops):
        got = result[f"fe_out{i}"].view(np.int8).astype(np.int64).reshape(image.out_shape)
        assert np.array_equal(got, reference[image.layer][0]), image.op.name
    # cycles: the board design's memory is what the board file describes, so the model predicts the RTL
    board = load_board("ulx3s-85f")
    assert board.dram_bytes_per_cycle == BUS
    bus, latency = board.dram_bytes_per_cycle, board.dram_latency_cycles
    assert list(result["fe_perf"]) == [op_cycles(img.op, cfg, bus, latency).cycles for img in program.ops]
    assert int(result["fe_cycles"]) == int(result["fe_perf"].sum()) + FE_RUN_EXTRA  # the RUN reply spans them all
    weights = {k: {p.name: (result[f"step{k}_w_{p.name}"], result[f"step{k}_b_{p.name}"]) for p in layout.layers}
               for k in plan.check_steps}
    assert first_mismatch(weights, golden_replay(qnet, plan, state)) is None
    # each step runs the forward list (LOAD, FWD..., STORE) and the backward list (LOAD dY, BWD_DATA/UPDATE...);
    # the second step's features load in the background of the first step's last UPDATE
    expected = []
    for samples, (load, prefetch) in zip(plan.batch_sizes, step_schedule(plan.batch_sizes)):
        descriptors = step_cycles(rl_gemms(network), RLConfig(2, 2, batch=batch), bus, latency, samples, load, prefetch)
        split = [d.mode for d in descriptors].index("STORE") + 1
        expected.append([sum(d.cycles for d in part) + RL_RUN_EXTRA for part in (descriptors[:split], descriptors[split:])])
    assert len(expected) == 2 and result["rl_cycles"].tolist() == expected
