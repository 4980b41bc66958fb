"""The `dtlgen` command: tables, --json, exit codes 0/1/2 and atomic output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dtlgen.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_boards_table_and_json(capsys):
    code, out, _ = _run(capsys, "boards")
    assert code == 0 and "pynq-z2" in out and "xc7z020" in out and "ulx3s-85f" in out
    code, out, _ = _run(capsys, "boards", "--json")
    rows = json.loads(out)
    assert code == 0 and {r["name"] for r in rows} >= {"pynq-z2", "zcu104", "orangecrab-25f"}


@pytest.mark.parametrize("model", ["digits_cnn", "vgg16_cifar", "resnet18_cifar", "mobilenet_v1_cifar"])
def test_import_table(capsys, model):
    code, out, _ = _run(capsys, "import", model)
    assert code == 0 and "RL (retrain)" in out and "FE (frozen)" in out and "MACs" in out


def test_import_json_with_split_override(capsys):
    code, out, _ = _run(capsys, "import", "digits_cnn", "--retrain-last", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["split_index"] == 8
    assert [l["frozen"] for l in data["layers"]][-2:] == [True, False]
    code, out, _ = _run(capsys, "import", "digits_cnn", "--split", "3", "--json")
    assert json.loads(out)["split_index"] == 3


@pytest.mark.parametrize("argv, words", [
    (["import", "nope"], "neither a zoo model"),
    (["import", "digits_cnn", "--split", "fc7"], "split layer 'fc7'"),
    (["import", "digits_cnn", "--retrain-last", "9"], "retrain_last=9"),
])
def test_user_errors_exit_1_with_one_line(capsys, argv, words):
    code, out, err = _run(capsys, *argv)
    assert code == 1 and out == "" and words in err and err.count("\n") == 1


def test_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "dtlgen.cli", "import"], capture_output=True, text=True)
    assert result.returncode == 2 and "MODEL" in result.stderr


def test_demo_refuses_a_foreign_output_directory(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code, _, err = _run(capsys, "demo", "--out", str(foreign), "--epochs", "1")
    assert code == 1 and "not written by dtlgen" in err and (foreign / "notes.txt").read_text() == "keep me"
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_dse_prints_the_chosen_design_and_each_objectives_best_and_the_whole_front_with_all(tmp_path, capsys):
    from dtlgen.cli import _front_role, _front_summary

    front = [{"info_loss": 0.1, "time_s": 3.0, "utilisation": 0.2}, {"info_loss": 0.0, "time_s": 5.0, "utilisation": 0.9},
             {"info_loss": 0.3, "time_s": 1.0, "utilisation": 0.5}, {"info_loss": 0.2, "time_s": 2.0, "utilisation": 0.3}]
    assert _front_summary(front, 3) == [3, 1, 2, 0]  # chosen, best KL, fastest, smallest
    assert _front_summary(front, 1) == [1, 2, 0]  # the chosen one is also the best KL: once
    assert _front_role(front, 1, 1, "knee") == "* (knee), best logit KL" and _front_role(front, 3, 1, "knee") == ""
    out = tmp_path / "dse"
    assert main(["dse", "digits_cnn", "--board", "pynq-z2", "--pop", "8", "--gens", "2", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    points = len(json.loads((out / "pareto.json").read_text())["points"])
    assert "all with --all" in summary and "* (knee)" in summary
    assert main(["dse", "digits_cnn", "--board", "pynq-z2", "--pop", "8", "--gens", "2", "--out", str(out), "--force",
                 "--all"]) == 0
    full = capsys.readouterr().out
    assert "all with --all" not in full and f"({points} points" in full
    assert full.count("│ ") > summary.count("│ ") or points <= 4


def test_a_model_without_a_split_warns_once_naming_the_flags(tmp_path, capsys):
    model = tmp_path / "net.py"
    model.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), "
                     "nn.Flatten(), nn.Linear(144, 10)), (1, 8, 8)\n")
    assert main(["import", f"{model}:build"]) == 0
    err = capsys.readouterr().err
    assert err.count("dtlgen import: warning:") == 1 and "--retrain-last K" in err and "frozen" in err
    assert main(["import", f"{model}:build", "--retrain-last", "1"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["import", "digits_cnn"]) == 0  # the zoo's models give their split
    assert "warning" not in capsys.readouterr().err


def test_adapters_option_inserts_them_and_generate_runs_them_on_the_rl_engine(capsys, tmp_path):
    code, out, _ = _run(capsys, "import", "digits_cnn", "--adapters", "all", "--json")
    layers = json.loads(out)["layers"]
    names = [l["name"] for l in layers]
    assert code == 0 and json.loads(out)["split_index"] == names.index("conv1_adapter")
    assert [l["name"] for l in layers if l.get("trained") is False] == ["conv2", "conv3", "conv4"]
    design = tmp_path / "design.json"
    design.write_text(json.dumps({"board": "pynq-z2", "clock_mhz": 90, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4,
                                  "w_bits": 8, "a_bits": 8}, "rl": {"tm": 4, "tn": 4, "bits": 16, "batch": 8}}))
    code, out, err = _run(capsys, "generate", "digits_cnn", "--adapters", "tail", "--prune", "rl=0.5", "--design",
                          str(design), "--out", str(tmp_path / "prj"))
    assert code == 1 and "not combined with --prune" in err and err.count("\n") == 1
    assert not (tmp_path / "prj").exists()
    # every block's adapter: the max-pools between them run on the RL engine too (MAXPOOL, MAXPOOL_BWD)
    code, out, err = _run(capsys, "generate", "digits_cnn", "--adapters", "all", "--design", str(design), "--out",
                          str(tmp_path / "prj"))
    layout = json.loads((tmp_path / "prj" / "sim" / "rl_layout.json").read_text())
    assert code == 0 and [l["name"] for l in layout["layers"] if l["pool"]] == ["pool2", "pool4"]
