"""cocotb test of the FE engine top: start the descriptor list, wait for done, dump memories.

Python never sits in the per-cycle loop: the program is in the DRAM image ($readmemh) and the
results come back through $writememh files, read by `dtlgen.sim.fe_sim` after the run. With
DTLGEN_PROGRESS_FILE set, a byte goes into that file per descriptor the engine finishes (its perf
counter's one-cycle pulse), for the caller's progress bar; the watcher only reads a signal.
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer


async def count_descriptors(dut, path: str) -> None:
    """A byte in `path` per descriptor the engine finishes: one event per descriptor, not per cycle."""
    while True:
        await RisingEdge(dut.perf_valid)
        with open(path, "a") as done:
            done.write(".")


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
    if os.environ.get("DTLGEN_PROGRESS_FILE"):
        cocotb.start_soon(count_descriptors(dut, os.environ["DTLGEN_PROGRESS_FILE"]))
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
