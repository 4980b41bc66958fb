"""Running descriptor lists on an engine's AXI IP (dtl_fe_axi.sv, dtl_rl_axi.sv) through its
AXI4-Lite registers (dtlgen.isa.regs): the one start-and-wait sequence that the cocotb tests of the IPs
and the board driver both use, each with its own register access.

`read32(offset)` and `write32(offset, value)` are the caller's 32-bit register accesses (an
AxiLiteMaster in simulation, PYNQ's MMIO on the board); `wait_finished(timeout_cycles)` returns once
the IP reports `finished` (an irq edge in simulation) or raises; by default CONTROL is polled.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from dtlgen.isa import regs


class EngineError(RuntimeError):
    """The IP refused a run or ended one badly; the message names the engine and what to check."""


class AxiLiteEngine:
    """One engine's AXI IP seen from its control registers."""

    def __init__(self, read32: Callable[[int], Awaitable[int]], write32: Callable[[int, int], Awaitable[None]],
                 name: str = "engine", wait_finished: Callable[[int], Awaitable[None]] | None = None):
        self.read32, self.write32, self.name = read32, write32, name
        self.wait_finished = wait_finished or self.poll_finished

    async def set_memory_base(self, address: int) -> None:
        """Point the IP's memory offsets at bus `address` (4 KB aligned, below 4 GB)."""
        if address % regs.MEM_BASE_ALIGN or not 0 <= address < 1 << 32:
            raise EngineError(f"engine {self.name}: its memory at bus address {address:#x} must be "
                              f"{regs.MEM_BASE_ALIGN}-byte aligned and below 4 GB (allocate the buffer page-aligned "
                              "in the low 4 GB)")
        await self.write32(regs.MEM_BASE, address)
        got = await self.read32(regs.MEM_BASE)
        if got != address:
            raise EngineError(f"engine {self.name}: MEM_BASE reads {got:#x} after writing {address:#x}; the IP is "
                              "busy or is not this project's RTL engine")

    async def status(self) -> int:
        return await self.read32(regs.CONTROL) & regs.STATUS_MASK

    async def poll_finished(self, timeout_cycles: int) -> None:
        for _ in range(max(1, timeout_cycles)):
            if await self.status() & regs.FINISHED:
                return
        raise EngineError(f"engine {self.name} did not finish (CONTROL polled {timeout_cycles} times)")

    async def run(self, desc_addr: int, count: int, perf_base: int, timeout_cycles: int) -> int:
        """Run `count` descriptors from offset `desc_addr`; returns the IP's RUN_CYCLES (start to
        finished: the engine done and every write answered)."""
        status = await self.status()
        if status & (regs.BUSY | regs.WRITES_PENDING):
            raise EngineError(f"engine {self.name} is busy before a start (status {status:#x}); a previous run did "
                              "not finish: reset the IP (reload the overlay)")
        await self.write32(regs.DESC_ADDR, desc_addr)
        await self.write32(regs.DESC_COUNT, count)
        await self.write32(regs.PERF_BASE, perf_base)
        await self.write32(regs.CONTROL, regs.START)
        await self.wait_finished(timeout_cycles)
        status = await self.status()
        if status != regs.FINISHED:
            flags = ", ".join(name for name, bit in regs.STATUS_BITS.items() if status & bit)
            raise EngineError(f"engine {self.name} ended {count} descriptors from {desc_addr:#x} with status "
                              f"{status:#x} ({flags or 'nothing set'}); expected finished alone"
                              + ("; an AXI error response: check MEM_BASE and the buffer's size"
                                 if status & regs.AXI_ERROR else ""))
        return await self.read32(regs.RUN_CYCLES)

    async def perf_counters(self, count: int) -> list[int]:
        """The first `count` per-descriptor cycle counters (at most PERF_COUNT)."""
        depth = await self.read32(regs.PERF_COUNT)
        if count > depth:
            raise EngineError(f"engine {self.name} keeps {depth} cycle counters; asked for {count}")
        return [await self.read32(regs.PERF + 4 * i) for i in range(count)]
