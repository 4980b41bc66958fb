"""The few exception classes dtlgen raises for bad input.

Every message names the offending input (file, field, layer, option) and says how to fix it.
The CLI turns any `DtlgenError` into one line on stderr and exit status 1; anything else is a bug.
`brief` and `reason` quote a user's value or exception inside such a line: one line, cut short.
"""

from __future__ import annotations

from typing import Any


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


class DtlgenWarning(UserWarning):
    """Something about the user's input that does not stop the command but is probably not what was
    meant; the CLI prints it as one line, `dtlgen COMMAND: warning: ...`, naming the input and the flag."""


def require_int(value: object, field: str, lo: int, hi: int | None = None, meaning: str = "") -> None:
    """Raise DesignError unless `value` is an int (not a bool) in lo..hi (hi None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f"≥ {lo}"
        raise DesignError(f"design {field}={brief(value, 40)}: {meaning + '; ' if meaning else ''}use an integer {span}")


REASON_CHARS = 300


def brief(value: Any, limit: int = 80) -> str:
    """`repr(value)` on one line and at most `limit` characters."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a user's broken __repr__ must not turn a message into a traceback
        text = f"<{type(value).__name__}>"
    return _shorten(" ".join(text.split()), limit)


def reason(exc: BaseException) -> str:
    """An exception as `Type: first line of its message`, shortened."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails still gets reported, by its type
        message = ""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = _shorten(lines[0], REASON_CHARS) if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
