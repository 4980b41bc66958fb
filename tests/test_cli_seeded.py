"""Seeded convs on the command line (issue 18): `--seeded`, `--seeded-layers`, `--weight-seed`, `--seeded-kind`,
`--source` on the commands that take a MODEL, a design made for a seeded model refused for the
unseeded one (and back), and one clear error for each misuse."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dtlgen.cli import main


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_seeds_the_named_convs_and_warns_without_a_source(capsys):
    code, out, err = _run(capsys, "import", "digits_cnn", "--seeded-layers", "conv1, conv3", "--weight-seed", 7,
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
    (["--seeded-layers", "conv9"], "seeded is ['conv9']: \"auto\" or a list of frozen conv layers (conv1, conv2, conv3, conv4)"),
    (["--seeded-layers", "fc1"], "a list of frozen conv layers"),
    (["--seeded-layers", "conv2,conv1,conv2"], "seeded names 'conv2' more than once"),
    (["--seeded-layers", "conv1,,conv2"], "--seeded-layers 'conv1,,conv2': an empty layer name"),
    (["--seeded-layers", " "], "an empty layer name"),
    (["--seeded", "--source", "missing.npz"], "missing.npz"),
])
def test_seeded_misuse_gets_one_line(capsys, argv, words):
    code, _, err = _run(capsys, "import", "digits_cnn", *argv)
    assert code == 1 and words in err and len(err.strip().splitlines()) == 1, err


def test_source_data_that_does_not_fit_names_its_file(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3, 8, 8)), y=np.zeros(4, int))
    code, _, err = _run(capsys, "import", "digits_cnn", "--seeded", "--source", tmp_path / "bad.npz")
    assert code == 1 and "--source" in err and "bad.npz" in err and "(4, 3, 8, 8)" in err


def test_a_model_without_a_seedable_frozen_conv_is_refused(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(
        "import torch.nn as nn\n"
        "def mlp():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)), (1, 8, 8), 1\n"
        "def grouped():\n"
        "    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=4), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),\n"
        "                        nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))\n"
        "    return net, (4, 8, 8), {'retrain_last': 1}\n")
    code, _, err = _run(capsys, "import", f"{tmp_path / 'nets.py'}:mlp", "--seeded")
    assert code == 1 and "has no frozen dense or depthwise conv to seed" in err
    code, out, err = _run(capsys, "import", f"{tmp_path / 'nets.py'}:grouped", "--seeded", "--json")
    seeds = [layer.get("seed") for layer in json.loads(out)["layers"]]
    assert code == 0 and seeds[0] is None and seeds[1] == {"seed": 1, "index": 0, "kind": "sign"}  # grouped skipped
    code, _, err = _run(capsys, "import", f"{tmp_path / 'nets.py'}:grouped", "--seeded-layers", "0")
    assert code == 1 and "'0' is a grouped conv (groups 4): only dense or depthwise convs can be seeded" in err


def test_a_seeded_design_goes_through_generate_and_refuses_the_unseeded_model(tmp_path, capsys):
    code, out, _ = _run(capsys, "dse", "digits_cnn", "--seeded", "--board", "pynq-z2", "--pop", 8, "--gens", 2,
                        "--out", tmp_path / "dse", "--json")
    design = json.loads(out)["design"]
    gen = design["fe"]["gen"]  # 1, 0, or the layers generated (the DSE's choice per layer)
    assert code == 0 and (gen in (0, 1) or set(gen) <= {"conv1", "conv2", "conv3", "conv4"})
    assert design["per_layer"]["conv1"]["s_frac"] is not None
    # pareto.csv's fe_gen column is each point's design (1, 0 or the layers generated), as pareto.json says
    front = json.loads((tmp_path / "dse" / "pareto.json").read_text())
    front = front["points"]
    with open(tmp_path / "dse" / "pareto.csv") as f:
        rows = list(csv.DictReader(f))
    want = [";".join(p["fe"]["gen"]) if isinstance(p["fe"]["gen"], list) else str(p["fe"]["gen"]) for p in front]
    assert [row["fe_gen"] for row in rows] == want
    path = tmp_path / "dse" / "design.json"
    code, _, err = _run(capsys, "perf", "digits_cnn", "--design", path)
    assert code == 1 and "other seeded convs" in err and "--seeded" in err
    code, _, err = _run(capsys, "perf", "digits_cnn", "--seeded", "--weight-seed", 2, "--design", path, "--json")
    assert code == 0  # another seed: the same structure, other weights
    code, out, _ = _run(capsys, "generate", "digits_cnn", "--seeded", "--design", path, "--out", tmp_path / "prj",
                        "--json")
    assert code == 0 and (tmp_path / "prj" / "sim" / "expected.npz").is_file()  # its simulation: test_fe_seeded.py
