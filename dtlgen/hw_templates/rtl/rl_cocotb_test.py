"""cocotb testbench of the RL engine top: the host loop (dtlgen.host.rl_host) re-trains against the simulator.

Inputs (environment): DTLGEN_RL_LAYOUT (layout JSON), DTLGEN_RL_PLAN (npz: the training plan as
`dtlgen.host.rl_plan.plan_arrays` writes it, and the initial weights), DTLGEN_MAX_CYCLES (per
descriptor list). Output: rl_result.npz in the test directory: weights after each checked step, logits
and cycles of every step, the halting rule's probes and the epoch it fired at, and perf_step0.hex /
perf_step1.hex, the per-descriptor counters of the first two steps. Bulk data moves through $readmemh / $writememh files.
"""

import json
import os
import shutil
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from dtlgen.host.rl_host import RLHost
from dtlgen.host.rl_plan import plan_from_arrays
from dtlgen.host.rl_program import RLLayout


class SimDevice:
    """The host's Device on the simulated DRAM: patches go in with `load`, ranges come out with `dump`."""

    def __init__(self, dut, workdir: Path, max_cycles: int):
        self.dut = dut
        self.workdir = workdir
        self.max_cycles = max_cycles

    async def write(self, addr: int, data: bytes) -> None:
        (self.workdir / "dram_load.hex").write_text(f"@{addr:x}\n" + data.hex("\n", 1) + "\n")
        self.dut.load.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.load.value = 0
        await RisingEdge(self.dut.clk)

    async def read(self, addr: int, size: int) -> bytes:
        self.dut.dump_lo.value = addr
        self.dut.dump_hi.value = addr + size - 1
        self.dut.dump.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.dump.value = 0
        await RisingEdge(self.dut.clk)
        return bytes.fromhex((self.workdir / "dram_dump.hex").read_text().replace("\n", ""))

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        dut = self.dut
        dut.desc_addr.value = desc_addr
        dut.desc_count.value = count
        dut.perf_base.value = perf_base
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        finished = RisingEdge(dut.done)
        result = await First(finished, Timer(10 * self.max_cycles, unit="ns"))
        assert result is finished, f"RL engine did not finish {count} descriptors within {self.max_cycles} cycles"
        await RisingEdge(dut.clk)
        return int(dut.run_cycles.value)


def layout_and_data() -> tuple[RLLayout, dict]:
    """DTLGEN_RL_LAYOUT (layout JSON) and DTLGEN_RL_PLAN (npz: the training plan and the initial weights)."""
    layout = RLLayout.from_dict(json.loads(Path(os.environ["DTLGEN_RL_LAYOUT"]).read_text()))
    return layout, dict(np.load(os.environ["DTLGEN_RL_PLAN"]))


async def train_and_record(host: RLHost, layout: RLLayout, data: dict, workdir: Path, after_step) -> None:
    """Run the plan's training steps through the host loop; write weights, logits and cycles."""
    names = [p.name for p in layout.param_layers]
    plan = plan_from_arrays(data)
    counter = os.environ.get("DTLGEN_PROGRESS_FILE")  # one byte a finished step, for the caller's progress bar

    async def counted(k, result):
        await after_step(k, result)
        if counter:
            with open(counter, "a") as steps:
                steps.write(".")

    run = await host.train(plan, {name: (data[f"w_{name}"], data[f"b_{name}"]) for name in names}, counted)
    out = {f"step{k}_{kind}_{name}": value for k, state in run.weights.items()
           for name, (w, b) in state.items() for kind, value in (("w", w), ("b", b))}
    if run.halted_epoch is not None:
        out["halted_epoch"] = np.int64(run.halted_epoch)
    if run.probes:
        out["probes"] = np.array([(p.epoch, p.agreement, p.cycles) for p in run.probes], dtype=np.float64)
    np.savez(workdir / "rl_result.npz", cycles=run.cycles, logits=run.logits, **out)


@cocotb.test()
async def retrain(dut):
    """Run the plan's training steps through the host loop; record weights, logits and cycles."""
    workdir = Path.cwd()
    layout, data = layout_and_data()
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    for name in ("start", "load", "dump", "perf_dump", "dump_lo", "dump_hi", "desc_addr", "desc_count", "perf_base"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    host = RLHost(SimDevice(dut, workdir, int(os.environ["DTLGEN_MAX_CYCLES"])), layout)

    async def keep_first_steps_counters(k, result):
        if k < 2:
            dut.perf_dump.value = 1
            await RisingEdge(dut.clk)
            dut.perf_dump.value = 0
            await RisingEdge(dut.clk)
            shutil.copy(workdir / "perf_dump.hex", workdir / f"perf_step{k}.hex")

    await train_and_record(host, layout, data, workdir, keep_first_steps_counters)
