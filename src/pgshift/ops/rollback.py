"""Rollback orchestration on a Target: dry runs and simulations, restores, and emergency.

Why it is shaped this way: these commands are run when something already went wrong, so each
one checks everything it can (files, dependencies, the lock) before it changes anything, takes a
backup first, runs the rollback files through the same Runner as `up` (one transaction per file,
statements PostgreSQL refuses in a transaction run alone with recorded progress), and says
exactly where it stopped. `emergency` only reports success after reading the database back.

`rollback safe` / `to-version` need little of their own here: their plan is pure
(plan.plan_safe_rollback) and ops/run.py runs it as it runs every plan, refusing at once while
another run holds the lock. Emergency starts its run there too (the same refusal, Runner,
monitor and backup). Every function takes the Target the caller opened: the connections are
the Target's, and only a simulation's scratch database is opened here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pgshift import events as ev
from pgshift.db.target import Target
from pgshift.errors import BackupError, CheckFailed, MigrationFailed, UsageError
from pgshift.ops.run import (
    BEFORE_ROLLBACK,
    backup_before,
    refuse_if_locked,
    run_plan,
    start_run,
)
from pgshift.plan import (
    ERROR,
    Plan,
    RollbackCheck,
    check_rollback,
    emergency_selection,
    half_reverted_versions,
    plan_revert,
)
from pgshift.source.locks import statement_locks

if TYPE_CHECKING:
    from collections.abc import Callable

    from pgshift.history import History
    from pgshift.model import Migration, SchemaObject, Statement
    from pgshift.ops.apply import Runner, RunOptions, RunResult
    from pgshift.ops.backup import RestoreResult
    from pgshift.ops.manifest import Manifest
    from pgshift.project_files import Project


# -- shared pieces ---------------------------------------------------------------------------------


def run_options(target: Target) -> RunOptions:
    from pgshift.ops.apply import RunOptions

    return RunOptions.from_settings(target.settings)


# -- rollback safe / to-version --------------------------------------------------------------------


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
    from pgshift import plan as planning
    from pgshift.ops.expand import undo_half_expansions

    history = target.read_history()
    plan = planning.plan_safe_rollback(
        project.migrations,
        history,
        count=count,
        to_version=to_version,
        problems=project.problems,
    )
    return undo_half_expansions(plan, target, history)


def run_rollback(
    plan: Plan, target: Target, *, emit: ev.Emit = ev.ignore, backup: bool = True
) -> RunResult:
    """Run a revert plan as every run is run (ops/run.py), refusing at once while another run
    holds the lock; a plan that is not a revert plan is refused (UsageError)."""
    from pgshift.plan import REVERT

    if plan.kind != REVERT:
        raise UsageError(f"pgshift.rollback runs a revert plan, not an {plan.kind!r} plan")
    return run_plan(plan, target, emit=emit, backup=backup, refuse_busy=True)


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
    """`rollback dry-run`: the order, the SQL with its locks, every check, and a simulation.

    ``plan`` is the revert plan itself, checks included, so a library user who likes what the
    report says can hand it to `pgshift.rollback` once the checks pass.
    """

    versions: tuple[str, ...]
    checks: tuple[RollbackCheck, ...]
    steps: tuple[StepPreview, ...]
    simulation: Simulation | None = None
    warnings: tuple[str, ...] = field(default=())
    plan: Plan = field(default=Plan(()), repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """No check failed and, when simulated, the simulation worked."""
        failed = any(c.status == ERROR for c in self.checks)
        return not failed and (self.simulation is None or self.simulation.ok)


def _preview(plan: Plan, major: int | None = None) -> tuple[StepPreview, ...]:
    """Each revert step's statements with their locks, as the lock table says them for the
    target's ``major`` (the newest major's, with PostgreSQL 15's where it differs, if unknown)."""
    previews: list[StepPreview] = []
    for step in plan.steps:
        m = step.migration
        if m.rollback is None:
            continue
        header = m.rollback.header

        def preview(stmt: Statement, transaction: bool = header.transaction) -> StatementPreview:
            return StatementPreview(
                stmt.line,
                stmt.sql,
                stmt.transactional and transaction,
                statement_locks(stmt.sql, major),
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
    plan: Plan,
    target: Target,
    *,
    simulate: bool = False,
    scratch_url: str | None = None,
    emit: ev.Emit = ev.ignore,
) -> DryRunReport:
    """Everything ``plan`` (a revert plan, checks filled) would do; optionally proven on a copy.

    Read-only on the target: a simulation copies its schema and history into a scratch
    database and runs the plan there, and only when no check failed; ``emit`` gets what it
    is doing meanwhile (Working events, task "simulate").
    """
    ok = not any(c.status == ERROR for c in plan.checks)
    simulation = None
    if simulate and ok and plan.steps:
        with ev.working(emit, "simulate") as say:
            simulation = _simulate(target, plan, scratch_url, say)
    previews = _preview(plan, target.facts.major)
    return DryRunReport(plan.selection, plan.checks, previews, simulation, plan=plan)


def preview_rollback(
    project: Project,
    target: Target,
    *,
    count: int | None = None,
    to_version: str | None = None,
    simulate: bool = False,
    scratch_url: str | None = None,
    on_event: ev.Emit | None = None,
) -> DryRunReport:
    """Everything a rollback would do (`rollback dry-run`): order, SQL, locks and checks.

    Never changes the target and never refuses over a failed check: the report shows it
    (``report.ok``). ``simulate`` runs the rollback on a scratch database holding a copy of
    the target's schema and history (``scratch_url``'s server, else the embedded one).
    """
    emit = on_event or ev.ignore
    from pgshift import plan as planning

    plan = planning.revert_plan(
        project.migrations,
        target.read_history(),
        count=count,
        to_version=to_version,
        problems=project.problems,
    )
    return dry_run(plan, target, simulate=simulate, scratch_url=scratch_url, emit=emit)


def _collector(collected: list[SimulatedStep], say: Callable[..., None], total: int) -> ev.Emit:
    """An event sink that keeps each simulated step's outcome, and says which step runs."""
    started = 0

    def collect(event: ev.Event) -> None:
        nonlocal started
        match event:
            case ev.StepStarted(name=name):
                started += 1
                say(f"reverting {name} on the scratch copy", started, total)
            case ev.StepApplied(version=version, duration_ms=ms):
                collected.append(SimulatedStep(version, "reverted", ms))
            case ev.StepSkipped(version=version, reason=reason):
                collected.append(SimulatedStep(version, "skipped", 0, reason))
            case ev.StepFailed(version=version, message=message):
                collected.append(SimulatedStep(version, "failed", None, message))
            case _:
                pass

    return collect


def _simulate(
    target: Target, plan: Plan, scratch_url: str | None, say: Callable[..., None]
) -> Simulation:
    """Run the plan on a scratch database holding the target's schema and history.

    The scratch database goes on ``scratch_url``'s server, else on the target's own server
    when its role may create one (the same major), else on the embedded server.
    """
    from pgshift.ops.apply import Runner
    from pgshift.ops.backup import copy_schema
    from pgshift.ops.scratch import scratch_server

    settings = target.settings
    server = scratch_server(settings, target.url, scratch_url)
    collected: list[SimulatedStep] = []
    error: str | None = None
    say("making a scratch database")
    with server.database("simulate") as made:
        try:
            say(f"copying the target's schema and history into the {made.describe()}")
            # pg_dump needs the target's URL; it reaches pg_dump through the password file only.
            copy_schema(target.url, made.url, history_schema=settings.connection.schema)
            with Target.from_settings(settings, made.url, purpose="simulate") as scratch_target:
                collect = _collector(collected, say, len(plan.steps))
                runner = Runner(scratch_target, run_options(target), collect)
                try:
                    runner.run(plan)
                except MigrationFailed as exc:
                    error = f"on the {made.describe()}: {exc.message}"
        except BackupError as exc:
            error = f"copying the target's schema into the {made.describe()}: {exc.message}"
    return Simulation(made.describe(), tuple(collected), error is None, error)


# -- restore ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePlan:
    """A verified backup and what restoring it into the target would drop; nothing done yet."""

    manifest: Manifest
    dropped: tuple[SchemaObject, ...]  # objects created after the backup, dropped by restoring
    database: str  # the target database's name, for the question a person is asked


def plan_restore(target: Target, backup_id: str) -> RestorePlan:
    """What `rollback restore` would do: the backup, its checksum verified, and the objects
    newer than it that restoring drops. Reads, never writes; a backup of another database is
    refused (UsageError, exit 2), a corrupt one too (BackupError, exit 7).
    """
    from pgshift.ops.backup import inspect_restore as inspect
    from pgshift.ops.manifest import get_manifest

    backup_dir = target.settings.backup.dir
    manifest = get_manifest(backup_dir, backup_id)
    extras, database = inspect(target, backup_dir, manifest)
    if manifest.database != database:
        raise UsageError(
            f"backup {manifest.id} is of database {manifest.database!r}, but the target is"
            f" {database!r}; nothing was restored",
            hint="name the database the backup was taken from with --database-url",
        )
    return RestorePlan(manifest, extras, database)


def run_restore(
    plan: RestorePlan, target: Target, *, emit: ev.Emit = ev.ignore, backup: bool = True
) -> RestoreResult:
    """Take a safety backup and restore ``plan``'s backup under the runner lock."""
    from dataclasses import replace

    refuse_if_locked(target)
    safety = backup_before(target, BEFORE_ROLLBACK, None, emit) if backup else None
    restored = _restore_locked(target, plan.manifest, emit)
    return replace(restored, backup_id=safety.id if safety else None)


def _restore_locked(
    target: Target, manifest: Manifest, emit: ev.Emit, run_id: str | None = None
) -> RestoreResult:
    """Restore under the target's runner lock, so no `up` or rollback runs meanwhile."""
    from pgshift.ops.backup import DEFAULT_LOCK_WAIT_MS, restore_backup

    settings = target.settings
    lock = target.runner_lock(purpose="restore")
    lock.acquire()
    try:
        return restore_backup(
            target,
            settings.backup.dir,
            manifest,
            run_id=run_id,
            lock_timeout_ms=max(settings.runner.lock_timeout_ms, DEFAULT_LOCK_WAIT_MS),
            progress=emit,
        )
    finally:
        lock.release()


# -- emergency -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmergencyPlan:
    """How `rollback emergency` means to get back to the state before the last `up` run."""

    run_id: str | None  # the most recent run that applied migrations
    versions: tuple[str, ...]  # to revert: half-applied ones, the run's, half-reverted ones
    expected: tuple[str, ...]  # the applied versions once the rollback files have run
    plan: Plan
    checks: tuple[RollbackCheck, ...]
    backup: Manifest | None  # the backup taken before that run, if any
    migrations: tuple[Migration, ...] = field(repr=False)
    #: Half-reverted migrations of older runs, finished too (the revert is what they need).
    finishing: tuple[str, ...] = ()

    @property
    def blockers(self) -> tuple[RollbackCheck, ...]:
        """Failed checks: the rollback files cannot be used, only the backup can."""
        return tuple(c for c in self.checks if c.status == ERROR)

    @property
    def backup_is_the_goal(self) -> bool:
        """The backup before the run has exactly the versions the revert leaves applied, so its
        inventory is the schema to expect. Not so once a migration of an older run was reverted
        since (a finished half-revert, a rollback past the run): the backup still holds its
        schema, which is rightly gone, and only versions and progress can be checked."""
        return self.backup is not None and tuple(sorted(self.backup.versions)) == self.expected

    @property
    def stuck(self) -> bool:
        """Neither the rollback files nor a backup can get back: it is refused, unasked."""
        return bool(self.blockers) and self.backup is None


@dataclass(frozen=True)
class EmergencyResult:
    """What `rollback emergency` did, once the database was read back and found right."""

    plan: EmergencyPlan
    mode: str  # "nothing", "reverted", "restored"
    safety_backup: Manifest | None
    result: RunResult | None  # the revert run, partial when it failed and the backup was used
    restored: RestoreResult | None
    failure: str | None  # why the rollback files were not enough, when restored


def plan_emergency(project: Project, target: Target) -> EmergencyPlan:
    """What `rollback emergency` would do to get back to the state before the last `up` run.

    Its migrations, any half-applied one and any half-reverted one (whichever run applied it)
    to revert, the checks of their rollback files, and the backup taken before that run to
    fall back to. Reads, never writes.
    """
    from pgshift.db.inventory import current_database
    from pgshift.ops.expand import undo_half_expansions
    from pgshift.ops.manifest import backups_in

    migrations, problems = project.migrations, project.problems
    history = target.read_history()
    run_id = target.store.last_up_run(target.session)
    database = current_database(target.session)
    versions, expected = emergency_selection(migrations, history, run_id)
    checks = check_rollback(migrations, history, versions, problems) if versions else ()
    from_older_runs = _older_half_reverts(history, run_id)
    candidates = [
        m
        for m in backups_in(target.settings.backup.dir)
        if run_id is not None
        and m.run_id == run_id
        and m.reason == "before-up"
        and m.database == database
    ]
    return EmergencyPlan(
        run_id=run_id,
        versions=versions,
        expected=expected,
        plan=undo_half_expansions(plan_revert(migrations, history, versions), target, history),
        checks=tuple(checks),
        backup=candidates[-1] if candidates else None,
        migrations=tuple(migrations),
        finishing=from_older_runs,
    )


def _older_half_reverts(history: History, run_id: str | None) -> tuple[str, ...]:
    applied = history.applied_versions()
    return tuple(v for v in half_reverted_versions(history) if applied[v].run_id != run_id)


def verify_state(target: Target, ep: EmergencyPlan, *, restored: bool = False) -> list[str]:
    """Differences between the database and the state aimed for (empty: back there).

    Checks the applied versions, that nothing planned is left half-way (a half-reverted
    migration included), and every table, column, index, constraint, view, function and type
    against the backup taken before the run when it holds the state aimed for: always once
    ``restored``, else when ``ep.backup_is_the_goal``.
    """
    from pgshift.db.inventory import inventory, quote_ident
    from pgshift.ops.manifest import compare_inventories

    history = target.read_history()
    reference = ep.backup if restored or ep.backup_is_the_goal else None
    problems: list[str] = []
    applied = tuple(sorted(history.applied_versions()))
    wanted = ep.backup.versions if restored and ep.backup is not None else ep.expected
    if applied != tuple(sorted(wanted)):
        problems.append(f"applied versions are {list(applied)}, expected {list(wanted)}")
    for p in history.in_progress:
        if p.version in ep.versions:
            problems.append(f"{p.version} is still half-way ({p.action})")
    for b in history.backfills:
        if b.version in ep.versions and b.action == "apply":
            problems.append(f"{b.version}'s backfill is still half-way ({b.batches} batches)")
    if reference is not None:
        objects = inventory(target.session)
        ours = quote_ident(target.session, target.schema)
        problems.extend(compare_inventories(reference.objects, objects, ignore_quoted_schema=ours))
    return problems


def run_emergency(
    ep: EmergencyPlan,
    target: Target,
    *,
    emit: ev.Emit = ev.ignore,
    backup: bool = True,
    restore_confirmed: bool = False,
) -> EmergencyResult:
    """Return to the state before the last `up` run; success only once verified.

    Reverts with the rollback files; if one is missing or broken, or fails, restores the
    backup taken before the run, but only when ``restore_confirmed`` (rows written since are
    lost, so someone must have agreed). A failure carries the partial RunResult.
    """
    if not ep.versions:
        _verify_or_raise(
            target,
            ep,
            "nothing is left to revert from the last run, but the database differs from the"
            " state before it",
        )
        return EmergencyResult(ep, "nothing", None, None, None, None)
    _refuse_without_a_way_back(ep, restore_confirmed)
    run = start_run(target, emit, reason=BEFORE_ROLLBACK, backup=backup, refuse_busy=True)
    safety, runner = run.backup, run.runner
    result, failure = _revert(runner, ep, restore_confirmed)
    if failure is None:
        _verify_or_raise(
            target,
            ep,
            "the rollback files ran, but the database is not back at the state before the last run",
        )
        return EmergencyResult(ep, "reverted", safety, result, None, None)
    assert ep.backup is not None  # _revert and _refuse_without_a_way_back made sure
    restored = _restore_locked(target, ep.backup, emit, run_id=runner.run_id)
    problems = verify_state(target, ep, restored=True)
    if problems:
        raise BackupError(
            f"backup {ep.backup.id} was restored, but the database is not back at the state"
            " before the last run:\n" + "\n".join(problems)
        )
    return EmergencyResult(ep, "restored", safety, result, restored, failure)


def _refuse_without_a_way_back(ep: EmergencyPlan, restore_confirmed: bool) -> None:
    """Nothing is changed when the rollback files cannot be used and the backup may not be."""
    if not ep.blockers:
        return
    why = "\n".join(f"{c.name}: {c.detail}" for c in ep.blockers)
    if ep.stuck:
        raise CheckFailed(
            "cannot get back to the state before the last run: the rollback files cannot be"
            " used and no backup was taken before that run; nothing was changed:\n" + why,
            hint="fix the rollback files, then run `pgshift rollback emergency` again",
        )
    if not restore_confirmed:
        raise UsageError(
            "the rollback files cannot be used, and restoring the backup taken before the"
            " last run was not confirmed; nothing was changed:\n" + why,
            hint=_restore_hint(ep),
        )


def _revert(
    runner: Runner, ep: EmergencyPlan, restore_confirmed: bool
) -> tuple[RunResult | None, str | None]:
    """Run the rollback files; (their result, why the backup must be restored instead).

    A failing rollback file falls back to the backup when there is one and restoring it was
    confirmed; otherwise its error goes up, carrying the partial result.
    """
    if ep.blockers:
        return None, "; ".join(f"{c.name}: {c.detail}" for c in ep.blockers)
    try:
        return runner.run(ep.plan), None
    except MigrationFailed as exc:
        if ep.backup is None:
            raise
        if not restore_confirmed:
            exc.hint = _restore_hint(ep)
            raise
        return exc.result, exc.message


def _verify_or_raise(target: Target, ep: EmergencyPlan, message: str) -> None:
    """CheckFailed with ``message`` and every difference, unless the database is right."""
    problems = verify_state(target, ep)
    if problems:
        raise CheckFailed(
            f"{message}:\n" + "\n".join(problems),
            hint=_restore_hint(ep),
        )


def _restore_hint(ep: EmergencyPlan) -> str:
    if ep.backup is not None:
        return f"`pgshift rollback restore {ep.backup.id}` restores the backup taken before it"
    return "`pgshift status` shows what is applied"


__all__ = [
    "DryRunReport",
    "EmergencyPlan",
    "EmergencyResult",
    "RestorePlan",
    "dry_run",
    "plan_emergency",
    "plan_restore",
    "plan_rollback",
    "preview_rollback",
    "run_emergency",
    "run_restore",
    "run_rollback",
    "statement_locks",
    "verify_state",
]
