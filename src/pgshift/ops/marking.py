"""`pgshift mark V --applied|--not-applied`: record by hand what a person repaired by hand.

Flyway's `repair` and golang-migrate's `force`: after someone finished a failed migration in
psql, or undid one, the history must say so before `up` or a rollback can go on. Under the
runner lock (and its fence, as every run), the history is read again and the migration is
recorded as applied from its file (the checksums and rollback text `up` would store) or as not
applied (its row and any progress removed), with a ``mark`` event naming who, from where and
why. Nothing of the migration's SQL runs.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgshift.db.marking import record_mark
from pgshift.errors import InputError, UsageError
from pgshift.plan import migration_states

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.model import Migration
    from pgshift.project_files import Project


@dataclass(frozen=True)
class MarkResult:
    """What `mark` did: ``version`` is now recorded as ``applied`` (or not); ``before`` is its
    state before (as `status` showed it); ``changed`` False when it already was so (nothing
    written, no run id). ``warnings``: dependencies this leaves inconsistent, for a person."""

    version: str
    applied: bool
    before: str
    changed: bool
    run_id: str | None
    reason: str
    warnings: tuple[str, ...] = ()


def _migration(project: Project, version: str) -> Migration:
    """The migration ``version`` is recorded from; its file must exist and be usable (exit 2)."""
    found = next((m for m in project.migrations if m.version == version), None)
    own = [p for p in project.problems if Path(p.file).name.startswith(f"{version}_")]
    if found is None:
        if own:
            raise InputError(own, hint="fix the file first: its checksum is what gets recorded")
        raise UsageError(
            f"mark {version} --applied: no migration file has this version; the applied row is"
            " recorded from the file (its checksums and rollback SQL)",
            hint="`pgshift status` lists the versions of the files",
        )
    blocking = [p for p in own if p.file == str(found.path)]
    if blocking:
        raise InputError(blocking, hint="fix the file first: its checksum is what gets recorded")
    return found


def _state(project: Project, history: History, version: str) -> str:
    for row in migration_states(project.migrations, history):
        if row.version == version:
            return "half-reverted" if row.half_reverted else row.state
    return "not recorded"


def _unchanged(history: History, migration: Migration | None, version: str, applied: bool) -> bool:
    """Whether the history already says what ``mark`` would record."""
    row = history.applied_versions().get(version)
    busy = version in history.failed or history.progress_of(version) is not None
    if busy:
        return False
    if applied:
        return row is not None and migration is not None and row.checksum == migration.checksum
    return row is None


def _warnings(project: Project, history: History, version: str, applied: bool) -> tuple[str, ...]:
    """Dependencies left inconsistent: an applied one whose dependency is not, or the reverse."""
    recorded = set(history.applied_versions())
    recorded = recorded | {version} if applied else recorded - {version}
    found: list[str] = []
    for m in project.migrations:
        if applied and m.version == version:
            missing = [d for d in m.dependencies if d not in recorded]
            if missing:
                found.append(f"{version} depends on {', '.join(missing)}, not applied")
        elif not applied and m.version in recorded and version in m.dependencies:
            found.append(f"{m.version} is applied and depends on {version}")
    return tuple(found)


def mark_version(
    project: Project, target: Target, version: str, *, applied: bool, reason: str
) -> MarkResult:
    """Record ``version`` as applied (from its file) or not applied on ``target``, under the
    runner lock, logged with ``reason`` (required: a manual change to history says why).

    Refuses (exit 2) an empty reason, and for ``applied`` a version with no usable file; waits
    for the lock like any run (exit 3 when another run keeps it). Recording what is already
    recorded changes nothing and logs nothing.
    """
    from pgshift.ops.baseline import adopted_row

    if not reason.strip():
        raise UsageError("mark: a reason is required (it is logged with the change)")
    migration = _migration(project, version) if applied else None
    if migration is None:
        migration = next((m for m in project.migrations if m.version == version), None)
    lock = target.runner_lock("mark")
    lock.acquire()
    try:
        target.prepare()
        history = target.read_history()
        before = _state(project, history, version)
        warnings = _warnings(project, history, version, applied)
        if _unchanged(history, migration, version, applied):
            return MarkResult(version, applied, before, False, None, reason, warnings)
        run_id = str(uuid.uuid4())
        previous = history.applied_versions().get(version)
        detail: dict[str, Any] = {
            "applied": applied,
            "reason": reason,
            "before": before,
            "user": _user(),
            "host": socket.gethostname(),
        }
        if previous is not None:
            detail["previous_checksum"] = previous.checksum
        row = adopted_row(migration, run_id) if applied and migration is not None else None
        record_mark(target, version, run_id, row, detail)
        return MarkResult(version, applied, before, True, run_id, reason, warnings)
    finally:
        lock.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this container
        return "unknown"
