"""A compiler wrapper that keeps the Verilator runtime's object files across builds.

Every Verilator build compiles the same runtime sources (verilated.cpp, verilated_vpi.cpp,
verilated_threads.cpp, verilated_dpi.cpp: about 40 s of g++ on this machine's cores) beside the
model's own C++. Verilator's makefile runs each compile as `$(OBJCACHE) $(CXX) ...`; `fe_sim.build_top`
sets OBJCACHE to `python -m dtlgen.sim.objcache`, and this module compiles a runtime source once per
compiler, flags and Verilator installation, then copies the object from the cache
(`cache_root()/verilator-runtime/<key>/object.o`). Anything else (the model's sources, cocotb's main)
is compiled as it would be without the wrapper.

The key is the SHA-256 of the whole command line (the output name left out), the source's bytes, the
compiler's resolved path, size and time, and every file of the Verilator include directory (name,
size, time): a change to any of them compiles afresh.
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
KIND = "verilator-runtime"


def cached_object(argv: list[str]) -> tuple[Path, str] | None:
    """(the source, the object's output path) when `argv` compiles a runtime source of the Verilator
    include directory to an object, else None."""
    include = os.environ.get(INCLUDE_ENV)
    if not include or "-c" not in argv or "-o" not in argv or argv.index("-o") + 1 >= len(argv):
        return None
    sources = [Path(a) for a in argv if a.endswith(".cpp")]
    if len(sources) != 1 or Path(include).resolve() not in sources[0].resolve().parents:
        return None
    return sources[0], argv[argv.index("-o") + 1]


def key_of(argv: list[str], source: Path, include: Path) -> str:
    out = argv.index("-o") + 1
    compiler = Path(shutil.which(argv[0]) or argv[0]).resolve()
    stat = compiler.stat()
    files = sorted((p.relative_to(include).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in include.rglob("*") if p.is_file())
    text = json.dumps([argv[:out] + argv[out + 1:], str(compiler), stat.st_size, stat.st_mtime_ns, files])
    return hashlib.sha256(text.encode() + source.read_bytes()).hexdigest()[:24]


def main(argv: list[str]) -> int:
    if not argv:
        return 2
    found = cached_object(argv)
    if found is None:
        return subprocess.run(argv, check=False).returncode
    from dtlgen.cache import ENTRIES, cache_dir, mark_used, sweep

    source, output = found
    root = cache_dir(KIND)
    entry = root / key_of(argv, source, Path(os.environ[INCLUDE_ENV]).resolve())
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
