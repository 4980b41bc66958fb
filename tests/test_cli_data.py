"""The user's own weights and data on the command line: `--weights` (a state_dict, loaded safely),
`--calib` and `--data` (NPZ files of inputs and labels), through dse, generate, csim and sim, and one
clear error for each kind of bad file."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dtlgen.cli import main
from dtlgen.model import load_model
from dtlgen.model.factory import call_factory

torch = pytest.importorskip("torch")


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_weights_replace_the_models_own_and_bad_files_get_one_line(tmp_path, capsys):
    module = call_factory("digits_cnn").module
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in module.state_dict().items()}
    torch.save(state, tmp_path / "trained.pt")
    network = load_model("digits_cnn", None, tmp_path / "trained.pt")
    key = "fc2.weight"  # a linear layer: no BatchNorm folded into it
    assert np.array_equal(np.asarray(network.layer("fc2").weight), state[key].numpy())
    torch.save({"checkpoint_epoch": 3, "state_dict": state}, tmp_path / "checkpoint.pt")  # a training checkpoint
    assert np.array_equal(np.asarray(load_model("digits_cnn", None, tmp_path / "checkpoint.pt").layer("fc2").weight),
                          state[key].numpy())
    code, _, _ = _run(capsys, "import", "digits_cnn", "--weights", tmp_path / "trained.pt")
    assert code == 0

    torch.save({k: v for k, v in list(state.items())[1:]}, tmp_path / "missing.pt")
    torch.save({**state, key: state[key][:1]}, tmp_path / "shape.pt")
    torch.save({**state, key: state[key] * float("nan")}, tmp_path / "nan.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module: weights_only refuses it
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04junk")
    for name, words in (("missing.pt", "missing: "), ("shape.pt", "shapes differ"), ("nan.pt", "NaN or infinite"),
                        ("module.pt", "weights_only=True"), ("junk.pt", "not a state_dict"), ("absent.pt", "does not exist"),
                        (".", "is not a file")):
        code, out, err = _run(capsys, "import", "digits_cnn", "--weights", tmp_path / name)
        assert code == 1 and out == "" and words in err and err.count("\n") == 1, (name, err)


def _zip_bomb(path):
    """A real torch.save file whose zip directory declares 3.75 GiB for each of its entries (nothing
    decompresses it: the declared sizes are what the bound reads)."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")  # central directory headers: the uncompressed size at offset 24
    while at >= 0:
        raw[at + 24:at + 28] = (0xF000_0000).to_bytes(4, "little")
        at = raw.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("case, words", [
    ("int", "fc2.weight is int64, the model's float32"),
    ("bool", "fc2.weight is bool, the model's float32"),
    ("complex nan", "fc2.weight is complex64, the model's float32"),
    ("float counter", "bn1.num_batches_tracked is float32, the model's int64"),
    ("legacy", "re-save it with torch.save (zip format"),
    ("bomb", "GiB; it is not the state_dict of a model"),
    ("both", 'two state_dicts, under "state_dict" and under "model"'),
])
def test_weights_of_another_type_size_or_layout_get_one_line(tmp_path, capsys, case, words):
    state = call_factory("digits_cnn").module.state_dict()
    key, path = "fc2.weight", tmp_path / f"{case}.pt"
    changed = {"int": lambda: state[key].to(torch.int64), "bool": lambda: state[key] > 0,
               "complex nan": lambda: torch.complex(state[key], torch.full_like(state[key], float("nan")))}
    if case in changed:
        torch.save({**state, key: changed[case]()}, path)
    elif case == "float counter":
        torch.save({**state, "bn1.num_batches_tracked": torch.tensor(0.0)}, path)
    elif case == "legacy":  # torch's format before 1.6: a bare pickle stream, not a zip
        torch.save(state, path, _use_new_zipfile_serialization=False)
    elif case == "bomb":
        torch.save(state, path)
        _zip_bomb(path)
    else:
        torch.save({"state_dict": state, "model": {k: v * 2 for k, v in state.items()}}, path)
    code, out, err = _run(capsys, "import", "digits_cnn", "--weights", path)
    assert code == 1 and out == "" and f"'{path}'" in err and words in " ".join(err.split()), err
    assert err.count("\n") == 1


def test_weights_in_another_floating_type_load_as_torch_casts_them(tmp_path, capsys):
    state = call_factory("digits_cnn").module.state_dict()
    path = tmp_path / "double.pt"
    torch.save({k: v.double() if v.is_floating_point() else v for k, v in state.items()}, path)
    code, out, err = _run(capsys, "import", "digits_cnn", "--weights", path)
    assert code == 0, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("cli_data")
    digits = load_digits()
    x, y = (digits.images / 16.0)[:, None], digits.target
    np.savez(root / "calib.npz", x=x[:16])
    np.savez(root / "train.npz", x=x[:48], y=y[:48])
    np.savez(root / "other.npz", x=np.rot90(x[48:96], 1, axes=(2, 3)), y=y[48:96])
    # the DSE and the project on the user's calibration inputs and re-training set
    assert main(["dse", "digits_cnn", "--board", "pynq-z2", "--pop", "8", "--gens", "2", "--calib",
                 str(root / "calib.npz"), "--out", str(root / "dse"), "--json"]) == 0
    assert main(["generate", "digits_cnn", "--design", str(root / "dse" / "design.json"), "--calib",
                 str(root / "calib.npz"), "--data", str(root / "train.npz"), "--out", str(root / "prj"), "--json"]) == 0
    return root, x, y


def test_calib_and_data_go_through_dse_generate_and_csim(files, capsys):
    root, x, y = files
    cached = np.load(root / "prj" / "sim" / "rl_train.npz")
    assert np.array_equal(cached["labels"], y[:48]) and len(cached["features"]) == 48
    code, out, _ = _run(capsys, "csim", root / "prj", "--steps", 2, "--data", root / "other.npz", "--json")
    report = json.loads(out)
    assert code == 0 and report["bit_exact"] and report["training"]["steps"] == 2
    # distilled from a teacher's logits of the set: the golden model's replay equal, bit for bit
    np.savez(root / "teacher.npz", logits=np.eye(10)[y[48:96]] * 4.0)
    code, out, _ = _run(capsys, "csim", root / "prj", "--steps", 2, "--data", root / "other.npz", "--teacher",
                        root / "teacher.npz", "--kd-temperature", 4, "--json")
    training = json.loads(out)["training"]
    assert code == 0 and training["bit_exact"] and training["distillation"] == {"alpha": 0.5, "temperature": 4}
    code, _, err = _run(capsys, "csim", root / "prj", "--steps", 0, "--teacher", root / "teacher.npz")
    assert code == 1 and "--steps 0 runs none" in err
    # `sim --retrain --data` takes the same set (test_api.py re-trains on a user's set in RTL simulation)


def test_csim_replays_cached_samples_beside_a_new_set_and_refuses_what_cannot_be(files, capsys):
    """--replay 0.5 mixes 24 of the project's 48 cached samples into --data's 48 (bit-exact like any set);
    --replay without --data, with --teacher, --regrow on an unpruned project, and either without re-training
    get one line each; a share beyond 16 is argparse's."""
    root, x, y = files
    code, out, _ = _run(capsys, "csim", root / "prj", "--steps", 2, "--data", root / "other.npz", "--replay", 0.5,
                        "--json")
    training = json.loads(out)["training"]
    assert code == 0 and training["bit_exact"] and training["replayed_samples"] == 24 and not training["regrow"]
    np.savez(root / "teacher48.npz", logits=np.eye(10)[y[48:96]] * 4.0)
    for command, extra, words in (("csim", ["--replay", 0.5], "give it with --data"),
                                  ("csim", ["--replay", 0.5, "--data", root / "other.npz", "--teacher",
                                            root / "teacher48.npz"], "not both"),
                                  ("csim", ["--regrow"], "not pruned"),
                                  ("csim", ["--steps", 0, "--regrow"], "--steps 0 runs none"),
                                  ("sim", ["--regrow"], "add --retrain")):
        code, out, err = _run(capsys, command, root / "prj", *extra)
        assert code == 1 and out == "" and words in err and err.count("\n") == 1, (extra, err)
    with pytest.raises(SystemExit) as stop:
        main(["csim", str(root / "prj"), "--replay", "20"])
    assert stop.value.code == 2 and "from 0 to 16" in capsys.readouterr().err


def test_sim_retrain_refuses_a_bad_teacher_file_before_simulating(files, tmp_path, capsys):
    """`sim --retrain --teacher T.npz`: a bad teacher file or option gets one line before any simulation (the
    run itself, distilled and bit-exact: test_api.py, Project.simulate(teacher=...), which it calls)."""
    root, x, y = files
    np.savez(tmp_path / "teacher.npz", logits=np.eye(10)[y[48:96]] * 4.0)
    np.savez(tmp_path / "short.npz", logits=np.zeros((5, 10)))
    np.savez(tmp_path / "wide.npz", logits=np.zeros((48, 12)))
    np.savez(tmp_path / "named.npz", teacher=np.zeros((48, 10)))
    for extra, words in ((["--teacher", tmp_path / "short.npz"], "5 rows for a re-training set of 48 samples"),
                         (["--teacher", tmp_path / "wide.npz"], "teacher logits has shape (48, 12)"),
                         (["--teacher", tmp_path / "named.npz"], "holds no array 'logits' (it has: teacher)"),
                         (["--teacher", tmp_path / "missing.npz"], "missing.npz"),
                         (["--teacher", tmp_path / "teacher.npz", "--kd-temperature", 3], "temperature 3"),
                         (["--kd-alpha", 0.5], "add --teacher")):
        before = sorted(p.name for p in (root / "prj" / "sim").iterdir())
        code, out, err = _run(capsys, "sim", root / "prj", "--retrain", "--steps", 1, "--data", root / "other.npz",
                              *extra)
        assert code == 1 and out == "" and words in err and err.count("\n") == 1, err
        assert sorted(p.name for p in (root / "prj" / "sim").iterdir()) == before
    code, _, err = _run(capsys, "sim", root / "prj", "--teacher", tmp_path / "teacher.npz")
    assert code == 1 and "add --retrain" in err


def test_a_corrupt_compressed_data_file_gets_one_line(files, tmp_path, capsys):
    """A member whose compressed bytes are broken (the hostile-input pass found zlib's error escaping as an
    internal error, exit 3): one line, exit 1, for --data and --teacher alike."""
    root, x, y = files
    np.savez_compressed(tmp_path / "good.npz", x=x[:48], y=y[:48], logits=np.zeros((48, 10)))
    raw = bytearray((tmp_path / "good.npz").read_bytes())
    for i in range(200, 600):
        raw[i] ^= 0x5A
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    for option in ("--data", "--teacher"):
        code, out, err = _run(capsys, "csim", root / "prj", "--steps", 1, option, tmp_path / "bad.npz")
        assert code == 1 and out == "" and err.count("\n") == 1 and "bad.npz" in err, err


def test_any_teacher_array_is_cached_or_one_error(files):
    """Whatever array a teacher file holds (any dtype, shape, values), the project's check caches it as
    integer logits of the set's shape, or raises one DesignError: nothing else escapes."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    from dtlgen.errors import DesignError
    from dtlgen.generator.loader import load_rl_project
    rl = load_rl_project(files[0] / "prj")
    shapes = st.sampled_from([(48, 10), (47, 10), (48, 9), (10,), (48, 10, 1), (0, 10), (48, 0)])
    kinds = st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_, np.complex64, np.str_])

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.tuples(shapes, kinds).flatmap(lambda sk: hnp.arrays(sk[1], sk[0])))
    def check(array):
        try:
            cached = rl.teacher_logits(array)
        except DesignError as error:
            assert "teacher logits" in str(error) and "\n" not in str(error)
            return
        assert cached.shape == (48, 10) and cached.dtype == np.int64

    check()


@pytest.mark.parametrize("arrays, words", [
    ({"x": np.zeros((4, 1, 8, 8))}, "has no array 'y'"),
    ({"inputs": np.zeros((4, 1, 8, 8)), "y": np.zeros(4, int)}, "has no array 'x' (it holds 'inputs', 'y')"),
    ({"x": np.zeros((4, 1, 8, 9)), "y": np.zeros(4, int)}, "shape (4, 1, 8, 9)"),
    ({"x": np.zeros((4, 1, 8, 8)), "y": np.array([0, 1, 2, 99])}, "class labels from 0 to 9"),
    ({"x": np.full((4, 1, 8, 8), np.inf), "y": np.zeros(4, int)}, "NaN or infinite"),
    ({"x": np.array([{"a": 1}] * 4, dtype=object), "y": np.zeros(4, int)}, "without pickle"),
    ({"x": np.zeros((4, 1, 8, 8), complex), "y": np.zeros(4, int)}, "must be a real numeric array"),
])
def test_a_bad_data_file_gets_one_line_and_changes_nothing(files, tmp_path, capsys, arrays, words):
    root = files[0]
    np.savez(tmp_path / "bad.npz", **arrays)
    before = sorted(p.name for p in (root / "prj" / "hls").iterdir())
    code, out, err = _run(capsys, "csim", root / "prj", "--steps", 1, "--data", tmp_path / "bad.npz")
    assert code == 1 and out == "" and words in err and err.count("\n") == 1, err
    assert f"--data {tmp_path / 'bad.npz'}" in err  # the checks against the network name the file too
    assert sorted(p.name for p in (root / "prj" / "hls").iterdir()) == before
    code, _, err = _run(capsys, "sim", root / "prj", "--data", root / "other.npz")
    assert code == 1 and "add --retrain" in err


@pytest.mark.parametrize("command, option", [("dse", "--calib"), ("generate", "--calib"), ("generate", "--data")])
def test_data_that_does_not_fit_the_network_names_its_file(files, tmp_path, capsys, command, option):
    root = files[0]
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 1, 8, 9)), y=np.zeros(4, int))
    np.savez(tmp_path / "labels.npz", x=np.zeros((4, 1, 8, 8)), y=np.array([0, 1, 2, 10]))
    where = ["--board", "pynq-z2"] if command == "dse" else ["--design", root / "dse" / "design.json"]
    cases = [("bad.npz", r"x of {} {} has shape \(4, 1, 8, 9\); the network takes \(N, 1, 8, 8\)"),
             (".", "{} {} is not a file")]
    if option == "--data":
        cases.append(("labels.npz", "y of {} {} must be 4 integer class labels from 0 to 9"))
    for name, words in cases:
        code, out, err = _run(capsys, command, "digits_cnn", *where, option, tmp_path / name, "--out", tmp_path / "out")
        assert code == 1 and out == "" and err.count("\n") == 1, err
        assert re.search(words.format(option, re.escape(str(tmp_path / name))), err), err
        assert not (tmp_path / "out").exists()


def test_csim_checks_its_options_before_the_c_simulation_runs(files, capsys, monkeypatch):
    root = files[0]

    def no_c_simulation(*args, **kwargs):
        raise AssertionError("the C-simulation ran before the options were checked")

    monkeypatch.setattr("dtlgen.api.Project.features", no_c_simulation)
    monkeypatch.setattr("dtlgen.csim.csim_project", no_c_simulation)
    code, out, err = _run(capsys, "csim", root / "prj", "--steps", 0, "--data", root / "other.npz")
    assert code == 1 and out == "" and "--steps 0 re-trains nothing" in err and err.count("\n") == 1, err


def test_csim_data_on_a_project_without_an_rl_engine_names_the_cli_options(files, tmp_path, capsys):
    import dtlgen

    root, x, _ = files
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 8 * 8, 10))
    with pytest.warns(UserWarning, match="every layer of 'frozen' is frozen"):
        network = dtlgen.load_model(module, (1, 8, 8), name="frozen")
    design = dtlgen.explore(network, "pynq-z2", pop=4, gens=1, calibration=x[:16])
    project = dtlgen.generate(network, design, tmp_path / "prj", calibration=x[:16]).path
    code, out, err = _run(capsys, "csim", project, "--data", root / "train.npz")
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "has no RL engine" in err and "--retrain-last K or --split" in err and "load_model" not in err


def test_design_json_records_the_calibration_file(files, tmp_path):
    import hashlib

    from dtlgen.errors import DesignError
    from dtlgen.generator.loader import open_project
    from dtlgen.perf import load_design

    root = files[0]
    want = {"path": str((root / "calib.npz").resolve()),
            "sha256": hashlib.sha256((root / "calib.npz").read_bytes()).hexdigest()}
    assert json.loads((root / "dse" / "design.json").read_text())["calibration"] == want
    assert json.loads((root / "prj" / "design.json").read_text())["calibration"] == want
    assert open_project(root / "prj").design.calibration == want
    data = json.loads((root / "dse" / "design.json").read_text())
    del data["calibration"]  # a design of an older dtlgen, or one made on the built-in inputs
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert load_design(tmp_path / "old.json").calibration is None
    for bad in ("calib.npz", {"path": "calib.npz"}, {"path": 3, "sha256": want["sha256"]},
                {"path": "a\nb", "sha256": want["sha256"]}, {**want, "sha256": "XYZ"}, {**want, "extra": 1}):
        (tmp_path / "bad.json").write_text(json.dumps({**data, "calibration": bad}))
        with pytest.raises(DesignError, match=r"field 'calibration'=.* must be \{\"path\": FILE, \"sha256\": 64 hex "
                                              r"digits\} \(the --calib"):
            load_design(tmp_path / "bad.json")


def test_generate_warns_when_the_design_was_explored_on_other_calibration_inputs(files, tmp_path, capsys):
    """A design whose DSE quantised with --calib FILE, generated without it (or with another file), gets one
    warning naming the file to give: its formats may not be the ones the DSE scored. The same file: none."""
    import warnings

    from dtlgen.api import _warn_if_calibrated_otherwise
    from dtlgen.errors import DtlgenWarning

    root = files[0]
    code, _, err = _run(capsys, "generate", "digits_cnn", "--design", root / "dse" / "design.json",
                        "--out", tmp_path / "prj")
    assert code == 0
    said = [line for line in err.splitlines() if "warning:" in line]
    assert len(said) == 1 and f"give --calib {(root / 'calib.npz').resolve()}" in said[0], err
    assert "the model's built-in calibration inputs" in said[0]
    explored = json.loads((root / "dse" / "design.json").read_text())["calibration"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_calibrated_otherwise(explored, dict(explored), True)  # the same file: silent
        _warn_if_calibrated_otherwise(None, None, False)  # explored on the built-in inputs: silent
    with pytest.warns(DtlgenWarning, match=r"quantises with .*other\.npz \(another SHA-256\)"):
        _warn_if_calibrated_otherwise(explored, {"path": str(root / "other.npz"), "sha256": "0" * 64}, True)
