"""cocotb testbench of the RL engine's AXI IP (dtl_rl_axi): the host loop (dtlgen.host.rl_host) re-trains
through its AXI4-Lite registers, its data in cocotbext-axi's AxiRam behind the AXI4 master.

Inputs and outputs as rl_cocotb_test.py (DTLGEN_RL_LAYOUT, DTLGEN_RL_PLAN, DTLGEN_MAX_CYCLES;
rl_result.npz and perf_step0.hex, the first step's per-descriptor counters read over AXI4-Lite);
with DTLGEN_PAUSE_SEED > 0 every channel of the memory slave pauses at random (DTLGEN_PAUSE_PERIOD).
"""

import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiRam

from dtlgen.host.rl_host import RLHost

from axi_cocotb import CONTROL, DESC_ADDR, DESC_COUNT, FINISHED, PERF, PERF_BASE, PERF_COUNT, RUN_CYCLES, memory
from rl_cocotb_test import layout_and_data, train_and_record  # (the testbench memory's host loop)


class AxiDevice:
    """The host's Device on the AXI IP: memory through the slave model, runs through the registers."""

    def __init__(self, dut, ram: AxiRam, host: AxiLiteMaster, max_cycles: int):
        self.dut, self.ram, self.host, self.max_cycles = dut, ram, host, max_cycles

    async def write(self, addr: int, data: bytes) -> None:
        self.ram.write(addr, data)

    async def read(self, addr: int, size: int) -> bytes:
        return self.ram.read(addr, size)

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        await self.host.write_dword(DESC_ADDR, desc_addr)
        await self.host.write_dword(DESC_COUNT, count)
        await self.host.write_dword(PERF_BASE, perf_base)
        await self.host.write_dword(CONTROL, 1)
        finished = RisingEdge(self.dut.irq)
        result = await First(finished, Timer(10 * self.max_cycles, unit="ns"))
        assert result is finished, f"RL engine did not finish {count} descriptors within {self.max_cycles} cycles"
        status = await self.host.read_dword(CONTROL)
        assert status & 0b1111 == FINISHED, f"status {status:#x}: finished, not busy, no AXI error, no write pending"
        return await self.host.read_dword(RUN_CYCLES)


@cocotb.test()
async def retrain(dut):
    """Run the plan's training steps through the host loop; record weights, logits and cycles."""
    workdir = Path.cwd()
    layout, data = layout_and_data()
    seed, period = int(os.environ.get("DTLGEN_PAUSE_SEED", "0")), int(os.environ.get("DTLGEN_PAUSE_PERIOD", "4"))
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    ram = memory(dut, layout.memory_bytes, seed, period)
    control = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    depth = await control.read_dword(PERF_COUNT)
    host = RLHost(AxiDevice(dut, ram, control, int(os.environ["DTLGEN_MAX_CYCLES"])), layout)

    async def keep_first_step_counters(k, result):
        if k == 0:
            words = [await control.read_dword(PERF + 4 * i) for i in range(depth)]
            (workdir / "perf_step0.hex").write_text("".join(f"{w:08x}\n" for w in words))

    await train_and_record(host, layout, data, workdir, keep_first_step_counters)
