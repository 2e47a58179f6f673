"""The library API on real PostgreSQL: plan as a value, apply exactly it, one event stream.

Also what one command costs the server in connections (`Target` owns them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import applied_versions, query, run_cli

import pgshift
from pgshift import events
from pgshift.config import load_settings
from pgshift.errors import MigrationFailed, PlanChanged

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"


def _project(make_project: ProjectMaker) -> Path:
    make_project(
        migration_pair(V1, "one", "CREATE TABLE one (id int);", rollback_sql="DROP TABLE one;")
    )
    make_project(
        migration_pair(V2, "two", "CREATE TABLE two (id int);", rollback_sql="DROP TABLE two;")
    )
    return make_project(
        migration_pair(
            V3, "three", "CREATE TABLE three (id int);", rollback_sql="DROP TABLE three;"
        )
    )


def _settings(root: Path, db_url: str, **env: str) -> pgshift.Settings:
    return load_settings(
        {"database_url": db_url, "migrations_dir": str(root / "migrations")},
        env={"DB_BACKUP_DIR": str(root / "backups"), **env},
        cwd=root,
    )


def test_plan_is_a_value_and_apply_runs_exactly_it(make_project: ProjectMaker, db_url: str) -> None:
    settings = _settings(_project(make_project), db_url)
    project = pgshift.load_project(settings)
    seen: list[events.Event] = []
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_up(project, target, to=V2)
        assert plan.versions == (V1, V2)
        assert applied_versions(db_url) == []  # planning changes nothing
        result = pgshift.apply(plan, target, on_event=seen.append, backup=True)
    assert isinstance(result, pgshift.RunResult)
    assert [(s.version, s.status) for s in result.steps] == [(V1, "applied"), (V2, "applied")]
    assert applied_versions(db_url) == [V1, V2]
    taken = [e for e in seen if isinstance(e, events.BackupTaken)]
    assert len(taken) == 1 and result.backup_id == taken[0].backup_id
    assert taken[0].reason == "before-up"
    kinds = [type(e).__name__ for e in seen]
    assert kinds.index("BackupTaken") < kinds.index("RunStarted") < kinds.index("RunFinished")


def test_a_plan_made_stale_by_another_run_is_refused_before_anything_runs(
    make_project: ProjectMaker, db_url: str
) -> None:
    settings = _settings(_project(make_project), db_url)
    project = pgshift.load_project(settings)
    pgshift.up(settings, to=V1, backup=False)
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_up(project, target)
        assert plan.versions == (V2, V3)
        query(db_url, "DROP TABLE one")
        query(db_url, "DELETE FROM pgshift.applied WHERE version = %s", [V1])
        with pytest.raises(PlanChanged) as refused:
            pgshift.apply(plan, target, backup=False)
    assert refused.value.exit_code == 3
    assert f"{V1}_one: now needs to apply, not planned" in refused.value.message
    assert applied_versions(db_url) == []


def test_steps_another_run_finished_are_skipped_not_refused(
    make_project: ProjectMaker, db_url: str
) -> None:
    settings = _settings(_project(make_project), db_url)
    project = pgshift.load_project(settings)
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_up(project, target)
        pgshift.up(settings, to=V2, backup=False)  # another deploy got there first
        result = pgshift.apply(plan, target, backup=False)
    assert [(s.version, s.status) for s in result.steps] == [
        (V1, "skipped"),
        (V2, "skipped"),
        (V3, "applied"),
    ]


def test_a_failure_carries_the_partial_result(make_project: ProjectMaker, db_url: str) -> None:
    root = _project(make_project)
    make_project(migration_pair("20250104000000", "bad", "SELECT * FROM nowhere;"))
    settings = _settings(root, db_url)
    with pytest.raises(MigrationFailed) as failed:
        pgshift.up(settings, backup=False)
    partial = failed.value.result
    assert isinstance(partial, pgshift.RunResult)
    assert [(s.version, s.status) for s in partial.steps] == [
        (V1, "applied"),
        (V2, "applied"),
        (V3, "applied"),
        ("20250104000000", "failed"),
    ]


def test_up_json_prints_one_document_with_the_error_inside(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(make_project)
    make_project(migration_pair("20250104000000", "bad", "SELECT * FROM nowhere;"))
    result = run_cli(capsys, root, db_url, "up", "--yes", "--skip-backup", "--json")
    assert result.code == 1
    document = result.json()  # exactly one JSON document on stdout
    assert document["error"]["exit_code"] == 1
    assert "nowhere" in document["error"]["message"]
    assert [s["status"] for s in document["steps"]] == ["applied"] * 3 + ["failed"]
    assert document["run_id"]


# -- connections -----------------------------------------------------------------------------------


def _sessions_opened_by(db_url: str, command: Callable[[], object]) -> int:
    """How many sessions the server saw open and close on this database during ``command``.

    Read from `pg_stat_database.sessions` (PostgreSQL 14+), counted when a session ends, by an
    observer connection that stays open throughout (so it is not counted itself).
    """
    with psycopg.connect(db_url, autocommit=True) as observer:

        def sessions() -> tuple[int, int]:
            observer.execute("SELECT pg_stat_clear_snapshot()")
            row = observer.execute(
                "SELECT sessions, numbackends FROM pg_stat_database"
                " WHERE datname = current_database()"
            ).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        before, _ = sessions()
        command()
        deadline = time.monotonic() + 10
        last = (-1, -1)
        while time.monotonic() < deadline:
            now = sessions()
            if now == last and now[1] == 1:
                return now[0] - before
            last = now
            time.sleep(0.2)
        raise AssertionError(f"sessions did not settle: {last}")


def test_connections_one_per_read_three_per_run_four_with_a_backup(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run reads its history over a short libpq session first (so that a no-op never
    imports psycopg), then opens the runner's and the lock's (issue 18 revisited the budget)."""
    root = _project(make_project)

    def cli(*extra: str) -> Callable[[], object]:
        return lambda: run_cli(capsys, root, db_url, *extra)

    assert _sessions_opened_by(db_url, cli("status")) == 1
    assert _sessions_opened_by(db_url, cli("up", "--yes", "--skip-backup", "--target", V1)) == 3
    assert _sessions_opened_by(db_url, cli("up", "--yes")) == 4  # the fourth is pg_dump's
    assert applied_versions(db_url) == [V1, V2, V3]
    assert _sessions_opened_by(db_url, cli("up", "--yes")) == 1  # nothing to do


def test_the_lock_session_keeps_tcp_keepalives(make_project: ProjectMaker, db_url: str) -> None:
    settings = _settings(_project(make_project), db_url)
    with pgshift.connect(settings) as target:
        lock = target.runner_lock()
        lock.acquire()
        try:
            assert lock.conn is not None
            params = lock.conn.info.get_parameters()
            assert params.get("keepalives") == "1"
            assert params.get("keepalives_idle") == "30"
        finally:
            lock.release()


def test_the_readme_python_example_runs_as_written(make_project: ProjectMaker, db_url: str) -> None:
    """The "Python API" section of README.md, executed as a script against a real database."""
    import os
    import re
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    root = _project(make_project)
    script = root / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DB_", "PGSHIFT_"))}
    env["DATABASE_URL"] = db_url
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"will apply {V1}_one" in done.stdout
    assert re.search(r"RunFinished\(run_id='[0-9a-f-]+', applied=3", done.stdout)
    assert applied_versions(db_url) == [V1, V2, V3]


def test_every_public_name_is_listed_and_resolves() -> None:
    """The functions are imported on first use; dir() and attribute access still show all."""
    import pgshift

    listed = set(dir(pgshift))
    assert set(pgshift.__all__) <= listed
    for name in pgshift.__all__:
        assert getattr(pgshift, name) is not None, name
