"""The engines' descriptor specs (dtlgen.isa): encode and decode are inverse, fields never overlap, and
a value that does not fit its field is refused rather than silently cut."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dtlgen.isa import fe, rl


@pytest.mark.parametrize("spec, n_words", [(fe, fe.DESCRIPTOR_BYTES // 4), (rl, 16)])
def test_fields_do_not_overlap_and_fit_their_words(spec, n_words):
    used = [0] * n_words
    for f in spec.FIELDS:
        assert 0 <= f.lsb and f.lsb + f.width <= 32 and f.word < n_words, f
        bits = ((1 << f.width) - 1) << f.lsb
        assert used[f.word] & bits == 0, f"{f.name} overlaps another field"
        used[f.word] |= bits


def _values(spec):
    return st.fixed_dictionaries({f.name: st.integers(f.min, f.max) for f in spec.FIELDS})


@settings(max_examples=200, deadline=None)
@given(_values(fe))
def test_fe_round_trip(values):
    raw = fe.encode(**values)
    assert len(raw) == fe.DESCRIPTOR_BYTES and fe.decode(raw) == values and fe.reserved_bits(raw) == 0


@settings(max_examples=200, deadline=None)
@given(_values(rl).filter(lambda v: v["mode"] in rl.MODES.values()),
       st.lists(st.integers(0, 0xFFFF), max_size=rl.JUMP_HALVES), st.lists(st.integers(0, 0xFFFF), max_size=16))
def test_rl_round_trip(values, j_row, j_blk):
    mode = {code: name for name, code in rl.MODES.items()}[values["mode"]]
    fields = {k: v for k, v in values.items() if k != "mode"}
    decoded = rl.decode(rl.encode(mode, j_row=j_row, j_blk=j_blk, **fields))
    assert {k: decoded[k] for k in values} == values
    assert decoded["j_row"] == j_row + [0] * (16 - len(j_row)) and decoded["j_blk"] == j_blk + [0] * (16 - len(j_blk))


@pytest.mark.parametrize("spec, call", [(fe, lambda: fe.encode(n=1 << 16)), (fe, lambda: fe.encode(shift=-129)),
                                        (rl, lambda: rl.encode("FWD", m=1 << 16)),
                                        (rl, lambda: rl.encode("UPDATE", j_row=[0] * 17))])
def test_a_value_that_does_not_fit_is_refused(spec, call):
    with pytest.raises(ValueError):
        call()


def test_every_engine_decodes_the_spec():
    """The decoders in fe_engine.sv, rl_engine.sv and both HLS engines are the spec's rendering
    (`python -m dtlgen.isa` rewrites them after a change to dtlgen/isa)."""
    from dtlgen.isa.render import stale, targets

    assert {path.name for path, _, _ in targets().values()} == {
        "fe_engine.sv", "rl_engine.sv", "dtl_fe_engine.cpp", "dtl_rl_engine.cpp", "dram_model.sv", "fe_tb_top.sv",
        "rl_tb_top.sv", "dtl_uart_core.sv", "dtl_axi_master.sv", "dtl_axil_regs.sv", "dtl_fe_axi.sv", "dtl_rl_axi.sv",
        "axi_gang_tb.sv", "dtl_axi_gang.sv"}
    assert stale() == [], "run python -m dtlgen.isa"


def test_the_memory_port_is_declared_only_where_the_spec_renders_it():
    """No SystemVerilog source declares a memory-port signal by hand: every `logic` declaration of one
    lies in a region rendered from `dtlgen.isa.port`."""
    import re

    from dtlgen.isa import port
    from dtlgen.isa.render import BEGIN, END, targets

    rtl = next(path for path, _, _ in targets().values() if path.name == "fe_engine.sv").parent
    names = "|".join(s.name for s in port.MEMORY_PORT)
    declaration = re.compile(rf"^\s*(input|output)?\s*logic\b[^;(]*\b({names})\b")
    by_hand = []
    for path in sorted(rtl.glob("*.sv")):
        inside = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if BEGIN.split(" {}")[0] in line:
                inside = True
            elif END.split(" {}")[0] in line:
                inside = False
            elif not inside and declaration.match(line):
                by_hand.append(f"{path.name}:{number}: {line.strip()}")
    assert by_hand == []


def test_a_changed_spec_makes_the_decoders_stale(monkeypatch):
    from dtlgen.isa import Field, render

    moved = tuple(Field(f.name, f.word, f.lsb + 1, f.width - 1) if f.name == "k" else f for f in fe.FIELDS)
    monkeypatch.setattr(render.fe, "FIELDS", moved)
    assert {"fe_engine.sv", "dtl_fe_engine.cpp"} <= set(render.stale())


def test_a_changed_memory_port_makes_every_declaration_of_it_stale(monkeypatch):
    from dtlgen.isa import port, render

    wider = tuple(port.PortSignal(s.name, "24", s.engine_out) if s.name == "rd_req_beats" else s for s in port.READ)
    monkeypatch.setattr(render.port, "READ", wider)
    monkeypatch.setattr(render.port, "MEMORY_PORT", wider + port.WRITE)
    assert {"fe_engine.sv port", "rl_engine.sv port", "dram_model.sv port", "fe_tb_top.sv signals",
            "rl_tb_top.sv signals", "dtl_uart_core.sv signals"} <= set(render.stale())


def test_a_changed_latency_makes_the_rtl_constants_stale(monkeypatch):
    from dtlgen.isa import render

    monkeypatch.setattr(render.fe, "OUTPUT_STAGE_CYCLES", 5)
    assert "fe_engine.sv constants" in render.stale()


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([2, 4, 8]), st.integers(1, 12), st.data())
def test_packed_weights_round_trip(slot, groups, data):
    """pack_weights puts 8 / slot weights in a byte, lowest slot first, two's complement in the slot."""
    count = groups * (8 // slot) if slot < 8 else groups
    low, high = -(1 << (slot - 1)), (1 << (slot - 1)) - 1
    values = np.array(data.draw(st.lists(st.integers(low, high), min_size=count, max_size=count)), dtype=np.int64)
    packed = fe.pack_weights(values, slot)
    assert len(packed) == count * slot // 8
    per = 8 // slot
    fields = (packed[:, None].astype(np.int64) >> (slot * np.arange(per))) & ((1 << slot) - 1)
    unpacked = np.where(fields >= 1 << (slot - 1), fields - (1 << slot), fields).reshape(-1)
    assert np.array_equal(unpacked, values)


def test_weight_slots_and_row_bytes():
    assert [fe.weight_slot_bits(w) for w in (2, 3, 4, 5, 8, 9, 16)] == [2, 4, 4, 8, 8, 16, 16]
    # 16 weights of 4 bits fill one 8-byte beat; a 17th starts another; 2-bit ones fill a beat at 32
    assert [fe.weight_row_bytes(4, 4, 8, 4), fe.weight_row_bytes(17, 1, 8, 4), fe.weight_row_bytes(32, 1, 8, 2),
            fe.weight_row_bytes(4, 4, 8)] == [8, 16, 8, 16]


@settings(max_examples=300, deadline=None)
@given(sample=st.integers(1, 1 << 20), row_log=st.integers(9, 14), bank_log=st.integers(3, 4),
       images=st.integers(2, 8), base=st.integers(0, 1 << 16), data=st.data())
def test_a_batch_pitch_puts_the_images_rows_in_different_banks(sample, row_log, bank_log, images, base, data):
    """isa.fe.image_pitch: at any offset into the samples, the rows that a batch's images (up to the
    banks) read are in different banks or are the same row, wherever the buffer starts; without rows it
    is the sample."""
    row, banks = 1 << row_log, 1 << bank_log
    pitch = fe.image_pitch(sample, row)
    assert fe.image_pitch(sample) == sample and sample <= pitch < sample + 2 * row
    offset = data.draw(st.integers(0, sample - 1))
    rows = {(base + offset + i * pitch) // row for i in range(images)}
    by_bank: dict[int, set[int]] = {}
    for r in rows:
        by_bank.setdefault(r % banks, set()).add(r)
    assert all(len(same_bank) == 1 for same_bank in by_bank.values()), (pitch, sorted(rows))
