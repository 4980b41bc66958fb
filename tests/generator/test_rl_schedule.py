"""The RL training schedule as the host runs it, the programs encode it and the cycle model counts it.

Steps after the first load their features in the background of the previous step's last UPDATE,
into the other of two feature regions (dtlgen.perf.rl, "Schedule" 5). For random chains and runs of
batches (partial last batches, single steps) the descriptor lists the host sends must hold as many
descriptors as it tells the engine to run, in the order and modes the model lists, with the
background bit on the one LOAD that runs beside the last UPDATE; the two feature regions must not
overlap each other or any other stash or DRAM buffer, and the step that trains on a region must be
the one whose features were loaded there.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtlgen.generator.rl_program import plan_rl
from dtlgen.host import rl_program as prog
from dtlgen.isa import rl as isa_rl
from dtlgen.model.ir import Layer, Network
from dtlgen.perf.rl import RLConfig, step_cycles, step_schedule
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim.rl_sim import gemm_layers

BUS = 8
MODE_NAMES = {code: name for name, code in isa_rl.MODES.items()}
# what the model calls each descriptor the lists encode
MODEL_MODES = {"LOAD_A": "LOAD", "LOAD_G": "LOAD", "STORE_A": "STORE", "FWD": "FWD", "BWD_DATA": "BWD_DATA",
               "UPDATE": "UPDATE"}


def chain(widths: list[int], seed: int) -> Network:
    rng = np.random.default_rng(seed)
    layers, prev = [], "input"
    for i, (n, m) in enumerate(zip(widths, widths[1:])):
        layers.append(Layer(f"l{i}", "linear", [prev], (n,), (m,), activation="relu" if i < len(widths) - 2 else None,
                            weight=rng.normal(0.0, 1.0 / np.sqrt(n), (m, n)), bias=np.zeros(m), frozen=False))
        prev = f"l{i}"
    return Network("chain", (widths[0],), layers)


def decoded(descriptors: bytes) -> list[dict]:
    return [isa_rl.decode(descriptors[i:i + isa_rl.DESCRIPTOR_BYTES])
            for i in range(0, len(descriptors), isa_rl.DESCRIPTOR_BYTES)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(widths=st.lists(st.integers(1, 40), min_size=2, max_size=4), batch=st.integers(1, 8),
       sizes=st.lists(st.integers(1, 8), min_size=1, max_size=4), tm=st.integers(1, 5), tn=st.integers(1, 5),
       seed=st.integers(0, 100))
def test_host_lists_programs_and_model_agree_on_the_schedule(widths, batch, sizes, tm, tn, seed):
    sizes = [min(s, batch) for s in sizes]
    network = chain(widths, seed)
    x = np.random.default_rng(seed).standard_normal((8, widths[0]))
    qnet = quantize(network, x, PrecisionConfig(batch=batch))
    cfg = RLConfig(tm, tn, batch=batch)
    layout = plan_rl(qnet, cfg, BUS)
    first = layout.layers[0]
    region_words = batch * first.positions * first.pitch_n
    region_bytes = batch * first.positions * -(-first.n // layout.engine.lanes) * layout.engine.lanes * 2
    # the two regions: disjoint, and apart from every layer's activation stash and the other DRAM buffers
    (xa0, dram0), (xa1, dram1) = layout.feature_region(0), layout.feature_region(1)
    assert xa0 + region_words <= xa1 + region_words <= layout.engine.a_depth and xa1 >= xa0 + region_words
    others = [(p.ya, batch * p.positions * p.pitch_m) for p in layout.layers]
    others += [(p.xa, batch * p.positions * p.pitch_n) for p in layout.layers[1:]]
    assert all(start + size <= xa1 or start >= xa1 + region_words for start, size in others)
    buffers = sorted([(dram0, region_bytes), (dram1, region_bytes), (layout.logit_addr, 1), (layout.dy_addr, 1),
                      (layout.params_addr, layout.params_bytes)])
    assert all(a + size <= b for (a, size), (b, _) in zip(buffers, buffers[1:]))
    assert buffers[-1][0] + buffers[-1][1] <= layout.memory_bytes

    loaded_into = {0: 0}  # step -> the region its features were loaded into
    for k, (samples, (load, prefetch)) in enumerate(zip(sizes, step_schedule(sizes))):
        slot = k % 2
        forward = decoded(prog.forward_list(layout, samples, slot, load))
        backward = decoded(prog.backward_list(layout, samples, k, 7, slot, prefetch))
        assert (len(forward), len(backward)) == prog.step_descriptor_counts(layout, load, prefetch > 0)
        model = step_cycles(gemm_layers(layout), cfg, BUS, 40, samples, load, prefetch)
        modes = [MODE_NAMES[d["mode"]] for d in forward + backward]
        assert [MODEL_MODES[m] for m in modes] == [d.mode for d in model]
        background = [i for i, d in enumerate(forward + backward) if d["background"]]
        assert background == ([len(modes) - 2] if prefetch else [])
        if prefetch:
            bg = backward[-2]
            assert MODE_NAMES[bg["mode"]] == "LOAD_A" and (bg["xa"], bg["dram"]) == layout.feature_region(1 - slot)
            assert bg["rows"] == prefetch * first.positions
            loaded_into[k + 1] = 1 - slot
        # the step trains on the region its features went to: its first FWD and its first layer's UPDATE
        fwd0 = next(d for d in forward if MODE_NAMES[d["mode"]] == "FWD")
        update0 = backward[-1]
        assert MODE_NAMES[update0["mode"]] == "UPDATE"
        assert fwd0["xa"] == update0["xa"] == layout.feature_region(loaded_into[k])[0]
