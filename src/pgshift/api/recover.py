"""Backups, restores and rollbacks: backup, list_backups, plan_restore/restore,
plan_rollback/rollback/preview_rollback, plan_emergency/rollback_emergency; skins over
ops/rollback.py and ops/backup.py.
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
        DryRunReport,
        EmergencyPlan,
        EmergencyResult,
        RestorePlan,
    )
    from pgshift.plan import Plan
    from pgshift.project_files import Project


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
    from pgshift.ops.manifest import list_backups as listed

    return listed(settings.backup_dir)


def plan_restore(target: Target, backup_id: str) -> RestorePlan:
    """What `rollback restore` would do: the backup, its checksum verified, and the objects
    newer than it that restoring drops. Reads, never writes; a backup of another database is
    refused (UsageError, exit 2), a corrupt one too (BackupError, exit 7).
    """
    from pgshift.ops.rollback import plan_restore as planned

    return planned(target, backup_id)


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


def plan_rollback(
    project: Project, target: Target, *, count: int | None = None, to_version: str | None = None
) -> Plan:
    """What `rollback safe` (the last ``count``, default 1) or `to-version` would revert.

    A Plan of kind "revert", newest first, with ``checks`` filled (rollback files, checksums,
    dependencies, half-applied steps) so they can be shown before confirming. Refuses
    (UsageError, exit 2, nothing changed) when a check is an error: a rollback file is missing
    or does not parse, or a migration that stays applied depends on one being reverted. Only
    problems of the files it would run count (load the project with ``allow_problems``).
    """
    from pgshift.ops.rollback import plan_rollback as planned

    return planned(project, target, count=count, to_version=to_version)


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


def preview_rollback(
    project: Project,
    target: Target,
    *,
    count: int | None = None,
    to_version: str | None = None,
    simulate: bool = False,
    scratch_url: str | None = None,
    on_event: Emit | None = None,
) -> DryRunReport:
    """Everything a rollback would do (`rollback dry-run`): order, SQL, locks and checks.

    Never changes the target and never refuses over a failed check: the report shows it
    (``report.ok``). ``simulate`` runs the rollback on a scratch database holding a copy of
    the target's schema and history (``scratch_url``'s server, else the embedded one);
    ``on_event`` hears what the simulation is doing (`pgshift.events.Working`, `WorkDone`).
    """
    from pgshift import events
    from pgshift.ops.rollback import preview_rollback as preview

    return preview(
        project,
        target,
        count=count,
        to_version=to_version,
        simulate=simulate,
        scratch_url=scratch_url,
        emit=on_event or events.ignore,
    )


def plan_emergency(project: Project, target: Target) -> EmergencyPlan:
    """What `rollback emergency` would do to get back to the state before the last `up` run.

    Its migrations, any half-applied one and any half-reverted one (whichever run applied it)
    to revert, the checks of their rollback files, and the backup taken before that run to
    fall back to. Reads, never writes.
    """
    from pgshift.ops.rollback import plan_emergency as planned

    return planned(project.migrations, project.problems, target)


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
