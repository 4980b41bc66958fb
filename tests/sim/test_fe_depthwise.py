"""Depthwise convs with their kernel rows over the array's columns (fe_engine.sv, Depthwise taps over the
columns; dtlgen.isa.fe.depthwise_columns): bit-exact against the golden model and in exactly the cycles
the analytical model predicts, on trips one, two and more output columns wide, stride 1 and 2, kernels
of 3 and 5 (the 5×5 one over the columns only where a lane has five weight slots), packed lane pairs and
lanes in fabric, batches of images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dtlgen.boards import load_board
from dtlgen.errors import DesignError
from dtlgen.isa import fe as isa
from dtlgen.model import import_module
from dtlgen.perf import fe as perf_fe
from dtlgen.perf.fe import FEConfig, op_cycles
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize

from test_fe_batch import run_batch
from test_fe_rtl import BUS, LATENCY

SHAPE = (3, 9, 9)


class _Depthwise(nn.Module):
    """1×1 conv to 7 channels, then depthwise 3×3 (stride 1), 3×3 (stride 2), 5×5 (stride 1), with ReLUs."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 7, 1)
        self.dw1 = nn.Conv2d(7, 7, 3, padding=1, groups=7)
        self.dw2 = nn.Conv2d(7, 7, 3, stride=2, padding=1, groups=7)
        self.dw3 = nn.Conv2d(7, 7, 5, padding=2, groups=7)

    def forward(self, x):
        y = torch.relu(self.dw1(torch.relu(self.c1(x))))
        return torch.relu(self.dw3(torch.relu(self.dw2(y))))


def run(workdir, array, tiles, batch, pack=0, lut_mults=0):
    """The program of `batch` images on the engine (`run_batch`: every image checked against the golden
    model): (program, measured cycles, predicted cycles)."""
    torch.manual_seed(0)
    network = import_module(_Depthwise().eval(), SHAPE)
    x = np.random.default_rng(0).standard_normal((batch, *SHAPE))
    qnet = quantize(network, x, PrecisionConfig())
    return run_batch(qnet, golden.quantize_input(qnet, x), tiles, workdir, array, pack, lut_mults)


# (array, tiles, pack, lut_mults, batch, the depthwise layers over the columns): a 4x6 array gives a lane 3
# weight slots (the 5x5 conv runs one tap an issue), its 4 columns of 4 output columns leave trips one wide at
# the 9-column map's edge; a 5x10 array 5 slots (the 5x5 conv over the columns too), packed pairs with lane 4
# alone and its last 6 products in fabric, trips of 2 columns (rows padded to 5 issues), 12 rows: two images
# of the 5-row maps a descriptor
@pytest.mark.parametrize("array, tiles, pack, lut_mults, batch, columns", [
    ((4, 6), (4, 4), 0, 0, 1, {"dw1", "dw2"}),
    ((5, 10), (12, 2), 1, 6, 3, {"dw1", "dw2", "dw3"}),
])
def test_depthwise_kernel_rows_over_the_columns_are_exact(tmp_path, monkeypatch, array, tiles, pack, lut_mults, batch,
                                                         columns):
    program, measured, predicted = run(tmp_path, array, tiles, batch, pack, lut_mults)
    over = {img.op.name for img in program.ops
            if img.op.depthwise and isa.depthwise_columns(img.op.k, img.op.s, array[1])}
    assert over == columns
    assert batch == 1 or max(img.op.images for img in program.ops if img.op.name in columns) == 2
    assert measured == predicted  # the ideal memory: exact, descriptor by descriptor
    # each of them takes fewer cycles than one tap an issue would
    cfg = FEConfig(*array, *tiles, lut_mults=lut_mults)
    monkeypatch.setattr(isa, "depthwise_columns", lambda k, s, tn: False)
    perf_fe._op_cycles.cache_clear()
    try:
        for img, cycles in zip(program.ops, measured):
            if img.op.name in columns:
                assert cycles < op_cycles(img.op, cfg, BUS, LATENCY).cycles, img.op.name
    finally:
        perf_fe._op_cycles.cache_clear()


def test_the_delay_line_is_sized_for_the_largest_depthwise_kernel_and_costed(monkeypatch):
    """DW_K follows the program (`fe_buffer_sizing`): 5 for _Depthwise, 0 without a depthwise conv; a lane's
    slots KS = min(tn // 2, k_max, dw_k), none below 3; the resource model adds the measured cost per
    delay-line bit (DEPTHWISE_MEASURED: exact at its own point, 0.6 LUT6 per LUT4 on a Xilinx part)."""
    torch.manual_seed(0)
    cfg = FEConfig(4, 8, 4, 4)
    ops = perf_fe.fe_ops(import_module(_Depthwise().eval(), SHAPE), cfg)
    assert perf_fe.fe_buffer_sizing(ops)["dw_k"] == 5
    dense = [op for op in ops if not op.depthwise]
    assert perf_fe.fe_buffer_sizing(dense)["dw_k"] == 0
    # on an array tn wide, only the kernels that run over its columns: 3 (the 5x5 needs tn >= 10); none on 4
    assert [perf_fe.fe_buffer_sizing(ops, tn)["dw_k"] for tn in (4, 6, 8, 10)] == [0, 3, 3, 5]
    assert [isa.depthwise_slots(tn, 7, 5) for tn in (2, 5, 6, 8, 10, 16)] == [1, 1, 3, 4, 5, 5]
    assert isa.depthwise_slots(16, 7, 1) == 1 and isa.depthwise_slots(16, 3, 7) == 3
    assert isa.depthwise_operand_bits(4, 8, 7, 8, 5) == perf_fe.DEPTHWISE_MEASURED["bits"]  # the measured engine
    assert perf_fe.depthwise_columns_cells(96) == {"lut4": 546, "ff": 146, "mult18": 0}
    board = load_board("pynq-z2")
    with_line = perf_fe.fe_resources(ops, cfg, board)  # (4x8: the 3x3 convs over the columns, KS = 3: 64 bits)
    monkeypatch.setattr(isa, "depthwise_operand_bits", lambda *args: 0)
    without = perf_fe.fe_resources(ops, cfg, board)
    assert perf_fe.depthwise_columns_cells(64) == {"lut4": 364, "ff": 98, "mult18": 0}
    assert (with_line.lut - without.lut, with_line.ff - without.ff, with_line.dsp - without.dsp) == (round(0.6 * 364), 98, 0)


class _DepthwiseHead(nn.Module):
    """_Depthwise with a linear head (the layer the RL engine re-trains)."""

    def __init__(self):
        super().__init__()
        self.features = _Depthwise()
        self.fc = nn.Linear(7 * 5 * 5, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def test_an_ecp5_core_whose_delay_line_misses_the_programs_kernels_is_refused(tmp_path):
    """An ECP5 project's build.json whose core has a delay line for smaller depthwise kernels than its program
    runs over the columns (dw_k 3 on a 4x6 array, where the 3x3 convs need 3) would run them one tap an issue,
    off the model's cycles: `dtlgen bitstream`'s check refuses it, and a dw_k outside 0..7 by name; the
    untouched project passes."""
    import json

    import dtlgen
    from dtlgen.generator.loader import check_ecp5, load_rl_project, open_project
    from dtlgen.perf import Design

    torch.manual_seed(0)
    network = dtlgen.load_model(_DepthwiseHead().eval(), SHAPE, retrain_last=1)
    design = Design.from_dict({"board": "ulx3s-85f", "clock_mhz": 50, "rl": {"tm": 2, "tn": 2, "bits": 16, "batch": 4},
                               "fe": {"tm": 4, "tn": 6, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8}})
    project = tmp_path / "prj"
    dtlgen.generate(network, design, project)
    data = open_project(project)
    check_ecp5(data, load_rl_project(data))
    build = project / "ecp5" / "build.json"
    original = json.loads(build.read_text())
    assert original["core"]["dw_k"] == 3  # the 3x3 convs; the 5x5 one runs one tap an issue on 6 columns
    for value, message in ((2, "core.dw_k is 2, but the program has a depthwise conv of kernel 3"),
                           (9, "core.dw_k is 9: expected 0 to 7")):
        build.write_text(json.dumps({**original, "core": {**original["core"], "dw_k": value}}))
        with pytest.raises(DesignError, match=message):
            check_ecp5(data, load_rl_project(data))
