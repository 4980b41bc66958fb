"""Sparse FE weights (issue 19, `dtlgen.isa.fe`, Sparse weights): a pruned conv's weight tiles stored as a
header, bitmaps and the kept weights, expanded on chip by the RTL engine.

The RTL must give every output bit for bit as the golden model does, in exactly the cycles the model
predicts from the stored mask (`dtlgen.perf.fe._exact_trips`), and load fewer beats than the same
network stored dense; the project loader reads a sparse region back tile by tile and refuses one that
breaks the layout.
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
from dtlgen.isa.params import FEParams
from dtlgen.model import import_module
from dtlgen.model.prune import prune
from dtlgen.perf import fe as perf_fe
from dtlgen.perf.fe import FEConfig, fe_buffer_sizing, fe_ops, op_cycles
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim import fe_sim

from test_fe_loads import run_bit_exact_on_the_model
from test_fe_rtl import LATENCY, fe_build

SHAPE = (3, 8, 8)


class _Pruned(nn.Module):
    """3×3 conv + fused 2×2 max-pool, 3×3 conv, depthwise 3×3, 1×1 conv, linear: every kind of stored
    weights the FE engine reads."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 10, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(10, 12, 3, padding=1)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.c3 = nn.Conv2d(12, 9, 1)
        self.fc = nn.Linear(9 * 4 * 4, 20)

    def forward(self, x):
        x = self.pool(torch.relu(self.c1(x)))
        x = torch.relu(self.dw(torch.relu(self.c2(x))))
        return self.fc(torch.flatten(torch.relu(self.c3(x)), 1))


def pruned(share: float, w_bits: int = 8, batch: int = 2, seed: int = 0):
    """_Pruned with its frozen part pruned `share` (0: dense), quantised: (qnet, x_int)."""
    torch.manual_seed(seed)
    network = import_module(_Pruned().eval(), SHAPE)
    if share:
        network = prune(network, {"fe": share})
    x = np.random.default_rng(seed).standard_normal((batch, *SHAPE))
    qnet = quantize(network, x, PrecisionConfig(w_bits=w_bits))
    return qnet, golden.quantize_input(qnet, x)


# engines other tests build too (a shared Verilator build; 4x6: test_fe_depthwise.py's, whose lanes take the
# depthwise 3x3's kernel rows over the columns); 4-bit slots need one of their own: -m slow
@pytest.mark.parametrize("array, tiles, bus, w_bits", [((4, 4), (12, 4), 8, 8), ((4, 4), (4, 4), 16, 8),
                                                       ((4, 6), (4, 4), 8, 8),
                                                       pytest.param((5, 4), (8, 8), 16, 4, marks=pytest.mark.slow)])
def test_every_kind_of_weighted_op_runs_sparse_bit_exact_in_the_model_cycles(tmp_path, monkeypatch, array, tiles,
                                                                              bus, w_bits):
    """The expander on its own, whatever the policy would choose: every weighted op stored sparse (dense
    3×3 with a fused pool, depthwise, 1×1, linear; 8-bit slots on an 8- and a 16-byte port, 4-bit slots;
    edge tiles of fewer lanes and channels); each descriptor's cycles equal the model's."""
    monkeypatch.setattr(perf_fe, "stores_sparse", lambda op, cfg, bus_bytes: True)
    cfg = FEConfig(*array, *tiles, w_bits=w_bits, a_bits=8)
    program, _ = run_bit_exact_on_the_model(tmp_path, *pruned(0.7, w_bits), cfg, bus)
    weighted = [img.op for img in program.ops if img.op.kind == "conv"]
    assert weighted and all(op.sparse is not None for op in weighted)
    assert any(op.depthwise for op in weighted) and any(op.k == 1 for op in weighted)


def test_the_policy_stores_sparse_where_it_saves_beats_and_the_network_is_faster(tmp_path):
    """On an 8×8 array with an 8-byte port the pruned 3×3 and linear layers go sparse (the others keep too
    much: global magnitude pruning spares small layers); cycles equal the model's, and fewer than the
    same pruned weights' stored dense (the model's count for dense ops, which the RTL meets exactly in
    every other FE test)."""
    cfg = FEConfig(8, 8, 8, 8)
    qnet, x_int = pruned(0.8)
    program, measured = run_bit_exact_on_the_model(tmp_path, qnet, x_int, cfg, 8)
    assert {img.op.name for img in program.ops if img.op.sparse is not None} == {"c2", "fc"}
    dense = [replace(img.op, sparse=None) for img in program.ops]
    assert sum(measured) < sum(op_cycles(op, cfg, 8, LATENCY).cycles for op in dense)


def test_a_mask_that_keeps_most_weights_stays_dense():
    """stores_sparse: 20 % pruned 8-bit weights would cost more beats as bitmaps than they save; without a
    port width nothing is sparse."""
    cfg = FEConfig(8, 8, 8, 8)
    ops = fe_ops(pruned(0.2)[0].network, cfg, 4)
    assert all(op.sparse is None for op in ops if op.kind == "conv")
    assert fe_buffer_sizing(ops)["has_sparse"] == 0
    network = pruned(0.8)[0].network
    assert fe_buffer_sizing(fe_ops(network, cfg, 4))["has_sparse"] == 1
    assert fe_buffer_sizing(fe_ops(network, cfg))["has_sparse"] == 0


def _program():
    qnet, x_int = pruned(0.8)
    cfg = FEConfig(8, 8, 8, 8)
    program = build_fe_program(qnet, cfg, x_int, 1 << 16, bus_bytes=4)
    ops = [{"name": img.layer, "kind": img.op.kind, "out_addr": img.out_addr, "out_shape": list(img.stored_shape),
            "out_pitch": img.image_pitch} for img in program.ops]
    return program, ops, cfg


def test_the_loader_reads_the_mask_back_from_the_memory_image():
    program, ops, cfg = _program()
    decoded = check_descriptors(program.memory, program.desc_addr, ops, 1024, (8, 8, 8, 8), 4, "prj")
    assert sum(op.sparse is not None for op in decoded) == 2
    for fe_op, img in zip(decoded, program.ops):
        assert fe_op.sparse == img.op.sparse, img.layer  # the bitmaps in memory are the IR's masks


@pytest.mark.parametrize("damage", ["header", "header byte", "bitmap bit", "value padding", "w_first",
                                    "sparse on dense weights", "w_first without sparse"])
def test_the_loader_refuses_a_damaged_sparse_region(damage):
    program, ops, _ = _program()
    memory = program.memory.copy()
    index = next(i for i, img in enumerate(program.ops) if img.op.sparse is not None)  # c2 on the 8×8 array
    where = slice(program.desc_addr + index * isa.DESCRIPTOR_BYTES, program.desc_addr + (index + 1) * isa.DESCRIPTOR_BYTES)
    fields = isa.decode(memory[where])
    at, bus = fields["second_addr"], 4  # the first tile: a 4-byte header, 64 bitmap bits, its kept weights
    bitmap = np.unpackbits(memory[at + bus:at + bus + 8], bitorder="little")
    if damage == "header":
        memory[at] ^= 1  # the second tile's size
    elif damage == "header byte":
        memory[at + 2] = 1
    elif damage == "bitmap bit":  # the second tile holds input channels 8 and 9: lane 0's bit 5 is outside
        memory[at + fields["w_first"] * bus + bus] |= 1 << 5
    elif damage == "value padding":
        count = int(bitmap.sum())
        assert count % bus, "the first tap row's weights fill whole beats: pick another seed"
        memory[at + bus + 8 + count] = 1
    elif damage == "w_first":
        fields["w_first"] += 1
        memory[where] = isa.encode(**fields)
    else:  # c1 is stored dense: its weights read as a sparse region, or a first size without the flag
        where = slice(program.desc_addr, program.desc_addr + isa.DESCRIPTOR_BYTES)
        flags = {"sparse": 1, "w_first": 3} if damage == "sparse on dense weights" else {"w_first": 3}
        memory[where] = isa.encode(**(isa.decode(memory[where]) | flags))
    with pytest.raises(DesignError, match="regenerate"):
        check_descriptors(memory, program.desc_addr, ops, 1024, (8, 8, 8, 8), 4, "prj")


def test_engines_built_without_the_expander_for_dense_programs():
    """HAS_SPARSE is a buffer-sizing flag: 0 where no op is stored sparse (the board designs build no
    expander), and the full-size engine of the testbenches has it."""
    assert FEParams(4, 4, 4, 4, 8, 8, 8, 64).has_sparse == 1
    assert "HAS_SPARSE" in FEParams(4, 4, 4, 4, 8, 8, 8, 64).hdl_parameters()


def _descriptor(memory, program, index):
    where = slice(program.desc_addr + index * isa.DESCRIPTOR_BYTES, program.desc_addr + (index + 1) * isa.DESCRIPTOR_BYTES)
    return where, isa.decode(memory[where])


@pytest.mark.parametrize("damage", ["output over sparse weights", "a second layer inside the region",
                                    "weights off the port's beats"])
def test_the_loader_refuses_what_would_change_how_the_engine_parses(damage):
    """What a stranger's image may not do to sparse weights even when each region reads well: an output written
    over them (the engine would parse what the op wrote), a descriptor whose region starts inside another
    layer's (the generator gives each its own; shared bytes would let one image make the loader walk the
    same megabytes again and again), weights that do not start on a beat."""
    program, ops, _ = _program()
    memory = program.memory.copy()
    index = next(i for i, img in enumerate(program.ops) if img.op.sparse is not None)
    where, fields = _descriptor(memory, program, index)
    if damage == "output over sparse weights":
        first, first_fields = _descriptor(memory, program, 0)
        first_fields["out_addr"] = fields["second_addr"]
        memory[first] = isa.encode(**first_fields)
        ops = [dict(op) for op in ops]
        ops[0]["out_addr"] = fields["second_addr"]
        match = "over sparse weights"
    elif damage == "a second layer inside the region":
        other = next(i for i, img in enumerate(program.ops) if img.op.sparse is not None and i > index)
        there, other_fields = _descriptor(memory, program, other)
        other_fields["second_addr"] = fields["second_addr"] + fields["w_first"] * 4  # the second tile's start
        memory[there] = isa.encode(**other_fields)
        match = "inside another layer's sparse weights"
    else:
        fields["second_addr"] += 1
        memory[where] = isa.encode(**fields)
        match = "must start on 4-byte beats"
    with pytest.raises(DesignError, match=match):
        check_descriptors(memory, program.desc_addr, ops, 1024, (8, 8, 8, 8), 4, "prj")



@pytest.mark.parametrize("damage", ["an output over the weights", "a header of 0", "a header too large"])
def test_sparse_weights_changed_under_the_engine_cannot_hang_it(tmp_path, damage):
    """The loader refuses such images; on a board, memory written while the engine runs could still change a
    tile. The engine ends a tile's load with the last beat of its burst, whatever its parse: it finishes
    every descriptor (with whatever weights it read)."""
    qnet, x_int = pruned(0.8)
    cfg = FEConfig(8, 8, 8, 8)
    params = fe_build(8, 8, 8, 8, 8)
    program = build_fe_program(qnet, cfg, x_int, params.dram.memory_bytes, bus_bytes=8)
    memory = program.memory
    index = next(i for i, img in enumerate(program.ops) if img.op.sparse is not None)
    where, fields = _descriptor(memory, program, index)
    at = fields["second_addr"]
    if damage == "an output over the weights":
        first, first_fields = _descriptor(memory, program, 0)
        memory[first] = isa.encode(**(first_fields | {"out_addr": at}))
    else:
        memory[at:at + 2] = np.array([0 if damage == "a header of 0" else 0xFFF0], dtype="<u2").view(np.uint8)
    predicted = [op_cycles(img.op, cfg, 8, params.dram.latency).cycles for img in program.ops]
    result = fe_sim.run(program, params, tmp_path, max_cycles=4 * sum(predicted) + 1_000_000)
    assert len(result.cycles) == len(program.ops)


def test_an_ecp5_core_built_without_the_expander_its_program_needs_is_refused(tmp_path):
    """An ECP5 project's build.json says the board core's FE engine has no sparse expander (what a dense
    program builds) while its descriptors read sparse weights: the engine would read them as dense tiles.
    `dtlgen bitstream`'s check refuses it; the untouched project passes, its core with the expander."""
    import json

    from dtlgen.cli import main
    from dtlgen.generator.loader import check_ecp5, load_rl_project, open_project

    design = tmp_path / "design.json"
    design.write_text(json.dumps({"board": "ulx3s-85f", "clock_mhz": 50, "rl": {"tm": 2, "tn": 2, "bits": 16, "batch": 4},
                                  "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8}}))
    project = tmp_path / "prj"
    assert main(["generate", "digits_cnn", "--prune", "fe=0.7", "--design", str(design), "--out", str(project)]) == 0
    data = open_project(project)
    assert any(op.sparse is not None for op in data.fe_ops)
    check_ecp5(data, load_rl_project(data))  # (what dtlgen bitstream reads first)
    build = project / "ecp5" / "build.json"
    edited = json.loads(build.read_text())
    assert edited["core"]["has_sparse"] == 1
    edited["core"]["has_sparse"] = 0
    build.write_text(json.dumps(edited))
    with pytest.raises(DesignError, match="core.has_sparse is 0"):
        check_ecp5(data, load_rl_project(data))


@pytest.mark.slow  # yosys reads the engine (about a minute); tests/sim/test_fe_rtl.py's yosys test: single images
def test_yosys_reads_batched_sparse_and_scaled_programs_as_verilator_does(tmp_path, monkeypatch):
    """yosys's netlist of fe_engine.sv (the ECP5 flow's reading) on what the single-image yosys test leaves
    out: two images a descriptor (image 1's plane windows), every weighted op sparse, and a seeded net's
    scaled convs with generated weights. Before `~(32'(B - 1))` replaced `~32'(B - 1)` yosys read the mask as
    7 (test_synth.py's guard) and image 1's outputs and the scaled convs were wrong."""
    from dtlgen.sim.netlist import netlist_sources

    from test_fe_seeded import seeded_net

    params, cfg = fe_build(4, 4, 8, 8), FEConfig(4, 4, 8, 8)
    sources = netlist_sources("fe_engine.sv", "fe_engine", params.fe.hdl_parameters(), tmp_path / "netlist")
    monkeypatch.setattr(perf_fe, "stores_sparse", lambda op, cfg, bus_bytes: True)
    for name, (qnet, x_int) in (("batch", pruned(0.7, batch=2)), ("seeded", seeded_net(1)[1:])):
        program = build_fe_program(qnet, cfg, x_int, params.dram.memory_bytes, bus_bytes=params.fe.bus_bytes)
        assert name != "batch" or max(img.op.images for img in program.ops) == 2
        predicted = [op_cycles(img.op, cfg, params.fe.bus_bytes, params.dram.latency).cycles for img in program.ops]
        result = fe_sim.run(program, params, tmp_path / name, max_cycles=4 * sum(predicted) + 10_000,
                            sources_dir=sources)
        reference = golden.fe_forward(qnet, x_int)
        for i, img in enumerate(program.ops):
            want = reference[img.layer][img.image0:img.image0 + img.op.total_images]
            assert np.array_equal(program.read_images(result.memory, i), want), (name, img.op.name)
        assert result.cycles == predicted, name
