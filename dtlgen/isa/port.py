"""The engines' memory port, defined once: the signals both engines drive and take, their widths and
directions (seen from an engine).

`python -m dtlgen.isa` renders from this list the port declarations of fe_engine.sv and rl_engine.sv,
the mirrored ones of the testbench memory (dram_model.sv), and the signals and connections of the
tops that join them (fe_tb_top.sv, rl_tb_top.sv, dtl_uart_core.sv); a test fails while any of them
differs from what this list renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class PortSignal:
    name: str
    width: str     # an SV expression of the engine's parameters ("1": a single bit)
    engine_out: bool  # driven by the engine (a request) rather than by the memory (a response)


READ = (PortSignal("rd_req_valid", "1", True), PortSignal("rd_req_ready", "1", False),
        PortSignal("rd_req_addr", "32", True), PortSignal("rd_req_beats", "16", True),
        PortSignal("rd_valid", "1", False), PortSignal("rd_data", "BUS_BYTES*8", False))
WRITE = (PortSignal("wr_valid", "1", True), PortSignal("wr_ready", "1", False),
         PortSignal("wr_addr", "32", True), PortSignal("wr_data", "BUS_BYTES*8", True),
         PortSignal("wr_bytes", "8", True))
MEMORY_PORT = READ + WRITE
READ_COMMENT = ("memory read port: burst requests of at most 65535 beats; the data returns in request",
                "order, one beat per cycle")
WRITE_COMMENT = ("memory write port: one beat per cycle, the first wr_bytes bytes of wr_data from wr_addr on",)


# The AXI4 master that puts the memory port on an AXI4 interconnect (dtl_axi_master.sv), its signals
# seen from the master (`engine_out`: driven by the master), prefixed m_axi_: one ID, INCR bursts.
# Rendered into dtl_axi_master.sv and the AXI IP tops that pass them through (dtl_fe_axi.sv,
# dtl_rl_axi.sv). The master reads only bit 1 of a response and no ID (`AXI_UNREAD`).
AXI4_MASTER = tuple(PortSignal("m_axi_" + name, width, out) for name, width, out in (
    ("arid", "1", True), ("araddr", "32", True), ("arlen", "8", True), ("arsize", "3", True),
    ("arburst", "2", True), ("arcache", "4", True), ("arprot", "3", True), ("arvalid", "1", True),
    ("arready", "1", False),
    ("rid", "1", False), ("rdata", "BUS_BYTES*8", False), ("rresp", "2", False), ("rlast", "1", False),
    ("rvalid", "1", False), ("rready", "1", True),
    ("awid", "1", True), ("awaddr", "32", True), ("awlen", "8", True), ("awsize", "3", True),
    ("awburst", "2", True), ("awcache", "4", True), ("awprot", "3", True), ("awvalid", "1", True),
    ("awready", "1", False),
    ("wdata", "BUS_BYTES*8", True), ("wstrb", "BUS_BYTES", True), ("wlast", "1", True), ("wvalid", "1", True),
    ("wready", "1", False),
    ("bid", "1", False), ("bresp", "2", False), ("bvalid", "1", False), ("bready", "1", True)))
AXI_UNREAD = ("m_axi_rid", "m_axi_rresp", "m_axi_bid", "m_axi_bresp")


def axi4_interface(prefix: str, half: bool = False, slave: bool = False) -> tuple[PortSignal, ...]:
    """AXI4_MASTER's signals named `prefix` + channel signal, of half the bus (`half`: a port of two
    ganged, dtl_axi_gang.sv), seen from the slave (`slave`: `engine_out` then marks what it drives)."""
    widths = {"BUS_BYTES*8": "BUS_BYTES*4", "BUS_BYTES": "BUS_BYTES/2"} if half else {}
    return tuple(PortSignal(prefix + s.name.removeprefix("m_axi_"), widths.get(s.width, s.width), s.engine_out != slave)
                 for s in AXI4_MASTER)


# dtl_axi_gang.sv: the engine's master (s_axi_, full bus) on two ports of half the bus (m_axi_, m1_axi_).
# It reads neither the master's size (its ports' is fixed) nor port 1's ID and RLAST (port 0's speak for
# both), nor an address's byte-in-beat bits (`GANG_UNREAD`).
GANG_SLAVE = axi4_interface("s_axi_", slave=True)
GANG_PORTS = (axi4_interface("m_axi_", half=True), axi4_interface("m1_axi_", half=True))
GANG_UNREAD = ("s_axi_araddr", "s_axi_arsize", "s_axi_awaddr", "s_axi_awsize", "m1_axi_rid", "m1_axi_rlast",
               "m1_axi_bid")

# The AXI4-Lite control slave of the AXI IP tops (dtl_axil_regs.sv: 12-bit byte addresses, whole
# 32-bit registers), seen from the slave (`engine_out`: driven by the slave), prefixed s_axil_.
AXIL_SLAVE = tuple(PortSignal("s_axil_" + name, width, out) for name, width, out in (
    ("awaddr", "12", False), ("awvalid", "1", False), ("awready", "1", True),
    ("wdata", "32", False), ("wstrb", "4", False), ("wvalid", "1", False), ("wready", "1", True),
    ("bresp", "2", True), ("bvalid", "1", True), ("bready", "1", False),
    ("araddr", "12", False), ("arvalid", "1", False), ("arready", "1", True),
    ("rdata", "32", True), ("rresp", "2", True), ("rvalid", "1", True), ("rready", "1", False)))
AXIL_UNREAD = ("s_axil_wstrb",)


# Two ports ganged (dtl_axi_gang.sv): an engine whose bus is two HP ports wide sees its memory through a
# permutation inside each 2 KB page (a DRAM row; the AXI master splits bursts at 2 KB): a page's beats
# keep their low halves in the page's first half and their high halves in its second, so each port's
# share of a burst is one contiguous burst, in the same row.
GANG_PAGE = 2048


def gang_offset(offset: int, bus_bytes: int) -> int:
    """Where byte `offset` of an engine's memory (as the engine addresses it) sits in the buffer its two
    ganged ports read: beat i of a page keeps its low half at 8 i (on a 16-byte bus) and its high half
    at 1024 + 8 i of the same page."""
    half = bus_bytes // 2
    page, within = divmod(offset, GANG_PAGE)
    beat, byte = divmod(within, bus_bytes)
    port, byte = divmod(byte, half)
    return page * GANG_PAGE + port * (GANG_PAGE // 2) + beat * half + byte


@lru_cache(maxsize=None)
def _gang_page(bus_bytes: int) -> np.ndarray:
    page = np.array([gang_offset(offset, bus_bytes) for offset in range(GANG_PAGE)], dtype=np.int64)
    page.flags.writeable = False
    return page


def gang_indices(start: int, size: int, bus_bytes: int) -> np.ndarray:
    """Buffer indices of an engine's bytes [start, start + size) behind two ganged ports (`gang_offset`)."""
    offsets = np.arange(start, start + size, dtype=np.int64)
    return offsets - offsets % GANG_PAGE + _gang_page(bus_bytes)[offsets % GANG_PAGE]


def gang_buffer_bytes(size: int) -> int:
    """The buffer behind ganged ports for an engine memory of `size` bytes: whole pages."""
    return -(-size // GANG_PAGE) * GANG_PAGE
