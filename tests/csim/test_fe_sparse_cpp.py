"""Sparse FE weights in the HLS C++ FE engine (dtlgen.isa.fe, Sparse weights), driven directly.

Stimulus: a small network (a 3x3 conv 5→7 on a 6x6 map, a depthwise 3x3, a 1x1 conv, a standalone 3/2
max pool and a linear layer) quantised, its weights pruned by masks of about 70 % zeros with all-zero tap
rows and a whole all-zero tile in every weighted layer (the masked weights set to 0 before the golden
model runs), laid out here as the engine reads it: each weighted op's weights once dense
(`pack_weights`, tap rows padded to beats) and once sparse (`pack_sparse_weights`, the descriptor's
`sparse` and `w_first` set). The image is built here rather than by `build_fe_program`, so that what
the generator chooses for a pruned conv does not change which layout each run exercises.

Expectation: the C++ engine's output of every op is the same for the sparse image, the dense image and
the golden model, bit for bit, on three engines (a 4x3 array with 8-bit weights on a 16-byte bus and
with 4-bit weights on a 4-byte bus; a 6x5 array with 8-bit weights on a 2-byte bus, whose tap-row
bitmaps take two beats). A sparse descriptor on a pool or a generated conv, a w_first of 0 or a header
size that disagrees with its tile is refused with one line (run in a child process: a crash or a hang
fails the test instead of killing pytest).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from dtlgen.csim import CsimEngines
from dtlgen.errors import DesignError
from dtlgen.generator.hls import FE_SOURCES, hls_template_dir, params_header
from dtlgen.isa import fe as isa
from dtlgen.isa.params import FEParams, FESimBuild, SimDram
from dtlgen.model import import_module
from dtlgen.model.ir import joined_activation
from dtlgen.model.ops import op_of
from dtlgen.perf.fe import FEConfig, fe_ops
from dtlgen.quant import fixed, golden
from dtlgen.quant.quantize import PrecisionConfig, quantize

MEMORY_BYTES = 1 << 20
ALIGN = 64
# (tm, tn, tr, tc, w_bits, bus bytes)
ENGINES = {"4x3-w8-bus16": (4, 3, 4, 4, 8, 16), "4x3-w4-bus4": (4, 3, 4, 4, 4, 4), "6x5-w8-bus2": (6, 5, 3, 5, 8, 2)}
WEIGHTED = ("conv", "dw", "pw", "fc")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(5, 7, 3, padding=1)
        self.dw = nn.Conv2d(7, 7, 3, padding=1, groups=7)
        self.pw = nn.Conv2d(7, 6, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.fc = nn.Linear(6 * 3 * 3, 5)

    def forward(self, x):
        x = torch.relu(self.dw(torch.relu(self.conv(x))))
        return self.fc(torch.flatten(self.pool(self.pw(x)), 1))


def prune_mask(shape, tm, tn, depthwise, rng):
    """A keep mask (M, N or 1, K, K) of about 30 % ones in which the last trip tile is all zero (when there
    are two or more) and, for K > 1, the first tile's tap row 0 is all zero and its last tap row all ones
    (a full row of kept weights)."""
    m, n, k, _ = shape
    tn = 1 if depthwise else tn
    mask = (rng.random(shape) < 0.3).astype(np.uint8)
    tiles = [(m0, n0) for m0 in range(0, m, tm) for n0 in range(0, n, tn)]
    if k > 1:
        m0, n0 = tiles[0]
        mask[m0:m0 + tm, n0:n0 + tn, 0, 0] = 0
        mask[m0:m0 + tm, n0:n0 + tn, k - 1, k - 1] = 1
    if len(tiles) > 1:
        m0, n0 = tiles[-1]
        mask[m0:m0 + tm, n0:n0 + tn] = 0
    return mask


def dense_weights(w, tm, tn, bus, slot, depthwise):
    """The dense layout (dtlgen.isa.fe): trip tiles (m outer, n inner), K·K tap rows of (m, n) weights each,
    padded to whole beats."""
    m, n, k, _ = w.shape
    tn = 1 if depthwise else tn
    blocks = []
    for m0 in range(0, m, tm):
        for n0 in range(0, n, tn):
            tile = w[m0:m0 + tm, n0:n0 + tn]
            rows = tile.transpose(2, 3, 0, 1).reshape(k * k, -1)
            padded = np.zeros((k * k, isa.weight_row_bytes(tile.shape[0], tile.shape[1], bus, slot) * 8 // slot),
                              dtype=np.int64)
            padded[:, :rows.shape[1]] = rows
            blocks.append(isa.pack_weights(padded.reshape(-1), slot))
    return np.concatenate(blocks)


@dataclass
class Case:
    """A quantised, pruned network on one engine: its golden outputs, the layout of its memory image
    (descriptors at 0, then biases, input, outputs) and each weighted op's weights both ways."""

    name: str
    tm: int
    tn: int
    bus: int
    slot: int
    engines: CsimEngines
    base: np.ndarray  # the image without weights; descriptors with wt = 0
    descriptors: list  # each op's field values (isa.decode), weights unset
    outputs: list  # (out_addr, shape, golden int64 values) per op
    dense: dict  # op index -> (bytes, ...) of the dense layout
    sparse: dict  # op index -> (bytes, w_first, each tile's beats)
    shapes: dict  # op index -> (engine weights (M, N or 1, K, K), mask, depthwise)

    def image(self, sparse=(), dense_addr=None):
        """The memory image with each weighted op's weights dense, or sparse for the ops in `sparse`, placed
        after the image's data; returns (memory, {op index: weight address})."""
        memory = self.base.copy()
        cursor = -(-self.end // ALIGN) * ALIGN
        where = {}
        for i in sorted(self.dense):
            fields = dict(self.descriptors[i])
            if i in sparse:
                data, w_first, _ = self.sparse[i]
                fields.update(sparse=1, w_first=w_first)
            else:
                data = self.dense[i]
            memory[cursor:cursor + len(data)] = data
            fields["second_addr"] = where[i] = cursor
            memory[i * isa.DESCRIPTOR_BYTES:(i + 1) * isa.DESCRIPTOR_BYTES] = isa.encode("test", **fields)
            cursor = -(-(cursor + len(data)) // ALIGN) * ALIGN
        assert cursor <= len(memory)
        return memory, where

    @property
    def end(self):
        return max(addr + int(np.prod(shape)) for addr, shape, _ in self.outputs)

    def run(self, memory):
        self.engines.run_fe(memory, 0, len(self.descriptors))
        return [memory[a:a + int(np.prod(s))].view(np.int8).astype(np.int64).reshape(s) for a, s, _ in self.outputs]


def make_case(root, name, tm, tn, tr, tc, w_bits, bus) -> Case:
    torch.manual_seed(0)
    network = import_module(Net().eval(), (5, 6, 6))
    x = np.random.default_rng(0).standard_normal((8, 5, 6, 6))
    qnet = quantize(network, x, PrecisionConfig(w_bits, 8))
    cfg = FEConfig(tm, tn, tr, tc, w_bits=w_bits)
    slot = isa.weight_slot_bits(w_bits)
    ops = fe_ops(network, cfg)
    rng = np.random.default_rng(tm * 100 + tn * 10 + bus)
    shapes = {}
    for i, op in enumerate(ops):  # prune: the masked weights are 0 in the quantised network the golden model runs
        if op.kind == "conv":
            lq = qnet.layers[op.name]
            w = lq.weight.reshape(op.m, 1 if op.depthwise else op.n, op.k, op.k)  # (a view: linear (M, N))
            mask = prune_mask(w.shape, tm, tn, op.depthwise, rng)
            w[mask == 0] = 0
            shapes[i] = (w.copy(), mask, op.depthwise)
    assert {ops[i].name for i in shapes} == set(WEIGHTED)
    x_int = golden.quantize_input(qnet, x[:1])
    reference = golden.fe_forward(qnet, x_int)

    # the image: descriptors, biases, input, outputs (no weights: `Case.image` places them)
    memory = np.zeros(MEMORY_BYTES, dtype=np.uint8)
    cursor = isa.DESCRIPTOR_BYTES * len(ops)

    def place(data):
        nonlocal cursor
        addr = -(-cursor // ALIGN) * ALIGN
        memory[addr:addr + len(data)] = data
        cursor = addr + len(data)
        return addr

    first = network.frozen_layers[0].inputs[0]
    region = {first: place(np.asarray(x_int, dtype=np.int64).reshape(-1).astype(np.int8).view(np.uint8))}
    descriptors, outputs = [], []
    for op in ops:
        layer, lq = network.layer(op.name), qnet.layers[op.name]
        stored = op.pool_layer or op.name
        source = layer.inputs[0]
        while source not in region:  # flatten: NCHW is already the flat order
            source = network.layer(source).inputs[0]
        kind = op_of(layer).descriptor_kind
        mult, shift = op_of(layer).descriptor_scale(layer, lq, fixed)
        bias_addr = place(np.asarray(lq.bias, dtype=np.int64).astype("<i4").view(np.uint8)) if op.kind == "conv" else 0
        out_shape = tuple(network.layer(stored).out_shape)
        region[stored] = place(np.zeros(int(np.prod(out_shape)), dtype=np.uint8))
        activation = joined_activation(layer.activation, network.layer(stored).activation)
        six = int(fixed.to_fixed(6.0, qnet.layers[stored].out_fmt)) if activation == "relu6" else 0
        descriptors.append(dict(
            kind=kind, act=isa.ACTIVATION_CODES[activation], pool=int(bool(op.pool)), depthwise=int(op.depthwise),
            n=op.n, m=op.m, h=op.h, w=op.w, r=op.r, c=op.c, k=op.k, s=op.s, p=op.p, shift=shift, six=six, mult=mult,
            in_addr=region[source], bias_addr=bias_addr, out_addr=region[stored],
            plane=int(isa.loads_planes(op.k, op.s, op.p, op.h, op.w, op.r, op.c, tr, tc, False))))
        outputs.append((region[stored], out_shape, reference[stored][0]))
    for i, fields in enumerate(descriptors):
        memory[i * isa.DESCRIPTOR_BYTES:(i + 1) * isa.DESCRIPTOR_BYTES] = isa.encode("test", **fields)

    dense, sparse = {}, {}
    for i, (w, mask, depthwise) in shapes.items():
        dense[i] = dense_weights(w, tm, tn, bus, slot, depthwise)
        data = isa.pack_sparse_weights(w, mask, tm, tn, bus, slot, depthwise)
        sizes = isa.sparse_tile_sizes(mask, depthwise, tm, tn, bus, slot)
        w_first = int(sizes[0])
        assert len(data) == int(sizes.sum()) * bus
        back, back_mask = isa.unpack_sparse_weights(data, w_first, w.shape[0], w.shape[1], w.shape[2], depthwise, tm,
                                                    tn, bus, slot)[:2]
        assert np.array_equal(back, w) and np.array_equal(back_mask, mask != 0), ops[i].name
        sparse[i] = (data, w_first, sizes)

    project = root / name
    hls = project / "hls"
    hls.mkdir(parents=True)
    for source in FE_SOURCES:
        shutil.copy(hls_template_dir() / source, hls / source)
    build = FESimBuild(FEParams(tm, tn, tr, tc, a_bits=8, w_bits=w_bits, bus_bytes=bus, m_max=64),
                       SimDram(20, MEMORY_BYTES))
    (hls / "dtl_params.h").write_text(params_header(SimpleNamespace(clock_mhz=100), "sparse_test", "none", build, None))
    return Case(name, tm, tn, bus, slot, CsimEngines(project), memory, descriptors, outputs, dense, sparse, shapes)


@pytest.fixture(scope="module", params=list(ENGINES))
def case(request, tmp_path_factory):
    return make_case(tmp_path_factory.mktemp("sparse"), request.param, *ENGINES[request.param])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The 4x3 engine with 8-bit weights on a 16-byte bus, for the refusals."""
    name = "4x3-w8-bus16"
    return make_case(tmp_path_factory.mktemp("refusals"), name, *ENGINES[name])


def test_the_masks_are_sparse_with_empty_rows_and_an_empty_tile(case):
    for i, (w, mask, depthwise) in case.shapes.items():
        assert 0.55 < 1 - mask.mean() < 0.95, i  # (about 70 %, more where a whole tile is empty)
        kept = isa.sparse_tile_kept(mask, depthwise, case.tm, case.tn)
        assert (kept == 0).any(), i  # an all-zero tap row
        assert (kept.reshape(-1, kept.shape[-1]).sum(axis=1) == 0).any(), i  # an all-zero tile
        assert np.array_equal(w[mask == 0], np.zeros(int((mask == 0).sum()))), i
        assert np.count_nonzero(w) > 0, i


def test_sparse_weights_equal_dense_weights_equal_golden(case):
    dense_memory, _ = case.image()
    sparse_memory, _ = case.image(sparse=set(case.sparse))
    assert not np.array_equal(dense_memory, sparse_memory)
    dense = case.run(dense_memory)
    sparse = case.run(sparse_memory)
    for i, (_, _, want) in enumerate(case.outputs):
        assert np.array_equal(dense[i], want), f"dense op {i} differs from the golden model"
        assert np.array_equal(sparse[i], dense[i]), f"sparse op {i} differs from the dense run"
    assert any(np.count_nonzero(out) for out in sparse)


@pytest.mark.parametrize("op", range(len(WEIGHTED)), ids=WEIGHTED)
def test_one_sparse_op_among_dense_ones(case, op):
    """Each weighted op alone sparse (its neighbours dense): the layouts do not depend on each other."""
    index = sorted(case.sparse)[op]
    out = case.run(case.image(sparse={index})[0])
    for i, (_, _, want) in enumerate(case.outputs):
        assert np.array_equal(out[i], want), (case.name, WEIGHTED[op], i)


def test_a_pruned_conv_differs_from_the_unpruned_one(small):
    """The check has teeth: the same image with the conv's pruned weights back (kept where the mask says
    0: the bitmap ignored) gives another output."""
    index = sorted(small.sparse)[0]
    w, mask, depthwise = small.shapes[index]
    filled = w.copy()
    filled[mask == 0] = 1
    small.dense[index], saved = dense_weights(filled, small.tm, small.tn, small.bus, small.slot, depthwise), \
        small.dense[index]
    try:
        out = small.run(small.image()[0])
    finally:
        small.dense[index] = saved
    assert not np.array_equal(out[0], small.outputs[0][2])


# --- refusals, in a child process: a crash or a hang fails the test ------------------------------
CHILD = r"""
import json, sys
import numpy as np
from dtlgen.csim import CsimEngines
from dtlgen.errors import DesignError
memory = np.fromfile(sys.argv[2], dtype=np.uint8)
try:
    CsimEngines(sys.argv[1]).run_fe(memory, 0, int(sys.argv[3]))
    print(json.dumps({"ran": True}))
except DesignError as error:
    print(json.dumps({"ran": False, "message": str(error)}))
"""


def run_child(case, memory, tmp_path, timeout_s=120):
    path = tmp_path / "memory.bin"
    memory.tofile(path)
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(case.engines.project), str(path),
                               str(len(case.descriptors))], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail("the C-simulation hung")
    assert done.returncode == 0, f"the C-simulation died (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def refused(case, memory, tmp_path) -> str:
    answer = run_child(case, memory, tmp_path)
    assert not answer["ran"], "the engine ran"
    assert "\n" not in answer["message"]
    return answer["message"]


def with_fields(memory, index, **values):
    fields = isa.decode(memory[index * isa.DESCRIPTOR_BYTES:(index + 1) * isa.DESCRIPTOR_BYTES])
    fields.update(values)
    memory[index * isa.DESCRIPTOR_BYTES:(index + 1) * isa.DESCRIPTOR_BYTES] = isa.encode("test", **fields)
    return memory


def pool_index(case):
    return next(i for i, d in enumerate(case.descriptors) if d["kind"] == isa.KIND_MAXPOOL)


def test_sparse_on_a_pool_is_refused(small, tmp_path):
    memory, _ = small.image(sparse=set(small.sparse))
    i = pool_index(small)
    message = refused(small, with_fields(memory, i, sparse=1, w_first=3), tmp_path)
    assert message.startswith(f"FE descriptor {i} at 0x{i * 64:x}: sparse weights on kind 2"), message


def test_sparse_on_a_generated_conv_is_refused(small, tmp_path):
    memory, _ = small.image(sparse=set(small.sparse))
    message = refused(small, with_fields(memory, 0, scaled=1, gen=1), tmp_path)
    assert message.startswith("FE descriptor 0 at 0x0: sparse weights on kind 1 (generated 1)"), message


def test_a_w_first_of_zero_is_refused(small, tmp_path):
    memory, _ = small.image(sparse=set(small.sparse))
    message = refused(small, with_fields(memory, 0, w_first=0), tmp_path)
    assert message.startswith("FE descriptor 0 at 0x0: sparse weights whose first tile takes 0 beats"), message


@pytest.mark.parametrize("delta", [1, -1])
def test_a_w_first_that_disagrees_with_the_first_tile_is_refused(small, tmp_path, delta):
    memory, _ = small.image(sparse=set(small.sparse))
    w_first = small.sparse[0][1]
    message = refused(small, with_fields(memory, 0, w_first=w_first + delta), tmp_path)
    assert "FE descriptor 0 at 0x0: sparse weight tile 0 (m0=0, n0=0)" in message, message


@pytest.mark.parametrize("op", range(len(WEIGHTED)), ids=WEIGHTED)
@pytest.mark.parametrize("size", [0, 1, "+1", "-1", 0xFFFF])
def test_a_header_that_disagrees_with_the_next_tile_is_refused(small, tmp_path, op, size):
    """Tile 0's header (the next tile's size, or the first's after the last tile) set wrong."""
    index = sorted(small.sparse)[op]
    memory, where = small.image(sparse={index})
    header = where[index]
    given = int(memory[header]) | int(memory[header + 1]) << 8
    value = given + int(size) if isinstance(size, str) else size
    memory[header:header + 2] = np.array([value], dtype="<u2").view(np.uint8)
    message = refused(small, memory, tmp_path)
    assert message.startswith(f"FE descriptor {index} at 0x{index * 64:x}"), message
    assert "sparse weight tile" in message, message


@pytest.mark.parametrize("op", range(len(WEIGHTED)), ids=WEIGHTED)
def test_a_last_header_that_is_not_the_first_tiles_size_is_refused(small, tmp_path, op):
    """Every tile parses as its size says; only the last tile's header (the first tile's size again)
    is wrong."""
    index = sorted(small.sparse)[op]
    data, w_first, sizes = small.sparse[index]
    memory, where = small.image(sparse={index})
    header = where[index] + len(data) - int(sizes[-1]) * small.bus
    assert int(memory[header]) | int(memory[header + 1]) << 8 == w_first
    memory[header] += 1
    message = refused(small, memory, tmp_path)
    assert message.startswith(f"FE descriptor {index} at 0x{index * 64:x}: "), message
    assert "header gives" in message or "the previous tile's header gives it" in message, message


def test_a_bitmap_that_keeps_more_than_the_tile_holds_is_refused(small, tmp_path):
    """Tile 0's first tap row (all zero: no value beats) given one kept weight: the parse no longer fits
    the tile's size, which the engine sees before it reads past the tile."""
    index = sorted(small.sparse)[0]
    memory, where = small.image(sparse={index})
    bitmap = where[index] + small.bus  # after the header beat
    assert memory[bitmap] == 0
    memory[bitmap] = 1
    message = refused(small, memory, tmp_path)
    assert message.startswith("FE descriptor 0 at 0x0: sparse weight tile 0 (m0=0, n0=0)"), message


def test_random_bytes_in_a_sparse_region_never_crash(small, tmp_path):
    rng = np.random.default_rng(5)
    memory0, where = small.image(sparse=set(small.sparse))
    for trial in range(8):
        memory = memory0.copy()
        index = sorted(where)[trial % len(where)]
        start = where[index]
        length = len(small.sparse[index][0])
        spots = rng.integers(start, start + length, size=int(rng.integers(1, 6)))
        memory[spots] = rng.integers(0, 256, size=len(spots))
        answer = run_child(small, memory, tmp_path)
        if not answer["ran"]:
            assert "\n" not in answer["message"] and "FE descriptor" in answer["message"], answer


@pytest.mark.parametrize("op", range(len(WEIGHTED)), ids=WEIGHTED)
def test_weights_overwritten_while_the_engine_runs_stop_it_cleanly(small, tmp_path, op):
    """A descriptor whose output lands on its own sparse weights: its later trips read the overwritten
    headers and bitmaps (fe_check walked them before it ran). It may stop (one line) or run, never read
    past the image or hang; the 3x3 conv's first output tile overwrites tiles it still loads, and the
    load's own check stops it."""
    index = sorted(small.sparse)[op]
    memory, where = small.image(sparse={index})
    with_fields(memory, index, out_addr=where[index])
    answer = run_child(small, memory, tmp_path)
    if WEIGHTED[op] == "conv":
        assert not answer["ran"] and "weights changed while it ran" in answer["message"], answer
    if not answer["ran"]:
        assert "\n" not in answer["message"] and "sparse weight tile" in answer["message"], answer


def test_the_engine_in_process_raises_a_design_error(small):
    """The same refusal through CsimEngines in this process (the path `dtlgen csim` takes)."""
    memory, _ = small.image(sparse=set(small.sparse))
    with pytest.raises(DesignError, match="sparse weights whose first tile takes 0 beats"):
        small.run(with_fields(memory, 0, w_first=0))
