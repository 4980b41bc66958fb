"""hls4ml's C-sim of the digits_cnn FE, given dtlgen's formats, agrees with dtlgen bit for bit.

Stimulus: two held-out digits images through hls4ml 1.3.0 (PyTorch frontend, Vitis, io_parallel)
converted by benchmarks/hls_vs_hls4ml.py with dtlgen's quantised weights and per-layer ap_fixed
types. Expectation: every traced layer and the FE output equal `golden.fe_forward` (0 LSB), which is
what the benchmark reports. Why it holds: ap_fixed's AP_RND + AP_SAT is `fixed.requantise` and
AP_RND_INF + AP_SAT is `fixed.to_fixed`, checked case by case here; the contrasting modes differ,
which shows the probe can see a difference.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("hls4ml")
if shutil.which("g++") is None:
    pytest.skip("g++ is needed for hls4ml's C-simulation", allow_module_level=True)

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "hls_vs_hls4ml.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("hls_vs_hls4ml", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ref(bench):
    return bench.load_reference(images=2)


def test_ap_fixed_modes_are_dtlgens_rules(bench, ref, tmp_path):
    probe = bench.rounding_probe(ref.qnet, tmp_path)
    ours = [p for p in probe if bench.is_dtlgen_rule(p.to_dict())]
    contrasts = [p for p in probe if not bench.is_dtlgen_rule(p.to_dict())]
    assert ours and all(p.differ == 0 and p.ties > 0 for p in ours), ours
    assert {p.rule for p in ours} == {p.rule for p in probe}, "every rule has its dtlgen modes"
    assert all(p.differ > 0 for p in contrasts), contrasts


@pytest.mark.slow  # 51 s: hls4ml's own C-simulation of the FE (benchmarks/hls_vs_hls4ml.py prints the same)
def test_hls4ml_fe_equals_golden_layer_by_layer(bench, ref, tmp_path):
    fe = bench.build_hls4ml(ref.qnet, tmp_path / "hls4ml", trace=True, compile=False)
    layers = bench.hls4ml_trace(fe, ref.images, ref)  # compiles once, with tracing
    assert set(layers) == {layer.name for layer in bench.fe_chain(ref.qnet)}
    for name, got in layers.items():
        a = bench.agreement(got, ref.golden_layers[name])
        assert a.exact and a.max_lsb == 0, (name, a)
    out = bench.agreement(bench.hls4ml_predict(fe, ref.images, ref), ref.golden_out)
    assert out.exact_fraction == 1.0 and out.max_lsb == 0 and out.images_exact == 2, out
