"""The few exception classes dtlgen raises for bad input.

Every message names the offending input (file, field, layer, option) and says how to fix it.
The CLI turns any `DtlgenError` into one line on stderr and exit status 1; anything else is a bug.
"""


class DtlgenError(Exception):
    """Base class: a user error with a message that names the input and the fix."""


class UnsupportedLayerError(DtlgenError):
    """A model contains an op that the Network IR (or the engine asked to run it) cannot map."""


class ModelSpecError(DtlgenError):
    """A MODEL argument (zoo name or `file.py:factory`) or a split cannot be resolved."""


class BoardError(DtlgenError):
    """A board name is unknown or a board file is malformed or incomplete."""


class DesignError(DtlgenError):
    """A design (tiling, precision) is invalid for the network or board."""


class ToolMissingError(DtlgenError):
    """An external tool (simulator, compiler, synthesis) that a step needs is not installed."""


def require_int(value: object, field: str, lo: int, hi: int | None = None, meaning: str = "") -> None:
    """Raise DesignError unless `value` is an int (not a bool) in lo..hi (hi None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f"≥ {lo}"
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise DesignError(f"design {field}={shown}: {meaning + '; ' if meaning else ''}use an integer {span}")
