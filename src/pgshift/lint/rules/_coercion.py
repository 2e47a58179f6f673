"""Which ALTER COLUMN ... TYPE changes PostgreSQL makes without touching a row.

The server's own test is ``ATColumnChangeRequiresRewrite`` (tablecmds.c): after planning the
conversion expression, it needs no rewrite when only a RelabelType (a binary-coercible cast in
pg_cast) is left over the column, which is also what the length-coercion support functions
leave when a limit only grows: ``varchar_support`` (varchar.c), ``numeric_support``
(numeric.c), ``varbit_support`` (varbit.c) and ``TemporalSimplify`` (timestamp.c, for
timestamp, timestamptz, time and timetz precision).  Since PostgreSQL 12 the function also
lets timestamp <-> timestamptz through when the session TimeZone has a zero offset
(``TimestampTimestampTzRequiresRewrite``).  Anything else here counts as a rewrite.
"""

from __future__ import annotations

from pgshift.lint.tree import ColumnType

_STRINGS = frozenset({"text", "varchar"})
_TEMPORAL = frozenset({"timestamp", "timestamptz", "time", "timetz"})
#: MAX_TIMESTAMP_PRECISION and MAX_TIME_PRECISION (datatype/timestamp.h, date.h).
_MAX_PRECISION = 6
TIMESTAMPS = frozenset({"timestamp", "timestamptz"})


def no_rewrite(old: ColumnType, new: ColumnType) -> str | None:
    """Why changing ``old`` to ``new`` leaves every row as it is, or None when it rewrites."""
    if old.array != new.array or old.typmods is None or new.typmods is None:
        return None
    if old == new:
        return "the type does not change"
    if old.name in _STRINGS and new.name in _STRINGS:
        return _string_change(old, new)
    if old.name != new.name:
        return None
    if old.name in ("varchar", "varbit", "numeric", *_TEMPORAL) and not new.typmods:
        return f"{new} has no limit, so every {old} value fits as it is"
    if old.name == "varbit":
        return _longer(old, new)
    if old.name == "numeric":
        return _more_precision(old, new)
    if old.name in _TEMPORAL:
        return _temporal(old, new)
    return None


def _string_change(old: ColumnType, new: ColumnType) -> str | None:
    if new.name == "text" or not new.typmods:
        return f"{old} to {new} is a binary-coercible cast (pg_cast), stored alike"
    if old.name == "varchar" and old.typmods and old.typmods[0] <= new.typmods[0]:
        return f"{old} to {new} only raises the length limit (varchar_support)"
    return None


def _longer(old: ColumnType, new: ColumnType) -> str | None:
    if old.typmods and new.typmods and old.typmods[0] <= new.typmods[0]:
        return f"{old} to {new} only raises the length limit (varbit_support)"
    return None


def _more_precision(old: ColumnType, new: ColumnType) -> str | None:
    if not old.typmods or not new.typmods:  # unconstrained to constrained: values may change
        return None
    old_scale = old.typmods[1] if len(old.typmods) > 1 else 0
    new_scale = new.typmods[1] if len(new.typmods) > 1 else 0
    if old_scale == new_scale and old.typmods[0] <= new.typmods[0]:
        return f"{old} to {new} keeps the scale and raises the precision (numeric_support)"
    return None


def _temporal(old: ColumnType, new: ColumnType) -> str | None:
    new_precision = new.typmods[0] if new.typmods else _MAX_PRECISION
    old_precision = old.typmods[0] if old.typmods else _MAX_PRECISION
    if new_precision >= min(old_precision, _MAX_PRECISION):
        return f"{old} to {new} keeps every fractional digit (TemporalSimplify)"
    return None
