"""The PC side of an ECP5 board's UART link (rtl/dtl_uart_core.sv): commands, and the host loop's
`Device` on top of them, so the same `RLHost` that drives the RTL simulation and the PYNQ board
re-trains through a serial port.

Transports move bytes: `SerialTransport` a real port (pyserial), the cocotb testbench a simulated
serial line (sim/uart_cocotb_test.py). Commands (little-endian, each answered, see the RTL):
WRITE 0x01 addr len data -> 0x81; READ 0x02 addr len -> data; RUN 0x03 engine desc_addr count
perf_base -> 0x83 cycles; PERF 0x04 index -> cycles; PING 0x05 -> "DTL" has_rl.
The FE engine sees memory from address 0, the RL engine from the design's RL base: a `UartDevice`
adds its engine's base to every address, so each engine's program keeps its own address map.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Protocol

from dtlgen.errors import DtlgenError, ToolMissingError

WRITE, READ, RUN, PERF, PING = 0x01, 0x02, 0x03, 0x04, 0x05
WRITE_ACK, RUN_DONE = 0x81, 0x83
ENGINES = {"fe": 0, "rl": 1}


class LinkError(DtlgenError):
    """The board answered something the protocol does not allow (wrong bitstream, noise, baud rate)."""


class Transport(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def recv(self, size: int) -> bytes: ...


class UartLink:
    def __init__(self, transport: Transport):
        self.transport = transport

    async def ping(self) -> bool:
        """True if the board holds an RL engine; LinkError if it is not a dtlgen bitstream."""
        await self.transport.send(bytes([PING]))
        reply = await self.transport.recv(4)
        if reply[:3] != b"DTL":
            raise LinkError(f"the board answered PING with {reply!r}, not b'DTL...': check the port, the baud rate "
                            "and that the bitstream is a dtlgen one")
        return reply[3] != 0

    async def write(self, addr: int, data: bytes) -> None:
        await self.transport.send(struct.pack("<BII", WRITE, addr, len(data)) + bytes(data))
        await self._expect(WRITE_ACK, "WRITE")

    async def read(self, addr: int, size: int) -> bytes:
        await self.transport.send(struct.pack("<BII", READ, addr, size))
        return await self.transport.recv(size) if size else b""

    async def run(self, engine: str, desc_addr: int, count: int, perf_base: int = 0) -> int:
        await self.transport.send(struct.pack("<BBIHH", RUN, ENGINES[engine], desc_addr, count, perf_base))
        await self._expect(RUN_DONE, "RUN")
        return struct.unpack("<I", await self.transport.recv(4))[0]

    async def perf(self, index: int) -> int:
        await self.transport.send(struct.pack("<BH", PERF, index))
        return struct.unpack("<I", await self.transport.recv(4))[0]

    async def _expect(self, code: int, what: str) -> None:
        reply = await self.transport.recv(1)
        if reply != bytes([code]):
            raise LinkError(f"{what}: the board answered {reply!r}, expected {code:#04x}")


class UartDevice:
    """The host loop's `Device` (dtlgen.host.rl_host) on one engine of a board behind a `UartLink`."""

    def __init__(self, link: UartLink, engine: str, base: int = 0):
        self.link = link
        self.engine = engine
        self.base = base

    async def write(self, addr: int, data: bytes) -> None:
        await self.link.write(self.base + addr, data)

    async def read(self, addr: int, size: int) -> bytes:
        return await self.link.read(self.base + addr, size)

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        return await self.link.run(self.engine, desc_addr, count, perf_base)


class SerialTransport:
    """A real serial port (pyserial, `pip install pyserial`); blocking I/O runs in a worker thread."""

    def __init__(self, port: str, baud: int, timeout_s: float = 10.0):
        try:
            import serial
        except ImportError:
            raise ToolMissingError("talking to the board needs pyserial: pip install pyserial") from None
        self.port = serial.Serial(port, baud, timeout=timeout_s)

    async def send(self, data: bytes) -> None:
        await asyncio.to_thread(self.port.write, data)

    async def recv(self, size: int) -> bytes:
        data = await asyncio.to_thread(self.port.read, size)
        if len(data) != size:
            raise LinkError(f"the board sent {len(data)} of {size} bytes before the timeout; is the bitstream loaded "
                            "and the baud rate the design's?")
        return data
