"""The Python API (dtlgen.api, docs/api.md) on a user's own trained module and data: import, explore,
generate, predict through the C-simulated engines bit for bit with the golden model, and one clear
error for each kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest

import dtlgen
from dtlgen.errors import DesignError, DtlgenError, ModelSpecError
from dtlgen.generator.project import quantize_for_design
from dtlgen.quant import golden

torch = pytest.importorskip("torch")
nn = torch.nn


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32)[:, None], data.target.astype(np.int64)


def trained_cnn(x: np.ndarray, y: np.ndarray) -> "nn.Module":
    """A small CNN trained on 1,500 digits for 4 epochs (seeded): the user's own weights."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))
    optimiser = torch.optim.Adam(net.parameters(), 1e-2)
    xt, yt = torch.from_numpy(x[:1500]), torch.from_numpy(y[:1500])
    for _ in range(4):
        for i in range(0, 1500, 100):
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(xt[i:i + 100]), yt[i:i + 100]).backward()
            optimiser.step()
    return net.eval()


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    x, y = digits()
    net = trained_cnn(x, y)
    with torch.no_grad():
        float_logits = net(torch.from_numpy(x[1500:1564])).numpy()
    model = dtlgen.load_model(net, (1, 8, 8), retrain_last=2)
    design = dtlgen.explore(model, "pynq-z2", pop=8, gens=2, seed=1, calibration=x[:64])
    project = dtlgen.generate(model, design, tmp_path_factory.mktemp("api") / "prj", calibration=x[:64],
                              train=(x[:128], y[:128]))
    return x, y, net, float_logits, model, design, project


def test_a_users_trained_module_predicts_bit_exact_through_the_engines(user):
    x, y, _, float_logits, model, design, project = user
    assert [layer.frozen for layer in model.layers] == [True] * 4 + [False] * 2  # retrain_last=2: both linears
    assert design.pareto and isinstance(design, dtlgen.ExploredDesign) and design.board == "pynq-z2"
    logits = project.predict(x[1500:1564])
    # bit for bit the golden model of the same quantisation (the C-simulation of both engines)
    qnet = quantize_for_design(model, design, x[:64])
    want = golden.hybrid_forward(qnet, x[1500:1564]).reshape(64, -1) * 2.0 ** -golden.output_frac(qnet)
    assert np.array_equal(logits, want)
    # and close to the float model the weights came from (its own accuracy here is about 86 %)
    assert np.mean(logits.argmax(1) == float_logits.argmax(1)) >= 0.9
    assert np.mean(logits.argmax(1) == y[1500:1564]) >= 0.8
    # the golden model's FE (fe="golden", for a project this process generated) gives the same features
    assert np.array_equal(project.predict(x[1500:1564], fe="golden"), logits)
    assert np.array_equal(project.features(x[1500:1508], fe="golden"), project.features(x[1500:1508]))
    # a project opened again from its folder predicts the same
    again = dtlgen.open_project(project.path)
    assert np.array_equal(again.predict(x[1500:1508]), logits[:8])
    with pytest.raises(DesignError, match="fe='golden' needs the quantised network"):
        again.predict(x[1500:1508], fe="golden")
    assert np.array_equal(project.predict(x[1500]), logits[:1])  # one sample is a batch of one


def test_the_user_module_keeps_its_weights(user):
    _, _, net, _, model, _, _ = user
    first = model.layer("0")
    assert np.array_equal(np.asarray(first.weight), net[0].weight.detach().numpy())


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 1, 8, 9)), r"x has shape \(2, 1, 8, 9\); the network takes \(N, 1, 8, 8\)"),
    (np.full((1, 1, 8, 8), np.nan), "NaN or infinite"),
    ("digits", "numeric array"),
])
def test_predict_refuses_bad_input_with_one_error(user, bad, message):
    with pytest.raises(DesignError, match=message):
        user[-1].predict(bad)


def test_load_model_refuses_what_it_cannot_import():
    with pytest.raises(ModelSpecError, match="needs input_shape"):
        dtlgen.load_model(nn.Linear(4, 2))
    with pytest.raises(ModelSpecError, match="give a torch.nn.Module or a MODEL string"):
        dtlgen.load_model(42, (1, 2, 2))
    with pytest.raises(ModelSpecError, match="retrain_last or split, not both"):
        dtlgen.load_model("digits_cnn", retrain_last=1, split=3)
    with pytest.raises(ModelSpecError, match="input_shape"):
        dtlgen.load_model(nn.Linear(4, 2), (1, 0, 4))
    with pytest.warns(UserWarning, match="every layer of 'sequential' is frozen"):
        network = dtlgen.load_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (1, 2, 2))
    assert all(layer.frozen for layer in network.layers)


def test_generate_refuses_bad_training_data(user, tmp_path):
    x, y, _, _, model, design, _ = user
    with pytest.raises(DesignError, match="train y must be 4 integer class labels from 0 to 9"):
        dtlgen.generate(model, design, tmp_path / "p", train=(x[:4], np.array([0, 1, 2, 10])))
    with pytest.raises(DesignError, match="train must be a pair"):
        dtlgen.generate(model, design, tmp_path / "p", train=x[:4])
    with pytest.raises(DtlgenError):
        dtlgen.generate(model, "design.json", tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_boards_and_the_lazy_api():
    assert "pynq-z2" in dtlgen.list_boards() and "ulx3s-85f" in dtlgen.list_boards()
    with pytest.raises(AttributeError):
        dtlgen.no_such_call  # noqa: B018


def test_a_tampered_input_format_is_refused_on_opening(user, tmp_path):
    import json
    import shutil

    copy = tmp_path / "prj"
    shutil.copytree(user[-1].path, copy)
    program = copy / "sim" / "program.json"
    data = json.loads(program.read_text())
    for bad in ({"bits": 99, "frac": 3}, {"bits": 8}, "8.3"):
        program.write_text(json.dumps({**data, "input_format": bad}))
        with pytest.raises(DesignError, match="input_format"):
            dtlgen.open_project(copy)
    del data["input_format"]  # a project of an older dtlgen opens, and says what predict needs
    program.write_text(json.dumps(data))
    with pytest.raises(DesignError, match="no input_format .* regenerate"):
        dtlgen.open_project(copy).predict(np.zeros((1, 1, 8, 8)))


def test_retrain_on_a_shifted_target_improves_it_bit_exact(user, tmp_path):
    # the target task: the digits rotated by 90 degrees; the head re-trains on the C-simulated RL
    # engine, every step replayed by the golden model (a difference raises)
    x, y = user[0], user[1]
    project = dtlgen.open_project(user[-1].path)  # its own weights: the fixture's project stays untouched
    rotated = np.rot90(x, 1, axes=(2, 3)).copy()
    test_x, test_y = rotated[1500:1600], y[1500:1600]
    before = np.mean(project.predict(test_x).argmax(1) == test_y)
    history = project.retrain(rotated[:192], y[:192], epochs=3)
    assert history["steps"] == 3 * 192 // 16 and history["bit_exact"] is True
    assert history["train_accuracy"][-1] > history["train_accuracy"][0]
    after = np.mean(project.predict(test_x).argmax(1) == test_y)
    assert after >= before + 0.2, (before, after)
    with pytest.raises(DesignError, match="y must be 4 integer class labels"):
        project.retrain(rotated[:4], np.array([0, 1, 2, 3.5]))
    with pytest.raises(DesignError, match="engine 'gpu': 'csim' .* or 'rtl'"):
        project.retrain(rotated[:4], y[:4], engine="gpu")
    # the re-trained weights leave the project as a file, and come back into another
    saved = project.save_weights(tmp_path / "retrained.npz")
    with pytest.raises(DtlgenError, match="exists; dtlgen does not overwrite it"):
        project.save_weights(saved)
    other = dtlgen.open_project(user[-1].path)
    other.load_weights(saved)
    assert np.array_equal(other.predict(test_x), project.predict(test_x))


def test_retrain_distils_and_halts_the_same_on_the_c_simulation_and_in_rtl(user):
    """A teacher's float logits (a made-up teacher: the labels, confidently) distil into the head, and the
    halting rule on the epoch's own predictions stops the run on both engines alike (each replayed by the
    golden model, a difference raises); the RTL run's cycles are the model's. Bad strategy values are refused
    before anything runs."""
    x, y = user[0], user[1]
    teacher = np.eye(10)[y[:48]] * 6.0 - 3.0
    rtl, csim = dtlgen.open_project(user[-1].path), dtlgen.open_project(user[-1].path)
    history = rtl.retrain(x[:48], y[:48], epochs=4, engine="rtl", teacher=teacher, halt=0.0)
    other = csim.retrain(x[:48], y[:48], epochs=4, teacher=teacher, halt=0.0)
    assert history["halting"]["halted_epoch"] == other["halting"]["halted_epoch"] == 1
    assert history["epochs"] == other["epochs"] == 2 and history["steps"] == 6
    assert history["distillation"] == {"alpha": 0.5, "temperature": 2}
    assert history["halting"]["agreements"] == other["halting"]["agreements"]
    for name, (w, b) in csim.state.items():
        assert np.array_equal(rtl.state[name][0], w) and np.array_equal(rtl.state[name][1], b)
    assert history["predicted_cycles"] == history["measured_cycles"] > 0
    plain = dtlgen.open_project(user[-1].path)
    plain.retrain(x[:48], y[:48], epochs=2)
    assert any(not np.array_equal(plain.state[n][0], csim.state[n][0]) for n in plain.state), "the teacher changed nothing"
    # numpy scalars are numbers like any other
    assert plain.retrain(x[:48], y[:48], epochs=2, teacher=teacher, kd_temperature=np.int64(4),
                         halt=np.float32(1.0))["halting"]["halted_epoch"] is None
    for kwargs, message in (({"halt": 0.9}, "halt needs a teacher"),
                            ({"teacher": teacher, "halt": 0.5, "epochs": 1}, "give epochs >= 2"),
                            ({"teacher": teacher, "distill": False}, "the teacher is used for nothing"),
                            ({"teacher": teacher, "halt_probe": 8}, "give halt= too"),
                            ({"teacher": teacher, "halt": 1.5}, "halt 1.5: the share"),
                            ({"teacher": teacher, "kd_temperature": 3}, "kd_temperature: distillation temperature 3"),
                            ({"teacher": teacher, "kd_alpha": -1}, "distillation alpha -1"),
                            ({"teacher": teacher, "kd_alpha": 10 ** 400}, "distillation alpha"),
                            ({"teacher": teacher, "halt": 10 ** 400, "epochs": 2}, "halt 1000"),
                            ({"teacher": teacher[:5]}, "teacher has logits of 5 samples"),
                            ({"teacher": teacher[:, :3]}, r"teacher has shape \(48, 3\)"),
                            ({"teacher": teacher * np.nan}, "teacher holds NaN"),
                            ({"teacher": teacher, "halt": 0.5, "halt_probe": -2, "epochs": 2}, "halt_probe -2")):
        with pytest.raises(DesignError, match=message):
            plain.retrain(x[:48], y[:48], **kwargs)
    with pytest.raises(DesignError, match="y must be 48 integer class labels"):
        plain.retrain(x[:48], np.array(3), teacher=teacher)


def test_retrain_in_rtl_simulation_equals_the_c_simulation_and_the_model(user):
    # the same plan on the RTL engine (Verilator) and on the C-simulated HLS engine: the same weights
    x, y = user[0], user[1]
    rtl, csim = dtlgen.open_project(user[-1].path), dtlgen.open_project(user[-1].path)
    history = rtl.retrain(x[:40], y[:40], epochs=1, engine="rtl")
    csim.retrain(x[:40], y[:40], epochs=1)
    assert history["steps"] == 3 and history["bit_exact"] is True and history["engine"] == "rtl"
    for name, (w, b) in csim.state.items():
        assert np.array_equal(rtl.state[name][0], w) and np.array_equal(rtl.state[name][1], b)
    # the host's count of the whole run is the analytical model's, exactly (as in test_rl_rtl)
    assert history["predicted_cycles"] == history["measured_cycles"] > 0


@pytest.mark.parametrize("bad, message", [
    ({"w_extra": np.zeros(3)}, "fmt_.* must be layer .* formats"),  # no arrays of the layers
    ("shape", "must be integers of shape"),
    ("range", "from -"),
    ("float", "must be integers"),
    ("fmt", r"was saved in the formats weights Q\(\d+, 99\)"),
    ("fmt shape", r"fmt_.* 4 integers \[w_bits, w_frac, b_bits, b_frac\]"),
])
def test_load_weights_refuses_a_file_that_does_not_fit(user, tmp_path, bad, message):
    project = dtlgen.open_project(user[-1].path)
    saved = project.save_weights(tmp_path / "w.npz")
    arrays = dict(np.load(saved))
    name = next(iter(project.state))
    if bad == "shape":
        arrays[f"w_{name}"] = arrays[f"w_{name}"][:1]
    elif bad == "range":
        arrays[f"w_{name}"] = arrays[f"w_{name}"] * 0 + (1 << 40)
    elif bad == "float":
        arrays[f"w_{name}"] = arrays[f"w_{name}"].astype(np.float64)
    elif bad == "fmt":
        arrays[f"fmt_{name}"] = arrays[f"fmt_{name}"] * [1, 0, 1, 1] + [0, 99, 0, 0]
    elif bad == "fmt shape":
        arrays[f"fmt_{name}"] = arrays[f"fmt_{name}"][:2]
    else:
        arrays = bad
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DesignError, match=message):
        project.load_weights(tmp_path / "bad.npz")
    with pytest.raises(DesignError, match="no such file"):
        project.load_weights(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DesignError, match="not an NPZ file"):
        project.load_weights(tmp_path / "junk.npz")


def test_load_weights_refuses_the_weights_of_a_design_in_other_formats(user, tmp_path):
    # the same network with another scale for the first RL layer's weights: equal shapes, other integers
    import dataclasses

    x, _, _, _, model, design, project = user
    name = next(iter(project.state))
    ours = project.rl.qnet.layers[name]
    other_frac = ours.w_fmt.frac - 2
    other = dtlgen.generate(model, dataclasses.replace(design, overrides={name: {"w_frac": other_frac}}),
                            tmp_path / "other", calibration=x[:64])
    saved = other.save_weights(tmp_path / "other.npz")
    assert np.shape(other.state[name][0]) == np.shape(project.state[name][0])
    bits = design.rl.bits
    assert list(np.load(saved)[f"fmt_{name}"]) == [bits, other_frac, bits, other.rl.qnet.layers[name].b_fmt.frac]
    before = {k: (w.copy(), b.copy()) for k, (w, b) in project.state.items()}
    with pytest.raises(DesignError) as error:
        dtlgen.open_project(project.path).load_weights(saved)
    message = str(error.value)
    assert str(saved) in message and f"layer '{name}'" in message and "at another scale" in message
    assert f"weights Q({bits}, {other_frac})" in message and f"weights Q({bits}, {ours.w_fmt.frac})" in message
    assert all(np.array_equal(project.state[k][0], w) for k, (w, _) in before.items())


def test_simulate_runs_the_rtl_engines_bit_exact_and_on_the_users_set(user):
    x, y = user[0], user[1]
    project = dtlgen.open_project(user[-1].path)
    report = project.simulate(retrain=True, steps=2, train=(np.rot90(x[:40], 1, axes=(2, 3)), y[:40]))
    assert report["totals"]["fe"]["bit_exact"] and report["training"]["bit_exact"]
    assert report["training"]["steps"] == 2
    # every FE layer's measured cycles against the model's, the tolerance `dtlgen sim`'s tests hold
    assert report["max_layer_abs_error"] <= 0.02
    assert (project.path / "sim" / "sim_report.json").is_file()
    with pytest.raises(DesignError, match="add --retrain"):
        project.simulate(train=(x[:4], y[:4]))
    # distilled from a teacher's logits of the set (`dtlgen sim --retrain --teacher T.npz`)
    report = project.simulate(retrain=True, steps=2, train=(np.rot90(x[:40], 1, axes=(2, 3)), y[:40]),
                              teacher=np.eye(10)[y[:40]] * 4.0, kd_alpha=0.75)
    assert report["training"]["bit_exact"] and report["training"]["distillation"] == {"alpha": 0.75, "temperature": 2}
    with pytest.raises(DesignError, match="teacher logits: 39 rows for a re-training set of 40 samples"):
        project.simulate(retrain=True, steps=1, train=(x[:40], y[:40]), teacher=np.zeros((39, 10)))
    # weights and strategies are checked before any work, with or without a teacher
    for bad, message in (({"kd_alpha": "x"}, "kd_alpha"), ({"replay": -1}, "replay -1"), ({"regrow": "y"}, "regrow"),
                         ({"teacher": np.ones((40, 10), dtype=bool), "train": (x[:40], y[:40])}, "boolean"),
                         ({"replay": 0.5}, "give the set"), ({"regrow": True}, "not pruned")):
        with pytest.raises(DesignError, match=message):
            project.simulate(retrain=True, steps=1, **bad)


def test_a_project_whose_hls_sources_were_edited_is_refused_before_g_plus_plus_compiles_them(user, tmp_path):
    import shutil

    copy = tmp_path / "prj"
    shutil.copytree(user[-1].path, copy)
    engine = copy / "hls" / "dtl_fe_engine.cpp"
    engine.write_text(engine.read_text() + "\nstatic int planted = 1;\n")
    x = user[0][:2]
    for call in (lambda p: p.predict(x), lambda p: p.features(x), lambda p: p.retrain(x, user[1][:2])):
        with pytest.raises(DesignError, match="differs from what this dtlgen writes"):
            call(dtlgen.open_project(copy))


@pytest.mark.parametrize("limits", [{"max_latency_ms": 0}, {"max_latency_ms": float("nan")},
                                    {"max_param_bytes": -5}, {"max_param_bytes": "1000"},
                                    {"max_param_bytes": True}])
def test_explore_refuses_a_device_limit_that_is_not_a_positive_number(limits):
    with pytest.raises(DesignError, match=f"{next(iter(limits))}=.*give a positive number"):
        dtlgen.explore(dtlgen.load_model("digits_cnn"), "pynq-z2", pop=4, gens=1, **limits)


def test_a_pruned_module_retrains_with_its_masks_and_replay(tmp_path):
    """load_model(prune=...): the project's RL engine keeps a mask bit per weight; retrain on the C-simulated
    engine keeps the pruned weights at 0 (checked against the golden model), mixes in the project's cached
    samples with `replay`, and lets them grow back with `regrow`."""
    x, y = digits()
    net = trained_cnn(x, y)
    model = dtlgen.load_model(net, (1, 8, 8), retrain_last=2, prune={"fe": 0.5, "rl": 0.8})
    assert all(layer.mask is not None for layer in model.layers if layer.op in ("conv2d", "linear"))
    design = dtlgen.explore(model, "pynq-z2", pop=8, gens=2, seed=1, calibration=x[:64])
    project = dtlgen.generate(model, design, tmp_path / "prj", calibration=x[:64], train=(x[:128], y[:128]))
    masks = {layer.name: layer.mask for layer in model.retrainable_layers if layer.mask is not None}
    new_x, new_y = x[1500:1564], y[1500:1564]
    kept = project.retrain(new_x, new_y, epochs=2, replay=0.5)
    assert kept["pruning"]["held_at_zero"] and not kept["pruning"]["regrow"] and kept["replayed_samples"] == 32
    assert kept["steps"] == 2 * -(-96 // design.rl.batch) and kept["bit_exact"]
    for name, mask in masks.items():
        assert not project.state[name][0][mask == 0].any()
    grown = project.retrain(new_x, new_y, epochs=2, regrow=True)
    assert grown["pruning"]["regrow"] and grown["pruning"]["pruned_nonzero"] > 0
    # the CLI's csim / sim --regrow: the same project without its masks, C-simulated from the project's set
    from dtlgen.csim import csim_project

    report = csim_project(project.path, 2, regrow=True)
    assert report["training"]["regrow"] and report["training"]["bit_exact"]
    assert project.rl.strategies(None, regrow=True)[0].masks is None and project.rl.masks is not None
    for bad, message in (({"replay": -1}, "replay -1"), ({"replay": "half"}, "replay 'half'"),
                         ({"regrow": "yes"}, "regrow 'yes'"), ({"seed": -1}, "seed -1"), ({"seed": True}, "seed True"),
                         ({"replay": 10 ** 5000}, "replay <int>"),
                         ({"replay": 0.5, "teacher": np.zeros((64, 10))}, "not both")):
        with pytest.raises(DesignError, match=message):
            project.retrain(new_x, new_y, **bad)
    # a project generated without a train set caches the calibration inputs with seeded labels: not data to replay
    from dataclasses import replace

    project.rl = replace(project.rl, seeded_labels=True)
    with pytest.raises(DesignError, match="seeded labels"):
        project.retrain(new_x, new_y, replay=0.5)
