"""RL engine LOADs longer than one read request (65535 beats) in Verilator, and the planner's real limits.

The engine's read port counts a request's beats in 16 bits; a LOAD descriptor counts them in 32. The
engine issues a longer transfer as a chain of requests, the next offered as soon as the previous is
accepted, so a memory that queues requests streams it with one latency and no gap: the cycles are
exactly the model's LOAD term (dtlgen.perf.rl), and the data lands where a single burst would put it.

The design is the smallest that forces a split of both long transfers: a 2-byte bus (one value a
beat) and a 4x4 array under one linear layer 4096 -> 16, batch 16. The batch's features are 16 x 4096
= 65536 beats (the last request carries 1 beat); the parameter image is 4 x 1024 weight tiles of 16
beats plus 4 bias rows of 4 beats = 65552 beats (the last request carries 17).
"""

from __future__ import annotations

import numpy as np
import pytest

from dtlgen.errors import DesignError
from dtlgen.generator.rl_program import plan_rl
from dtlgen.host import rl_program as prog
from dtlgen.host.rl_host import TrainingPlan
from dtlgen.model.ir import Layer, Network
from dtlgen.perf import rl
from dtlgen.perf.rl import RLConfig
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim import rl_sim
from dtlgen.sim.fe_sim import read_hex

TM, TN, BUS, LATENCY = 4, 4, 2, 20
N, M, BATCH, STEPS = 4096, 16, 16, 2
REQUEST_MAX_BEATS = (1 << 16) - 1  # the read port's 16-bit beat count


def linear_network(n: int, m: int, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    fc = Layer("fc", "linear", ["input"], (n,), (m,), weight=rng.normal(0.0, 1.0 / np.sqrt(n), (m, n)),
               bias=rng.normal(0.0, 0.2, m), frozen=False)
    return Network("wide_fc", (n,), [fc])


def quantized(n: int, m: int, batch: int, samples: int, seed: int = 0):
    x = np.random.default_rng(seed + 1).standard_normal((samples, n))
    return quantize(linear_network(n, m, seed), x, PrecisionConfig(batch=batch)), x


def descriptor_beats(descriptors: bytes, index: int = 0) -> int:
    """Word 11 (the 32-bit beat count) of the index-th descriptor of a list."""
    return int(np.frombuffer(descriptors, dtype="<u4")[index * rl.DESCRIPTOR_BYTES // 4 + 11])


def test_transfers_longer_than_one_request_are_planned_with_their_full_length():
    qnet, _ = quantized(N, M, BATCH, 2 * BATCH)
    layout = plan_rl(qnet, RLConfig(TM, TN, batch=BATCH), BUS)  # refused before chained requests
    feature_beats = descriptor_beats(prog.forward_list(layout, BATCH))
    params_beats = descriptor_beats(prog.params_list(layout, "LOAD_P"))
    assert feature_beats == BATCH * N > REQUEST_MAX_BEATS
    assert params_beats == layout.params_bytes // BUS == M * N + M > REQUEST_MAX_BEATS
    assert descriptor_beats(prog.params_list(layout, "STORE_P")) == params_beats


def test_the_real_limits_name_their_cause_and_fix():
    # 256 x 257 weights on a 1x1 array are 65792 weight tiles: LOAD_P's 16-bit tile count cannot hold them.
    qnet, _ = quantized(257, 256, 4, 8)
    with pytest.raises(DesignError, match=r"65792 weight tiles.*16-bit.*larger rl\.tm / rl\.tn"):
        plan_rl(qnet, RLConfig(1, 1, batch=4), BUS)
    assert plan_rl(qnet, RLConfig(2, 2, batch=4), BUS).w_depth_used == 128 * 129  # the advised fix works
    # 33 samples of 4096 features in 2-lane stash words end past stash word 65535 (a 16-bit field).
    qnet, _ = quantized(N, 4, 33, 33)
    with pytest.raises(DesignError, match=r"'fc'.*activation-stash word address.*16-bit.*smaller rl\.batch"):
        plan_rl(qnet, RLConfig(1, 1, batch=33), BUS)
    qnet, _ = quantized(N, 4, 31, 31)
    assert plan_rl(qnet, RLConfig(1, 1, batch=31), BUS).layers[0].ya == 31 * N // 2  # the advised fix works


def test_long_loads_train_bit_exact_on_the_cycle_model(tmp_path):
    """About 0.6 M engine cycles: two steps of 16 samples, each LOAD of features 65536 beats (the second
    step's in the background of the first step's UPDATE); the parameter image (65552 beats) goes in once and
    comes back after every step."""
    qnet, x = quantized(N, M, BATCH, STEPS * BATCH)
    rng = np.random.default_rng(2)
    plan = TrainingPlan(golden.quantize_input(qnet, x), rng.integers(0, M, len(x)), rng.permutation(len(x)),
                        [BATCH] * STEPS, [7, 8], 3, list(range(STEPS)))
    layout = plan_rl(qnet, RLConfig(TM, TN, batch=BATCH), BUS)
    state = golden.initial_rl_state(qnet)
    workdir = tmp_path / "run"
    result = rl_sim.simulate_training(layout, plan, state, workdir, LATENCY)
    expected = rl_sim.golden_replay(qnet, plan, state)

    assert rl_sim.first_mismatch(result.weights, expected) is None
    assert not np.array_equal(expected[STEPS - 1]["fc"][0], state["fc"][0]), "training moved no weight"
    first, second = rl_sim.predict_plan(layout, LATENCY, plan.batch_sizes)
    assert first[0].mode == "LOAD" and first[0].cycles > REQUEST_MAX_BEATS
    assert result.descriptor_cycles == [(d.layer, d.mode, d.cycles) for d in first]
    # the second step's features (65536 beats, two requests) load beside the first step's UPDATE, which
    # walks 4 x 1025 tiles of 16 rows and outlasts them by a few dozen cycles; the second step trains on them
    (_, bg_mode, bg_cycles), (_, mode, update) = result.descriptor_cycles[-2:]
    assert bg_mode == "LOAD" and bg_cycles == fetch_cycles() + rl.BACKGROUND_OVERHEAD and mode == "UPDATE"
    assert fetch_cycles() + BATCH * N + rl.BACKGROUND_TAIL < update
    assert [int(c) for c in result.step_cycles.sum(axis=1)] == [sum(d.cycles for d in first),
                                                                sum(d.cycles for d in second)]
    # LOAD_P: the model's LOAD term (fetch, latency, one beat per cycle, overhead) over 65552 beats
    load_p = int(read_hex(workdir / "perf_step0.hex", 65536, 32)[prog.PERF_BASE["params"]])
    assert load_p == fetch_cycles() + LATENCY + layout.params_bytes // BUS + rl.LOAD_OVERHEAD


def fetch_cycles() -> int:
    return LATENCY + rl.DESCRIPTOR_BYTES // BUS
