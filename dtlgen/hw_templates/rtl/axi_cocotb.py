"""Shared pieces of the AXI cocotb tests: the memory slave (cocotbext-axi's AxiRam) with seeded random
pauses on every channel, and the register map of the AXI IP tops (dtl_axil_regs.sv)."""

import itertools
import random

from cocotbext.axi import AxiBus, AxiRam

CONTROL, DESC_ADDR, DESC_COUNT, PERF_COUNT, PERF_BASE, RUN_CYCLES, PERF = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x100
FINISHED = 0b0010  # CONTROL read: finished, not busy, no AXI error, no write pending (the low four bits)


def pauses(seed: int, period: int):
    """A seeded pause pattern: True about one cycle in `period`."""
    rng = random.Random(seed)
    return itertools.cycle([rng.randrange(period) == 0 for _ in range(4099)])


def memory(dut, size: int, seed: int = 0, period: int = 4) -> AxiRam:
    """AxiRam on the dut's m_axi_* port; with `seed` > 0 every channel (AW, W, B, AR, R) pauses on its own
    pattern."""
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=size)
    if seed:
        channels = (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                    ram.read_if.ar_channel, ram.read_if.r_channel)
        for k, channel in enumerate(channels):
            channel.set_pause_generator(pauses(seed * 7 + k, period))
    return ram
