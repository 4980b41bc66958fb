"""What the FE engine loads: plane windows, where an op whose tile covers the whole map loads each
channel plane as one request (dtlgen.isa.fe.plane_window) instead of a request per row, and skipped
rows, where a 1×1 kernel of stride 2 loads only the rows it reads (dtlgen.isa.fe.loaded_rows), and
kept inputs, where a one-tile conv of several output-channel tiles loads its input once and reads it
from a slot per input-channel tile for every output-channel tile (dtlgen.isa.fe.keeps_inputs).

Small maps are where this matters (a 4×4 map's 4-byte rows each took a whole beat) and where it can
go wrong: planes that are not a whole number of beats start mid-beat, several planes share a beat on
a 16-byte bus, a batch's images stack in the input buffer, a stride-2 window is whole but skips rows,
an add reads two operands. Every output must equal the golden model's and every descriptor take the
cycles the model predicts, as everywhere else (test_fe_rtl.py).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from dtlgen.errors import DesignError
from dtlgen.generator.fe_program import build_fe_program, check_descriptors
from dtlgen.isa import fe as isa
from dtlgen.model import import_module
from dtlgen.perf import fe as fe_model
from dtlgen.perf.fe import FEConfig, FEOp, op_cycles
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim import fe_sim

from test_fe_rtl import fe_build

BATCH = 3


class _SmallMaps(nn.Module):
    """3×3 conv, depthwise conv, stride-2 conv, 1×1 conv, residual add, 2×2 average pool."""

    def __init__(self, n: int = 5, m: int = 6):
        super().__init__()
        self.c1 = nn.Conv2d(n, m, 3, padding=1)
        self.dw = nn.Conv2d(m, m, 3, padding=1, groups=m)
        self.c2 = nn.Conv2d(m, m, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(m, m, 1)
        self.avg = nn.AvgPool2d(2)

    def forward(self, x):
        y = torch.relu(self.dw(torch.relu(self.c1(x))))
        z = torch.relu(self.c2(y))
        return self.avg(torch.relu(self.c3(z) + z))


def small_maps(size: int):
    torch.manual_seed(size)
    network = import_module(_SmallMaps().eval(), (5, size, size))
    x = np.random.default_rng(size).standard_normal((BATCH, 5, size, size))
    qnet = quantize(network, x, PrecisionConfig())
    return qnet, golden.quantize_input(qnet, x)


# 4×4 maps: 16-byte planes, whole beats on an 8-byte bus; 3×3 maps: 9-byte planes, so every channel
# after the first starts mid-beat, and on a 16-byte bus a beat holds parts of two planes. 12-row tiles
# stack a batch's images (the engines test_fe_batch.py and test_fe_rtl.py build: no build of their own)
@pytest.mark.parametrize("size, tiles, bus", [(4, (12, 4), 8), (3, (12, 4), 8), (3, (4, 4), 16)])
def test_whole_map_windows_load_planes_bit_exact_and_on_the_model(tmp_path, size, tiles, bus):
    qnet, x_int = small_maps(size)
    program, _ = run_bit_exact_on_the_model(tmp_path, qnet, x_int, FEConfig(4, 4, *tiles, batch=BATCH), bus)
    descriptors = [isa.decode(program.memory[i * isa.DESCRIPTOR_BYTES:(i + 1) * isa.DESCRIPTOR_BYTES])
                   for i in range(len(program.ops))]
    assert all(d["plane"] == 1 for d in descriptors)  # every op here is one tile over its whole map
    assert any(img.op.s == 2 for img in program.ops)
    assert any(img.op.images > 1 for img in program.ops) or tiles[0] < 2 * size


def test_plane_requests_cut_the_input_beats_of_small_maps():
    """A 4×4 map's 4-byte rows take a beat each row by row, and two rows share a beat as a plane: the
    same op loads fewer beats as planes than one column short of its map, where it goes row by row."""
    op = FEOp("c", "conv", n=8, h=4, w=4, m=4, r=4, c=4, k=3, s=1, p=1, images=2)
    assert isa.plane_window(op.k, op.s, op.p, op.h, op.w, op.r, op.c, 8, 4)
    assert not isa.plane_window(op.k, op.s, op.p, op.h, op.w, op.r, op.c, 8, 3)
    planes = op_cycles(op, FEConfig(4, 4, 8, 4), 8, 40)
    rows = op_cycles(op, FEConfig(4, 4, 8, 3), 8, 40)
    assert planes.bus_cycles < rows.bus_cycles


def test_a_descriptor_whose_plane_bit_disagrees_is_refused():
    qnet, x_int = small_maps(4)
    program = build_fe_program(qnet, FEConfig(4, 4, 8, 4, batch=BATCH), x_int, bus_bytes=8)
    ops = [{"name": img.op.name, "kind": img.op.kind, "out_addr": img.out_addr, "out_shape": list(img.stored_shape)}
           for img in program.ops]
    check_descriptors(program.memory, 0, ops, 64, (4, 4, 8, 4), 8, "test image")
    memory = program.memory.copy()
    memory[11 * 4 + 1] ^= 1  # descriptor 0, word 11, bit 8: plane
    with pytest.raises(DesignError, match="descriptor 0 .*loads its input row by row, where .* loads whole channel planes"):
        check_descriptors(memory, 0, ops, 64, (4, 4, 8, 4), 8, "test image")


class _Downsample(nn.Module):
    """A ResNet block that halves the map: 3×3 stride-2 conv, 3×3 conv, 1×1 stride-2 projection, add."""

    def __init__(self, n: int = 5, m: int = 6):
        super().__init__()
        self.c1 = nn.Conv2d(n, m, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(m, m, 3, padding=1)
        self.short = nn.Conv2d(n, m, 1, stride=2)

    def forward(self, x):
        return torch.relu(self.c2(torch.relu(self.c1(x))) + self.short(x))


# 9×9 maps: the projection's window is the whole map (odd size) yet loads every other row, and a
# 12-row tile stacks a batch of two; 10×10 on 4-row tiles: several row tiles, each window starting at
# an even row
@pytest.mark.parametrize("size, tiles, batch", [(9, (12, 4), 2), (10, (4, 4), 1)])
def test_a_strided_projection_loads_every_other_row_bit_exact_and_on_the_model(tmp_path, size, tiles, batch):
    qnet, x_int = _downsample(size, batch)
    program, _ = run_bit_exact_on_the_model(tmp_path, qnet, x_int, FEConfig(4, 4, *tiles, batch=batch), 8)
    short = [img.op for img in program.ops if img.op.name == "short"]
    # (a memory-bound 1x1 op: loading the skipped rows would show in its cycles)
    assert short and all(isa.skips_rows(op.k, op.s) and not op.keep for op in short)


def _downsample(size: int, batch: int, **channels: int):
    torch.manual_seed(size)
    network = import_module(_Downsample(**channels).eval(), (channels.get("n", 5), size, size))
    x = np.random.default_rng(size).standard_normal((batch, channels.get("n", 5), size, size))
    qnet = quantize(network, x, PrecisionConfig())
    return qnet, golden.quantize_input(qnet, x)


def run_bit_exact_on_the_model(tmp_path, qnet, x_int, cfg: FEConfig, bus: int, latency: int | None = None,
                               params=None):
    """Run the FE program on the engine test_fe_rtl.py / test_fe_batch.py build for `cfg`'s tiles and weight
    width (or one of `latency` cycles; or on `params`): every output equal to the golden model's, every
    descriptor's cycles the model's (the ideal memory: exact; a design with the read FIFO prefetches where
    the model finds it faster). Returns the program and the measured cycles."""
    if params is None:
        params = fe_build(cfg.tm, cfg.tn, cfg.tr, cfg.tc, bus=bus)
        params = replace(params, fe=replace(params.fe, w_bits=cfg.w_bits))
    if latency is not None:
        params = replace(params, dram=replace(params.dram, latency=latency))
    program = build_fe_program(qnet, cfg, x_int, params.dram.memory_bytes, bus_bytes=bus, latency=params.dram.latency)
    predicted = [op_cycles(img.op, cfg, bus, params.dram.latency).cycles for img in program.ops]
    result = fe_sim.run(program, params, tmp_path, max_cycles=4 * sum(predicted) + 10_000)
    reference = golden.fe_forward(qnet, x_int)
    for i, img in enumerate(program.ops):
        want = reference[img.layer][img.image0:img.image0 + img.op.total_images]
        assert np.array_equal(program.read_images(result.memory, i), want), (img.op.name, img.image0)
    assert result.cycles == predicted
    return program, result.cycles


# 12-row tiles stack a batch of three 4-row outputs; 4x4 tiles on a 16-byte bus run one image
@pytest.mark.parametrize("tiles, bus, batch", [((12, 4), 8, 3), ((4, 4), 16, 1)])
def test_kept_inputs_load_once_per_descriptor_bit_exact_and_on_the_model(tmp_path, tiles, bus, batch):
    """Convs of more output channels than the array's lanes on maps one tile holds: 9 input channels
    (tiles of 4, 4, 1) into 10 outputs (4, 4, 2); a 3×3 stride-2 conv and a 1×1 stride-2 projection of a
    7×7 map (49-byte planes, mid-beat), then a 3×3 conv on 4×4 maps."""
    qnet, x_int = _downsample(7, batch, n=9, m=10)
    program, _ = run_bit_exact_on_the_model(tmp_path, qnet, x_int, FEConfig(4, 4, *tiles, batch=batch), bus)
    kept = {img.op.name for img in program.ops if img.op.keep}
    assert kept == {"c1", "c2", "short"}  # every conv; the projection loads its whole planes


# 7×7 maps on 4×4 tiles and a 16-byte bus: one image a group, each conv kept over input-channel tiles of
# 4, 4, 1; 10×10 maps on 4×4 tiles: a group of several row and column tiles; 3 input channels: a kept
# conv of one input-channel tile, which runs a descriptor an image
@pytest.mark.parametrize("size, bus, batch, n", [(7, 16, 3, 9), (10, 8, 2, 5), (7, 16, 2, 3)])
def test_image_groups_run_back_to_back_bit_exact_and_on_the_model(tmp_path, size, bus, batch, n):
    """A layer's batch in one descriptor of image groups (isa.fe, Image groups): each group's tiles after
    the previous group's, the last tile's store in the next group's trips, one descriptor fetch, bias
    read, first load and last store; every image bit-exact, every descriptor on the model."""
    qnet, x_int = _downsample(size, batch, n=n, m=10)
    program, _ = run_bit_exact_on_the_model(tmp_path, qnet, x_int, FEConfig(4, 4, 4, 4, batch=batch), bus)
    one_tile_kept = [img.op for img in program.ops if img.op.keep and img.op.n <= 4]
    assert all(img.op.groups == batch for img in program.ops if img.op not in one_tile_kept)
    # (c1 and the projection read the n input channels: an image each)
    assert all(op.groups == 1 for op in one_tile_kept) and len(one_tile_kept) == (2 * batch if n <= 4 else 0)
    assert any(img.op.keep for img in program.ops) == (size == 7)
    assert any(img.op.r > 4 for img in program.ops) == (size == 10)  # several row tiles a group


class _OneTripGroups(nn.Module):
    """A conv and a max pool whose 4×4 maps are one tile and one trip: each image a group of one trip."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.c(x)))


def test_a_group_of_one_trip_reads_the_next_groups_input_at_a_short_latency(tmp_path):
    """Trip 1 is the second group's: its input offset (in_gstride) comes in the descriptor's last bytes,
    and the first dispatch, which loads trip 1, must come after it reached trip 1's geometry (fe_engine.sv
    desc_age; the first load alone gives it no slack at this latency). At a memory latency of 1 cycle on an
    8-byte bus (the descriptor's last beat latest): bit-exact and on the model."""
    torch.manual_seed(2)
    network = import_module(_OneTripGroups().eval(), (3, 4, 4))
    x = np.random.default_rng(2).standard_normal((BATCH, 3, 4, 4))
    qnet = quantize(network, x, PrecisionConfig())
    program, _ = run_bit_exact_on_the_model(tmp_path, qnet, golden.quantize_input(qnet, x),
                                          FEConfig(4, 4, 4, 4, batch=BATCH), 8, latency=1)
    assert [(img.op.kind, img.op.images, img.op.groups) for img in program.ops] == [("conv", 1, BATCH)]


class _HeldStores(nn.Module):
    """1×1 convs of one and of three input-channel tiles, each of several output-channel tiles, then a 3×3
    conv of two input-channel tiles and a 2×2 max pool (fused into it)."""

    def __init__(self):
        super().__init__()
        self.pw = nn.Conv2d(4, 12, 1)
        self.pw2 = nn.Conv2d(12, 8, 1)
        self.c = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.c(torch.relu(self.pw2(torch.relu(self.pw(x)))))))


def test_a_tiles_store_waits_for_the_writes_of_the_tile_before_at_a_short_latency(tmp_path, monkeypatch):
    """An output tile's last trip goes on without draining its pipeline; the next tile's store reads the
    half it wrote only after dtlgen.isa.fe.store_hold. At a memory latency of 1 cycle on a 16-byte bus a
    trip's load (its input kept on chip: one tap row of weights) ends before that hold: the stores of the
    1×1 convs' tiles wait for it (on a tile of one trip, and on the first of a tile's three trips): seven
    cycles more for the first conv than if they could start at once, none for the second, whose later
    trips store what the first could not. Bit-exact and on the model."""
    torch.manual_seed(5)
    network = import_module(_HeldStores().eval(), (4, 4, 4))
    x = np.random.default_rng(5).standard_normal((1, 4, 4, 4))
    qnet = quantize(network, x, PrecisionConfig())
    cfg = FEConfig(4, 4, 4, 4)
    program, _ = run_bit_exact_on_the_model(tmp_path, qnet, golden.quantize_input(qnet, x), cfg, 16, latency=1)
    pw, pw2 = (img.op for img in program.ops[:2])
    assert [(op.name, op.k, op.keep) for op in (pw, pw2)] == [("pw", 1, True), ("pw2", 1, True)]
    held = [op_cycles(op, cfg, 16, 1).cycles for op in (pw, pw2)]
    monkeypatch.setattr(isa, "store_hold", lambda taps, depth: np.zeros_like(np.asarray(taps)))
    fe_model._op_cycles.cache_clear()
    try:
        unheld = [op_cycles(op, cfg, 16, 1).cycles for op in (pw, pw2)]
        assert unheld == [held[0] - 7, held[1]]
    finally:
        monkeypatch.undo()
        fe_model._op_cycles.cache_clear()


def test_kept_inputs_cross_the_bus_once():
    """Three output-channel tiles of a whole-map conv read its input once, not three times: the bus
    cycles fall by two input loads, and where the input does not fit the banks nothing is kept."""
    op = FEOp("c", "conv", n=16, h=4, w=4, m=12, r=4, c=4, k=3, s=1, p=1, images=2)
    cfg = FEConfig(4, 4, 8, 4)
    words = 4 * 2 * isa.plane_words(4, 4, 8)  # four input-channel tiles of two images' planes
    assert isa.keeps_inputs(True, 16, 12, 4, 4, 4, 4, 2, 4, 4, 8, 4, 8, words)
    assert not isa.keeps_inputs(True, 16, 12, 4, 4, 4, 4, 2, 4, 4, 8, 4, 8, words - 1)
    assert not isa.keeps_inputs(True, 16, 4, 4, 4, 4, 4, 2, 4, 4, 8, 4, 8, words)  # one m tile
    again = op_cycles(op, cfg, 8, 40)
    once = op_cycles(replace(op, keep=True), cfg, 8, 40)
    input_beats = 16 * 2 * isa.plane_words(4, 4, 8)
    assert again.bus_cycles - once.bus_cycles == 2 * input_beats
    assert once.dram_bytes == again.dram_bytes - 2 * 16 * 2 * 16


def test_a_descriptor_that_keeps_what_it_cannot_is_refused():
    qnet, x_int = small_maps(4)
    program = build_fe_program(qnet, FEConfig(4, 4, 8, 4, batch=BATCH), x_int, bus_bytes=8)
    ops = [{"name": img.op.name, "kind": img.op.kind, "out_addr": img.out_addr, "out_shape": list(img.stored_shape)}
           for img in program.ops]
    index = next(i for i, img in enumerate(program.ops) if img.op.kind == "add")
    memory = program.memory.copy()
    memory[index * isa.DESCRIPTOR_BYTES + 11 * 4 + 1] |= 2  # word 11, bit 9: keep
    with pytest.raises(DesignError, match=f"descriptor {index} .*keeps its input on chip"):
        check_descriptors(memory, 0, ops, 64, (4, 4, 8, 4), 8, "test image")
