"""Seeded convs on the command line (issue 18): `--seeded [LAYERS]`, `--weight-seed`, `--seeded-kind`,
`--source` on the commands that take a MODEL, a design made for a seeded model refused for the
unseeded one (and back), and one clear error for each misuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dtlgen.cli import main


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_seeds_the_named_convs_and_warns_without_a_source(capsys):
    code, out, err = _run(capsys, "import", "digits_cnn", "--seeded", "conv1, conv3", "--weight-seed", 7,
                          "--seeded-kind", "int4", "--json")
    layers = {layer["name"]: layer for layer in json.loads(out)["layers"]}
    assert code == 0 and "untrained scales" in err and "--source DATA.npz" in err
    assert layers["conv1"]["seed"] == {"seed": 7, "index": 0, "kind": "int4"}
    assert layers["conv3"]["seed"] == {"seed": 7, "index": 1, "kind": "int4"} and "seed" not in layers["conv2"]
    code, out, _ = _run(capsys, "import", "digits_cnn", "--seeded")
    assert code == 0 and out.count("seeded sign") == 4


def test_import_trains_the_seeded_model_on_the_source(tmp_path, capsys):
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "src.npz", x=(digits.images / 16.0)[:64, None], y=digits.target[:64])
    code, out, err = _run(capsys, "import", "digits_cnn", "--seeded", "--source", tmp_path / "src.npz",
                          "--source-epochs", 1, "--json")
    assert code == 0 and "untrained" not in err
    conv1 = json.loads(out)["layers"][0]
    assert conv1["seed"] == {"seed": 1, "index": 0, "kind": "sign"}


@pytest.mark.parametrize("argv, words", [
    (["--weight-seed", "3"], "--weight-seed is for a seeded model: add --seeded"),
    (["--seeded-kind", "int4"], "--seeded-kind is for a seeded model: add --seeded"),
    (["--seeded", "--source-epochs", "3"], "--source-epochs trains on --source"),
    (["--seeded", "conv9"], "seeded is ['conv9']: \"auto\" or a list of frozen conv layers (conv1, conv2, conv3, conv4)"),
    (["--seeded", "fc1"], "a list of frozen conv layers"),
    (["--seeded", "conv2,conv1,conv2"], "seeded names 'conv2' more than once"),
    (["--seeded", ","], "seeded is []"),
    (["--seeded", "--source", "missing.npz"], "missing.npz"),
])
def test_seeded_misuse_gets_one_line(capsys, argv, words):
    code, _, err = _run(capsys, "import", "digits_cnn", *argv)
    assert code == 1 and words in err and len(err.strip().splitlines()) == 1, err


def test_a_seeded_design_goes_through_generate_and_refuses_the_unseeded_model(tmp_path, capsys):
    code, out, _ = _run(capsys, "dse", "digits_cnn", "--seeded", "--board", "pynq-z2", "--pop", 8, "--gens", 2,
                        "--out", tmp_path / "dse", "--json")
    design = json.loads(out)["design"]
    assert code == 0 and design["fe"]["gen"] in (0, 1) and design["per_layer"]["conv1"]["s_frac"] is not None
    path = tmp_path / "dse" / "design.json"
    code, _, err = _run(capsys, "perf", "digits_cnn", "--design", path)
    assert code == 1 and "other seeded convs" in err and "--seeded" in err
    code, _, err = _run(capsys, "perf", "digits_cnn", "--seeded", "--weight-seed", 2, "--design", path, "--json")
    assert code == 0  # another seed: the same structure, other weights
    code, out, _ = _run(capsys, "generate", "digits_cnn", "--seeded", "--design", path, "--out", tmp_path / "prj",
                        "--json")
    assert code == 0 and (tmp_path / "prj" / "sim" / "expected.npz").is_file()  # its simulation: test_fe_seeded.py
