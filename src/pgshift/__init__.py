"""pgshift: PostgreSQL schema migrations without downtime.

This module is the library API; the command line is a thin layer over it. Heavy modules (psycopg,
pglast, rich) are imported inside the functions that need them, so `import pgshift` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Until the rest moves into pgshift.api, the facade's own functions call some of these.
from pgshift.api.inspection import StatusReport, at_head, health, health_server, status, wait
from pgshift.api.migrate import _lint_gate, apply, create, plan_up, up
from pgshift.api.project import connect, database_url, load_project, read_history
from pgshift.api.validation import ValidateReport, validate
from pgshift.config import Settings, load_settings
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    from pgshift.db.target import ServerFacts, Target
    from pgshift.events import (
        BackupProgress,
        BackupTaken,
        Emit,
        Event,
        FleetEmit,
        FleetEvent,
        FleetProgress,
        LockRetry,
        RunFinished,
        RunStarted,
        StepApplied,
        StepFailed,
        StepSkipped,
        StepStarted,
        TargetEvent,
        TargetFinished,
        TargetStarted,
        WaveStarted,
    )
    from pgshift.fleet_targets import TargetSpec
    from pgshift.history import AppliedMigration, History, Progress
    from pgshift.lint.finding import Finding, Fix
    from pgshift.model import Migration, SchemaObject
    from pgshift.ops.apply import RunResult, StepResult
    from pgshift.ops.backup import RestoreResult
    from pgshift.ops.baseline import BaselinePlan, BaselineResult
    from pgshift.ops.fleet import FleetResult, FleetStatus, TargetOutcome, TargetStatus
    from pgshift.ops.health import Check, HealthReport
    from pgshift.ops.importing import ImportPlan, ImportResult
    from pgshift.ops.manifest import Manifest
    from pgshift.ops.readiness import HeadReport
    from pgshift.ops.rollback import (
        DryRunReport,
        EmergencyPlan,
        EmergencyResult,
        RestorePlan,
        SimulatedStep,
        Simulation,
        StatementPreview,
        StepPreview,
    )
    from pgshift.ops.trace import TracedLock, TracedStatement, TraceReport
    from pgshift.plan import MigrationState, Plan, RollbackCheck, Step
    from pgshift.project_files import Project
    from pgshift.source.importers import ImportedFile

#: The result and event types, re-exported lazily: `pgshift.RunResult` works without making
#: `import pgshift` pay for the modules behind them (see __getattr__ below).
_TYPES = {
    "AppliedMigration": "pgshift.history",
    "BackupProgress": "pgshift.events",
    "BackupTaken": "pgshift.events",
    "BaselinePlan": "pgshift.ops.baseline",
    "BaselineResult": "pgshift.ops.baseline",
    "Check": "pgshift.ops.health",
    "DryRunReport": "pgshift.ops.rollback",
    "EmergencyPlan": "pgshift.ops.rollback",
    "EmergencyResult": "pgshift.ops.rollback",
    "Event": "pgshift.events",
    "Finding": "pgshift.lint.finding",
    "FleetEvent": "pgshift.events",
    "FleetProgress": "pgshift.events",
    "FleetResult": "pgshift.ops.fleet",
    "FleetStatus": "pgshift.ops.fleet",
    "HeadReport": "pgshift.ops.readiness",
    "Fix": "pgshift.lint.finding",
    "HealthReport": "pgshift.ops.health",
    "History": "pgshift.history",
    "ImportPlan": "pgshift.ops.importing",
    "ImportResult": "pgshift.ops.importing",
    "ImportedFile": "pgshift.source.importers",
    "LockRetry": "pgshift.events",
    "Manifest": "pgshift.ops.backup",
    "Migration": "pgshift.model",
    "MigrationState": "pgshift.plan",
    "Plan": "pgshift.plan",
    "Progress": "pgshift.history",
    "Project": "pgshift.project_files",
    "RestorePlan": "pgshift.ops.rollback",
    "RestoreResult": "pgshift.ops.backup",
    "RollbackCheck": "pgshift.plan",
    "RunFinished": "pgshift.events",
    "RunResult": "pgshift.ops.apply",
    "RunStarted": "pgshift.events",
    "SchemaObject": "pgshift.model",
    "ServerFacts": "pgshift.db.target",
    "SimulatedStep": "pgshift.ops.rollback",
    "Simulation": "pgshift.ops.rollback",
    "StatementPreview": "pgshift.ops.rollback",
    "Step": "pgshift.plan",
    "StepApplied": "pgshift.events",
    "StepFailed": "pgshift.events",
    "StepPreview": "pgshift.ops.rollback",
    "StepResult": "pgshift.ops.apply",
    "StepSkipped": "pgshift.events",
    "StepStarted": "pgshift.events",
    "Target": "pgshift.db.target",
    "TargetEvent": "pgshift.events",
    "TargetFinished": "pgshift.events",
    "TargetOutcome": "pgshift.ops.fleet",
    "TargetSpec": "pgshift.fleet_targets",
    "TargetStarted": "pgshift.events",
    "TargetStatus": "pgshift.ops.fleet",
    "WaveStarted": "pgshift.events",
    "TraceReport": "pgshift.ops.trace",
    "TracedLock": "pgshift.ops.trace",
    "TracedStatement": "pgshift.ops.trace",
}


def __getattr__(name: str) -> object:
    """Import a re-exported type on first use."""
    module = _TYPES.get(name)
    if module is None:
        raise AttributeError(f"module 'pgshift' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AppliedMigration",
    "BackupProgress",
    "BackupTaken",
    "BaselinePlan",
    "BaselineResult",
    "Check",
    "DryRunReport",
    "EmergencyPlan",
    "EmergencyResult",
    "Event",
    "Finding",
    "Fix",
    "FleetEvent",
    "FleetProgress",
    "FleetResult",
    "FleetStatus",
    "HeadReport",
    "HealthReport",
    "History",
    "ImportPlan",
    "ImportResult",
    "ImportedFile",
    "LockRetry",
    "Manifest",
    "Migration",
    "MigrationState",
    "PgshiftError",
    "Plan",
    "Progress",
    "Project",
    "RestorePlan",
    "RestoreResult",
    "RollbackCheck",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "SchemaObject",
    "ServerFacts",
    "Settings",
    "SimulatedStep",
    "Simulation",
    "StatementPreview",
    "StatusReport",
    "Step",
    "StepApplied",
    "StepFailed",
    "StepPreview",
    "StepResult",
    "StepSkipped",
    "StepStarted",
    "Target",
    "TargetEvent",
    "TargetFinished",
    "TargetOutcome",
    "TargetSpec",
    "TargetStarted",
    "TargetStatus",
    "TraceReport",
    "TracedLock",
    "TracedStatement",
    "ValidateReport",
    "WaveStarted",
    "apply",
    "at_head",
    "backup",
    "baseline",
    "connect",
    "connect_target",
    "create",
    "database_url",
    "fleet_plan",
    "fleet_run",
    "fleet_run_name",
    "fleet_status",
    "fleet_up",
    "health",
    "health_server",
    "import_migrations",
    "list_backups",
    "load_project",
    "load_settings",
    "load_targets",
    "plan_baseline",
    "plan_emergency",
    "plan_import",
    "plan_restore",
    "plan_rollback",
    "plan_up",
    "preview_rollback",
    "read_history",
    "restore",
    "rollback",
    "rollback_emergency",
    "status",
    "target_settings",
    "up",
    "validate",
    "wait",
]

__version__ = "0.1.0"


# -- backups and rollbacks (issue 3) ---------------------------------------------------------------


def backup(settings: Settings, *, reason: str = "manual", on_event: Emit | None = None) -> Manifest:
    """Take a backup of the target now (`pgshift backup`), whatever DB_BACKUP_ENABLED says.

    Progress arrives through ``on_event`` as BackupProgress events, then one BackupTaken,
    the same events `apply` reports for the backup it takes.
    """
    from pgshift import events
    from pgshift.ops.backup import backup_for

    emit = on_event or events.ignore
    with connect(settings, purpose="backup") as target:
        manifest, _ = backup_for(settings, target, reason=reason, progress=emit)
    emit(
        events.BackupTaken(
            manifest.id, manifest.reason, manifest.size_bytes, manifest.sha256,
            len(manifest.versions),
        )
    )  # fmt: skip
    return manifest


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
    from pgshift import plan as planning

    return planning.plan_rollback(
        project.migrations,
        target.read_history(),
        count=count,
        to_version=to_version,
        problems=project.problems,
    )


def rollback(
    plan: Plan, target: Target, *, on_event: Emit | None = None, backup: bool = True
) -> RunResult:
    """Run a revert plan from ``plan_rollback``: `apply`, plus a refusal that comes first.

    `apply` runs a revert plan as well (with a "before-rollback" backup); this adds what a
    rollback owes someone already in trouble: while another run holds the migration lock it
    refuses at once (LockBusy, exit 3) instead of taking a backup that would queue behind that
    run's locks. Refuses a plan that is not a revert plan (UsageError, exit 2).
    """
    from pgshift.errors import UsageError
    from pgshift.ops.apply import RunResult
    from pgshift.ops.rollback import refuse_if_locked
    from pgshift.plan import REVERT

    if plan.kind != REVERT:
        raise UsageError(f"pgshift.rollback runs a revert plan, not an {plan.kind!r} plan")
    if not plan.steps:
        return RunResult("", ())
    refuse_if_locked(target)
    return apply(plan, target, on_event=on_event, backup=backup)


def preview_rollback(
    project: Project,
    target: Target,
    *,
    count: int | None = None,
    to_version: str | None = None,
    simulate: bool = False,
    scratch_url: str | None = None,
) -> DryRunReport:
    """Everything a rollback would do (`rollback dry-run`): order, SQL, locks and checks.

    Never changes the target and never refuses over a failed check: the report shows it
    (``report.ok``). ``simulate`` runs the rollback on a scratch database holding a copy of
    the target's schema and history (``scratch_url``'s server, else the embedded one).
    """
    from pgshift import plan as planning
    from pgshift.ops.rollback import dry_run

    plan = planning.revert_plan(
        project.migrations,
        target.read_history(),
        count=count,
        to_version=to_version,
        problems=project.problems,
    )
    return dry_run(plan, target, simulate=simulate, scratch_url=scratch_url)


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


# -- adopting pgshift (issue 9) --------------------------------------------------------------------


def plan_baseline(
    project: Project, target: Target, version: str, *, scratch_url: str | None = None
) -> BaselinePlan:
    """What `baseline V` would record, proven: the migrations up to ``version`` (plan order,
    with their dependencies) run with `up`'s Runner on a scratch database (``scratch_url``'s
    server, else the embedded one, started if needed), and its schema compared with the
    target's, pgshift's schema and other tools' bookkeeping tables left out.

    ``plan.differences`` lists a mismatch; the target is only read. Refuses (UsageError, exit 2)
    a history with a failed or half-applied migration, or one applied beyond the baseline;
    refuses drift (exit 4); a migration that fails on the scratch database raises the runner's
    error.
    """
    from pgshift.ops.baseline import plan_baseline as planned

    server = scratch_url
    if server is None:
        from pgshift import embedded

        server = embedded.ensure_running(project.settings.project_root)
    return planned(project.migrations, target, version, server)


def baseline(plan: BaselinePlan, target: Target, *, force: bool = False) -> BaselineResult:
    """Record ``plan``'s migrations as applied without running them (`pgshift baseline`).

    Under the runner lock, with the checksums and rollback text `up` would record and one
    `baseline` event each, after comparing the target with the proof once more: a mismatch
    refuses (DriftError, exit 4, the differences listed) unless ``force``, which records anyway
    and says so in every event (with the differences).
    """
    from pgshift.ops.baseline import run_baseline

    return run_baseline(plan, target, force=force)


def plan_import(
    settings: Settings, tool: str, source: Path | str, *, target: Target | None = None
) -> ImportPlan:
    """What `import --from TOOL SRC` would write into the migrations folder, and record.

    ``tool`` is diesel, golang-migrate, dbmate or flyway. Refuses (exit 2) to overwrite a file
    or reuse a version of the folder. With ``target``, reads that tool's history table there:
    a dirty or failed entry refuses (ImportRefused, exit 2), an entry without a source file
    refuses as drift (exit 4); nothing is written either way.
    """
    from pgshift.ops.importing import plan_import as planned
    from pgshift.source.importers import tool_named

    return planned(tool_named(tool), Path(source), settings.migrations_dir, target)


def import_migrations(plan: ImportPlan, *, target: Target | None = None) -> ImportResult:
    """Write ``plan``'s files (never replacing one) and, with ``target``, record the migrations
    the old tool had applied as applied in pgshift's history (an `import` event each, under
    the runner lock), so that `up` applies only the rest.
    """
    from pgshift.ops.importing import run_import

    return run_import(plan, target)


# -- fleets (issue 11): the single-target path run per target --------------------------------------


def load_targets(
    file: str | Path | None = None,
    *,
    query: str | None = None,
    control_url: str | None = None,
    shard: str | None = None,
) -> tuple[TargetSpec, ...]:
    """A fleet's targets: the ``[[target]]`` tables of ``file``, or the rows ``query`` returns
    on the control database (name, url, schema, labels); ``shard`` "I/N" keeps this worker's.

    A bad file or row raises InputError naming file:line:key (exit 2).
    """
    from pgshift import fleet_targets as ft
    from pgshift.errors import UsageError

    if (file is None) == (query is None):
        raise UsageError("name the targets with a targets file or with --targets-query, not both")
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the targets file {path}: {exc.strerror}") from None
        specs = ft.parse_targets(text, str(path))
    else:
        if control_url is None:
            raise UsageError("--targets-query runs on the control database: give --control-url")
        from pgshift.db.control import query_targets

        assert query is not None
        specs = ft.targets_from_rows(query_targets(control_url, query), "--targets-query")
    if shard is not None:
        try:
            index, count = ft.parse_shard(shard)
        except ValueError as exc:
            raise UsageError(f"bad --shard: {exc}") from None
        specs = ft.in_shard(specs, index, count)
    return specs


def target_settings(settings: Settings, spec: TargetSpec) -> Settings:
    """The settings of one target of a fleet: its URL, its history schema, its backup folder."""
    from dataclasses import replace

    return replace(
        settings,
        database_url=spec.url,
        schema=spec.history_schema(settings.schema),
        backup_dir=settings.backup_dir / spec.name,
    )


def connect_target(settings: Settings, spec: TargetSpec, *, purpose: str = "runner") -> Target:
    """The Target of one fleet target (its tenant schema as the session's search_path)."""
    from pgshift.db.target import Target

    return Target.from_settings(
        target_settings(settings, spec), spec.url, purpose=purpose, tenant_schema=spec.schema
    )


class _FleetPlanner:
    """plan_up for many targets, linting each distinct plan once per server major version."""

    def __init__(self, project: Project) -> None:
        import threading

        self.project = project
        self._lock = threading.Lock()
        self._gates: dict[tuple[int, tuple[str, ...]], list[Finding] | PgshiftError] = {}

    def plan(self, target: Target) -> Plan:
        plan = self.plan_from(target.read_history())
        return self.linted(plan, target.facts.major) if plan.steps else plan

    def plan_from(self, history: History) -> Plan:
        """The plan of a history already read (not yet linted: see linted)."""
        from pgshift import plan as planning

        project = self.project
        return planning.plan_up(project.migrations, history, None, problems=project.problems)

    def linted(self, plan: Plan, major: int) -> Plan:
        """``plan`` with its lint findings on server ``major``; a refused plan raises."""
        from dataclasses import replace

        key = (major, plan.versions)
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                try:
                    gate = _lint_gate(self.project.migrations, plan, key[0])
                except PgshiftError as exc:
                    gate = exc
                self._gates[key] = gate
        if isinstance(gate, PgshiftError):
            raise gate
        return replace(plan, findings=tuple(gate))


def _fleet_histories(
    settings: Settings, targets: Sequence[TargetSpec], concurrency: int, purpose: str
) -> dict[str, History | PgshiftError]:
    """Every target's history, read over ONE read-only session per database (same URL).

    The tenants of one database are read together (db/store.read_histories: one statement
    for which histories exist, then one per 25 tenants), so a fleet of tenants with nothing
    to do costs one session, not one per tenant. A database that cannot be read gives its
    error to each of its targets.
    """
    from pgshift.db.store import read_histories
    from pgshift.ops import fleet

    by_url: dict[str, list[TargetSpec]] = {}
    for spec in targets:
        by_url.setdefault(spec.url, []).append(spec)

    def one(group: list[TargetSpec]) -> dict[str, History | PgshiftError]:
        schemas = [s.history_schema(settings.schema) for s in group]
        try:
            found = read_histories(group[0].url, schemas, purpose)
        except PgshiftError as exc:
            return {s.name: exc for s in group}
        return {s.name: found[schema] for s, schema in zip(group, schemas, strict=True)}

    histories: dict[str, History | PgshiftError] = {}
    for part in fleet.map_targets(list(by_url.values()), one, concurrency):
        histories.update(part)
    return histories


def fleet_plan(
    project: Project, targets: Sequence[TargetSpec], *, concurrency: int = 8
) -> FleetResult:
    """What `fleet up` would do: each target planned on its own (reads, never writes).

    A target with something to do is ``pending`` with the versions in ``versions``; one that
    cannot be planned (unreachable, drift) is ``failed`` with its exit code.
    """
    from pgshift.ops import fleet

    planner = _FleetPlanner(project)
    histories = _fleet_histories(project.settings, targets, concurrency, "plan")

    def one(spec: TargetSpec) -> TargetOutcome:
        try:
            history = histories[spec.name]
            if isinstance(history, PgshiftError):
                raise history
            plan = planner.plan_from(history)
            if plan.steps:  # linting needs the server's version: this target's own session
                with connect_target(project.settings, spec, purpose="plan") as target:
                    plan = planner.plan(target)
        except PgshiftError as exc:
            return fleet.TargetOutcome(spec.name, fleet.FAILED, exc.exit_code, message=exc.message)
        status = "pending" if plan.steps else fleet.UP_TO_DATE
        return fleet.TargetOutcome(spec.name, status, versions=plan.versions)

    return fleet.FleetResult(tuple(fleet.map_targets(targets, one, concurrency)))


def fleet_up(
    project: Project,
    targets: Sequence[TargetSpec],
    *,
    concurrency: int = 8,
    canary: int | None = None,
    max_failures: int | None = None,
    backup: bool = True,
    on_event: FleetEmit | None = None,
    control_url: str | None = None,
    run: str | None = None,
    worker: str | None = None,
    lease_s: float = 30.0,
) -> FleetResult:
    """Plan and apply every target through the single-target path, in waves, in a bounded pool.

    The canary wave (``canary`` targets, else those labelled canary) runs first, and the rest
    only if none of it failed; after ``max_failures`` failures no new target starts. Every
    target's history is read first, over one read-only session per database for all its
    tenants; a target with nothing pending costs only that, and only a target with work opens
    its own Target (session and lock). A target's failure is its outcome, never an
    exception: the result's ``exit_code`` is the worst target's. Events arrive through
    ``on_event`` wrapped as TargetEvent with the target's name, with TargetStarted,
    TargetFinished and FleetProgress (done / failed / remaining) beside them.

    With ``control_url`` the targets are claimed from the run table ``run`` (default: one per
    migration set) of that database, shared by every worker that names it (see
    docs/fleets.md); the result is then the whole run's.
    """
    from pgshift import events
    from pgshift.ops import fleet

    histories = _fleet_histories(project.settings, targets, concurrency, "plan")
    work = _fleet_work(project, backup, histories)
    options = fleet.FleetOptions(concurrency, canary, max_failures)
    emit = on_event or events.ignore_fleet
    if control_url is None:
        return fleet.run_fleet(targets, work, options, emit)
    from pgshift.db.control import ControlBoard

    board = ControlBoard(control_url, run or fleet_run_name(project))
    try:
        claim = fleet.ClaimOptions(worker or _worker_name(), lease_s)
        return fleet.run_claimed(targets, work, options, board, claim, emit)
    finally:
        board.close()


def fleet_run_name(project: Project) -> str:
    """The default run of a control database: one per set of migrations (head + checksum), so
    the next deploy starts a new run while re-running this one resumes it."""
    import hashlib

    digest = hashlib.sha256("".join(m.checksum for m in project.migrations).encode())
    head = project.migrations[-1].version if project.migrations else "empty"
    return f"{head}-{digest.hexdigest()[:12]}"


def _worker_name() -> str:
    import os
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _fleet_work(
    project: Project, backup: bool, histories: dict[str, History | PgshiftError]
) -> Callable[[TargetSpec, Emit], TargetOutcome]:
    """One target's `up`: connect, plan, apply (the single-target path), as an outcome.

    ``histories`` were read beforehand, one session per database (_fleet_histories): a target
    they show up to date is done without a session of its own; any other (pending, failed,
    or not read) opens its Target and plans again on it, under its own lock as always.
    """
    from pgshift.ops import fleet
    from pgshift.ops.apply import RunResult

    planner = _FleetPlanner(project)

    def work(spec: TargetSpec, emit: Emit) -> TargetOutcome:
        from pgshift.errors import DatabaseUnavailable

        read = histories.get(spec.name)
        if isinstance(read, DatabaseUnavailable):
            raise read
        history = None if isinstance(read, PgshiftError) else read
        if history is not None and not planner.plan_from(history).steps:
            return fleet.TargetOutcome(spec.name, fleet.UP_TO_DATE)
        with connect_target(project.settings, spec) as target:
            plan = planner.plan(target)
            if not plan.steps:
                return fleet.TargetOutcome(spec.name, fleet.UP_TO_DATE)
            try:
                result = apply(plan, target, on_event=emit, backup=backup)
            except PgshiftError as exc:
                done = exc.result if isinstance(exc.result, RunResult) else RunResult("", ())
                return fleet.TargetOutcome(
                    spec.name,
                    fleet.FAILED,
                    exc.exit_code,
                    sum(1 for s in done.steps if s.status == "applied"),
                    plan.versions,
                    exc.message,
                    done.run_id or None,
                )
        applied = sum(1 for s in result.steps if s.status == "applied")
        return fleet.TargetOutcome(
            spec.name, fleet.APPLIED, 0, applied, plan.versions, run_id=result.run_id
        )

    return work


def fleet_status(
    project: Project,
    targets: Sequence[TargetSpec],
    *,
    concurrency: int = 8,
) -> FleetStatus:
    """One row per target (head, pending, failed, drifted, last run); reads, never writes.

    An unreachable target is a row with its error (exit code 3), not an exception.
    """
    from pgshift.ops import fleet
    from pgshift.plan import migration_states

    histories = _fleet_histories(project.settings, targets, concurrency, "status")

    def one(spec: TargetSpec) -> TargetStatus:
        history = histories[spec.name]
        if isinstance(history, PgshiftError):
            exc = history
            return fleet.TargetStatus(spec.name, None, 0, 0, 0, 0, None, exc.message, exc.exit_code)
        return fleet.target_status(spec.name, migration_states(project.migrations, history))

    return fleet.FleetStatus(tuple(one(spec) for spec in targets))


def fleet_run(control_url: str, run: str) -> FleetResult:
    """The shared run ``run`` of a control database as it stands (`fleet status --control-url`)."""
    from pgshift.db.control import ControlBoard
    from pgshift.ops import fleet

    board = ControlBoard(control_url, run)
    try:
        return fleet.FleetResult(tuple(fleet.run_outcomes(board.rows())))
    finally:
        board.close()
