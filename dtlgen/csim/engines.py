"""Build and load a project's HLS engines for C-simulation: g++ against the ap_types headers that the
installed hls4ml package ships (found at run time, never copied here).

`build(hls_dir)` compiles the engine sources of a project's hls/ directory into a shared library
(the engines behind the C entry points of csim_api.cpp) and the two testbench executables, cached
by a hash of the sources and flags. `CsimEngines` loads the library with ctypes and runs an engine
on a DRAM image (a numpy uint8 array) in place; `CsimDevice` is the host loop's `Device` on top of
it, so `dtlgen csim` re-trains through the same `RLHost` code as the RTL simulation and the board.
This module must not judge results: comparisons with the golden model live in `dtlgen.csim.run`.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dtlgen.errors import DesignError, ToolMissingError

CXX_FLAGS = ("-std=c++14", "-O2", "-fPIC", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label",
             "-Wno-maybe-uninitialized", "-Wno-uninitialized")
LIBRARY = "libdtl_csim.so"
ENGINE_SOURCES = {"fe": "dtl_fe_engine.cpp", "rl": "dtl_rl_engine.cpp"}
TESTBENCHES = {"fe": "tb_fe.cpp", "rl": "tb_rl.cpp"}


def ap_types_dir() -> Path:
    """The ap_types headers of the installed hls4ml package (hls4ml is not imported: it is slow to load)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise ToolMissingError("C-simulation needs the ap_types headers that hls4ml ships, and hls4ml is not "
                               "installed; install it with: pip install hls4ml")
    for location in spec.submodule_search_locations:
        path = Path(location) / "templates" / "vivado" / "ap_types"
        if (path / "ap_int.h").exists():
            return path
    raise ToolMissingError(f"hls4ml is installed at {list(spec.submodule_search_locations)} but has no "
                           "templates/vivado/ap_types/ap_int.h; reinstall it with: pip install --force-reinstall hls4ml")


def compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++")
    if not cxx or not shutil.which(cxx):
        raise ToolMissingError("C-simulation needs a C++ compiler and g++ was not found on PATH; install it "
                               "(Debian/Ubuntu: apt-get install g++) or set CXX to a C++14 compiler")
    return cxx


@dataclass(frozen=True)
class CsimBuild:
    library: Path
    testbenches: dict[str, Path]  # engine -> testbench executable
    has_rl: bool
    build_s: float  # wall time of the compilation, 0.0 when it came from the cache


def cache_root() -> Path:
    return Path(os.environ.get("DTLGEN_CACHE", Path.home() / ".cache" / "dtlgen")) / "csim"


def build(hls_dir: Path, cache: Path | None = None) -> CsimBuild:
    """Compile hls_dir's engines, C entry points and testbenches (in parallel, one process per file)."""
    hls_dir = Path(hls_dir).resolve()
    if not (hls_dir / "dtl_params.h").exists() or not (hls_dir / ENGINE_SOURCES["fe"]).exists():
        raise DesignError(f"'{hls_dir}' holds no HLS engines (dtl_params.h, {ENGINE_SOURCES['fe']}); regenerate the "
                          "project with 'dtlgen generate'")
    engines = [e for e, src in ENGINE_SOURCES.items() if (hls_dir / src).exists()]
    sources = sorted(p for p in hls_dir.iterdir() if p.suffix in (".h", ".cpp"))
    cxx, includes = compiler(), ap_types_dir()
    digest = hashlib.sha256()
    for part in (cxx, *CXX_FLAGS, str(includes)):
        digest.update(part.encode())
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    out = (cache or cache_root()) / digest.hexdigest()[:20]
    result = CsimBuild(out / LIBRARY, {e: out / f"tb_{e}" for e in engines}, "rl" in engines, 0.0)
    if result.library.exists() and all(p.exists() for p in result.testbenches.values()):
        return result
    start = time.perf_counter()
    staging = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    units = [ENGINE_SOURCES[e] for e in engines] + ["csim_api.cpp"] + [TESTBENCHES[e] for e in engines]
    flags = [*CXX_FLAGS, f"-I{hls_dir}", "-isystem", str(includes)]
    jobs = [(unit, subprocess.Popen([cxx, *flags, "-c", str(hls_dir / unit), "-o", str(staging / (unit + ".o"))],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)) for unit in units]
    for unit, job in jobs:
        output, _ = job.communicate()
        if job.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise DesignError(f"g++ could not compile {hls_dir / unit}:\n{_tail(output)}")
    objects = {unit: str(staging / (unit + ".o")) for unit in units}
    engine_objects = [objects[ENGINE_SOURCES[e]] for e in engines]
    links = [[cxx, "-shared", "-o", str(staging / LIBRARY), *engine_objects, objects["csim_api.cpp"]]]
    links += [[cxx, "-o", str(staging / f"tb_{e}"), objects[TESTBENCHES[e]], *engine_objects] for e in engines]
    for command in links:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise DesignError(f"linking the C-simulation failed ({' '.join(command[:3])} ...):\n{_tail(done.stderr)}")
    for obj in objects.values():
        Path(obj).unlink()
    if out.exists():  # another process finished the same build first
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(out)
    return CsimBuild(result.library, result.testbenches, result.has_rl, time.perf_counter() - start)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class CsimEngines:
    """A project's HLS engines in C-simulation. The RL engine's on-chip state (weights, stashes) lives
    in the loaded library between calls, as it does in the engine on the board; one library is loaded
    per build, so two CsimEngines of the same project share that state."""

    def __init__(self, project: Path, cache: Path | None = None):
        self.project = Path(project).resolve()
        self.built = build(self.project / "hls", cache)
        self.build_s = self.built.build_s
        self._lib = ctypes.CDLL(str(self.built.library))
        argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32]
        self._lib.dtl_csim_fe_run.argtypes = argtypes
        self.has_rl = bool(self._lib.dtl_csim_has_rl())
        if self.has_rl:
            self._lib.dtl_csim_rl_run.argtypes = argtypes

    def run_fe(self, memory: np.ndarray, desc_addr: int, desc_count: int) -> None:
        self._lib.dtl_csim_fe_run(*_image(memory), desc_addr, desc_count)

    def run_rl(self, memory: np.ndarray, desc_addr: int, desc_count: int) -> None:
        if not self.has_rl:
            raise DesignError(f"project '{self.project}' has no RL engine; generate it with a split (--split or "
                              "--retrain-last) to re-train")
        self._lib.dtl_csim_rl_run(*_image(memory), desc_addr, desc_count)


def _image(memory: np.ndarray) -> tuple[int, int]:
    if not isinstance(memory, np.ndarray) or memory.dtype != np.uint8 or not memory.flags.c_contiguous \
            or not memory.flags.writeable:
        raise TypeError("the DRAM image must be a writable, contiguous numpy uint8 array")
    return memory.ctypes.data, memory.nbytes


class CsimDevice:
    """The host loop's `Device` (dtlgen.host.rl_host) on the C-simulated RL engine and its own DRAM image.

    C-simulation has no clock: `run` returns 0 cycles (cycles come from RTL simulation and the model)."""

    def __init__(self, engines: CsimEngines, memory_bytes: int):
        self.engines = engines
        self.memory = np.zeros(memory_bytes, dtype=np.uint8)

    async def write(self, addr: int, data: bytes) -> None:
        self.memory[addr:addr + len(data)] = np.frombuffer(data, dtype=np.uint8)

    async def read(self, addr: int, size: int) -> bytes:
        return self.memory[addr:addr + size].tobytes()

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        self.engines.run_rl(self.memory, desc_addr, count)
        return 0
