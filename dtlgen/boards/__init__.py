"""Boards as data: the FPGA boards dtlgen can target, one YAML file each in this package.

This module finds, reads and checks those files and returns frozen `Board` values. It must not
hold any board's numbers in code (they live in the YAML files, each citing its data sheet) and
must not do performance or resource arithmetic with them; that is `dtlgen.perf`'s job.

Every problem with a board name or file raises `BoardError` with one message that names the
file, the field and the fix.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from importlib.resources import files
from typing import Any

import yaml

from dtlgen.errors import BoardError

# What a device family fixes about a board. The loader checks a file against this table so that
# a zynqmp board cannot claim DSP48E1 slices or an ECP5 board the Vivado flow.
_FAMILY_RULES: dict[str, dict[str, str]] = {
    "zynq7": {"vendor": "xilinx", "toolchain": "vivado", "dsp_kind": "DSP48E1",
              "bram_kind": "RAMB18", "lut_kind": "LUT6", "ps": "processing_system7"},
    "zynqmp": {"vendor": "xilinx", "toolchain": "vivado", "dsp_kind": "DSP48E2",
               "bram_kind": "RAMB18", "lut_kind": "LUT6", "ps": "zynq_ultra_ps_e"},
    "ecp5": {"vendor": "lattice", "toolchain": "open-ecp5", "dsp_kind": "MULT18X18D",
             "bram_kind": "DP16KD", "lut_kind": "LUT4"},
}

# Device options of nextpnr-ecp5 (`--85k`, `--um5g-45k`, ...), written without the dashes.
_NEXTPNR_DEVICES = ("12k", "25k", "45k", "85k", "um-25k", "um-45k", "um-85k",
                    "um5g-25k", "um5g-45k", "um5g-85k")

# Accepted Python types per field kind and how a message names them. A speed grade may be
# written unquoted in YAML (`speed_grade: 6`), so it accepts an integer and is kept as text.
_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,), "speed": (str, int), "integer": (int,), "number": (int, float)}
_KIND_NAMES = {"text": "a string", "speed": "a string or an integer",
               "integer": "an integer", "number": "a number"}


@dataclass(frozen=True)
class _Field:
    """One entry of the board-file schema; `path` is dotted for fields inside a section."""

    path: str
    kind: str
    hint: str  # completes "add ..." / "set it to ..." in error messages
    required: bool = True
    choices: tuple[str, ...] = ()
    fixed_by_family: bool = False  # value must equal _FAMILY_RULES[family][field]
    vendor: str | None = None  # field exists only on this vendor's boards


# Order matters: `family` is checked before the fields whose value it fixes.
_FIELDS = (
    _Field("name", "text", "the board name, e.g. 'pynq-z2'"),
    _Field("family", "text", "the device family", choices=tuple(_FAMILY_RULES)),
    _Field("vendor", "text", "the FPGA vendor", fixed_by_family=True),
    _Field("part", "text", "the full part number, e.g. 'xc7z020clg400-1'"),
    _Field("package", "text", "the package, e.g. 'clg400' or 'CABGA381'"),
    _Field("speed_grade", "speed", "the speed grade, e.g. '1', '2LV' or '6'"),
    _Field("resources.dsp", "integer",
           "the number of DSP slices (18x18 multipliers on ECP5)"),
    _Field("resources.bram18", "integer",
           "the number of 18 Kb block RAMs (DP16KD blocks on ECP5)"),
    _Field("resources.lut", "integer", "the number of LUTs"),
    _Field("resources.ff", "integer", "the number of flip-flops"),
    _Field("resources.uram", "integer",
           "the number of UltraRAM blocks (leave the field out if the part has none)",
           required=False),
    _Field("dsp_kind", "text", "the DSP primitive", fixed_by_family=True),
    _Field("bram_kind", "text", "the block-RAM primitive", fixed_by_family=True),
    _Field("lut_kind", "text", "the LUT primitive", fixed_by_family=True),
    _Field("clock_mhz", "number", "the default design clock in MHz"),
    _Field("dram.bytes_per_cycle", "number",
           "the bytes per clock cycle of the engines' DRAM port"),
    _Field("dram.latency_cycles", "integer", "the DRAM read latency in clock cycles"),
    _Field("toolchain", "text", "the build flow", fixed_by_family=True),
    _Field("ps", "text", "the Vivado processing-system IP", fixed_by_family=True,
           vendor="xilinx"),
    _Field("board_part", "text", "the Vivado board part, e.g. 'tul.com.tw:pynq-z2:part0:1.0'",
           required=False, vendor="xilinx"),
    _Field("clock_pin", "text", "the FPGA pin of the board oscillator, e.g. 'G2'",
           vendor="lattice"),
    _Field("clock_in_mhz", "number", "the board oscillator frequency in MHz",
           vendor="lattice"),
    _Field("nextpnr_device", "text", "the nextpnr-ecp5 device option without dashes",
           choices=_NEXTPNR_DEVICES, vendor="lattice"),
    _Field("uart_rx_pin", "text", "the FPGA pin that receives from the host's serial port, e.g. 'M1'",
           required=False, vendor="lattice"),
    _Field("uart_tx_pin", "text", "the FPGA pin that transmits to the host's serial port, e.g. 'L4'",
           required=False, vendor="lattice"),
    _Field("led_pins", "text", "the LED pins, space-separated, e.g. 'B2 C2 C1'", required=False,
           vendor="lattice"),
    _Field("keep_high_pins", "text", "pins the design must drive high, space-separated", required=False,
           vendor="lattice"),
)

_SECTIONS = {"resources", "dram"}


@dataclass(frozen=True)
class Resources:
    """Programmable-logic resources of a part, as counted in its data sheet.

    `dsp` counts DSP48 slices (Xilinx) or MULT18X18D multipliers (ECP5); `bram18` counts 18 Kb
    block RAMs: two per Xilinx 36 Kb block, one per ECP5 DP16KD. `uram` counts 288 Kb UltraRAMs.
    """

    dsp: int
    bram18: int
    lut: int
    ff: int
    uram: int = 0


@dataclass(frozen=True)
class Board:
    """One target board. `to_dict`/`from_dict` use the board file's nested shape."""

    name: str
    vendor: str
    family: str
    part: str
    package: str
    speed_grade: str
    resources: Resources
    dsp_kind: str
    bram_kind: str
    lut_kind: str
    clock_mhz: float
    dram_bytes_per_cycle: float
    dram_latency_cycles: int
    toolchain: str
    ps: str | None = None  # Xilinx: the processing-system IP of the block design
    board_part: str | None = None  # Xilinx: Vivado board part, where board files exist
    clock_pin: str | None = None  # ECP5: pin of the board oscillator
    clock_in_mhz: float | None = None  # ECP5: oscillator frequency
    nextpnr_device: str | None = None  # ECP5: nextpnr-ecp5 device option
    uart_rx_pin: str | None = None  # ECP5: the host link's pins (the bitstream's top level)
    uart_tx_pin: str | None = None
    led_pins: str | None = None  # ECP5: status LEDs, space-separated sites
    keep_high_pins: str | None = None  # ECP5: pins to drive high (ULX3S: wifi_gpio0)

    def to_dict(self) -> dict[str, Any]:
        """The board as its YAML file would hold it; fields that do not apply are left out."""
        resources = asdict(self.resources)
        if not self.resources.uram:
            del resources["uram"]
        data: dict[str, Any] = {
            "name": self.name, "vendor": self.vendor, "family": self.family,
            "part": self.part, "package": self.package, "speed_grade": self.speed_grade,
            "resources": resources,
            "dsp_kind": self.dsp_kind, "bram_kind": self.bram_kind, "lut_kind": self.lut_kind,
            "clock_mhz": self.clock_mhz,
            "dram": {"bytes_per_cycle": self.dram_bytes_per_cycle,
                     "latency_cycles": self.dram_latency_cycles},
            "toolchain": self.toolchain,
        }
        vendor_fields = {"ps": self.ps, "board_part": self.board_part,
                         "clock_pin": self.clock_pin, "clock_in_mhz": self.clock_in_mhz,
                         "nextpnr_device": self.nextpnr_device, "uart_rx_pin": self.uart_rx_pin,
                         "uart_tx_pin": self.uart_tx_pin, "led_pins": self.led_pins,
                         "keep_high_pins": self.keep_high_pins}
        data.update({key: value for key, value in vendor_fields.items() if value is not None})
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "board data") -> Board:
        """Check `data` against the board schema and build a Board.

        `source` names where the data came from in error messages, e.g. "board file x.yaml".
        """
        _check_board_data(data, source)
        dram = data["dram"]
        return cls(
            name=data["name"], vendor=data["vendor"], family=data["family"],
            part=data["part"], package=data["package"], speed_grade=str(data["speed_grade"]),
            resources=Resources(**data["resources"]),
            dsp_kind=data["dsp_kind"], bram_kind=data["bram_kind"], lut_kind=data["lut_kind"],
            clock_mhz=data["clock_mhz"],
            dram_bytes_per_cycle=dram["bytes_per_cycle"],
            dram_latency_cycles=dram["latency_cycles"],
            toolchain=data["toolchain"],
            ps=data.get("ps"), board_part=data.get("board_part"),
            clock_pin=data.get("clock_pin"), clock_in_mhz=data.get("clock_in_mhz"),
            nextpnr_device=data.get("nextpnr_device"), uart_rx_pin=data.get("uart_rx_pin"),
            uart_tx_pin=data.get("uart_tx_pin"), led_pins=data.get("led_pins"),
            keep_high_pins=data.get("keep_high_pins"),
        )


def list_boards() -> list[str]:
    """Names of the boards shipped in this package, sorted."""
    return sorted(entry.name.removesuffix(".yaml") for entry in files(__name__).iterdir()
                  if entry.name.endswith(".yaml"))


def load_board(name_or_path: str | os.PathLike[str]) -> Board:
    """Load a shipped board by name (`pynq-z2`) or a board file by path (`my/board.yaml`)."""
    if _is_path(name_or_path):
        path = os.fspath(name_or_path)
        source = f"board file {path}"
        if not os.path.isfile(path):
            raise BoardError(f"{source} does not exist; pass an existing .yaml file or one of "
                             f"the shipped boards: {', '.join(list_boards())}")
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    else:
        known = list_boards()
        if name_or_path not in known:
            raise BoardError(f"unknown board '{name_or_path}'; known boards: {', '.join(known)} "
                             f"(or pass the path of a .yaml board file)")
        resource = files(__name__).joinpath(f"{name_or_path}.yaml")
        source = f"board file {resource}"
        text = resource.read_text(encoding="utf-8")
    return Board.from_dict(_parse_yaml(text, source), source)


def boards_table_rows() -> list[dict[str, Any]]:
    """One flat row per shipped board, for the `dtlgen boards` table."""
    rows = []
    for name in list_boards():
        board = load_board(name)
        rows.append({
            "name": board.name, "family": board.family, "part": board.part,
            "package": board.package,
            "dsp": board.resources.dsp, "bram18": board.resources.bram18,
            "lut": board.resources.lut, "ff": board.resources.ff,
            "clock_mhz": board.clock_mhz, "dram_bytes_per_cycle": board.dram_bytes_per_cycle,
            "toolchain": board.toolchain,
        })
    return rows


def _is_path(name_or_path: str | os.PathLike[str]) -> bool:
    # Shipped board names never contain a separator or a .yaml suffix, so anything that does
    # is meant as a file.
    if not isinstance(name_or_path, str):
        return True
    return name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path or os.sep in name_or_path


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = getattr(err, "problem", None) or str(err)
        raise BoardError(f"{source}: not valid YAML{where} ({detail}); fix the syntax") from err


def _check_board_data(data: Any, source: str) -> None:
    """Raise BoardError on the first problem in `data`; return quietly if it is a valid board."""
    if not isinstance(data, dict):
        raise BoardError(f"{source}: expected a mapping of board fields, got "
                         f"{type(data).__name__}; see the shipped pynq-z2.yaml for the layout")
    for section in _SECTIONS:
        if not isinstance(data.get(section, {}), dict):
            raise BoardError(f"{source}: field '{section}' must be a mapping of its sub-fields; "
                             f"indent them under '{section}:'")
    _reject_unknown_fields(data, source)
    for field in _FIELDS:
        _check_field(data, field, source)


def _reject_unknown_fields(data: dict[str, Any], source: str) -> None:
    # A misspelt optional field would otherwise be ignored without a word.
    known = {field.path for field in _FIELDS} | _SECTIONS
    paths = [key for key in data if key not in _SECTIONS]
    paths += [f"{section}.{key}" for section in _SECTIONS for key in data.get(section, {})]
    for path in paths:
        if path not in known:
            raise BoardError(f"{source}: field '{path}' is not a board field; remove it or fix "
                             f"its spelling (known fields: {', '.join(sorted(known))})")


def _check_field(data: dict[str, Any], field: _Field, source: str) -> None:
    section, _, key = field.path.rpartition(".")
    parent = data.get(section, {}) if section else data
    where = f"{source}: field '{field.path}'"

    if field.vendor is not None and field.vendor != data["vendor"]:
        if key in parent:
            raise BoardError(f"{where} applies only to {field.vendor} boards; remove it")
        return
    if key not in parent:
        if field.required:
            raise BoardError(f"{where} is missing; add {field.hint}")
        return

    value = parent[key]
    # bool is an int in Python, but `dsp: true` is never a count.
    if isinstance(value, bool) or not isinstance(value, _KIND_TYPES[field.kind]):
        raise BoardError(f"{where} must be {_KIND_NAMES[field.kind]}, got {value!r}; "
                         f"set it to {field.hint}")
    if field.kind in ("integer", "number") and not value > 0:
        raise BoardError(f"{where} must be positive, got {value!r}; set it to {field.hint}")
    if field.choices and value not in field.choices:
        raise BoardError(f"{where} is {value!r}; use one of: {', '.join(field.choices)}")
    if field.fixed_by_family:
        family = data["family"]
        expected = _FAMILY_RULES[family][key]
        if value != expected:
            raise BoardError(f"{where} is {value!r}, but family {family!r} has {expected!r}; "
                             f"set it to {expected!r} or correct 'family'")
