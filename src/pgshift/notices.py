"""Whether pgshift may write notes outside the event stream: off while a person asked for `-q`.

Why its own module: every `-q` command switches it, and importing it must not cost the event
types' forty dataclasses (pgshift.events, where it lived before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

#: False while a person asked for silence (`-q`): the notes pgshift writes to stderr outside
#: any event (a new embedded server being made) are then left out. A context variable, so it
#: holds for one command and never leaks into the next one run in the same process.
_NOTICES: ContextVar[bool] = ContextVar("pgshift_notices", default=True)


@contextlib.contextmanager
def quiet_notices() -> Iterator[None]:
    """Within this block, notices outside the event stream are not written."""
    token = _NOTICES.set(False)
    try:
        yield
    finally:
        _NOTICES.reset(token)


def notices_wanted() -> bool:
    return _NOTICES.get()
