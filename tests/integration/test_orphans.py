"""Orphans: a runner's server session that outlives its client must never run beside a new run.

A runner killed (or frozen, or cut off) while its session executes a statement leaves that
session running until the statement ends, and it may still commit it together with its progress
row. These tests leave such an orphan on purpose, on both servers, and check that the next run
waits for it, goes on from where it left the migration, and that every statement ran once.

The orphan is made deterministic: the statement waits on a lock the test holds, the runner's
process is frozen with SIGSTOP (its sockets stay open, so the server cannot tell it is gone),
and its idle lock session is terminated, which frees the runner lock exactly as a dead client's
would. Then the test decides when the orphan commits and when its session ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import query, spawn_cli

V1 = "20250101000000"

GATED = (
    "CREATE TABLE w (x int);\n"
    "INSERT INTO w SELECT 1 FROM gate;\n"  # waits while the test holds the gate
    "INSERT INTO w VALUES (2);\n"
)
HEADER = ("-- @transaction: false", "-- @lock-timeout: 60s")


def _wait_until(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


@contextmanager
def _gate_closed(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Hold ACCESS EXCLUSIVE on ``gate`` until the caller commits the returned connection."""
    query(db_url, "CREATE TABLE gate (x int)")
    query(db_url, "INSERT INTO gate VALUES (1)")
    with psycopg.connect(db_url) as conn:
        conn.execute("LOCK TABLE gate IN ACCESS EXCLUSIVE MODE")
        yield conn


def _waiting_on_gate(db_url: str) -> bool:
    rows = query(
        db_url,
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query LIKE '%FROM gate%'",
    )
    return bool(rows)


def _terminate_lock_session(db_url: str) -> None:
    """End the frozen runner's idle lock session: the runner lock is free, as after a kill."""
    rows = query(
        db_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'pgshift lock'",
    )
    assert rows == [(True,)], rows
    _wait_until(
        "the lock session is gone",
        lambda: (
            not query(
                db_url,
                "SELECT 1 FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'pgshift lock'",
            )
        ),
    )


def _rows(db_url: str) -> list[int]:
    return [int(str(r[0])) for r in query(db_url, "SELECT x FROM w ORDER BY x")]


def _finish(proc: subprocess.Popen[str], timeout_s: float = 60) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out + err


def _orphan(project: Path, db_url: str) -> subprocess.Popen[str]:
    """Start `up`, and leave its statement 2 executing with the client frozen, lock freed."""
    first = spawn_cli(project, db_url, "up", "--yes", "--skip-backup")
    _wait_until("statement 2 waits on the gate", lambda: _waiting_on_gate(db_url))
    os.kill(first.pid, signal.SIGSTOP)
    _terminate_lock_session(db_url)
    return first


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def test_a_new_run_waits_for_an_orphan_and_goes_on_after_what_it_committed(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(pair(V1, "gated", GATED, extra_header=HEADER))
    with _gate_closed(db_url) as gate:
        first = _orphan(project, db_url)
        try:
            second = spawn_cli(project, db_url, "up", "--yes", "--skip-backup", "-v")
            # The second run plans from progress 1, takes the free runner lock, then must wait
            # for the orphan: it has not run statement 2 (nothing else waits on the gate).
            _wait_until(
                "the second run holds the runner lock",
                lambda: bool(
                    query(
                        db_url,
                        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = 'pgshift lock'",
                    )
                ),
            )
            time.sleep(0.5)
            waiting = query(
                db_url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%FROM gate%'",
            )
            assert waiting == [(1,)]  # only the orphan's statement 2, never a second one
            gate.commit()  # the orphan's statement 2 commits, with its progress row
            _wait_until(
                "the orphan committed statement 2",
                lambda: bool(query(db_url, "SELECT 1 FROM w WHERE x = 1")),
            )
            assert second.poll() is None  # still waiting: the orphan's session is alive
        finally:
            _kill(first)  # its session ends now, and the second run may go on
    code, output = _finish(second)
    assert code == 0, output
    assert "waiting for a session of an earlier run" in output
    assert "another run got to statement 2 (planned from 1)" in output
    assert _rows(db_url) == [1, 2]  # each statement exactly once
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]
    events = [r[0] for r in query(db_url, "SELECT event FROM pgshift.log ORDER BY id")]
    assert "earlier_run_waited" in events and "plan_overtaken" in events


def test_the_wait_for_an_orphan_is_bounded_and_names_it(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(pair(V1, "gated", GATED, extra_header=HEADER))
    with _gate_closed(db_url) as gate:
        first = _orphan(project, db_url)
        try:
            orphan_pid = query(
                db_url,
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%FROM gate%'",
            )[0][0]
            refused = spawn_cli(
                project,
                db_url,
                "up",
                "--yes",
                "--skip-backup",
                env={"PGSHIFT_RUNNER_LOCK_WAIT": "1500"},
            )
            code, output = _finish(refused)
            assert code == 3, output
            assert "still executing a migration statement" in output
            assert f"pid {orphan_pid}" in output
            assert f"apply {V1}" in output  # what it runs, from its marker, not its text
            assert "FROM gate" not in output
            assert _rows(db_url) == []  # the refused run ran nothing
            gate.commit()
        finally:
            _kill(first)
    code, output = _finish(spawn_cli(project, db_url, "up", "--yes", "--skip-backup"))
    assert code == 0, output
    assert _rows(db_url) == [1, 2]


def test_a_revert_waits_for_an_orphaned_rollback(make_project: ProjectMaker, db_url: str) -> None:
    """The same fence holds for rollbacks: an orphaned rollback statement is never repeated."""
    rollback = "INSERT INTO w SELECT 10 FROM gate;\nDROP TABLE IF EXISTS never;\n"
    files = pair(V1, "gated", "CREATE TABLE w (x int);", rollback_sql=rollback)
    name = next(n for n in files if n.endswith("_rollback.sql"))
    files[name] = (
        f"-- Rollback: {name}\n-- @transaction: false\n-- @lock-timeout: 60s\n\n{rollback}"
    )
    project = make_project(files)
    code, output = _finish(spawn_cli(project, db_url, "up", "--yes", "--skip-backup"))
    assert code == 0, output
    with _gate_closed(db_url) as gate:
        first = spawn_cli(project, db_url, "rollback", "safe", "--yes", "--skip-backup")
        _wait_until("the rollback waits on the gate", lambda: _waiting_on_gate(db_url))
        os.kill(first.pid, signal.SIGSTOP)
        _terminate_lock_session(db_url)
        try:
            second = spawn_cli(project, db_url, "rollback", "safe", "--yes", "--skip-backup")
            time.sleep(1.0)
            assert second.poll() is None
            gate.commit()
            _wait_until(
                "the orphan committed its statement",
                lambda: bool(query(db_url, "SELECT 1 FROM w WHERE x = 10")),
            )
        finally:
            _kill(first)
    code, output = _finish(second)
    assert code == 0, output
    assert _rows(db_url) == [10]  # the orphan's insert, once
    assert query(db_url, "SELECT count(*) FROM pgshift.applied") == [(0,)]


@pytest.mark.parametrize("trial", range(3))
def test_kill_and_restart_at_once_never_runs_a_statement_twice(
    make_project: ProjectMaker, db_url: str, trial: int
) -> None:
    """What a Kubernetes Job restart does: SIGKILL mid-statement, start again immediately.

    The killed run's statement (0.9 s) goes on without its client and commits (the server
    checks for a lost client once a second); the restarted run must wait for it and go on after
    it, never run it again.
    """
    sql = (
        "CREATE TABLE w (x int);\n"
        "INSERT INTO w SELECT 1 FROM pg_sleep(0.9);\n"
        "INSERT INTO w VALUES (2);\n"
    )
    project = make_project(pair(V1, "slow", sql, extra_header=("-- @transaction: false",)))
    first = spawn_cli(project, db_url, "up", "--yes", "--skip-backup")
    _wait_until(
        "the sleep runs",
        lambda: bool(
            query(
                db_url,
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'active' AND query LIKE '%pg_sleep(0.9)%'"
                " AND pid <> pg_backend_pid()",
            )
        ),
    )
    time.sleep(0.05 * trial)
    _kill(first)
    code, output = _finish(spawn_cli(project, db_url, "up", "--yes", "--skip-backup"))
    assert code == 0, output  # at its first try
    assert _rows(db_url) == [1, 2]  # committed by the orphan or by the restart, never both
