"""Colour on a terminal only: never with NO_COLOR set, off a terminal, or on a dumb one.

Why ANSI codes here rather than rich: the lint output of `validate` is latency-sensitive (its
start must not import rich), and a few fixed styles need nothing more. rich's own tables
follow the same rule by themselves (rich honours NO_COLOR and checks for a terminal).
"""

from __future__ import annotations

from typing import Any

#: The styles pgshift uses, as SGR codes.
_CODES = {
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "bold": "1",
    "dim": "2",
    "bold red": "1;31",
    "bold yellow": "1;33",
    "bold cyan": "1;36",
}


def wanted(stream: Any) -> bool:
    """Whether text written to ``stream`` may be coloured: a terminal, NO_COLOR unset or empty
    (https://no-color.org), and TERM not ``dumb``."""
    from pgshift.config import colour_refused

    if colour_refused():
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def paint(text: str, style: str, stream: Any) -> str:
    """``text`` in ``style`` (a name of _CODES) when ``stream`` takes colour, else as it is."""
    code = _CODES.get(style)
    if not code or not text or not wanted(stream):
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


#: The style of each lint severity and each migration state.
SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "note": "bold cyan"}
STATE_STYLE = {
    "applied": "green",
    "expanded": "cyan",
    "pending": "yellow",
    "out-of-order": "yellow",
    "failed": "red",
    "drifted": "red",
    "missing": "magenta",
}
