"""dtlgen generate + dtlgen sim: the project directory, the simulation report and bad input."""

from __future__ import annotations

import json

import pytest

from dtlgen.cli import main

DESIGN = {"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}


def test_generate_then_sim(tmp_path, capsys, monkeypatch):
    design = tmp_path / "design.json"
    design.write_text(json.dumps(DESIGN))
    project = tmp_path / "prj"
    assert main(["generate", "digits_cnn", "--design", str(design), "--out", str(project)]) == 0
    assert {p.name for p in (project / "rtl").iterdir()} >= {"fe_engine.sv", "dram_model.sv", "fe_tb_top.sv",
                                                             "dtl_params.svh", "dram_init.hex"}
    assert (project / "sim" / "test_fe_engine.py").exists() and (project / "report.json").exists()
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # a relative project path, as a user types it
    assert main(["sim", "prj", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["fe"]["bit_exact"] and report["max_layer_abs_error"] <= 0.02
    on_disk = json.loads((project / "sim" / "sim_report.json").read_text())
    row = on_disk["layers"][0]
    assert {"macs", "ops", "predicted_cycles", "measured_cycles", "predicted_gops", "measured_gops", "rel_error",
            "bit_exact"} <= set(row)
    assert row["ops"] == 2 * row["macs"]
    assert on_disk["memory"] == {"kind": "ideal"}
    fe = DESIGN["fe"]  # the array's ceiling at the clock, and no layer above it
    assert on_disk["fe_peak_gops"] == pytest.approx(2 * fe["tm"] * fe["tn"] * on_disk["clock_mhz"] / 1e3)
    assert all(r["measured_gops"] <= on_disk["fe_peak_gops"] for r in on_disk["layers"])
    assert (project / "sim" / "predicted_vs_measured.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same project on the DDR-like memory with pynq-z2's DRAM timing: still bit-exact, the model's
    # closed form within the 2 % the issue asks of it, and the report says which memory it ran on
    assert main(["sim", "prj", "--ddr", "--json"]) == 0
    ddr = json.loads(capsys.readouterr().out)
    assert ddr["totals"]["fe"]["bit_exact"] and abs(ddr["totals"]["fe"]["rel_error"]) <= 0.02
    assert ddr["memory"]["kind"] == "ddr_like" and ddr["memory"]["row_bytes"] == 2048
    assert "DDR-like" in ddr["source"]["measured"]
    assert ddr["totals"]["fe"]["measured_cycles"] > report["totals"]["fe"]["measured_cycles"]
    # dtlgen perf --ddr predicts what sim --ddr compared against
    assert main(["perf", "digits_cnn", "--design", str(design), "--ddr", "--json"]) == 0
    perf = json.loads(capsys.readouterr().out)
    assert perf["fe"]["cycles"] == ddr["totals"]["fe"]["predicted_cycles"] and "DDR-like" in perf["memory"]


def test_sim_on_ddr_needs_the_boards_dram_timing(tmp_path, capsys):
    design = tmp_path / "design.json"
    design.write_text(json.dumps({**DESIGN, "board": "kv260"}))
    assert main(["generate", "digits_cnn", "--design", str(design), "--out", str(tmp_path / "prj")]) == 0
    capsys.readouterr()
    assert main(["sim", str(tmp_path / "prj"), "--ddr"]) == 1
    err = capsys.readouterr().err
    assert "gives no DRAM timing" in err and "dram.row_bytes" in err and "leave out --ddr" in err
    assert main(["perf", "digits_cnn", "--design", str(design), "--ddr"]) == 1
    assert "gives no DRAM timing" in capsys.readouterr().err


def test_sim_of_a_non_project_is_a_clear_error(tmp_path, capsys):
    assert main(["sim", str(tmp_path)]) == 1
    assert "dtlgen generate" in capsys.readouterr().err


def test_generate_refuses_what_the_rtl_cannot_run(tmp_path, capsys):
    design = tmp_path / "design.json"
    design.write_text(json.dumps({**DESIGN, "fe": {**DESIGN["fe"], "a_bits": 12}}))
    assert main(["generate", "digits_cnn", "--design", str(design), "--out", str(tmp_path / "p")]) == 1
    assert "elements of up to one byte" in capsys.readouterr().err
    assert not (tmp_path / "p").exists(), "nothing half-written"


def test_the_plot_shows_both_engines_their_peaks_and_the_models_error(tmp_path, monkeypatch):
    """`predicted_vs_measured.png`: a panel per engine (the RL one after --retrain), each engine's array
    peak as a line, the model's error above each pair of bars."""
    import matplotlib.axes

    from dtlgen.sim.project_sim import plot

    row = lambda name, gops, error: {"name": name, "predicted_gops": gops * (1 + error), "measured_gops": gops,  # noqa: E731
                                     "rel_error": error}
    report = {"model": "m", "board": "pynq-z2", "clock_mhz": 90, "batch": 2, "memory": {"kind": "ideal"},
              "fe_peak_gops": 2.88, "layers": [row("conv1", 1.0, 0.0), row("conv2", 2.5, 0.01)],
              "training": {"tm": 2, "tn": 3, "batch": 16, "descriptors": [row("fc FWD", 0.9, 0.0)]}}
    lines, texts = [], []
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", lambda ax, y, **kw: lines.append(y))
    original_text = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text",
                        lambda ax, x, y, s, **kw: (texts.append(s), original_text(ax, x, y, s, **kw))[1])
    plot(report, tmp_path / "both.png")
    assert lines == [pytest.approx(2.88), pytest.approx(2 * 2 * 3 * 90 / 1e3)]  # FE, then RL
    assert texts == ["+0.00 %", "+1.00 %", "+0.00 %"]
    assert (tmp_path / "both.png").stat().st_size > 10_000


def test_an_interrupted_retraining_run_leaves_nothing_and_a_failed_one_its_logs(tmp_path, monkeypatch):
    """`dtlgen sim --retrain` runs the RL simulation in a scratch folder and publishes it as sim/rl_run: whole
    after a run that ended (a failed run keeps its logs there), never after Ctrl-C."""
    import dtlgen.sim.rl_sim as rl_sim
    from dtlgen.sim.project_sim import simulate_retraining

    design = tmp_path / "design.json"
    design.write_text(json.dumps(DESIGN))
    project = tmp_path / "prj"
    assert main(["generate", "digits_cnn", "--design", str(design), "--out", str(project)]) == 0
    run = project / "sim" / "rl_run"
    for raised in (KeyboardInterrupt, RuntimeError):
        def stopped(layout, plan, state, workdir, latency):
            workdir.mkdir(parents=True)
            (workdir / "sim.log").write_text(f"{raised.__name__}\n")
            raise raised("stopped")

        monkeypatch.setattr(rl_sim, "simulate_training", stopped)
        with pytest.raises(raised):
            simulate_retraining(project, 100, 2)
        if raised is KeyboardInterrupt:
            assert not run.exists()
        else:
            assert (run / "sim.log").read_text() == "RuntimeError\n"
