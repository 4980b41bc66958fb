"""Per-layer precision overrides: fractional bits a user fixes per layer (the API's `overrides`,
design.json's "overrides") replace the calibrated ones in the quantisation, the DSE's scoring and the
generated engines, bit-exact; a bad entry is one DesignError naming it, also one whose formats the
engines cannot run (a shift, a bias alignment, an accumulator beyond theirs), at quantisation time."""

from __future__ import annotations

import json
import re
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dtlgen
from dtlgen.csim import csim_project
from dtlgen.errors import DesignError
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import load_design
from dtlgen.quant import fixed as fixed_point
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.quant.reference import float_forward

WANTED = {"conv1": {"w_frac": 5, "a_frac": 2}, "conv3": {"a_frac": 3}, "fc1": {"w_frac": 12, "a_frac": 9}}


def test_overrides_replace_the_calibrated_fractions_and_the_next_layer_follows():
    network = load_model("digits_cnn")
    calib = calibration_inputs(network, 0)
    plain = quantize(network, calib, PrecisionConfig())
    fixed = quantize(network, calib, PrecisionConfig(), overrides=WANTED)
    conv1 = fixed.layers["conv1"]
    assert (conv1.w_fmt.frac, conv1.out_fmt.frac, conv1.b_fmt.frac) == (5, 2, 5 + conv1.in_fracs[0])
    # the weights and bias re-rounded in the new formats (the weights at 2^-5, saturated to 8 bits)
    assert np.array_equal(conv1.weight, fixed_point.to_fixed(network.layer("conv1").weight, conv1.w_fmt))
    assert np.array_equal(conv1.bias, fixed_point.to_fixed(network.layer("conv1").bias, conv1.b_fmt))
    assert fixed.layers["conv2"].in_fracs == (2,)  # conv2 reads conv1's overridden format
    assert fixed.layers["conv3"].out_fmt.frac == 3 and fixed.layers["conv3"].w_fmt == plain.layers["conv3"].w_fmt
    fc1 = fixed.layers["fc1"]
    assert (fc1.w_fmt.frac, fc1.out_fmt.frac) == (12, 9) and fc1.w_fmt.bits == 16
    untouched = [name for name in plain.layers if name not in WANTED and name not in ("conv2", "fc2", "pool2")]
    assert all(fixed.layers[n].w_fmt == plain.layers[n].w_fmt for n in untouched if plain.layers[n].w_fmt)


@pytest.mark.parametrize("overrides, words", [
    ({"nope": {"w_frac": 3}}, "'nope' is not a layer of digits_cnn"),
    ({"conv1": {"bits": 3}}, "must be an object of w_frac and/or a_frac"),
    ({"conv1": {}}, "must be an object of w_frac and/or a_frac"),
    ({"conv1": {"w_frac": 99}}, "an integer from -16 to 48"),
    ({"conv1": {"w_frac": True}}, "an integer from -16 to 48"),
    ({"pool2": {"w_frac": 3}}, "has no weights"),
    ({"pool2": {"a_frac": 3}}, "keeps its input's format"),
    (["conv1"], "must be an object of layer names"),
])
def test_a_bad_override_is_one_error_naming_it(overrides, words):
    network = load_model("digits_cnn")
    with pytest.raises(DesignError, match=words.replace("(", r"\(")):
        quantize(network, calibration_inputs(network, 0), PrecisionConfig(), overrides=overrides)


def test_overrides_go_through_the_dse_design_json_and_the_engines_bit_exact(tmp_path):
    network = dtlgen.load_model("digits_cnn")
    design = dtlgen.explore(network, "pynq-z2", pop=8, gens=2, seed=1, overrides=WANTED, out=tmp_path / "dse")
    assert design.overrides == WANTED
    on_disk = load_design(tmp_path / "dse" / "design.json")
    assert on_disk.overrides == WANTED and on_disk.per_layer["conv1"]["w_frac"] == 5 \
        and on_disk.per_layer["conv1"]["a_frac"] == 2
    project = dtlgen.generate(network, on_disk, tmp_path / "prj")
    report = csim_project(project.path, steps=2)
    assert report["bit_exact"] and report["fe"]["bit_exact"] and report["training"]["bit_exact"]
    # a design.json whose overrides were edited into nonsense is refused before anything is written
    data = json.loads((tmp_path / "dse" / "design.json").read_text())
    data["overrides"] = {"conv1": {"w_frac": "five"}}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DesignError, match="overrides.conv1.w_frac"):
        dtlgen.generate(network, load_design(tmp_path / "bad.json"), tmp_path / "never")
    assert not (tmp_path / "never").exists()


# --- overrides the engines cannot run: refused when quantising, naming the entry and what fits ------------
ENTRY = re.compile(r"^overrides\.(\w+)\.(w_frac|a_frac) is (-?\d+): layer '(\w+)'.* outside the (RL|FE) engine's "
                   r"(range -?\d+\.\.\d+|limit of \d+) .*; (give overrides\.\1\.\2 an integer (from -?\d+ to -?\d+"
                   r"( or from -?\d+ to -?\d+)*|-?\d+) for this layer|no value of it fits)")


@lru_cache(maxsize=1)
def digits():
    network = load_model("digits_cnn")
    calib = calibration_inputs(network, 0)
    return network, calib, float_forward(network, calib)


def _runs_on_the_engines(qnet, rl_bits: int) -> None:
    """What generate and the host do with a quantisation after it: every check there must pass."""
    from dtlgen.generator.fe_program import build_fe_program
    from dtlgen.generator.rl_program import plan_rl
    from dtlgen.host.rl_program import backward_list
    from dtlgen.perf.fe import FEConfig
    from dtlgen.perf.rl import RLConfig
    from dtlgen.quant import golden

    p = qnet.precision
    RLConfig(8, 8, rl_bits, qnet.rl_acc_bits(), p.batch, p.lr_shift)  # design.json's rl.acc_bits, as the DSE writes it
    layout = plan_rl(qnet, RLConfig(8, 8, rl_bits, 0, p.batch, p.lr_shift), 8)
    backward_list(layout, p.batch, 0, p.lr_shift)
    build_fe_program(qnet, FEConfig(4, 4, 8, 8, p.w_bits, p.a_bits), golden.quantize_input(qnet, digits()[1][:1]),
                     m_max=64, bus_bytes=8)


@st.composite
def overrides(draw):
    names = draw(st.lists(st.sampled_from(["conv1", "conv2", "conv3", "conv4", "fc1", "fc2"]), min_size=1, max_size=3, unique=True))
    frac = st.integers(-16, 48)
    return {name: draw(st.dictionaries(st.sampled_from(["w_frac", "a_frac"]), frac, min_size=1)) for name in names}


@settings(max_examples=200, deadline=None)
@given(overrides(), st.integers(8, 16), st.integers(4, 8), st.integers(4, 8))
def test_any_override_in_range_quantises_and_runs_or_is_one_error_naming_it(wanted, rl_bits, w_bits, a_bits):
    network, calib, acts = digits()
    precision = PrecisionConfig(w_bits, a_bits, rl_bits)
    try:
        qnet = quantize(network, calib, precision, overrides=wanted, float_acts=acts)
    except DesignError as error:
        match = ENTRY.match(str(error))
        assert match, str(error)
        name, key, value = match.group(1), match.group(2), int(match.group(3))
        assert wanted[name][key] == value
        fits = re.search(r"an integer from (-?\d+) to", str(error))
        if fits:  # the entry at a value the message offers breaks nothing: another entry may still
            moved = {**wanted, name: {**wanted[name], key: int(fits.group(1))}}
            try:
                quantize(network, calib, precision, overrides=moved, float_acts=acts)
            except DesignError as again:
                assert not str(again).startswith(f"overrides.{name}.{key} "), (str(error), str(again))
        return
    _runs_on_the_engines(qnet, rl_bits)


@pytest.mark.parametrize("wanted, words", [
    ({"fc2": {"a_frac": -16}}, r"overrides.fc2.a_frac is -16: layer 'fc2' would have a bias alignment shift of \d+, "
                               r"outside the RL engine's range 0..31 .*; give overrides.fc2.a_frac an integer from "),
    ({"conv4": {"a_frac": 48}}, r"overrides.conv4.a_frac is 48: layer 'fc1', which reads its output, would have a bias "
                                r"alignment shift"),
    ({"fc1": {"w_frac": 48}}, r"overrides.fc1.w_frac is 48: layer 'fc1' would have"),
])
def test_an_override_the_rl_engine_cannot_run_is_refused_when_quantising(wanted, words):
    network, calib, acts = digits()
    with pytest.raises(DesignError, match=words):
        quantize(network, calib, PrecisionConfig(), overrides=wanted, float_acts=acts)


def test_an_override_that_widens_the_rl_accumulator_past_64_bits_is_refused_when_quantising():
    """Hypothesis found it: fc1's output at 40 fraction bits beside weights at 9 needs a 98-bit RL accumulator,
    which no RL engine is built with (design.json's rl.acc_bits is at most 64); the override is named."""
    network, calib, acts = digits()
    with pytest.raises(DesignError, match=r"overrides.fc1.a_frac is 40: layer 'fc1' would have an accumulator width "
                                          r"\(bits\) of 98, outside the RL engine's limit of 64"):
        quantize(network, calib, PrecisionConfig(4, 4, 9), float_acts=acts,
                 overrides={"fc2": {"w_frac": 40, "a_frac": -8}, "fc1": {"w_frac": 9, "a_frac": 40}, "conv1": {"w_frac": 0}})


def test_an_add_whose_inputs_fracs_are_too_far_apart_names_the_override():
    network = load_model("resnet18_cifar")
    calib = calibration_inputs(network, 0)[:2]
    with pytest.raises(DesignError, match=r"overrides.conv1.a_frac is 40: layer 'layer1.0.add', which reads its output, "
                                          r"would have an accumulator width \(bits\) of \d+, outside the FE engine's "
                                          r"limit of 32 .*; give overrides.conv1.a_frac an integer from -16 to \d+"):
        quantize(network, calib, PrecisionConfig(), overrides={"conv1": {"a_frac": 40}})


def test_the_dse_searches_the_bit_widths_an_override_fits_and_says_when_there_are_none():
    # fc2's output at 2^16 leaves too large a bias alignment from rl.bits 11 on, never at 8..10
    network = dtlgen.load_model("digits_cnn")
    design = dtlgen.explore(network, "pynq-z2", pop=8, gens=3, seed=1, overrides={"fc2": {"a_frac": -16}})
    assert design.rl.bits <= 10 and all(p["variables"]["rl_bits"] <= 10 for p in design.pareto)
    with pytest.raises(DesignError, match="fit none of the bit widths the search evaluated; at .*overrides.fc1.w_frac "
                                          "is 48"):
        dtlgen.explore(network, "pynq-z2", pop=8, gens=2, seed=1, overrides={"fc1": {"w_frac": 48}})
