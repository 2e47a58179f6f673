"""Reading a database's migration state: the status report and whether it is at the head.

Why here and not in api/: these are compositions (the history and what a live run executes,
read on one read-only session; the lock asked only when it matters), and ops/ owns every
composition once; api/ only loads the project and opens the Target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pgshift.db.store import StatusFacts
    from pgshift.db.target import Target
    from pgshift.errors import Problem
    from pgshift.history import History
    from pgshift.model import Migration
    from pgshift.ops.readiness import HeadReport
    from pgshift.ops.status_memory import (
        StatusDocument,
        StatusDocumentBackfill,
        StatusDocumentRow,
        StatusMemory,
    )
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
    return _status(migrations, problems, target, _status_reads(target, stamped=False))


def document(
    migrations: Sequence[Migration],
    problems: Sequence[Problem],
    target: Target,
    memory: StatusMemory | None = None,
) -> StatusDocument:
    """The status document (status_memory.StatusDocument) of ``migrations`` on ``target``; told
    to ``memory`` for the next `status` unless it shows live state (ops/status_memory.py says
    what that is and why)."""
    reads = _status_reads(target, stamped=memory is not None)
    report = _status(migrations, problems, target, reads)
    built = document_of(report)
    if memory is not None and reads.facts is not None and _rememberable(report, reads.history):
        memory.remember(built, reads.facts)
    return built


def _rememberable(report: StatusReport, history: History) -> bool:
    """Whether ``report`` depends on the history's rows and the session alone: no progress row
    nor unfinished backfill was read (what a live run holding the lock changes the meaning of)
    and no row is running."""
    if not history.digest or history.in_progress or history.backfills:
        return False
    return not any(r.running or r.half_reverted or r.backfill for r in report.rows)


class _Reads(NamedTuple):
    history: History
    running: dict[str, str]
    warnings: tuple[str, ...]
    facts: StatusFacts | None  # with ``stamped``: what a remembered status is kept under


def _status(
    migrations: Sequence[Migration], problems: Sequence[Problem], target: Target, reads: _Reads
) -> StatusReport:
    from pgshift.plan import migration_states

    history = reads.history
    live_run = False
    if history.in_progress or history.backfills:  # only then does it matter who holds the lock
        from pgshift.db import catalog

        lock = catalog.migration_lock(target.session, target.schema)
        live_run = lock is not None and lock.workers > 0
    rows = migration_states(migrations, history, run_in_progress=live_run)
    return StatusReport(tuple(_mark_running(rows, reads.running)), tuple(problems), reads.warnings)


def _status_reads(target: Target, *, stamped: bool) -> _Reads:
    """The history, {version: action} that a live run has the server executing now
    (db/activity.py), and what `up` would refuse for want of a grant, read on ONE read-only
    session (Target.read_only_session): `status` keeps its one connection. ``stamped``: in one
    snapshot with the StatusFacts a remembered status is kept under (db/store.py).
    """
    from pgshift.db.activity import running_steps
    from pgshift.db.store import missing_grant, read_with_facts

    facts = None
    with target.read_only_session() as session:
        if stamped:
            history, facts = read_with_facts(session, target.schema)
            running, missing = facts.running, facts.missing
        else:
            history = target.store.read(session)
            running = running_steps(session, target.schema)
            missing = missing_grant(session, target.schema)
    warnings = (f"`pgshift up` would refuse: {missing.message}; {missing.hint}",) if missing else ()
    return _Reads(history, running, warnings, facts)


def document_of(report: StatusReport) -> StatusDocument:
    """``report`` as the plain document `status --json` prints (SPEC 2's keys and more), which
    the table is drawn from too, and which a remembered status keeps."""
    duplicates = _duplicates(report.problems)
    return {
        "migrations": [_row(r, duplicates.get(r.version, [])) for r in report.rows],
        "pending": report.pending,
        "applied": report.applied,
        "failed": report.failed,
        "half_reverted": report.half_reverted,
        "expanded": report.expanded,
        "problems": [
            {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
            for p in report.problems
        ],
        "warnings": list(report.warnings),
    }


def _row(r: MigrationState, duplicates: list[str]) -> StatusDocumentRow:
    header = r.migration.header if r.migration else None
    return {
        "version": r.version,
        "description": r.description,
        "state": r.state,
        "applied_at": r.applied.applied_at.isoformat() if r.applied else None,
        "duration_ms": r.applied.duration_ms if r.applied else None,
        "estimated_ms": header.estimated_duration_ms if header else None,
        "risk_level": header.risk_level if header else None,
        "zero_downtime": header.zero_downtime if header else None,
        "running": r.running,
        "half_reverted": r.half_reverted,
        "detail": r.detail,
        "duplicates": duplicates,
        "backfill": _backfill(r),
    }


def _duplicates(problems: Sequence[Problem]) -> dict[str, list[str]]:
    """{version: the other files that use it}: a version used twice is shown on its row, not
    only among the problems, so that the table does not look as if one file were all."""
    from pathlib import Path

    found: dict[str, list[str]] = {}
    for p in problems:
        if p.kind == "duplicate":
            name = Path(p.file).name
            found.setdefault(name.split("_", 1)[0], []).append(name)
    return found


def _backfill(r: MigrationState) -> StatusDocumentBackfill | None:
    """An unfinished backfill of the row (None: none under way)."""
    from pgshift.plan import backfill_text

    b = r.backfill
    if b is None:
        return None
    percent = b.percent
    return {
        "action": b.action,
        "percent": round(percent, 1) if percent is not None else None,
        "rows_done": b.keys_done,
        "rows_estimate": b.rows_estimate,
        "rows_changed": b.rows_done,
        "batches": b.batches,
        "running": r.running,
        "text": backfill_text(b),
    }


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


__all__ = ["StatusReport", "document", "document_of", "head", "status_report"]
