"""Fleets, the single-target path run per target: load_targets, target_settings, connect_target,
fleet_plan, fleet_up, fleet_status, fleet_run, fleet_run_name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pgshift.api.migrate import _lint_gate, apply
from pgshift.config import Settings
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.events import (
        Emit,
        FleetEmit,
    )
    from pgshift.fleet_targets import TargetSpec
    from pgshift.history import History
    from pgshift.lint.finding import Finding
    from pgshift.ops.fleet import FleetResult, FleetStatus, TargetOutcome, TargetStatus
    from pgshift.plan import Plan
    from pgshift.project_files import Project


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
                done = exc.result or RunResult("", ())
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
