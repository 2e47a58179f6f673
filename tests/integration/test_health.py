"""`pgshift health` against a real PostgreSQL: what it finds, and that it stays read-only."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.plugins.project import ProjectMaker, migration_text
from tests.plugins.project import migration_pair as pair
from tests.support import query, run_cli, spawn_cli

import pgshift
from pgshift.config import Settings, load_settings
from pgshift.db.lock import lock_key
from pgshift.ops.health_rules import CRITICAL, OK, WARNING, HealthReport
from pgshift.serve import HealthEndpoint, HealthServer

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
#: Round trips on a loaded test machine are not what these tests are about.
CALM = {"PGSHIFT_HEALTH_LATENCY_WARN": "10s", "PGSHIFT_HEALTH_LATENCY_CRIT": "20s"}


def settings_for(project: Path, db_url: str, **env: str) -> Settings:
    return load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")},
        env={**CALM, **env},
        cwd=project,
    )


def wait_until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_fresh_database_is_healthy_and_health_writes_nothing(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project({})
    report = pgshift.health(settings_for(project, db_url, DB_BACKUP_ENABLED="false"))
    assert report.status == OK, [c for c in report.checks if c.status != OK]
    assert {c.name for c in report.checks} >= {
        "connection", "server_version", "pooler", "connections", "pending_migrations",
        "failed_migrations", "drift", "invalid_indexes", "blocked_sessions",
        "long_transactions", "migration_lock", "replication", "backups",
    }  # fmt: skip
    assert report.check("pooler").data["session_setting_kept"] is True
    # Read-only: the history schema is not created, and nothing is left locked or set.
    assert query(db_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'pgshift'") == []


def test_failed_unique_concurrent_index_is_reported_by_name(
    make_project: ProjectMaker, db_url: str
) -> None:
    query(db_url, "CREATE TABLE accounts (email text)")
    query(db_url, "INSERT INTO accounts VALUES ('a@x'), ('a@x')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        query(db_url, "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email)")
    report = pgshift.health(settings_for(make_project({}), db_url))
    check = report.check("invalid_indexes")
    assert check.status == WARNING
    assert "public.accounts_email_key on accounts" in check.detail
    assert check.data["indexes"][0]["definition"].startswith("CREATE UNIQUE INDEX")


@contextmanager
def blocked_pair(db_url: str) -> Iterator[tuple[int, int]]:
    """A session holding ACCESS EXCLUSIVE on `orders` idle in transaction, and one waiting."""
    query(db_url, "CREATE TABLE orders (id int)")
    holder = psycopg.connect(db_url, application_name="holder")
    waiter = psycopg.connect(db_url, autocommit=True, application_name="waiter")
    done = threading.Event()
    holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")

    def wait() -> None:
        try:
            waiter.execute("SELECT count(*) FROM orders")
        finally:
            done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        wait_until(
            lambda: query(
                db_url,
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                [waiter.info.backend_pid],
            ),
            "the waiter to queue",
        )
        yield holder.info.backend_pid, waiter.info.backend_pid
    finally:
        holder.rollback()
        thread.join(timeout=30)
        holder.close()
        waiter.close()
    assert done.is_set()


def test_lock_waiter_is_reported_with_its_blocker_and_table(
    make_project: ProjectMaker, db_url: str
) -> None:
    settings = settings_for(
        make_project({}),
        db_url,
        PGSHIFT_HEALTH_BLOCKED_WARN="0",
        PGSHIFT_HEALTH_IDLE_TRANSACTION_WARN="0",
    )
    with blocked_pair(db_url) as (holder_pid, waiter_pid):
        report = pgshift.health(settings)
    blocked = report.check("blocked_sessions")
    assert blocked.status == WARNING
    assert f"pid {waiter_pid} (waiter" in blocked.detail
    assert f"blocked by pid {holder_pid} (holder, idle in transaction)" in blocked.detail
    assert "AccessShareLock on orders" in blocked.detail
    (item,) = blocked.data["sessions"]
    assert (item["pid"], item["relation"], item["blocked_by"]) == (
        waiter_pid,
        "orders",
        [holder_pid],
    )
    assert blocked.data["blockers"][0]["pid"] == holder_pid
    idle = report.check("long_transactions")
    assert idle.status == WARNING
    assert holder_pid in [s["pid"] for s in idle.data["sessions"]]


def test_pending_drifted_and_half_applied_migrations_show(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "base", "CREATE TABLE base (a int);"))
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    half = (
        "CREATE TABLE half (a int);\n"
        "CREATE INDEX CONCURRENTLY half_a_idx ON half (a);\n"
        "INSERT INTO half SELECT 1 / 0;\n"
    )
    make_project(pair(V2, "half way", half))
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 6
    make_project(
        {
            **pair(V3, "later", "CREATE TABLE later (a int);"),
            f"{V1}_base.sql": migration_text(V1, "base", "CREATE TABLE base (a int, b int);"),
        }
    )
    report = pgshift.health(settings_for(project, db_url))
    pending = report.check("pending_migrations")
    assert (pending.status, pending.data["versions"]) == (WARNING, [V3])
    failed = report.check("failed_migrations")
    assert failed.status == CRITICAL
    (item,) = failed.data["migrations"]
    assert item["version"] == V2 and item["half_applied"] is True
    assert item["statements_done"] == 2
    assert item["statement"].startswith("INSERT INTO half") and item["sqlstate"] == "22012"
    assert "division by zero" in failed.detail
    drift = report.check("drift")
    assert (drift.status, drift.data["drifted"]) == (CRITICAL, [V1])
    assert report.status == CRITICAL and report.exit_code == 2


def test_orphaned_migration_lock_is_critical(make_project: ProjectMaker, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True, application_name="pgshift lock") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key("pgshift"),))
        settings = settings_for(make_project({}), db_url, PGSHIFT_HEALTH_LOCK_HELD_WARN="0")
        check = pgshift.health(settings).check("migration_lock")
        assert check.status == CRITICAL
        assert f"pg_terminate_backend({conn.info.backend_pid})" in check.detail
        # A read-only probe never took the lock: its holder is unchanged.
        holders = query(db_url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")
        assert holders == [(conn.info.backend_pid,)]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback test
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def test_endpoint_answers_while_a_migration_holds_the_lock_and_a_storm_runs_checks_once(
    make_project: ProjectMaker, db_url: str
) -> None:
    gate = 4242
    project = make_project(pair(V1, "waits at the gate", f"SELECT pg_advisory_xact_lock({gate});"))
    gatekeeper = psycopg.connect(db_url, autocommit=True)
    gatekeeper.execute("SELECT pg_advisory_lock(%s)", (gate,))
    runner = spawn_cli(project, db_url, "up", "--yes", env={"PGSHIFT_LOCK_TIMEOUT": "60s"})
    try:
        key = lock_key("pgshift")
        wait_until(
            lambda: query(
                db_url,
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgshift runner'"
                " AND wait_event_type = 'Lock'",
            ),
            "the migration to wait at the gate",
        )
        lock_pid = query(
            db_url,
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objid = %s::bigint::oid",
            [(key & 0xFFFF_FFFF_FFFF_FFFF) & 0xFFFF_FFFF],
        )[0][0]
        settings = settings_for(project, db_url, DB_HEALTH_CHECK_INTERVAL="10 minutes")
        endpoint = HealthEndpoint(settings, db_url)
        with HealthServer(endpoint, "127.0.0.1", 0) as server:
            endpoint.open()
            assert server.address[0] == "127.0.0.1"
            code, body = _get(server.base_url + "/health")
            report = json.loads(body)
            assert code == (503 if report["status"] in ("critical", "unknown") else 200)
            checks = {c["name"]: c for c in report["checks"]}
            assert checks["migration_lock"]["data"]["pid"] == lock_pid
            assert checks["migration_lock"]["status"] == "ok"
            assert checks["pending_migrations"]["data"]["versions"] == [V1]
            assert checks["pool"]["data"]["max"] == settings.pool_max

            results: list[int] = []

            def scrape() -> None:
                for _ in range(10):
                    results.append(_get(server.base_url + "/metrics")[0])

            threads = [threading.Thread(target=scrape) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert results == [200] * 60
            _, metrics = _get(server.base_url + "/metrics")
            assert "pgshift_health_runs_total 1\n" in metrics
            assert "pgshift_migrations_pending 1\n" in metrics
            assert endpoint.runs == 1
            assert _get(server.base_url + "/nothing")[0] == 404
    finally:
        gatekeeper.close()  # opens the gate: the migration finishes
        out, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, out + err
    assert query(db_url, "SELECT version FROM pgshift.applied") == [(V1,)]


def test_endpoint_reports_critical_with_503_when_the_database_is_down(tmp_path: Path) -> None:
    settings = load_settings(
        {"database_url": "postgresql://nobody:hunter2@127.0.0.1:1/x"},
        env={**CALM, "DB_POOL_MIN": "0", "DB_POOL_MAX": "1"},
        cwd=tmp_path,
    )
    endpoint = HealthEndpoint(settings, settings.database_url)
    with HealthServer(endpoint, "127.0.0.1", 0) as server:
        endpoint.open()
        code, body = _get(server.base_url + "/health")
        _, metrics = _get(server.base_url + "/metrics")
    assert code == 503
    report = json.loads(body)
    assert report["status"] == "critical" and report["exit_code"] == 2
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks["connection"] == "critical" and checks["invalid_indexes"] == "unknown"
    assert "pgshift_health_status 2" in metrics
    assert "hunter2" not in body + metrics


def test_report_json_round_trips(make_project: ProjectMaker, db_url: str) -> None:
    report: HealthReport = pgshift.health(settings_for(make_project({}), db_url))
    data = json.loads(json.dumps(report.to_json()))
    assert data["status"] == report.status
    assert [c["name"] for c in data["checks"]] == [c.name for c in report.checks]


def test_monitor_during_up_logs_samples_and_cancels_a_statement_that_stalls_traffic(
    make_project: ProjectMaker, db_url: str
) -> None:
    query(db_url, "CREATE TABLE hot (id int)")
    # Sleeps holding ACCESS EXCLUSIVE on the first attempt only: the retry finds a lock_retry.
    sql = (
        "LOCK TABLE hot IN ACCESS EXCLUSIVE MODE;\n"
        "SELECT pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM pgshift.log"
        " WHERE event = 'lock_retry') THEN 0 ELSE 120 END);\n"
    )
    project = make_project(pair(V1, "hold the hot table", sql))
    env = {
        "DB_HEALTH_CHECK_INTERVAL": "100ms",
        "PGSHIFT_HEALTH_ABORT_BLOCKED_SESSIONS": "1",
        "PGSHIFT_HEALTH_ABORT_BLOCKED_FOR": "300ms",
    }
    runner = spawn_cli(project, db_url, "up", "--yes", env=env)
    readers: list[psycopg.Connection[Any]] = []
    threads: list[threading.Thread] = []
    counts: list[int] = []
    reader_pids: list[int] = []
    try:
        wait_until(
            lambda: query(
                db_url,
                "SELECT 1 FROM pg_locks WHERE relation = 'hot'::regclass"
                " AND mode = 'AccessExclusiveLock' AND granted",
            ),
            "the migration to lock the table",
        )
        for _ in range(2):
            conn = psycopg.connect(db_url, autocommit=True, application_name="app")
            readers.append(conn)
            reader_pids.append(conn.info.backend_pid)

            def read(c: psycopg.Connection[Any] = conn) -> None:
                row = c.execute("SELECT count(*) FROM hot").fetchone()
                counts.append(int(row[0]) if row else -1)

            threads.append(threading.Thread(target=read))
            threads[-1].start()
        out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        for t in threads:
            t.join(timeout=30)
        for conn in readers:
            conn.close()
    assert runner.returncode == 0, out + err
    assert counts == [0, 0]  # the application's reads went through once the migration yielded
    samples = [
        r[0]
        for r in query(
            db_url, "SELECT detail FROM pgshift.log WHERE event = 'health_sample' ORDER BY id"
        )
    ]
    cancelled = [s for s in samples if s["cancelled"]]
    assert len(cancelled) == 1
    assert cancelled[0]["blocked_over_threshold"] == 2
    assert sorted(cancelled[0]["blocked_pids"]) == sorted(reader_pids)
    retries = query(db_url, "SELECT detail->>'message' FROM pgshift.log WHERE event = 'lock_retry'")
    assert retries == [("cancelled by the health monitor: sessions piled up behind it",)]
    assert query(db_url, "SELECT version FROM pgshift.applied") == [(V1,)]
    assert "health: 2 session(s) waiting behind the migration" in out
    assert "cancelled the migration's statement" in out


def test_monitor_is_off_when_health_checks_are_disabled(make_project: ProjectMaker) -> None:
    from pgshift.ops.monitor import monitor_for

    project = make_project({})
    settings = load_settings(
        {"database_url": "postgresql://unused/x"},
        env={"DB_HEALTH_CHECK_ENABLED": "false"},
        cwd=project,
    )
    assert monitor_for(settings, lambda e: None) is None
    enabled = load_settings({"database_url": "postgresql://unused/x"}, env={}, cwd=project)
    assert monitor_for(enabled, lambda e: None) is not None


def test_a_run_under_way_is_not_reported_as_half_applied(
    make_project: ProjectMaker, db_url: str
) -> None:
    """Progress rows of the live run are its work in progress; no page during a long build."""
    sql = "CREATE TABLE building (id int);\nVACUUM building;\nSELECT pg_sleep(4);"
    project = make_project(pair(V1, "long build", sql))
    runner = spawn_cli(project, db_url, "up", "--yes", "--skip-backup")
    try:
        deadline = time.monotonic() + 30
        while not query(
            db_url,
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%%pg_sleep(4)%%'"
            " AND state = 'active' AND pid <> pg_backend_pid()",
        ):
            assert time.monotonic() < deadline, "the run never reached its slow statement"
            assert runner.poll() is None, runner.communicate()
            time.sleep(0.05)
        assert query(db_url, "SELECT statements_done FROM pgshift.progress") == [(2,)]
        report = pgshift.health(settings_for(project, db_url, **CALM))
        checks = {c.name: c for c in report.checks}
        assert checks["failed_migrations"].status == OK
        assert f"{V1} being applied" in checks["failed_migrations"].detail
        assert checks["migration_lock"].status == OK
        status = pgshift.status(settings_for(project, db_url))
        assert [(r.version, r.state, r.running) for r in status.rows] == [(V1, "pending", True)]
    finally:
        out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, out + err


def test_backups_check_counts_only_the_target_database_and_is_unknown_when_unreachable(
    make_project: ProjectMaker, db_url: str, tmp_path: Path
) -> None:
    """Issue 17, finding 9: a DB_BACKUP_DIR shared by several databases, and a target that
    cannot be reached, whose backups nobody can then tell apart."""
    project = make_project({})
    shared = tmp_path / "shared-backups"
    settings = settings_for(project, db_url, DB_BACKUP_DIR=str(shared))
    mine = pgshift.backup(settings)
    # Another database's backup in the same folder, taken later: copied from the real manifest.
    other = json.loads((shared / f"{mine.id}.json").read_text())
    other.update(id="20991231T000000Z-abcdef", database="some_other_db")
    other["created_at"] = datetime.now(UTC).isoformat()
    (shared / "20991231T000000Z-abcdef.json").write_text(json.dumps(other))

    check = pgshift.health(settings).check("backups")
    assert check.status == OK, check.detail
    assert (check.data["count"], check.data["others"]) == (1, 1)
    assert check.data["newest_id"] == mine.id
    assert check.data["database"] == mine.database and check.data["server"] == mine.server

    (shared / f"{mine.id}.json").unlink()  # only the other database's backup is left
    check = pgshift.health(settings).check("backups")
    assert check.status == WARNING and "no backup yet" in check.detail, check.detail

    down = load_settings(
        {"database_url": "postgresql://nobody@127.0.0.1:1/x"},
        env={**CALM, "DB_BACKUP_DIR": str(shared)},
        cwd=project,
    )
    check = pgshift.health(down).check("backups")
    assert check.status == "unknown" and "cannot tell" in check.detail, check.detail
