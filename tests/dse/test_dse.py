"""NSGA-II DSE: reproducible, Dask equal to in-process, search quality, outputs and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dtlgen.atomic import MANIFEST
from dtlgen.boards import load_board
from dtlgen.cli import main
from dtlgen.dse import Space, choose, run_dse
from dtlgen.dse.problem import InfoLossTable
from dtlgen.dse.quality import REDUCED_SPACE, compare_with_exhaustive
from dtlgen.dse.run import search
from dtlgen.model.calibration import calibration_inputs
from dtlgen.errors import BoardError, DesignError
from dtlgen.model import load_model
from dtlgen.perf import load_design, predict

SMALL = Space(fe_tm=(2, 4, 8, 16, 32), fe_tn=(2, 4, 8, 16), fe_tr=(2, 4, 8), fe_tc=(2, 4, 8), fe_w_bits=(4, 6, 8),
              fe_a_bits=(6, 8), fe_lut_32nds=(0, 16), rl_tm=(4, 8), rl_tn=(4, 8), rl_bits=(8, 16))
HV_TARGET = 0.98  # NSGA-II's share of the exhaustive front's hypervolume on the reduced space


@pytest.fixture(scope="module")
def digits():
    network = load_model("digits_cnn")
    return network, load_board("pynq-z2"), calibration_inputs(network, 0)


@pytest.fixture(scope="module")
def info(digits):
    network, _, calib = digits
    return InfoLossTable(network, calib, 16)


def test_same_seed_same_front(digits, info):
    network, board, _ = digits
    x1, f1, n1, _ = search(network, board, info, 16, 6, seed=3, space=SMALL)
    x2, f2, n2, _ = search(network, board, info, 16, 6, seed=3, space=SMALL)
    assert n1 == n2 and np.array_equal(x1, x2) and np.array_equal(f1, f2)
    _, f3, _, _ = search(network, board, info, 16, 6, seed=4, space=SMALL)
    assert not np.array_equal(f1, f3), "a different seed should explore differently"


def test_dask_local_cluster_equals_in_process(digits, info):
    from dask.distributed import Client, LocalCluster

    network, board, _ = digits
    local = search(network, board, info, 12, 4, seed=5, space=SMALL)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = search(network, board, info, 12, 4, seed=5, space=SMALL, client=client)
    assert np.array_equal(local[0], remote[0]) and np.array_equal(local[1], remote[1]) and local[2] == remote[2]


def test_nsga2_reaches_the_exhaustive_front(digits):
    network, board, calib = digits
    report = compare_with_exhaustive(network, board, calib, pop=50, gens=40, seeds=(1,), space=REDUCED_SPACE)
    assert report.evaluations < report.space_points / 4, "the search must not be a disguised enumeration"
    assert report.nsga2_hv_ratio >= HV_TARGET
    assert report.nsga2_hv_ratio > report.random_hv_ratio


def test_outputs_and_design_json(tmp_path, digits, monkeypatch):
    import matplotlib.axes

    network, board, calib = digits
    out = tmp_path / "dse"
    labels = []  # the Pareto plot's points: the front, and the chosen design named
    scatter = matplotlib.axes.Axes.scatter
    monkeypatch.setattr(matplotlib.axes.Axes, "scatter",
                        lambda ax, *args, **kw: (labels.append(kw.get("label")), scatter(ax, *args, **kw))[1])
    result = run_dse(network, board, calib, out, pop=12, gens=4, seed=2, space=SMALL)
    v = result.front[result.chosen]["variables"]
    assert labels[:2] == [f"Pareto front ({len(result.front)} designs)",
                          f"chosen (knee): FE {v['fe_tm']}x{v['fe_tn']} w{v['fe_w_bits']}/a{v['fe_a_bits']}, "
                          f"RL {v['rl_tm']}x{v['rl_tn']} {v['rl_bits']}-bit"]
    assert {p.name for p in out.iterdir()} == {"pareto.json", "pareto.csv", "pareto.png", "design.json", MANIFEST}
    pareto = json.loads((out / "pareto.json").read_text())
    assert len(pareto["points"]) == len(result.front) and pareto["chosen"] == result.chosen
    assert len((out / "pareto.csv").read_text().strip().splitlines()) == len(result.front) + 1
    design = load_design(out / "design.json")
    prediction = predict(network, design, board)
    assert prediction.feasible
    assert design.predicted["fe_gops"] == pytest.approx(prediction.fe_gops)
    assert design.split == "fc1" and set(design.per_layer) == {layer.name for layer in network.layers}
    assert design.rl.acc_bits > 0


def test_preferences_pick_the_extremes():
    f = np.array([[0.1, 10.0, 0.9], [0.5, 1.0, 0.8], [0.9, 5.0, 0.1], [0.3, 4.0, 0.4]])
    assert choose(f, "accuracy") == 0 and choose(f, "throughput") == 1 and choose(f, "resources") == 2
    assert choose(f, "knee") == 3
    with pytest.raises(DesignError, match="prefer"):
        choose(f, "speed")


def test_no_feasible_design_is_a_clear_error(tmp_path, digits):
    network, _, calib = digits
    tiny = (load_board("pynq-z2").to_dict())
    tiny["resources"].update(dsp=1, bram18=1)
    path = tmp_path / "tiny.yaml"
    import yaml

    path.write_text(yaml.safe_dump(tiny))
    with pytest.raises(DesignError, match="none of the .* designs NSGA-II evaluated"):
        run_dse(network, load_board(str(path)), calib, None, pop=8, gens=2, seed=1, space=SMALL)


def test_cli_bad_input(tmp_path, capsys):
    assert main(["dse", "digits_cnn", "--board", "pynq-z9", "--out", str(tmp_path / "x")]) == 1
    assert "unknown board 'pynq-z9'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["dse", "digits_cnn", "--board", "pynq-z2", "--out", str(tmp_path / "x"), "--pop", "0"])
    assert exit_info.value.code == 2
    with pytest.raises(BoardError):
        load_board("nope")


def test_a_small_search_on_a_small_fpga_starts_from_designs_that_fit(digits, info):
    """--pop 12 --gens 3 on the ECP5-85F (156 multipliers): uniform draws over 64x64 arrays almost
    never fit it; the first population is drawn to fit, so every design of it does."""
    network, _, _ = digits
    board = load_board("ulx3s-85f")
    x, f, n_eval, problem = search(network, board, info, 12, 3, seed=1)
    assert len(f) >= 1
    first_x, _, first_g = problem.archive[0]
    assert len(first_x) == 12 and np.all(first_g <= 0), "the first population fits the board"
    assert n_eval == 12 * 3 + problem.discarded  # the redrawn misfits count as evaluations


def test_dse_can_rank_the_fe_on_the_boards_ddr_like_memory(tmp_path, digits, capsys):
    """--ddr: every design's FE time is the DDR-like memory's closed form (never below the ideal memory's),
    design.json says so, and a board without DRAM timing is one clear error naming the fields."""
    from dtlgen.dse.problem import Fixed, Workload, evaluate_model, make_design
    from dtlgen.perf.fe import ddr_timing

    network, board, calib = digits
    values = {"fe_tm": 8, "fe_tn": 8, "fe_tr": 4, "fe_tc": 8, "fe_w_bits": 8, "fe_a_bits": 8, "fe_lut_32nds": 0,
              "rl_tm": 4, "rl_tn": 4, "rl_bits": 16}
    ideal, ddr = (evaluate_model(network, board, Workload(), Fixed(ddr=flag), [values])[0] for flag in (False, True))
    design = make_design(values, board)
    slower = predict(network, design, board, ddr_timing(board)).fe_cycles - predict(network, design, board).fe_cycles
    images = Workload().inference_images + Workload().retrain_images
    assert slower > 0  # row misses and refresh
    assert ddr[0] - ideal[0] == pytest.approx(slower * images / (board.clock_mhz * 1e6), rel=1e-9)  # time_s
    assert main(["dse", "digits_cnn", "--board", "pynq-z2", "--out", str(tmp_path / "d"), "--pop", "6", "--gens", "2",
                 "--ddr"]) == 0
    assert "DDR-like" in capsys.readouterr().out
    assert "DDR-like" in json.loads((tmp_path / "d" / "design.json").read_text())["predicted"]["source"]
    assert main(["dse", "digits_cnn", "--board", "ulx3s-85f", "--out", str(tmp_path / "e"), "--pop", "6", "--gens", "2",
                 "--ddr"]) == 1
    assert "dram.row_bytes" in capsys.readouterr().err and not (tmp_path / "e").exists()


def test_device_limits_keep_the_front_within_them(tmp_path, digits, info):
    """--max-latency-ms and --max-param-bytes (the paper's storage and time limits): every design on the
    front meets both, by the same model that reports them (an image to its logits: its FE run and the RL
    forward; the parameters' stored bytes at the design's widths), and the unlimited front has designs
    beyond them, so the limits cut something."""
    from dtlgen.dse.problem import Fixed

    network, board, calib = digits
    free = run_dse(network, board, calib, None, pop=16, gens=5, seed=2, space=SMALL)
    latencies = sorted(p["latency_ms"] for p in free.front)
    sizes = sorted(p["param_bytes"] for p in free.front)
    limit_ms, limit_bytes = latencies[len(latencies) // 2], sizes[len(sizes) // 2]
    assert latencies[-1] > limit_ms and sizes[-1] > limit_bytes
    limited = run_dse(network, board, calib, tmp_path / "dse", pop=16, gens=5, seed=2, space=SMALL,
                      fixed=Fixed(max_latency_ms=limit_ms, max_param_bytes=limit_bytes))
    assert limited.front
    for point in limited.front:
        design = load_design_point(point, board)
        p = predict(network, design, board)
        assert point["latency_ms"] == pytest.approx(p.latency_ms) and p.latency_ms <= limit_ms
        assert p.latency_cycles == p.fe_cycles + p.rl_infer_cycles > p.fe_cycles
        assert point["param_bytes"] == info.param_bytes(point["variables"]["fe_w_bits"], point["variables"]["fe_a_bits"],
                                                        point["variables"]["rl_bits"]) <= limit_bytes
    header = (tmp_path / "dse" / "pareto.csv").read_text().splitlines()[0].split(",")
    assert "latency_ms" in header and "param_bytes" in header


def load_design_point(point, board):
    """The Design of a front point (its FE and RL configurations at the board's clock)."""
    from dtlgen.perf import Design

    return Design.from_dict({"board": board.name, "clock_mhz": board.clock_mhz, "fe": point["fe"], "rl": point["rl"]})


@pytest.mark.parametrize("args, said", [
    (["--max-latency-ms", "0.00001"], r"meets --max-latency-ms 1e-05 \(the best of them: [0-9.]+ ms\)"),
    (["--max-param-bytes", "100"], r"meets --max-param-bytes 100 \(the best of them: [0-9,]+ B\)"),
    (["--max-latency-ms", "0"], "--max-latency-ms: 0 must be a positive, finite number"),
    (["--max-latency-ms", "inf"], "--max-latency-ms: inf must be a positive, finite number"),
    (["--max-param-bytes", "1.5"], "--max-param-bytes: '1.5' is not an integer"),
])
def test_device_limits_nothing_meets_or_bad_values_are_one_clear_error(tmp_path, capsys, args, said):
    import re

    out = tmp_path / "dse"
    try:
        code = main(["dse", "digits_cnn", "--board", "pynq-z2", "--pop", "8", "--gens", "2", "--out", str(out), *args])
    except SystemExit as exit_info:  # argparse: a usage error
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == (2 if "must be" in said or "not an" in said else 1) and re.search(said, err), err
    assert not out.exists()
