"""`pgshift contract --check` and `pgshift.check_contract` on real servers: a session that keeps
running a statement of the old shape is reported (pid, application_name, user, the statement
without its values), a session of the new shape is not, and nothing is reported once the old
one stops; what pg_stat_statements could add is said when it cannot be read. Nothing changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.plugins.pg import PgServer, SystemServer, _postmaster_pid
from tests.plugins.project import ProjectMaker, rename_migrations
from tests.plugins.project import migration_pair as pair
from tests.support import run_cli

import pgshift
from pgshift.config import Settings, load_settings
from pgshift.db.expand import facts_of
from pgshift.rewrite.expand import OldShape, changes_of, expansion, tables_of
from pgshift.source.sql import split_statements

V1, V2 = "20260101000000", "20260102000000"
SECRET = "s3cret-value-4411"
OLD_QUERY = f"SELECT name FROM accounts WHERE name <> '{SECRET}' AND id > %s"


@pytest.fixture
def expanded(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:  # fmt: skip
    """A project whose second migration (a column rename) is applied in its expand phase."""
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    project = make_project(rename_migrations(V1, V2))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--target", V1).code == 0
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 0, result.out + result.err
    return project


def _settings(project: Path, db_url: str) -> Settings:
    return load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )


class OldCode(threading.Thread):
    """Code written for the old shape: runs its statement again and again on one session."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(url, autocommit=True, application_name="old-app")
        self.pid = self.conn.info.backend_pid
        self.stop = threading.Event()
        self.runs = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.conn.execute(OLD_QUERY, (self.runs,)).fetchall()
            self.runs += 1
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        self.conn.close()


@pytest.fixture
def old_code(db_url: str, expanded: Path) -> Iterator[OldCode]:
    worker = OldCode(db_url)
    worker.start()
    while worker.runs == 0:
        time.sleep(0.01)
    yield worker
    worker.finish()


def _until_clean(settings: Settings) -> pgshift.ContractCheck:
    """A closed session leaves pg_stat_activity a moment after the client hangs up."""
    deadline = time.monotonic() + 10
    while True:
        check = pgshift.check_contract(settings)
        if not check.in_use or time.monotonic() > deadline:
            return check
        time.sleep(0.1)


def test_a_session_of_the_old_shape_is_reported_until_it_stops(
    expanded: Path, db_url: str, old_code: OldCode, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(expanded, db_url)
    with psycopg.connect(db_url, autocommit=True, application_name="new-app") as new_code:
        new_code.execute("SELECT full_name FROM accounts WHERE full_name <> 'x'").fetchall()
        check = pgshift.check_contract(settings)
        assert check.watched == ((V2, ("public.accounts.name",)),)
        assert check.in_use and check.exit_code == 1
        assert [(u.pid, u.application_name, u.user) for u in check.sessions] == [
            (old_code.pid, "old-app", "postgres")
        ]
        use = check.sessions[0]
        assert use.version == V2 and use.names == ("public.accounts.name",)
        assert use.state in ("active", "idle")
        # psycopg binds id server-side ($1); the literal is masked after it ($2).
        assert use.statement == "SELECT name FROM accounts WHERE name <> $2 AND id > $1"
        assert check.statements == ()
        assert check.statements_missing is not None
        assert "pg_stat_statements is not installed" in check.statements_missing

        text = run_cli(capsys, expanded, db_url, "contract", "--check")
        assert text.code == 1, text.out + text.err
        assert f"pid {old_code.pid} (old-app, user postgres" in text.out
        assert "uses public.accounts.name: SELECT name FROM accounts WHERE name <> $2" in text.out
        assert "pg_stat_statements is not installed" in text.out
        assert "new-app" not in text.out and SECRET not in text.out + text.err
        data = run_cli(capsys, expanded, db_url, "contract", "--check", "--json").json()
        assert data["in_use"] is True and data["exit_code"] == 1
        assert data["migrations"] == [{"version": V2, "names": ["public.accounts.name"]}]
        assert [s["pid"] for s in data["sessions"]] == [old_code.pid]
        assert set(data["sessions"][0]) == {
            "version", "names", "statement", "user", "pid", "application_name", "state", "calls",
        }  # fmt: skip
        assert data["pg_stat_statements"] is False
    old_code.finish()
    clean = _until_clean(settings)
    assert clean.sessions == () and clean.exit_code == 0
    done = run_cli(capsys, expanded, db_url, "contract", "--check")
    assert done.code == 0, done.out
    assert "No session uses the old shape." in done.out
    # --check changed nothing: still expanded, the old column still there.
    rows = run_cli(capsys, expanded, db_url, "status", "--json").json()["migrations"]
    assert {m["version"]: m["state"] for m in rows}[V2] == "expanded"


def test_pg_stat_statements_installed_but_not_loaded_is_said(
    expanded: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The test servers do not preload it: CREATE EXTENSION works, reading its view does not
    (SQLSTATE 55000), and the check says so instead of failing."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            conn.execute("SELECT count(*) FROM pg_stat_statements")
    check = pgshift.check_contract(_settings(expanded, db_url))
    assert check.statements_missing is not None
    assert "installed but not loaded" in check.statements_missing
    assert check.exit_code == 0
    text = run_cli(capsys, expanded, db_url, "contract", "--check")
    assert text.code == 0 and "shared_preload_libraries" in text.out


def test_a_version_that_is_not_expanded_is_exit_2_naming_it(
    expanded: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(capsys, expanded, db_url, "contract", "--check", V1)
    assert result.code == 2
    assert f"{V1} (applied, not expanded)" in result.err


def _old_names(conn: psycopg.Connection, sql: str) -> tuple[OldShape, ...]:
    statements, _ = split_statements(sql, "m.sql")
    changes = changes_of(statements)
    return expansion(V1, changes, facts_of(conn, tables_of(changes))).old_names


def test_the_old_names_are_derived_from_the_migration_and_the_catalog(db_url: str) -> None:
    """Renamed and dropped columns and a renamed table are the old code's only; a column that
    only changes type keeps its name, so nothing tells its two shapes' statements apart."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, name text, amount int, note text);"
            "CREATE TABLE people (id bigint PRIMARY KEY)"
        )
        both = _old_names(
            conn,
            "ALTER TABLE accounts RENAME COLUMN name TO full_name;"
            "ALTER TABLE accounts ALTER COLUMN amount TYPE bigint;"
            "ALTER TABLE accounts DROP COLUMN note;",
        )
        assert both == (
            OldShape(
                "public",
                "accounts",
                ("name", "note"),
                new_columns=("full_name", f"amount_pgshift_new_{V1}"),
            ),
        )
        assert _old_names(conn, "ALTER TABLE accounts ALTER COLUMN amount TYPE bigint;") == ()
        assert _old_names(conn, "ALTER TABLE people RENAME TO persons;") == (
            OldShape("public", "people", (), table_renamed=True),
        )


@pytest.fixture
def preloaded(pg_server: PgServer) -> Iterator[str]:
    """A server of the same major of its own, started with pg_stat_statements preloaded (the
    suite's servers are shared and do not load it): the URL of its `postgres` database."""
    server = SystemServer(pg_server.bin_dir)
    try:
        options = (
            f"-k {server.base} -h 127.0.0.1 -p {server.port}"
            " -c shared_preload_libraries=pg_stat_statements -c fsync=off"
        )
        server._run(
            "pg_ctl", "-D", str(server.data_dir), "-l", str(server.log), "-w", "-t", "60",
            "-o", options, "restart",
        )  # fmt: skip
        server._pid = _postmaster_pid(server.data_dir)
        url = server.url("postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        yield url
    finally:
        server.close()


def test_statements_pg_stat_statements_kept_are_reported_until_it_is_reset(
    preloaded: str, make_project: ProjectMaker, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A statement of the old shape that ran and whose session is gone is still evidence (a
    nightly job): reported with its calls and role, until pg_stat_statements is reset. The
    expansion's own backfill, which names both shapes, is not."""
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    project = make_project(
        {
            **pair(V1, "accounts", "CREATE TABLE accounts (id bigint PRIMARY KEY, name text);"),
            **pair(
                V2, "rename name", "ALTER TABLE accounts RENAME COLUMN name TO full_name;",
                extra_header=["@expand-contract: true"],
            ),
        }
    )  # fmt: skip
    assert run_cli(capsys, project, preloaded, "up", "--yes", "--target", V1).code == 0
    with psycopg.connect(preloaded, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts SELECT g, 'n' || g FROM generate_series(1, 10) g")
    assert run_cli(capsys, project, preloaded, "up", "--yes").code == 0
    settings = _settings(project, preloaded)
    clean = pgshift.check_contract(settings)
    assert clean.statements_missing is None and clean.statements_reset_at is not None
    assert clean.statements == () and clean.exit_code == 0  # the backfill is not old code
    with psycopg.connect(preloaded, autocommit=True, application_name="nightly") as job:
        for i in range(3):
            job.execute(OLD_QUERY, (i,)).fetchall()
    check = _until_no_session(settings)
    assert check.sessions == ()
    assert [(u.version, u.names, u.user, u.calls) for u in check.statements] == [
        (V2, ("public.accounts.name",), "postgres", 3)
    ]
    assert SECRET not in check.statements[0].statement
    assert check.exit_code == 1
    text = run_cli(capsys, project, preloaded, "contract", "--check")
    assert text.code == 1
    assert "pg_stat_statements: 3 call(s) by postgres use public.accounts.name" in text.out
    assert "pg_stat_statements_reset()" in text.out
    with psycopg.connect(preloaded, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    assert pgshift.check_contract(settings).exit_code == 0


def _until_no_session(settings: Settings) -> pgshift.ContractCheck:
    deadline = time.monotonic() + 10
    while True:
        check = pgshift.check_contract(settings)
        if not check.sessions or time.monotonic() > deadline:
            return check
        time.sleep(0.1)
