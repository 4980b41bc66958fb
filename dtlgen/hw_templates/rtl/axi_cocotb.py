"""Shared pieces of the AXI cocotb tests: the memory slave (cocotbext-axi's AxiRam) with seeded random
pauses on every channel, a monitor of the master's bursts (AXI rules AxiRam does not check, and
counts), and an IP's control registers driven by AxiLiteMaster through the board driver's run
sequence (dtlgen.host.axil_engine). A top with a second port (m1_axi_*: two ports ganged,
dtl_axi_gang.sv) gets an AxiRam on each, sharing one memory in the ganged layout."""

import itertools
import random

import cocotb
import numpy as np
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from dtlgen.host.axil_engine import AxiLiteEngine, EngineError
from dtlgen.isa.port import GANG_PAGE, gang_buffer_bytes, gang_indices

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

    def __init__(self, dut, bus_bytes: int, prefix: str = "m_axi", page: int = 4096):
        self.dut, self.bus, self.page = dut, bus_bytes, page
        self.port = {name: getattr(dut, f"{prefix}_{name}") for name in (
            "arvalid", "arready", "araddr", "arlen", "awvalid", "awready", "awaddr", "awlen", "wvalid", "wready",
            "wlast")}
        self.read_bursts = self.write_bursts = self.write_beats = 0
        self.aw_lengths: list[int] = []  # beats of each write burst, in AW order
        self.w_lengths: list[int] = []   # beats of each WLAST-ended run of W beats, in order
        self.w_run = 0
        cocotb.start_soon(self.watch())

    def check_page(self, channel: str, address: int, length: int) -> None:
        end = (address % self.page) + length * self.bus
        assert end <= self.page, f"{channel} burst of {length} beats at {address:#x} crosses a {self.page}-byte boundary"

    async def watch(self) -> None:
        port = self.port
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            if int(port["arvalid"].value) and int(port["arready"].value):
                self.read_bursts += 1
                self.check_page("AR", int(port["araddr"].value), int(port["arlen"].value) + 1)
            if int(port["awvalid"].value) and int(port["awready"].value):
                self.write_bursts += 1
                self.aw_lengths.append(int(port["awlen"].value) + 1)
                self.check_page("AW", int(port["awaddr"].value), self.aw_lengths[-1])
            if int(port["wvalid"].value) and int(port["wready"].value):
                self.write_beats += 1
                self.w_run += 1
                if int(port["wlast"].value):
                    self.w_lengths.append(self.w_run)
                    self.w_run = 0
            done = min(len(self.aw_lengths), len(self.w_lengths))
            assert self.aw_lengths[:done] == self.w_lengths[:done], \
                f"write burst {done}: WLAST after {self.w_lengths[done - 1]} beats, AWLEN + 1 = {self.aw_lengths[done - 1]}"
            del self.aw_lengths[:done], self.w_lengths[:done]

    def counts(self) -> dict:
        return {"read_bursts": self.read_bursts, "write_bursts": self.write_bursts, "write_beats": self.write_beats}


def memory(dut, size: int, seed: int = 0, period: int = 4):
    """AxiRam on the dut's m_axi_* port, `size` bytes from MEM_BASE on (the engine's offsets 0 .. size),
    watched by a BurstMonitor (`ram.monitor`); with `seed` > 0 every channel (AW, W, B, AR, R) pauses on
    its own pattern. A dut with m1_axi_* ports (two ganged) gets a GangRam: an AxiRam on each port."""
    if hasattr(dut, "m1_axi_arvalid"):
        return GangRam(dut, size, seed, period)
    return _ram(dut, "m_axi", MEM_BASE + size, seed, period)


def _ram(dut, prefix: str, size: int, seed: int, period: int, mem=None, salt: int = 0, page: int = 4096) -> AxiRam:
    ram = AxiRam(AxiBus.from_prefix(dut, prefix), dut.clk, dut.rst, size=size, mem=mem)
    if seed:
        channels = (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                    ram.read_if.ar_channel, ram.read_if.r_channel)
        for k, channel in enumerate(channels):
            channel.set_pause_generator(pauses(seed * 7 + k + salt, period))
    ram.monitor = BurstMonitor(dut, len(getattr(dut, f"{prefix}_wstrb")), prefix, page)
    # AxiRam wraps an address past its end; a real slave answers an error there (DECERR from the
    # interconnect): here SLVERR, which AxiSlave sends when an access raises
    ram.write_if._write = bounded(ram.write_if._write, ram.size)
    ram.read_if._read = bounded(ram.read_if._read, ram.size)
    return ram


class GangRam:
    """One memory behind two ganged ports (m_axi_*, m1_axi_*), as DRAM behind two HP ports: an AxiRam on
    each, sharing the bytes, each pausing on patterns of its own. `write` and `read` take the engine's
    addresses and move the bytes through the ganged layout (dtlgen.isa.port.gang_offset); `monitor`
    counts port 0's bursts (port 1 sees the same ones; each port's stay inside its half of a 2 KB page,
    and WLAST is checked on both)."""

    def __init__(self, dut, size: int, seed: int, period: int):
        self.bus = len(dut.m_axi_wstrb) * 2
        total = gang_buffer_bytes(MEM_BASE + size)
        half = GANG_PAGE // 2
        self.port0 = _ram(dut, "m_axi", total, seed, period, page=half)
        self.port1 = _ram(dut, "m1_axi", total, seed, period, mem=self.port0.mem, salt=101, page=half)
        self.monitor = self.port0.monitor

    def write(self, address: int, data: bytes) -> None:
        buffer = np.frombuffer(bytes(self.port0.read(0, self.port0.size)), dtype=np.uint8).copy()
        buffer[gang_indices(address, len(data), self.bus)] = np.frombuffer(bytes(data), dtype=np.uint8)
        self.port0.write(0, buffer.tobytes())

    def read(self, address: int, size: int) -> bytes:
        buffer = np.frombuffer(bytes(self.port0.read(0, self.port0.size)), dtype=np.uint8)
        return buffer[gang_indices(address, size, self.bus)].tobytes()


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
