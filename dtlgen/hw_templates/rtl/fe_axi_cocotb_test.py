"""cocotb test of the FE engine's AXI IP (dtl_fe_axi): cocotbext-axi's AxiRam as its memory and an
AxiLiteMaster as the host that programs its registers, starts it, polls it and reads its counters.

The memory image comes in as a binary file and leaves as one (DTLGEN_IMAGE, DTLGEN_DUMP), the
per-descriptor cycles as a text file (DTLGEN_PERF); with DTLGEN_PAUSE_SEED > 0 every channel of the
memory slave (AW, W, B, AR, R) pauses on its own seeded random pattern, about one cycle in
DTLGEN_PAUSE_PERIOD, so the master sees backpressure everywhere.
"""

import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from axi_cocotb import CONTROL, DESC_ADDR, DESC_COUNT, FINISHED, PERF, PERF_COUNT, RUN_CYCLES, memory


@cocotb.test()
async def run_program(dut):
    """Run DTLGEN_DESC_COUNT descriptors from DTLGEN_DESC_ADDR; fail after DTLGEN_MAX_CYCLES."""
    count = int(os.environ["DTLGEN_DESC_COUNT"])
    max_cycles = int(os.environ["DTLGEN_MAX_CYCLES"])
    image = Path(os.environ["DTLGEN_IMAGE"]).read_bytes()
    seed, period = int(os.environ.get("DTLGEN_PAUSE_SEED", "0")), int(os.environ.get("DTLGEN_PAUSE_PERIOD", "4"))
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    ram = memory(dut, len(image), seed, period)
    ram.write(0, image)
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    desc_addr = int(os.environ.get("DTLGEN_DESC_ADDR", "0"))
    await host.write_dword(DESC_ADDR, desc_addr)
    await host.write_dword(DESC_COUNT, count)
    assert [await host.read_dword(a) for a in (DESC_ADDR, DESC_COUNT, PERF_COUNT)] == [desc_addr, count, 256]
    await host.write_dword(CONTROL, 1)
    await host.write_dword(DESC_COUNT, 0)  # a start or a setting while it runs is ignored
    await host.write_dword(DESC_ADDR, desc_addr + 64)
    await host.write_dword(CONTROL, 1)
    finished = RisingEdge(dut.irq)
    result = await First(finished, Timer(10 * max_cycles, unit="ns"))
    assert result is finished, f"engine did not finish within {max_cycles} cycles"
    assert [await host.read_dword(a) for a in (DESC_ADDR, DESC_COUNT)] == [desc_addr, count]
    status = await host.read_dword(CONTROL)
    assert status & 0b1111 == FINISHED, f"status {status:#x}: finished, not busy, no AXI error, no write pending"
    cycles = [await host.read_dword(PERF + 4 * i) for i in range(count)]
    assert sum(cycles) <= await host.read_dword(RUN_CYCLES) <= sum(cycles) + 64 * count, "the run's cycles"
    Path(os.environ["DTLGEN_PERF"]).write_text(" ".join(map(str, cycles)))
    Path(os.environ["DTLGEN_DUMP"]).write_bytes(ram.read(0, len(image)))
