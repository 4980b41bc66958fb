"""A user's data for dtlgen: float input batches and class labels, checked, and the NPZ files that hold them.

The API (`dtlgen.api`) and the CLI's `--calib` / `--data` options take the same data: inputs as a
float array (N, C, H, W) of finite values, labels as N integers from 0 to classes - 1. An NPZ file
(`numpy.savez(PATH, x=..., y=...)`) holds them as arrays `x` and `y`; it is read without pickle and
every problem is one DtlgenError naming the file and the fix.
"""

from __future__ import annotations

import lzma
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dtlgen.errors import DesignError

MAX_DATA_BYTES = 1 << 32  # what an NPZ file may unpack to (4 GiB): a bound against zip bombs
NPZ_FIX = "save it with numpy.savez(PATH, x=inputs, y=labels): x float (N, C, H, W), y N integer class labels"


def check_batch(x: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A float batch (N, *shape) of finite values (one sample of `shape` becomes a batch of one)."""
    try:
        kind = np.asarray(x).dtype.kind
        with np.errstate(over="ignore", invalid="ignore"):  # a value beyond float64 becomes inf, refused below
            array = np.asarray(x, dtype=np.float64) if kind in "fiub" else None
    except (TypeError, ValueError):
        array = None
    if array is None:  # strings, objects, complex numbers, dates: not an input batch
        raise DesignError(f"{what} must be a real numeric array of shape (N, {', '.join(map(str, shape))})")
    if array.shape == shape:
        array = array[None]
    if array.ndim != len(shape) + 1 or array.shape[1:] != shape or len(array) < 1:
        raise DesignError(f"{what} has shape {array.shape}; the network takes (N, {', '.join(map(str, shape))})")
    if not np.all(np.isfinite(array)):
        raise DesignError(f"{what} holds NaN or infinite values; give finite inputs")
    return array


def check_labels(y: Any, count: int, classes: int, what: str = "y") -> np.ndarray:
    """`count` integer class labels from 0 to classes - 1."""
    labels = np.asarray(y)
    if labels.shape != (count,) or labels.dtype.kind not in "iu" or (
            labels.size and (labels.min() < 0 or labels.max() >= classes)):
        raise DesignError(f"{what} must be {count} integer class labels from 0 to {classes - 1}")
    return labels.astype(np.int64)


@dataclass(frozen=True)
class NpzWording:
    """The messages `read_arrays` gives, as format strings of `what`, `path`, `fix`, and `declared` and
    `limit` (bytes) or `first` (the reader's complaint) where they apply: a caller whose files are not
    a user's data (a project's, `dtlgen.generator.loader`) keeps its own wording and fix."""

    missing: str = "{what} {path}: no such file; {fix}"
    not_file: str = "{what} {path} is not a file (a folder?); give the path of the NPZ file itself; {fix}"
    too_big: str = "{what} {path} unpacks to {declared:,} bytes, more than {limit_gib} GiB; give a smaller file"
    broken: str = "{what} {path} is not an NPZ file numpy reads without pickle ({first}); {fix}"
    no_memory: str = "{what} {path} declares arrays larger than memory; give a smaller file"


def read_arrays(path: str | Path, what: str, fix: str = NPZ_FIX, *, max_bytes: int = MAX_DATA_BYTES,
                wording: NpzWording = NpzWording()) -> dict[str, np.ndarray]:
    """Every array of an NPZ file, read without pickle; one DesignError naming the file, `what` it
    should be and `fix` (in `wording`), for a missing, broken or oversized file (more than `max_bytes`
    unpacked: a bound against zip bombs) or a path that is not a file."""
    path = Path(path)
    words = {"what": what, "path": path, "fix": fix, "limit": max_bytes, "limit_gib": f"{max_bytes / (1 << 30):g}"}
    if not path.is_file():
        raise DesignError((wording.not_file if path.exists() else wording.missing).format(**words))
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
        if declared > max_bytes:
            raise DesignError(wording.too_big.format(declared=declared, **words))
        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in data.files}
    except DesignError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError,
            NotImplementedError, RuntimeError, tokenize.TokenError, SyntaxError) as exc:  # (broken members, odd zips)
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise DesignError(wording.broken.format(first=first, **words)) from None
    except MemoryError:
        raise DesignError(wording.no_memory.format(**words)) from None


def file_record(path: str | Path) -> dict[str, str]:
    """What a design.json records of the data file a design was made with: its absolute path and SHA-256."""
    import hashlib

    path = Path(path)
    with open(path, "rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return {"path": str(path.resolve()), "sha256": digest}


def output_classes(network: Any) -> int:
    """The classes a network's labels index: the values of its last layer's output."""
    return int(np.prod(network.layers[-1].out_shape))


def array_names(option: str, path: str | Path) -> tuple[str, str]:
    """How messages name the arrays x and y of a file given with `option` (e.g. "--data")."""
    return f"x of {option} {path}", f"y of {option} {path}"


def load_data(path: str | Path, labels: bool, option: str, shape: tuple[int, ...] | None = None,
              classes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The arrays `x` (and `y` when `labels`) of an NPZ file; `option` names where the file was given
    (e.g. "--data"). With `shape`, x is checked as a batch of it (`check_batch`), with `classes` y as
    class labels (`check_labels`); every message names the file."""
    arrays = read_arrays(path, option)
    wanted = ("x", "y") if labels else ("x",)
    missing = [key for key in wanted if key not in arrays]
    if missing:
        raise DesignError(f"{option} {path} has no array {' or '.join(repr(k) for k in missing)} (it holds "
                          f"{', '.join(repr(n) for n in list(arrays)[:6]) or 'nothing'}); {NPZ_FIX}")
    x, y = arrays["x"], arrays.get("y") if labels else None
    x_name, y_name = array_names(option, path)
    if shape is not None:
        x = check_batch(x, tuple(shape), x_name)
    if y is not None and classes is not None:
        y = check_labels(y, len(x), classes, y_name)
    return x, y
