"""cocotb test of the FE engine's AXI IP (dtl_fe_axi): cocotbext-axi's AxiRam as its memory and an
AxiLiteMaster as the host that programs its registers, starts it, polls it and reads its counters.

The memory image comes in as a binary file and leaves as one (DTLGEN_IMAGE, DTLGEN_DUMP), the
per-descriptor cycles as a text file (DTLGEN_PERF), the master's transactions counted on the bus as
JSON (DTLGEN_STATS: read bursts, write bursts, write beats). With DTLGEN_ERROR_IMAGE (an image whose
last descriptor stores past the slave's memory, where AxiRam answers SLVERR) two more runs follow
the checked one: that image's must end with CONTROL's AXI-error bit and the driver sequence's
EngineError; then the checked image's again must end clean (a start clears the bit). With DTLGEN_PAUSE_SEED > 0 every channel of the
memory slave (AW, W, B, AR, R) pauses on its own seeded random pattern, about one cycle in
DTLGEN_PAUSE_PERIOD, so the master sees backpressure everywhere.
"""

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from dtlgen.host.axil_engine import EngineError
from dtlgen.isa import regs

from axi_cocotb import MEM_BASE, engine, memory


@cocotb.test()
async def run_program(dut):
    """Run DTLGEN_DESC_COUNT descriptors from DTLGEN_DESC_ADDR; fail after DTLGEN_MAX_CYCLES."""
    count = int(os.environ["DTLGEN_DESC_COUNT"])
    max_cycles = int(os.environ["DTLGEN_MAX_CYCLES"])
    image = Path(os.environ["DTLGEN_IMAGE"]).read_bytes()
    seed, period = int(os.environ.get("DTLGEN_PAUSE_SEED", "0")), int(os.environ.get("DTLGEN_PAUSE_PERIOD", "4"))
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    ram = memory(dut, len(image), seed, period)
    ram.write(MEM_BASE, image)
    fe, host = engine(dut, "fe")
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    desc_addr = int(os.environ.get("DTLGEN_DESC_ADDR", "0"))
    await host.write_dword(regs.MEM_BASE, MEM_BASE | 0xFFF)
    assert await host.read_dword(regs.MEM_BASE) == MEM_BASE, "MEM_BASE's low 12 bits read 0"
    await fe.set_memory_base(MEM_BASE)
    # a start or a setting while a run is busy is ignored
    started = cocotb.start_soon(fe.run(desc_addr, count, 0, max_cycles))
    for _ in range(100):
        if await fe.status() & regs.BUSY:
            break
    assert await fe.status() & regs.BUSY, "the run started"
    for offset, value in ((regs.DESC_COUNT, 0), (regs.DESC_ADDR, desc_addr + 64), (regs.MEM_BASE, 0),
                          (regs.CONTROL, regs.START)):
        await host.write_dword(offset, value)
    run_cycles = await started
    assert [await host.read_dword(a) for a in (regs.DESC_ADDR, regs.DESC_COUNT, regs.MEM_BASE, regs.PERF_COUNT)] \
        == [desc_addr, count, MEM_BASE, 256]
    cycles = await fe.perf_counters(count)
    assert sum(cycles) <= run_cycles <= sum(cycles) + 64 * count, "the run's cycles"
    Path(os.environ["DTLGEN_PERF"]).write_text(" ".join(map(str, cycles)))
    Path(os.environ["DTLGEN_DUMP"]).write_bytes(ram.read(MEM_BASE, len(image)))
    Path(os.environ["DTLGEN_STATS"]).write_text(json.dumps(ram.monitor.counts()))
    if os.environ.get("DTLGEN_ERROR_IMAGE"):
        ram.write(MEM_BASE, Path(os.environ["DTLGEN_ERROR_IMAGE"]).read_bytes())
        try:
            await fe.run(desc_addr, count, 0, max_cycles)
        except EngineError as err:
            assert "axi_error" in str(err) and "check MEM_BASE" in str(err), str(err)
        else:
            raise AssertionError("a store past the slave's memory must end the run with an AXI error")
        assert await fe.status() == regs.FINISHED | regs.AXI_ERROR
        ram.write(MEM_BASE, image)
        await fe.run(desc_addr, count, 0, max_cycles)
        assert await fe.status() == regs.FINISHED
