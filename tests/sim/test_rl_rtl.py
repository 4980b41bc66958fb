"""RL engine RTL in Verilator: re-training bit-exact against the golden model, cycles against the model.

Every test trains small chains of retrainable linear / 1x1 conv layers through the host loop
(dtlgen.host.rl_host) on the simulated engine, reads the weights back after every step and holds
them against `golden.rl_train_step` bit for bit. With a memory that never stalls every descriptor
of the first two steps must take exactly the cycles `dtlgen.perf.rl.step_cycles` predicts, and every step
exactly its total (steps after the first load their features in the previous step's background); a
stalling memory may only cost cycles. Bad configurations must fail with a clear error before any build.

One engine build serves the random chains: the layouts are widened (`dataclasses.replace`) to the
fixed depths, accumulator width and memory size below, which must not change any result.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtlgen.errors import DtlgenError, UnsupportedLayerError
from dtlgen.generator.rl_program import plan_rl
from dtlgen.host.rl_plan import HaltRule
from dtlgen.host.rl_program import RLLayout
from dtlgen.model.ir import Layer, Network
from dtlgen.model.prune import prune as prune_network, sparsity_of
from dtlgen.perf.rl import RLConfig, infer_cycles
from dtlgen.quant import golden
from dtlgen.quant.fixed import Distillation
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim import rl_sim
from dtlgen.sim.netlist import netlist_sources

TM, TN, BUS, LATENCY = 3, 4, 8, 20
# Room for up to 3 layers of <= 40 x 40, batch <= 6 at <= 4 positions (4 stash lanes of 10 words), and the
# second feature region.
# Every build keeps pruning masks (HAS_MASK): a dense run (LOAD_P alone leaves every weight unmasked) must
# not see them, and a pruned one shares the build.
ENGINE_BUILD = {"a_depth": 2048, "g_depth": 1024, "w_depth": 512, "b_depth": 64, "acc_bits": 56, "has_mask": 1}
MEMORY_BYTES = 1 << 16
_runs = itertools.count()


@dataclass(frozen=True)
class Chain:
    """A retrainable chain: `kind` linear (vectors), conv (1x1 convs over an hw map), or conv_flatten
    (1x1 convs on a 1x1 map, a flatten, then linear layers from layer `split` on)."""

    kind: str
    hw: tuple[int, int]
    widths: tuple[int, ...]  # input channels, then each layer's outputs
    activations: tuple[str | None, ...]
    split: int
    batch: int
    last_batch: int
    steps: int
    lr_shift: int
    first_step: int
    seed: int
    engine: tuple[int, int] = (TM, TN)  # the array, tm x tn
    bits: int = 16  # rl_bits


def build_network(chain: Chain) -> Network:
    rng = np.random.default_rng(chain.seed)
    spatial = chain.kind != "linear"
    layers, prev = [], "input"
    for i, act in enumerate(chain.activations):
        n, m = chain.widths[i], chain.widths[i + 1]
        conv = spatial and not (chain.kind == "conv_flatten" and i >= chain.split)
        if spatial and not conv and layers[-1].op != "linear":
            layers.append(Layer("flat", "flatten", [prev], (n, 1, 1), (n,), frozen=False))
            prev = "flat"
        hw = chain.hw if conv else ()
        weight = rng.normal(0.0, 1.0 / np.sqrt(n), (m, n, 1, 1) if conv else (m, n))
        layers.append(Layer(f"l{i}", "conv2d" if conv else "linear", [prev], (n, *hw), (m, *hw), activation=act,
                            weight=weight, bias=rng.normal(0.0, 0.2, m), frozen=False))
        prev = f"l{i}"
    return Network("chain", layers[0].in_shape, layers)


def widened(layout: RLLayout) -> RLLayout:
    for name, value in ENGINE_BUILD.items():
        planned = getattr(layout.engine, name)
        assert planned <= value, f"planned {name} {planned} exceeds the test build's"
    assert layout.memory_bytes <= MEMORY_BYTES
    return replace(layout, engine=replace(layout.engine, **ENGINE_BUILD), memory_bytes=MEMORY_BYTES)


def train(chain: Chain, workdir, stall_period: int = 0, netlist: bool = False, axi: bool = False, pause_seed: int = 0,
          prune: float = 0.0, masked: bool = True):
    """Quantise and plan `chain`, re-train it on the engine from random samples (full batches, then
    `last_batch`; the lr shift alternates by one); also the golden weights and the predicted cycles.
    With `prune`, that share of every layer's weights is pruned by magnitude, and the plan carries the
    masks (unless not `masked`: the pruned weights may then grow back)."""
    network = build_network(chain)
    if prune:
        network = prune_network(network, {"rl": prune})
    rng = np.random.default_rng(chain.seed + 1)
    sizes = [chain.batch] * (chain.steps - 1) + [chain.last_batch]
    x = rng.standard_normal((sum(sizes), *network.input_shape))
    qnet = quantize(network, x, PrecisionConfig(batch=chain.batch, lr_shift=chain.lr_shift, rl_bits=chain.bits))
    classes = int(np.prod(network.layers[-1].out_shape))
    plan = rl_sim.TrainingPlan(golden.quantize_input(qnet, x), rng.integers(0, classes, len(x)),
                               rng.permutation(len(x)), sizes, [chain.lr_shift + k % 2 for k in range(chain.steps)],
                               chain.first_step, list(range(chain.steps)),
                               masks=golden.rl_masks(qnet) if masked else None)
    layout = widened(plan_rl(qnet, RLConfig(*chain.engine, bits=chain.bits, batch=chain.batch), BUS))
    state = golden.initial_rl_state(qnet)
    sources_dir = None
    if netlist:  # yosys's reading of the engine at this build's parameters
        engine = rl_sim.sim_build(layout, LATENCY, stall_period).rl.hdl_parameters()
        sources_dir = netlist_sources("rl_engine.sv", "rl_engine", engine, workdir / "netlist")
    result = rl_sim.simulate_training(layout, plan, state, workdir / f"run{next(_runs)}", LATENCY, stall_period,
                                      sources_dir=sources_dir, axi=axi, pause_seed=pause_seed)
    return result, rl_sim.golden_replay(qnet, plan, state), rl_sim.predict_plan(layout, LATENCY, sizes), state


@st.composite
def chains(draw) -> Chain:
    kind = draw(st.sampled_from(["linear", "conv", "conv_flatten"]))
    depth = draw(st.integers(2 if kind == "conv_flatten" else 1, 3))
    widths = [draw(st.integers(1, 40)) for _ in range(depth)] + [draw(st.integers(2, 40))]
    batch = draw(st.integers(1, 6))
    return Chain(kind, draw(st.sampled_from([(2, 2), (1, 3)])) if kind == "conv" else (1, 1), tuple(widths),
                 tuple(draw(st.sampled_from([None, "relu", "relu6"])) for _ in range(depth)),
                 draw(st.integers(1, depth - 1)) if kind == "conv_flatten" else depth, batch,
                 draw(st.integers(1, max(1, batch - 1))), draw(st.integers(2, 4)), draw(st.integers(0, 10)),
                 draw(st.integers(0, 1000)), draw(st.integers(0, 2**16)))


RELU6_CONV = Chain("conv", (2, 2), (7, 9, 5, 3), ("relu6", "relu", None), 3, 4, 3, 3, 3, 17, 5)
FLATTEN_1X1 = Chain("conv_flatten", (1, 1), (6, 5, 11), ("relu", None), 1, 3, 2, 2, 4, 0, 9)
# A tall array trained on batches of 5 and 1: UPDATE walks its LFSR row starts a row a cycle while
# the first tile accumulates (perf/rl.py `update_lead`: 0 and 4 cycles before it issues); in the
# first layer (one input: one tile per row block) each row block's tile waits for the walk of the
# next block's starts and reads the last of them the very cycle it is written (`update_issue`:
# block 0 at cycle 9 or 13, then a block every 9 cycles instead of 5 or 2); a cycle earlier and a
# block's last row rounds with a stale LFSR state. The last layer's blocks are two tiles of 5 cycles.
TALL_ARRAY = Chain("linear", (1, 1), (1, 45, 3, 12), (None, "relu6", None), 3, 5, 1, 3, 3, 0, 21, engine=(9, 2))
# On that array the stash has 16 lanes, so a row of one feature is 4 beats: step 0's background LOAD of the
# next 6 samples x 4 positions (96 beats) outlasts the first layer's UPDATE beside it (one tile, 24 rows),
# which then ends BACKGROUND_TAIL after the load's last beat; step 1's (2 samples) is shorter than its UPDATE.
LOAD_BOUND = Chain("conv", (2, 2), (1, 5, 3), ("relu", None), 2, 6, 2, 3, 3, 0, 33, engine=(9, 2))
# 8-bit values updated with shifts of 9 and more: the stochastic-rounding sum v + (r & mask) reaches
# 127 + 2^s - 1, past the 10-bit step (BITS + 2) it was once formed in (squeezenet_cifar's fc1 found it)
EIGHT_BIT_LONG_SHIFTS = Chain("linear", (1, 1), (30, 16, 6), ("relu", None), 2, 6, 6, 4, 11, 0, 3, engine=(2, 3),
                              bits=8)


def check_exact_and_on_the_model(chain: Chain, workdir) -> None:
    result, expected, predicted, _ = train(chain, workdir)
    assert sorted(expected) == list(range(chain.steps))
    assert rl_sim.first_mismatch(result.weights, expected) is None
    assert result.descriptor_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[0]]
    if chain.steps > 2:  # step 1: its LOAD was step 0's background one; step 2's loads beside its last UPDATE
        assert result.steady_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[1]]
    assert [int(c) for c in result.step_cycles.sum(axis=1)] == [sum(d.cycles for d in step) for step in predicted]


@pytest.mark.parametrize("chain", [RELU6_CONV, FLATTEN_1X1, TALL_ARRAY, LOAD_BOUND, EIGHT_BIT_LONG_SHIFTS],
                         ids=["relu6_conv_2x2", "conv_flatten_linear", "tall_array_lfsr_walk", "background_load_bound",
                              "eight_bit_long_shifts"])
def test_chosen_chains_train_bit_exact_on_the_cycle_model(tmp_path, chain):
    check_exact_and_on_the_model(chain, tmp_path)


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chain=chains())
def test_random_chains_train_bit_exact_on_the_cycle_model(tmp_path, chain):
    check_exact_and_on_the_model(chain, tmp_path)


# 8 x 9 PEs: a mask tile of 72 bits spans two beats of the 8-byte bus
WIDE_ARRAY = Chain("linear", (1, 1), (20, 17, 10), ("relu", None), 2, 4, 3, 3, 2, 0, 41, engine=(8, 9))


@pytest.mark.parametrize("chain", [RELU6_CONV, WIDE_ARRAY], ids=["one_beat_mask_tiles", "two_beat_mask_tiles"])
def test_a_pruned_chain_keeps_its_pruned_weights_at_zero(tmp_path, chain):
    """80 % of the chain's weights pruned (one magnitude threshold over the part): the host loads the masks
    after the weights (LOAD_M) and every
    UPDATE writes 0 where a mask is 0. Weights equal the golden model's after every step, pruned ones are 0
    throughout, kept ones move, cycles equal the model's; the same plan without the masks revives pruned
    weights (stochastic rounding of a non-zero gradient), so the masks are what holds them."""
    result, expected, predicted, state = train(chain, tmp_path, prune=0.8)
    assert rl_sim.first_mismatch(result.weights, expected) is None
    network = prune_network(build_network(chain), {"rl": 0.8})
    masks = {layer.name: layer.mask for layer in network.layers if layer.mask is not None}
    assert masks and sparsity_of(network, "rl") == pytest.approx(0.8, abs=0.01)
    for step in result.weights.values():
        for name, mask in masks.items():
            assert not np.any(step[name][0][mask == 0]), f"a pruned weight of {name} moved"
    last = result.weights[chain.steps - 1]
    assert any(not np.array_equal(last[n][0], state[n][0]) for n in masks), "training moved no kept weight"
    assert [int(c) for c in result.step_cycles.sum(axis=1)] == [sum(d.cycles for d in step) for step in predicted]
    regrown, regrown_golden, _, _ = train(chain, tmp_path, prune=0.8, masked=False)
    assert rl_sim.first_mismatch(regrown.weights, regrown_golden) is None
    revived = regrown.weights[chain.steps - 1]
    assert any(np.any(revived[n][0][m == 0]) for n, m in masks.items()), "without masks no pruned weight moved"


@pytest.mark.slow  # 2 min with a cold build; the FE's twin runs by default
def test_yosys_reads_the_engine_as_verilator_does(tmp_path):
    """A chain on yosys's netlist of rl_engine.sv (dtlgen.sim.netlist): weights bit-exact and cycles equal
    to the model, as the RTL's are, so the bitstream flow builds what the other tests check."""
    result, expected, predicted, _ = train(FLATTEN_1X1, tmp_path, netlist=True)
    assert rl_sim.first_mismatch(result.weights, expected) is None
    assert result.descriptor_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[0]]


def test_memory_stalls_change_timing_not_weights(tmp_path):
    result, expected, predicted, state = train(RELU6_CONV, tmp_path, stall_period=5)
    assert rl_sim.first_mismatch(result.weights, expected) is None
    last = expected[RELU6_CONV.steps - 1]
    assert any(not np.array_equal(last[name][0], state[name][0]) for name in state), "training moved no weight"
    for (layer, mode, cycles), model in zip(result.descriptor_cycles + result.steady_cycles,
                                            predicted[0] + predicted[1]):
        assert cycles >= model.cycles, (layer, mode)
    assert int(result.step_cycles[0].sum()) > sum(d.cycles for d in predicted[0]), \
        "a stalling memory must cost cycles the model does not see"


def test_the_axi_ip_retrains_bit_exact_under_backpressure(tmp_path):
    """dtl_rl_axi.sv (the engine, its AXI4 master, its AXI4-Lite registers) re-trained by the host loop
    through its registers, on cocotbext-axi's AxiRam, calm and pausing at random on every channel: weights
    equal to the golden model's either way; the pauses cost cycles (AxiRam is not the model's memory, so
    the cycles are not held to the model)."""
    calm, expected, _, _ = train(RELU6_CONV, tmp_path, axi=True)
    assert rl_sim.first_mismatch(calm.weights, expected) is None
    paused, _, _, _ = train(RELU6_CONV, tmp_path, axi=True, pause_seed=5)
    assert rl_sim.first_mismatch(paused.weights, expected) is None
    assert int(paused.step_cycles.sum()) > int(calm.step_cycles.sum())


@pytest.mark.parametrize("agreement, probe, halted", [(0.0, True, 1), (1.0, True, None), (0.0, False, 1),
                                                      (1.0, False, None)],
                         ids=["probe_fires_after_epoch_1", "probe_never_fires", "epoch_fires", "epoch_never_fires"])
def test_a_distilled_run_with_a_halting_rule_stays_bit_exact_on_the_model(tmp_path, agreement, probe, halted):
    """Distillation from cached teacher logits and the halting rule, on the engine: three epochs of two steps
    (the second short); a rule that fires after epoch 1 runs epoch 2 at the final learning rate and stops
    there, one that never fires looks after epochs 1 and 2 and runs all three. The host's decisions and
    agreements are the golden model's (`golden_halting`), weights equal its replay of the plan the run
    followed after every step, each step's cycles and each probe's (forward lists over 5 samples: a batch
    of 4, then 1) equal the model's; without a probe the rule reads the epoch's own logits at no cost."""
    chain = FLATTEN_1X1
    network = build_network(chain)
    rng = np.random.default_rng(chain.seed + 1)
    samples, epochs = chain.batch + chain.last_batch, 3
    x = rng.standard_normal((samples, *network.input_shape))
    qnet = quantize(network, x, PrecisionConfig(batch=chain.batch, lr_shift=chain.lr_shift))
    classes = int(np.prod(network.layers[-1].out_shape))
    labels = rng.integers(0, classes, samples)
    order, sizes, shifts = rl_sim.plan_epochs(labels, chain.batch, epochs, lambda e: chain.lr_shift + (e > 0), 3)
    teacher = rng.integers(-3000, 3000, (samples, classes))
    rule = HaltRule(agreement, chain.lr_shift + 3, np.array([0, 2, 4, 1, 3]) if probe else None)
    # every step read back, but a rule that never fires and reads the epoch's own logits reads back none: the
    # run's last step is read back all the same
    checks = [] if (agreement, probe) == (1.0, False) else list(range(len(sizes)))
    plan = rl_sim.TrainingPlan(golden.quantize_input(qnet, x), labels, order, sizes, shifts, 0, checks, teacher,
                               Distillation.from_values(0.5, 2), [1, 3, 5], rule)
    layout = widened(plan_rl(qnet, RLConfig(*chain.engine, bits=chain.bits, batch=chain.batch), BUS))
    state = golden.initial_rl_state(qnet)
    result = rl_sim.simulate_training(layout, plan, state, tmp_path / "run", LATENCY)
    assert result.halted_epoch == halted
    ran = result.plan
    assert ran.steps == (4 if halted else 6) and len(result.step_cycles) == ran.steps
    assert ran.lr_shifts == (shifts[:2] + [chain.lr_shift + 3] * 2 if halted else shifts)
    assert [p.epoch for p in result.probes] == ([1] if halted else [1, 2])
    golden_plan, agreements, _ = rl_sim.golden_halting(qnet, plan, state)
    assert golden_plan.lr_shifts == ran.lr_shifts and agreements == [p.agreement for p in result.probes]
    expected = rl_sim.golden_replay(qnet, ran, state, set(range(ran.steps)))
    assert sorted(result.weights) == (sorted(expected) if checks else [ran.steps - 1])
    assert rl_sim.first_mismatch(result.weights, {k: expected[k] for k in result.weights}) is None
    ce_only = rl_sim.golden_replay(qnet, replace(ran, kd=None), state, {ran.steps - 1})[ran.steps - 1]
    assert any(not np.array_equal(ce_only[n][0], expected[ran.steps - 1][n][0]) for n in state), \
        "the teacher changed no weight"
    predicted = rl_sim.predict_plan(layout, LATENCY, ran.batch_sizes, ran.breaks())
    assert [int(c) for c in result.step_cycles.sum(axis=1)] == [sum(d.cycles for d in step) for step in predicted]
    assert [p.cycles for p in result.probes] == [rl_sim.predict_probe(layout, LATENCY, 5) if probe else 0] * len(
        result.probes)
    if probe:  # 4 + 1 samples: two forward lists
        gemms, cfg = rl_sim.gemm_layers(layout), RLConfig(*chain.engine, bits=chain.bits, batch=chain.batch)
        assert rl_sim.predict_probe(layout, LATENCY, 5) == infer_cycles(gemms, cfg, BUS, LATENCY, 4) + \
            infer_cycles(gemms, cfg, BUS, LATENCY, 1)


def _linear(name: str, source: str, n: int, m: int) -> Layer:
    rng = np.random.default_rng(0)
    return Layer(name, "linear", [source], (n,), (m,), weight=rng.normal(size=(m, n)), bias=np.zeros(m), frozen=False)


def test_bad_configurations_fail_before_any_build():
    with pytest.raises(DtlgenError, match=r"rl\.batch=0"):
        RLConfig(TM, TN, batch=0)
    with pytest.raises(DtlgenError, match=r"rl\.bits=17"):
        RLConfig(TM, TN, bits=17)
    x = np.random.default_rng(0).standard_normal((4, 2, 4, 4))
    # A 3x3 conv quantises (the RL engine runs it as a windowed GEMM); one on a map wider than 255 does not plan.
    conv3 = Layer("c3", "conv2d", ["input"], (2, 4, 300), (3, 4, 300), kernel=3, padding=1,
                  weight=np.ones((3, 2, 3, 3)), bias=np.zeros(3), frozen=False)
    qnet = quantize(Network("t", (2, 4, 300), [conv3]), np.zeros((4, 2, 4, 300)), PrecisionConfig(batch=4))
    with pytest.raises(UnsupportedLayerError, match="'c3': a 4x300 input and 4x300 output is beyond the RL engine's windowed GEMMs"):
        plan_rl(qnet, RLConfig(TM, TN, batch=4), BUS)
    # Two retrainable layers reading the input are not a chain; quantising names the second.
    fork = Network("t", (8,), [_linear("a", "input", 8, 6), _linear("b", "input", 8, 4)])
    with pytest.raises(UnsupportedLayerError, match="'b' does not take the previous retrainable layer 'a'"):
        quantize(fork, np.random.default_rng(0).standard_normal((4, 8)), PrecisionConfig(batch=4))
    # A layer whose recorded input shape is not its producer's output (a tampered rl_quant.json) is refused by name.
    net = build_conv_network(PADDED_3X3_5X5)
    qnet = quantize(net, np.random.default_rng(0).standard_normal((4, 3, 7, 7)), PrecisionConfig(batch=3))
    qnet.network.layer("c1").in_shape = (6, 5, 5)
    with pytest.raises(UnsupportedLayerError, match=r"'c1': its input shape \(6, 5, 5\) is not the output shape "
                                                    r"\(6, 7, 7\) of 'c0'"):
        plan_rl(qnet, RLConfig(TM, TN, batch=3), BUS)
    # A flatten of a 2x2 map before a linear layer: the linear layer runs as a 2x2 window over the map; a 2x3 map
    # (not square) is refused, naming the linear layer.
    for hw, fine in (((2, 2), True), ((2, 3), False)):
        cells = hw[0] * hw[1]
        pw = Layer("pw", "conv2d", ["input"], (2, *hw), (3, *hw), weight=np.ones((3, 2, 1, 1)), bias=np.zeros(3),
                   frozen=False)
        flat = Layer("flat", "flatten", ["pw"], (3, *hw), (3 * cells,), frozen=False)
        qnet = quantize(Network("t", (2, *hw), [pw, flat, _linear("fc", "flat", 3 * cells, 4)]),
                        np.random.default_rng(0).standard_normal((4, 2, *hw)), PrecisionConfig(batch=4))
        if fine:
            assert [p.k for p in plan_rl(qnet, RLConfig(TM, TN, batch=4), BUS).layers] == [0, 2]
        else:
            with pytest.raises(UnsupportedLayerError, match="'fc' reads a flatten of a 2x3 map"):
                plan_rl(qnet, RLConfig(TM, TN, batch=4), BUS)


def test_network_wider_than_the_engine_is_refused():
    qnet = quantize(Network("t", (8,), [_linear("fc", "input", 8, 4)]), np.random.default_rng(0).standard_normal((4, 8)),
                    PrecisionConfig(rl_bits=20, batch=4))
    with pytest.raises(DtlgenError, match="bits"):
        plan_rl(qnet, RLConfig(TM, TN, bits=16, batch=4), BUS)


# --- K×K convs as windowed GEMMs (issue 20) ------------------------------------------------------------------
@dataclass(frozen=True)
class ConvChain:
    """Dense convs on a small map, then a flatten: `convs` (out channels, kernel, stride, padding, activation,
    trained; 0 out channels: a max-pool of that kernel and stride) from `input` (C, H, W), ending at a 1x1 map, or
    at a square map followed by the linear layers of widths `fc` (the first runs as a window over the whole map)."""

    input: tuple[int, int, int]
    convs: tuple[tuple[int, int, int, int, str | None, bool], ...]
    batch: int
    last_batch: int
    steps: int
    lr_shift: int
    seed: int
    fc: tuple[int, ...] = ()


def build_conv_network(chain: ConvChain) -> Network:
    rng = np.random.default_rng(chain.seed)
    layers, prev, (n, h, w) = [], "input", chain.input
    for i, (m, k, s, p, act, trained) in enumerate(chain.convs):
        r, c = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if m == 0:
            layers.append(Layer(f"c{i}", "maxpool", [prev], (n, h, w), (n, r, c), kernel=k, stride=s, padding=p,
                                activation=act, frozen=False))
            prev, (h, w) = f"c{i}", (r, c)
            continue
        layers.append(Layer(f"c{i}", "conv2d", [prev], (n, h, w), (m, r, c), kernel=k, stride=s, padding=p,
                            activation=act, weight=rng.normal(0.0, 1.0 / np.sqrt(n * k * k), (m, n, k, k)),
                            bias=rng.normal(0.0, 0.2, m), frozen=False, trained=trained))
        prev, (n, h, w) = f"c{i}", (m, r, c)
    assert (h, w) == (1, 1) or chain.fc
    layers.append(Layer("flat", "flatten", [prev], (n, h, w), (n * h * w,), frozen=False))
    prev, n = "flat", n * h * w
    for i, m in enumerate(chain.fc):
        layers.append(Layer(f"fc{i}", "linear", [prev], (n,), (m,), activation="relu" if i + 1 < len(chain.fc) else None,
                            weight=rng.normal(0.0, 1.0 / np.sqrt(n), (m, n)), bias=rng.normal(0.0, 0.2, m),
                            frozen=False))
        prev, n = f"fc{i}", m
    return Network("convs", chain.input, layers)


def train_convs(chain: ConvChain, workdir, netlist: bool = False):
    network = build_conv_network(chain)
    rng = np.random.default_rng(chain.seed + 1)
    sizes = [chain.batch] * (chain.steps - 1) + [chain.last_batch]
    x = rng.standard_normal((sum(sizes), *network.input_shape))
    qnet = quantize(network, x, PrecisionConfig(batch=chain.batch, lr_shift=chain.lr_shift))
    classes = network.layers[-1].out_shape[0]
    plan = rl_sim.TrainingPlan(golden.quantize_input(qnet, x), rng.integers(0, classes, len(x)),
                               rng.permutation(len(x)), sizes, [chain.lr_shift + k % 2 for k in range(chain.steps)],
                               0, list(range(chain.steps)))
    layout = widened(plan_rl(qnet, RLConfig(TM, TN, batch=chain.batch), BUS))
    state = golden.initial_rl_state(qnet)
    sources_dir = None
    if netlist:  # yosys's reading of the engine at this build's parameters
        engine = rl_sim.sim_build(layout, LATENCY).rl.hdl_parameters()
        sources_dir = netlist_sources("rl_engine.sv", "rl_engine", engine, workdir / "netlist")
    result = rl_sim.simulate_training(layout, plan, state, workdir / f"run{next(_runs)}", LATENCY,
                                      sources_dir=sources_dir)
    return result, rl_sim.golden_replay(qnet, plan, state), rl_sim.predict_plan(layout, LATENCY, sizes), layout


# 3x3 with padding (3 inputs: one n-tile a tap, partial), a 5x5 window (6 inputs: two n-tiles a tap, the second
# partial), then a 3x3 over the whole 3x3 map; the gradient crosses both later convs (BWD_DATA, flipped).
PADDED_3X3_5X5 = ConvChain((3, 7, 7), ((6, 3, 1, 1, "relu", True), (5, 5, 1, 1, "relu6", True),
                                       (4, 5, 1, 0, None, True)), 3, 2, 3, 4, 11)
# A strided first conv, a frozen 3x3 the gradient crosses (no UPDATE), a 1x1 (a plain GEMM) between windows.
STRIDED_FROZEN = ConvChain((2, 6, 6), ((5, 3, 2, 1, "relu", True), (7, 1, 1, 0, "relu", True),
                                       (6, 3, 1, 1, "relu", False), (3, 3, 1, 0, None, True)), 2, 1, 3, 3, 29)


# A 1x1 conv (an adapter) on a 3x3 map, a flatten, a linear layer over the map (a 3x3 window, 6 channels: two
# n-tiles a tap) and another: the tail adapter's shape on the engine.
MAP_LINEAR = ConvChain((6, 3, 3), ((6, 1, 1, 0, None, True),), 4, 3, 3, 4, 41, fc=(9, 5))


# A 1x1 conv of stride 2 (a windowed 1x1), 4 outputs on a 4-wide array (the UPDATE of the next layer's 4 inputs
# ends each row in a tile of the bias column alone), 2x2 kernels (even: BWD_DATA's flipped padding 1), 6 outputs
# on a 3-tall array (whole m-tiles in BWD_DATA).
EVEN_KERNELS = ConvChain((3, 6, 6), ((4, 1, 2, 0, "relu", True), (6, 2, 1, 0, "relu", True), (3, 2, 1, 0, None, True)),
                         3, 2, 3, 5, 7)


# Max-pools (MAXPOOL, MAXPOOL_BWD): a 3x3 conv, a 2x2 pool of its ReLU6 output (6 channels: two lane tiles, the
# second partial; the mask passes 0 < x < 6 only), a 1x1 conv, a 2x2 pool of ReLUs (7 channels; many windows of
# equal zeros: the first tap takes dY, the mask drops it), then a linear layer over the 2x2 map.
POOLS = ConvChain((5, 8, 8), ((6, 3, 1, 1, "relu6", True), (0, 2, 2, 0, None, False), (7, 1, 1, 0, "relu", True),
                              (0, 2, 2, 0, None, False)), 3, 2, 3, 4, 53, fc=(5,))


@pytest.mark.parametrize("chain", [PADDED_3X3_5X5, STRIDED_FROZEN, MAP_LINEAR, EVEN_KERNELS, POOLS],
                         ids=["padded_3x3_5x5", "strided_frozen", "map_linear", "even_kernels", "pools"])
def test_kxk_convs_train_bit_exact_on_the_cycle_model(tmp_path, chain):
    """A K×K conv re-trained on the RL engine: the weights read back after every step equal the golden model's,
    and every descriptor's cycles equal the model's."""
    result, expected, predicted, layout = train_convs(chain, tmp_path)
    windows = [k if (k, s, p) != (1, 1, 0) else 0 for _, k, s, p, _, _ in chain.convs]
    if chain.fc:  # the first linear layer: a window over the whole map
        windows += [build_conv_network(chain).layer("flat").in_shape[1]] + [0] * (len(chain.fc) - 1)
    assert [p.k for p in layout.layers] == windows
    assert rl_sim.first_mismatch(result.weights, expected) is None
    assert result.descriptor_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[0]]
    assert result.steady_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[1]]
    modes = [(layer, mode) for layer, mode, _ in result.descriptor_cycles]
    for name, (*_, trained) in zip([p.name for p in layout.layers], chain.convs + ((0, 0, 0, 0, None, True),) * 2):
        assert ((name, "UPDATE") in modes) == trained


@pytest.mark.slow  # the netlist is shared with test_yosys_reads_the_engine_as_verilator_does's build parameters
@pytest.mark.parametrize("chain", [PADDED_3X3_5X5, EVEN_KERNELS, MAP_LINEAR, POOLS],
                         ids=["padded_3x3_5x5", "even_kernels", "map_linear", "pools"])
def test_yosys_reads_the_window_walk_as_verilator_does(tmp_path, chain):
    """The windowed GEMMs on yosys's netlist of rl_engine.sv: bit-exact, cycles equal to the model."""
    result, expected, predicted, _ = train_convs(chain, tmp_path, netlist=True)
    assert rl_sim.first_mismatch(result.weights, expected) is None
    assert result.descriptor_cycles == [(d.layer, d.mode, d.cycles) for d in predicted[0]]
