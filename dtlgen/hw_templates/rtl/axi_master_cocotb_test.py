"""cocotb conformance test of dtl_axi_master alone: random engine traffic against cocotbext-axi's AxiRam.

The test plays an engine: a seeded random list of beat writes (any address, 1..BUS_BYTES bytes; and
runs of 2..24 back-to-back writes at consecutive addresses, some across a 4 KB boundary, which the
master joins into write bursts) and burst reads (any address, 1..700 beats: unaligned starts, 4 KB boundaries, bursts past 256 beats),
presented one at a time in list order, reads often right after a write to the bytes they cover.
Every read's data must equal a reference memory at the time the read was accepted; the slave
pauses at random on every channel. As an engine does, a write is presented only once no read
still waiting for its data covers its bytes (AXI orders neither; dtl_axi_master orders the other
way round: a read waits for the writes it overlaps).
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from axi_cocotb import MEM_BASE, memory

SIZE = 1 << 16


def operations(rng: random.Random, count: int, bus: int):
    last_write = None
    for _ in range(count):
        if last_write is not None and rng.random() < 0.4:  # read what was just written
            addr = max(0, last_write - rng.randrange(3 * bus))
            yield "r", addr, rng.randrange(1, 6)
            last_write = None
        elif rng.random() < 0.15:  # a run of consecutive writes, as an engine's store streams
            n = rng.choice([bus, rng.randrange(1, bus + 1)])
            length = rng.randrange(2, 25)
            start = rng.choice([rng.randrange(SIZE - (length + 2) * bus),
                                rng.randrange(1, SIZE // 4096) * 4096 - rng.randrange(1, length) * n])
            for k in range(length):
                last_write = start + k * n
                yield "w", last_write, n, rng.randbytes(bus)
        elif rng.random() < 0.5:
            last_write = rng.randrange(SIZE - 2 * bus)
            n = rng.randrange(1, bus + 1)
            yield "w", last_write, n, rng.randbytes(bus)
        else:
            beats = rng.choice([rng.randrange(1, 9), rng.randrange(1, 9), rng.randrange(200, 700)])
            near_page = max(0, (rng.randrange(1, SIZE // 4096) * 4096) - rng.randrange(1, 3 * bus))
            addr = rng.choice([rng.randrange(SIZE - (beats + 2) * bus), min(near_page, SIZE - (beats + 2) * bus)])
            yield "r", addr, beats


@cocotb.test()
async def random_traffic(dut):
    seed, count = int(os.environ["DTLGEN_SEED"]), int(os.environ["DTLGEN_OPS"])
    period = int(os.environ.get("DTLGEN_PAUSE_PERIOD", "3"))
    bus = len(dut.rd_data) // 8
    rng = random.Random(seed)
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    ram = memory(dut, SIZE + 4096, seed, period)
    reference = bytearray(rng.randbytes(SIZE + 4096))
    ram.write(MEM_BASE, bytes(reference))
    dut.rst.value = 1
    dut.rd_req_valid.value = 0
    dut.wr_valid.value = 0
    dut.clear_error.value = 0
    dut.mem_base.value = MEM_BASE
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0

    ops = list(operations(rng, count, bus))
    expected = []     # (op index, beat, bytes) still to come back, in order
    pending = []      # (lo, hi) of the reads still waiting for data
    index, beats_seen, cycles = 0, 0, 0
    while index < len(ops) or expected:
        await FallingEdge(dut.clk)
        cycles += 1
        assert cycles < 200 * count + 100_000, f"stuck at operation {index} of {len(ops)}"
        op = ops[index] if index < len(ops) else None
        present = op is not None and not (op[0] == "w" and any(lo < op[1] + op[2] and op[1] < hi
                                                                for lo, hi in pending))
        dut.rd_req_valid.value = int(present and op[0] == "r")
        dut.wr_valid.value = int(present and op[0] == "w")
        if present and op[0] == "r":
            dut.rd_req_addr.value = op[1]
            dut.rd_req_beats.value = op[2]
        if present and op[0] == "w":
            dut.wr_addr.value = op[1]
            dut.wr_bytes.value = op[2]
            dut.wr_data.value = int.from_bytes(op[3], "little")
        await ReadOnly()
        if int(dut.rd_valid.value):
            assert expected, "a read beat nobody asked for"
            k, beat, want = expected.pop(0)
            got = int(dut.rd_data.value).to_bytes(bus, "little")
            assert got == want, f"operation {k} ({ops[k][:3]}), beat {beat}: {got.hex()} != {want.hex()}"
            if beat == ops[k][2] - 1:
                pending.remove((ops[k][1], ops[k][1] + ops[k][2] * bus))
            beats_seen += 1
        if present and op[0] == "r" and int(dut.rd_req_ready.value):
            _, addr, beats = op
            for b in range(beats):
                expected.append((index, b, bytes(reference[addr + b * bus:addr + (b + 1) * bus])))
            pending.append((addr, addr + beats * bus))
            index += 1
        elif present and op[0] == "w" and int(dut.wr_ready.value):
            _, addr, n, data = op
            reference[addr:addr + n] = data[:n]
            index += 1
        elif op is None:
            index = len(ops)
    await FallingEdge(dut.clk)
    dut.rd_req_valid.value = 0
    dut.wr_valid.value = 0
    for _ in range(10_000):
        await FallingEdge(dut.clk)
        if not int(dut.writes_pending.value):
            break
    assert not int(dut.writes_pending.value), "writes still unanswered"
    assert not int(dut.error.value), "an AXI error response"
    assert ram.read(MEM_BASE, SIZE) == bytes(reference[:SIZE]), "the slave's memory differs from the reference"
    dut._log.info("%d operations, %d read beats in %d cycles", len(ops), beats_seen, cycles)
