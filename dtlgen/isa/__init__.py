"""The engines' instruction sets, defined once: descriptor fields and widths, op and activation codes,
descriptor sizes and the engine limits that the fields imply (`fe.py`, `rl.py`), the engines' build
parameters (`params.py`) and their memory port (`port.py`).

The program generators encode with these tables, the project loader decodes with them, the
analytical model and the design validation read their limits from here. Nothing here depends on any
other dtlgen package (numpy only), so every package may import it.

The engines' sources are rendered from these tables where they restate them (`render.py`, run by
`python -m dtlgen.isa`): the descriptor decoders and constants of `fe_engine.sv`, `rl_engine.sv`,
`dtl_fe_engine.cpp` and `dtl_rl_engine.cpp`, and every declaration of the memory port; a test fails
while a rendered region differs from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

ACTIVATION_CODES = {None: 0, "relu": 1, "relu6": 2}  # both engines: none, ReLU, ReLU6


@dataclass(frozen=True)
class Field:
    """One descriptor field: `width` bits from bit `lsb` of 32-bit little-endian word `word`."""

    name: str
    word: int
    lsb: int
    width: int
    signed: bool = False

    @property
    def max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0


def encode_words(fields: tuple[Field, ...], values: Mapping[str, int], n_words: int, where: str) -> np.ndarray:
    """The words of a descriptor; a value that does not fit its field is a bug upstream (ValueError)."""
    unknown = set(values) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"{where}: no descriptor field {sorted(unknown)}")
    words = [0] * n_words
    for f in fields:
        value = int(values.get(f.name, 0))
        if not f.min <= value <= f.max:
            raise ValueError(f"{where}: field {f.name}={value} does not fit its {f.width} bits")
        words[f.word] |= (value & ((1 << f.width) - 1)) << f.lsb
    return np.array(words, dtype="<u4")


def decode_words(fields: tuple[Field, ...], words: Any) -> dict[str, int]:
    """Field values of a descriptor's 32-bit words (signed fields sign-extended)."""
    out = {}
    for f in fields:
        raw = (int(words[f.word]) >> f.lsb) & ((1 << f.width) - 1)
        out[f.name] = raw - (1 << f.width) if f.signed and raw >> (f.width - 1) else raw
    return out
