"""What happens around every run on a target, composed once: checksums, backup, lock, runner.

In that order: checksum upgrades, the refusal while another run holds the lock (rollbacks),
the Runner with its in-run monitor, the backup before the run, then the Runner's run under the
runner lock.

`up` (pgshift.apply), `rollback safe`/`to-version`, `rollback emergency` and every target of a
fleet run their plans through here, so a run is prepared the same way whichever command starts
it: the Runner (ops/apply.py) is made with the settings' options and the health monitor, the
backup is tied to that run's id, and a refusal comes before anything is taken or changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pgshift import events as ev
from pgshift.errors import LockBusy, PgshiftError, PreflightFailed
from pgshift.ops.apply import Runner, RunOptions, RunResult
from pgshift.ops.monitor import monitor_for
from pgshift.plan import UP

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.ops.manifest import Manifest
    from pgshift.ops.uptodate import Verdicts
    from pgshift.plan import Plan
    from pgshift.project_files import Project
    from pgshift.rewrite.preflight_light import PreflightResult

BEFORE_UP, BEFORE_ROLLBACK = "before-up", "before-rollback"


def refuse_if_locked(target: Target) -> None:
    """Fail fast (exit 3) when another runner holds the migration lock, before any backup.

    The backup comes before the runner waits for the lock, and pg_dump would queue behind the
    other run's locks and fail as a backup error; this says what is really going on instead.
    """
    from pgshift.db.lock import find_holder

    holder = find_holder(target.session, target.schema)
    if holder is not None:
        raise LockBusy(
            f"another pgshift run holds the migration lock: {holder.describe()}",
            hint="wait for it to finish; nothing was changed",
        )


def refuse_preflight(plan: Plan) -> None:
    """Refuse (PreflightFailed, exit 1) a plan whose pre-flight predicts a failure, before
    anything is taken or changed: no backup, no lock, no history row."""
    if not plan.preflight:
        return
    from pgshift.rewrite.preflight_light import FAIL

    failing = [r for r in plan.preflight if r.status == FAIL]
    if failing:
        raise PreflightFailed(
            preflight_message(failing),
            failing,
            hint="fix the data first (or --skip-preflight to run anyway); nothing was changed",
        )


def preflight_message(failing: Sequence[PreflightResult]) -> str:
    """What the refusal says: each failing statement's file, line and the check's own words."""
    lines = [f"pre-flight: {len(failing)} statement(s) will fail on this database's data:"]
    lines += [f"  {r.file}:{r.line}: {r.detail}" for r in failing]
    return "\n".join(lines)


def backup_before(
    target: Target, reason: str, run_id: str | None, emit: ev.Emit
) -> Manifest | None:
    """The backup a run (or a restore) starts with, unless DB_BACKUP_ENABLED=false; reported
    as BackupProgress events and one BackupTaken, tied to ``run_id`` when there is a run."""
    if not target.settings.backup.enabled:
        return None
    from pgshift.ops.backup import take_reported

    return take_reported(target, reason=reason, run_id=run_id, emit=emit)


def upgrade_checksums(plan: Plan, target: Target) -> list[str]:
    """Rewrite history rows that hold older pgshift's text checksums, under the runner lock.

    Before checksums covered the parsed statements they covered the file's text. A row whose
    stored checksum is the text checksum of the file as it is now was applied from exactly
    this file, so it gets the statement checksum: annotating that file afterwards is then no
    drift. Done once (the rows no longer qualify after), and logged as one event.
    """
    from pgshift.plan import legacy_rows

    lock = target.runner_lock()
    lock.acquire()
    try:
        target.prepare()
        upgrades = legacy_rows(plan.migrations, target.read_history())
        return target.store.upgrade_checksums(target.session, upgrades) if upgrades else []
    finally:
        lock.release()


@dataclass(frozen=True)
class StartedRun:
    """A run made ready on a target: its Runner (options, events, monitor) and the backup
    taken before it, if any. ``runner.run(plan)`` then runs under the runner lock."""

    runner: Runner
    backup: Manifest | None

    @property
    def run_id(self) -> str:
        return self.runner.run_id

    @property
    def backup_id(self) -> str | None:
        return self.backup.id if self.backup is not None else None


def start_run(
    target: Target,
    emit: ev.Emit,
    *,
    reason: str,
    backup: bool = True,
    refuse_busy: bool = False,
) -> StartedRun:
    """Everything before a run's first statement, in this order: the refusal while another
    run holds the lock (``refuse_busy``: what a rollback owes someone already in trouble),
    the Runner with its monitor, and the backup (``reason``) tied to the run's id."""
    if refuse_busy:
        refuse_if_locked(target)
    target.check_history_access()  # before the backup: a role that cannot keep history stops here
    settings = target.settings
    runner = Runner(target, RunOptions.from_settings(settings), emit, monitor_for(settings, emit))
    taken = backup_before(target, reason, runner.run_id, emit) if backup else None
    return StartedRun(runner, taken)


def run_plan(
    plan: Plan,
    target: Target,
    *,
    emit: ev.Emit = ev.ignore,
    backup: bool = True,
    refuse_busy: bool = False,
) -> RunResult:
    """Run exactly ``plan`` on ``target``: the pre-flight refusal, checksum upgrades, then (with
    steps) start_run and the Runner; the result, and a failure's partial result, carry the
    backup's id."""
    refuse_preflight(plan)
    if plan.checksum_upgrades:
        upgrade_checksums(plan, target)
    if not plan.steps:
        return RunResult("", ())
    reason = BEFORE_UP if plan.kind == UP else BEFORE_ROLLBACK
    started = start_run(target, emit, reason=reason, backup=backup, refuse_busy=refuse_busy)
    try:
        result = started.runner.run(plan)
    except PgshiftError as exc:
        if exc.result is not None:
            exc.result = replace(exc.result, backup_id=started.backup_id)
        raise
    return replace(result, backup_id=started.backup_id)


def run_up(
    project: Project,
    target: Target,
    *,
    to: str | None = None,
    emit: ev.Emit = ev.ignore,
    backup: bool = True,
    preflight: bool = True,
    verdicts: Verdicts | None = None,
) -> RunResult:
    """Plan (ops/planning.py, with its pre-flight unless ``preflight`` is False) and run at
    once, without showing the plan to anyone. A plan with nothing to do is told to
    ``verdicts`` (ops/uptodate.py), so the next `up` of the same files and history is quick."""
    from pgshift.ops.planning import plan_for

    plan = plan_for(project, target, to=to, preflight=preflight)
    if verdicts is not None and not plan.steps and not plan.checksum_upgrades:
        from pgshift.ops.uptodate import UP

        verdicts.remember(UP, plan.history_digest)
    return run_plan(plan, target, emit=emit, backup=backup)
