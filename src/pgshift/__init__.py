"""pgshift: PostgreSQL schema migrations without downtime.

This module is the library API; the command line is a thin layer over it. Heavy modules (psycopg,
pglast, rich) are imported inside the functions that need them, so `import pgshift` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgshift.config import Settings, load_settings
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    import psycopg

    from pgshift.events import Emit
    from pgshift.healthcheck import HealthReport
    from pgshift.history import History
    from pgshift.model import Migration
    from pgshift.plan import MigrationState, Plan
    from pgshift.runner import RunResult
    from pgshift.serve import HealthServer

__all__ = [
    "PgshiftError",
    "Settings",
    "create",
    "database_url",
    "health",
    "health_server",
    "load_project",
    "load_settings",
    "plan_up",
    "read_history",
    "status",
    "up",
]

__version__ = "0.1.0"


def load_project(settings: Settings) -> tuple[Migration, ...]:
    """Every migration of the project in plan order; any file problem raises InputError."""
    from pgshift.source.loader import load_migrations

    return load_migrations(settings.migrations_dir)


def database_url(settings: Settings, *, start_embedded: bool = True) -> str | None:
    """The target's URL; with none configured, the embedded server (started on demand).

    Returns None when nothing is configured and ``start_embedded`` is False.
    """
    if settings.database_url is not None:
        return settings.database_url
    from pgshift import embedded

    if not start_embedded:
        current = embedded.status(settings.project_root)
        return current.url if current.running else None
    return embedded.ensure_running(settings.project_root)


def read_history(settings: Settings, url: str | None) -> History:
    from pgshift.db.connect import connect
    from pgshift.db.store import PostgresHistoryStore

    with connect(url, purpose="status") as conn:
        return PostgresHistoryStore(settings.schema).read(conn)


@dataclass(frozen=True)
class StatusReport:
    rows: tuple[MigrationState, ...]

    @property
    def pending(self) -> int:
        return sum(1 for r in self.rows if r.state in ("pending", "out-of-order", "failed"))

    @property
    def applied(self) -> int:
        return sum(1 for r in self.rows if r.applied is not None)


def status(settings: Settings) -> StatusReport:
    from pgshift.plan import migration_states

    migrations = load_project(settings)
    history = read_history(settings, database_url(settings))
    return StatusReport(tuple(migration_states(migrations, history)))


def health(settings: Settings) -> HealthReport:
    """The health report (SPEC section 5); read-only, never takes the migration lock.

    An unreachable database is a critical `connection` check, not an exception, so monitoring
    always gets a report and an exit code.
    """
    from contextlib import AbstractContextManager

    from pgshift.db.connect import connect
    from pgshift.healthcheck import run_checks

    migrations: tuple[Migration, ...] | PgshiftError
    try:
        migrations = load_project(settings)
    except PgshiftError as exc:
        migrations = exc
    url: str | None = None
    url_error: PgshiftError | None = None
    try:
        url = database_url(settings)
    except PgshiftError as exc:
        url_error = exc

    def connection() -> AbstractContextManager[psycopg.Connection[tuple[Any, ...]]]:
        if url_error is not None:
            raise url_error
        return connect(url, purpose="health", connect_timeout_s=5)

    return run_checks(settings, connection, migrations=migrations, url=url)


def health_server(settings: Settings, address: str) -> HealthServer:
    """An HTTP server for /health and /metrics on ``address`` (loopback unless a host is given)."""
    from pgshift.serve import HealthServer

    return HealthServer.bind(settings, address)


def plan_up(
    settings: Settings, migrations: Sequence[Migration], url: str | None, target: str | None
) -> Plan:
    from pgshift import plan

    return plan.plan_up(migrations, read_history(settings, url), target)


def up(
    settings: Settings,
    *,
    target: str | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    emit: Emit | None = None,
) -> tuple[Plan, RunResult | None]:
    """Apply pending migrations; ``confirm`` sees the plan first and may refuse (None = yes)."""
    from pgshift import events
    from pgshift.errors import UsageError
    from pgshift.runner import Runner, RunOptions

    migrations = load_project(settings)
    url = database_url(settings)
    plan = plan_up(settings, migrations, url, target)
    if not plan.steps:
        return plan, None
    if confirm is not None and not confirm(plan):
        raise UsageError("cancelled: nothing was applied")
    options = RunOptions(
        schema=settings.schema,
        lock_timeout_ms=settings.lock_timeout_ms,
        lock_retry_total_ms=settings.lock_retry_total_ms,
        statement_timeout_ms=settings.migration_timeout_ms,
        runner_lock_wait_ms=settings.runner_lock_wait_ms,
    )
    from pgshift import plan as planning
    from pgshift.monitor import monitor_for

    emit = emit or events.ignore
    runner = Runner(url, options, emit, monitor=monitor_for(settings, url, emit))
    return plan, runner.run(plan, lambda history: planning.plan_up(migrations, history, target))


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
    from pgshift.durations import parse_duration_ms
    from pgshift.errors import UsageError
    from pgshift.model import RISK_LEVELS
    from pgshift.scaffold import migration_text, rollback_text
    from pgshift.source.naming import migration_file_names, slugify

    try:
        description = slugify(title)
    except ValueError as exc:
        raise UsageError(f"description {title!r}: {exc}") from None
    if risk_level not in RISK_LEVELS:
        raise UsageError(f"--risk-level {risk_level!r}: use one of {', '.join(RISK_LEVELS)}")
    if estimated_duration is not None:
        try:
            parse_duration_ms(estimated_duration, default_unit="s")
        except ValueError as exc:
            raise UsageError(f"--estimated-duration: {exc}") from None
    folder = settings.migrations_dir
    folder.mkdir(parents=True, exist_ok=True)
    existing = load_project(settings) if depends_on else ()
    names = {m.version: m.name for m in existing} | {m.name: m.name for m in existing}
    for dep in depends_on:
        if dep not in names:
            raise UsageError(f"--depends-on {dep}: no such migration in {folder}")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    version = f"{moment:%Y%m%d%H%M%S}"
    if any(p.name.startswith(version + "_") for p in folder.glob("*.sql")):
        raise UsageError(
            f"a migration with version {version} already exists in {folder}",
            hint="wait a second and run create again",
        )
    forward_name, rollback_name = migration_file_names(version, description)
    forward, rollback = folder / forward_name, folder / rollback_name
    title_text = title.strip()
    title_text = title_text[:1].upper() + title_text[1:]
    texts = {
        forward: migration_text(
            version,
            description,
            title_text,
            moment,
            zero_downtime=zero_downtime,
            estimated_duration=estimated_duration,
            risk_level=risk_level,
            dependencies=[names[d] for d in depends_on],
        ),
        rollback: rollback_text(version, description, title_text, moment),
    }
    written: list[Path] = []
    try:
        for path, text in texts.items():
            with path.open("x", encoding="utf-8") as fh:  # "x": refuse to overwrite
                fh.write(text)
            written.append(path)
    except FileExistsError as exc:
        for path in written:
            path.unlink()
        raise UsageError(f"{exc.filename} already exists; nothing was written") from None
    return forward, rollback
