"""Pruning masks in the HLS C++ RL engine (DTL_RL_HAS_MASK, LOAD_M), driven directly.

One project per RL array, compiled twice: as generated (no masks) and with DTL_RL_HAS_MASK 1 in its
dtl_params.h. The host loop runs on each (RLHost over CsimDevice); the masked runs LOAD_M a
hand-packed mask plane right after the LOAD_P. After one training step every masked weight is 0 and
every other weight, every bias and the logits equal the dense engine's bit for bit: the mask changes
nothing before the UPDATE and the UPDATE's rounding of the other weights does not depend on it.
"""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from dtlgen.boards import load_board
from dtlgen.csim import CsimDevice, CsimEngines
from dtlgen.errors import DesignError
from dtlgen.generator.loader import load_rl_project
from dtlgen.generator.project import generate_project
from dtlgen.host.rl_host import RLHost
from dtlgen.isa.rl import DESCRIPTOR_BYTES, MODES, decode, encode, mask_tile_beats
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import Design

FE = {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8}
# (3, 5): the UPDATE drains by rows (TM < TN), a mask tile one beat; (12, 11): by columns, 132 bits in
# two 16-byte beats (the second padded)
ARRAYS = [(3, 5), (12, 11)]
EXTRA = 1 << 16  # DRAM past the layout's map: the mask plane and the LOAD_M descriptor


class Built:
    def __init__(self, root, tm, tn):
        design = {"board": "pynq-z2", "clock_mhz": 100, "fe": FE, "rl": {"tm": tm, "tn": tn, "bits": 16, "batch": 8}}
        network = load_model("digits_cnn")
        calib = calibration_inputs(network, 0)
        project = generate_project(network, Design.from_dict(design), load_board("pynq-z2"), calib, calib[0],
                                   root / "dense")
        masked = root / "masked"
        shutil.copytree(project, masked)
        header = masked / "hls" / "dtl_params.h"
        text = header.read_text()
        assert "#define DTL_RL_HAS_MASK 0" in text
        header.write_text(text.replace("#define DTL_RL_HAS_MASK 0", "#define DTL_RL_HAS_MASK 1"))
        self.rl = load_rl_project(project)
        self.layout = self.rl.layout
        self.dense = CsimEngines(project)
        self.masked = CsimEngines(masked)
        e = self.layout.engine
        self.tm, self.tn, self.bus = e.tm, e.tn, e.bus_bytes
        assert (self.tm, self.tn) == (tm, tn)
        self.tile_beats = mask_tile_beats(tm, tn, e.bus_bytes)
        self.plane_addr = self.layout.memory_bytes + 4096
        self.desc_addr = self.layout.memory_bytes


@pytest.fixture(scope="module", params=ARRAYS, ids=lambda a: f"{a[0]}x{a[1]}")
def built(request, tmp_path_factory):
    return Built(tmp_path_factory.mktemp("masks"), *request.param)


def pack_plane(built, bits):
    """Mask tiles (rows of TM*TN bits) as LOAD_M reads them: bit e of a tile at bit e of its beats,
    least significant first; the padding bits are random (the engine ignores them)."""
    per_tile = built.tile_beats * built.bus * 8
    padded = np.random.default_rng(1).integers(0, 2, (len(bits), per_tile), dtype=np.uint8)
    padded[:, :bits.shape[1]] = bits
    return np.packbits(padded, axis=1, bitorder="little").tobytes()


class MaskingDevice(CsimDevice):
    """The C-simulated engine with a LOAD_M of `plane` (n tiles) after the first LOAD_P."""

    def __init__(self, built, engines, plane=None, tiles=0):
        super().__init__(engines, built.layout.memory_bytes + EXTRA)
        self.built, self.plane, self.tiles = built, plane, tiles

    async def run(self, desc_addr, count, perf_base):
        await super().run(desc_addr, count, perf_base)
        first = decode(self.memory[desc_addr:desc_addr + DESCRIPTOR_BYTES].tobytes())
        if self.plane is not None and first["mode"] == MODES["LOAD_P"]:
            b = self.built
            self.memory[b.plane_addr:b.plane_addr + len(self.plane)] = np.frombuffer(self.plane, np.uint8)
            self.memory[b.desc_addr:b.desc_addr + DESCRIPTOR_BYTES] = np.frombuffer(
                encode("LOAD_M", n=self.tiles, dram=b.plane_addr, beats=self.tiles * b.tile_beats), np.uint8)
            self.engines.run_rl(self.memory, b.desc_addr, 1)
            self.plane = None
        return 0


def train(built, device, steps=1, reload=False):
    """Weights and biases after `steps` steps from the project's state (every layer's (m, n) weights),
    and the logits of each step. With `reload`, LOAD_P again after the steps and run one more."""
    rl, layout = built.rl, built.layout
    host = RLHost(device, layout)
    shapes = {name: np.shape(w) for name, (w, _) in rl.state.items()}
    lr = rl.qnet.precision.lr_shift

    async def go():
        await host.load_params(rl.state)
        logits = []
        for k in range(steps):
            idx = np.arange(k * layout.batch, (k + 1) * layout.batch) % len(rl.labels)
            logits.append((await host.train_step(rl.features[idx], rl.labels[idx], k, lr, 0)).logits)
        if reload:
            await host.load_params(rl.state)
            idx = np.arange(layout.batch)
            logits.append((await host.train_step(rl.features[idx], rl.labels[idx], 0, lr, 0)).logits)
        params = await host.read_params(shapes)
        return {p.name: (np.reshape(params[p.name][0], (p.m, p.n)), params[p.name][1]) for p in layout.layers}, logits

    return asyncio.run(go())


def keep_masks(built, bits, tiles):
    """Each layer's (m, n) keep mask from the tiles' bits: tiles from `tiles` on keep LOAD_P's ones."""
    out = {}
    for p in built.layout.layers:
        keep = np.ones((p.m, p.n), dtype=bool)
        for r in range(p.m):
            for c in range(p.n):
                tile = p.wbase + (r // built.tm) * p.nt + c // built.tn
                if tile < tiles:
                    keep[r, c] = bits[tile, (r % built.tm) * built.tn + c % built.tn] == 1
        out[p.name] = keep
    return out


def test_a_masked_engine_without_load_m_is_the_dense_engine(built):
    dense, dense_logits = train(built, MaskingDevice(built, built.dense), steps=2)
    same, same_logits = train(built, MaskingDevice(built, built.masked), steps=2)
    for name, (w, b) in dense.items():
        assert np.array_equal(same[name][0], w) and np.array_equal(same[name][1], b), name
    assert all(np.array_equal(a, b) for a, b in zip(dense_logits, same_logits))


def test_load_m_holds_masked_weights_at_zero_and_leaves_the_rest(built):
    tiles_used = built.layout.w_depth_used
    tiles = max(1, tiles_used - 1)  # the last tile (when there are two) keeps LOAD_P's bits
    bits = np.random.default_rng(0).integers(0, 2, (tiles, built.tm * built.tn), dtype=np.uint8)
    plane = pack_plane(built, bits)
    assert len(plane) == tiles * built.tile_beats * built.bus
    keep = keep_masks(built, bits, tiles)
    dense, dense_logits = train(built, MaskingDevice(built, built.dense))
    masked, masked_logits = train(built, MaskingDevice(built, built.masked, plane, tiles))
    pruned = 0
    for name, (w, b) in dense.items():
        got_w, got_b = masked[name]
        assert np.all(got_w[~keep[name]] == 0), name
        assert np.array_equal(got_w[keep[name]], w[keep[name]]), name
        assert np.array_equal(got_b, b), name  # biases are never masked
        pruned += int(np.count_nonzero(w[~keep[name]]))
    assert pruned > 10, "the dense run's masked weights are nonzero: the test sees the mask"
    assert np.array_equal(dense_logits[0], masked_logits[0])  # FWD does not read the mask
    # later steps: the zeroed weights change the gradients, but the mask holds them at 0
    later, _ = train(built, MaskingDevice(built, built.masked, plane, tiles), steps=3)
    for name, (w, _) in later.items():
        assert np.all(w[~keep[name]] == 0), name
    # a LOAD_P sets every bit again: a step after it is the dense engine's
    again, _ = train(built, MaskingDevice(built, built.masked, plane, tiles), steps=1, reload=True)
    for name, (w, b) in dense.items():
        assert np.array_equal(again[name][0], w) and np.array_equal(again[name][1], b), name


def run_one(built, engines, descriptor, memory_bytes=None):
    memory = np.zeros(memory_bytes or built.layout.memory_bytes + EXTRA, dtype=np.uint8)
    memory[:DESCRIPTOR_BYTES] = np.frombuffer(descriptor, np.uint8)
    engines.run_rl(memory, 0, 1)


def test_an_engine_built_without_masks_refuses_load_m(built):
    descriptor = encode("LOAD_M", n=1, dram=built.plane_addr, beats=built.tile_beats)
    with pytest.raises(DesignError) as refused:
        run_one(built, built.dense, descriptor)
    message = str(refused.value)
    assert message.count("built without") == 1 and "LOAD_M loads pruning masks" in message, message
    run_one(built, built.masked, descriptor)  # the masked build takes it


# (n, beats, dram, mode) of a LOAD_M from the built engine, and the refusal's words
BAD = {
    "beats": (lambda b: (2, 2 * b.tile_beats + 1, b.plane_addr, None), "2 mask tiles has"),
    "tiles": (lambda b: (b.layout.engine.w_depth + 1, (b.layout.engine.w_depth + 1) * b.tile_beats, b.plane_addr,
                         None), "uses mask tiles"),
    "outside": (lambda b: (1, b.tile_beats, b.layout.memory_bytes + EXTRA, None), "outside the"),
    "off a beat": (lambda b: (1, b.tile_beats, b.plane_addr + 1, None), "not on a"),
    "mode": (lambda b: (1, b.tile_beats, b.plane_addr, 12), "not one of 1..11"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_load_m_descriptors_outside_the_engine_are_refused(built, case):
    make, words = BAD[case]
    n, beats, dram, mode = make(built)
    descriptor = bytearray(encode("LOAD_M", n=n, dram=dram, beats=beats))
    if mode is not None:
        descriptor[0] = (descriptor[0] & 0xF0) | mode
    with pytest.raises(DesignError, match=words):
        run_one(built, built.masked, bytes(descriptor))
