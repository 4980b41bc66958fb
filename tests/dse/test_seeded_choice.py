"""The DSE's choice for seeded convs (issue 18): their ±1 weights generated on chip (fe.gen 1: the
generator's DSPs and LUTs, no weight traffic) or stored in memory (fe.gen 0), per design."""

from __future__ import annotations

import numpy as np
import pytest

from dtlgen.boards import load_board
from dtlgen.dse.problem import Space, make_design
from dtlgen.errors import DesignError
from dtlgen.model import import_module, load_factory, resolve_split
from dtlgen.model.seeded import seed_frozen_convs
from dtlgen.perf import Design, predict
from dtlgen.perf.fe import FEConfig, fe_ops


def seeded_digits():
    module, shape, split, name = load_factory("digits_cnn")
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
