"""C-simulation of the HLS engines (g++ + hls4ml's ap_types): bit-exact against the golden model.

Each check is the product's target: FE outputs and re-trained weights equal to the golden model bit
for bit (no tolerance), for the project's own data and for random designs; the numerics helpers of
dtl_numerics.h equal dtlgen.quant.fixed on random values; golden = C-sim = RTL on one project.
"""

from __future__ import annotations

import asyncio
import io
import ctypes
import json
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from dtlgen.boards import load_board
from dtlgen.cli import main
from dtlgen.csim import CsimDevice, CsimEngines, csim_project
from dtlgen.csim import engines as csim_engines
from dtlgen.csim.hls_estimate import EstimateEngines
from dtlgen.csim.run import run_csim
from dtlgen.errors import DesignError, ToolMissingError
from dtlgen.generator.hls import hls_template_dir
from dtlgen.generator.loader import load_rl_project, open_project
from dtlgen.generator.project import generate_project
from dtlgen.host.rl_host import RLHost, sample_plan
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import Design, predict
from dtlgen.progress import RichProgress, using
from dtlgen.quant import fixed

DESIGN = {"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}


def make_project(tmp_path, design=DESIGN, model="digits_cnn", name="prj"):
    network = load_model(model)
    calib = calibration_inputs(network, 0)
    return generate_project(network, Design.from_dict(design), load_board(design["board"]), calib, calib[0],
                            tmp_path / name)


@pytest.mark.hls_estimate
def test_csim_digits_cnn_fe_and_training_bit_exact(tmp_path, capsys):
    project = make_project(tmp_path)
    assert main(["csim", str(project), "--steps", "6", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["engine"] for t in report["testbenches"]] == ["fe", "rl"]
    assert all(t["passed"] and t["checks"] >= 4 for t in report["testbenches"])
    assert report["fe"]["bit_exact"] and len(report["fe"]["ops"]) == 4
    assert report["training"]["bit_exact"] and report["training"]["steps_checked"] == 6
    assert json.loads((project / "hls" / "csim_report.json").read_text())["bit_exact"]
    # the static reading of the HLS C++ (issue 16): both engines, written for the Vitis scheduler, hold no
    # pattern; their estimated cycles lie within 1.25x of the RTL model's
    check = report["hls_check"]
    assert check["bus_bytes"] == 16 and "not a Vitis schedule" in check["source"]
    assert check["findings"] == []
    # the HLS cycle estimate beside the RTL model's, per FE descriptor and for a training step
    estimate = report["hls_estimate"]
    assert "no Vitis" in estimate["source"] and estimate["latency_cycles"] == 40
    assert estimate["fe_cycles"] == sum(op["hls_cycles"] for op in estimate["fe_ops"])
    assert [op["name"] for op in estimate["fe_ops"]] == [op["name"] for op in report["fe"]["ops"]]
    network, design = load_model("digits_cnn"), Design.from_dict(DESIGN)
    assert estimate["rtl_fe_cycles"] == predict(network, design, load_board("pynq-z2")).fe_cycles
    assert estimate["rtl_fe_cycles"] <= estimate["fe_cycles"] <= 1.25 * estimate["rtl_fe_cycles"]
    # the steady training step, per descriptor beside the model's: a GEMM is a tile product a cycle in
    # both, so each differs by its pipeline's depth and set-up at most (explicit tolerance: 40 cycles)
    steps = estimate["rl_steps"]
    assert len(steps) == 2 and steps[-1] == {"hls_cycles": estimate["rl_step_cycles"],
                                             "rtl_cycles": estimate["rtl_rl_step_cycles"]}
    assert 0.8 * estimate["rtl_rl_step_cycles"] <= estimate["rl_step_cycles"] <= 1.25 * estimate["rtl_rl_step_cycles"]
    rows = estimate["rl_descriptors"]
    assert sum(r["hls_cycles"] for r in rows) == estimate["rl_step_cycles"]
    assert sum(r["rtl_cycles"] for r in rows) == estimate["rtl_rl_step_cycles"]
    gemms = [r for r in rows if r["mode"] in ("FWD", "BWD_DATA", "UPDATE")]
    assert {r["mode"] for r in gemms} == {"FWD", "BWD_DATA", "UPDATE"}
    assert all(abs(r["hls_cycles"] - r["rtl_cycles"]) <= 40 for r in gemms), gemms


def test_the_cosim_scripts_run_the_first_descriptor_and_step_bit_exact(tmp_path):
    # run_hls.tcl co-simulates the reduced scripts: they must pass, and hold fewer checks than the whole set
    project = make_project(tmp_path)
    engines = CsimEngines(project)
    data = project / "hls" / "tb_data"
    for engine, checks in (("fe", 1), ("rl", 2)):  # the first op's output; the first step's logits and parameters
        tb = str(engines.built.testbenches[engine])
        done = subprocess.run([tb, str(data), f"{engine}_cosim_script.txt"], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.count("PASS ") == checks, done.stdout + done.stderr
        whole = subprocess.run([tb, str(data)], capture_output=True, text=True)
        assert whole.returncode == 0 and whole.stdout.count("PASS ") > checks
        wrong = subprocess.run([tb, str(data), "../../etc/passwd"], capture_output=True, text=True)
        assert wrong.returncode == 2 and "unknown script" in wrong.stderr


def test_hls_estimate_counts_the_engines_loops_exactly(tmp_path):
    # the FE compute pipeline runs one iteration per tap and output position of every trip: its
    # counter over the network equals that sum from the ops' geometry (and the estimate is the counts'
    # cycles: no FE loop runs but these)
    project = make_project(tmp_path)
    data = open_project(project)
    engines = EstimateEngines(project, data.params.dram.latency)
    memory = np.array(data.memory, dtype=np.uint8).reshape(-1)
    engines.run_fe(memory, data.program["desc_addr"], len(data.program["ops"]))
    _, counts = engines.take("fe")
    (index,) = [k for k, loop in enumerate(engines.plans["fe"].loops) if loop.label == "taps"]
    fe, entries, iterations = Design.from_dict(DESIGN).fe, 0, 0
    for op in data.fe_ops:  # per trip, K*K passes over the tile's positions (at least DIST of them)
        trips = -(-op.m // fe.tm) * (1 if op.per_channel else -(-op.n // fe.tn))
        for r0 in range(0, op.r, fe.tr):
            for c0 in range(0, op.c, fe.tc):
                positions = min(fe.tr, op.r - r0) * min(fe.tc, op.c - c0)
                entries += trips
                iterations += trips * op.k * op.k * max(positions, 4)
    assert list(counts[index][:2]) == [entries, iterations]


def test_csim_vgg16_first_block_bit_exact(tmp_path):
    """vgg16_cifar's first block (3→64, 64→64 3×3 convs on 32×32, the second with its fused 2×2 max-pool)."""
    from dtlgen.model.ir import Network

    vgg = load_model("vgg16_cifar")
    block = Network("vgg16_block1", vgg.input_shape, vgg.layers[:3])
    x = np.random.default_rng(0).standard_normal((4, *vgg.input_shape))
    design = Design.from_dict({**DESIGN, "fe": {"tm": 8, "tn": 8, "tr": 8, "tc": 8, "w_bits": 8, "a_bits": 8}})
    project = generate_project(block, design, load_board("pynq-z2"), x, x[0], tmp_path / "vgg")
    report = csim_project(project)
    assert [op["name"] for op in report["fe"]["ops"]] == ["features.0", "features.3"]
    assert report["fe"]["bit_exact"] and report["testbenches"][0]["passed"]
    assert "training" not in report and [t["engine"] for t in report["testbenches"]] == ["fe"]


@pytest.mark.hls_estimate  # (the estimator on odd arrays: it models them or says it cannot, never fails)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tm=st.integers(1, 6), tn=st.integers(1, 6), tr=st.integers(2, 7), tc=st.integers(2, 7),
       a_bits=st.integers(4, 8), w_bits=st.integers(2, 8), rl_tm=st.integers(1, 9), rl_tn=st.integers(1, 9),
       rl_bits=st.integers(8, 16), batch=st.integers(1, 20), lr_shift=st.integers(3, 9))
def test_csim_random_designs_bit_exact(tmp_path_factory, tm, tn, tr, tc, a_bits, w_bits, rl_tm, rl_tn, rl_bits,
                                       batch, lr_shift):
    """Edge tiles, odd arrays, narrow formats, short batches: FE and 5 training steps stay bit-exact."""
    design = {"board": "pynq-z2", "clock_mhz": 100,
              "fe": {"tm": tm, "tn": tn, "tr": tr, "tc": tc, "w_bits": w_bits, "a_bits": a_bits},
              "rl": {"tm": rl_tm, "tn": rl_tn, "bits": rl_bits, "batch": batch, "lr_shift": lr_shift}}
    report = csim_project(make_project(tmp_path_factory.mktemp("design"), design))
    assert report["fe"]["bit_exact"], report["fe"]["ops"]
    assert all(t["passed"] for t in report["testbenches"]), report["testbenches"]
    assert report["training"]["bit_exact"], report["training"]["first_mismatch"]


@pytest.mark.parametrize("w_bits", [4, 2])
def test_csim_packed_weights_bit_exact(tmp_path, w_bits):
    """Weights of 4 and 2 bits sit two and four to a byte (dtlgen.isa.fe.weight_slot_bits): the C++
    engine unpacks them as the RTL does, bit-exact with the golden model."""
    design = {**DESIGN, "fe": {**DESIGN["fe"], "w_bits": w_bits}}
    report = csim_project(make_project(tmp_path, design), steps=1)
    assert report["fe"]["bit_exact"], report["fe"]["ops"]


def test_a_numerics_change_is_caught(tmp_path):
    """A different LFSR polynomial in the HLS build: the testbench and the host-loop check both fail."""
    project = make_project(tmp_path)
    header = project / "hls" / "dtl_params.h"
    header.write_text(header.read_text().replace(f"DTL_LFSR_MASK {fixed.LFSR_MASK}", "DTL_LFSR_MASK 0xD008"))
    with pytest.raises(DesignError, match="dtl_params.h differs"):
        csim_project(project, steps=2)  # dtlgen compiles only its own sources...
    data = open_project(project)
    report = run_csim(data, load_rl_project(data), steps=2)  # ...so the planted change is run directly
    assert not report["bit_exact"] and not report["training"]["bit_exact"]
    rl_tb = next(t for t in report["testbenches"] if t["engine"] == "rl")
    assert not rl_tb["passed"] and "step0_params" in rl_tb["failed"][0]
    assert report["fe"]["bit_exact"], "the FE engine does not use the LFSR"


def test_golden_equals_csim_equals_rtl(tmp_path):
    """One project through all three implementations: FE outputs and re-trained weights compared directly."""
    from dtlgen.isa.params import FESimBuild
    from dtlgen.sim.fe_sim import run_image
    from dtlgen.sim.rl_sim import golden_replay, simulate_training

    project = make_project(tmp_path)
    sim = project / "sim"
    program = json.loads((sim / "program.json").read_text())
    expected = np.load(sim / "expected.npz")
    engines = CsimEngines(project)
    csim_memory = np.array(expected["memory"])
    engines.run_fe(csim_memory, program["desc_addr"], len(program["ops"]))
    params = FESimBuild.from_dict(json.loads((sim / "params.json").read_text()), str(sim / "params.json"))
    rtl = run_image(expected["memory"], program["desc_addr"], len(program["ops"]), params, tmp_path / "fe_rtl",
                    max_cycles=4 * sum(op["predicted_cycles"] for op in program["ops"]) + 10_000,
                    sources_dir=project / "rtl", test_module="test_fe_engine", test_path=sim)
    for i, op in enumerate(program["ops"]):
        span = slice(op["out_addr"], op["out_addr"] + int(np.prod(op["out_shape"])))
        assert np.array_equal(csim_memory[span].view(np.int8).reshape(op["out_shape"]), expected[f"op{i}"]), op["name"]
        assert np.array_equal(rtl.memory[span], csim_memory[span]), op["name"]

    rl = load_rl_project(project)
    layout, qnet, state = rl.layout, rl.qnet, rl.state
    plan = sample_plan(rl.features, rl.labels, layout.batch, 5, qnet.precision.lr_shift)
    csim_run = asyncio.run(RLHost(CsimDevice(engines, layout.memory_bytes), layout).train(plan, state))
    rtl_run = simulate_training(layout, plan, state, tmp_path / "rl_rtl", params.dram.latency,
                                sources_dir=project / "rtl", test_folder=sim, test_module="test_rl_engine")
    reference = golden_replay(qnet, plan, state)
    for k in plan.check_steps:
        for name, (w, b) in reference[k].items():
            for got in (csim_run.weights[k][name], rtl_run.weights[k][name]):
                assert np.array_equal(np.reshape(got[0], w.shape), w) and np.array_equal(got[1], b), (k, name)
    assert np.array_equal(csim_run.logits, rtl_run.logits)


# --- dtl_numerics.h against dtlgen.quant.fixed ---------------------------------------------------
PROBE = r"""
#include "dtl_numerics.h"
extern "C" {
long long requantise16(long long v, int s) { return dtl_requantise<16, 73>(ap_int<73>(v), s).to_int64(); }
long long requantise8(long long v, int s) { return dtl_requantise<8, 48>(ap_int<48>(v), s).to_int64(); }
long long sround(long long v, int s, unsigned r) {
  return dtl_stochastic_round<73>(ap_int<16>(v), s, ap_uint<16>(r)).to_int64();
}
unsigned jump(const unsigned short *rows, unsigned v) {
  ap_uint<16> m[16];
  for (int i = 0; i < 16; i++) m[i] = rows[i];
  return dtl_lfsr_jump(m, ap_uint<16>(v)).to_uint();
}
unsigned step(unsigned v) { return dtl_lfsr_step(ap_uint<16>(v)).to_uint(); }
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    build = tmp_path_factory.mktemp("probe")
    (build / "dtl_params.h").write_text(f"#define DTL_LFSR_MASK {fixed.LFSR_MASK}\n")
    (build / "probe.cpp").write_text(PROBE)
    subprocess.run([csim_engines.compiler(), *csim_engines.CXX_FLAGS, "-shared", f"-I{build}",
                    f"-I{hls_template_dir()}", "-isystem", str(csim_engines.ap_types_dir()), str(build / "probe.cpp"),
                    "-o", str(build / "probe.so")], check=True)
    lib = ctypes.CDLL(str(build / "probe.so"))
    for name in ("requantise16", "requantise8"):
        getattr(lib, name).restype = ctypes.c_longlong
        getattr(lib, name).argtypes = [ctypes.c_longlong, ctypes.c_int]
    lib.sround.restype = ctypes.c_longlong
    lib.sround.argtypes = [ctypes.c_longlong, ctypes.c_int, ctypes.c_uint]
    lib.jump.restype = lib.step.restype = ctypes.c_uint
    lib.jump.argtypes = [ctypes.POINTER(ctypes.c_ushort), ctypes.c_uint]
    lib.step.argtypes = [ctypes.c_uint]
    return lib


@settings(max_examples=300, deadline=None)
@given(v=st.integers(-(1 << 40), 1 << 40) | st.integers(-300, 300), s=st.integers(-31, 80))
def test_requantise_matches_the_numerics_module(probe, v, s):
    assert probe.requantise16(v, s) == int(fixed.requantise(v, s, 16))
    if abs(v) < 1 << 32:
        assert probe.requantise8(v, s) == int(fixed.requantise(v, s, 8))


@settings(max_examples=300, deadline=None)
@given(v=st.integers(-(1 << 15), (1 << 15) - 1), s=st.integers(-20, 45), r=st.integers(1, (1 << 16) - 1))
def test_stochastic_rounding_matches_the_numerics_module(probe, v, s, r):
    assert probe.sround(v, s, r) == int(fixed.stochastic_round_shift(v, s, np.int64(r)))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(1, (1 << 16) - 1), steps=st.integers(0, 70000))
def test_lfsr_jump_matches_stepping(probe, seed, steps):
    rows = (ctypes.c_ushort * 16)(*fixed.lfsr_jump_matrix(steps))
    assert probe.jump(rows, seed) == fixed.lfsr_jump(fixed.lfsr_jump_matrix(steps), seed)
    assert probe.step(seed) == fixed.lfsr_step(seed)


# --- bad input and missing tools ---------------------------------------------------------------
def test_csim_of_a_non_project_is_a_clear_error(tmp_path, capsys):
    assert main(["csim", str(tmp_path)]) == 1
    assert "dtlgen generate" in capsys.readouterr().err


def test_an_interrupted_build_does_not_report_its_progress_done(tmp_path, monkeypatch):
    project = make_project(tmp_path)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(csim_engines, "_check_produced", interrupted)
    log = io.StringIO()
    with using(RichProgress(Console(file=log, force_terminal=False))), pytest.raises(KeyboardInterrupt):
        csim_engines.build(project / "hls", cache=tmp_path / "cache")
    assert "compiling the HLS C++" in log.getvalue() and "done in" not in log.getvalue()
    assert not list((tmp_path / "cache").iterdir())  # the staging folder is gone too


def test_missing_compiler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-g++")
    with pytest.raises(ToolMissingError, match="g\\+\\+"):
        csim_engines.compiler()


def test_missing_hls4ml_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(csim_engines.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ToolMissingError, match="pip install hls4ml"):
        csim_engines.ap_types_dir()
