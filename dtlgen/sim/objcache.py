"""A compiler wrapper that keeps the Verilator runtime's object files across builds.

Every Verilator build compiles the same runtime sources (verilated.cpp, verilated_vpi.cpp,
verilated_threads.cpp, verilated_dpi.cpp: about 40 s of g++ on this machine's cores) beside the
model's own C++. Verilator's makefile runs each compile as `$(OBJCACHE) $(CXX) ...`; `fe_sim.build_top`
sets OBJCACHE to `python -m dtlgen.sim.objcache`, and this module compiles a runtime source once per
compiler, flags and Verilator installation, then copies the object from the cache
(`cache_root()/verilator-runtime/<key>/object.o`). Anything else (the model's sources, cocotb's main)
is compiled as it would be without the wrapper, except cocotb's simulator main (verilator.cpp), which is
the same in every build of a top: it includes only the model's `Vtop.h` (the top's ports) and runtime
headers, so its object is kept too, keyed by that header's bytes as well.

The key is the SHA-256 of the whole command line (the output name left out), the source's bytes, the
compiler's resolved path, size and time, and every file of the Verilator include directory (name,
size, time), and for cocotb's main the bytes of the build's Vtop.h: a change to any of them compiles afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

INCLUDE_ENV = "DTLGEN_VERILATOR_INCLUDE"  # the Verilator include directory whose sources are cached
MAIN_ENV = "DTLGEN_COCOTB_MAIN"  # cocotb's verilator.cpp, cached with the model header it includes
MAIN_HEADERS = ("Vtop.h",)  # what of the build folder (make's working directory) cocotb's main includes
KIND = "verilator-runtime"


def cached_object(argv: list[str]) -> tuple[Path, str, tuple[Path, ...]] | None:
    """(the source, the object's output path, the build-folder headers it includes) when `argv` compiles a
    runtime source of the Verilator include directory, or cocotb's main, to an object, else None."""
    include = os.environ.get(INCLUDE_ENV)
    if not include or "-c" not in argv or "-o" not in argv or argv.index("-o") + 1 >= len(argv):
        return None
    sources = [Path(a) for a in argv if a.endswith(".cpp")]
    if len(sources) != 1:
        return None
    output = argv[argv.index("-o") + 1]
    if Path(include).resolve() in sources[0].resolve().parents:
        return sources[0], output, ()
    main = os.environ.get(MAIN_ENV)
    headers = tuple(Path(name) for name in MAIN_HEADERS)
    if main and sources[0].resolve() == Path(main).resolve() and all(h.is_file() for h in headers):
        return sources[0], output, headers
    return None


def key_of(argv: list[str], source: Path, include: Path, headers: tuple[Path, ...] = ()) -> str:
    out = argv.index("-o") + 1
    compiler = Path(shutil.which(argv[0]) or argv[0]).resolve()
    stat = compiler.stat()
    files = sorted((p.relative_to(include).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in include.rglob("*") if p.is_file())
    text = json.dumps([argv[:out] + argv[out + 1:], str(compiler), stat.st_size, stat.st_mtime_ns, files])
    return hashlib.sha256(text.encode() + source.read_bytes() + b"".join(h.read_bytes() for h in headers)
                          ).hexdigest()[:24]


def main(argv: list[str]) -> int:
    if not argv:
        return 2
    found = cached_object(argv)
    if found is None:
        return subprocess.run(argv, check=False).returncode
    from dtlgen.cache import ENTRIES, cache_dir, mark_used, sweep

    source, output, headers = found
    root = cache_dir(KIND)
    entry = root / key_of(argv, source, Path(os.environ[INCLUDE_ENV]).resolve(), headers)
    if (entry / "object.o").is_file():
        shutil.copyfile(entry / "object.o", output)
        mark_used(entry)
        return 0
    code = subprocess.run(argv, check=False).returncode
    if code == 0 and not entry.exists():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        shutil.copyfile(output, staging / "object.o")
        try:
            staging.rename(entry)  # atomic: another build may have stored the same object meanwhile
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        else:
            sweep(root, ENTRIES[KIND], entry)  # DTLGEN_CACHE_GB holds for this kind as for every other
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
