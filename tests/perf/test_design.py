"""Design files (`dtlgen.perf.design`), `predict` end to end, and `dtlgen perf` on the command line."""

from __future__ import annotations

import copy
import json

import pytest

from dtlgen.boards import load_board
from dtlgen.cli import main
from dtlgen.errors import DesignError
from dtlgen.model import load_model
from dtlgen.perf import Design, load_design, predict
from dtlgen.perf.fe import FEConfig
from dtlgen.perf.rl import RLConfig

VALID = {"board": "pynq-z2", "clock_mhz": 100,
         "fe": {"tm": 16, "tn": 8, "tr": 8, "tc": 8, "w_bits": 8, "a_bits": 8},
         "rl": {"tm": 8, "tn": 8, "bits": 16}}


def with_change(path: str, value, delete: bool = False) -> dict:
    """A copy of VALID with the dotted `path` set to `value` (or deleted)."""
    data = copy.deepcopy(VALID)
    *parents, key = path.split(".")
    target = data
    for p in parents:
        target = target[p]
    if delete:
        del target[key]
    else:
        target[key] = value
    return data


def write(tmp_path, data, name="design.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def networks():
    return {name: load_model(name) for name in ("digits_cnn", "vgg16_cifar", "mobilenet_v1_cifar")}


# --- 5. design file: bad input ----------------------------------------------------------------
@pytest.mark.parametrize("field", ["board", "clock_mhz", "fe", "rl", "fe.tm", "fe.tn", "fe.tr", "fe.tc", "fe.w_bits",
                                   "fe.a_bits", "rl.tm", "rl.tn", "rl.bits"])
def test_missing_field_is_named(field):
    with pytest.raises(DesignError, match=f"'{field}'") as info:
        Design.from_dict(with_change(field, None, delete=True), "design file 'd.json'")
    assert "missing" in str(info.value) and "d.json" in str(info.value)


@pytest.mark.parametrize("field, value", [
    ("fe.tm", 0), ("fe.tm", -3), ("fe.tm", 2.5), ("fe.tm", True), ("fe.tm", "4"), ("fe.tn", 0), ("fe.tr", -1),
    ("fe.tc", 1.5), ("fe.w_bits", 17), ("fe.w_bits", 1), ("fe.a_bits", 17), ("fe.a_bits", 1), ("fe.w_bits", 8.0),
    ("fe.lut_mults", 16 * 8 + 1), ("fe.lut_mults", -1),
    ("rl.tm", 0), ("rl.tn", -2), ("rl.bits", 30), ("rl.bits", 3), ("rl.batch", 0), ("rl.batch", 2.0),
    ("rl.acc_bits", 65), ("rl.acc_bits", -1),
    ("clock_mhz", -1), ("clock_mhz", 0), ("clock_mhz", "100"), ("clock_mhz", True), ("clock_mhz", None),
    ("split", 3),
    ("clock_mhz", float("nan")),
    ("clock_mhz", float("inf")),
    ("fe.lut_mults", True),
    ("rl.acc_bits", True),
    ("rl.lr_shift", "seven"),
    ("rl.lr_shift", -2),
])
def test_bad_value_is_named(field, value):
    with pytest.raises(DesignError) as info:
        Design.from_dict(with_change(field, value), "design file 'd.json'")
    message = str(info.value)
    assert field in message and "d.json" in message, message


@pytest.mark.parametrize("data, words", [
    ([1, 2], "JSON object"), ("x", "JSON object"), (with_change("fe", [16, 8]), "'fe'"),
    (with_change("rl", 8), "'rl'")])
def test_wrong_shapes(data, words):
    with pytest.raises(DesignError, match=words):
        Design.from_dict(data)


def test_design_files(tmp_path):
    with pytest.raises(DesignError, match="does not exist") as info:
        load_design(tmp_path / "nope.json")
    assert "nope.json" in str(info.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{'board': 'pynq-z2',")
    with pytest.raises(DesignError, match="not valid JSON") as info:
        load_design(bad)
    assert "bad.json" in str(info.value)
    path = write(tmp_path, with_change("fe.tm", 0))
    with pytest.raises(DesignError, match="fe.tm") as info:
        load_design(path)
    assert "design.json" in str(info.value)


def test_binary_design_file_is_a_design_error(tmp_path):
    path = tmp_path / "design.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    with pytest.raises(DesignError, match="design.bin"):
        load_design(path)


def test_round_trip(tmp_path):
    design = Design("zcu104", 150.0, FEConfig(16, 8, 13, 13, w_bits=6, a_bits=8, lut_mults=20),
                    RLConfig(8, 4, bits=12, acc_bits=40, batch=8, lr_shift=6), "fc1",
                    {"conv1": {"w_frac": 7, "a_frac": 5}}, {"fe_gops": 1.5})
    assert Design.from_dict(design.to_dict()) == design
    assert load_design(write(tmp_path, design.to_dict())) == design
    loaded = Design.from_dict(VALID)
    assert (loaded.fe, loaded.rl, loaded.split) == (FEConfig(16, 8, 8, 8), RLConfig(8, 8, 16), None)
    assert Design.from_dict(loaded.to_dict()) == loaded


# --- 4. predict end to end ------------------------------------------------------------------------
def test_oversized_fe_is_infeasible_naming_dsp(networks):
    board = load_board("pynq-z2")
    design = Design("pynq-z2", 100.0, FEConfig(64, 64, 8, 8), RLConfig(8, 8))
    prediction = predict(networks["vgg16_cifar"], design, board)
    assert not prediction.feasible
    assert prediction.fe_resources.dsp == 64 * 64 // 2  # DSP48E1: two 8×8 multipliers per DSP
    assert any(v.startswith("dsp:") and "220" in v and str(prediction.resources.dsp) in v
               for v in prediction.violations), prediction.violations


def test_mobilenet_rl_weights_do_not_fit_pynq_z2(networks):
    """fc1 1024×256 + fc2 at 16 bit in 8×8 banks: 320 RAMB18 for the weights alone > 280."""
    design = Design("pynq-z2", 100.0, FEConfig(16, 8, 8, 8), RLConfig(8, 8, bits=16))
    prediction = predict(networks["mobilenet_v1_cifar"], design, load_board("pynq-z2"))
    assert not prediction.feasible
    assert prediction.rl_weight_bram18 == 320 and prediction.rl_weight_bits == (1024 * 256 + 256 + 2570) * 16
    assert any("RL weights" in v and "320" in v and "280" in v for v in prediction.violations), prediction.violations
    # the same engines on zcu104 (624 BRAM18) have room for those weights
    roomy = predict(networks["mobilenet_v1_cifar"], Design("zcu104", 150.0, FEConfig(16, 8, 8, 8), RLConfig(8, 8)),
                    load_board("zcu104"))
    assert not any("RL weights" in v for v in roomy.violations)


def test_acc_bits_below_the_safe_width_is_a_violation(networks):
    design = Design("pynq-z2", 100.0, FEConfig(16, 8, 8, 8), RLConfig(8, 8, acc_bits=20))
    prediction = predict(networks["digits_cnn"], design, load_board("pynq-z2"))
    assert any("rl.acc_bits=20" in v for v in prediction.violations)


def test_modest_design_is_feasible_and_gops_recompute(networks):
    board = load_board("pynq-z2")
    design = Design("pynq-z2", 100.0, FEConfig(16, 8, 8, 8), RLConfig(8, 8))
    network = networks["digits_cnn"]
    prediction = predict(network, design, board)
    assert prediction.feasible and prediction.violations == []
    f = design.clock_mhz * 1e6
    fe_ops = sum(2 * layer.macs for layer in network.frozen_layers)
    assert [p.name for p in prediction.fe_layers] == ["conv1", "conv2", "conv3", "conv4"]  # pools fused
    assert sum(p.ops for p in prediction.fe_layers) == fe_ops
    assert prediction.fe_cycles == sum(p.cycles for p in prediction.fe_layers) > 0
    assert prediction.fe_gops == pytest.approx(fe_ops / (prediction.fe_cycles / f) / 1e9, rel=1e-12)
    rl_macs = sum(p.macs for p in prediction.rl_descriptors)
    rl_ops = 2 * rl_macs  # the update's subtracts are not array ops (perf/rl.py, "Ops")
    # batch 16: FWD fc1 + fc2, BWD_DATA fc2, BWD_WEIGHT fc1 + fc2
    assert rl_macs == 16 * (2 * 32 * 256 + 3 * 10 * 32)
    assert prediction.rl_gops == pytest.approx(rl_ops / (prediction.rl_step_cycles / f) / 1e9, rel=1e-12)
    for p in prediction.fe_layers + prediction.rl_descriptors:
        assert p.gops == pytest.approx(p.ops / (p.cycles / f) / 1e9, rel=1e-12)
        assert 0 <= p.utilisation <= 1
    data = prediction.to_dict()
    assert data["feasible"] is True and data["fe"]["cycles"] == prediction.fe_cycles
    assert data["resources"] == (prediction.fe_resources + prediction.rl_resources).to_dict()


def test_gops_scale_with_the_design_clock(networks):
    board = load_board("pynq-z2")
    slow = predict(networks["digits_cnn"], Design("pynq-z2", 100.0, FEConfig(16, 8, 8, 8), RLConfig(8, 8)), board)
    fast = predict(networks["digits_cnn"], Design("pynq-z2", 200.0, FEConfig(16, 8, 8, 8), RLConfig(8, 8)), board)
    assert fast.fe_cycles == slow.fe_cycles and fast.fe_gops == pytest.approx(2 * slow.fe_gops)
    assert fast.rl_gops == pytest.approx(2 * slow.rl_gops)


# --- 6. CLI -------------------------------------------------------------------------------------
def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def design_path(tmp_path):
    return write(tmp_path, VALID)


def test_cli_perf_table(capsys, design_path, networks):
    code, out, err = run(capsys, "perf", "vgg16_cifar", "--design", design_path)
    assert code == 0, err
    ops = [p.name for p in predict(networks["vgg16_cifar"], load_design(design_path),
                                   load_board("pynq-z2")).fe_layers]
    assert len(ops) == 13
    for name in ops + ["total FE", "training step", "fc1", "fc2", "UPDATE", "bram18", "pynq-z2"]:
        assert name in out, name


def test_cli_perf_json(capsys, design_path):
    code, out, err = run(capsys, "perf", "vgg16_cifar", "--design", design_path, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"fe", "rl", "resources", "feasible"} <= set(data)
    assert isinstance(data["feasible"], bool) and data["fe"]["cycles"] > 0 and data["rl"]["step_cycles"] > 0
    assert len(data["fe"]["layers"]) == 13


def test_cli_board_mismatch(capsys, design_path):
    code, out, err = run(capsys, "perf", "vgg16_cifar", "--design", design_path, "--board", "zcu104")
    assert code == 1 and out == ""
    assert "zcu104" in err and "pynq-z2" in err


def test_cli_unknown_board_in_design(capsys, tmp_path):
    path = write(tmp_path, with_change("board", "no-such-board"))
    code, out, err = run(capsys, "perf", "digits_cnn", "--design", path)
    assert code == 1 and out == "" and "no-such-board" in err


def test_cli_bad_design_file(capsys, tmp_path):
    code, out, err = run(capsys, "perf", "digits_cnn", "--design", write(tmp_path, with_change("rl.bits", 30)))
    assert code == 1 and out == "" and "rl.bits" in err
    code, out, err = run(capsys, "perf", "digits_cnn", "--design", str(tmp_path / "absent.json"))
    assert code == 1 and "absent.json" in err
