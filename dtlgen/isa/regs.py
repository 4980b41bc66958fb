"""The control registers of the engines' AXI IPs (dtl_axil_regs.sv), defined once: their byte
addresses on the AXI4-Lite slave, the CONTROL register's bits and the cycle counters' window.

`python -m dtlgen.isa` renders the address and bit constants into dtl_axil_regs.sv; the cocotb tests
of the AXI IPs and the board driver (through `dtlgen.host.axil_engine`) import them from here. Every
register is 32 bits wide; an address outside the map reads 0 and ignores writes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    writable: bool
    doc: str


REGISTERS = (
    Register("CONTROL", 0x000, True, "write bit 0: start a run (ignored while one runs); read: status"),
    Register("DESC_ADDR", 0x004, True, "the descriptor list's offset in the engine's memory"),
    Register("DESC_COUNT", 0x008, True, "descriptors in the list (16 bits)"),
    Register("PERF_COUNT", 0x00C, False, "cycle counters the IP keeps (PERF_DEPTH)"),
    Register("PERF_BASE", 0x010, True, "the counter the list's first descriptor records into (RL: 16 bits; FE: 0)"),
    Register("RUN_CYCLES", 0x014, False, "cycles from the last start until finished"),
    Register("MEM_BASE", 0x018, True, "bus address of the engine's memory (4 KB aligned: bits 11:0 read 0)"),
)
ADDRESS = {r.name: r.address for r in REGISTERS}
CONTROL, DESC_ADDR, DESC_COUNT, PERF_COUNT, PERF_BASE, RUN_CYCLES, MEM_BASE = (r.address for r in REGISTERS)
PERF = 0x100  # 0x100 + 4 i: cycles of the descriptor that recorded into counter i (read only)
ADDRESS_BITS = 12  # the slave's byte address width (the counters end below 0x1000)
PERF_DEPTH_MAX = ((1 << ADDRESS_BITS) - PERF) // 4
MEM_BASE_ALIGN = 4096  # the AXI master splits bursts at 4 KB boundaries of the engine's offsets

# CONTROL: the bit a write sets to start, and the status bits a read returns
START = 0x1
BUSY, FINISHED, AXI_ERROR, WRITES_PENDING = 0x1, 0x2, 0x4, 0x8
STATUS_BITS = {"busy": BUSY, "finished": FINISHED, "axi_error": AXI_ERROR, "writes_pending": WRITES_PENDING}
STATUS_MASK = BUSY | FINISHED | AXI_ERROR | WRITES_PENDING
