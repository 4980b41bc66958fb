"""dtlgen's FE C-simulation side by side with hls4ml's, on the same quantised digits_cnn feature extractor.

Both sides are C-simulations compiled with g++ against Xilinx's ap_types headers (no Vitis HLS):
- dtlgen: the generated project's HLS engines (`dtlgen.csim.CsimEngines`) running the FE
  descriptors on the project's memory image, one image at a time.
- hls4ml (PyTorch frontend, Vitis backend, io_parallel, Latency strategy): a torch module of the
  frozen layers whose weights and biases are dtlgen's quantised integers as floats (w·2^-w_frac,
  exact in float32/double and in hls4ml's weight files), with every layer's ap_fixed type set to
  dtlgen's format: weights, biases, the accumulator (acc_bits), and results
  `ap_fixed<bits, bits-frac, AP_RND, AP_SAT>`; the input `AP_RND_INF, AP_SAT`.

Printed: per implementation the cold build time, run time per image, agreement with the golden
model (`golden.fe_forward`); pairwise agreement (hls4ml against dtlgen's C-sim, against float torch
and the float network); a probe of ap_fixed's rounding modes against `dtlgen.quant.fixed` (every accumulator within
twice the output range, every input half step), which is why the agreement is what it is. The functions are importable: tests/csim/ runs them.

This module measures and compares; it must not change how dtlgen quantises or generates anything.

Run: python benchmarks/hls_vs_hls4ml.py [--images 50] [--repeats 3] [--json] [--truncating]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dtlgen.boards import load_board
from dtlgen.errors import ToolMissingError, UnsupportedLayerError
from dtlgen.generator.project import quantize_for_design
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.model.ir import INPUT, Layer, Network
from dtlgen.perf import Design
from dtlgen.quant import fixed, golden, reference
from dtlgen.quant.fixed import QFormat
from dtlgen.quant.quantize import QuantizedNetwork

MODEL = "digits_cnn"
# The design of tests/sim/test_project.py: small tiles, 8-bit FE. The tiling does not change the
# numbers (bit-exact is the FE engine's contract); it only has to be one dtlgen generates.
DESIGN = {"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}
# dtlgen's rules as ap_fixed modes: requantise = round half toward +inf, saturate; float -> fixed =
# round half away from zero, saturate. ap_fixed's own default (and hls4ml's) is AP_TRN, AP_WRAP.
REQUANTISE_MODES = "AP_RND,AP_SAT"
TO_FIXED_MODES = "AP_RND_INF,AP_SAT"
TRUNCATING_MODES = "AP_TRN,AP_WRAP"


# --- the reference: dtlgen's quantised FE and the images -----------------------------------------
@dataclass
class FEReference:
    """The quantised network, the test images and what the golden model makes of them."""

    network: Network
    design: Design
    qnet: QuantizedNetwork
    calib_x: np.ndarray
    images: np.ndarray  # (B, C, H, W) float, the held-out target-environment digits
    x_int: np.ndarray  # the images quantised to the input format (golden.quantize_input)
    out_layer: str  # the FE's last layer with an output of its own (a trailing flatten is a view)
    golden_out: np.ndarray  # (B, C, H, W) integers of out_layer
    golden_layers: dict[str, np.ndarray]  # every frozen layer's integers

    @property
    def out_fmt(self) -> QFormat:
        return self.qnet.layers[self.out_layer].out_fmt


def load_reference(images: int, model: str = MODEL, design: dict | None = None) -> FEReference:
    from dtlgen.model.digits_task import load_digits_task

    network = load_model(model)
    design_obj = Design.from_dict(design or DESIGN)
    calib = calibration_inputs(network, 0)
    qnet = quantize_for_design(network, design_obj, calib)
    # Held-out images (the calibration set is the re-training set's head): noisy, so the input's
    # float -> fixed rounding is exercised, not only exact multiples of 1/16.
    test_x = load_digits_task(0).test_x
    if images > len(test_x):
        raise ValueError(f"--images {images}: the digits task holds {len(test_x)} held-out images")
    x = np.ascontiguousarray(test_x[:images], dtype=np.float64)
    x_int = golden.quantize_input(qnet, x)
    chain = fe_chain(qnet)
    layers = golden.fe_forward(qnet, x_int)
    return FEReference(network, design_obj, qnet, calib, x, x_int, chain[-1].name, layers[chain[-1].name], layers)


def fe_chain(qnet: QuantizedNetwork) -> list[Layer]:
    """The frozen layers as a chain of conv2d (ReLU or none) and maxpool, a trailing flatten dropped.

    That is what both sides here can map one to one; anything else raises naming the layer.
    """
    chain: list[Layer] = []
    previous = INPUT
    for layer in qnet.fe_layers:
        if layer.op == "flatten" and layer is qnet.fe_layers[-1]:
            break  # a reshape: the FE's output bytes are its input's
        supported = (layer.op == "conv2d" and layer.groups == 1 and layer.activation in (None, "relu")) or \
                    (layer.op == "maxpool" and layer.activation is None)
        if not supported or layer.inputs != [previous]:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' ({layer.op}, groups {layer.groups}, activation {layer.activation}, inputs "
                f"{layer.inputs}): this comparison maps a chain of dense conv2d (+ReLU) and maxpool layers only")
        chain.append(layer)
        previous = layer.name
    return chain


# --- hls4ml ---------------------------------------------------------------------------------------
def fe_torch_module(qnet: QuantizedNetwork):
    """A torch module of the FE chain carrying dtlgen's quantised weights and biases as exact floats.

    Module names are the IR layer names (a ReLU is `<conv>_relu`), so hls4ml's layer names and its
    per-layer config keys are too. BatchNorm is already folded into the IR's conv weights.
    """
    import torch
    from torch import nn

    class FE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.order: list[str] = []
            for layer in fe_chain(qnet):
                if layer.op == "conv2d":
                    conv = nn.Conv2d(layer.n, layer.m, layer.kernel, layer.stride, layer.padding, bias=True)
                    lq = qnet.layers[layer.name]
                    with torch.no_grad():
                        conv.weight.copy_(torch.from_numpy(fixed.to_float(lq.weight, lq.w_fmt.frac)))
                        conv.bias.copy_(torch.from_numpy(fixed.to_float(lq.bias, lq.b_fmt.frac)))
                    self._add(layer.name, conv)
                    if layer.activation == "relu":
                        self._add(f"{layer.name}_relu", nn.ReLU())
                else:
                    self._add(layer.name, nn.MaxPool2d(layer.kernel, layer.stride, layer.padding))

        def _add(self, name: str, module) -> None:
            self.add_module(name, module)
            self.order.append(name)

        def forward(self, x):
            for name in self.order:
                x = getattr(self, name)(x)
            return x

    module = FE().eval()
    _check_exact_parameters(qnet, module)
    return module


def _check_exact_parameters(qnet: QuantizedNetwork, module) -> None:
    """float32 holds 24 significant bits: a wider bias integer would not survive as a float. Check."""
    for layer in fe_chain(qnet):
        if layer.op != "conv2d":
            continue
        lq, conv = qnet.layers[layer.name], getattr(module, layer.name)
        for values, fmt, ints in ((conv.weight, lq.w_fmt, lq.weight), (conv.bias, lq.b_fmt, lq.bias)):
            back = values.detach().double().numpy() * 2.0 ** fmt.frac
            if not np.array_equal(back, ints):
                raise ValueError(f"layer '{layer.name}': a quantised parameter is not exact as float32 "
                                 f"(format Q({fmt.bits}, {fmt.frac}))")


def ap_fixed(fmt: QFormat | tuple[int, int], modes: str = "") -> str:
    """`ap_fixed<W, I[, Q, O]>` of Q(bits, frac): I = bits - frac integer bits including the sign."""
    bits, frac = (fmt.bits, fmt.frac) if isinstance(fmt, QFormat) else fmt
    return f"ap_fixed<{bits},{bits - frac}{',' + modes if modes else ''}>"


def hls4ml_config(qnet: QuantizedNetwork, module, result_modes: str = REQUANTISE_MODES, trace: bool = False) -> dict:
    """hls4ml's per-layer ("name" granularity) config with dtlgen's formats as explicit precisions.

    `result_modes` are the quantisation/overflow modes of every conv's and ReLU's result type
    (dtlgen's requantise rule by default). Pools and the input keep their format exactly.
    """
    import hls4ml

    input_shape = tuple(qnet.network.input_shape)
    cfg = hls4ml.utils.config_from_pytorch_model(module, input_shape, granularity="name", backend="Vitis",
                                                 default_precision=ap_fixed(qnet.input_fmt, TO_FIXED_MODES))
    layers = cfg["LayerName"]
    # The input placeholder is the one config key that is no module: FX names it after forward's argument.
    module_names = set(module.order)
    (input_name,) = [name for name in layers if name not in module_names]
    layers[input_name]["Precision"]["result"] = ap_fixed(qnet.input_fmt, TO_FIXED_MODES)
    for layer in fe_chain(qnet):
        lq = qnet.layers[layer.name]
        precision = layers[layer.name]["Precision"]
        if layer.op == "conv2d":
            precision.update(weight=ap_fixed(lq.w_fmt), bias=ap_fixed(lq.b_fmt),
                             # Same frac as the products (w_frac + in_frac) and acc_bits wide, which
                             # dtlgen proves never overflows: the accumulation is exact on both sides.
                             accum=ap_fixed((lq.acc_bits, lq.acc_frac)),
                             result=ap_fixed(lq.out_fmt, result_modes))
            if layer.activation == "relu":
                layers[f"{layer.name}_relu"]["Precision"]["result"] = ap_fixed(lq.out_fmt, result_modes)
        else:  # a max of values already in the format: exact whatever the modes
            precision.update(accum=ap_fixed(lq.out_fmt), result=ap_fixed(lq.out_fmt))
    if trace:
        for name in layers:
            layers[name]["Trace"] = True
    return cfg


@dataclass
class Hls4mlFE:
    model: Any  # hls4ml ModelGraph, compiled
    module: Any  # the torch module it was converted from
    convert_s: float
    build_s: float  # hls_model.compile(): writing the project and its g++ build
    result_modes: str


def build_hls4ml(qnet: QuantizedNetwork, out_dir: Path, result_modes: str = REQUANTISE_MODES,
                 trace: bool = False, compile: bool = True) -> Hls4mlFE:
    """Convert the FE to an hls4ml project in `out_dir` and (unless told not to) compile its C-sim."""
    try:
        import hls4ml
    except ImportError:
        raise ToolMissingError("hls4ml is missing; install it with pip install hls4ml==1.3.0") from None
    if shutil.which("g++") is None:
        raise ToolMissingError("g++ is missing: hls4ml's C-simulation builds with it (apt-get install g++)")
    module = fe_torch_module(qnet)
    cfg = hls4ml_config(qnet, module, result_modes, trace)
    start = time.perf_counter()
    model = _quiet(lambda: hls4ml.converters.convert_from_pytorch_model(
        module, output_dir=str(out_dir), backend="Vitis", io_type="io_parallel", hls_config=cfg))
    convert_s = time.perf_counter() - start
    build_s = 0.0
    if compile:
        start = time.perf_counter()
        _quiet(model.compile)
        build_s = time.perf_counter() - start
    return Hls4mlFE(model, module, convert_s, build_s, result_modes)


def _quiet(call: Callable[[], Any]) -> Any:
    """Run an hls4ml call with its progress prints (stdout) sent to stderr, so --json stays clean."""
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        return call()
    finally:
        sys.stdout = saved


def hls4ml_cflags(out_dir: Path) -> str:
    """The g++ flags of an hls4ml project's build_lib.sh (what its compile() runs), for the report."""
    script = (Path(out_dir) / "build_lib.sh").read_text()
    match = re.search(r'^CFLAGS="([^"]*)"', script, re.MULTILINE)
    return match.group(1) if match else "?"


def hls4ml_to_int(y: np.ndarray, fmt: QFormat, shape: tuple[int, ...]) -> np.ndarray:
    """hls4ml's float outputs (channels last, flattened per image) -> NCHW integers of `fmt`."""
    c, h, w = shape
    scaled = np.asarray(y, dtype=np.float64).reshape(-1, h, w, c).transpose(0, 3, 1, 2) * 2.0 ** fmt.frac
    ints = np.rint(scaled)
    if not np.array_equal(ints, scaled):
        raise ValueError(f"hls4ml output not on the Q({fmt.bits}, {fmt.frac}) grid: its result type is not ours")
    return ints.astype(np.int64)


def hls4ml_predict(fe: Hls4mlFE, images: np.ndarray, ref: FEReference) -> np.ndarray:
    # float64 input selects the bridge's double entry point: float32 would round the pixels before
    # ap_fixed's own (AP_RND_INF) conversion does.
    y = fe.model.predict(np.ascontiguousarray(images, dtype=np.float64))
    return hls4ml_to_int(y, ref.out_fmt, ref.golden_out.shape[1:])


def hls4ml_trace(fe: Hls4mlFE, images: np.ndarray, ref: FEReference) -> dict[str, np.ndarray]:
    """Every traced layer's output as NCHW integers, keyed by the IR layer whose format it has.

    A conv's ReLU carries the conv's (IR) output: it is keyed by the conv's name.
    """
    _, traces = _quiet(lambda: fe.model.trace(np.ascontiguousarray(images, dtype=np.float64)))
    out = {}
    for layer in fe_chain(ref.qnet):
        name = f"{layer.name}_relu" if layer.activation == "relu" else layer.name
        out[layer.name] = hls4ml_to_int(traces[name], ref.qnet.layers[layer.name].out_fmt, layer.out_shape)
    return out


# --- comparison -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Agreement:
    """How far `candidate` is from `reference`, both in LSBs of the reference's output format."""

    elements: int
    exact_fraction: float  # elements equal
    max_lsb: float  # max |candidate - reference| in LSBs
    mean_lsb: float
    images: int
    images_exact: int  # images whose every element is equal

    @property
    def exact(self) -> bool:
        return self.exact_fraction == 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(candidate: np.ndarray, reference: np.ndarray) -> Agreement:
    """Compare per element and per image (axis 0); integer or float arrays in LSB units."""
    candidate, reference = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if candidate.shape != reference.shape:
        raise ValueError(f"shapes differ: {candidate.shape} vs {reference.shape}")
    diff = np.abs(candidate - reference)
    per_image = diff.reshape(len(diff), -1).max(axis=1)
    return Agreement(int(diff.size), float(np.mean(diff == 0)), float(diff.max(initial=0.0)),
                     float(diff.mean()) if diff.size else 0.0, len(diff), int(np.sum(per_image == 0)))


def float_torch_module(module):
    """A float64 copy of the FE module (dtlgen's quantised weights, float activations)."""
    import copy

    return copy.deepcopy(module).double()


def float_torch_lsb(module64, images: np.ndarray, fmt: QFormat) -> np.ndarray:
    """The float64 module's outputs in LSBs of `fmt` (not rounded)."""
    import torch

    with torch.no_grad():
        y = module64(torch.from_numpy(np.asarray(images, dtype=np.float64))).numpy()
    return y * 2.0 ** fmt.frac


def float_network_lsb(ref: FEReference) -> np.ndarray:
    """The IR with its original float weights (BatchNorm folded), in LSBs of the output format."""
    y = reference.float_forward(ref.network, ref.images, layers=ref.qnet.fe_layers)[ref.out_layer]
    return y * 2.0 ** ref.out_fmt.frac


# --- what ap_fixed's rounding modes do, against dtlgen.quant.fixed ----------------------------------
PROBE_CPP = r"""
// Generated by benchmarks/hls_vs_hls4ml.py: casts with ap_fixed's modes, raw integers in and out.
#include <ap_fixed.h>
#include <cmath>
#include <cstdio>
#include <vector>

static std::vector<long long> read_ints(const char* path) {
  std::vector<long long> v;
  FILE* f = std::fopen(path, "rb");
  long long x;
  while (std::fread(&x, sizeof x, 1, f) == 1) v.push_back(x);
  std::fclose(f);
  return v;
}

static std::vector<double> read_doubles(const char* path) {
  std::vector<double> v;
  FILE* f = std::fopen(path, "rb");
  double x;
  while (std::fread(&x, sizeof x, 1, f) == 1) v.push_back(x);
  std::fclose(f);
  return v;
}

static void write_ints(const char* path, const std::vector<long long>& v) {
  FILE* f = std::fopen(path, "wb");
  std::fwrite(v.data(), sizeof(long long), v.size(), f);
  std::fclose(f);
}

// An AW-bit accumulator with AF fractional bits (its raw integer is the value) cast to OW bits, OF frac.
template <int AW, int AF, int OW, int OF, ap_q_mode Q, ap_o_mode O>
static void requantise(const char* in, const char* out) {
  std::vector<long long> v = read_ints(in), r;
  for (long long raw : v) {
    ap_fixed<AW, AW - AF> acc = std::ldexp((double)raw, -AF);  // exact: |raw| < 2^53
    ap_fixed<OW, OW - OF, Q, O> y = acc;
    r.push_back((long long)std::ldexp(y.to_double(), OF));
  }
  write_ints(out, r);
}

template <int OW, int OF, ap_q_mode Q, ap_o_mode O>
static void from_double(const char* in, const char* out) {
  std::vector<double> v = read_doubles(in);
  std::vector<long long> r;
  for (double d : v) {
    ap_fixed<OW, OW - OF, Q, O> y = d;
    r.push_back((long long)std::ldexp(y.to_double(), OF));
  }
  write_ints(out, r);
}

int main() {
%(calls)s
  return 0;
}
"""

# dtlgen's rule first, then contrasts that each change one thing: the tie rule, the rounding, the overflow.
PROBE_MODES = {REQUANTISE_MODES: "dtlgen's requantise (hls4ml's results here)",
               "AP_RND_CONV,AP_SAT": "ties to even",
               "AP_TRN,AP_SAT": "floor (ap_fixed's default rounding)",
               "AP_RND,AP_WRAP": "wrap (ap_fixed's default overflow)"}
INPUT_PROBE_MODES = {TO_FIXED_MODES: "dtlgen's float -> fixed (hls4ml's input here)",
                     "AP_RND,AP_SAT": "ties toward +inf",
                     "AP_TRN,AP_SAT": "floor (ap_fixed's default rounding)"}


@dataclass
class ProbeResult:
    """One rule checked: ap_fixed with `modes` against dtlgen's function on `cases` values."""

    rule: str  # "requantise Q(acc_bits, acc_frac) -> Q(8, frac)" or "float -> Q(8, frac)"
    modes: str
    meaning: str
    cases: int
    differ: int
    max_lsb: int
    ties: int  # cases exactly half-way between two results
    differ_on_ties: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _probe_accumulators(acc_bits: int, shift: int, out_bits: int) -> np.ndarray:
    """Every accumulator whose result lies within twice the output range (all ties, all roundings, saturation
    on both sides), plus both ends of the accumulator's own range."""
    span = min(1 << (out_bits + shift), 1 << (acc_bits - 1))
    edge = min(1 << 12, 1 << (acc_bits - 1))
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    values = np.concatenate([np.arange(-span, span), np.arange(lo, lo + edge), np.arange(hi - edge + 1, hi + 1)])
    return np.unique(values).astype(np.int64)


def _probe_floats(fmt: QFormat, seed: int = 0) -> np.ndarray:
    """Every half step across twice the format's range, each nudged one ulp either way, and random values."""
    halves = np.arange(2 * fmt.min_int * 2, 2 * (fmt.max_int + 1) * 2 + 1) / 2.0 ** (fmt.frac + 1)
    random = np.random.default_rng(seed).uniform(2 * fmt.min_int, 2 * fmt.max_int, 100_000) * fmt.step
    return np.concatenate([halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf), random])


def rounding_probe(qnet: QuantizedNetwork, work: Path) -> list[ProbeResult]:
    """Compile one small ap_types program (g++) and check ap_fixed's casts against dtlgen.quant.fixed.

    For each distinct (acc_bits, acc_frac, out_fmt) of the FE's convs and for the input format:
    dtlgen's rule, its closest ap_fixed modes, and hls4ml's default, case by case.
    """
    from dtlgen.csim import ap_types_dir

    headers = ap_types_dir()  # the headers dtlgen's own C-sim compiles against
    work.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, str, str, str, np.ndarray, np.ndarray]] = []  # rule, modes, meaning, stem, expect, tie
    calls: list[str] = []
    # The cast depends on the shift and the output format; the accumulator's width only bounds its input.
    groups: dict[tuple[int, QFormat], list[Layer]] = {}
    for layer in fe_chain(qnet):
        if layer.op == "conv2d":
            lq = qnet.layers[layer.name]
            groups.setdefault((lq.acc_frac, lq.out_fmt), []).append(layer)
    for index, ((acc_frac, out_fmt), members) in enumerate(groups.items()):
        acc_bits = max(qnet.layers[layer.name].acc_bits for layer in members)
        shift = acc_frac - out_fmt.frac
        acc = _probe_accumulators(acc_bits, shift, out_fmt.bits)
        stem = f"acc{index}"
        acc.tofile(work / f"{stem}.in")
        expect = fixed.requantise(acc, shift, out_fmt.bits)
        tie = (acc & ((1 << shift) - 1)) == (1 << (shift - 1)) if shift > 0 else np.zeros(len(acc), bool)
        rule = (f"requantise Q({acc_bits},{acc_frac}) -> Q({out_fmt.bits},{out_fmt.frac}) "
                f"({', '.join(layer.name for layer in members)})")
        for k, modes in enumerate(PROBE_MODES):
            calls.append(f'  requantise<{acc_bits}, {acc_frac}, {out_fmt.bits}, {out_fmt.frac}, '
                         f'{modes}>("{stem}.in", "{stem}_{k}.out");')
            jobs.append((rule, modes, PROBE_MODES[modes], f"{stem}_{k}", expect, tie))
    fmt = qnet.input_fmt
    floats = _probe_floats(fmt)
    floats.tofile(work / "input.in")
    scaled = floats * 2.0 ** fmt.frac
    tie = scaled - np.floor(scaled) == 0.5
    for k, modes in enumerate(INPUT_PROBE_MODES):
        calls.append(f'  from_double<{fmt.bits}, {fmt.frac}, {modes}>("input.in", "input_{k}.out");')
        jobs.append((f"float -> Q({fmt.bits},{fmt.frac}) (input)", modes, INPUT_PROBE_MODES[modes], f"input_{k}",
                     fixed.to_fixed(floats, fmt), tie))
    (work / "probe.cpp").write_text(PROBE_CPP % {"calls": "\n".join(calls)})
    subprocess.run(["g++", "-O1", "-std=c++14", f"-I{headers}", "probe.cpp", "-o", "probe"], cwd=work, check=True,
                   capture_output=True)
    subprocess.run(["./probe"], cwd=work, check=True)
    results = []
    for rule, modes, meaning, stem, expect, tie in jobs:
        got = np.fromfile(work / f"{stem}.out", dtype=np.int64)
        wrong = got != expect
        results.append(ProbeResult(rule, modes, meaning, len(got), int(wrong.sum()),
                                   int(np.abs(got - expect).max(initial=0)), int(tie.sum()), int((wrong & tie).sum())))
    return results


# --- dtlgen's C-sim ---------------------------------------------------------------------------------
@dataclass
class DtlgenCsim:
    outputs: np.ndarray  # (B, C, H, W) integers of the last FE op
    generate_s: float  # generate_project: quantise, program, RTL/HLS files
    build_s: float  # CsimEngines' g++ build (cold: a fresh project)
    run_s_per_image: float
    expected_ok: bool  # the project's own golden output for its sample equals our golden model's


def run_dtlgen_csim(ref: FEReference, work: Path, repeats: int) -> DtlgenCsim:
    """Generate a fresh project, build its C-sim engines cold (a fresh cache), run every image through the FE.

    The engines take the input already quantised (the host runs fixed.to_fixed); each image's int8
    values go in at the program's input_addr of a copy of the project's memory image.
    """
    from dtlgen.csim import CsimEngines
    from dtlgen.generator.project import generate_project

    start = time.perf_counter()
    project = generate_project(ref.network, ref.design, load_board(ref.design.board), ref.calib_x, ref.images[0],
                               work / "project")
    generate_s = time.perf_counter() - start
    engines = CsimEngines(project, cache=work / "csim_cache")
    program = json.loads((project / "sim" / "program.json").read_text())
    expected = np.load(project / "sim" / "expected.npz")
    memory = np.array(expected["memory"], dtype=np.uint8)
    ops, last = program["ops"], program["ops"][-1]
    if last["layer"] != ref.out_layer or tuple(last["out_shape"]) != ref.golden_out.shape[1:]:
        raise ValueError(f"the project's last FE op writes {last['layer']} {last['out_shape']}, the comparison "
                         f"expects {ref.out_layer} {ref.golden_out.shape[1:]}")
    # The project was generated with image 0 as its sample: its own golden output must be ours.
    expected_ok = bool(np.array_equal(expected[f"op{len(ops) - 1}"], ref.golden_out[0]))
    in_addr, out_addr, count = program["input_addr"], last["out_addr"], int(np.prod(last["out_shape"]))

    def run_all() -> np.ndarray:
        outputs = np.empty_like(ref.golden_out)
        for i, x in enumerate(ref.x_int):
            image = memory.copy()
            image[in_addr:in_addr + x.size] = x.reshape(-1).astype(np.int8).view(np.uint8)
            engines.run_fe(image, program["desc_addr"], len(ops))
            outputs[i] = image[out_addr:out_addr + count].view(np.int8).reshape(last["out_shape"])
        return outputs

    outputs = run_all()
    return DtlgenCsim(outputs, generate_s, engines.build_s, median_per_image(run_all, len(ref.x_int), repeats),
                      expected_ok)


# --- the benchmark --------------------------------------------------------------------------------
def median_per_image(run: Callable[[], Any], images: int, repeats: int) -> float:
    """Median over `repeats` of (wall time of `run`) / images, after one untimed warm-up run."""
    run()  # the first call loads weight files / pages in the library: not part of a steady image
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / images)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    import hls4ml

    gxx = subprocess.run(["g++", "--version"], check=False, capture_output=True, text=True).stdout.splitlines()
    return {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "gxx": gxx[0] if gxx else "?",
            "hls4ml": hls4ml.__version__}


def run_benchmark(images: int, repeats: int, truncating: bool = False, work: Path | None = None) -> dict[str, Any]:
    own_tmp = None
    if work is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="dtlgen_hls_vs_hls4ml_")
        work = Path(own_tmp.name)
    try:
        return _run(images, repeats, truncating, work)
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()


def _run(images: int, repeats: int, truncating: bool, work: Path) -> dict[str, Any]:
    ref = load_reference(images)
    out: dict[str, Any] = {"model": MODEL, "design": DESIGN, "images": images, "repeats": repeats,
                           "machine": machine(), "out_layer": ref.out_layer,
                           "formats": {"input": ref.qnet.input_fmt.to_dict(),
                                       **{layer.name: ref.qnet.layers[layer.name].to_dict() for layer in fe_chain(ref.qnet)}},
                           "rows": {}, "pairs": {}}
    rows, pairs = out["rows"], out["pairs"]

    golden_s = median_per_image(lambda: golden.fe_forward(ref.qnet, golden.quantize_input(ref.qnet, ref.images)),
                                images, repeats)
    rows["dtlgen golden model (numpy)"] = {"build_s": None, "run_s_per_image": golden_s, "images": images,
                                           "vs_golden": agreement(ref.golden_out, ref.golden_out).to_dict()}

    hls = build_hls4ml(ref.qnet, work / "hls4ml")
    hls_out = hls4ml_predict(hls, ref.images, ref)
    hls_s = median_per_image(lambda: hls4ml_predict(hls, ref.images, ref), images, repeats)
    out["build_flags"] = {"hls4ml": hls4ml_cflags(work / "hls4ml")}
    rows["hls4ml C-sim (g++)"] = {"build_s": hls.build_s, "convert_s": hls.convert_s, "run_s_per_image": hls_s,
                                  "images": images, "vs_golden": agreement(hls_out, ref.golden_out).to_dict()}

    try:
        csim = run_dtlgen_csim(ref, work / "dtlgen", repeats)
    except ImportError as error:
        out["dtlgen_csim_missing"] = f"dtlgen.csim unavailable: {error!r}"
        csim = None
    if csim is not None:
        from dtlgen.csim import engines as csim_engines

        out["build_flags"]["dtlgen"] = " ".join(getattr(csim_engines, "CXX_FLAGS", ("?",)))
        rows["dtlgen C-sim (g++)"] = {"build_s": csim.build_s, "generate_s": csim.generate_s,
                                      "run_s_per_image": csim.run_s_per_image, "images": images,
                                      "project_expected_ok": csim.expected_ok,
                                      "vs_golden": agreement(csim.outputs, ref.golden_out).to_dict()}
        pairs["hls4ml vs dtlgen C-sim"] = agreement(hls_out, csim.outputs).to_dict()

    module64 = float_torch_module(hls.module)
    torch_lsb = float_torch_lsb(module64, ref.images, ref.out_fmt)
    torch_s = median_per_image(lambda: float_torch_lsb(module64, ref.images, ref.out_fmt), images, repeats)
    rows["float torch (quantised weights, float64)"] = {"build_s": None, "run_s_per_image": torch_s, "images": images,
                                                        "vs_golden": agreement(torch_lsb, ref.golden_out).to_dict()}
    pairs["hls4ml vs float torch (quantised weights)"] = agreement(hls_out, torch_lsb).to_dict()
    pairs["hls4ml vs float network (original weights)"] = agreement(hls_out, float_network_lsb(ref)).to_dict()

    if truncating:
        trn = build_hls4ml(ref.qnet, work / "hls4ml_trn", TRUNCATING_MODES)
        trn_out = hls4ml_predict(trn, ref.images, ref)
        rows[f"hls4ml C-sim, results {TRUNCATING_MODES}"] = {
            "build_s": trn.build_s, "convert_s": trn.convert_s,
            "run_s_per_image": median_per_image(lambda: hls4ml_predict(trn, ref.images, ref), images, repeats),
            "images": images, "vs_golden": agreement(trn_out, ref.golden_out).to_dict()}

    out["rounding_probe"] = [r.to_dict() for r in rounding_probe(ref.qnet, work / "probe")]
    out["saturated"] = saturation(ref)
    return out


def saturation(ref: FEReference) -> dict[str, int]:
    """Golden conv outputs pinned at their format's limits: where float torch and fixed point part most."""
    counts = {"values": 0, "saturated": 0}
    for layer in fe_chain(ref.qnet):
        if layer.op == "conv2d":
            y, fmt = ref.golden_layers[layer.name], ref.qnet.layers[layer.name].out_fmt
            counts["values"] += int(y.size)
            counts["saturated"] += int(np.sum((y == fmt.max_int) | (y == fmt.min_int)))
    return counts


# --- report ---------------------------------------------------------------------------------------
def notes(result: dict[str, Any]) -> list[str]:
    """Why the figures are what they are: each statement backed by a figure of this run."""
    rows, pairs = result["rows"], result["pairs"]
    hls = rows["hls4ml C-sim (g++)"]["vs_golden"]
    lines = []
    probe = result["rounding_probe"]
    ours = [p for p in probe if is_dtlgen_rule(p) and p["rule"].startswith("requantise")]
    inp = [p for p in probe if is_dtlgen_rule(p) and not p["rule"].startswith("requantise")]
    lines.append(
        f"Requantisation: ap_fixed's AP_RND (floor(x + 1/2 LSB), i.e. round half toward +inf, negatives too: "
        f"-2.5 -> -2) then AP_SAT (clamp to [-2^(b-1), 2^(b-1)-1], after the rounding carry) is "
        f"fixed.requantise's rule: {sum(p['cases'] for p in ours):,} accumulators over "
        f"{len(ours)} conv formats (all ties, negatives, saturation on both sides), "
        f"{sum(p['differ'] for p in ours)} differ.")
    lines.append(
        f"Input: AP_RND_INF (ties away from zero) + AP_SAT is fixed.to_fixed's rule: "
        f"{sum(p['cases'] for p in inp):,} doubles, {sum(p['differ'] for p in inp)} differ. hls4ml's predict is "
        "fed float64 (its double entry point); float32 would round the pixels first.")
    contrasts: dict[str, list[dict[str, Any]]] = {}
    for p in probe:
        if not is_dtlgen_rule(p):
            kind = "requantise" if p["rule"].startswith("requantise") else "input"
            contrasts.setdefault(f"{kind} with {p['modes']} ({p['meaning']})", []).append(p)
    lines.append("What another mode would change (probe table): " + "; ".join(
        f"{name} differs on {sum(p['differ'] for p in group):,} of {sum(p['cases'] for p in group):,} cases, "
        f"by up to {max(p['max_lsb'] for p in group)} LSB" for name, group in contrasts.items()) + ".")
    lines.append(
        "ReLU placement: hls4ml casts the conv's accumulator to the result type (round, saturate) and a "
        "separate ReLU layer follows; dtlgen requantises then applies ReLU: the same order. (Rounding is "
        "monotone and maps 0 to 0, so the other order would give the same numbers too.)")
    lines.append(
        "Bias and accumulator: hls4ml starts the accumulator at the bias (cast to accum_t) and adds full-precision "
        "products; with accum = ap_fixed<acc_bits, acc_bits - (w_frac + in_frac)> and the bias in dtlgen's "
        "b_fmt (same frac) every sum is exact, as dtlgen's. ap_fixed's default accum mode is AP_WRAP: exact "
        "only because acc_bits provably never overflows.")
    lines.append(
        "Weights: dtlgen's integers times 2^-frac are exact in float32 (checked), hls4ml writes them with "
        "frac decimal digits and reads them back as double: exact. Max pooling takes the max of values "
        "already in the format after ReLU, on both sides (dtlgen fuses the pool into the conv's descriptor).")
    verdict = "exact" if hls["exact_fraction"] == 1.0 else "NOT exact"
    lines.append(f"hls4ml vs golden: {verdict} ({100 * hls['exact_fraction']:.2f} % of elements, max "
                 f"{hls['max_lsb']:g} LSB).")
    ft = pairs["hls4ml vs float torch (quantised weights)"]
    sat = result["saturated"]
    lines.append(f"hls4ml vs float torch with the same quantised weights: max {ft['max_lsb']:.2f} LSB, mean "
                 f"{ft['mean_lsb']:.3f} LSB: what rounding every activation to 8 bits costs, compounded through "
                 f"the convs; {sat['saturated']:,} of {sat['values']:,} conv outputs ("
                 f"{100 * sat['saturated'] / max(1, sat['values']):.2f} %) sit at their format's limit "
                 "(saturated or exactly there). Not an error of either C-sim: float torch is the unquantised-activation baseline.")
    if "dtlgen C-sim (g++)" in rows:
        row = rows["dtlgen C-sim (g++)"]
        pair = pairs["hls4ml vs dtlgen C-sim"]
        lines.append(f"dtlgen C-sim vs golden: {100 * row['vs_golden']['exact_fraction']:.2f} % equal (max "
                     f"{row['vs_golden']['max_lsb']:g} LSB); hls4ml vs dtlgen C-sim: {100 * pair['exact_fraction']:.2f} % "
                     f"equal (max {pair['max_lsb']:g} LSB). The project's own expected output for its sample "
                     f"{'equals' if row['project_expected_ok'] else 'DIFFERS from'} this golden run's.")
        flags = result["build_flags"]
        flags = {side: " ".join(f for f in text.split() if f.startswith("-O")) or text for side, text in flags.items()}
        lines.append(f"Builds are not like for like: hls4ml's build_lib.sh runs g++ {flags['hls4ml']} on two files one "
                     "after the other (every layer's templates in one translation unit); dtlgen.csim runs one g++ "
                     f"{flags['dtlgen']} per source in parallel ({result['machine']['cpus']} CPUs here) and builds "
                     "the project's FE and RL engines, its C entry points and both testbenches, more than this "
                     "comparison runs.")
    trn = [name for name in rows if TRUNCATING_MODES in name]
    for name in trn:
        a = rows[name]["vs_golden"]
        lines.append(f"{name}: {100 * a['exact_fraction']:.2f} % equal, max {a['max_lsb']:g} LSB: AP_TRN floors every "
                     "conv result (up to 1 LSB low per layer, compounding through the chain); AP_WRAP can only matter "
                     "where a value leaves its format, and the golden run puts "
                     f"{result['saturated']['saturated']} conv outputs at a limit.")
    if "dtlgen_csim_missing" in result:
        lines.append(result["dtlgen_csim_missing"])
    return lines


def is_dtlgen_rule(p: dict[str, Any]) -> bool:
    """The probe row whose modes are meant to be dtlgen's rule (the others are contrasts)."""
    return p["modes"] == (REQUANTISE_MODES if p["rule"].startswith("requantise") else TO_FIXED_MODES)


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1e3:.2f} ms"


def print_report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    m = result["machine"]
    console.print(f"{result['model']} feature extractor ({', '.join(result['formats'])} -> {result['out_layer']}), "
                  f"{result['images']} held-out images, median of {result['repeats']} repeats. "
                  f"{m['platform']}, {m['cpus']} CPUs, Python {m['python']}, {m['gxx']}, hls4ml {m['hls4ml']}. "
                  "All figures from C-simulation compiled with g++ against the ap_types headers (no Vitis HLS).",
                  soft_wrap=True)
    table = Table(title="Implementations against dtlgen's golden model (golden.fe_forward)")
    for column in ("implementation", "build (cold)", "run / image", "images", "images exact", "exact elements",
                   "max |error|", "mean |error|"):
        table.add_column(column, justify="right" if column != "implementation" else "left")
    for name, row in result["rows"].items():
        a = row["vs_golden"]
        table.add_row(name, _fmt_s(row["build_s"]), _fmt_s(row["run_s_per_image"]), str(row["images"]),
                      f"{a['images_exact']}/{a['images']}", f"{100 * a['exact_fraction']:.2f} %",
                      f"{a['max_lsb']:.2f} LSB", f"{a['mean_lsb']:.3f} LSB")
    console.print(table)
    table = Table(title="Pairwise agreement (LSB of the output format)")
    for column in ("pair", "exact elements", "images exact", "max |difference|", "mean |difference|"):
        table.add_column(column, justify="right" if column != "pair" else "left")
    for name, a in result["pairs"].items():
        table.add_row(name, f"{100 * a['exact_fraction']:.2f} %", f"{a['images_exact']}/{a['images']}",
                      f"{a['max_lsb']:.2f} LSB", f"{a['mean_lsb']:.3f} LSB")
    console.print(table)
    table = Table(title="ap_fixed casts against dtlgen.quant.fixed (exhaustive near the range, g++ + ap_types)")
    for column in ("rule", "ap_fixed modes", "meaning", "cases", "differ", "max |diff|", "ties (differ)"):
        table.add_column(column, justify="right" if column in ("cases", "differ", "max |diff|", "ties (differ)") else "left")
    for p in result["rounding_probe"]:
        table.add_row(p["rule"], p["modes"], p["meaning"], f"{p['cases']:,}", f"{p['differ']:,}", f"{p['max_lsb']} LSB",
                      f"{p['ties']:,} ({p['differ_on_ties']:,})")
    console.print(table)
    console.print("Notes:")
    for line in notes(result):
        console.print(f"- {line}", soft_wrap=True)
    extra = [f"hls4ml convert {_fmt_s(result['rows']['hls4ml C-sim (g++)']['convert_s'])} before its build"]
    if "dtlgen C-sim (g++)" in result["rows"]:
        extra.append(f"dtlgen generate_project {_fmt_s(result['rows']['dtlgen C-sim (g++)']['generate_s'])} before its build")
    console.print(f"- Build (cold): hls4ml's compile() (writes its project, runs build_lib.sh) and dtlgen.csim's g++ "
                  f"build into a fresh cache ({'; '.join(extra)}). Run / image: "
                  "wall time per image through each side's Python entry point (hls4ml: predict over the batch, "
                  "ctypes per image; dtlgen: write the input, run the FE descriptors, read the output).",
                  soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="held-out digits images to run (default 50)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")
    parser.add_argument("--truncating", action="store_true",
                        help=f"also build hls4ml with results {TRUNCATING_MODES} (ap_fixed's default; one more build)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        parser.error("--images and --repeats must be at least 1")
    result = run_benchmark(args.images, args.repeats, args.truncating)
    if args.json:
        print(json.dumps({**result, "notes": notes(result)}, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
