"""Where dtlgen keeps its build caches (`~/.cache/dtlgen`, or `$DTLGEN_CACHE`), checked before use.

Every cache entry (a Verilator build per parameter set, a g++ build per source hash) is a folder
under `cache_dir(kind)`. A cache location that is a file or cannot be written is one clear error
naming DTLGEN_CACHE, not a traceback from deep inside a build. Deleting the cache is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

from dtlgen.atomic import writable
from dtlgen.errors import DtlgenError


def cache_root() -> Path:
    return Path(os.environ.get("DTLGEN_CACHE") or Path.home() / ".cache" / "dtlgen")


def cache_dir(kind: str) -> Path:
    """`cache_root()/kind`, created if needed; DtlgenError if it cannot be created or written."""
    root = cache_root()
    where = "DTLGEN_CACHE" if os.environ.get("DTLGEN_CACHE") else "the cache folder"
    path = root / kind
    if any(ch.isspace() for ch in str(path)):
        raise DtlgenError(f"{where} '{root}' has white space in its path, which the simulator's make-based build "
                          "cannot handle; point DTLGEN_CACHE at a folder without spaces")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = exc.strerror or str(exc)
    else:
        problem = None if writable(path) else "not writable"
    if problem:
        raise DtlgenError(f"{where} '{root}' cannot hold dtlgen's builds ({problem}); point DTLGEN_CACHE "
                          "at a writable folder (or unset it to use ~/.cache/dtlgen)")
    return path
