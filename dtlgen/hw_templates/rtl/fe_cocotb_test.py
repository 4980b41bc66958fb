"""cocotb test of the FE engine top: start the descriptor list, wait for done, dump memories.

Python never sits in the per-cycle loop: the program is in the DRAM image ($readmemh) and the
results come back through $writememh files, read by `dtlgen.sim.fe_sim` after the run.
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer


@cocotb.test()
async def run_program(dut):
    """Run DTLGEN_DESC_COUNT descriptors from DTLGEN_DESC_ADDR; fail after DTLGEN_MAX_CYCLES."""
    count = int(os.environ["DTLGEN_DESC_COUNT"])
    max_cycles = int(os.environ["DTLGEN_MAX_CYCLES"])
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
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
    await ClockCycles(dut.clk, 4)  # let the last perf-counter write land before the dump
    dut.dump.value = 1
    await RisingEdge(dut.clk)
    dut.dump.value = 0
    await ClockCycles(dut.clk, 2)
