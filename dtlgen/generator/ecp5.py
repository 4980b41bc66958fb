"""The project's ecp5/ directory for a Lattice ECP5 board: what `dtlgen bitstream` builds.

The bitstream holds dtl_uart_core (both engines, their on-chip memory, the UART host link that
dtlgen.host.uart_link drives) under a pin-level top rendered for the board (PLL to the design clock,
power-on reset, LEDs, pins to hold high) and a .lpf from the board file's pins. `build.json` records
the core's parameters, the memory map (FE region from 0, RL region from `rl_base`), the UART's baud
rate and the nextpnr options, so the flow and a host program need nothing else. Nothing here runs
a tool.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2

from dtlgen.boards import Board
from dtlgen.errors import BoardError, DesignError
from dtlgen.generator.fe_program import FEProgram
from dtlgen.generator.rtl import rtl_dir
from dtlgen.host.rl_program import RLLayout
from dtlgen.isa.params import CoreParams
from dtlgen.perf import Design
from dtlgen.perf.board import UART_BAUD, core_for


TOP = "dtl_ecp5_top"
VCO_MHZ = (400.0, 800.0)  # EHXPLLL limits (Lattice TN1263)
PFD_MHZ = (3.125, 400.0)


@dataclass(frozen=True)
class PLL:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int
    out_mhz: float


CORE_SOURCES = ("uart_rx.sv", "uart_tx.sv", "dtl_ram.sv", "fe_engine.sv", "rl_engine.sv", "dtl_uart_core.sv")
CORE_TOP = "dtl_uart_core"


def pll_for(in_mhz: float, out_mhz: float) -> PLL | None:
    """EHXPLLL dividers for out_mhz from in_mhz (None when they are equal: no PLL); the closest output."""
    if abs(in_mhz - out_mhz) < 1e-9:
        return None
    best, best_key = None, None
    centre = sum(VCO_MHZ) / 2  # the middle of the VCO range: margin both ways
    for clki in range(1, 129):
        if not PFD_MHZ[0] <= in_mhz / clki <= PFD_MHZ[1]:
            continue
        for fb in range(1, 81):
            f = in_mhz * fb / clki
            for op in range(1, 129):
                if VCO_MHZ[0] <= f * op <= VCO_MHZ[1]:
                    key = (round(abs(f - out_mhz), 9), abs(f * op - centre), clki)
                    if best_key is None or key < best_key:
                        best, best_key = PLL(clki, fb, op, max(0, op // 2 - 1), f), key
    if best is None or abs(best.out_mhz - out_mhz) > 0.01 * out_mhz:
        raise DesignError(f"no EHXPLLL setting makes {out_mhz} MHz from the {in_mhz} MHz oscillator within 1 %; "
                          "choose another design clock")
    return best


def board_core(design: Design, board: Board, program: FEProgram, m_max: int, layout: RLLayout | None) -> CoreParams:
    """The core for this design: the FE region holds `program`, the RL region follows. The FE buffers
    are sized for the program's ops (largest kernel and stride, residual adds or not), not for
    everything the engine could run: on a board the buffers are most of the FE engine's logic."""
    return core_for(design, board, [image.op for image in program.ops], program.extent, m_max,
                    layout.engine if layout is not None else None, layout.memory_bytes if layout is not None else 0)


def write_ecp5_project(project: Path, board: Board, design: Design, core: CoreParams) -> list[Path]:
    missing = [f for f in ("clock_pin", "clock_in_mhz", "uart_rx_pin", "uart_tx_pin", "nextpnr_device")
               if getattr(board, f) is None]
    if missing:
        raise BoardError(f"board {board.name} has no {', '.join(missing)}: the bitstream's top needs them; add them "
                         f"to its board file (see dtlgen/boards/ulx3s-85f.yaml)")
    pll = pll_for(float(board.clock_in_mhz), float(design.clock_mhz))
    leds = (board.led_pins or "").split()
    keep_high = (board.keep_high_pins or "").split()
    out = Path(project) / "ecp5"
    out.mkdir()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(rtl_dir().parent / "board")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    core_params = sorted(core.hdl_parameters().items())
    (out / f"{TOP}.sv").write_text(env.get_template(f"{TOP}.sv.j2").render(
        board=board.name, clock_in_mhz=board.clock_in_mhz, clock_mhz=design.clock_mhz, pll=pll, leds=len(leds),
        keep_high=len(keep_high), core=core_params))
    (out / "board.lpf").write_text(env.get_template("board.lpf.j2").render(
        board=board.name, part=board.part, package=board.package, clock_pin=board.clock_pin,
        clock_in_mhz=board.clock_in_mhz, uart_rx_pin=board.uart_rx_pin, uart_tx_pin=board.uart_tx_pin,
        led_pins=leds, keep_high_pins=keep_high))
    for name in CORE_SOURCES:
        shutil.copy(rtl_dir() / name, out / name)
    build = {"top": TOP, "sources": list(CORE_SOURCES) + [f"{TOP}.sv"], "lpf": "board.lpf", "board": board.name,
             "device": board.nextpnr_device, "package": board.package, "speed": str(board.speed_grade),
             "clock_mhz": pll.out_mhz if pll else design.clock_mhz, "baud": UART_BAUD,
             "pll": asdict(pll) if pll else None, "core": core.to_dict(),
             "memory_map": {"fe_base": 0, "rl_base": core.rl_base, "bytes": core.mem_bytes}}
    (out / "build.json").write_text(json.dumps(build, indent=2) + "\n")
    return [out / f"{TOP}.sv", out / "board.lpf", out / "build.json"]
