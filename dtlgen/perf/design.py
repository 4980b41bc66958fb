"""The Design (`design.json`): tiling and precision of both engines, chosen by the DSE.

DESIGN.md §3 is the contract. `from_dict` checks every field and raises `DesignError` naming the
file and the field; the generator and the simulator trust a Design that loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtlgen.errors import DesignError
from dtlgen.perf.fe import FEConfig
from dtlgen.perf.rl import RLConfig

_FE_FIELDS = ("tm", "tn", "tr", "tc", "w_bits", "a_bits")
_RL_FIELDS = ("tm", "tn", "bits")


@dataclass(frozen=True)
class Design:
    board: str
    clock_mhz: float
    fe: FEConfig
    rl: RLConfig
    split: str | None = None  # first retrainable layer; None keeps the model's own split
    per_layer: dict[str, Any] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board, "clock_mhz": self.clock_mhz, "fe": self.fe.to_dict(), "rl": self.rl.to_dict(),
                "split": self.split, "per_layer": self.per_layer, "predicted": self.predicted}

    @classmethod
    def from_dict(cls, data: Any, source: str = "design") -> "Design":
        if not isinstance(data, dict):
            raise DesignError(f"{source}: expected a JSON object with board, clock_mhz, fe and rl")
        for key in ("board", "clock_mhz", "fe", "rl"):
            if key not in data:
                raise DesignError(f"{source}: field '{key}' is missing; see DESIGN.md §3 for the design format")
        clock = data["clock_mhz"]
        if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not math.isfinite(clock) or clock <= 0:
            raise DesignError(f"{source}: field 'clock_mhz'={clock!r} must be a positive number of MHz")
        fe = _section(data, "fe", _FE_FIELDS, source)
        rl = _section(data, "rl", _RL_FIELDS, source)
        try:
            fe_cfg = FEConfig(**{k: fe[k] for k in FEConfig.__dataclass_fields__ if k in fe})
            rl_cfg = RLConfig(**{k: rl[k] for k in RLConfig.__dataclass_fields__ if k in rl})
        except DesignError as exc:
            raise DesignError(f"{source}: {exc}") from None
        split = data.get("split")
        if split is not None and not isinstance(split, str):
            raise DesignError(f"{source}: field 'split'={split!r} must be a layer name or null")
        return cls(str(data["board"]), float(clock), fe_cfg, rl_cfg, split,
                   dict(data.get("per_layer") or {}), dict(data.get("predicted") or {}))


def _section(data: dict[str, Any], name: str, required: tuple[str, ...], source: str) -> dict[str, Any]:
    section = data[name]
    if not isinstance(section, dict):
        raise DesignError(f"{source}: field '{name}' must be an object")
    for key in required:
        if key not in section:
            raise DesignError(f"{source}: field '{name}.{key}' is missing")
    return section


def load_design(path: str | Path) -> Design:
    path = Path(path)
    if not path.is_file():
        raise DesignError(f"design file '{path}' does not exist; create one with 'dtlgen dse' or write it by hand")
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DesignError(f"design file '{path}' is not valid JSON ({exc})") from None
    except OSError as exc:
        raise DesignError(f"design file '{path}' cannot be read ({exc})") from None
    return Design.from_dict(data, f"design file '{path}'")
