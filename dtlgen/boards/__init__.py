"""Boards as data: the FPGA boards dtlgen can target, one YAML file each in this package.

This module finds, reads and checks those files and returns frozen `Board` values. It must not
hold any board's numbers in code (they live in the YAML files, each citing its data sheet) and
must not do performance or resource arithmetic with them; that is `dtlgen.perf`'s job.

Every problem with a board name or file raises `BoardError` with one message that names the
file, the field and the fix.

A board file may come from anyone, and its strings are pasted into tcl, SystemVerilog, .lpf
files and Makefiles. So every string must match a strict pattern (no whitespace except the
single spaces between pins, no quotes, brackets, `$`, `;`, backslashes or newlines), every number
must be finite and in a plausible range, and no input (a directory, binary data, a 1 GB file, an
alias bomb) may end in anything but a one-line BoardError.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import reprlib
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

# Board files are a few kilobytes; a cap keeps a stray log file, /dev/zero-sized input or a YAML
# alias bomb from costing more than a moment (safe_load shares aliased nodes, so parsing a capped
# file stays linear in its size).
_MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class _Pattern:
    """What a string field may hold: `regex` must match the whole value; `words` says it in a message."""

    regex: str
    words: str

    def matches(self, value: str) -> bool:
        # fullmatch, not match with `$`: `$` also matches before a trailing newline.
        return re.fullmatch(self.regex, value) is not None


def is_board_name(value: object) -> bool:
    """Whether `value` is a valid board name (what a design.json's "board" must hold)."""
    return isinstance(value, str) and _NAME.matches(value)


# Lower case only, and never a leading '.', so that a name is also a safe file or directory name.
_NAME = _Pattern(r"[a-z0-9][a-z0-9_.-]{0,63}",
                 "1 to 64 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit")
# Xilinx ('xczu9eg-ffvb1156-2-e', 'xck26-sfvc784-2LV-c') and Lattice ('LFE5U-85F', 'CABGA381')
# part and package names; a leading letter or digit keeps a value from reading as a tool option.
_PART = _Pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
                 "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
# '1', '2LV', '1L', '6', ... (the grade without its leading dash).
_SPEED = _Pattern(r"[A-Za-z0-9]{1,8}", "1 to 8 letters or digits, e.g. '1', '2LV' or '6'")
# vendor:board:component:version, e.g. 'tul.com.tw:pynq-z2:part0:1.0'.
_BOARD_PART = _Pattern(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}",
                       "1 to 128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit")
# A BGA ball name as the .lpf SITE takes it: row letters, then column digits ('G2', 'M18', 'AB3').
_SITE = r"[A-Z]{1,2}[0-9]{1,2}"
_PIN = _Pattern(_SITE, "one package pin: 1 or 2 upper-case letters, then 1 or 2 digits, e.g. 'G2'")
_PINS = _Pattern(rf"{_SITE}(?: {_SITE}){{0,63}}",
                 "1 to 64 package pins separated by single spaces, each 1 or 2 upper-case letters "
                 "then 1 or 2 digits, e.g. 'B2 C2 C1'")

# Ranges of the numeric fields (inclusive). Each is wide enough for any real board and narrow
# enough that arithmetic on it (clock periods, cycle counts, bus widths) stays well-behaved.
# No FPGA fabric clock reaches 1 GHz; below 1 MHz the UART divider and every GOPs figure mean nothing.
_CLOCK_MHZ = (1, 1000)
# At least one bit per cycle; 1024 bytes is eight times the widest AXI data bus (1024 bits).
_BYTES_PER_CYCLE = (0.125, 1024)
# Ganged ports per engine (dtl_axi_gang.sv gangs two); a port of 1 to 128 bytes (AXI data widths).
_PORTS = (1, 2)
_PORT_BYTES = (1, 128)
PORT_FIELDS = ("ports", "port_bytes", "usable_mb_per_s")
# From an 8-bit SDRAM to several HBM stacks.
_MB_PER_S = (1, 10_000_000)
# DRAM round trips are tens to hundreds of cycles; 10,000 is microseconds even at 1 GHz.
_LATENCY_CYCLES = (1, 10_000)
# DDR-like timing (optional): rows of 64 B to 64 KB, 1 to 64 banks, timings up to 100,000 cycles.
_ROW_BYTES = (64, 65_536)
_BANKS = (1, 64)
_DDR_CYCLES = (1, 100_000)
DDR_FIELDS = ("row_bytes", "banks", "row_miss_cycles", "refresh_interval_cycles", "refresh_cycles")
# Several times the largest FPGAs on sale (under 20 million flip-flops).
_RESOURCE_COUNT = (1, 100_000_000)


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
    # Free text fields (not `choices` or `fixed_by_family`, whose values come from tables here).
    pattern: _Pattern | None = None
    # Numbers: the inclusive range.
    bounds: tuple[float, float] | None = None


# Order matters: `family` is checked before the fields whose value it fixes.
_FIELDS = (
    _Field("name", "text", "the board name, e.g. 'pynq-z2'", pattern=_NAME),
    _Field("family", "text", "the device family", choices=tuple(_FAMILY_RULES)),
    _Field("vendor", "text", "the FPGA vendor", fixed_by_family=True),
    _Field("part", "text", "the full part number, e.g. 'xc7z020clg400-1'", pattern=_PART),
    _Field("package", "text", "the package, e.g. 'clg400' or 'CABGA381'", pattern=_PART),
    _Field("speed_grade", "speed", "the speed grade, e.g. '1', '2LV' or '6'", pattern=_SPEED),
    _Field("resources.dsp", "integer",
           "the number of DSP slices (18x18 multipliers on ECP5)", bounds=_RESOURCE_COUNT),
    _Field("resources.bram18", "integer",
           "the number of 18 Kb block RAMs (DP16KD blocks on ECP5)", bounds=_RESOURCE_COUNT),
    _Field("resources.lut", "integer", "the number of LUTs", bounds=_RESOURCE_COUNT),
    _Field("resources.ff", "integer", "the number of flip-flops", bounds=_RESOURCE_COUNT),
    _Field("resources.uram", "integer",
           "the number of UltraRAM blocks (leave the field out if the part has none)",
           required=False, bounds=_RESOURCE_COUNT),
    _Field("dsp_kind", "text", "the DSP primitive", fixed_by_family=True),
    _Field("bram_kind", "text", "the block-RAM primitive", fixed_by_family=True),
    _Field("lut_kind", "text", "the LUT primitive", fixed_by_family=True),
    _Field("clock_mhz", "number", "the default design clock in MHz", bounds=_CLOCK_MHZ),
    _Field("dram.bytes_per_cycle", "number",
           "the bytes per clock cycle of the engines' DRAM port (or describe the ports: dram.ports, "
           "dram.port_bytes, dram.usable_mb_per_s)", required=False, bounds=_BYTES_PER_CYCLE),
    _Field("dram.ports", "integer", "the DRAM ports ganged for each engine, 1 or 2 (two: dtl_axi_gang.sv)",
           required=False, bounds=_PORTS),
    _Field("dram.port_bytes", "integer", "the data bytes of one DRAM port (an AXI data width: a power of two)",
           required=False, bounds=_PORT_BYTES),
    _Field("dram.usable_mb_per_s", "number",
           "the DRAM's usable bandwidth in MB/s, the ceiling of its ports together", required=False,
           bounds=_MB_PER_S),
    _Field("dram.latency_cycles", "integer", "the DRAM read latency in clock cycles",
           bounds=_LATENCY_CYCLES),
    _Field("dram.row_bytes", "integer", "the bytes of one DRAM row (page) across the memory bus, a power of two",
           required=False, bounds=_ROW_BYTES),
    _Field("dram.banks", "integer", "the DRAM's banks, a power of two", required=False, bounds=_BANKS),
    _Field("dram.row_miss_cycles", "integer",
           "the cycles a read of a closed row waits (precharge + activate) in clock cycles",
           required=False, bounds=_DDR_CYCLES),
    _Field("dram.refresh_interval_cycles", "integer", "the refresh interval (tREFI) in clock cycles",
           required=False, bounds=_DDR_CYCLES),
    _Field("dram.refresh_cycles", "integer", "the refresh time (tRFC) in clock cycles, below the interval",
           required=False, bounds=_DDR_CYCLES),
    _Field("toolchain", "text", "the build flow", fixed_by_family=True),
    _Field("ps", "text", "the Vivado processing-system IP", fixed_by_family=True,
           vendor="xilinx"),
    _Field("board_part", "text", "the Vivado board part, e.g. 'tul.com.tw:pynq-z2:part0:1.0'",
           required=False, vendor="xilinx", pattern=_BOARD_PART),
    _Field("clock_pin", "text", "the FPGA pin of the board oscillator, e.g. 'G2'",
           vendor="lattice", pattern=_PIN),
    _Field("clock_in_mhz", "number", "the board oscillator frequency in MHz",
           vendor="lattice", bounds=_CLOCK_MHZ),
    _Field("nextpnr_device", "text", "the nextpnr-ecp5 device option without dashes",
           choices=_NEXTPNR_DEVICES, vendor="lattice"),
    _Field("uart_rx_pin", "text", "the FPGA pin that receives from the host's serial port, e.g. 'M1'",
           required=False, vendor="lattice", pattern=_PIN),
    _Field("uart_tx_pin", "text", "the FPGA pin that transmits to the host's serial port, e.g. 'L4'",
           required=False, vendor="lattice", pattern=_PIN),
    _Field("led_pins", "text", "the LED pins, space-separated, e.g. 'B2 C2 C1'", required=False,
           vendor="lattice", pattern=_PINS),
    _Field("keep_high_pins", "text", "pins the design must drive high, space-separated", required=False,
           vendor="lattice", pattern=_PINS),
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


# The Xilinx boards' clocks are targets (no Vivado here): at most 2x (Zynq-7000) or 2.5x (Zynq
# UltraScale+) the ECP5 -6 post-route Fmax of the same engines, the ratios open SoC frameworks use
# between those families and the ECP5 (LiteX: Arty 100 MHz, ZCU102 125 MHz, ULX3S 50 MHz).
XILINX_CLOCK_RULE = "a target, not measured: at most 2x (Zynq-7000) / 2.5x (UltraScale+) the engines' ECP5 Fmax (README)"


@dataclass(frozen=True)
class DdrSpec:
    """The DRAM's timing as the DDR-like testbench memory and the cycle model take it (all in design
    clock cycles): rows of `row_bytes` interleaved over `banks`, a read of a closed row waits
    `row_miss_cycles`, and every `refresh_interval_cycles` the memory refreshes for `refresh_cycles`."""

    row_bytes: int
    banks: int
    row_miss_cycles: int
    refresh_interval_cycles: int
    refresh_cycles: int


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
    dram_ddr: DdrSpec | None = None  # the DRAM's row, bank and refresh timing, where the file gives it
    # The memory as ports (`dram_bytes_per_cycle` then follows: `memory_bytes_per_cycle`), where the file
    # describes it so: `dram_ports` ports of `dram_port_bytes` at the design clock, ganged for each engine,
    # together capped by the DRAM's usable bandwidth.
    dram_ports: int = 1
    dram_port_bytes: int | None = None
    dram_usable_mb_per_s: float | None = None

    @property
    def gangs_ports(self) -> bool:
        """Whether each engine gangs two memory ports (dtl_axi_gang.sv)."""
        return self.dram_ports == 2

    @property
    def bus_bytes(self) -> int | float:
        """The engines' data bus in bytes: the ganged ports' width (dtl_axi_gang.sv), or the one port's."""
        return self.dram_ports * self.dram_port_bytes if self.dram_port_bytes else self.dram_bytes_per_cycle

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
            "clock_mhz": _canonical_number(self.clock_mhz),
            "dram": ({"ports": self.dram_ports, "port_bytes": self.dram_port_bytes,
                      "usable_mb_per_s": _canonical_number(self.dram_usable_mb_per_s)} if self.dram_port_bytes
                     else {"bytes_per_cycle": _canonical_number(self.dram_bytes_per_cycle)})
            | {"latency_cycles": self.dram_latency_cycles},
            "toolchain": self.toolchain,
        }
        if self.dram_ddr is not None:  # only when given: a board without it hashes as before
            data["dram"].update(asdict(self.dram_ddr))
        vendor_fields = {"ps": self.ps, "board_part": self.board_part,
                         "clock_pin": self.clock_pin,
                         "clock_in_mhz": None if self.clock_in_mhz is None
                         else _canonical_number(self.clock_in_mhz),
                         "nextpnr_device": self.nextpnr_device, "uart_rx_pin": self.uart_rx_pin,
                         "uart_tx_pin": self.uart_tx_pin, "led_pins": self.led_pins,
                         "keep_high_pins": self.keep_high_pins}
        data.update({key: value for key, value in vendor_fields.items() if value is not None})
        return data

    @property
    def clock_basis(self) -> str:
        """What backs the design clock: a measurement (ECP5: nextpnr) or a stated target (Xilinx)."""
        if self.toolchain == "open-ecp5":
            return "measured: 'dtlgen bitstream' checks it against nextpnr's post-route Fmax"
        return XILINX_CLOCK_RULE

    def digest(self) -> str:
        """Hex SHA-256 of the board's canonical JSON: a content hash that changes with any field.

        Canonical: `to_dict()` (which writes a whole-number float as an int, so `clock_mhz: 100`
        and `clock_mhz: 100.0` hash alike) with sorted keys, no whitespace, ASCII only.
        """
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    @classmethod
    def from_dict(cls, data: Any, source: str = "board data") -> Board:
        """Check `data` against the board schema and build a Board.

        `source` names where the data came from in error messages, e.g. "board file x.yaml".
        Anything but a valid board raises BoardError, whatever `data` holds. The result
        round-trips: `Board.from_dict(board.to_dict()) == board`, with the same `digest()`.
        """
        _check_board_data(data, source)
        dram = data["dram"]
        clock_in_mhz = data.get("clock_in_mhz")
        return cls(
            name=data["name"], vendor=data["vendor"], family=data["family"],
            part=data["part"], package=data["package"], speed_grade=str(data["speed_grade"]),
            resources=Resources(**data["resources"]),
            dsp_kind=data["dsp_kind"], bram_kind=data["bram_kind"], lut_kind=data["lut_kind"],
            clock_mhz=_canonical_number(data["clock_mhz"]),
            dram_bytes_per_cycle=_canonical_number(dram["bytes_per_cycle"]) if "bytes_per_cycle" in dram
            else memory_bytes_per_cycle(dram["ports"], dram["port_bytes"], dram["usable_mb_per_s"], data["clock_mhz"]),
            dram_latency_cycles=dram["latency_cycles"],
            toolchain=data["toolchain"],
            ps=data.get("ps"), board_part=data.get("board_part"),
            clock_pin=data.get("clock_pin"),
            clock_in_mhz=None if clock_in_mhz is None else _canonical_number(clock_in_mhz),
            nextpnr_device=data.get("nextpnr_device"), uart_rx_pin=data.get("uart_rx_pin"),
            uart_tx_pin=data.get("uart_tx_pin"), led_pins=data.get("led_pins"),
            keep_high_pins=data.get("keep_high_pins"),
            dram_ddr=DdrSpec(**{key: dram[key] for key in DDR_FIELDS}) if "row_bytes" in dram else None,
            dram_ports=dram.get("ports", 1), dram_port_bytes=dram.get("port_bytes"),
            dram_usable_mb_per_s=None if "usable_mb_per_s" not in dram else _canonical_number(dram["usable_mb_per_s"]),
        )


def memory_bytes_per_cycle(ports: int, port_bytes: int, usable_mb_per_s: float, clock_mhz: float) -> float:
    """Bytes per design-clock cycle of `ports` ganged ports of `port_bytes` at the design clock, capped by
    the DRAM's usable bandwidth: the minimum of the two, which the cycle model uses."""
    return _canonical_number(min(ports * port_bytes, usable_mb_per_s / clock_mhz))


def list_boards() -> list[str]:
    """Names of the boards shipped in this package, sorted."""
    return sorted(entry.name.removesuffix(".yaml") for entry in files(__name__).iterdir()
                  if entry.name.endswith(".yaml"))


def load_board(name_or_path: str | os.PathLike[str]) -> Board:
    """Load a shipped board by name (`pynq-z2`) or a board file by path (`my/board.yaml`)."""
    if _is_path(name_or_path):
        path = os.fspath(name_or_path)
        source = f"board file {_printable(path)}"
        text = _read_board_file(path, source)
    else:
        known = list_boards()
        if name_or_path not in known:
            raise BoardError(f"unknown board {_show(name_or_path)}; known boards: {', '.join(known)} "
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
            "dram_ports": board.dram_ports, "toolchain": board.toolchain,
        })
    return rows


def _is_path(name_or_path: str | os.PathLike[str]) -> bool:
    # Shipped board names never contain a separator or a .yaml suffix, so anything that does
    # is meant as a file.
    if not isinstance(name_or_path, str):
        return True
    return name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path or os.sep in name_or_path


def _read_board_file(path: str, source: str) -> str:
    """The text of the board file at `path`; BoardError for anything that is not a small UTF-8 file."""
    shipped = f"pass a .yaml board file or one of the shipped boards: {', '.join(list_boards())}"
    if os.path.isdir(path):
        raise BoardError(f"{source} is a directory; {shipped}")
    if not os.path.isfile(path):  # also a path with a NUL byte, a FIFO or a device
        kind = "is not a regular file" if os.path.exists(path) else "does not exist"
        raise BoardError(f"{source} {kind}; {shipped}")
    try:
        with open(path, "rb") as stream:
            # Read one byte past the cap rather than trust the size on disk.
            raw = stream.read(_MAX_FILE_BYTES + 1)
    except OSError as err:
        raise BoardError(f"{source} cannot be read ({_printable(err.strerror or str(err))}); "
                         f"check its permissions") from err
    if len(raw) > _MAX_FILE_BYTES:
        raise BoardError(f"{source} is larger than {_MAX_FILE_BYTES >> 20} MiB, far more than a "
                         f"board file needs; pass the right file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BoardError(f"{source} is not UTF-8 text (byte {err.start}); save it as UTF-8") from err


def _parse_yaml(text: str, source: str) -> Any:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = getattr(err, "problem", None) or str(err)
        raise BoardError(f"{source}: not valid YAML{where} ({_one_line(detail)}); fix the syntax") from err
    # safe_load also lets these escape on odd input: ValueError for an integer of more than 4300
    # digits or a date like 2001-02-30, RecursionError for deeply nested brackets.
    except (ValueError, OverflowError, RecursionError) as err:
        raise BoardError(f"{source}: YAML that cannot be read as board data ({_one_line(str(err))}); "
                         f"write plain numbers and strings as in the shipped board files") from err
    if data is None:
        raise BoardError(f"{source} is empty; see the shipped pynq-z2.yaml for the layout")
    return data


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _printable(text: str) -> str:
    # Paths and OS messages go into one-line messages as they are unless they hold control
    # characters (a newline in a file name), which repr shows escaped.
    return text if text.isprintable() else repr(text)


class _ShortRepr(reprlib.Repr):
    """repr for messages: newlines escaped, long strings and deep or long containers cut."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 80
        self.maxlevel = 2

    def repr_int(self, x: int, level: int) -> str:
        # repr of a huge int is slow, and raises ValueError past 4300 digits.
        if x.bit_length() > 128:
            return f"<a {x.bit_length()}-bit integer>"
        return super().repr_int(x, level)


_show = _ShortRepr().repr


def _canonical_number(value: int | float) -> int | float:
    # One value, one form: 100.0 becomes 100, so equal boards have equal dicts and digests.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _check_board_data(data: Any, source: str) -> None:
    """Raise BoardError on the first problem in `data`; return quietly if it is a valid board."""
    if not isinstance(data, dict):
        raise BoardError(f"{source}: expected a mapping of board fields, got "
                         f"{type(data).__name__} {_show(data)}; see the shipped pynq-z2.yaml for "
                         f"the layout")
    for section in _SECTIONS:
        if not isinstance(data.get(section, {}), dict):
            raise BoardError(f"{source}: field '{section}' must be a mapping of its sub-fields; "
                             f"indent them under '{section}:'")
    _reject_unknown_fields(data, source)
    for field in _FIELDS:
        _check_field(data, field, source)
    _check_ports(data["dram"], source)
    _check_ddr(data["dram"], source)


def _check_ports(dram: dict[str, Any], source: str) -> None:
    """The engines' memory comes as one port's `bytes_per_cycle` or as ports (`PORT_FIELDS`, all
    together), not both."""
    given = [key for key in PORT_FIELDS if key in dram]
    if not given:
        if "bytes_per_cycle" not in dram:
            raise BoardError(f"{source}: field 'dram.bytes_per_cycle' is missing; add the bytes per clock cycle "
                             f"of the engines' DRAM port, or describe the ports ({', '.join(PORT_FIELDS)})")
        return
    if "bytes_per_cycle" in dram:
        raise BoardError(f"{source}: field 'dram.bytes_per_cycle' and the port fields ({', '.join(given)}) both "
                         "describe the engines' memory; remove bytes_per_cycle (it follows from the ports)")
    missing = [key for key in PORT_FIELDS if key not in dram]
    if missing:
        raise BoardError(f"{source}: field 'dram.{missing[0]}' is missing: the port fields "
                         f"({', '.join(PORT_FIELDS)}) come together; add {', '.join(missing)}")
    if dram["port_bytes"] & (dram["port_bytes"] - 1):
        raise BoardError(f"{source}: field 'dram.port_bytes' is {dram['port_bytes']}; it must be a power of two "
                         "(an AXI data width)")


def _check_ddr(dram: dict[str, Any], source: str) -> None:
    """The DDR timing fields come all together or not at all, with powers of two where the memory
    decodes bits and a row miss and a refresh shorter than the refresh interval."""
    given = [key for key in DDR_FIELDS if key in dram]
    if not given:
        return
    missing = [key for key in DDR_FIELDS if key not in dram]
    if missing:
        raise BoardError(f"{source}: field 'dram.{missing[0]}' is missing: the DRAM timing fields "
                         f"({', '.join(DDR_FIELDS)}) come together; add {', '.join(missing)} or remove "
                         f"{', '.join(given)}")
    for key in ("row_bytes", "banks"):
        if dram[key] & (dram[key] - 1):
            raise BoardError(f"{source}: field 'dram.{key}' is {dram[key]}; it must be a power of two")
    # a row miss that cannot finish between two refreshes (each closes the row it opened) never ends
    if dram["row_miss_cycles"] + dram["refresh_cycles"] >= dram["refresh_interval_cycles"]:
        raise BoardError(f"{source}: field 'dram.refresh_cycles' ({dram['refresh_cycles']}) plus "
                         f"'dram.row_miss_cycles' ({dram['row_miss_cycles']}) must be below "
                         f"'dram.refresh_interval_cycles' ({dram['refresh_interval_cycles']}): a row miss must fit "
                         "between two refreshes")


def _reject_unknown_fields(data: dict[str, Any], source: str) -> None:
    # A misspelt optional field would otherwise be ignored without a word.
    known = {field.path for field in _FIELDS} | _SECTIONS
    paths = [key for key in data if key not in _SECTIONS]
    paths += [f"{section}.{key}" for section in _SECTIONS for key in data.get(section, {})]
    for path in paths:
        if path not in known:
            raise BoardError(f"{source}: field {_show(path)} is not a board field; remove it or fix "
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
        raise BoardError(f"{where} must be {_KIND_NAMES[field.kind]}, got {_show(value)}; "
                         f"set it to {field.hint}")
    if field.bounds is not None:
        low, high = field.bounds
        span = f"from {low:g} to {high:,}"
        if isinstance(value, float) and not math.isfinite(value):
            raise BoardError(f"{where} is {value!r}, not a finite number; set it to {field.hint}, "
                             f"{span}")
        if not low <= value <= high:
            raise BoardError(f"{where} is {_show(value)}, outside the plausible range {span}; "
                             f"set it to {field.hint}")
    if field.pattern is not None:
        # A speed grade may be an int; one too long to print fails the pattern anyway.
        text = value if isinstance(value, str) else str(value) if value.bit_length() <= 64 else ""
        if not field.pattern.matches(text):
            raise BoardError(f"{where} is {_show(value)}; it must be {field.pattern.words} "
                             f"(it is written into tcl, .lpf and SystemVerilog files)")
    if field.choices and value not in field.choices:
        raise BoardError(f"{where} is {_show(value)}; use one of: {', '.join(field.choices)}")
    if field.fixed_by_family:
        family = data["family"]
        expected = _FAMILY_RULES[family][key]
        if value != expected:
            raise BoardError(f"{where} is {_show(value)}, but family {family!r} has {expected!r}; "
                             f"set it to {expected!r} or correct 'family'")
