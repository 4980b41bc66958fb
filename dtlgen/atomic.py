"""Atomic output: a command's files appear completely or not at all.

Everything is written into a temporary sibling of the destination and moved into place at the
end, so bad input or a crash never leaves a half-written project or report behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dtlgen.errors import DtlgenError


def check_destination(destination: Path, marker: str) -> Path:
    """Refuse, before any work starts, an output path that is a file or someone else's directory."""
    destination = Path(destination).resolve()
    if destination.exists() and (not destination.is_dir() or
                                 (any(destination.iterdir()) and not (destination / marker).exists())):
        raise DtlgenError(f"output '{destination}' exists and is not a dtlgen output (no {marker} in it); "
                          "choose a new or empty directory")
    return destination


@contextmanager
def atomic_directory(destination: Path, marker: str) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces `destination`.

    An existing non-empty `destination` is replaced only if it holds `marker` (a file that this
    kind of output always writes), so a mistyped --out never deletes a user's own directory.
    """
    destination = check_destination(destination, marker)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if destination.exists():
        retired = destination.with_name(f".{destination.name}.old.{os.getpid()}")
        destination.rename(retired)
        staging.rename(destination)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(destination)


def write_json(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, non-finite floats as strings) to `path` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(_finite(data), handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings so every reader can parse the file."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
