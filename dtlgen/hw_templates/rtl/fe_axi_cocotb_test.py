"""cocotb test of the FE engine on an AXI4 memory (fe_axi_tb_top): cocotbext-axi's AxiRam as the slave.

The memory image comes in as a binary file and leaves as one (DTLGEN_IMAGE, DTLGEN_DUMP); with
DTLGEN_PAUSE_SEED > 0 every channel of the slave (AW, W, B, AR, R) pauses on its own seeded random
pattern, about one cycle in DTLGEN_PAUSE_PERIOD, so the master sees backpressure everywhere.
"""

import itertools
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiRam


def pauses(seed: int, period: int):
    rng = random.Random(seed)
    return itertools.cycle([rng.randrange(period) == 0 for _ in range(4099)])


@cocotb.test()
async def run_program(dut):
    """Run DTLGEN_DESC_COUNT descriptors from DTLGEN_DESC_ADDR; fail after DTLGEN_MAX_CYCLES."""
    count = int(os.environ["DTLGEN_DESC_COUNT"])
    max_cycles = int(os.environ["DTLGEN_MAX_CYCLES"])
    image = Path(os.environ["DTLGEN_IMAGE"]).read_bytes()
    seed, period = int(os.environ.get("DTLGEN_PAUSE_SEED", "0")), int(os.environ.get("DTLGEN_PAUSE_PERIOD", "4"))
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=len(image))
    ram.write(0, image)
    if seed:
        channels = (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                    ram.read_if.ar_channel, ram.read_if.r_channel)
        for k, channel in enumerate(channels):
            channel.set_pause_generator(pauses(seed * 7 + k, period))
    dut.rst.value = 1
    dut.start.value = 0
    dut.dump.value = 0
    dut.desc_addr.value = int(os.environ.get("DTLGEN_DESC_ADDR", "0"))
    dut.desc_count.value = count
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    finished = RisingEdge(dut.done)
    result = await First(finished, Timer(10 * max_cycles, unit="ns"))
    assert result is finished, f"engine did not finish within {max_cycles} cycles"
    for _ in range(10_000):  # its last writes answered
        if not int(dut.writes_pending.value):
            break
        await RisingEdge(dut.clk)
    assert not int(dut.writes_pending.value), "writes still unanswered 10,000 cycles after done"
    assert not int(dut.error.value), "an AXI error response"
    await ClockCycles(dut.clk, 4)  # let the last perf-counter write land before the dump
    dut.dump.value = 1
    await RisingEdge(dut.clk)
    dut.dump.value = 0
    await ClockCycles(dut.clk, 2)
    Path(os.environ["DTLGEN_DUMP"]).write_bytes(ram.read(0, len(image)))
