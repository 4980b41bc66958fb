"""cocotb testbench of the board design (dtl_uart_core): the PC's side of the serial link, bit by bit.

The host code is the product's: `dtlgen.host.uart_link.UartLink` sends commands over a simulated
serial line (`SimSerial`, a Transport), FE runs are LOAD / RUN / READ through it, and re-training is
`RLHost.train` on a `UartDevice`, exactly as on the board over a real port.

Inputs (environment): DTLGEN_UART_JOB (npz: the FE memory image, its descriptor address and count,
the op output regions to read back; optionally the RL layout JSON, a training plan, the initial
weights and the RL region's base), DTLGEN_UART_CLKS_PER_BIT. Output: uart_result.npz in the test
directory: each FE op's output bytes, the RUN reply's cycles, the per-descriptor counters, and with
RL the weights after each checked step.
"""

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout

from dtlgen.host.rl_host import RLHost
from dtlgen.host.rl_plan import plan_from_arrays
from dtlgen.host.rl_program import RLLayout
from dtlgen.host.uart_link import UartDevice, UartLink


class SimSerial:
    """A Transport on the DUT's uart_rx / uart_tx pins: 8N1 at clks_per_bit clock cycles per bit."""

    def __init__(self, dut, clks_per_bit: int):
        self.dut = dut
        self.cpb = clks_per_bit
        self.received = Queue()
        dut.uart_rx.value = 1
        cocotb.start_soon(self._receive())

    async def send(self, data: bytes) -> None:
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.uart_rx.value = bit
                await ClockCycles(self.dut.clk, self.cpb)

    async def recv(self, size: int) -> bytes:
        out = bytearray()
        for _ in range(size):
            out.append(await with_timeout(self.received.get(), 2_000_000 * self.cpb, "ns"))
        return bytes(out)

    async def _receive(self) -> None:
        while True:
            await FallingEdge(self.dut.uart_tx)
            await ClockCycles(self.dut.clk, self.cpb // 2)
            assert int(self.dut.uart_tx.value) == 0, "a glitch on uart_tx, not a start bit"
            byte = 0
            for i in range(8):
                await ClockCycles(self.dut.clk, self.cpb)
                byte |= int(self.dut.uart_tx.value) << i
            await ClockCycles(self.dut.clk, self.cpb)
            assert int(self.dut.uart_tx.value) == 1, "no stop bit"
            self.received.put_nowait(byte)


@cocotb.test()
async def board_link(dut):
    """PING, then FE inference (load, run, read back every op) and optional re-training, all over the UART."""
    workdir = Path.cwd()
    job = np.load(os.environ["DTLGEN_UART_JOB"])
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.uart_rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    link = UartLink(SimSerial(dut, int(os.environ["DTLGEN_UART_CLKS_PER_BIT"])))
    out = {"has_rl": np.array(await link.ping())}

    await link.write(0, job["fe_image"].tobytes())
    out["fe_cycles"] = np.array(await link.run("fe", int(job["fe_desc_addr"]), int(job["fe_count"])))
    out["fe_perf"] = np.array([await link.perf(i) for i in range(int(job["fe_count"]))], dtype=np.int64)
    for i, (addr, size) in enumerate(job["fe_regions"]):
        out[f"fe_out{i}"] = np.frombuffer(await link.read(int(addr), int(size)), dtype=np.uint8)

    if "rl_layout" in job:
        layout = RLLayout.from_dict(json.loads(str(job["rl_layout"])))
        names = [p.name for p in layout.param_layers]
        plan = plan_from_arrays(job)
        host = RLHost(UartDevice(link, "rl", int(job["rl_base"])), layout)
        run = await host.train(plan, {name: (job[f"w_{name}"], job[f"b_{name}"]) for name in names})
        for k, state in run.weights.items():
            for name, (w, b) in state.items():
                out[f"step{k}_w_{name}"], out[f"step{k}_b_{name}"] = w, b
        out["rl_cycles"] = run.cycles
    np.savez(workdir / "uart_result.npz", **out)
