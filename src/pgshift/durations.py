"""Human durations ("30 seconds", "1h", "500ms") in milliseconds, for headers and settings."""

from __future__ import annotations

_UNITS_MS: dict[str, float] = {}
for _names, _ms in (
    (("ms", "msec", "msecs", "millisecond", "milliseconds"), 1),
    (("s", "sec", "secs", "second", "seconds"), 1000),
    (("m", "min", "mins", "minute", "minutes"), 60_000),
    (("h", "hr", "hrs", "hour", "hours"), 3_600_000),
    (("d", "day", "days"), 86_400_000),
):
    for _name in _names:
        _UNITS_MS[_name] = _ms


def parse_duration_ms(text: str, *, default_unit: str = "ms") -> int:
    """Parse ``text`` into milliseconds; a bare number uses ``default_unit``.

    Raises ValueError with a message a user can act on, so callers only add the location.
    """
    raw = text.strip().lower()
    if not raw:
        raise ValueError("empty duration")
    i = 0
    while i < len(raw) and (raw[i].isdigit() or raw[i] == "."):
        i += 1
    number, unit = raw[:i], raw[i:].strip() or default_unit
    try:
        value = float(number)
    except ValueError:
        raise ValueError(
            f"{text.strip()!r} is not a duration (examples: 500ms, 30 seconds, 2 minutes, 1h)"
        ) from None
    if unit not in _UNITS_MS:
        raise ValueError(f"unknown unit {unit!r} in duration {text.strip()!r} (use ms, s, min, h)")
    if value < 0:
        raise ValueError(f"negative duration {text.strip()!r}")
    return round(value * _UNITS_MS[unit])


def format_duration_ms(ms: int | float | None) -> str:
    """Short human form used in tables: 850ms, 12.3s, 4m05s."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes}m{seconds:02d}s"
