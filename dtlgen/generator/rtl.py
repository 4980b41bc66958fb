"""The RTL sources the generator ships (their build parameters: `dtlgen.isa.params`) and memory images."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np

RTL_SOURCES = ("dtl_ram.sv", "fe_engine.sv", "dram_model.sv", "fe_tb_top.sv")
TOP = "fe_tb_top"


def rtl_dir() -> Path:
    return Path(str(files("dtlgen.hw_templates").joinpath("rtl")))


def write_hex(path: Path, data: np.ndarray) -> None:
    """A $readmemh file of bytes, one per line (vectorised: images are megabytes)."""
    digits = np.frombuffer(np.ascontiguousarray(data, dtype=np.uint8).tobytes().hex().encode(), dtype="S1")
    lines = np.concatenate([digits.reshape(-1, 2), np.full((len(data), 1), b"\n", dtype="S1")], axis=1)
    path.write_bytes(lines.tobytes())
