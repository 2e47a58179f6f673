"""`pgshift up` with a `@kind: backfill` migration on real servers, from the command line and the
library: batches instead of one statement, SIGKILLs mid-batch and between batches followed by
re-runs that continue (every row updated exactly once), `status` truthful in between, later
migrations waiting for the backfill, a rollback that is a backfill, and a reverted backfill that
runs again when applied again.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import applied_versions, query, run_cli, spawn_cli

import pgshift
from pgshift import events
from pgshift.config import load_settings
from pgshift.serve import render_metrics

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
ROWS = 20_000
#: Fixed 1,000-row batches (PGSHIFT_BACKFILL_BATCH_TIME=0: no adaptation), so the tests know
#: where each batch ends and where a failpoint lands.
FIXED = {"PGSHIFT_BACKFILL_BATCH_TIME": "0", "DB_BACKUP_ENABLED": "false"}


def _project(
    make_project: ProjectMaker, *, rollback_backfill: bool = False, pause: str | None = None
) -> Path:
    make_project(
        migration_pair(
            V1,
            "items",
            "CREATE TABLE items (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0, v int);\n"
            f"INSERT INTO items (v) SELECT g FROM generate_series(1, {ROWS}) g;\n"
            "ANALYZE items;",
            rollback_sql="DROP TABLE items;",
        )
    )
    back = "-- @kind: backfill\nUPDATE items SET n = n - 1;" if rollback_backfill else "SELECT 1;"
    make_project(
        migration_pair(
            V2,
            "count items",
            "UPDATE items SET n = n + 1;",
            rollback_sql=back,
            extra_header=["@kind: backfill", "@batch-size: 1000"]
            + ([f"@batch-pause: {pause}"] if pause else []),
        )
    )
    later = migration_pair(
        V3, "later", "CREATE TABLE later (id int);", rollback_sql="DROP TABLE later;"
    )
    return make_project(later)


def _counts(db_url: str) -> list[tuple[int, int]]:
    return [(int(n), int(c)) for n, c in query(db_url, "SELECT n, count(*) FROM items GROUP BY n")]


def _killed_up(project: Path, db_url: str, failpoint: str) -> str:
    """`pgshift up` as a real process that SIGKILLs itself at ``failpoint``; its stderr."""
    child = spawn_cli(project, db_url, "up", "--yes", env={**FIXED, "PGSHIFT_FAILPOINT": failpoint})
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err
    return err


def test_up_runs_a_backfill_in_batches_and_kills_then_reruns_update_every_row_once(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _project(make_project)
    for key, value in FIXED.items():
        monkeypatch.setenv(key, value)

    # Killed right after the 5th batch committed: V1 applied, V2 part-way, V3 waits.
    _killed_up(project, db_url, f"backfill-committed:{V2}:5")
    assert applied_versions(db_url) == [V1]
    assert sorted(_counts(db_url)) == [(0, ROWS - 5000), (1, 5000)]
    status = run_cli(capsys, project, db_url, "status")
    assert status.code == 0
    assert "backfilling 25% (5.0K of 20.0K rows), stopped (`pgshift up` continues it)" in (
        status.out
    )
    [row] = [r for r in run_cli(capsys, project, db_url, "status", "--json").json()["migrations"]
             if r["version"] == V2]  # fmt: skip
    assert row["state"] == "pending"
    assert row["backfill"] == {
        "action": "apply", "percent": 25.0, "rows_done": 5000, "rows_estimate": ROWS,
        "rows_changed": 5000, "batches": 5, "running": False,
        "text": "backfilling 25% (5.0K of 20.0K rows)",
    }  # fmt: skip

    # health says so too (a warning: nothing runs it), and /metrics carries its progress.
    report = pgshift.health(_settings(project, db_url))
    check = report.check("backfills")
    assert check.status == "warning", check
    assert f"{V2} backfilling 25% (5.0K of 20.0K rows), stopped" in check.detail
    assert "`pgshift up`" in check.detail
    assert (check.data["running"], check.data["stopped"]) == (0, 1)
    metrics = render_metrics(report, runs=1)
    assert "pgshift_backfills_stopped 1\n" in metrics
    assert f'pgshift_backfill_rows_done{{version="{V2}",action="apply"}} 5000\n' in metrics
    assert f'pgshift_backfill_rows_estimate{{version="{V2}",action="apply"}} 20000\n' in metrics

    # Rows the application writes meanwhile are beyond the key range fixed at the start.
    query(db_url, "INSERT INTO items (v) SELECT g FROM generate_series(1, 300) g")

    # Killed after the 9th batch's UPDATE ran, before it committed: that batch is undone.
    _killed_up(project, db_url, f"backfill-ran:{V2}:9")
    assert sorted(_counts(db_url)) == [(0, ROWS + 300 - 8000), (1, 8000)]
    json_row = run_cli(capsys, project, db_url, "status", "--json").json()["migrations"][1]
    assert json_row["backfill"]["rows_done"] == 8000

    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 0, result.err
    assert "backfill" in result.out and "resum" not in result.err
    assert applied_versions(db_url) == [V1, V2, V3]
    assert sorted(_counts(db_url)) == [(0, 300), (1, ROWS)]
    assert query(db_url, f"SELECT count(*) FROM items WHERE id > {ROWS} AND n <> 0") == [(0,)]
    done = query(db_url, "SELECT batches, keys_done, finished_at IS NOT NULL FROM pgshift.backfill")
    assert done == [(20, ROWS, True)]
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [r["backfill"] for r in status["migrations"]] == [None, None, None]
    assert status["applied"] == 3
    assert pgshift.health(_settings(project, db_url)).check("backfills").status == "ok"


def test_a_running_backfill_shows_as_running_and_sigterm_stops_it_between_batches(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _project(make_project, pause="100ms")
    for key, value in FIXED.items():
        monkeypatch.setenv(key, value)
    child = spawn_cli(project, db_url, "up", "--yes", env=FIXED)
    try:
        deadline = time.monotonic() + 60
        while True:
            done = query(db_url, "SELECT to_regclass('pgshift.backfill') IS NOT NULL")[0][0] and (
                query(db_url, "SELECT coalesce(max(batches), 0) FROM pgshift.backfill")[0][0] >= 2
            )
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        status = run_cli(capsys, project, db_url, "status", "--json").json()
        [row] = [r for r in status["migrations"] if r["version"] == V2]
        assert row["backfill"]["running"] is True and row["running"] is True
        assert "stopped" not in run_cli(capsys, project, db_url, "status").out
        check = pgshift.health(_settings(project, db_url)).check("backfills")
        assert check.status == "ok" and check.data["running"] == 1, check
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 6, out + err
    assert "backfill stopped by SIGTERM after" in err
    assert "continues after its last committed batch" in err
    batches = query(db_url, "SELECT batches FROM pgshift.backfill")[0][0]
    assert 2 <= batches < 20
    assert sorted(_counts(db_url)) == [(0, ROWS - 1000 * batches), (1, 1000 * batches)]
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    assert sorted(_counts(db_url)) == [(1, ROWS)]


def test_a_failed_batch_stops_the_run_and_later_migrations_wait(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _project(make_project)
    for key, value in FIXED.items():
        monkeypatch.setenv(key, value)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--target", V1).code == 0
    # A row of the 3rd batch breaks the statement: n + 1 overflows.
    query(db_url, "UPDATE items SET n = 2147483647 WHERE id = 2500")
    failed = run_cli(capsys, project, db_url, "up", "--yes")
    assert failed.code == 1, failed.err
    assert "a backfill batch failed" in failed.err and "2,000 rows done" in failed.err
    assert applied_versions(db_url) == [V1]
    status = run_cli(capsys, project, db_url, "status")
    assert "failed: backfilling 10% (2.0K of 20.0K rows), stopped" in status.out
    query(db_url, "UPDATE items SET n = 0 WHERE id = 2500")
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    assert applied_versions(db_url) == [V1, V2, V3]
    assert sorted(_counts(db_url)) == [(1, ROWS)]


def _settings(root: Path, db_url: str) -> pgshift.Settings:
    return load_settings(
        {"database_url": db_url, "migrations_dir": str(root / "migrations")},
        env={"DB_BACKUP_DIR": str(root / "backups"), **FIXED},
        cwd=root,
    )


def test_the_library_applies_reverts_and_applies_a_backfill_again(
    make_project: ProjectMaker, db_url: str
) -> None:
    """A reverted backfill's old progress row must not make its second apply a no-op, and a
    rollback file may be a backfill too."""
    settings = _settings(_project(make_project, rollback_backfill=True), db_url)
    seen: list[events.Event] = []
    result = pgshift.up(settings, on_event=seen.append, backup=False)
    assert [(s.version, s.status) for s in result.steps] == [
        (V1, "applied"), (V2, "applied"), (V3, "applied"),
    ]  # fmt: skip
    finished = [e for e in seen if isinstance(e, events.BackfillFinished)]
    assert [(e.version, e.keys_done, e.batches) for e in finished] == [(V2, ROWS, 20)]
    assert sorted(_counts(db_url)) == [(1, ROWS)]

    project = pgshift.load_project(settings)
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_rollback(project, target, count=2)
        reverted = pgshift.rollback(plan, target, backup=False)
    assert [(s.version, s.status) for s in reverted.steps] == [
        (V3, "reverted"), (V2, "reverted"),
    ]  # fmt: skip
    assert sorted(_counts(db_url)) == [(0, ROWS)]  # the rollback backfill ran in batches
    assert query(db_url, "SELECT action FROM pgshift.backfill ORDER BY action") == [("revert",)]

    with pgshift.connect(settings) as target:
        again = pgshift.apply(pgshift.plan_up(project, target), target, backup=False)
    assert [s.version for s in again.steps] == [V2, V3]
    assert sorted(_counts(db_url)) == [(1, ROWS)]  # applied again: every row once more
    assert query(db_url, "SELECT action, batches FROM pgshift.backfill") == [("apply", 20)]
