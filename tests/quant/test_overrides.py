"""Per-layer precision overrides: fractional bits a user fixes per layer (the API's `overrides`,
design.json's "overrides") replace the calibrated ones in the quantisation, the DSE's scoring and the
generated engines, bit-exact; a bad entry is one DesignError naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dtlgen
from dtlgen.csim import csim_project
from dtlgen.errors import DesignError
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import load_design
from dtlgen.quant import fixed as fixed_point
from dtlgen.quant.quantize import PrecisionConfig, quantize

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
