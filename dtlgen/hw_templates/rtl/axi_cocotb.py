"""Shared pieces of the AXI cocotb tests: the memory slave (cocotbext-axi's AxiRam) with seeded random
pauses on every channel, a monitor of the master's bursts (AXI rules AxiRam does not check, and
counts), and an IP's control registers driven by AxiLiteMaster through the board driver's run
sequence (dtlgen.host.axil_engine)."""

import itertools
import random

import cocotb
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from dtlgen.host.axil_engine import AxiLiteEngine, EngineError

# The engines' memory sits at this bus address (MEM_BASE), not at 0, so that the master's base
# adder is in every AXI IP test: 4 KB aligned, with a carry out of bit 12 for offsets past 4 KB.
MEM_BASE = 0x7000


def pauses(seed: int, period: int):
    """A seeded pause pattern: True about one cycle in `period`."""
    rng = random.Random(seed)
    return itertools.cycle([rng.randrange(period) == 0 for _ in range(4099)])


class BurstMonitor:
    """Watches the master's AR, AW and W channels every cycle: no burst crosses a 4 KB boundary, every
    write burst's WLAST comes on its AWLEN + 1-th beat (W beats may precede their AW), and counts the
    read bursts, write bursts and write beats. A violation fails the test that started it."""

    def __init__(self, dut, bus_bytes: int):
        self.dut, self.bus = dut, bus_bytes
        self.read_bursts = self.write_bursts = self.write_beats = 0
        self.aw_lengths: list[int] = []  # beats of each write burst, in AW order
        self.w_lengths: list[int] = []   # beats of each WLAST-ended run of W beats, in order
        self.w_run = 0
        cocotb.start_soon(self.watch())

    def check_page(self, channel: str, address: int, length: int) -> None:
        end = (address % 4096) + length * self.bus
        assert end <= 4096, f"{channel} burst of {length} beats at {address:#x} crosses a 4 KB boundary"

    async def watch(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.m_axi_arvalid.value) and int(dut.m_axi_arready.value):
                self.read_bursts += 1
                self.check_page("AR", int(dut.m_axi_araddr.value), int(dut.m_axi_arlen.value) + 1)
            if int(dut.m_axi_awvalid.value) and int(dut.m_axi_awready.value):
                self.write_bursts += 1
                self.aw_lengths.append(int(dut.m_axi_awlen.value) + 1)
                self.check_page("AW", int(dut.m_axi_awaddr.value), self.aw_lengths[-1])
            if int(dut.m_axi_wvalid.value) and int(dut.m_axi_wready.value):
                self.write_beats += 1
                self.w_run += 1
                if int(dut.m_axi_wlast.value):
                    self.w_lengths.append(self.w_run)
                    self.w_run = 0
            done = min(len(self.aw_lengths), len(self.w_lengths))
            assert self.aw_lengths[:done] == self.w_lengths[:done], \
                f"write burst {done}: WLAST after {self.w_lengths[done - 1]} beats, AWLEN + 1 = {self.aw_lengths[done - 1]}"
            del self.aw_lengths[:done], self.w_lengths[:done]

    def counts(self) -> dict:
        return {"read_bursts": self.read_bursts, "write_bursts": self.write_bursts, "write_beats": self.write_beats}


def memory(dut, size: int, seed: int = 0, period: int = 4) -> AxiRam:
    """AxiRam on the dut's m_axi_* port, `size` bytes from MEM_BASE on (the engine's offsets 0 .. size),
    watched by a BurstMonitor (`ram.monitor`); with `seed` > 0 every channel (AW, W, B, AR, R) pauses on
    its own pattern."""
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=MEM_BASE + size)
    if seed:
        channels = (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                    ram.read_if.ar_channel, ram.read_if.r_channel)
        for k, channel in enumerate(channels):
            channel.set_pause_generator(pauses(seed * 7 + k, period))
    ram.monitor = BurstMonitor(dut, len(dut.m_axi_wstrb))
    # AxiRam wraps an address past its end; a real slave answers an error there (DECERR from the
    # interconnect): here SLVERR, which AxiSlave sends when an access raises
    ram.write_if._write = bounded(ram.write_if._write, ram.size)
    ram.read_if._read = bounded(ram.read_if._read, ram.size)
    return ram


def bounded(access, size: int):
    """An AxiRam access that raises past `size` bytes (its AXI answer becomes SLVERR)."""
    async def checked(address: int, data_or_length):
        length = data_or_length if isinstance(data_or_length, int) else len(data_or_length)
        if address + length > size:
            raise ValueError(f"access [{address:#x}, {address + length:#x}) past the slave's {size:#x} bytes")
        return await access(address, data_or_length)
    return checked


def engine(dut, name: str) -> tuple[AxiLiteEngine, AxiLiteMaster]:
    """The IP's registers (AxiLiteMaster on s_axil_*) under the driver's run sequence; a run waits for
    the irq's rising edge for at most its timeout (10 ns cycles)."""
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)

    async def irq(timeout_cycles: int) -> None:
        finished = RisingEdge(dut.irq)
        if await First(finished, Timer(10 * timeout_cycles, unit="ns")) is not finished:
            raise EngineError(f"engine {name} did not finish within {timeout_cycles} cycles")

    return AxiLiteEngine(host.read_dword, host.write_dword, name, irq), host
