"""The RTL sources the generator ships and the parameters a simulation build is compiled with."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

RTL_SOURCES = ("dtl_ram.sv", "fe_engine.sv", "dram_model.sv", "fe_tb_top.sv")
TOP = "fe_tb_top"


def rtl_dir() -> Path:
    return Path(str(files("dtlgen.hw_templates").joinpath("rtl")))


@dataclass(frozen=True)
class FESimParams:
    """Parameters of one FE simulation build (everything the RTL is compiled with)."""

    tm: int
    tn: int
    tr: int
    tc: int
    bus_bytes: int
    latency: int
    drain: int
    memory_bytes: int = 1 << 20
    a_bits: int = 8
    w_bits: int = 8
    m_max: int = 1024
    stall_period: int = 0
    stall_seed: int = 1

    def hdl_parameters(self) -> dict[str, object]:
        return {"TM": self.tm, "TN": self.tn, "TR": self.tr, "TC": self.tc, "A_BITS": self.a_bits,
                "W_BITS": self.w_bits, "BUS_BYTES": self.bus_bytes, "M_MAX": self.m_max, "DRAIN": self.drain,
                "LATENCY": self.latency, "SIZE_BYTES": self.memory_bytes, "STALL_PERIOD": self.stall_period,
                "STALL_SEED": self.stall_seed, "INIT_FILE": '"dram_init.hex"', "DUMP_FILE": '"dram_dump.hex"',
                "PERF_FILE": '"perf_dump.hex"'}


def write_hex(path: Path, data: np.ndarray) -> None:
    """A $readmemh file of bytes, one per line (vectorised: images are megabytes)."""
    digits = np.frombuffer(np.ascontiguousarray(data, dtype=np.uint8).tobytes().hex().encode(), dtype="S1")
    lines = np.concatenate([digits.reshape(-1, 2), np.full((len(data), 1), b"\n", dtype="S1")], axis=1)
    path.write_bytes(lines.tobytes())
