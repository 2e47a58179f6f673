"""Pure planning: (migrations on disk, history in the database, target) -> what `up` will do.

A Plan is a value: `up --dry-run` prints it and `up` executes exactly it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pgshift.errors import DriftError, UsageError
from pgshift.history import AppliedMigration, History, Progress
from pgshift.model import Header, Migration, Statement

APPLIED = "applied"
PENDING = "pending"
FAILED = "failed"
OUT_OF_ORDER = "out-of-order"
DRIFTED = "drifted"
MISSING = "missing"


@dataclass(frozen=True)
class MigrationState:
    """One row of `pgshift status`."""

    version: str
    description: str
    state: str
    migration: Migration | None
    applied: AppliedMigration | None


@dataclass(frozen=True)
class Script:
    """What a step executes: a migration file or its rollback file."""

    path: Path
    header: Header
    statements: tuple[Statement, ...]
    checksum: str


@dataclass(frozen=True)
class Step:
    """One migration to apply or revert, and where an interrupted earlier attempt left it."""

    migration: Migration
    resume: Progress | None = None
    action: str = "apply"  # or "revert": run the rollback file and forget the applied row

    @property
    def script(self) -> Script:
        m = self.migration
        if self.action == "apply":
            return Script(m.path, m.header, m.statements, m.checksum)
        if m.rollback is None:
            raise UsageError(f"{m.path}: has no rollback file, so it cannot be reverted")
        r = m.rollback
        return Script(r.path, r.header, r.statements, r.checksum)


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(s.migration.version for s in self.steps)


def migration_states(migrations: Sequence[Migration], history: History) -> list[MigrationState]:
    """Every migration known from files or history, by version, with its state."""
    applied = history.applied_versions()
    newest_applied = max(applied, default="")
    rows: list[MigrationState] = []
    for m in migrations:
        row = applied.get(m.version)
        if row is not None:
            state = APPLIED if row.checksum == m.checksum else DRIFTED
        elif m.version in history.failed or history.progress_of(m.version) is not None:
            state = FAILED
        elif m.version < newest_applied:
            state = OUT_OF_ORDER
        else:
            state = PENDING
        rows.append(MigrationState(m.version, m.description, state, m, row))
    on_disk = {m.version for m in migrations}
    for version, row in applied.items():
        if version not in on_disk:
            rows.append(MigrationState(version, row.description, MISSING, None, row))
    rows.sort(key=lambda r: r.version)
    return rows


def check_no_drift(states: Sequence[MigrationState]) -> None:
    """Refuse to run when an applied file changed or vanished: it is never silently re-applied."""
    drifted = [s for s in states if s.state in (DRIFTED, MISSING)]
    if not drifted:
        return
    lines = []
    for s in drifted:
        if s.state == DRIFTED and s.migration is not None:
            lines.append(f"{s.migration.path}: changed after it was applied")
        else:
            lines.append(f"{s.version}_{s.description}: applied, but its file is gone")
    raise DriftError(
        "applied migrations do not match their files:\n" + "\n".join(lines),
        hint="restore the original file, or write a new migration for the change",
    )


def plan_up(migrations: Sequence[Migration], history: History, target: str | None = None) -> Plan:
    """The pending migrations in dependency order, up to ``target`` and what it needs."""
    states = migration_states(migrations, history)
    check_no_drift(states)
    applied = history.applied_versions()
    pending = [m for m in migrations if m.version not in applied]
    if target is not None:
        by_version = {m.version: m for m in migrations}
        if target not in by_version:
            raise UsageError(f"--target {target}: no migration file has this version")
        wanted: set[str] = set()
        stack = [m.version for m in pending if m.version <= target]
        while stack:
            version = stack.pop()
            if version in wanted or version in applied:
                continue
            wanted.add(version)
            stack.extend(by_version[version].dependencies)
        pending = [m for m in pending if m.version in wanted]
    return Plan(tuple(Step(m, history.progress_of(m.version, "apply")) for m in pending))
