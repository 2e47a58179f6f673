"""Reading and correcting the recorded history: run_history (`pgshift history`) and mark
(`pgshift mark`); each loads what it needs, opens the Target and calls one ops function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgshift.api.project import connect, database_url, load_project
from pgshift.config import Settings
from pgshift.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from pgshift.ops.journal import HistoryReport
    from pgshift.ops.marking import MarkResult


def run_history(settings: Settings, *, limit: int = 20, run: str | None = None) -> HistoryReport:
    """The ``limit`` newest runs recorded in the database, newest first, each with its events
    (`pgshift history`); with ``run``, the run whose id starts with it.

    Read-only and lock-free, over one read-only session. It never starts the embedded server:
    with no database configured and none running, a project that never had one has no runs,
    and one whose server is stopped is DatabaseUnavailable (exit 3).
    """
    from pgshift.ops.journal import HistoryReport, read_runs

    resolved = settings
    url = database_url(resolved, start_embedded=False)
    if url is None:
        if (resolved.project_root / ".pgshift" / "pgdata").is_dir():
            raise DatabaseUnavailable(
                "the embedded PostgreSQL of this project is not running, and `history` does not"
                " start it",
                hint="start it with any command that uses it (`pgshift status`), or name the"
                " database with --database-url / DATABASE_URL",
            )
        return HistoryReport((), limit, run)
    from pgshift.db.target import Target

    with Target.from_settings(resolved, url, purpose="status") as target:
        return read_runs(target, limit=limit, run=run)


def mark(settings: Settings, version: str, *, applied: bool, reason: str) -> MarkResult:
    """Record ``version`` as applied (from its file: checksums, rollback SQL) or as not applied
    (its row and any progress removed), under the runner lock, logged with ``reason``
    (`pgshift mark V --applied|--not-applied`). Nothing of the migration runs.
    """
    from pgshift.ops.marking import mark_version

    resolved = settings
    project = load_project(resolved, allow_problems=True)
    with connect(resolved) as target:
        return mark_version(project, target, version, applied=applied, reason=reason)
