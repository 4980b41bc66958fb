"""The Design (`design.json`): tiling and precision of both engines, chosen by the DSE.

DESIGN.md §3 is the contract. `from_dict` checks every field and raises `DesignError` naming the
file and the field; the generator and the simulator trust a Design that loaded. A design written
by the DSE embeds the full record of the board it was made for (`board_spec`) and its SHA-256, and
the model and network structure (`model`, `network`: `dtlgen.perf.validate.network_fingerprint`),
so that a custom board travels with the design and a changed board or model is refused.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtlgen.boards import Board, is_board_name, load_board
from dtlgen.errors import BoardError, DesignError, brief
from dtlgen.perf.fe import FEConfig
from dtlgen.perf.rl import RLConfig

_FE_FIELDS = ("tm", "tn", "tr", "tc", "w_bits", "a_bits")
_RL_FIELDS = ("tm", "tn", "bits")
_TOP_FIELDS = {"board", "clock_mhz", "fe", "rl", "split", "per_layer", "overrides", "predicted", "board_spec", "board_sha256",
               "model", "network", "calibration"}
CLOCK_RANGE_MHZ = (1.0, 1000.0)  # no FPGA engine runs outside this; the board files use the same range
_MAX_DESIGN_BYTES = 16 << 20


@dataclass(frozen=True)
class Design:
    board: str
    clock_mhz: float
    fe: FEConfig
    rl: RLConfig
    split: str | None = None  # first retrainable layer; None keeps the model's own split
    per_layer: dict[str, Any] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)
    board_spec: dict[str, Any] | None = None  # the board's full record (Board.to_dict), as the DSE saw it
    model: str | None = None  # the network the design was made for, and its structure's fingerprint
    network: str | None = None
    # per-layer fractional bits that replace the calibrated ones: {layer: {"w_frac": F, "a_frac": F}}
    overrides: dict[str, Any] = field(default_factory=dict)
    # the calibration file the quantisation came from (--calib), {"path": P, "sha256": H}; None: built-in inputs
    calibration: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"board": self.board, "clock_mhz": self.clock_mhz, "fe": self.fe.to_dict(), "rl": self.rl.to_dict(),
                "split": self.split, "per_layer": self.per_layer, "predicted": self.predicted}
        if self.board_spec is not None:
            data.update(board_spec=self.board_spec, board_sha256=Board.from_dict(self.board_spec).digest())
        if self.model is not None:
            data.update(model=self.model, network=self.network)
        if self.overrides:
            data["overrides"] = self.overrides
        if self.calibration is not None:
            data["calibration"] = self.calibration
        return data

    def board_record(self, board_arg: str | None = None, source: str = "the design") -> Board:
        """The board this design is for: its embedded record, else the shipped board of its name.
        `board_arg` (a --board option) must be that same board, by content, not only by name."""
        if self.board_spec is not None:
            board = Board.from_dict(self.board_spec, f"{source}: board_spec")
        else:
            board = load_board(board_arg if board_arg is not None else self.board)
        if board_arg is not None:
            given = load_board(board_arg)
            if given.to_dict() != board.to_dict():
                raise DesignError(f"--board {board_arg} is not the board {source} was made for ('{board.name}'"
                                  f"{', with other contents' if given.name == board.name else ''}); drop --board or "
                                  "run the DSE for that board")
        if board.name != self.board:
            raise DesignError(f"{source}: board '{self.board}' and board_spec '{board.name}' disagree; re-run the DSE")
        return board

    @classmethod
    def from_dict(cls, data: Any, source: str = "design") -> "Design":
        if not isinstance(data, dict):
            raise DesignError(f"{source}: expected a JSON object with board, clock_mhz, fe and rl")
        for key in ("board", "clock_mhz", "fe", "rl"):
            if key not in data:
                raise DesignError(f"{source}: field '{key}' is missing; a design holds board, clock_mhz, fe and rl "
                                  "(docs/cli.md, 'Design file'): write one with 'dtlgen dse'")
        clock = data["clock_mhz"]
        lo, hi = CLOCK_RANGE_MHZ
        if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not math.isfinite(clock) \
                or not lo <= clock <= hi:
            raise DesignError(f"{source}: field 'clock_mhz'={brief(clock)} must be a number of MHz from {lo:g} to {hi:g}")
        if not is_board_name(data["board"]):
            raise DesignError(f"{source}: field 'board'={brief(data['board'])} must be a board name (lower-case "
                              "letters, digits, '_', '.', '-'); a board file of your own goes to 'dtlgen dse --board "
                              "my.yaml', whose design.json then carries it")
        unknown = sorted(set(data) - _TOP_FIELDS)
        if unknown:
            raise DesignError(f"{source}: field '{unknown[0]}' is not a design field; remove it or fix its spelling "
                              f"(known: {', '.join(sorted(_TOP_FIELDS))})")
        for name, cfg in (("fe", FEConfig), ("rl", RLConfig)):
            section = data[name]
            extra = sorted(set(section) - set(cfg.__dataclass_fields__) - ({"dsp_packing"} if name == "fe" else set())
                           ) if isinstance(section, dict) else []
            if extra:
                raise DesignError(f"{source}: field '{name}.{extra[0]}' is not a {name.upper()} engine field; remove "
                                  f"it or fix its spelling (known: {', '.join(cfg.__dataclass_fields__)})")
        packing = data["fe"].get("dsp_packing", 1) if isinstance(data["fe"], dict) else 1
        if packing != 1:
            raise DesignError(f"{source}: field 'fe.dsp_packing'={brief(packing)}: the packing follows from the board "
                              "and the bit widths (two products per Xilinx DSP48 where they fit); leave it out or set "
                              "it to 1")
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
        for key in ("per_layer", "predicted", "overrides"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise DesignError(f"{source}: field '{key}' must be an object (or left out)")
        spec = data.get("board_spec")
        if spec is not None:
            try:
                board = Board.from_dict(spec, f"{source}: board_spec")
            except BoardError as exc:
                raise DesignError(str(exc)) from None
            if data.get("board_sha256") != board.digest():
                raise DesignError(f"{source}: the board record (board_spec) changed since the DSE wrote it (its SHA-256 "
                                  "is not board_sha256); restore it or re-run 'dtlgen dse' for the board you want")
            spec = board.to_dict()
        for key in ("model", "network"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise DesignError(f"{source}: field '{key}' must be a string")
        calibration = data.get("calibration")
        if calibration is not None and not _calibration_record(calibration):
            raise DesignError(f"{source}: field 'calibration'={brief(calibration)} must be {{\"path\": FILE, \"sha256\": "
                              "64 hex digits} (the --calib file the design was made with) or left out")
        return cls(data["board"], float(clock), fe_cfg, rl_cfg, split,
                   dict(data.get("per_layer") or {}), dict(data.get("predicted") or {}), spec,
                   data.get("model"), data.get("network"), dict(data.get("overrides") or {}),
                   dict(calibration) if calibration is not None else None)


def _calibration_record(value: Any) -> bool:
    """A design's record of its calibration file: a path (information, never opened) and its SHA-256."""
    import re

    return (isinstance(value, dict) and set(value) == {"path", "sha256"} and isinstance(value["path"], str)
            and 0 < len(value["path"]) <= 4096 and value["path"].isprintable()
            and isinstance(value["sha256"], str) and re.fullmatch("[0-9a-f]{64}", value["sha256"]) is not None)


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
    if path.is_dir():
        raise DesignError(f"design file '{path}' is a directory; pass the design.json inside it (e.g. {path / 'design.json'})")
    if not path.is_file():
        raise DesignError(f"design file '{path}' does not exist; create one with 'dtlgen dse' or write it by hand")
    if os.path.getsize(path) > _MAX_DESIGN_BYTES:
        raise DesignError(f"design file '{path}' is larger than {_MAX_DESIGN_BYTES >> 20} MB; it is not a design.json")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSON and UTF-8 errors, absurd numbers, absurd nesting
        raise DesignError(f"design file '{path}' is not valid JSON ({exc})") from None
    except OSError as exc:
        raise DesignError(f"design file '{path}' cannot be read ({exc})") from None
    return Design.from_dict(data, f"design file '{path}'")
