"""Backups, restores and rollbacks that open or load something first: backup, list_backups,
restore, rollback and rollback_emergency, skins over ops/rollback.py and ops/backup.py.

plan_restore, plan_rollback, preview_rollback and plan_emergency take what they need as
arguments, so the facade re-exports them from ops/rollback.py, where they are defined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgshift.api.project import connect
from pgshift.config import Settings

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.events import Emit
    from pgshift.ops.apply import RunResult
    from pgshift.ops.backup import RestoreResult
    from pgshift.ops.manifest import Manifest
    from pgshift.ops.rollback import (
        EmergencyPlan,
        EmergencyResult,
        RestorePlan,
    )
    from pgshift.plan import Plan


def backup(settings: Settings, *, reason: str = "manual", on_event: Emit | None = None) -> Manifest:
    """Take a backup of the target now (`pgshift backup`), whatever DB_BACKUP_ENABLED says.

    Progress arrives through ``on_event`` as BackupProgress events, then one BackupTaken,
    the same events `apply` reports for the backup it takes.
    """
    from pgshift import events
    from pgshift.ops.backup import take_reported

    with connect(settings, purpose="backup") as target:
        return take_reported(target, reason=reason, emit=on_event or events.ignore)


def list_backups(settings: Settings) -> list[Manifest]:
    """The complete backups in DB_BACKUP_DIR, oldest first; needs no database."""
    from pgshift.ops.manifest import backups_in

    return backups_in(settings.backup.dir)


def restore(
    plan: RestorePlan, target: Target, *, on_event: Emit | None = None, backup: bool = True
) -> RestoreResult:
    """Restore ``plan``'s backup into ``target`` in one transaction, under the runner lock.

    Refuses (LockBusy, exit 3) while another run holds the lock, before anything; then takes
    a safety backup (unless ``backup`` is False or DB_BACKUP_ENABLED=false). Backup and
    restore progress arrive through ``on_event``.
    """
    from pgshift import events
    from pgshift.ops.rollback import run_restore

    return run_restore(plan, target, emit=on_event or events.ignore, backup=backup)


def rollback(
    plan: Plan, target: Target, *, on_event: Emit | None = None, backup: bool = True
) -> RunResult:
    """Run a revert plan from ``plan_rollback``: `apply`, plus a refusal that comes first.

    `apply` runs a revert plan as well (with a "before-rollback" backup); this adds what a
    rollback owes someone already in trouble: while another run holds the migration lock it
    refuses at once (LockBusy, exit 3) instead of taking a backup that would queue behind that
    run's locks. Refuses a plan that is not a revert plan (UsageError, exit 2).
    """
    from pgshift import events
    from pgshift.ops.rollback import run_rollback

    return run_rollback(plan, target, emit=on_event or events.ignore, backup=backup)


def rollback_emergency(
    plan: EmergencyPlan,
    target: Target,
    *,
    on_event: Emit | None = None,
    backup: bool = True,
    restore_confirmed: bool = False,
) -> EmergencyResult:
    """Carry out ``plan`` and prove the database is back (`rollback emergency`).

    Reverts with the rollback files after a safety backup; when a rollback file is missing,
    broken or fails, restores the backup taken before the run, only if ``restore_confirmed``
    (rows written since are lost): otherwise the error goes up with the partial RunResult.
    Success only once the database was read back: applied versions, nothing half-way, and
    the schema compared with that backup. Progress arrives through ``on_event``.
    """
    from pgshift import events
    from pgshift.ops.rollback import run_emergency

    return run_emergency(
        plan,
        target,
        emit=on_event or events.ignore,
        backup=backup,
        restore_confirmed=restore_confirmed,
    )
