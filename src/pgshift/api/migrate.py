"""Planning and applying migrations: plan_up, apply, up, create, and the lint gate and backup
that `up` runs first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pgshift.api.project import connect, load_project
from pgshift.config import Settings
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.events import Emit
    from pgshift.lint.finding import Finding
    from pgshift.model import Migration
    from pgshift.ops.apply import RunResult
    from pgshift.plan import Plan
    from pgshift.project_files import Project


def plan_up(project: Project, target: Target, *, to: str | None = None) -> Plan:
    """What `up` would do on ``target``: the pending migrations in dependency order (up to
    ``to``), with the lint findings of the planned files for the target's PostgreSQL version.
    Findings in migrations up to the project's `lint_since` (an adopted history, applied here
    for the first time: a fresh database) are history and left out, as `validate` leaves them.

    Refuses (InputError, exit 2) a planned file whose ``@zero-downtime: true`` claim its SQL
    breaks; refuses drift (exit 4) and a half-reverted migration (exit 6). Reads, never writes.
    """
    from dataclasses import replace

    from pgshift import plan as planning

    plan = planning.plan_up(
        project.migrations, target.read_history(), to, problems=project.problems
    )
    if not plan.steps:
        return plan
    findings = _lint_gate(project.migrations, plan, target.facts.major)
    since = project.settings.lint_since
    if since is not None:
        history = {str(s.migration.path) for s in plan.steps if s.migration.version <= since}
        history |= {
            str(s.migration.rollback.path)
            for s in plan.steps
            if s.migration.version <= since and s.migration.rollback is not None
        }
        findings = [f for f in findings if f.file not in history]
    findings += _file_warnings(plan)
    return replace(plan, findings=tuple(findings))


def _file_warnings(plan: Plan) -> list[Finding]:
    """What `up` warns about but applies: problems in applied migrations' files, and planned
    migrations marked irreversible (SPEC 1)."""
    from pgshift.lint.registry import finding_for
    from pgshift.plan import IRREVERSIBLE

    found = [
        finding_for(
            "applied-file-problem",
            p.file,
            p.line,
            p.column,
            f"{p.message} (an applied migration's file: only a rollback that needs it refuses)",
        )
        for p in plan.warnings
    ]
    for step in plan.steps:
        m = step.migration
        if IRREVERSIBLE in m.header.lint_ignore and (
            m.rollback is None or any(p.file == str(m.rollback.path) for p in plan.warnings)
        ):
            found.append(
                finding_for(
                    "irreversible",
                    str(m.path),
                    m.header.line_of("lint-ignore"),
                    1,
                    f"migration {m.name} is marked irreversible: `pgshift rollback` cannot"
                    " revert it (a backup restore can)",
                )
            )
    return found


def apply(
    plan: Plan, target: Target, *, on_event: Emit | None = None, backup: bool = True
) -> RunResult:
    """Execute exactly ``plan`` on ``target`` and return what was done.

    A backup is taken first (unless ``backup`` is False or DB_BACKUP_ENABLED=false) and tied
    to the run, so `rollback emergency` can fall back to it. Under the runner lock the plan is
    made again from fresh history: steps another run finished meanwhile are skipped, any other
    change refuses the run (PlanChanged, exit 3) before anything runs. A failure raises the
    error with the partial RunResult as its ``result``. Progress, backup progress and
    health samples arrive through ``on_event`` (pgshift.events).
    """
    from dataclasses import replace

    from pgshift import events
    from pgshift.ops.apply import Runner, RunOptions, RunResult
    from pgshift.ops.monitor import monitor_for

    emit = on_event or events.ignore
    if plan.checksum_upgrades:
        _upgrade_checksums(plan, target)
    if not plan.steps:
        return RunResult("", ())
    settings = target.settings
    target.check_history_access()  # before the backup: a role that cannot keep history stops here
    runner = Runner(target, RunOptions.from_settings(settings), emit, monitor_for(settings, emit))
    reason = "before-up" if plan.kind == "up" else "before-rollback"
    backup_id = None
    if backup and settings.backup_enabled:
        backup_id = _backup_for_run(target, reason, runner.run_id, emit)
    try:
        result = runner.run(plan)
    except PgshiftError as exc:
        if isinstance(exc.result, RunResult):
            exc.result = replace(exc.result, backup_id=backup_id)
        raise
    return replace(result, backup_id=backup_id)


def _upgrade_checksums(plan: Plan, target: Target) -> list[str]:
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


def _backup_for_run(target: Target, reason: str, run_id: str, emit: Emit) -> str:
    """Take the backup a run starts with, reporting progress and the result as events."""
    from pgshift.ops.backup import backup_for
    from pgshift.ops.manifest import taken

    manifest, _ = backup_for(
        target.settings,
        target,
        reason=reason,
        run_id=run_id,
        progress=emit,
    )
    emit(taken(manifest))
    return manifest.id


def up(
    settings: Settings,
    *,
    to: str | None = None,
    on_event: Emit | None = None,
    backup: bool = True,
) -> RunResult:
    """Load the project, plan and apply it on the configured database, without asking.

    The one-call form of ``load_project`` + ``connect`` + ``plan_up`` + ``apply``; callers
    that want to see or confirm the plan first call those instead.
    """
    project = load_project(settings)
    with connect(settings) as target:
        return apply(plan_up(project, target, to=to), target, on_event=on_event, backup=backup)


def create(
    settings: Settings,
    title: str,
    *,
    zero_downtime: bool = False,
    estimated_duration: str | None = None,
    risk_level: str = "low",
    depends_on: Sequence[str] = (),
    now: datetime | None = None,
) -> tuple[Path, Path]:
    """Write a new migration and its rollback with a complete header; never overwrite."""
    from pgshift import scaffold
    from pgshift.source.naming import migration_file_names

    description = scaffold.checked_description(title, risk_level, estimated_duration)
    folder = settings.migrations_dir
    folder.mkdir(parents=True, exist_ok=True)
    existing = load_project(settings).migrations if depends_on else ()
    dependencies = scaffold.dependency_names(existing, depends_on, folder)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    version = scaffold.free_version(folder, moment)
    forward_name, rollback_name = migration_file_names(version, description)
    forward, rollback = folder / forward_name, folder / rollback_name
    title_text = title.strip()
    title_text = title_text[:1].upper() + title_text[1:]
    scaffold.write_new(
        {
            forward: scaffold.migration_text(
                version,
                description,
                title_text,
                moment,
                zero_downtime=zero_downtime,
                estimated_duration=estimated_duration,
                risk_level=risk_level,
                dependencies=dependencies,
            ),
            rollback: scaffold.rollback_text(version, description, title_text, moment),
        }
    )
    return forward, rollback


def _lint_gate(migrations: Sequence[Migration], plan: Plan, major: int) -> list[Finding]:
    """Refuse (InputError, exit 2) a planned file whose ``@zero-downtime: true`` is broken.

    Only the planned files (and their rollbacks) are linted; the others are read in plan
    order only for what they did (a validated NOT NULL check counts), which keeps an `up` of
    one new migration over a thousand applied ones from linting all of them again.
    """
    from pgshift.errors import InputError, Problem
    from pgshift.lint.engine import Linter
    from pgshift.project_files import beside

    versions = set(plan.versions)
    planned = {str(step.migration.path) for step in plan.steps}
    planned |= {str(step.migration.rollback.path) for step in plan.steps if step.migration.rollback}
    linted = Linter(major).lint_migrations(migrations, only=versions, helper=beside)
    findings = [f for f in linted if f.file in planned]
    findings.sort(key=lambda f: f.sort_key())
    broken = [f for f in findings if f.code == "zero-downtime-claim"]
    if broken:
        raise InputError(
            [Problem(f.file, f.line, f.message, f.column) for f in broken],
            hint="make the statements safe, or say @zero-downtime: false;"
            " `pgshift validate` shows every finding",
        )
    return findings
