"""Small one-transaction migrations travel several to a message, and each still commits alone.

`up` sends consecutive small migrations in one simple-query message (db/execute.py,
run_transactions), so the server never waits for the client between them. What must not change
is checked here on both servers, with faults injected: each migration commits with its own
history row and duration; a failure inside a batch keeps the ones before it and runs none after
it; a kill, a terminated backend and SIGTERM in the middle of a batch leave every statement run
once; `status` names what is in flight.

Migrations of one message share the server's statement_timestamp(), which each migration here
records, so the tests can see which ones were sent together. The batch grows from one migration
(1, 2, 4, ... at most doubling, ops/apply.py), so with quick migrations V1 goes alone, V2-V3
together and V4-V7 together.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import (
    applied_versions,
    count_events,
    query,
    run_cli,
    spawn_cli,
    wait_for_sleep,
)

import pgshift
from pgshift import events
from pgshift.config import load_settings

VERSIONS = [f"2025010100000{i}" for i in range(1, 9)]  # V1..V8
# migration_text writes 4 header lines and a blank line: the SQL starts on line 6.
FIRST_LINE = 6


def _body(i: int, extra: str = "") -> str:
    """Migration i+1: counts its runs (a sequence survives a rollback), stamps its message."""
    return (
        f"SELECT nextval('ran_{i}');\n"
        f"INSERT INTO stamps VALUES ({i}, statement_timestamp());\n"
        f"{extra}"
        f"CREATE TABLE made_{i} (id int);\n"
    )


def _project(make_project: ProjectMaker, db_url: str, extras: dict[int, str]) -> Path:
    query(db_url, "CREATE TABLE stamps (i int, at timestamptz)")
    for i in range(len(VERSIONS)):
        query(db_url, f"CREATE SEQUENCE ran_{i}")
    root = None
    for i, version in enumerate(VERSIONS):
        root = make_project(migration_pair(version, f"m{i}", _body(i, extras.get(i, ""))))
    assert root is not None
    return root


def _runs(db_url: str) -> list[int]:
    """How often each migration's statements ran (rolled back or not)."""
    counts = []
    for i in range(len(VERSIONS)):
        last, called = query(db_url, f"SELECT last_value, is_called FROM ran_{i}")[0]
        counts.append(int(last) if called else 0)
    return counts


def _messages(db_url: str) -> list[list[int]]:
    """The migrations (0-based) grouped by the message that carried them, in order."""
    rows = query(db_url, "SELECT i, at FROM stamps ORDER BY at, i")
    groups: dict[object, list[int]] = {}
    for i, at in rows:
        groups.setdefault(at, []).append(int(i))
    return list(groups.values())


def test_small_migrations_share_a_message_and_each_records_its_own_duration(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # V5 sleeps; V6 travels after it in the same message and must not be charged its time.
    root = _project(make_project, db_url, {4: "SELECT pg_sleep(0.4);\n"})
    result = run_cli(capsys, root, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 0, result.err
    assert applied_versions(db_url) == VERSIONS
    assert _runs(db_url) == [1] * len(VERSIONS)
    messages = _messages(db_url)
    assert len(messages) < len(VERSIONS), messages  # some were sent together
    assert messages[0] == [0]  # the first goes alone: the batch grows from what it shows
    assert any(4 in m and 5 in m for m in messages), messages
    rows = dict(query(db_url, "SELECT version, duration_ms FROM pgshift.applied"))
    assert rows[VERSIONS[4]] >= 400, rows
    assert rows[VERSIONS[5]] < 400, rows  # its own time, not the message's
    logged = query(
        db_url,
        "SELECT version, (detail->>'duration_ms')::int FROM pgshift.log"
        " WHERE event = 'migration_applied'",
    )
    assert dict(logged) == rows


def test_the_library_reports_each_step_of_a_batch_with_the_server_s_duration(
    make_project: ProjectMaker, db_url: str
) -> None:
    root = _project(make_project, db_url, {4: "SELECT pg_sleep(0.3);\n"})
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(root / "migrations")}, env={}, cwd=root
    )
    seen: list[events.Event] = []
    result = pgshift.up(settings, backup=False, on_event=seen.append)
    assert [s.status for s in result.steps] == ["applied"] * len(VERSIONS)
    applied = {e.version: e.duration_ms for e in seen if isinstance(e, events.StepApplied)}
    assert applied == {s.version: s.duration_ms for s in result.steps}
    # A step of a batch reports what the server measured (one run alone, the client's wall).
    rows = dict(query(db_url, "SELECT version, duration_ms FROM pgshift.applied"))
    batched = [VERSIONS[i] for m in _messages(db_url) if len(m) > 1 for i in m]
    assert VERSIONS[4] in batched
    assert {v: applied[v] for v in batched} == {v: rows[v] for v in batched}
    assert applied[VERSIONS[4]] >= 300
    kinds = [(type(e).__name__, getattr(e, "version", None)) for e in seen]
    for version in VERSIONS:  # each step's events, in order, as a step run alone emits them
        started = kinds.index(("StepStarted", version))
        assert kinds.index(("StatementDone", version)) > started
        assert kinds.index(("StepApplied", version)) > started
    assert any(4 in m and 5 in m for m in _messages(db_url))


def test_a_failure_inside_a_batch_keeps_those_before_and_runs_none_after(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(make_project, db_url, {4: "SELECT 1 / 0;\n"})  # V5, with V6 and V7 after it
    result = run_cli(capsys, root, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 1, result.err
    assert f"{VERSIONS[4]}_m4.sql:{FIRST_LINE + 2}: division by zero" in result.err
    assert applied_versions(db_url) == VERSIONS[:4]
    assert _runs(db_url) == [1, 1, 1, 1, 1, 0, 0, 0]  # V5 ran once; nothing after it ran
    failed = query(
        db_url, "SELECT version, detail FROM pgshift.log WHERE event = 'migration_failed'"
    )
    assert [(v, d["statement_index"], d["line"]) for v, d in failed] == [
        (VERSIONS[4], 2, FIRST_LINE + 2)
    ]
    fixed = root / "migrations" / f"{VERSIONS[4]}_m4.sql"
    fixed.write_text(fixed.read_text().replace("SELECT 1 / 0;\n", ""))
    again = run_cli(capsys, root, db_url, "up", "--yes", "--skip-backup")
    assert again.code == 0, again.err
    assert applied_versions(db_url) == VERSIONS
    assert _runs(db_url) == [1, 1, 1, 1, 2, 1, 1, 1]  # only the failed one ran again


def test_a_lock_timeout_inside_a_batch_is_retried_and_the_rest_goes_on(
    make_project: ProjectMaker, db_url: str
) -> None:
    """V5 waits for a table another session holds: it gives up (lock_timeout), the run retries
    it alone after V4 committed, and V6.. follow once the other session lets go."""
    query(db_url, "CREATE TABLE busy (id int)")
    root = _project(make_project, db_url, {4: "LOCK TABLE busy IN ACCESS EXCLUSIVE MODE;\n"})
    with psycopg.connect(db_url) as holder:
        holder.execute("LOCK TABLE busy IN ACCESS SHARE MODE")
        proc = spawn_cli(
            root,
            db_url,
            "up",
            "--yes",
            "--skip-backup",
            env={"PGSHIFT_LOCK_TIMEOUT": "100", "PGSHIFT_LOCK_RETRY_TOTAL": "30000"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if count_events(db_url, "lock_retry"):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the blocked migration never retried")
        assert applied_versions(db_url) == VERSIONS[:4]
        holder.rollback()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert applied_versions(db_url) == VERSIONS
    counts = _runs(db_url)
    assert counts[:4] == [1] * 4 and counts[5:] == [1] * 3, counts
    assert counts[4] >= 2  # it ran again after each lock timeout: rolled back each time
    (retried,) = {
        r[0] for r in query(db_url, "SELECT version FROM pgshift.log WHERE event = 'lock_retry'")
    }
    assert retried == VERSIONS[4]


@pytest.mark.parametrize("member", [4, 5])
def test_a_kill_after_a_commit_inside_a_batch_leaves_each_migration_run_once(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str], member: int
) -> None:
    root = _project(make_project, db_url, {})
    point = f"committed:{VERSIONS[member]}:3"  # after its commit, the message's rest may run
    killed = spawn_cli(
        root, db_url, "up", "--yes", "--skip-backup", env={"PGSHIFT_FAILPOINT": point}
    )
    _, err = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, err
    assert VERSIONS[member] in applied_versions(db_url)
    resumed = run_cli(capsys, root, db_url, "up", "--yes", "--skip-backup")
    assert resumed.code == 0, resumed.err
    assert applied_versions(db_url) == VERSIONS
    assert _runs(db_url) == [1] * len(VERSIONS)
    counts = query(
        db_url,
        "SELECT version, count(*) FROM pgshift.log WHERE event = 'migration_applied' GROUP BY 1",
    )
    assert sorted(counts) == [(v, 1) for v in VERSIONS]


def test_a_terminated_backend_inside_a_batch_commits_nothing_twice(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(make_project, db_url, {4: "SELECT pg_sleep(30);\n"})
    proc = spawn_cli(root, db_url, "up", "--yes", "--skip-backup")
    pid = wait_for_sleep(db_url, proc)
    query(db_url, "SELECT pg_terminate_backend(%s)", [pid])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, out + err
    assert "Traceback" not in err
    assert applied_versions(db_url) == VERSIONS[:4]
    fixed = root / "migrations" / f"{VERSIONS[4]}_m4.sql"
    fixed.write_text(fixed.read_text().replace("SELECT pg_sleep(30);\n", ""))
    resumed = run_cli(capsys, root, db_url, "up", "--yes", "--skip-backup")
    assert resumed.code == 0, resumed.err
    assert applied_versions(db_url) == VERSIONS
    counts = _runs(db_url)
    # V5 was rolled back with its session and ran again; every other ran once.
    assert counts == [1, 1, 1, 1, 2, 1, 1, 1], counts


def test_sigterm_inside_a_batch_lets_the_running_step_finish_and_starts_none_after_it(
    make_project: ProjectMaker, db_url: str
) -> None:
    query(db_url, "CREATE TABLE control (seconds float)")
    query(db_url, "INSERT INTO control VALUES (1.5)")
    sleep = "SELECT pg_sleep((SELECT seconds FROM control));\n"
    root = _project(make_project, db_url, {4: sleep})  # V5, with V6 and V7 in its message
    proc = spawn_cli(root, db_url, "up", "--yes", "--skip-backup")
    wait_for_sleep(db_url, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    assert "nothing is half-done" in err
    assert applied_versions(db_url) == VERSIONS[:5]  # the running one finished
    assert _runs(db_url) == [1, 1, 1, 1, 1, 0, 0, 0]  # the rest of its message never started
    assert any(4 in m for m in _messages(db_url))
    [(version,)] = query(db_url, "SELECT version FROM pgshift.log WHERE event = 'interrupted'")
    assert version is None  # stopped between two steps


def test_status_names_the_migrations_of_a_message_in_flight_as_running(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query(db_url, "CREATE TABLE control (seconds float)")
    query(db_url, "INSERT INTO control VALUES (30)")
    sleep = "SELECT pg_sleep((SELECT seconds FROM control));\n"
    root = _project(make_project, db_url, {4: sleep})
    proc = spawn_cli(root, db_url, "up", "--yes", "--skip-backup")
    try:
        wait_for_sleep(db_url, proc)
        status = run_cli(capsys, root, db_url, "status", "--json").json()
        running = {m["version"] for m in status["migrations"] if m["running"]}
        assert VERSIONS[4] in running
        assert running <= set(VERSIONS[4:]), running
        assert VERSIONS[5] in running  # queued behind it in the same message
    finally:
        query(db_url, "UPDATE control SET seconds = 0")
        query(
            db_url,
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
            " AND pid <> pg_backend_pid()",
        )
        proc.communicate(timeout=60)


@pytest.mark.parametrize("seconds", [0.3, 1.5])
def test_a_kill_while_a_batch_runs_leaves_the_rest_to_the_server_and_the_next_run_waits(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str], seconds: float
) -> None:
    """The killed client's message goes on in its session until the server sees the client
    gone (client_connection_check_interval, about a second): V5, sleeping, rolls back then,
    or commits first and the migrations queued behind it with it. The next run waits for that
    session (the fence) and runs what is left: each migration is applied once, and only V5's
    statements may have run twice (the first time rolled back)."""
    query(db_url, "CREATE TABLE control (seconds float)")
    query(db_url, "INSERT INTO control VALUES (%s)", [seconds])
    sleep = "SELECT pg_sleep((SELECT seconds FROM control));\n"
    root = _project(make_project, db_url, {4: sleep})
    proc = spawn_cli(root, db_url, "up", "--yes", "--skip-backup")
    wait_for_sleep(db_url, proc)
    proc.kill()
    proc.communicate(timeout=60)
    resumed = run_cli(capsys, root, db_url, "up", "--yes", "--skip-backup")
    assert resumed.code == 0, resumed.err
    assert applied_versions(db_url) == VERSIONS
    runs = _runs(db_url)
    assert runs[:4] == [1] * 4 and runs[5:] == [1] * 3 and runs[4] in (1, 2), runs
    counts = query(
        db_url,
        "SELECT version, count(*) FROM pgshift.log WHERE event = 'migration_applied' GROUP BY 1",
    )
    assert sorted(counts) == [(v, 1) for v in VERSIONS]
