"""The engines' memory port, defined once: the signals both engines drive and take, their widths and
directions (seen from an engine).

`python -m dtlgen.isa` renders from this list the port declarations of fe_engine.sv and rl_engine.sv,
the mirrored ones of the testbench memory (dram_model.sv), and the signals and connections of the
tops that join them (fe_tb_top.sv, rl_tb_top.sv, dtl_uart_core.sv); a test fails while any of them
differs from what this list renders.
"""

from __future__ import annotations

from dataclasses import dataclass


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
