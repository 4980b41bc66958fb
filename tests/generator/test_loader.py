"""The project loader's NPZ files (dtlgen.generator.loader.read_npz): one reader of NPZ files without
pickle for the whole package (dtlgen.model.data.read_arrays), with the loader's own bound (what a
project holds) and its own wording and fix ("regenerate the project")."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from dtlgen.errors import DesignError
from dtlgen.generator import loader
from dtlgen.model import data


def test_a_project_npz_is_read_with_the_loaders_bound_and_words(tmp_path, monkeypatch):
    path = tmp_path / "expected.npz"
    np.savez(path, memory=np.arange(64, dtype=np.uint8))
    assert np.array_equal(loader.read_npz(path, "the memory image")["memory"], np.arange(64))
    monkeypatch.setattr(loader, "MAX_NPZ_BYTES", 100)  # the bound is the loader's, not the user data's 4 GiB
    with pytest.raises(DesignError, match=r"unpacks to .* bytes, more than any project holds; regenerate"):
        loader.read_npz(path, "the memory image")
    monkeypatch.undo()
    with pytest.raises(DesignError, match=r"is missing \(the memory image\); regenerate the project"):
        loader.read_npz(tmp_path / "absent.npz", "the memory image")
    with pytest.raises(DesignError, match=r"is not a file \(the memory image\); regenerate the project"):
        loader.read_npz(tmp_path, "the memory image")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(DesignError, match=r"is not a valid NPZ file of the memory image \(.*\); regenerate"):
        loader.read_npz(tmp_path / "junk.npz", "the memory image")
    np.savez(tmp_path / "objects.npz", memory=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DesignError, match="is not a valid NPZ file of the memory image"):
        loader.read_npz(tmp_path / "objects.npz", "the memory image")


def test_a_zip_bomb_is_refused_before_numpy_unpacks_it(tmp_path):
    # 64 MiB of zeros compress to 64 KiB: the declared size, not the file's, is what the bound holds
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", b"\0" * (64 << 20))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(DesignError, match=r"--data .* unpacks to 67,108,864 bytes, more than 0.03125 GiB"):
        data.read_arrays(path, "--data", max_bytes=32 << 20)
