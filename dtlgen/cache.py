"""Where dtlgen keeps its build caches (`~/.cache/dtlgen`, or `$DTLGEN_CACHE`), checked before use.

Every cache entry (a Verilator build per parameter set, a g++ build per source hash) is a folder
under `cache_dir(kind)`. A cache location that is a file or cannot be written is one clear error
naming DTLGEN_CACHE, not a traceback from deep inside a build. Deleting the cache is always safe.

The cache does not grow without bound: every new build sweeps its kind's folder down to
`DTLGEN_CACHE_GB` (default 5) gigabytes, least recently used entries first (a build that is reused
is marked used). A sweep removes only entries dtlgen names (`sweep`'s pattern), never the newest,
and never anything else a user put beside them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from dtlgen.atomic import writable
from dtlgen.errors import DtlgenError


# Each kind of build: its folder under the cache root and the names of the entries dtlgen makes there
# (`sweep`, `cache_info` and `clear` touch nothing else).
ENTRIES = {
    "verilator": r"(fe|rl|axi|seeded|uart)_[0-9a-f]{16}",  # a Verilator build per engine and parameter set (dtlgen.sim)
    "csim": r"[0-9a-f]{20}",  # a g++ build of a project's HLS engines per source hash (dtlgen.csim)
    "verilator-runtime": r"[0-9a-f]{24}",  # one Verilator runtime object per compile command (dtlgen.sim.objcache)
}


def cache_root() -> Path:
    return Path(os.environ.get("DTLGEN_CACHE") or Path.home() / ".cache" / "dtlgen")


def cache_dir(kind: str) -> Path:
    """`cache_root()/kind`, created if needed; DtlgenError if it cannot be created or written, or if
    DTLGEN_CACHE_GB is not a size (checked here, before any build starts)."""
    cache_limit_bytes()
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


DEFAULT_CACHE_GB = 5.0


def cache_limit_bytes() -> int:
    """`DTLGEN_CACHE_GB` in bytes (default 5 GB); DtlgenError for a value that is not a number >= 0."""
    text = os.environ.get("DTLGEN_CACHE_GB", "").strip()
    try:
        gigabytes = float(text) if text else DEFAULT_CACHE_GB
    except ValueError:
        gigabytes = -1.0
    if not gigabytes >= 0.0 or gigabytes == float("inf"):
        raise DtlgenError(f"DTLGEN_CACHE_GB='{text}' is not a size in gigabytes; set it to a number such as 5 "
                          "(0 keeps only the newest build), or unset it for the default of 5")
    return int(gigabytes * 1e9)


def mark_used(entry: Path) -> None:
    """Note that a cached build was reused now (its folder's time), so that sweeps keep it longer."""
    try:
        os.utime(entry)
    except OSError:
        pass  # a read-only cache still serves builds; it only sweeps less well


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _entries(kind: str) -> list[Path]:
    """The entries dtlgen made in `kind`'s folder (none if the folder does not exist); DtlgenError if the
    cache root is something other than a folder."""
    root = cache_root()
    if root.exists() and not root.is_dir():
        where = "DTLGEN_CACHE" if os.environ.get("DTLGEN_CACHE") else "the cache folder"
        raise DtlgenError(f"{where} '{root}' is not a folder; point DTLGEN_CACHE at dtlgen's cache folder (or unset "
                          "it for ~/.cache/dtlgen)")
    folder, name = root / kind, re.compile(ENTRIES[kind])
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and name.fullmatch(p.name))


def cache_info() -> list[dict]:
    """Per kind of build: its folder, how many entries dtlgen keeps there and their bytes."""
    rows = []
    for kind in ENTRIES:
        entries = _entries(kind)
        rows.append({"kind": kind, "folder": str(cache_root() / kind), "entries": len(entries),
                     "bytes": sum(_size(p) for p in entries)})
    return rows


def clear() -> tuple[int, int]:
    """Remove every entry dtlgen made in the cache (files beside them stay); (entries, bytes) removed.
    Safe at any time but while a build runs: the next build makes its entry again."""
    count = freed = 0
    for kind in ENTRIES:
        for path in _entries(kind):
            size = _size(path)
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                count, freed = count + 1, freed + size
    return count, freed


def sweep(folder: Path, pattern: str, keep: Path, limit: int | None = None) -> list[Path]:
    """Remove the least recently used entries of `folder` whose names match `pattern` (a regular
    expression for the whole name) until those left hold at most `limit` bytes (default
    `cache_limit_bytes()`). `keep` (the build just made) always stays; files and folders whose names do
    not match are never touched. Returns what was removed."""
    limit = cache_limit_bytes() if limit is None else limit
    name = re.compile(pattern)
    entries = []
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink() and name.fullmatch(path.name):
            try:
                entries.append((path.stat().st_mtime, path, _size(path)))
            except OSError:
                pass  # removed by another process meanwhile
    total = sum(size for _, _, size in entries)
    removed = []
    for _, path, size in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if path.resolve() == keep.resolve():
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
            total -= size
    return removed
