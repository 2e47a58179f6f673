"""Reading a database's migration state: the status report and whether it is at the head.

Why here and not in api/: these are compositions (the history and what a live run executes,
read on one read-only session; the lock asked only when it matters), and ops/ owns every
composition once; api/ only loads the project and opens the Target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.errors import Problem
    from pgshift.history import History
    from pgshift.model import Migration
    from pgshift.ops.readiness import HeadReport
    from pgshift.ops.uptodate import Verdicts
    from pgshift.plan import MigrationState


@dataclass(frozen=True)
class StatusReport:
    """`pgshift status`: one row per migration, and the counts its title and JSON show.

    A half-reverted migration counts as neither applied (part of its schema is gone) nor
    pending (`up` refuses it until the revert is finished): it is ``half_reverted``.
    """

    rows: tuple[MigrationState, ...]
    # Problems in the files: a read-only command shows what it can and lists them (SPEC 1).
    problems: tuple[Problem, ...] = ()
    # What `up` would refuse before it starts, e.g. a role that may not create the history schema.
    warnings: tuple[str, ...] = ()

    @property
    def pending(self) -> int:
        """Not applied yet and not failed: what `up` would apply (out-of-order ones included)."""
        return sum(1 for r in self.rows if r.state in ("pending", "out-of-order"))

    @property
    def failed(self) -> int:
        """Failed attempts (a half-reverted migration is counted as that, not as failed)."""
        return sum(1 for r in self.rows if r.state == "failed" and not r.half_reverted)

    @property
    def applied(self) -> int:
        return sum(1 for r in self.rows if r.applied is not None and not r.half_reverted)

    @property
    def expanded(self) -> int:
        """Applied in their expand phase (counted in ``applied`` too): both shapes served until
        `pgshift contract`, each since its row's ``applied_at``, when expand finished."""
        return sum(1 for r in self.rows if r.state == "expanded")

    @property
    def half_reverted(self) -> int:
        return sum(1 for r in self.rows if r.half_reverted)


def status_report(
    migrations: Sequence[Migration], problems: Sequence[Problem], target: Target
) -> StatusReport:
    """Every migration's state on ``target``, a live run's current steps marked "running"."""
    from pgshift.plan import migration_states

    history, running, warnings = _status_reads(target)
    live_run = False
    if history.in_progress or history.backfills:  # only then does it matter who holds the lock
        from pgshift.db import catalog

        lock = catalog.migration_lock(target.session, target.schema)
        live_run = lock is not None and lock.workers > 0
    rows = migration_states(migrations, history, run_in_progress=live_run)
    return StatusReport(tuple(_mark_running(rows, running)), tuple(problems), warnings)


def _status_reads(target: Target) -> tuple[History, dict[str, str], tuple[str, ...]]:
    """The history, {version: action} that a live run has the server executing now
    (db/activity.py), and what `up` would refuse for want of a grant, read on ONE read-only
    session (Target.read_only_session): `status` keeps its one connection.
    """
    from pgshift.db.activity import running_steps
    from pgshift.db.store import missing_grant

    with target.read_only_session() as session:
        history = target.store.read(session)
        running = running_steps(session, target.schema)
        missing = missing_grant(session, target.schema)
    warnings = (f"`pgshift up` would refuse: {missing.message}; {missing.hint}",) if missing else ()
    return history, running, warnings


def _mark_running(rows: list[MigrationState], running: dict[str, str]) -> list[MigrationState]:
    """A migration the server is running for a live run is "running", whatever kind it is: a
    transactional one leaves no progress row to show it."""
    marked = []
    for row in rows:
        action = running.get(row.version)
        if action == "apply" and row.applied is None:
            marked.append(replace(row, running=True))
        elif action == "revert" and row.applied is not None:
            marked.append(replace(row, running=True, detail="being reverted by the current run"))
        else:
            marked.append(row)
    return marked


def head(
    migrations: Sequence[Migration], target: Target, verdicts: Verdicts | None = None
) -> HeadReport:
    """Whether ``target`` is at the head of ``migrations``; reads history over one short
    read-only session, never takes the migration lock and never writes to the database.
    An answer at head is told to ``verdicts`` (ops/uptodate.py) for the next command."""
    from pgshift.ops.readiness import head_report

    history = target.read_history()
    report = head_report(migrations, history)
    if verdicts is not None and report.at_head:
        from pgshift.ops.uptodate import HEAD

        verdicts.remember(HEAD, history.digest, report.head or "")
    return report


__all__ = ["StatusReport", "head", "status_report"]
