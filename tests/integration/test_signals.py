"""SIGINT and SIGTERM stop a real `pgshift up` cleanly (SPEC 3): what Ctrl-C and Kubernetes do.

Each test starts `python -m pgshift up` as a real process, waits until the server runs the slow
statement, sends the signal, and then checks the exit code, the `interrupted` row of the log,
and that a second `up` applies the rest exactly once (plain CREATE TABLE fails if run twice).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import applied_versions, query, spawn_cli, tables, wait_for_sleep

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
SLEEP = "SELECT pg_sleep((SELECT seconds FROM control))"


def _slow_project(make_project: ProjectMaker, db_url: str, *, transaction: bool) -> Path:
    """V1 quick, V2 slow (its sleep read from a control table, so a re-run is quick), V3 quick."""
    query(db_url, "CREATE TABLE control (seconds float)")
    query(db_url, "INSERT INTO control VALUES (2)")
    extra = () if transaction else ("@transaction: false",)
    slow = f"CREATE TABLE slow_a (id int);\n{SLEEP};\nCREATE TABLE slow_b (id int);"
    return make_project(
        {
            **pair(V1, "first", "CREATE TABLE first (id int);"),
            **pair(V2, "slow", slow, extra_header=extra),
            **pair(V3, "last", "CREATE TABLE last (id int);"),
        }
    )


def _interrupt(
    project: Path, db_url: str, signum: int, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = spawn_cli(project, db_url, "up", "--yes", "--skip-backup", env=env)
    wait_for_sleep(db_url, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def _interrupted_rows(db_url: str) -> list[tuple[str | None, dict[str, object]]]:
    rows = query(db_url, "SELECT version, detail FROM pgshift.log WHERE event = 'interrupted'")
    return [(r[0], r[1] if isinstance(r[1], dict) else json.loads(r[1])) for r in rows]


def _resume_applies_the_rest_once(project: Path, db_url: str) -> None:
    query(db_url, "UPDATE control SET seconds = 0")
    proc = spawn_cli(project, db_url, "up", "--yes", "--skip-backup")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert applied_versions(db_url) == [V1, V2, V3]
    assert {"first", "slow_a", "slow_b", "last"} <= tables(db_url)
    counts = query(
        db_url,
        "SELECT version, count(*) FROM pgshift.log WHERE event = 'migration_applied'"
        " GROUP BY 1 ORDER BY 1",
    )
    assert counts == [(V1, 1), (V2, 1), (V3, 1)]


def test_sigterm_lets_the_transactional_step_finish_then_stops(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _slow_project(make_project, db_url, transaction=True)
    code, out, err = _interrupt(project, db_url, signal.SIGTERM)
    assert code == 143, out + err
    assert "interrupted by SIGTERM" in err and "nothing is half-done" in err
    assert "Traceback" not in err
    assert applied_versions(db_url) == [V1, V2]  # the running step finished; V3 never started
    [(version, detail)] = _interrupted_rows(db_url)
    assert version is None and detail["signal"] == "SIGTERM" and detail["half_applied"] is False
    _resume_applies_the_rest_once(project, db_url)


def test_sigterm_cancels_the_step_after_the_grace_period(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _slow_project(make_project, db_url, transaction=True)
    query(db_url, "UPDATE control SET seconds = 60")
    started = time.monotonic()
    code, out, err = _interrupt(project, db_url, signal.SIGTERM, {"PGSHIFT_STOP_GRACE": "0.3"})
    assert code == 143, out + err
    assert time.monotonic() - started < 30
    assert "rolled back" in err
    assert applied_versions(db_url) == [V1]
    assert "slow_a" not in tables(db_url)
    [(version, detail)] = _interrupted_rows(db_url)
    assert version == V2 and detail["half_applied"] is False
    _resume_applies_the_rest_once(project, db_url)


def test_sigint_cancels_the_transactional_step_at_once(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _slow_project(make_project, db_url, transaction=True)
    query(db_url, "UPDATE control SET seconds = 60")
    code, out, err = _interrupt(project, db_url, signal.SIGINT)
    assert code == 130, out + err
    assert "interrupted by SIGINT" in err and "Traceback" not in err
    assert applied_versions(db_url) == [V1]
    [(version, detail)] = _interrupted_rows(db_url)
    assert version == V2 and detail["signal"] == "SIGINT"
    _resume_applies_the_rest_once(project, db_url)


def test_sigterm_stops_a_non_transactional_file_between_statements(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _slow_project(make_project, db_url, transaction=False)
    code, out, err = _interrupt(project, db_url, signal.SIGTERM)
    assert code == 6, out + err  # half-applied: the re-run must finish it
    assert "stopped after 2 of 3 statement(s)" in err
    assert "run the same command again" in err
    assert applied_versions(db_url) == [V1]
    assert "slow_a" in tables(db_url) and "slow_b" not in tables(db_url)
    [(version, detail)] = _interrupted_rows(db_url)
    assert version == V2 and detail["half_applied"] is True and detail["statements_done"] == 2
    _resume_applies_the_rest_once(project, db_url)


def test_sigint_during_a_non_transactional_statement_needs_a_re_run(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _slow_project(make_project, db_url, transaction=False)
    query(db_url, "UPDATE control SET seconds = 60")
    code, out, err = _interrupt(project, db_url, signal.SIGINT)
    assert code == 6, out + err
    assert "stopped after 1 of 3 statement(s)" in err
    [(version, detail)] = _interrupted_rows(db_url)
    assert version == V2 and detail["half_applied"] is True and detail["statements_done"] == 1
    _resume_applies_the_rest_once(project, db_url)
