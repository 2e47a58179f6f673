"""A fleet hands its sessions from one tenant to the next (db/pool.py), on real PostgreSQL.

What must hold: a fleet of many new tenants opens two sessions per worker, not two per tenant;
nothing a tenant's migrations leave on a session (settings, temporary tables, advisory locks,
prepared statements) reaches the next tenant; a failed tenant's runner session is not handed
on; a session that died on the pool is replaced, not lent.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest
from tests.integration.test_api import _sessions_opened_by
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import query, targets_file

import pgshift
from pgshift import events
from pgshift.config import load_settings
from pgshift.db.pool import SessionKind, SessionPool

V1, V2 = "20250101000000", "20250102000000"

#: What a tenant's first migration sees of its session, then what it leaves on it: a session
#: setting, a temporary table, a session advisory lock, a prepared statement.
_LEAVES_STATE = """
CREATE TABLE seen AS SELECT
  current_schema() AS schema,
  current_setting('work_mem') AS work_mem,
  to_regclass('pg_temp.leftover') IS NOT NULL AS temp_table,
  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
     AND objid = 4242) AS advisory_locks,
  (SELECT count(*) FROM pg_prepared_statements WHERE name = 'leftover') AS prepared,
  current_setting('application_name') AS application_name;
SET work_mem = '77kB';
CREATE TEMP TABLE leftover (id int);
SELECT pg_advisory_lock(4242);
PREPARE leftover AS SELECT 1;
"""


def _settings(root: Path) -> pgshift.Settings:
    return load_settings(
        {"migrations_dir": str(root / "migrations")},
        env={"DB_BACKUP_DIR": str(root / "backups"), "DB_BACKUP_ENABLED": "false"},
        cwd=root,
    )


def _tenants(root: Path, db_url: str, names: list[str]) -> list[pgshift.TargetSpec]:
    path = targets_file(root / "tenants.toml", [(t, db_url, t) for t in names])
    return list(pgshift.load_targets(path))


def test_tenants_run_one_after_another_on_the_same_two_sessions(
    make_project: ProjectMaker, db_url: str
) -> None:
    """Eight new tenants, one at a time: the fleet's read, then ONE runner session and ONE
    lock session for all eight (more than the five runs psycopg needs to prepare a query it
    sees again, which a reset must not leave stale); each tenant's migration still starts on
    a clean session."""
    make_project(migration_pair(V1, "leaves", _LEAVES_STATE))
    root = make_project(migration_pair(V2, "after", "CREATE TABLE after_it (id int);"))
    names = [f"t{i}" for i in range(8)]
    specs = _tenants(root, db_url, names)
    project = pgshift.load_project(_settings(root))
    results: list[pgshift.FleetResult] = []

    opened = _sessions_opened_by(
        db_url, lambda: results.append(pgshift.fleet_up(project, specs, concurrency=1))
    )

    assert [o.status for o in results[0].outcomes] == ["applied"] * 8
    assert opened == 3  # the fleet's read, the runner's session, the lock's session
    for name in names:
        seen = query(
            db_url,
            "SELECT schema, work_mem, temp_table, advisory_locks, prepared, application_name"
            f" FROM {name}.seen",
        )
        default_work_mem = query(db_url, "SELECT current_setting('work_mem')")[0][0]
        assert seen == [(name, default_work_mem, False, 0, 0, "pgshift runner")], name
        assert query(db_url, f"SELECT to_regclass('{name}.after_it') IS NOT NULL") == [(True,)]


def test_a_failed_tenants_runner_session_is_not_handed_on(
    make_project: ProjectMaker, db_url: str
) -> None:
    """The first tenant fails (its table is in the way): its runner session is closed, the
    next tenant gets a new one (and the lock's session, which is clean after its unlock)."""
    root = make_project(migration_pair(V1, "table", "CREATE TABLE thing (id int);"))
    specs = _tenants(root, db_url, ["bad", "good"])
    query(db_url, "CREATE SCHEMA bad; CREATE TABLE bad.thing (id int)")
    project = pgshift.load_project(_settings(root))
    results: list[pgshift.FleetResult] = []

    opened = _sessions_opened_by(
        db_url, lambda: results.append(pgshift.fleet_up(project, specs, concurrency=1))
    )

    assert [o.status for o in results[0].outcomes] == ["failed", "applied"]
    assert opened == 4  # the read; bad's runner and lock; good's new runner (lock handed on)
    assert query(db_url, "SELECT to_regclass('good.thing') IS NOT NULL") == [(True,)]


def test_a_session_that_died_on_the_pool_is_replaced(db_url: str) -> None:
    """A session terminated while it waited on the pool is closed and a new one is lent;
    one that comes back lent again keeps its name in pg_stat_activity after its reset."""
    kind = SessionKind(db_url, "runner")
    with SessionPool() as pool:
        first = pool.take(kind, search_path="tenant_a")
        pid = first.info.backend_pid
        first.execute("SET work_mem = '77kB'")
        pool.give_back(kind, first)
        again = pool.take(kind, search_path="tenant_b")
        assert again.info.backend_pid == pid
        row = again.execute(
            "SELECT current_setting('search_path'), current_setting('work_mem'),"
            " current_setting('application_name')"
        ).fetchone()
        default_work_mem = query(db_url, "SELECT current_setting('work_mem')")[0][0]
        assert row == ('"tenant_b"', default_work_mem, "pgshift runner")
        pool.give_back(kind, again)

        query(db_url, f"SELECT pg_terminate_backend({pid})")
        fresh = pool.take(kind)
        assert fresh.info.backend_pid != pid
        assert fresh.execute("SELECT 1").fetchone() == (1,)
        assert (pool.opened, pool.reused) == (2, 1)
        pool.give_back(kind, fresh)
    assert fresh.closed  # the pool's sessions end with it


def test_a_session_inside_a_transaction_is_closed_not_shelved(db_url: str) -> None:
    kind = SessionKind(db_url, "runner")
    with SessionPool() as pool:
        conn = pool.take(kind)
        conn.execute("BEGIN")
        pool.give_back(kind, conn)
        assert conn.closed
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")


def test_a_tenant_whose_backend_is_terminated_fails_alone_and_resumes(
    make_project: ProjectMaker, db_url: str
) -> None:
    """The middle tenant's migration terminates its own backend (as an administrator's
    pg_terminate_backend would): that tenant fails, its dead session is not handed on, the
    tenant after it runs on a new one; re-running the fleet finishes the middle tenant, and
    every tenant's migration is applied once."""
    kill = (
        "CREATE TABLE effects (tenant text);"
        " INSERT INTO effects VALUES (current_schema());"
        " SELECT CASE WHEN current_schema() = 't1' AND NOT EXISTS"
        " (SELECT 1 FROM pg_namespace WHERE nspname = 'spared')"
        " THEN pg_terminate_backend(pg_backend_pid()) END;"
    )
    root = make_project(migration_pair(V1, "kills", kill))
    specs = _tenants(root, db_url, ["t0", "t1", "t2"])
    project = pgshift.load_project(_settings(root))
    results: list[pgshift.FleetResult] = []

    opened = _sessions_opened_by(
        db_url, lambda: results.append(pgshift.fleet_up(project, specs, concurrency=1))
    )

    assert [o.status for o in results[0].outcomes] == ["applied", "failed", "applied"]
    assert opened == 4  # the read; t0's runner and lock; t2's new runner (t1's died with it)
    query(db_url, "CREATE SCHEMA spared")
    again = pgshift.fleet_up(project, specs, concurrency=1)
    assert [o.status for o in again.outcomes] == ["up-to-date", "applied", "up-to-date"]
    for tenant in ("t0", "t1", "t2"):
        assert query(db_url, f"SELECT tenant FROM {tenant}.effects") == [(tenant,)]
        assert query(db_url, f"SELECT count(*) FROM {tenant}_pgshift.applied") == [(1,)]


def test_fleet_plan_hands_its_sessions_on_too(make_project: ProjectMaker, db_url: str) -> None:
    """`fleet plan` (what `fleet up` shows before it asks) plans each tenant with work on a
    session of the pool: over eight new tenants, the fleet's read and ONE planning session."""
    root = make_project(migration_pair(V1, "table", "CREATE TABLE thing (id int);"))
    specs = _tenants(root, db_url, [f"t{i}" for i in range(8)])
    project = pgshift.load_project(_settings(root))
    planned: list[pgshift.FleetResult] = []

    opened = _sessions_opened_by(
        db_url, lambda: planned.append(pgshift.fleet_plan(project, specs, concurrency=1))
    )

    assert [(o.status, o.versions) for o in planned[0].outcomes] == [("pending", (V1,))] * 8
    assert opened == 2


def test_the_pool_keeps_at_most_max_idle_sessions(db_url: str) -> None:
    """Beyond ``max_idle``, the session given back longest ago is closed: idle sessions of
    databases no later target uses must not pile up."""
    kinds = [SessionKind(db_url, purpose) for purpose in ("a", "b", "c")]
    with SessionPool(max_idle=2) as pool:
        conns = [pool.take(kind) for kind in kinds]
        for kind, conn in zip(kinds, conns, strict=True):
            pool.give_back(kind, conn)
        assert [c.closed for c in conns] == [True, False, False]
        again, other = pool.take(kinds[2]), pool.take(kinds[0])
        assert again is conns[2] and other is not conns[0]
        assert (pool.opened, pool.reused) == (4, 1)
        pool.give_back(kinds[2], again)
        pool.give_back(kinds[0], other)
        assert conns[1].closed  # given back longest ago of the three
    assert again.closed and other.closed  # the pool's sessions end with it


def test_a_fleet_of_separate_databases_does_not_keep_their_sessions_open(
    make_project: ProjectMaker, pg_server: PgServer
) -> None:
    """One target at a time over four databases: when the fourth starts, the first's sessions
    are closed (the pool keeps two per worker), not held until the fleet ends."""
    root = make_project(migration_pair(V1, "table", "CREATE TABLE thing (id int);"))
    names = [f"pool_{uuid.uuid4().hex[:12]}" for _ in range(4)]
    for name in names:
        pg_server.create_database(name)
    try:
        path = targets_file(root / "databases.toml", [(n, pg_server.url(n), None) for n in names])
        specs = pgshift.load_targets(path)
        project = pgshift.load_project(_settings(root))
        left_open: list[int] = []

        def on_event(event: events.FleetEvent) -> None:
            if isinstance(event, events.TargetStarted) and event.target == names[3]:
                left_open.append(_pgshift_sessions(pg_server.url(names[0])))

        result = pgshift.fleet_up(project, specs, concurrency=1, on_event=on_event)
        assert [o.status for o in result.outcomes] == ["applied"] * 4
        assert left_open == [0]
    finally:
        for name in names:
            pg_server.drop_database(name)


def _pgshift_sessions(url: str) -> int:
    """pgshift's sessions on ``url``'s database, once those just closed have left."""
    deadline = time.monotonic() + 5
    while True:
        count = query(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'pgshift %'",
        )[0][0]
        if count == 0 or time.monotonic() > deadline:
            return int(count)
        time.sleep(0.05)
