"""The DSE's choice for seeded convs (issue 18): their ±1 weights generated on chip (fe.gen 1: the
generator's DSPs and LUTs, no weight traffic) or stored in memory (fe.gen 0), per design, and with the
generator, per layer (fe.gen a list of the layers generated: where that is no slower)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from dtlgen.boards import load_board
from dtlgen.dse.problem import Space, make_design
from dtlgen.errors import DesignError
from dtlgen.model import import_module, load_factory, resolve_split
from dtlgen.model.seeded import seed_frozen_convs
from dtlgen.perf import Design, predict
from dtlgen.perf.fe import FEConfig, fe_ops, generated_layers
from dtlgen.perf.rl import RLConfig
from dtlgen.perf.validate import check_design_matches


def seeded_digits(model: str = "digits_cnn"):
    module, shape, split, name = load_factory(model)
    network = import_module(module, shape, name)
    seed_frozen_convs(module, network.with_split(resolve_split(network, split)), 1)
    seeded = import_module(module.eval(), shape, name)
    return seeded.with_split(resolve_split(seeded, split))


def test_a_network_without_seeded_convs_searches_the_space_it_always_did():
    assert "fe_gen" not in Space().names and len(Space().sizes()) == len(Space().names)
    assert Space().decode([0] * len(Space().names))["fe_gen"] == 1
    both = Space(fe_gen=(0, 1))
    assert both.names[-1] == "fe_gen" and both.decode([0] * len(both.names))["fe_gen"] == 0


def test_generated_or_stored_trades_the_generators_resources_for_weight_traffic():
    network, board = seeded_digits(), load_board("pynq-z2")
    values = Space().decode([0] * len(Space().names)) | {"fe_tm": 16, "fe_tn": 16, "fe_tr": 4, "fe_tc": 4,
                                                         "fe_w_bits": 8, "fe_a_bits": 8, "fe_lut_32nds": 0}
    generated, stored = (make_design(values | {"fe_gen": gen}, board) for gen in (1, 0))
    assert all(op.gen for op in fe_ops(network, generated.fe) if op.kind == "conv")
    assert not any(op.gen for op in fe_ops(network, stored.fe))
    p_gen, p_stored = predict(network, generated, board), predict(network, stored, board)
    assert p_gen.resources.dsp > p_stored.resources.dsp  # the generator's multiplies
    assert p_gen.fe_cycles_per_image < p_stored.fe_cycles_per_image  # no weight beats


def test_design_json_carries_the_choice_and_refuses_other_values():
    data = Design.from_dict({"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4,
                                                                          "w_bits": 8, "a_bits": 8, "gen": 0},
                             "rl": {"tm": 2, "tn": 2, "bits": 16}})
    assert data.fe.gen == 0 and data.to_dict()["fe"]["gen"] == 0
    with pytest.raises(DesignError, match="fe.gen"):
        FEConfig(4, 4, 4, 4, gen=2)


def test_the_choice_per_layer_takes_the_faster_of_generated_and_stored_weights():
    """The generator fills whole 32-bit words per output channel: vgg16's first conv, of 3 input channels,
    wastes most of each word and reads its densely packed ±1 weights faster than it generates them; the
    later convs the other way round. The per-layer choice is never slower than either extreme."""
    network, board = seeded_digits("vgg16_cifar"), load_board("pynq-z2")
    cfg = FEConfig(25, 14, 5, 17)
    bus, latency = board.dram_bytes_per_cycle, board.dram_latency_cycles
    chosen = generated_layers(network, cfg, bus, latency)
    generable = [op.name for op in fe_ops(network, cfg) if op.gen]
    assert isinstance(chosen, tuple) and 0 < len(chosen) < len(generable) and set(chosen) <= set(generable)
    assert "features.0" not in chosen and "features.3" in chosen
    rl = RLConfig(2, 2, 16)
    layers = {gen: {p.name: p.cycles for p in predict(network, Design("pynq-z2", 90, replace(cfg, gen=gen), rl),
                                                      board).fe_layers} for gen in (0, 1, chosen)}
    for name, cycles in layers[chosen].items():
        assert cycles == min(layers[0][name], layers[1][name]), name
    # the DSE's design carries the choice, and generate's check holds it to the network's seeded convs
    values = Space().decode([0] * len(Space().names)) | {"fe_tm": 25, "fe_tn": 14, "fe_tr": 5, "fe_tc": 17,
                                                         "fe_w_bits": 8, "fe_a_bits": 8, "fe_lut_32nds": 0}
    design = make_design(values | {"fe_gen": 1}, board, network=network)
    assert design.fe.gen == chosen and make_design(values | {"fe_gen": 0}, board, network=network).fe.gen == 0
    data = design.to_dict()
    assert Design.from_dict(json.loads(json.dumps(data))).fe.gen == chosen
    check_design_matches(network, design, "design")
    wrong = replace(design, fe=replace(design.fe, gen=("features.0", "classifier")))
    with pytest.raises(DesignError, match="fe.gen names 'classifier', which is not a seeded dense ±1 conv"):
        check_design_matches(network, wrong, "design")


def test_a_network_whose_convs_all_generate_faster_keeps_gen_1():
    network, board = seeded_digits(), load_board("pynq-z2")
    assert generated_layers(network, FEConfig(8, 16, 8, 8), board.dram_bytes_per_cycle,
                            board.dram_latency_cycles) in (1, ("conv2", "conv3", "conv4"))


@pytest.mark.parametrize("gen, words", [((), "a list of distinct layer names"), (("a", "a"), "distinct"),
                                        (("a", 3), "layer names"), (2, "fe.gen")])
def test_fe_gen_takes_0_1_or_distinct_layer_names(gen, words):
    with pytest.raises(DesignError, match=words):
        FEConfig(4, 4, 4, 4, gen=gen)
    assert FEConfig(4, 4, 4, 4, gen=["c1", "c2"]).gen == ("c1", "c2")
