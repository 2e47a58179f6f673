"""Issue 8: a rollback killed after part of a rollback file committed is shown, and finished.

The rollback files drop an index concurrently (outside a transaction, so it commits on its own)
and then the table. The runner is SIGKILLed while the second statement waits: status, health and
`up` must then all tell the truth, and the command they name must finish the revert.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import applied_versions, query, run_cli, spawn_cli, tables

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"


def _project(make_project: ProjectMaker) -> Path:
    """Three migrations: each a table with rows and an index; each rollback drops both."""
    files: dict[str, str] = {}
    for i, version in enumerate((V1, V2, V3), start=1):
        files |= pair(
            version,
            f"table {i}",
            f"CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY, v int);\n"
            f"INSERT INTO t{i} (v) SELECT g FROM generate_series(1, 100) g;\n"
            f"CREATE INDEX CONCURRENTLY t{i}_v_idx ON t{i} (v);",
            rollback_sql=f"DROP INDEX CONCURRENTLY t{i}_v_idx;\nDROP TABLE t{i};",
        )
    return make_project(files)


def _wait_for(
    what: str, proc: subprocess.Popen[str], check: Callable[[], bool], timeout_s: float
) -> None:
    """Poll ``check`` until true; fail with the process's output if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the rollback exited ({proc.returncode}) before {what}:\n{out}{err}")
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    pytest.fail(f"timed out waiting for {what}")


def _pgshift_sessions(db_url: str) -> int:
    return int(
        query(
            db_url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgshift%%'"
            " AND pid <> pg_backend_pid()",
        )[0][0]
    )


def _kill_rollback_half_way(project: Path, db_url: str) -> None:
    """Run `rollback safe --count 3` and SIGKILL it once V2's index drop has committed.

    V3 reverts completely. For V2, a session that used t2's identity sequence holds a lock that
    DROP TABLE t2 needs (it drops the sequence too) but DROP INDEX CONCURRENTLY does not, so the
    runner is provably between the two statements when it is killed: not a timing guess.
    """
    blocker = psycopg.connect(db_url)  # a transaction, open until released below
    try:
        blocker.execute("SELECT nextval(pg_get_serial_sequence('t2', 'id'))")
        env = {"PGSHIFT_LOCK_TIMEOUT": "200ms", "PGSHIFT_LOCK_RETRY_TOTAL": "120s"}
        proc = spawn_cli(
            project, db_url, "rollback", "safe", "--count", "3", "--yes", "--skip-backup", env=env
        )

        def stuck_between_statements() -> bool:
            index_gone = not query(db_url, "SELECT 1 FROM pg_indexes WHERE indexname = 't2_v_idx'")
            waiting = query(
                db_url,
                "SELECT count(*) FROM pgshift.log WHERE event = 'lock_retry' AND version = %s",
                [V2],
            )
            return index_gone and int(waiting[0][0]) > 0

        _wait_for(
            "V2's index was dropped and DROP TABLE t2 waited", proc, stuck_between_statements, 60
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        # The killed runner's sessions end (the waiting one at its next lock_timeout) before the
        # blocker lets go, so nothing the dead process sent can still commit.
        deadline = time.monotonic() + 20
        while _pgshift_sessions(db_url):
            assert time.monotonic() < deadline, "the killed runner's sessions never went away"
            time.sleep(0.05)
    finally:
        blocker.rollback()
        blocker.close()


def test_killed_rollback_is_half_reverted_everywhere_until_rollback_safe_finishes_it(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    assert tables(db_url) == {"t1", "t2", "t3"}

    _kill_rollback_half_way(project, db_url)
    # What the kill left: V3 reverted, V2's index gone but its table and applied row kept.
    assert tables(db_url) == {"t1", "t2"}
    assert applied_versions(db_url) == [V1, V2]
    assert query(db_url, "SELECT indexname FROM pg_indexes WHERE tablename = 't2'") == []
    progress = query(db_url, "SELECT version, action FROM pgshift.progress")
    assert progress == [(V2, "revert")]

    # status: V2 is failed and says why, not "applied".
    status = run_cli(capsys, project, db_url, "status", "--json")
    assert status.code == 0, status.err
    rows = {m["version"]: m for m in status.json()["migrations"]}
    assert [rows[v]["state"] for v in (V1, V2, V3)] == ["applied", "failed", "pending"]
    assert rows[V2]["half_reverted"] is True and rows[V1]["half_reverted"] is False
    assert "pgshift rollback safe" in rows[V2]["detail"]
    assert status.json()["applied"] == 1
    text = run_cli(capsys, project, db_url, "status")
    assert "half-reverted" in text.out and "pgshift rollback safe" in text.out

    # health: critical, naming the command that finishes it, never `up`.
    health = run_cli(capsys, project, db_url, "health", "--json")
    assert health.code == 2, health.out
    failed = next(c for c in health.json()["checks"] if c["name"] == "failed_migrations")
    assert failed["status"] == "critical"
    assert "half-reverted" in failed["detail"] and "`pgshift rollback safe`" in failed["detail"]
    assert "pgshift up" not in failed["detail"]

    # up: refuses, exit 6, naming the migration and the command; changes nothing.
    up = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert up.code == 6, up.out + up.err
    assert V2 in up.err and "pgshift rollback safe" in up.err
    assert tables(db_url) == {"t1", "t2"}

    # The named command finishes V2's revert, and only that.
    finish = run_cli(
        capsys, project, db_url, "rollback", "safe", "--yes", "--skip-backup", "--json"
    )
    assert finish.code == 0, finish.out + finish.err
    assert [(s["version"], s["status"]) for s in finish.json()["steps"]] == [(V2, "reverted")]
    assert tables(db_url) == {"t1"}
    assert applied_versions(db_url) == [V1]
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]
    after = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [(m["state"], m["half_reverted"]) for m in after["migrations"]] == [
        ("applied", False),
        ("pending", False),
        ("pending", False),
    ]
    assert run_cli(capsys, project, db_url, "health", "--json").json()["status"] != "critical"

    # And the way forward works again: up re-applies both, indexes included.
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    assert query(db_url, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 't%%_v_idx'") == [
        (3,)
    ]


def test_emergency_finishes_a_half_revert_of_a_migration_from_an_older_run(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run A applied V1 and V2, run B (the last `up`) V3; a rollback then reverted V3 and was
    killed half-way through V2's rollback file. Emergency must finish V2, not call the
    database "back" with V2's index gone, and prove it without the backup before run B (which
    still holds V2's index)."""
    import pgshift
    from pgshift.config import load_settings

    project = _project(make_project)
    assert run_cli(capsys, project, db_url, "up", "--target", V2, "--yes").code == 0
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    _kill_rollback_half_way(project, db_url)
    assert applied_versions(db_url) == [V1, V2] and tables(db_url) == {"t1", "t2"}

    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")},
        env={},
        cwd=project,
    )
    with pgshift.connect(settings, purpose="rollback") as target:
        ep = pgshift.plan_emergency(pgshift.load_project(settings), target)
    assert ep.versions == (V2,) and ep.finishing == (V2,) and ep.expected == (V1,)
    assert ep.backup is not None and V3 not in ep.backup.versions  # the one before run B

    result = run_cli(capsys, project, db_url, "rollback", "emergency", "--yes", "--json")
    assert result.code == 0, result.out + result.err
    data = result.json()
    assert data["mode"] == "reverted" and data["verified"] is True
    assert data["schema_verified"] is False  # the backup before run B still has V2's schema
    assert [(s["version"], s["status"]) for s in data["steps"]] == [(V2, "reverted")]
    assert applied_versions(db_url) == [V1] and tables(db_url) == {"t1"}
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]
    again = run_cli(capsys, project, db_url, "rollback", "emergency", "--yes")
    assert again.code == 0 and "already at the state" in again.out, again.out + again.err
