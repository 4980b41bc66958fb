"""Quoting user values and exceptions inside one-line error messages.

A `DtlgenError` becomes one stderr line, so whatever a user's value or exception says (a long
repr, a multi-line torch message) is cut to one short line here; nothing else lives here.
"""

from __future__ import annotations

from typing import Any

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
