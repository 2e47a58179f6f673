"""Reading a database's migration state: status (StatusReport), status_document, health,
health_server, at_head and wait; each loads the project, opens the Target and calls one ops
function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pgshift.api.project import connect, database_url, load_project, nothing_configured
from pgshift.config import Settings
from pgshift.errors import PgshiftError
from pgshift.ops.status import StatusReport

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.errors import Problem
    from pgshift.model import Migration
    from pgshift.ops.health_rules import HealthReport
    from pgshift.ops.readiness import HeadReport
    from pgshift.ops.status_memory import StatusDocument
    from pgshift.serve import HealthServer


def status(settings: Settings) -> StatusReport:
    """Every migration's state (`pgshift status`), read in full: the files, the whole history.

    It does not use the remembered status (`.pgshift/cache/status.json`): its rows carry the
    migrations and history rows themselves, which the memory does not keep, and a warm library
    process would gain little. `status_document` gives what the command prints, remembered.
    """
    from pgshift.ops.status import status_report

    project = load_project(settings, allow_problems=True)
    with connect(settings, purpose="status") as target:
        return status_report(project.migrations, project.problems, target)


def status_document(settings: Settings) -> StatusDocument:
    """`pgshift status` as the plain JSON document its `--json` prints (its table is drawn
    from the same document).

    Remembered (ops/status_memory.py): asked again of the same files, history, code and
    session (TimeZone, grants), with no live run of this project's history under way, it comes
    from a stat of the folder and one query, without reading a file or importing the driver;
    a status showing live state is never remembered. Read-only: never takes the migration lock
    and never writes to the database.
    """
    from pgshift.ops.status import document
    from pgshift.ops.status_memory import StatusMemory

    memory = StatusMemory(settings)  # before the files are read (source/folder_stat.py)
    kept = memory.recall()
    if kept is not None:
        return kept
    project = load_project(settings, allow_problems=True, folder=memory.folder)
    with connect(settings, purpose="status") as target:
        return document(project.migrations, project.problems, target, memory)


def health(settings: Settings, *, show_queries: bool = False) -> HealthReport:
    """The health report (SPEC section 5); read-only, never takes the migration lock.

    An unreachable database is a critical `connection` check, not an exception, so monitoring
    always gets a report and an exit code. Other sessions' queries have their constants masked
    (``$1``, as pg_stat_statements shows them) unless ``show_queries``. With no database
    configured and no project here, every check is unknown (exit 3) and no embedded server is
    made: a health check never creates the database it reports on.
    """
    from pgshift.db.target import Target
    from pgshift.ops import health as ops_health

    nothing = nothing_configured(settings)
    if nothing is not None:
        return ops_health.unknown_report(nothing)

    migrations: tuple[Migration, ...] | PgshiftError
    problems: tuple[Problem, ...] = ()
    try:  # read-only: a bad file is listed (migration_files), never a blind report
        project = load_project(settings, allow_problems=True)
        migrations, problems = project.migrations, project.problems
    except PgshiftError as exc:
        migrations = exc
    target: Target | PgshiftError
    try:
        target = Target.from_settings(settings, database_url(settings), purpose="health")
    except PgshiftError as exc:
        target = exc
    return ops_health.examine(
        settings, target, migrations=migrations, problems=problems, show_queries=show_queries
    )


def health_server(settings: Settings, address: str, *, token: str | None = None) -> HealthServer:
    """An HTTP server for /health and /metrics on ``address`` (loopback unless a host is given).

    ``token``: a bearer token every request must carry (401 otherwise); required to listen
    beyond loopback (UsageError, exit 2, without one). `pgshift.serve.read_token` reads it
    from a file or PGSHIFT_HEALTH_TOKEN as the command line does.

    Raises ConfigError when there is no database configured and no project here (it would
    otherwise make and start an embedded server to report on).
    """
    from pgshift.errors import ConfigError
    from pgshift.serve import HealthServer

    nothing = nothing_configured(settings)
    if nothing is not None:
        raise ConfigError(nothing, hint="set DATABASE_URL, or run it in your project's folder")

    return HealthServer.bind(settings, address, token=token)


def at_head(settings: Settings) -> HeadReport:
    """Whether the database is at the project's head (`pgshift status --check`).

    At head: nothing pending, failed, out of order, drifted or missing. Never takes the
    migration lock and never writes to the database; reads history over one short read-only
    session. An answer at head is remembered (`.pgshift/cache/verdicts.json`): asked again of
    the same files and the same history, it comes from a stat of the folder and one query.
    """
    from pgshift.ops.readiness import HeadReport
    from pgshift.ops.status import head
    from pgshift.ops.uptodate import HEAD, Verdicts

    verdicts = Verdicts(settings)  # before the files are read (source/folder_stat.py)
    remembered = verdicts.holds(HEAD)
    if remembered is not None:
        return HeadReport(remembered or None, ())
    migrations = load_project(settings, allow_problems=True).migrations
    with connect(settings, purpose="check") as target:
        return head(migrations, target, verdicts)


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
