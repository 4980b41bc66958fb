"""Shared pieces of the AXI cocotb tests: the memory slave (cocotbext-axi's AxiRam) with seeded random
pauses on every channel, and an IP's control registers driven by AxiLiteMaster through the board
driver's run sequence (dtlgen.host.axil_engine)."""

import itertools
import random

from cocotb.triggers import First, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from dtlgen.host.axil_engine import AxiLiteEngine, EngineError

# The engines' memory sits at this bus address (MEM_BASE), not at 0, so that the master's base
# adder is in every AXI IP test: 4 KB aligned, with a carry out of bit 12 for offsets past 4 KB.
MEM_BASE = 0x7000


def pauses(seed: int, period: int):
    """A seeded pause pattern: True about one cycle in `period`."""
    rng = random.Random(seed)
    return itertools.cycle([rng.randrange(period) == 0 for _ in range(4099)])


def memory(dut, size: int, seed: int = 0, period: int = 4) -> AxiRam:
    """AxiRam on the dut's m_axi_* port, `size` bytes from MEM_BASE on (the engine's offsets 0 .. size);
    with `seed` > 0 every channel (AW, W, B, AR, R) pauses on its own pattern."""
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=MEM_BASE + size)
    if seed:
        channels = (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                    ram.read_if.ar_channel, ram.read_if.r_channel)
        for k, channel in enumerate(channels):
            channel.set_pause_generator(pauses(seed * 7 + k, period))
    return ram


def engine(dut, name: str) -> tuple[AxiLiteEngine, AxiLiteMaster]:
    """The IP's registers (AxiLiteMaster on s_axil_*) under the driver's run sequence; a run waits for
    the irq's rising edge for at most its timeout (10 ns cycles)."""
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)

    async def irq(timeout_cycles: int) -> None:
        finished = RisingEdge(dut.irq)
        if await First(finished, Timer(10 * timeout_cycles, unit="ns")) is not finished:
            raise EngineError(f"engine {name} did not finish within {timeout_cycles} cycles")

    return AxiLiteEngine(host.read_dword, host.write_dword, name, irq), host
