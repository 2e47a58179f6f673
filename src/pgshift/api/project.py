"""Loading a project and reaching its database: load_project, database_url, connect,
read_history.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pgshift.config import Settings, load_settings
from pgshift.errors import InputError

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.project_files import Project
    from pgshift.source.folder_stat import FolderStat


def load_project(
    settings: Settings | str | os.PathLike[str],
    *,
    allow_problems: bool = False,
    folder: FolderStat | None = None,
) -> Project:
    """The project's migrations in plan order, and the problems of their files.

    ``settings`` may be a migrations folder instead (``load_project("migrations")``): the
    other settings then come from the environment and ``[tool.pgshift]`` as for a command.

    A problem no migration owns (a bad file name, a duplicate version, a rollback file whose
    migration is gone) raises InputError (exit 2). Problems in a migration's own files are
    kept in ``Project.problems``: whether they block depends on the database (`plan_up`
    refuses those of migrations not applied yet and warns about the others; a rollback
    refuses those of the files it would run). ``allow_problems`` keeps every problem, for
    the rollback planners and the read-only commands. ``folder`` is the folder's stat
    signature when the caller took it before any file was read (a remembered answer's,
    project_files.FolderMemory), so that it is not taken twice.
    """
    from pgshift.project_files import Project, owned_problems, read_project

    if not isinstance(settings, Settings):
        settings = load_settings({"migrations_dir": os.fspath(settings)})
    read = read_project(settings, folder=folder)
    if allow_problems:
        return Project(settings, read.migrations, read.problems, read.warnings)
    owned, unowned = owned_problems(read)
    if unowned:
        from pgshift.plan import fix_hint

        raise InputError(unowned, hint=fix_hint(unowned))
    return Project(settings, read.migrations, owned, read.warnings)


def database_url(settings: Settings, *, start_embedded: bool = True) -> str | None:
    """The target's URL; with none configured, the embedded server (started on demand).

    Returns None when nothing is configured and ``start_embedded`` is False.
    """
    from pgshift.postmaster import url_without_starting

    url = url_without_starting(settings)  # the common case: configured, or running already
    if url is not None or not start_embedded:
        return url
    from pgshift.embedded import target_url  # the server's package, only to start it

    return target_url(settings, start=True)


def nothing_configured(settings: Settings) -> str | None:
    """Why there is nothing to look at here, or None when there is a database to ask.

    Nothing: no database named (flag, DATABASE_URL, [tool.pgshift], PG* variables) and no
    pgshift project in this folder or above it (no migrations folder, no pgshift.toml or
    [tool.pgshift], no `.pgshift/`). A read-only command such as `health` must not make and
    start an embedded server for a folder that never asked for one.
    """
    from pgshift.config import find_project_root

    if settings.database_url is not None:
        return None
    root = settings.project_root
    if settings.migrations_dir.is_dir() or (root / ".pgshift").is_dir():
        return None
    if find_project_root(root)[1] is not None:
        return None
    return (
        "no database is configured (--database-url, DATABASE_URL or the PG* variables) and"
        f" there is no pgshift project in {root} (no {settings.migrations_dir.name}/ folder,"
        " pgshift.toml or .pgshift/): nothing to check"
    )


def connect(settings: Settings | str, *, purpose: str = "runner") -> Target:
    """The Target for the configured database (the embedded server when none is named).

    ``settings`` may be a database URL instead (``connect("postgresql://...")``): the other
    settings then come from the environment and ``[tool.pgshift]`` as for a command, and a URL
    that is not one is refused as `--database-url` would be (ConfigError, exit 2).
    Opens nothing yet: the first question asked of it opens its one session.
    """
    from pgshift.db.target import Target

    if not isinstance(settings, Settings):
        settings = load_settings({"database_url": settings})
    return Target.from_settings(settings, database_url(settings), purpose=purpose)


def read_history(settings: Settings, url: str | None) -> History:
    from pgshift.db.target import Target

    with Target.from_settings(settings, url, purpose="status") as target:
        return target.read_history()
