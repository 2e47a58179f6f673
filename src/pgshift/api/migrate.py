"""Planning and applying migrations: plan_up, apply, up and create, skins over ops/planning.py
(the plan, its lint gate and findings) and ops/run.py (everything around a run).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pgshift.api.project import connect, load_project
from pgshift.config import Settings

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.events import Emit
    from pgshift.ops.apply import RunResult
    from pgshift.ops.expand import ContractCheck
    from pgshift.plan import Plan
    from pgshift.project_files import Project


def plan_up(
    project: Project, target: Target, *, to: str | None = None, preflight: bool = True
) -> Plan:
    """What `up` would do on ``target``: the pending migrations in dependency order (up to
    ``to``), with the lint findings of the planned files for the target's PostgreSQL version,
    and their pre-flight results (``plan.preflight``: checks of the target's data, run
    read-only; ``preflight=False`` skips them, and the run then logs `preflight_skipped`).
    Findings in migrations up to the project's `lint_since` (an adopted history, applied here
    for the first time: a fresh database) are history and left out, as `validate` leaves them.

    Refuses (InputError, exit 2) a planned file whose ``@zero-downtime: true`` claim its SQL
    breaks; refuses drift (exit 4) and a half-reverted migration (exit 6). Reads, never writes.
    """
    from pgshift.ops.planning import plan_for

    return plan_for(project, target, to=to, preflight=preflight)


def apply(
    plan: Plan, target: Target, *, on_event: Emit | None = None, backup: bool = True
) -> RunResult:
    """Execute exactly ``plan`` on ``target`` and return what was done.

    A backup is taken first (unless ``backup`` is False or DB_BACKUP_ENABLED=false) and tied
    to the run, so `rollback emergency` can fall back to it. Under the runner lock the plan is
    made again from fresh history: steps another run finished meanwhile are skipped, any other
    change refuses the run (PlanChanged, exit 3) before anything runs. A failure raises the
    error with the partial RunResult as its ``result``. A plan whose pre-flight predicts a
    failure is refused first (PreflightFailed, exit 1, the failing results as ``results``):
    no backup, no lock, nothing changed. Progress, backup progress and
    health samples arrive through ``on_event`` (pgshift.events).
    """
    from pgshift import events
    from pgshift.ops.run import run_plan

    return run_plan(plan, target, emit=on_event or events.ignore, backup=backup)


def up(
    settings: Settings,
    *,
    to: str | None = None,
    on_event: Emit | None = None,
    backup: bool = True,
    preflight: bool = True,
) -> RunResult:
    """Load the project, plan and apply it on the configured database, without asking
    (a failing pre-flight check refuses it, PreflightFailed; ``preflight=False`` skips them).

    The one-call form of ``load_project`` + ``connect`` + ``plan_up`` + ``apply``; callers
    that want to see or confirm the plan first call those instead. Finding nothing to do is
    remembered, as by `pgshift up`: the same files and history then answer at once with an
    empty result, without reading either again.
    """
    from pgshift import events
    from pgshift.errors import RunResult as Done
    from pgshift.ops.run import run_up
    from pgshift.ops.uptodate import UP, Verdicts

    verdicts = Verdicts(settings) if to is None else None
    if verdicts is not None and verdicts.holds(UP) is not None:
        return Done("", ())  # decided before for these files and this history
    project = load_project(settings, folder=verdicts.folder if verdicts is not None else None)
    with connect(settings) as target:
        emit = on_event or events.ignore
        return run_up(
            project,
            target,
            to=to,
            emit=emit,
            backup=backup,
            preflight=preflight,
            verdicts=verdicts,
        )


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
    folder = settings.project.migrations_dir
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


def plan_contract(target: Target, project: Project, versions: Sequence[str] = ()) -> Plan:
    """The contract plan of ``versions`` (every expanded migration when empty): what
    `pgshift contract` shows and asks about before it runs (SPEC 15)."""
    from pgshift.ops.expand import plan_contract_for

    return plan_contract_for(project, target, versions)


def check_contract(settings: Settings, versions: Sequence[str] = ()) -> ContractCheck:
    """Whether code written for the old shape of ``versions`` (every expanded migration when
    empty) still runs: sessions whose current or last statement names a column or table name
    only the old shape has, and the statements pg_stat_statements kept, when it is installed.
    Changes nothing (`pgshift contract --check`); a version that is not expanded is a
    UsageError (exit 2) naming it."""
    from pgshift.ops.expand import check_contract_for

    project = load_project(settings, allow_problems=True)
    with connect(settings, purpose="contract check") as target:
        return check_contract_for(project, target, versions)


def contract(
    settings: Settings,
    versions: Sequence[str] = (),
    *,
    on_event: Emit | None = None,
    backup: bool = True,
) -> RunResult:
    """Load the project and run the contract of ``versions`` (every expanded migration when
    empty) on the configured database, without asking: the old shape's columns, triggers and
    views go, the new shape takes the final names, each migration in one short transaction."""
    from pgshift import events
    from pgshift.ops.run import run_plan

    project = load_project(settings)
    with connect(settings) as target:
        plan = plan_contract(target, project, versions)
        return run_plan(plan, target, emit=on_event or events.ignore, backup=backup)
