"""cocotb: dtl_seeded (dtl_seeded.sv) against dtlgen.isa.seeded on random and edge inputs."""

import random

import cocotb
from cocotb.triggers import Timer

from dtlgen.isa import seeded


@cocotb.test()
async def words_equal_the_golden_model(dut):
    rng = random.Random(1)
    cases = [(0, 0, 0), (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (1, 2, 3)]
    cases += [(rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32)) for _ in range(2000)]
    for seed, layer, n in cases:
        dut.seed.value, dut.layer.value, dut.n.value = seed, layer, n
        await Timer(1, unit="ns")
        key = seeded.layer_key(seed, layer)
        assert int(dut.key.value) == key, (seed, layer)
        assert int(dut.word.value) == int(seeded.words(key, n, 1)[0]), (seed, layer, n)
