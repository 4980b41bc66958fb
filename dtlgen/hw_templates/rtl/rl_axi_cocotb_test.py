"""cocotb testbench of the RL engine's AXI IP (dtl_rl_axi): the host loop (dtlgen.host.rl_host) re-trains
through its AXI4-Lite registers, its data in cocotbext-axi's AxiRam behind the AXI4 master.

Inputs and outputs as rl_cocotb_test.py (DTLGEN_RL_LAYOUT, DTLGEN_RL_PLAN, DTLGEN_MAX_CYCLES;
rl_result.npz and perf_step0.hex, the first step's per-descriptor counters read over AXI4-Lite);
with DTLGEN_PAUSE_SEED > 0 every channel of the memory slave pauses at random (DTLGEN_PAUSE_PERIOD).
"""

import itertools
import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from dtlgen.host.rl_host import RLHost, TrainingPlan
from dtlgen.host.rl_program import RLLayout

CONTROL, DESC_ADDR, DESC_COUNT, PERF_COUNT, PERF_BASE, RUN_CYCLES, PERF = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x100


def pauses(seed: int, period: int):
    rng = random.Random(seed)
    return itertools.cycle([rng.randrange(period) == 0 for _ in range(4099)])


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
        assert status & 0b1111 == 0b0010, f"status {status:#x}: finished, not busy, no AXI error, no write pending"
        return await self.host.read_dword(RUN_CYCLES)


@cocotb.test()
async def retrain(dut):
    """Run the plan's training steps through the host loop; record weights, logits and cycles."""
    workdir = Path.cwd()
    layout = RLLayout.from_dict(json.loads(Path(os.environ["DTLGEN_RL_LAYOUT"]).read_text()))
    data = np.load(os.environ["DTLGEN_RL_PLAN"])
    seed, period = int(os.environ.get("DTLGEN_PAUSE_SEED", "0")), int(os.environ.get("DTLGEN_PAUSE_PERIOD", "4"))
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=layout.memory_bytes)
    if seed:
        channels = (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                    ram.read_if.ar_channel, ram.read_if.r_channel)
        for k, channel in enumerate(channels):
            channel.set_pause_generator(pauses(seed * 7 + k, period))
    control = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    depth = await control.read_dword(PERF_COUNT)
    host = RLHost(AxiDevice(dut, ram, control, int(os.environ["DTLGEN_MAX_CYCLES"])), layout)
    names = [p.name for p in layout.layers]
    plan = TrainingPlan(data["features"], data["labels"], data["order"], [int(s) for s in data["batch_sizes"]],
                        [int(s) for s in data["lr_shifts"]], int(data["first_step"]),
                        [int(s) for s in data["check_steps"]])

    async def keep_first_step_counters(k, result):
        if k == 0:
            words = [await control.read_dword(PERF + 4 * i) for i in range(depth)]
            (workdir / "perf_step0.hex").write_text("".join(f"{w:08x}\n" for w in words))

    run = await host.train(plan, {name: (data[f"w_{name}"], data[f"b_{name}"]) for name in names},
                           keep_first_step_counters)
    out = {f"step{k}_{kind}_{name}": value for k, state in run.weights.items()
           for name, (w, b) in state.items() for kind, value in (("w", w), ("b", b))}
    np.savez(workdir / "rl_result.npz", cycles=run.cycles, logits=run.logits, **out)
