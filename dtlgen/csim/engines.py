"""Build and load a project's HLS engines for C-simulation: g++ against the ap_types headers that the
installed hls4ml package ships (found at run time, never copied here).

`build(hls_dir)` compiles the engine sources of a project's hls/ directory into a shared library
(the engines behind the C entry points of csim_api.cpp) and the two testbench executables, cached
by a hash of the sources and flags. `CsimEngines` loads the library with ctypes and runs an engine
on a DRAM image (a numpy uint8 array) in place; `CsimDevice` is the host loop's `Device` on top of
it, so `dtlgen csim` re-trains through the same `RLHost` code as the RTL simulation and the board.
This module must not judge results: comparisons with the golden model live in `dtlgen.csim.run`.

The build defines DTL_CSIM_CHECKED: the engines then bounds-check every memory access and check
every descriptor against their limits (hls/dtl_csim_check.h), and the C entry points return an
error code with a one-line message instead of crashing on a tampered image or descriptor list,
which `CsimEngines` raises as a DesignError.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from dtlgen.cache import ENTRIES, cache_limit_bytes, mark_used, sweep
from dtlgen.errors import DesignError, DtlgenError, ToolMissingError
from dtlgen.progress import current as current_progress

CXX_FLAGS = ("-std=c++14", "-O2", "-fPIC", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label",
             "-Wno-maybe-uninitialized", "-Wno-uninitialized", "-DDTL_CSIM_CHECKED")
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
    """The C++ compiler: $CXX when it is set (one program, a name on PATH or a path), else g++ from PATH."""
    chosen = os.environ.get("CXX", "").strip()
    if chosen:
        if shutil.which(chosen) is None:
            hint = " (CXX must name one program, without arguments)" if " " in chosen else ""
            raise ToolMissingError(f"CXX={chosen} names a program that does not exist or is not executable{hint}; "
                                   "set CXX to a C++14 compiler (e.g. CXX=g++) or unset it to use g++ from PATH")
        return chosen
    cxx = shutil.which("g++")
    if cxx is None:
        raise ToolMissingError("C-simulation needs a C++ compiler and g++ was not found on PATH; install it "
                               "(Debian/Ubuntu: apt-get install g++) or set CXX to a C++14 compiler")
    return cxx


def _compiler_name(cxx: str) -> str:
    return f"CXX={os.environ['CXX'].strip()}" if os.environ.get("CXX", "").strip() else cxx


class Instrument(Protocol):
    """A rewrite of the engine sources before they are compiled (dtlgen.csim.hls_estimate's counters)."""

    tag: str  # a different tag, a different cache entry

    def rewrite(self, name: str, text: str) -> str: ...


@dataclass(frozen=True)
class CsimBuild:
    library: Path
    testbenches: dict[str, Path]  # engine -> testbench executable
    has_rl: bool
    build_s: float  # wall time of the compilation, 0.0 when it came from the cache


def cache_root() -> Path:
    from dtlgen.cache import cache_root as root

    return root() / "csim"


def build(hls_dir: Path, cache: Path | None = None, instrument: Instrument | None = None) -> CsimBuild:
    """Compile hls_dir's engines, C entry points and testbenches (in parallel, one process per file).

    With `instrument` (dtlgen.csim.hls_estimate), each engine source is compiled as `instrument.rewrite`
    gives it, into the library alone (no testbenches): the build of the HLS estimate, cached apart.
    The build happens in `<cache>/<hash>.tmp<pid>` and is renamed into place when complete; that
    staging directory is removed whatever stops the build (a compile error, Ctrl-C), so the cache
    only ever holds complete builds."""
    hls_dir = Path(hls_dir).resolve()
    cache_limit_bytes()  # a bad DTLGEN_CACHE_GB stops the command before it compiles anything
    if not (hls_dir / "dtl_params.h").exists() or not (hls_dir / ENGINE_SOURCES["fe"]).exists():
        raise DesignError(f"'{hls_dir}' holds no HLS engines (dtl_params.h, {ENGINE_SOURCES['fe']}); regenerate the "
                          "project with 'dtlgen generate'")
    from dtlgen.generator.hls import FE_SOURCES, RL_SOURCES

    engines = [e for e, src in ENGINE_SOURCES.items() if (hls_dir / src).exists()]
    # Exactly the files dtlgen writes, copied into the build folder and compiled there: nothing else in
    # the project's hls/ (a header named like a system one, a sub-folder) is ever on an include path,
    # and the cache key covers every byte that is compiled.
    names = sorted(FE_SOURCES + ("dtl_params.h",) + (RL_SOURCES if "rl" in engines else ()))
    sources = [hls_dir / name for name in names]
    cxx, includes = compiler(), ap_types_dir()
    digest = hashlib.sha256()
    for part in (cxx, *CXX_FLAGS, str(includes), instrument.tag if instrument else ""):
        digest.update(part.encode())
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    out = (cache or cache_root()) / digest.hexdigest()[:20]
    testbenches = {} if instrument else {e: out / f"tb_{e}" for e in engines}
    result = CsimBuild(out / LIBRARY, testbenches, "rl" in engines, 0.0)
    if _complete(result):
        mark_used(out)
        return result
    start = time.perf_counter()
    staging = out.with_name(out.name + f".tmp{os.getpid()}")
    jobs: list[tuple[str, subprocess.Popen]] = []
    stack = contextlib.ExitStack()  # the progress bar, closed with the build
    try:
        _make_staging(staging, cache)
        source_dir = staging / "src"
        source_dir.mkdir()
        for path in sources:
            if instrument and path.name in ENGINE_SOURCES.values():
                (source_dir / path.name).write_text(instrument.rewrite(path.name, path.read_text(encoding="utf-8")),
                                                    encoding="utf-8")
            else:
                shutil.copyfile(path, source_dir / path.name)
        units = [ENGINE_SOURCES[e] for e in engines] + ["csim_api.cpp"] + [TESTBENCHES[e] for e in testbenches]
        flags = [*CXX_FLAGS, f"-I{source_dir}", "-isystem", str(includes)]
        objects = {unit: staging / (unit + ".o") for unit in units}
        jobs = [(unit, subprocess.Popen([cxx, *flags, "-c", str(source_dir / unit), "-o", str(objects[unit])],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                for unit in units]
        bar = stack.enter_context(current_progress().task(f"compiling the HLS C++ with {_compiler_name(cxx)} (once "
                                                          "per source hash)", total=len(units) + len(testbenches) + 1))
        for unit, job in jobs:
            output, _ = job.communicate()
            if job.returncode != 0:
                raise DesignError(f"{_compiler_name(cxx)} could not compile {hls_dir / unit}:\n{_tail(output)}")
            _check_produced(cxx, objects[unit], f"compiling {unit}")
            bar.advance()
        engine_objects = [str(objects[ENGINE_SOURCES[e]]) for e in engines]
        links = [[cxx, "-shared", "-o", str(staging / LIBRARY), *engine_objects, str(objects["csim_api.cpp"])]]
        links += [[cxx, "-o", str(staging / f"tb_{e}"), str(objects[TESTBENCHES[e]]), *engine_objects]
                  for e in testbenches]
        for command in links:
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise DesignError(f"linking the C-simulation failed ({' '.join(command[:3])} ...):\n"
                                  f"{_tail(done.stderr)}")
            _check_produced(cxx, Path(command[command.index("-o") + 1]), "linking")
            bar.advance()
        for obj in objects.values():
            obj.unlink()
        try:
            staging.rename(out)
        except OSError:  # `out` exists: another process's finished build, or a broken one to replace
            if not _complete(result):
                shutil.rmtree(out, ignore_errors=True)
                staging.rename(out)
    except BaseException:
        stack.__exit__(*sys.exc_info())  # the bar hears of the failure: no "done" line for a failed build
        raise
    finally:
        stack.close()
        for _, job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
        shutil.rmtree(staging, ignore_errors=True)
    sweep(out.parent, ENTRIES["csim"], out)
    return CsimBuild(result.library, result.testbenches, result.has_rl, time.perf_counter() - start)


def _complete(built: CsimBuild) -> bool:
    return built.library.exists() and all(p.exists() for p in built.testbenches.values())


def _make_staging(staging: Path, cache: Path | None) -> None:
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    except OSError as error:
        reason = error.strerror or str(error)
        if cache is not None:
            where, fix = f"the C-simulation cache '{cache}'", "pass a writable directory"
        elif "DTLGEN_CACHE" in os.environ:
            where = f"DTLGEN_CACHE={os.environ['DTLGEN_CACHE']}"
            fix = "point DTLGEN_CACHE at a writable directory, or unset it to use ~/.cache/dtlgen"
        else:
            where = f"the C-simulation cache '{staging.parent}'"
            fix = "make it writable or set DTLGEN_CACHE to a writable directory"
        raise DtlgenError(f"{where}: cannot create the build directory {staging} ({reason}); {fix}") from None


def _check_produced(cxx: str, path: Path, step: str) -> None:
    """A "compiler" that exits 0 without writing its output (CXX=true) is not a compiler."""
    if not path.is_file() or path.stat().st_size == 0:
        raise ToolMissingError(f"{_compiler_name(cxx)} did not produce {path.name} when {step} (it exited 0 "
                               "without writing it); set CXX to a C++14 compiler such as g++")


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class CsimEngines:
    """A project's HLS engines in C-simulation. The RL engine's on-chip state (weights, stashes) lives
    in the loaded library between calls, as it does in the engine on the board; one library is loaded
    per build, so two CsimEngines of the same project share that state (and must not run at once)."""

    def __init__(self, project: Path, cache: Path | None = None, instrument: Instrument | None = None):
        self.project = Path(project).resolve()
        self.built = build(self.project / "hls", cache, instrument)
        self.build_s = self.built.build_s
        try:
            self._lib = ctypes.CDLL(str(self.built.library))
        except OSError as error:
            raise DesignError(f"cannot load the C-simulation library {self.built.library} ({error}); delete "
                              f"{self.built.library.parent} so that the next run rebuilds it") from None
        if not hasattr(self._lib, "dtl_csim_last_error"):
            raise DesignError(f"project '{self.project}' has HLS sources from an older dtlgen (hls/csim_api.cpp "
                              "reports no errors, so a bad input could crash it); regenerate the project with "
                              "'dtlgen generate'")
        self._lib.dtl_csim_last_error.restype = ctypes.c_char_p
        self._lib.dtl_csim_last_error.argtypes = []
        argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32]
        self._lib.dtl_csim_fe_run.argtypes = argtypes
        self._lib.dtl_csim_fe_run.restype = ctypes.c_int
        self.has_rl = bool(self._lib.dtl_csim_has_rl())
        if self.has_rl:
            self._lib.dtl_csim_rl_run.argtypes = argtypes
            self._lib.dtl_csim_rl_run.restype = ctypes.c_int

    def run_fe(self, memory: np.ndarray, desc_addr: int, desc_count: int, origin: str | None = None) -> None:
        """Run `desc_count` FE descriptors from `desc_addr` on `memory` in place. A descriptor list the
        engine refuses (outside the image, fields outside its limits) raises DesignError; `origin`
        names where the image and descriptors came from, for the message."""
        self._run("FE", self._lib.dtl_csim_fe_run, memory, desc_addr, desc_count, origin)

    def run_rl(self, memory: np.ndarray, desc_addr: int, desc_count: int, origin: str | None = None) -> None:
        if not self.has_rl:
            raise DesignError(f"project '{self.project}' has no RL engine; generate it with a split (--split or "
                              "--retrain-last) to re-train")
        self._run("RL", self._lib.dtl_csim_rl_run, memory, desc_addr, desc_count, origin)

    def _run(self, engine: str, entry, memory: np.ndarray, desc_addr: int, desc_count: int,
             origin: str | None) -> None:
        fix = (f"{origin} was changed: regenerate it with 'dtlgen generate'" if origin else
               "the memory image or descriptor list given to the C-simulation is not one dtlgen generated; "
               "regenerate the project with 'dtlgen generate'")
        for name, value, hi in (("desc_addr", desc_addr, (1 << 32) - 1), ("desc_count", desc_count, (1 << 16) - 1)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value <= hi:
                raise DesignError(f"{engine} engine: {name}={value!r} is not an integer 0..{hi} (the engine's "
                                  f"{name} port); {fix}")
        code = entry(*_image(memory), int(desc_addr), int(desc_count))
        if code != 0:
            message = (self._lib.dtl_csim_last_error() or b"").decode("utf-8", "replace").strip()
            raise DesignError(f"{message or f'{engine} engine: C-simulation error code {code}'}; {fix}")


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
        self.engines.run_rl(self.memory, desc_addr, count, origin="the project's sim/rl_layout.json (the RL "
                            "engine's layout, from which the host loop builds its descriptors)")
        return 0
