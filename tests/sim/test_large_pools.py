"""Pools with kernels beyond the convolutions' K ≤ 7 (a pool has no weights: any kernel whose window
fits the engine's input buffer runs): a global average pool over a 10×10 map (examples/digits_gap.py)
and a 9×9 stride-1 max pool over several trips, each generated, RTL-simulated (bit-exact, cycles
equal to the model) and C-simulated (bit-exact); what does not fit is refused before anything is
written, naming the layer and the window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from dtlgen.cli import main
from dtlgen.isa import fe as isa_fe

GAP = str(Path(__file__).resolve().parents[2] / "examples" / "digits_gap.py") + ":build"
DESIGN = {"board": "pynq-z2", "clock_mhz": 90, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 4, "tn": 4, "bits": 16, "batch": 8}}


class WidePool(nn.Module):
    """A 9×9 stride-1 max pool on a 16×16 map: 8×8 outputs, four 4×4 trips, each a 12×12 window."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(9, stride=1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


def wide_pool():
    torch.manual_seed(1)
    return WidePool().eval(), (1, 16, 16), {"retrain_last": 1}


def write_model(tmp_path: Path) -> str:
    path = tmp_path / "wide_pool.py"
    path.write_text("import sys\nsys.path.insert(0, %r)\nfrom test_large_pools import wide_pool as build\n"
                    % str(Path(__file__).parent))
    return f"{path}:build"


@pytest.mark.parametrize("model", ["gap", pytest.param("wide", marks=pytest.mark.slow)])  # wide: -m slow
def test_large_pool_is_bit_and_cycle_exact_in_rtl_and_c(tmp_path, capsys, model):
    spec = GAP if model == "gap" else write_model(tmp_path)
    (tmp_path / "design.json").write_text(json.dumps(DESIGN))
    assert main(["generate", spec, "--design", str(tmp_path / "design.json"), "--out", str(tmp_path / "prj")]) == 0
    capsys.readouterr()
    assert main(["sim", str(tmp_path / "prj"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    layers = {row["name"]: row for row in report["layers"]}
    pool = layers["gap" if model == "gap" else "pool"]
    assert pool["bit_exact"] and pool["measured_cycles"] == pool["predicted_cycles"]
    assert all(row["bit_exact"] for row in report["layers"])
    assert main(["csim", str(tmp_path / "prj"), "--steps", "2", "--json"]) == 0
    csim = json.loads(capsys.readouterr().out)
    assert csim["fe"]["bit_exact"] and csim["training"]["bit_exact"]


def test_window_rule():
    conv, pool = isa_fe.KIND_CONV, isa_fe.KIND_AVGPOOL
    assert isa_fe.window_problem(conv, 7, 1, 8, 8, 4, 4) is None
    assert "convolution kernels, K ≤ 7" in isa_fe.window_problem(conv, 9, 9, 1, 1, 4, 4)
    assert isa_fe.window_problem(pool, 10, 10, 1, 1, 4, 4) is None       # 10x10 window in a 13x13 buffer
    assert isa_fe.window_problem(pool, 13, 13, 1, 1, 4, 4) is None       # exactly the buffer
    assert "14x14 input window" in isa_fe.window_problem(pool, 14, 14, 1, 1, 4, 4)
    assert "10x10 input window" in isa_fe.window_problem(pool, 10, 10, 1, 1, 2, 2)  # 9x9 buffer
    assert isa_fe.window_problem(pool, 9, 1, 8, 8, 4, 4) is None         # (4-1)*1 + 9 = 12 <= 13
    assert "larger than" in isa_fe.window_problem(pool, 9, 2, 8, 8, 4, 4)  # (4-1)*2 + 9 = 15
    assert "K ≤ 255" in isa_fe.window_problem(pool, 256, 256, 1, 1, 200, 200)


def test_a_pool_window_beyond_the_buffer_is_refused_before_writing(tmp_path, capsys):
    (tmp_path / "design.json").write_text(json.dumps({**DESIGN, "fe": {**DESIGN["fe"], "tr": 2, "tc": 2}}))
    assert main(["generate", GAP, "--design", str(tmp_path / "design.json"), "--out", str(tmp_path / "prj")]) == 1
    err = capsys.readouterr().err
    assert "layer 'gap'" in err and "10x10 input window" in err and "9x9 buffer" in err
    assert not (tmp_path / "prj").exists()
