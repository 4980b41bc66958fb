"""Board files: every shipped board loads with its data-sheet figures, and every kind of broken
board file is refused with a BoardError that names the file and the field."""

import copy

import pytest
import yaml

from dtlgen.boards import Board, Resources, boards_table_rows, list_boards, load_board
from dtlgen.errors import BoardError
from dtlgen.isa.params import DdrTiming
from dtlgen.perf import fe

# Figures from the vendor data sheets (DS190, DS891, DS987, FPGA-DS-02012); see each YAML file.
DATA_SHEET_RESOURCES = {
    "pynq-z2": Resources(dsp=220, bram18=280, lut=53_200, ff=106_400),
    "ultra96-v2": Resources(dsp=360, bram18=432, lut=70_560, ff=141_120),
    "zcu104": Resources(dsp=1_728, bram18=624, lut=230_400, ff=460_800, uram=96),
    "zcu102": Resources(dsp=2_520, bram18=1_824, lut=274_080, ff=548_160),
    "kv260": Resources(dsp=1_248, bram18=288, lut=117_120, ff=234_240, uram=64),
    "ulx3s-85f": Resources(dsp=156, bram18=208, lut=83_640, ff=83_640),
    "orangecrab-25f": Resources(dsp=28, bram18=56, lut=24_288, ff=24_288),
}


def test_the_seven_boards_are_shipped():
    assert list_boards() == sorted(DATA_SHEET_RESOURCES)


@pytest.mark.parametrize("name", sorted(DATA_SHEET_RESOURCES))
def test_shipped_board_loads_with_data_sheet_resources(name):
    board = load_board(name)
    assert board.name == name
    assert board.resources == DATA_SHEET_RESOURCES[name]


def test_pynq_z2_matches_its_data_sheet_and_board():
    board = load_board("pynq-z2")
    assert (board.vendor, board.family, board.part, board.package) == (
        "xilinx", "zynq7", "xc7z020clg400-1", "clg400")
    assert (board.dsp_kind, board.bram_kind, board.lut_kind) == ("DSP48E1", "RAMB18", "LUT6")
    assert board.resources == Resources(dsp=220, bram18=280, lut=53_200, ff=106_400, uram=0)
    assert board.clock_mhz == 90  # a target by the README's rule (2x the engines' ECP5 Fmax)
    # two 64-bit HP ports ganged per engine, under the DDR3's usable 1,500 MB/s (16.7 bytes a cycle)
    assert (board.dram_ports, board.dram_port_bytes, board.dram_usable_mb_per_s) == (2, 8, 1500)
    assert board.dram_bytes_per_cycle == board.bus_bytes == 16
    assert board.toolchain == "vivado"
    assert board.ps == "processing_system7"
    assert board.board_part == "tul.com.tw:pynq-z2:part0:1.0"


def test_ecp5_board_carries_its_open_flow_fields():
    board = load_board("ulx3s-85f")
    assert (board.toolchain, board.clock_pin, board.clock_in_mhz, board.nextpnr_device) == (
        "open-ecp5", "G2", 25, "85k")
    assert board.speed_grade == "6"  # written unquoted in YAML, kept as text
    assert board.ps is None


@pytest.mark.parametrize("name", sorted(DATA_SHEET_RESOURCES))
def test_every_board_says_whether_its_clock_is_measured_or_a_target(name):
    board = load_board(name)
    measured = board.toolchain == "open-ecp5"
    assert board.clock_basis.startswith("measured: ") == measured
    assert board.clock_basis.startswith("a target, not measured") != measured


def test_load_board_accepts_a_path(tmp_path):
    path = tmp_path / "my-board.yaml"
    path.write_text(yaml.safe_dump(load_board("kv260").to_dict()))
    assert load_board(path) == load_board(str(path)) == load_board("kv260")


@pytest.mark.parametrize("name", sorted(DATA_SHEET_RESOURCES))
def test_to_dict_from_dict_round_trip(name):
    board = load_board(name)
    assert Board.from_dict(board.to_dict()) == board
    assert Board.from_dict(yaml.safe_load(yaml.safe_dump(board.to_dict()))) == board


def test_table_rows_are_flat_one_per_board():
    rows = boards_table_rows()
    assert [row["name"] for row in rows] == list_boards()
    assert set(rows[0]) == {"name", "family", "part", "package", "dsp", "bram18", "lut", "ff",
                            "clock_mhz", "dram_bytes_per_cycle", "dram_ports", "toolchain"}
    pynq = next(row for row in rows if row["name"] == "pynq-z2")
    assert (pynq["dsp"], pynq["bram18"], pynq["dram_bytes_per_cycle"], pynq["dram_ports"]) == (220, 280, 16, 2)


# Each entry breaks a valid pynq-z2 board dict in one way; the message must name this field.
MALFORMED = {
    "missing field": (lambda d: d["resources"].pop("dsp"), "resources.dsp"),
    "wrong type": (lambda d: d["resources"].update(lut="lots"), "resources.lut"),
    "bool is not a count": (lambda d: d["resources"].update(ff=True), "resources.ff"),
    "bad enum": (lambda d: d.update(family="zynq9"), "family"),
    "kind disagrees with family": (lambda d: d.update(dsp_kind="DSP48E2"), "dsp_kind"),
    "negative number": (lambda d: d["dram"].update(latency_cycles=-40), "dram.latency_cycles"),
    "zero clock": (lambda d: d.update(clock_mhz=0), "clock_mhz"),
    "misspelt field": (lambda d: d.update(board_prt="x"), "board_prt"),
    "other vendor's field": (lambda d: d.update(clock_pin="G2"), "clock_pin"),
    "missing vendor field": (lambda d: d.pop("ps"), "ps"),
    "section not a mapping": (lambda d: d.update(dram=8), "dram"),
    "DRAM timing in part": (lambda d: d["dram"].pop("banks"), "dram.banks"),
    "row not a power of two": (lambda d: d["dram"].update(row_bytes=1000), "dram.row_bytes"),
    "ports and bytes_per_cycle both": (lambda d: d["dram"].update(bytes_per_cycle=16), "dram.bytes_per_cycle"),
    "port fields in part": (lambda d: d["dram"].pop("usable_mb_per_s"), "dram.usable_mb_per_s"),
    "no memory at all": (lambda d: [d["dram"].pop(k) for k in ("ports", "port_bytes", "usable_mb_per_s")],
                         "dram.bytes_per_cycle"),
    "port not a power of two": (lambda d: d["dram"].update(port_bytes=12), "dram.port_bytes"),
    "three ports": (lambda d: d["dram"].update(ports=3), "dram.ports"),
    "refresh as long as its interval": (lambda d: d["dram"].update(refresh_cycles=702), "dram.refresh_cycles"),
    # a row miss closed by every refresh before it ends: the DDR-like memory would never answer
    "miss and refresh fill the interval": (lambda d: d["dram"].update(refresh_interval_cycles=30), "dram.refresh_cycles"),
}


def test_dram_timing_is_optional_and_left_out_of_the_record_when_absent():
    """A board without DRAM timing hashes as it did before the fields existed (designs keep their
    board_sha256); one with it round-trips, and the model takes it as the DDR-like memory's timing."""
    data = load_board("pynq-z2").to_dict()
    for key in ("row_bytes", "banks", "row_miss_cycles", "refresh_interval_cycles", "refresh_cycles"):
        del data["dram"][key]
    plain = Board.from_dict(data)
    assert plain.dram_ddr is None and set(plain.to_dict()["dram"]) == {"ports", "port_bytes", "usable_mb_per_s",
                                                                        "latency_cycles"}
    assert fe.ddr_timing(plain) is None
    board = load_board("pynq-z2")
    assert Board.from_dict(board.to_dict()).digest() == board.digest() != plain.digest()
    assert fe.ddr_timing(board) == DdrTiming(row_bytes=2048, banks=8, t_miss=6, t_refi=702, t_rfc=24)


def test_memory_as_ports_takes_the_lesser_of_the_ports_and_the_dram():
    """Ports x width at the design clock, capped by the DRAM's usable bandwidth: the model's bytes a cycle;
    a one-port board file (bytes_per_cycle) still loads, as one port of that width with no ceiling."""
    data = load_board("pynq-z2").to_dict()
    data["dram"]["usable_mb_per_s"] = 1080  # 12 bytes a cycle at 90 MHz, under the ports' 16
    capped = Board.from_dict(data)
    assert (capped.dram_bytes_per_cycle, capped.bus_bytes) == (12, 16)
    assert Board.from_dict(capped.to_dict()) == capped
    data["clock_mhz"] = 45  # the same DRAM at half the clock: 24 bytes a cycle, over the ports' 16
    assert Board.from_dict(data).dram_bytes_per_cycle == 16
    for key in ("ports", "port_bytes", "usable_mb_per_s"):
        del data["dram"][key]
    data["dram"]["bytes_per_cycle"] = 8
    legacy = Board.from_dict(data)
    assert (legacy.dram_ports, legacy.bus_bytes, legacy.dram_bytes_per_cycle) == (1, 8, 8)
    assert set(legacy.to_dict()["dram"]) >= {"bytes_per_cycle"} and "ports" not in legacy.to_dict()["dram"]


def test_a_dram_slower_than_its_ports_is_refused_at_generation():
    """The simulated memory moves a whole beat a cycle: a board whose DRAM ceiling is below its ports' rate
    explores (the model takes the ceiling) but does not generate, with one line saying what to change."""
    from dtlgen.errors import DesignError
    from dtlgen.generator.project import _bus_bytes

    data = load_board("pynq-z2").to_dict()
    data["dram"]["usable_mb_per_s"] = 1080
    with pytest.raises(DesignError, match="1080 MB/s at 90 MHz is 12 bytes a cycle, less than its ports' 16.*lower "
                                          "dram.port_bytes or dram.ports"):
        _bus_bytes(Board.from_dict(data))


@pytest.mark.parametrize("breakage", sorted(MALFORMED))
def test_malformed_board_file_names_file_and_field(tmp_path, breakage):
    break_it, field = MALFORMED[breakage]
    data = copy.deepcopy(load_board("pynq-z2").to_dict())
    break_it(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))

    with pytest.raises(BoardError) as caught:
        load_board(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"field '{field}'" in message


def test_missing_field_message_says_what_to_add(tmp_path):
    data = load_board("pynq-z2").to_dict()
    del data["resources"]["dsp"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BoardError, match="field 'resources.dsp' is missing; add the number of DSP"):
        load_board(path)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: pynq-z2\nresources: {dsp: 220\n")
    with pytest.raises(BoardError) as caught:
        load_board(path)
    assert str(path) in str(caught.value)
    assert "not valid YAML at line" in str(caught.value)


def test_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- pynq-z2\n")
    with pytest.raises(BoardError, match="expected a mapping"):
        load_board(path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(BoardError, match="does not exist"):
        load_board(path)


def test_unknown_board_name_lists_the_known_boards():
    with pytest.raises(BoardError) as caught:
        load_board("pynq-z3")
    message = str(caught.value)
    assert "'pynq-z3'" in message
    assert all(name in message for name in list_boards())
