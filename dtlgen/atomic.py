"""Safe output: a command's folder appears completely or not at all, and dtlgen never deletes or
overwrites a file it did not write.

Every output folder (a project, a DSE result, a demo) is written into a hidden temporary sibling
and moved into place at the end, with a manifest (`MANIFEST`) that lists every file dtlgen wrote
and its SHA-256. An existing folder is replaced only when it is dtlgen's own output of the same
kind and holds nothing but the files its manifest lists; a file the manifest does not list (the
user's own) always stops the command before any work starts, and a listed file that changed since
dtlgen wrote it stops it unless the user passes `--force`. Commands that add files to a project
(`sim`, `csim`, `bitstream`) record them in its manifest.

This module must not know what goes into a folder; the commands decide that.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from dtlgen.errors import DtlgenError

MANIFEST = ".dtlgen-manifest.json"
_FORMAT = "dtlgen-output/1"


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    """Every entry below `root` that is not a directory (files, symlinks, sockets...), never following links."""
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            yield Path(folder) / name


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a dtlgen output folder, or None if `root` holds none (or a malformed one)."""
    path = Path(root) / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes()[:16 << 20])
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("kind"), str) \
            or not isinstance(data.get("files"), dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in data["files"].items()):
        return None
    return data


def _write_manifest(root: Path, kind: str, files: dict[str, str]) -> None:
    from dtlgen._version import __version__

    write_json(root / MANIFEST, {"format": _FORMAT, "kind": kind, "dtlgen": __version__,
                                 "note": "files dtlgen wrote here and their SHA-256; dtlgen replaces this folder "
                                         "only while it holds nothing else", "files": files})


def check_destination(destination: Path, kind: str, force: bool = False, option: str = "--out") -> Path:
    """Refuse, before any work starts, an output path that dtlgen may not replace; return it resolved.

    Allowed: a path that does not exist, an empty directory, or dtlgen's own `kind` output that holds
    only the files its manifest lists, unchanged (changed ones too with `force`).
    """
    destination = Path(os.path.abspath(destination))  # normalised: --out PRJ/sim/.. is PRJ
    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        raise DtlgenError(f"{option} '{destination}' exists and is not a directory; choose a new directory")
    ancestor = next(p for p in destination.parents if p.exists())
    if not writable(ancestor if not destination.exists() else destination.parent):
        raise DtlgenError(f"{option} '{destination}' cannot be written: '{ancestor}' is not a writable directory; "
                          "choose a writable place")
    if not destination.exists():
        return destination
    try:
        entries = list(_walk(destination))
        has_dirs = any(destination.iterdir())
    except OSError as exc:
        raise DtlgenError(f"{option} '{destination}' cannot be read ({exc.strerror}); choose another directory") from None
    if not entries and not has_dirs:
        return destination
    manifest = read_manifest(destination)
    if manifest is None:
        raise DtlgenError(f"{option} '{destination}' is not empty and was not written by dtlgen (no {MANIFEST}); "
                          "dtlgen never deletes what it did not write: choose a new or empty directory")
    if manifest["kind"] != kind:
        raise DtlgenError(f"{option} '{destination}' holds a dtlgen {manifest['kind']} output, not a {kind}; "
                          "choose another directory")
    listed = manifest["files"]
    foreign, changed = [], []
    for path in entries:
        rel = path.relative_to(destination).as_posix()
        if rel == MANIFEST:
            continue
        if rel not in listed or path.is_symlink() or not path.is_file():
            foreign.append(rel)
        elif not force and _hash(path) != listed[rel]:
            changed.append(rel)
    if foreign:
        shown = ", ".join(sorted(foreign)[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DtlgenError(f"{option} '{destination}' holds files dtlgen did not write ({shown}); dtlgen never deletes "
                          "them: move them out or choose another directory")
    if changed:
        shown = ", ".join(sorted(changed)[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise DtlgenError(f"{option} '{destination}': {shown} changed since dtlgen wrote it; pass --force to replace "
                          "the folder anyway, or choose another directory")
    return destination


def check_writable(folder: Path, what: str) -> None:
    """Refuse, before the work starts, a folder a command will write its results into but cannot."""
    if not writable(folder):
        raise DtlgenError(f"{what} '{folder}' is not writable; this command writes its results there: make it "
                          "writable or work on a copy of the project")


def writable(folder: Path) -> bool:
    """Whether a folder can be created in `folder` (tried, not guessed from permission bits: root
    passes every permission check and still cannot write to /proc or a read-only mount)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".dtlgen-probe-", dir=folder))
        return True
    except OSError:
        return False


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while two renames swap folders, so an interrupt cannot fall between them."""
    held = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (ValueError, OSError):  # not the main thread: nothing to hold
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def atomic_directory(destination: Path, kind: str, force: bool = False, option: str = "--out") -> Iterator[Path]:
    """Yield an empty temporary directory; on success it gets a manifest and replaces `destination`.

    On any exception (an interrupt included) the temporary directory is removed and `destination`
    is left as it was. `check_destination` runs again at the end: a file that appeared in
    `destination` while the command ran stops the swap rather than being deleted.
    """
    destination = check_destination(destination, kind, force, option)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.dtlgen-", dir=destination.parent))
    except OSError as exc:
        raise DtlgenError(f"{option} '{destination}' cannot be written ({exc.strerror}); choose a writable "
                          "directory") from None
    try:
        yield staging
        _write_manifest(staging, kind, {p.relative_to(staging).as_posix(): _hash(p)
                                        for p in sorted(_walk(staging)) if p.is_file() and not p.is_symlink()})
        check_destination(destination, kind, force, option)
        with _signals_held():
            if destination.exists():
                retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old-", dir=destination.parent))
                os.rename(destination, retired / "d")
                os.rename(staging, destination)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # A project regenerated inside a demo folder: the demo's manifest follows.
    for parent in list(destination.parents)[:3]:
        outer = read_manifest(parent)
        if outer is not None and (destination / MANIFEST).relative_to(parent).as_posix() in outer["files"]:
            record_files(parent, [destination])
            break


def check_owned(root: Path, paths: Iterable[Path]) -> None:
    """Refuse, before the work starts, a command that would overwrite something in output folder `root`
    that dtlgen did not write: each of `paths` that exists must be a regular file, or a real folder of
    regular files, listed in root's manifest (a symlink never is)."""
    root = Path(os.path.abspath(root))
    manifest = read_manifest(root)
    listed = manifest["files"] if manifest is not None else {}
    for path in paths:
        path = Path(os.path.abspath(path))
        if not path.exists() and not path.is_symlink():
            continue
        entries = [path] if path.is_symlink() or not path.is_dir() else list(_walk(path))
        foreign = [e for e in entries
                   if e.is_symlink() or not e.is_file() or e.relative_to(root).as_posix() not in listed]
        if foreign:
            shown = foreign[0].relative_to(root).as_posix()
            raise DtlgenError(f"'{root}' holds {shown}, which dtlgen did not write (it is not in the folder's "
                              f"{MANIFEST}); this command would overwrite it: move it out of the project")


def publish(root: Path, target: Path, source: Path) -> None:
    """Put `source` (a folder or file the command wrote outside the project) at `target` inside output
    folder `root`, replacing what dtlgen wrote there before, and record it in the manifest.

    `check_owned(root, [target])` must have passed before the work started; it is checked again here.
    The copy is staged beside `target` and swapped in with two renames, so `target` is whole or absent."""
    root, target = Path(os.path.abspath(root)), Path(os.path.abspath(target))
    check_owned(root, [target])
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.dtlgen-", dir=target.parent))
    try:
        if Path(source).is_dir():
            shutil.copytree(source, staging / "x", symlinks=True)
        else:
            shutil.copyfile(source, staging / "x")
        with _signals_held():
            if target.exists() or target.is_symlink():
                os.rename(target, staging / "old")
            os.rename(staging / "x", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record_files(root, [target])


def record_files(root: Path, paths: Iterable[Path]) -> None:
    """Add files dtlgen just wrote inside output folder `root` (folders: every file in them) to its
    manifest. A folder without a manifest is left alone."""
    root = Path(os.path.abspath(root))
    manifest = read_manifest(root)
    if manifest is None:
        return
    files = dict(manifest["files"])
    paths = [Path(os.path.abspath(p)) for p in paths]
    for path in paths:
        candidates = _walk(path) if path.is_dir() and not path.is_symlink() else [path]
        for item in candidates:
            if item.is_symlink() or not item.is_file():
                continue
            files[item.relative_to(root).as_posix()] = _hash(item)
    _write_manifest(root, manifest["kind"], files)
    # A project inside a demo folder: the demo's manifest lists the project's files too.
    for parent in list(root.parents)[:3]:
        outer = read_manifest(parent)
        if outer is not None and (root / MANIFEST).relative_to(parent).as_posix() in outer["files"]:
            record_files(parent, [*paths, root / MANIFEST])
            break


def write_text(path: Path, text: str | bytes) -> None:
    """Write a file atomically (a temporary sibling, then os.replace: never through a symlink)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise DtlgenError(f"cannot write '{path}' ({exc.strerror or exc}); check the folder's permissions and free "
                          "space") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DtlgenError(f"cannot write '{path}' ({exc.strerror or exc}); check the path, the folder's permissions "
                          "and free space") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_new(path: Path, data: bytes, what: str) -> Path:
    """Write a new file the user named, atomically, never over an existing one (whoever wrote it):
    a temporary sibling, then a hard link to `path` that fails if it exists. Returns the path."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise DtlgenError(f"'{path}' exists; dtlgen does not overwrite it: give a new file name for {what}")
    if not path.parent.is_dir():
        raise DtlgenError(f"cannot write {what} to '{path}': folder '{path.parent}' does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise DtlgenError(f"cannot write '{path}' ({exc.strerror or exc}); check the folder's permissions") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.link(tmp, path)
    except FileExistsError:
        raise DtlgenError(f"'{path}' exists; dtlgen does not overwrite it: give a new file name for {what}") from None
    except OSError as exc:
        raise DtlgenError(f"cannot write '{path}' ({exc.strerror or exc}); check the path, the folder's permissions "
                          "and free space") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_json(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, non-finite floats as strings) to `path` atomically."""
    write_text(path, json.dumps(_finite(data), indent=2, sort_keys=True) + "\n")


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings so every reader can parse the file."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
