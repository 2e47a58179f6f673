"""Whether the database is at the project's head, for `status --check` and `wait` (SPEC 10).

Both are for machines (a Kubernetes init container, a deploy script): they never take the
migration lock and never write, and they read history the way `status` does, over one short
read-only session (libpq directly where it loads, so psycopg is not even imported).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgshift.errors import DatabaseUnavailable, PgshiftError, WaitTimeout

if TYPE_CHECKING:  # a remembered answer (ops/uptodate.py) needs neither
    from pgshift.history import History
    from pgshift.model import Migration

#: First pause between polls, growth factor, and the longest pause.
FIRST_POLL_S = 0.5
BACKOFF = 1.5
LONGEST_POLL_S = 5.0


@dataclass(frozen=True)
class HeadReport:
    """Whether every migration on disk is applied as it is, and if not, why not (per version)."""

    head: str | None  # the newest version on disk
    not_ready: tuple[str, ...]  # "<version>_<description>: <state>", in version order

    @property
    def at_head(self) -> bool:
        return not self.not_ready


def head_report(migrations: Sequence[Migration], history: History) -> HeadReport:
    """At head: nothing pending, failed, out of order, drifted or missing, nothing half-way."""
    from pgshift.plan import APPLIED, migration_states

    rows = migration_states(migrations, history)
    not_ready = tuple(
        f"{r.version}_{r.description}: {r.state}" + (" (half-reverted)" if r.half_reverted else "")
        for r in rows
        if r.state != APPLIED or r.half_reverted
    )
    return HeadReport(max((m.version for m in migrations), default=None), not_ready)


def wait_for_head(
    check: Callable[[], HeadReport],
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_poll: Callable[[HeadReport | PgshiftError], None] | None = None,
) -> HeadReport:
    """Poll ``check`` with backoff until at head; WaitTimeout (exit 5) after ``timeout_s``.

    An unreachable database is polled again, not an error: an init container usually starts
    before the database or the migration Job is ready.
    """
    deadline = clock() + timeout_s
    pause = FIRST_POLL_S
    while True:
        result: HeadReport | PgshiftError
        try:
            result = check()
        except DatabaseUnavailable as exc:
            result = exc
        if isinstance(result, HeadReport) and result.at_head:
            return result
        if on_poll is not None:
            on_poll(result)
        left = deadline - clock()
        if left <= 0:
            why = (
                "; ".join(result.not_ready[:5])
                if isinstance(result, HeadReport)
                else result.message
            )
            raise WaitTimeout(
                f"the database did not reach the project's head within {timeout_s:g}s: {why}",
                hint="`pgshift status` shows every migration; is the migration Job running?",
            )
        sleep(min(pause, left))
        pause = min(pause * BACKOFF, LONGEST_POLL_S)
