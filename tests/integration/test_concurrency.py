"""Many runners, killed runners and busy locks: the behaviours that matter under production load."""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import applied_versions, count_events, query, run_cli, spawn_cli, tables

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"


def test_eight_runners_at_once_apply_each_migration_exactly_once(
    make_project: ProjectMaker, db_url: str
) -> None:
    # Each migration fails if it runs twice (plain CREATE TABLE, INSERT into a unique key).
    files: dict[str, str] = {}
    for i in range(1, 6):
        version = f"2025010{i}000000"
        files |= pair(
            version,
            f"step {i}",
            f"CREATE TABLE t{i} (id int PRIMARY KEY);\nINSERT INTO t{i} VALUES (1);\n"
            f"CREATE INDEX CONCURRENTLY t{i}_idx ON t{i} (id);",
        )
    project = make_project(files)
    runners = [spawn_cli(project, db_url, "up", "--yes") for _ in range(8)]
    outputs = [p.communicate(timeout=120) for p in runners]
    for proc, (out, err) in zip(runners, outputs, strict=True):
        assert proc.returncode == 0, out + err
    assert len(applied_versions(db_url)) == 5
    applied_events = query(
        db_url,
        "SELECT version, count(*) FROM pgshift.log WHERE event = 'migration_applied' GROUP BY 1",
    )
    assert sorted(applied_events) == [(f"2025010{i}000000", 1) for i in range(1, 6)]


def test_runner_killed_mid_migration_leaves_nothing_half_applied(
    make_project: ProjectMaker, db_url: str
) -> None:
    # The sleep length is read from a control table so the re-run does not sleep.
    query(db_url, "CREATE TABLE control (seconds float)")
    query(db_url, "INSERT INTO control VALUES (60)")
    sql = (
        "CREATE TABLE victim (id int);\n"
        "INSERT INTO victim VALUES (1);\n"
        "SELECT pg_sleep((SELECT seconds FROM control));\n"
        "INSERT INTO victim VALUES (2);"
    )
    project = make_project(
        {**pair(V1, "before", "CREATE TABLE before_kill (id int);"), **pair(V2, "slow", sql)}
    )
    proc = spawn_cli(project, db_url, "up", "--yes")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sleeping = query(
            db_url,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE query LIKE '%%pg_sleep((SELECT seconds%%' AND state = 'active'"
            " AND pid <> pg_backend_pid()",
        )
        if sleeping[0][0]:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        proc.communicate()
        pytest.fail("the runner never reached the slow statement")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)

    # The server notices the dead client and rolls its transaction back.
    deadline = time.monotonic() + 20
    while query(
        db_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgshift%%'"
    )[0][0]:
        assert time.monotonic() < deadline, "the killed runner's sessions never went away"
        time.sleep(0.05)
    assert "victim" not in tables(db_url)
    assert applied_versions(db_url) == [V1]

    query(db_url, "UPDATE control SET seconds = 0")
    rerun = spawn_cli(project, db_url, "up", "--yes")
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, out + err
    assert applied_versions(db_url) == [V1, V2]
    assert query(db_url, "SELECT id FROM victim ORDER BY id") == [(1,), (2,)]


def test_busy_runner_lock_is_refused_naming_the_holder(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pgshift.db.lock import lock_key

    project = make_project(pair(V1, "one", "CREATE TABLE one (id int);"))
    with psycopg.connect(db_url, autocommit=True, application_name="deploy-bot") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("pgshift"),))
        holder_pid = holder.info.backend_pid
        monkeypatch.setenv("PGSHIFT_RUNNER_LOCK_WAIT", "300ms")
        result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 3
    assert f"pid {holder_pid}" in result.err and "deploy-bot" in result.err
    assert "one" not in tables(db_url)


def test_lock_queue_is_bounded_while_a_blocker_holds_the_table(
    make_project: ProjectMaker, db_url: str
) -> None:
    """A long transaction holds a lock; the migration must not stall other sessions' queries."""
    query(db_url, "CREATE TABLE hot (id int)")
    query(db_url, "INSERT INTO hot VALUES (1)")
    project = make_project(pair(V1, "alter hot", "ALTER TABLE hot ADD COLUMN extra int;"))

    blocker = psycopg.connect(db_url)
    blocker.execute("SELECT * FROM hot")  # ACCESS SHARE held until the transaction ends
    lock_timeout_ms = 200
    env = {"PGSHIFT_LOCK_TIMEOUT": f"{lock_timeout_ms}ms", "PGSHIFT_LOCK_RETRY_TOTAL": "30s"}
    runner = spawn_cli(project, db_url, "up", "--yes", env=env)

    waits: list[float] = []
    stop = threading.Event()

    def app_queries() -> None:
        with psycopg.connect(db_url, autocommit=True) as app:
            while not stop.is_set():
                started = time.monotonic()
                app.execute("SELECT count(*) FROM hot").fetchone()
                waits.append(time.monotonic() - started)
                time.sleep(0.01)

    worker = threading.Thread(target=app_queries)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while count_events(db_url, "lock_retry") < 3:
            assert time.monotonic() < deadline, "the migration never retried"
            assert runner.poll() is None, runner.communicate()
            time.sleep(0.05)
        assert runner.poll() is None  # still retrying, not failed
        blocker.rollback()  # the long transaction ends
        out, err = runner.communicate(timeout=60)
    finally:
        stop.set()
        worker.join()
        blocker.close()
    assert runner.returncode == 0, out + err
    columns = query(
        db_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'hot'"
    )
    assert ("extra",) in columns
    assert len(waits) > 20
    # Nobody waited much longer than the lock timeout (generous slack for a loaded CI machine).
    assert max(waits) < lock_timeout_ms / 1000 + 0.5, max(waits)


def test_runner_waits_for_a_short_lock_and_logs_the_wait(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pgshift.db.lock import lock_key

    project = make_project(pair(V1, "one", "CREATE TABLE one (id int);"))
    holder = psycopg.connect(db_url, autocommit=True, application_name="other-deploy")
    holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("pgshift"),))

    def release_once_the_runner_waits() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not query(
            db_url, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgshift lock'"
        ):
            time.sleep(0.02)
        time.sleep(0.6)
        holder.close()

    releaser = threading.Thread(target=release_once_the_runner_waits)
    releaser.start()
    try:
        result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    finally:
        releaser.join()
    assert result.code == 0, result.err
    assert "waiting for the migration lock" in result.out and "other-deploy" in result.out
    (detail,) = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'runner_lock_waited'")
    assert "other-deploy" in detail[0]["holder"]
    assert detail[0]["waited_ms"] >= 500


def test_lock_retries_exhausted_is_a_timeout_exit_5_and_logged(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    query(db_url, "CREATE TABLE busy (id int)")
    project = make_project(pair(V1, "alter busy", "ALTER TABLE busy ADD COLUMN extra int;"))
    monkeypatch.setenv("PGSHIFT_LOCK_TIMEOUT", "100ms")
    # Pauses between attempts start at 4 lock timeouts and double: 2 s leaves room for 3.
    monkeypatch.setenv("PGSHIFT_LOCK_RETRY_TOTAL", "2s")
    with psycopg.connect(db_url) as blocker:
        blocker.execute("SELECT * FROM busy")  # holds ACCESS SHARE until it ends
        result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 5, result.err
    assert f"{V1}_alter_busy.sql:6: could not take the locks it needs" in result.err
    assert count_events(db_url, "lock_retry") >= 2
    (detail,) = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'migration_failed'")
    assert detail[0]["sqlstate"] == "55P03"
    columns = query(
        db_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'busy'"
    )
    assert columns == [("id",)]
