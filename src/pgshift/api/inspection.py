"""Reading a database's migration state: status (StatusReport), health, health_server, at_head
and wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgshift.api.project import connect, database_url, load_project
from pgshift.config import Settings
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    import psycopg

    from pgshift.db.target import Target
    from pgshift.errors import Problem
    from pgshift.history import History
    from pgshift.model import Migration
    from pgshift.ops.health import HealthReport
    from pgshift.ops.readiness import HeadReport
    from pgshift.plan import MigrationState
    from pgshift.serve import HealthServer


@dataclass(frozen=True)
class StatusReport:
    """`pgshift status`: one row per migration, and the counts its title and JSON show.

    A half-reverted migration counts as neither applied (part of its schema is gone) nor
    pending (`up` refuses it until the revert is finished): it is ``half_reverted``.
    """

    rows: tuple[MigrationState, ...]
    # Problems in the files: a read-only command shows what it can and lists them (SPEC 1).
    problems: tuple[Problem, ...] = ()
    # What `up` would refuse before it starts, e.g. a role that may not create the history schema.
    warnings: tuple[str, ...] = ()

    @property
    def pending(self) -> int:
        """Not applied yet and not failed: what `up` would apply (out-of-order ones included)."""
        return sum(1 for r in self.rows if r.state in ("pending", "out-of-order"))

    @property
    def failed(self) -> int:
        """Failed attempts (a half-reverted migration is counted as that, not as failed)."""
        return sum(1 for r in self.rows if r.state == "failed" and not r.half_reverted)

    @property
    def applied(self) -> int:
        return sum(1 for r in self.rows if r.applied is not None and not r.half_reverted)

    @property
    def half_reverted(self) -> int:
        return sum(1 for r in self.rows if r.half_reverted)


def status(settings: Settings) -> StatusReport:
    from pgshift.db import catalog
    from pgshift.plan import migration_states

    project = load_project(settings, allow_problems=True)
    migrations = project.migrations
    with connect(settings, purpose="status") as target:
        history, running, warnings = _status_reads(target, settings)
        live_run = False
        if history.in_progress:  # only then does it matter who holds the lock
            lock = catalog.migration_lock(target.session, settings.schema)
            live_run = lock is not None and lock.workers > 0
    rows = migration_states(migrations, history, run_in_progress=live_run)
    return StatusReport(tuple(_mark_running(rows, running)), project.problems, warnings)


def _status_reads(
    target: Target, settings: Settings
) -> tuple[History, dict[str, str], tuple[str, ...]]:
    """The history, and {version: action} that a live run has the server executing now
    (db/activity.py), read on ONE session: libpq's when it loads (a read-only command never
    needs psycopg, Target.read_history's reasoning), else the target's own. `status` keeps
    its one connection; the activity read is one more small query on it.
    """
    from contextlib import nullcontext

    from pgshift.db.activity import running_steps
    from pgshift.db.readonly import LibpqSession
    from pgshift.db.store import missing_grant

    reader = LibpqSession.open(target.url, purpose="status")
    session: Any = reader if reader is not None else target.session
    with reader if reader is not None else nullcontext():
        history = target.store.read(session)
        running = running_steps(session, settings.schema)
        missing = missing_grant(session, settings.schema)
    warnings = (f"`pgshift up` would refuse: {missing.message}; {missing.hint}",) if missing else ()
    return history, running, warnings


def _mark_running(rows: list[MigrationState], running: dict[str, str]) -> list[MigrationState]:
    """A migration the server is running for a live run is "running", whatever kind it is: a
    transactional one leaves no progress row to show it."""
    from dataclasses import replace

    marked = []
    for row in rows:
        action = running.get(row.version)
        if action == "apply" and row.applied is None:
            marked.append(replace(row, running=True))
        elif action == "revert" and row.applied is not None:
            marked.append(replace(row, running=True, detail="being reverted by the current run"))
        else:
            marked.append(row)
    return marked


def health(settings: Settings) -> HealthReport:
    """The health report (SPEC section 5); read-only, never takes the migration lock.

    An unreachable database is a critical `connection` check, not an exception, so monitoring
    always gets a report and an exit code.
    """
    from contextlib import AbstractContextManager

    from pgshift.db.connect import connect
    from pgshift.ops.health import run_checks

    migrations: tuple[Migration, ...] | PgshiftError
    problems: tuple[Problem, ...] = ()
    try:  # read-only: a bad file is listed (migration_files), never a blind report
        project = load_project(settings, allow_problems=True)
        migrations, problems = project.migrations, project.problems
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

    return run_checks(settings, connection, migrations=migrations, url=url, problems=problems)


def health_server(settings: Settings, address: str) -> HealthServer:
    """An HTTP server for /health and /metrics on ``address`` (loopback unless a host is given)."""
    from pgshift.serve import HealthServer

    return HealthServer.bind(settings, address)


def at_head(settings: Settings) -> HeadReport:
    """Whether the database is at the project's head (`pgshift status --check`).

    At head: nothing pending, failed, out of order, drifted or missing. Never takes the
    migration lock and never writes; reads history over one short read-only session.
    """
    from pgshift.ops.readiness import head_report

    migrations = load_project(settings, allow_problems=True).migrations
    with connect(settings, purpose="check") as target:
        return head_report(migrations, target.read_history())


def wait(
    settings: Settings,
    *,
    timeout_s: float = 300.0,
    on_poll: Callable[[HeadReport | PgshiftError], None] | None = None,
) -> HeadReport:
    """Block until `at_head` holds (`pgshift wait`), polling with backoff; for init containers.

    Raises WaitTimeout (exit 5) after ``timeout_s``. An unreachable database is polled again.
    ``on_poll`` sees each answer that was not yet at head.
    """
    from pgshift.ops.readiness import wait_for_head

    return wait_for_head(lambda: at_head(settings), timeout_s, on_poll=on_poll)
