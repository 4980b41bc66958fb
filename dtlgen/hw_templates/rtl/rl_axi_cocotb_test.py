"""cocotb testbench of the RL engine's AXI IP (dtl_rl_axi): the host loop (dtlgen.host.rl_host) re-trains
through its AXI4-Lite registers, its data in cocotbext-axi's AxiRam behind the AXI4 master.

Inputs and outputs as rl_cocotb_test.py (DTLGEN_RL_LAYOUT, DTLGEN_RL_PLAN, DTLGEN_MAX_CYCLES;
rl_result.npz and perf_step0.hex / perf_step1.hex, the first two steps' per-descriptor counters read over
AXI4-Lite);
with DTLGEN_PAUSE_SEED > 0 every channel of the memory slave pauses at random (DTLGEN_PAUSE_PERIOD).
"""

import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiRam

from dtlgen.host.axil_engine import AxiLiteEngine
from dtlgen.host.rl_host import RLHost
from dtlgen.isa import regs

from axi_cocotb import MEM_BASE, engine, memory
from rl_cocotb_test import layout_and_data, train_and_record  # (the testbench memory's host loop)


class AxiDevice:
    """The host's Device on the AXI IP: memory through the slave model, runs through the registers
    (the board driver's sequence, dtlgen.host.axil_engine)."""

    def __init__(self, ram: AxiRam, rl: AxiLiteEngine, max_cycles: int):
        self.ram, self.rl, self.max_cycles = ram, rl, max_cycles

    async def write(self, addr: int, data: bytes) -> None:
        self.ram.write(MEM_BASE + addr, data)

    async def read(self, addr: int, size: int) -> bytes:
        return self.ram.read(MEM_BASE + addr, size)

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        return await self.rl.run(desc_addr, count, perf_base, self.max_cycles)


@cocotb.test()
async def retrain(dut):
    """Run the plan's training steps through the host loop; record weights, logits and cycles."""
    workdir = Path.cwd()
    layout, data = layout_and_data()
    seed, period = int(os.environ.get("DTLGEN_PAUSE_SEED", "0")), int(os.environ.get("DTLGEN_PAUSE_PERIOD", "4"))
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    ram = memory(dut, layout.memory_bytes, seed, period)
    rl, _ = engine(dut, "rl")
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    await rl.set_memory_base(MEM_BASE)
    depth = await rl.read32(regs.PERF_COUNT)
    host = RLHost(AxiDevice(ram, rl, int(os.environ["DTLGEN_MAX_CYCLES"])), layout)

    async def keep_first_steps_counters(k, result):
        if k < 2:
            words = await rl.perf_counters(depth)
            (workdir / f"perf_step{k}.hex").write_text("".join(f"{w:08x}\n" for w in words))

    await train_and_record(host, layout, data, workdir, keep_first_steps_counters)
