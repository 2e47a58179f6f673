"""Rollback orchestration: safe and to-version reverts, dry runs and simulations, and emergency.

Why it is shaped this way: these commands are run when something already went wrong, so each
one checks everything it can (files, dependencies, the lock) before it changes anything, takes a
backup first, runs the rollback files through the same Runner as `up` (one transaction per file,
statements PostgreSQL refuses in a transaction run alone with recorded progress), and says
exactly where it stopped. `emergency` only reports success after reading the database back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pgshift import events as ev
from pgshift.db.target import Target
from pgshift.errors import BackupError, CheckFailed, LockBusy, MigrationFailed, UsageError
from pgshift.plan import (
    ERROR,
    Plan,
    RollbackCheck,
    check_rollback,
    dependents_first,
    plan_revert,
    refuse_on_errors,
    rollback_selection,
)
from pgshift.source.locks import statement_locks

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.errors import Problem
    from pgshift.events import BackupProgress
    from pgshift.history import History
    from pgshift.model import Migration, SchemaObject, Statement
    from pgshift.ops.apply import RunOptions, RunResult
    from pgshift.ops.backup import RestoreResult
    from pgshift.ops.manifest import Manifest

BackupProgressSink = Callable[["BackupProgress"], None]


def _ignore_progress(_: BackupProgress) -> None:
    """Progress sink for callers that do not show backup progress."""


# -- shared pieces ---------------------------------------------------------------------------------


def run_options(settings: Settings) -> RunOptions:
    from pgshift.ops.apply import RunOptions

    return RunOptions.from_settings(settings)


def _load(settings: Settings) -> tuple[tuple[Migration, ...], tuple[Problem, ...]]:
    """The folder's migrations and its problems, without refusing on them.

    A rollback only needs the files it runs to be sound; a broken new file elsewhere must not
    stop anyone from getting back to a good state.
    """
    from pgshift.project_files import read_project

    result = read_project(settings)
    return result.migrations, result.problems


def _read_history(settings: Settings, url: str | None) -> History:
    from pgshift.db.store import read_history

    return read_history(url, settings.schema, purpose="rollback")


def refuse_if_locked(settings: Settings, url: str | None) -> None:
    """Fail fast (exit 3) when another runner holds the migration lock, before any backup."""
    from pgshift.db.connect import connect
    from pgshift.db.lock import find_holder

    with connect(url, purpose="rollback") as conn:
        holder = find_holder(conn, settings.schema)
    if holder is not None:
        raise LockBusy(
            f"another pgshift run holds the migration lock: {holder.describe()}",
            hint="wait for it to finish; nothing was changed",
        )


def backup_before(
    settings: Settings,
    target: Target,
    *,
    reason: str,
    skip: bool,
    run_id: str | None = None,
    progress: BackupProgressSink = _ignore_progress,
) -> Manifest | None:
    """The automatic backup before `up` or a rollback, unless skipped or disabled."""
    if skip or not settings.backup_enabled:
        return None
    from pgshift.ops.backup import backup_for

    manifest, _ = backup_for(settings, target, reason=reason, run_id=run_id, progress=progress)
    return manifest


# -- safe and to-version ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A rollback worked out against the folder and the history, not yet run."""

    migrations: tuple[Migration, ...]
    problems: tuple[Problem, ...]
    history: History
    versions: tuple[str, ...]
    checks: tuple[RollbackCheck, ...]
    plan: Plan

    @property
    def ok(self) -> bool:
        return not any(c.status == ERROR for c in self.checks)


def prepare(
    settings: Settings, url: str | None, *, count: int | None, to_version: str | None
) -> Prepared:
    """What `rollback safe` / `to-version` would do, with every check's result; changes nothing."""
    migrations, problems = _load(settings)
    history = _read_history(settings, url)
    selected = rollback_selection(history, count=count, to_version=to_version)
    deps = {m.version: m.dependencies for m in migrations}
    versions = tuple(dependents_first(selected, deps))
    checks = check_rollback(migrations, history, versions, problems)
    plan = plan_revert(migrations, history, versions) if versions else Plan(())
    return Prepared(migrations, problems, history, versions, checks, plan)


@dataclass(frozen=True)
class RollbackOutcome:
    prepared: Prepared
    backup: Manifest | None
    result: RunResult | None


def run_rollback(
    settings: Settings,
    url: str | None,
    *,
    count: int | None = None,
    to_version: str | None = None,
    skip_backup: bool = False,
    confirm: Callable[[Prepared], bool] | None = None,
    emit: ev.Emit = ev.ignore,
    progress: BackupProgressSink = _ignore_progress,
    on_backup: Callable[[Manifest], None] | None = None,
) -> RollbackOutcome:
    """Revert the selected migrations newest first, after the checks and a backup."""
    from pgshift.ops.apply import Runner
    from pgshift.ops.monitor import monitor_for

    prepared = prepare(settings, url, count=count, to_version=to_version)
    refuse_on_errors(prepared.checks)
    if not prepared.plan.steps:
        return RollbackOutcome(prepared, None, None)
    refuse_if_locked(settings, url)
    if confirm is not None and not confirm(prepared):
        raise UsageError("cancelled: nothing was reverted")
    target = Target.from_settings(settings, url, purpose="rollback")
    runner = Runner(target, run_options(settings), emit, monitor=monitor_for(settings, emit))
    manifest = backup_before(
        settings,
        target,
        reason="before-rollback",
        skip=skip_backup,
        run_id=runner.run_id,
        progress=progress,
    )
    if manifest is not None and on_backup is not None:
        on_backup(manifest)
    with target:
        result = runner.run(prepared.plan)
    return RollbackOutcome(prepared, manifest, result)


# -- dry run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementPreview:
    line: int
    sql: str
    transactional: bool
    locks: tuple[str, ...]


@dataclass(frozen=True)
class StepPreview:
    version: str
    name: str
    path: str
    resume_after: int
    statements: tuple[StatementPreview, ...]


@dataclass(frozen=True)
class SimulatedStep:
    version: str
    status: str  # "reverted", "skipped", "failed"
    duration_ms: int | None
    message: str = ""


@dataclass(frozen=True)
class Simulation:
    where: str  # which server held the scratch database (no credentials)
    steps: tuple[SimulatedStep, ...]
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class DryRunReport:
    versions: tuple[str, ...]
    checks: tuple[RollbackCheck, ...]
    steps: tuple[StepPreview, ...]
    simulation: Simulation | None = None
    warnings: tuple[str, ...] = field(default=())


def _preview(prepared: Prepared) -> tuple[StepPreview, ...]:
    previews: list[StepPreview] = []
    for step in prepared.plan.steps:
        m = step.migration
        if m.rollback is None:
            continue
        header = m.rollback.header

        def preview(stmt: Statement, transaction: bool = header.transaction) -> StatementPreview:
            return StatementPreview(
                stmt.line, stmt.sql, stmt.transactional and transaction, statement_locks(stmt.sql)
            )

        previews.append(
            StepPreview(
                m.version,
                m.name,
                str(m.rollback.path),
                step.resume.statements_done if step.resume else 0,
                tuple(preview(s) for s in m.rollback.statements),
            )
        )
    return tuple(previews)


def dry_run(
    settings: Settings,
    url: str | None,
    *,
    count: int | None = None,
    to_version: str | None = None,
    simulate: bool = False,
    scratch_url: str | None = None,
) -> DryRunReport:
    """Everything a rollback would do, read-only on the target; optionally proven on a copy."""
    prepared = prepare(settings, url, count=count, to_version=to_version)
    simulation = None
    if simulate and prepared.ok and prepared.plan.steps:
        simulation = _simulate(settings, url, prepared, scratch_url)
    return DryRunReport(prepared.versions, prepared.checks, _preview(prepared), simulation)


def _simulate(
    settings: Settings, url: str | None, prepared: Prepared, scratch_url: str | None
) -> Simulation:
    """Run the rollback on a scratch database holding the target's schema and history."""

    from pgshift.config import mask_url
    from pgshift.db.scratch import create_database, drop_database
    from pgshift.ops.apply import Runner
    from pgshift.ops.backup import copy_schema

    if scratch_url is None:
        from pgshift import embedded

        server_url = embedded.ensure_running(settings.project_root)
        where = "the embedded server"
    else:
        server_url = scratch_url
        where = mask_url(scratch_url)
    name, scratch = create_database(server_url, "pgshift_scratch")
    collected: list[SimulatedStep] = []

    def collect(event: ev.Event) -> None:
        match event:
            case ev.StepApplied(version=version, duration_ms=ms):
                collected.append(SimulatedStep(version, "reverted", ms))
            case ev.StepSkipped(version=version, reason=reason):
                collected.append(SimulatedStep(version, "skipped", 0, reason))
            case ev.StepFailed(version=version, message=message):
                collected.append(SimulatedStep(version, "failed", None, message))
            case _:
                pass

    error: str | None = None
    try:
        copy_schema(url, scratch, history_schema=settings.schema)
        with Target.from_settings(settings, scratch, purpose="simulate") as scratch_target:
            runner = Runner(scratch_target, run_options(settings), collect)
            try:
                runner.run(prepared.plan)
            except MigrationFailed as exc:
                error = exc.message
    except BackupError as exc:
        error = exc.message
    finally:
        drop_database(server_url, name)
    return Simulation(where, tuple(collected), error is None, error)


# -- restore ---------------------------------------------------------------------------------------


def run_restore(
    settings: Settings,
    url: str | None,
    backup_id: str,
    *,
    skip_backup: bool = False,
    confirm: Callable[[Manifest, tuple[SchemaObject, ...], str], bool] | None = None,
    progress: BackupProgressSink = _ignore_progress,
    on_backup: Callable[[Manifest], None] | None = None,
) -> RestoreResult:
    """Verify a backup, confirm, take a safety backup, and restore it under the runner lock."""
    from pgshift.ops.backup import plan_restore
    from pgshift.ops.manifest import get_manifest

    manifest = get_manifest(settings.backup_dir, backup_id)
    with Target.from_settings(settings, url, purpose="restore") as target:
        extras, database = plan_restore(target, settings.backup_dir, manifest)
    if manifest.database != database:
        raise UsageError(
            f"backup {manifest.id} is of database {manifest.database!r}, but the target is"
            f" {database!r}; nothing was restored",
            hint="name the database the backup was taken from with --database-url",
        )
    refuse_if_locked(settings, url)
    if confirm is not None and not confirm(manifest, extras, database):
        raise UsageError("cancelled: nothing was restored")
    # A second Target: the first one's session is not held open while the user answers.
    with Target.from_settings(settings, url, purpose="rollback") as target:
        safety = backup_before(
            settings, target, reason="before-rollback", skip=skip_backup, progress=progress
        )
        if safety is not None and on_backup is not None:
            on_backup(safety)
        return _restore_locked(settings, target, manifest, progress)


def _restore_locked(
    settings: Settings,
    target: Target,
    manifest: Manifest,
    progress: BackupProgressSink,
    run_id: str | None = None,
) -> RestoreResult:
    """Restore under the target's runner lock, so no `up` or rollback runs meanwhile."""
    from pgshift.ops.backup import DEFAULT_LOCK_WAIT_MS, restore_backup

    lock = target.runner_lock(purpose="restore")
    lock.acquire()
    try:
        return restore_backup(
            target,
            settings.backup_dir,
            manifest,
            run_id=run_id,
            lock_timeout_ms=max(settings.lock_timeout_ms, DEFAULT_LOCK_WAIT_MS),
            progress=progress,
        )
    finally:
        lock.release()


# -- emergency -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmergencyPlan:
    """How `rollback emergency` means to get back to the state before the last `up` run."""

    run_id: str | None  # the most recent run that applied migrations
    versions: tuple[str, ...]  # to revert: half-applied ones first, then the run's, newest first
    expected: tuple[str, ...]  # the applied versions once back
    plan: Plan
    checks: tuple[RollbackCheck, ...]
    backup: Manifest | None  # the backup taken before that run, if any
    migrations: tuple[Migration, ...]

    @property
    def blockers(self) -> tuple[RollbackCheck, ...]:
        """Failed checks: the rollback files cannot be used, only the backup can."""
        return tuple(c for c in self.checks if c.status == ERROR)


@dataclass(frozen=True)
class EmergencyResult:
    plan: EmergencyPlan
    mode: str  # "nothing", "reverted", "restored"
    safety_backup: Manifest | None
    result: RunResult | None
    restored: RestoreResult | None
    failure: str | None  # why the rollback files were not enough, when restored


def plan_emergency(settings: Settings, url: str | None) -> EmergencyPlan:
    """Find the last `up` run and what undoing it takes; reads, never writes."""
    from pgshift.db.connect import connect
    from pgshift.db.inventory import current_database
    from pgshift.db.store import PostgresHistoryStore
    from pgshift.ops.manifest import list_backups

    migrations, problems = _load(settings)
    store = PostgresHistoryStore(settings.schema)
    with connect(url, purpose="rollback") as conn:
        history = store.read(conn)
        run_id = store.last_up_run(conn)
        database = current_database(conn)
    applied = history.applied_versions()
    ordered = sorted(
        history.applied,
        key=lambda a: (a.applied_at.isoformat() if a.applied_at else "", a.version),
        reverse=True,
    )
    from_run = [a.version for a in ordered if run_id is not None and a.run_id == run_id]
    half = sorted(
        (p.version for p in history.in_progress if p.version not in applied), reverse=True
    )
    deps = {m.version: m.dependencies for m in migrations}
    versions = tuple(dependents_first([*half, *from_run], deps))
    expected = tuple(sorted(set(applied) - set(from_run)))
    checks = check_rollback(migrations, history, versions, problems) if versions else ()
    plan = plan_revert(migrations, history, versions)
    candidates = [
        m
        for m in list_backups(settings.backup_dir)
        if run_id is not None
        and m.run_id == run_id
        and m.reason == "before-up"
        and m.database == database
    ]
    return EmergencyPlan(
        run_id=run_id,
        versions=versions,
        expected=expected,
        plan=plan,
        checks=tuple(checks),
        backup=candidates[-1] if candidates else None,
        migrations=migrations,
    )


def verify_state(settings: Settings, url: str | None, ep: EmergencyPlan) -> list[str]:
    """Differences between the database and the state before the run (empty: back there).

    Checks the applied versions, that nothing is left half-way, and, when the backup taken
    before the run exists, every table, column, index, constraint, view, function and type.
    """
    from pgshift.db.connect import connect
    from pgshift.db.inventory import inventory, quote_ident
    from pgshift.db.store import PostgresHistoryStore
    from pgshift.ops.manifest import compare_inventories

    with connect(url, purpose="rollback") as conn:
        history = PostgresHistoryStore(settings.schema).read(conn)
        objects = inventory(conn) if ep.backup is not None else ()
        ours = quote_ident(conn, settings.schema) if ep.backup is not None else ""
    problems: list[str] = []
    applied = tuple(sorted(history.applied_versions()))
    if applied != ep.expected:
        problems.append(f"applied versions are {list(applied)}, expected {list(ep.expected)}")
    for p in history.in_progress:
        if p.version in ep.versions:
            problems.append(f"{p.version} is still half-way ({p.action})")
    if ep.backup is not None:
        problems.extend(compare_inventories(ep.backup.objects, objects, ignore_quoted_schema=ours))
    return problems


def run_emergency(  # noqa: C901
    settings: Settings,
    url: str | None,
    *,
    skip_backup: bool = False,
    confirm: Callable[[EmergencyPlan], bool] | None = None,
    confirm_restore: Callable[[Manifest, str], bool] | None = None,
    emit: ev.Emit = ev.ignore,
    progress: BackupProgressSink = _ignore_progress,
    on_backup: Callable[[Manifest], None] | None = None,
) -> EmergencyResult:
    """Return to the state before the last `up` run; success only once verified.

    Reverts that run's migrations (and any half-applied one) with their rollback files; if a
    rollback file is missing or broken, or one fails, restores the backup taken before the run.
    """
    from pgshift.ops.apply import Runner
    from pgshift.ops.monitor import monitor_for

    ep = plan_emergency(settings, url)
    if not ep.versions:
        problems = verify_state(settings, url, ep)
        if problems:
            raise CheckFailed(
                "nothing is left to revert from the last run, but the database differs from"
                " the state before it:\n" + "\n".join(problems),
                hint=_restore_hint(ep),
            )
        return EmergencyResult(ep, "nothing", None, None, None, None)
    if ep.blockers and ep.backup is None:
        raise CheckFailed(
            "cannot get back to the state before the last run: the rollback files cannot be"
            " used and no backup was taken before that run; nothing was changed:\n"
            + "\n".join(f"{c.name}: {c.detail}" for c in ep.blockers),
            hint="fix the rollback files, then run `pgshift rollback emergency` again",
        )
    if confirm is not None and not confirm(ep):
        raise UsageError("cancelled: nothing was changed")
    with Target.from_settings(settings, url, purpose="rollback") as target:
        runner = Runner(target, run_options(settings), emit, monitor=monitor_for(settings, emit))
        safety = backup_before(
            settings, target, reason="before-rollback", skip=skip_backup, run_id=runner.run_id,
            progress=progress,
        )  # fmt: skip
        if safety is not None and on_backup is not None:
            on_backup(safety)

        result: RunResult | None = None
        failure: str | None = None
        if ep.blockers:
            failure = "; ".join(f"{c.name}: {c.detail}" for c in ep.blockers)
        else:
            try:
                result = runner.run(ep.plan)
            except MigrationFailed as exc:
                if ep.backup is None:
                    raise
                failure = exc.message
            if failure is None:
                problems = verify_state(settings, url, ep)
                if problems:
                    raise CheckFailed(
                        "the rollback files ran, but the database is not back at the state before"
                        " the last run:\n" + "\n".join(problems),
                        hint=_restore_hint(ep),
                    )
                return EmergencyResult(ep, "reverted", safety, result, None, None)

        assert ep.backup is not None
        if confirm_restore is not None and not confirm_restore(ep.backup, failure or ""):
            raise UsageError(
                "cancelled: the backup was not restored; `pgshift status` shows where the"
                " database is now",
            )
        restored = _restore_locked(settings, target, ep.backup, progress, run_id=runner.run_id)
        problems = verify_state(settings, url, ep)
        if problems:
            raise BackupError(
                f"backup {ep.backup.id} was restored, but the database is not back at the state"
                " before the last run:\n" + "\n".join(problems)
            )
        return EmergencyResult(ep, "restored", safety, result, restored, failure)


def _restore_hint(ep: EmergencyPlan) -> str:
    if ep.backup is not None:
        return f"`pgshift rollback restore {ep.backup.id}` restores the backup taken before it"
    return "`pgshift status` shows what is applied"


__all__ = [
    "DryRunReport",
    "EmergencyPlan",
    "EmergencyResult",
    "Prepared",
    "RollbackOutcome",
    "dry_run",
    "plan_emergency",
    "prepare",
    "run_emergency",
    "run_restore",
    "run_rollback",
    "statement_locks",
    "verify_state",
]
