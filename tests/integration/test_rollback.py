"""`pgshift rollback ...` on real PostgreSQL: safe, to-version, refusals, dry-run, emergency."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_text, rollback_text
from tests.support import applied_versions, count_events, query, run_cli, tables

import pgshift
from pgshift import events
from pgshift.config import load_settings
from pgshift.db.lock import lock_key
from pgshift.errors import LockBusy, UsageError

V1, V2, V3, V4 = "20250101000000", "20250102000000", "20250103000000", "20250104000000"


def pair(
    version: str, description: str, sql_text: str, rollback: str, deps: tuple[str, ...] = ()
) -> dict[str, str]:
    slug = description.replace(" ", "_")
    return {
        f"{version}_{slug}.sql": migration_text(version, description, sql_text, deps=deps),
        f"{version}_{slug}_rollback.sql": rollback_text(version, description, rollback),
    }


THREE = {
    **pair(V1, "one", "CREATE TABLE one (id int PRIMARY KEY);", "DROP TABLE one;"),
    **pair(V2, "two", "CREATE TABLE two (id int REFERENCES one (id));", "DROP TABLE two;"),
    **pair(
        V3, "three", "ALTER TABLE one ADD COLUMN note text;", "ALTER TABLE one DROP COLUMN note;"
    ),
}


def schema_dump(pg_server: PgServer, db_url: str, *args: str) -> str:
    """pg_dump's text of the database, the way a person would diff it."""
    return subprocess.run(
        [str(pg_server.bin_dir / "pg_dump"), "--restrict-key=fixed", *args, db_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_safe_count_reverts_newest_first_and_status_shows_the_rest(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(THREE)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    result = run_cli(capsys, project, db_url, "rollback", "safe", "--count", "2", "--yes", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert [(s["version"], s["action"], s["status"]) for s in data["steps"]] == [
        (V3, "revert", "reverted"),
        (V2, "revert", "reverted"),
    ]
    assert data["backup_id"] and data["run_id"]
    assert applied_versions(db_url) == [V1]
    assert tables(db_url) == {"one"}
    assert query(
        db_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
    ) == [(0,)]
    assert count_events(db_url, "migration_reverted") == 2
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [m["state"] for m in status["migrations"]] == ["applied", "pending", "pending"]


def test_to_version_keeps_v_and_zero_reverts_everything(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(THREE)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    result = run_cli(
        capsys, project, db_url, "rollback", "to-version", V1, "--yes", "--skip-backup"
    )
    assert result.code == 0, result.err
    assert applied_versions(db_url) == [V1]
    bad = run_cli(capsys, project, db_url, "rollback", "to-version", V3, "--yes")
    assert bad.code == 2 and "not applied" in bad.err
    everything = run_cli(capsys, project, db_url, "rollback", "to-version", "0", "--yes")
    assert everything.code == 0, everything.err
    assert applied_versions(db_url) == [] and tables(db_url) == set()


def test_missing_rollback_file_refuses_and_changes_nothing(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(THREE)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    # As if applied before pgshift stored rollback SQL: with no file and nothing stored, refuse.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE pgshift.applied SET rollback_sql = NULL WHERE version = %s", [V2])
    (project / "migrations" / f"{V2}_two_rollback.sql").unlink()
    result = run_cli(capsys, project, db_url, "rollback", "safe", "--count", "2", "--yes")
    assert result.code == 2, result.err
    assert "two_rollback.sql" in result.err and "nothing was changed" in result.err
    assert applied_versions(db_url) == [V1, V2, V3]
    assert "note" in str(
        query(db_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'one'")
    )
    assert not (project / ".pgshift" / "backups").exists()  # refused before the backup


def test_reverting_a_dependency_alone_is_refused(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "base", "CREATE TABLE base (id int PRIMARY KEY);", "DROP TABLE base;"),
            **pair(V2, "child", "CREATE TABLE child (id int);", "DROP TABLE child;", deps=(V1,)),
        }
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    # Make V1 look like the newest applied one: reverting it alone would break V2.
    query(
        db_url,
        f"UPDATE pgshift.applied SET applied_at = now() + interval '1 hour' WHERE version = '{V1}'",
    )
    result = run_cli(capsys, project, db_url, "rollback", "safe", "--yes")
    assert result.code == 2
    assert f"{V2} depends on {V1}" in result.err
    assert applied_versions(db_url) == [V1, V2]


def test_failing_rollback_stops_with_exit_1_naming_file_line_and_message(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "one", "CREATE TABLE one (id int);", "DROP TABLE one;"),
            **pair(V2, "two", "CREATE TABLE two (id int);", "DROP TABLE two;\nDROP TABLE nope;"),
        }
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    result = run_cli(capsys, project, db_url, "rollback", "safe", "--count", "2", "--yes")
    assert result.code == 1, result.err
    assert f"{V2}_two_rollback.sql:4" in result.err
    assert 'table "nope" does not exist' in result.err
    assert applied_versions(db_url) == [V1, V2]  # its transaction was rolled back
    assert tables(db_url) == {"one", "two"}


def test_dry_run_changes_nothing_and_shows_order_sql_checks_and_locks(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(THREE)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    before = schema_dump(pg_server, db_url)
    text = run_cli(capsys, project, db_url, "rollback", "dry-run", "--count", "2")
    assert text.code == 0, text.err
    assert text.out.index(V3) < text.out.index(V2)
    assert "ALTER TABLE one DROP COLUMN note;" in text.out
    assert "ACCESS EXCLUSIVE on table one" in text.out
    assert "ACCESS EXCLUSIVE on table two" in text.out
    assert "[ok     ] dependencies" in text.out
    simulated = run_cli(
        capsys, project, db_url, "rollback", "dry-run", "--to-version", "0", "--simulate",
        "--scratch-url", pg_server.admin_url, "--json",
    )  # fmt: skip
    assert simulated.code == 0, simulated.err
    data = simulated.json()
    assert data["simulation"]["ok"] is True
    assert [s["status"] for s in data["simulation"]["steps"]] == ["reverted"] * 3
    assert data["steps"][0]["statements"][0]["locks"] == [
        "ACCESS EXCLUSIVE on table one",
        "ACCESS EXCLUSIVE on the tables one.note's foreign keys reference"
        " (when the column has a foreign key)",
    ]
    assert schema_dump(pg_server, db_url) == before  # byte for byte, rows included
    assert applied_versions(db_url) == [V1, V2, V3]
    leftovers = query(
        db_url, "SELECT datname FROM pg_database WHERE datname LIKE 'pgshift_scratch%'"
    )
    assert leftovers == []


def test_dry_run_simulation_reports_a_rollback_that_would_fail(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        pair(V1, "one", "CREATE TABLE one (id int);", "DROP TABLE one;\nDROP TABLE not_there;")
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    result = run_cli(
        capsys, project, db_url, "rollback", "dry-run", "--simulate",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 1
    assert "FAILED" in result.out and "not_there" in result.out
    assert tables(db_url) == {"one"} and applied_versions(db_url) == [V1]


EMERGENCY = {
    **pair(V1, "base", "CREATE TABLE base (id int PRIMARY KEY, v text);", "DROP TABLE base;"),
    **pair(
        V2,
        "orders",
        "CREATE TABLE orders (id int, base_id int REFERENCES base (id));\n"
        "INSERT INTO orders VALUES (1, 1);",
        "DROP TABLE orders;",
    ),
    **pair(
        V3,
        "indexed",
        "ALTER TABLE base ADD COLUMN flag boolean;\n"
        "CREATE INDEX CONCURRENTLY base_flag_idx ON base (flag);",
        "DROP INDEX CONCURRENTLY IF EXISTS base_flag_idx;\n"
        "ALTER TABLE base DROP COLUMN IF EXISTS flag;",
    ),
    **pair(
        V4,
        "half",
        "CREATE TABLE half (id int);\n"
        "CREATE INDEX CONCURRENTLY half_idx ON half (id);\n"
        "INSERT INTO half SELECT 1 / 0;",
        "DROP INDEX CONCURRENTLY IF EXISTS half_idx;\nDROP TABLE IF EXISTS half;",
    ),
}


def _apply_v1_then_a_run_that_fails_half_way(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> Path:
    project = make_project({k: v for k, v in EMERGENCY.items() if k.startswith(V1)})
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    query(db_url, "INSERT INTO base VALUES (1, 'kept'), (2, 'also kept')")
    make_project(EMERGENCY)
    failed = run_cli(capsys, project, db_url, "up", "--yes")
    assert failed.code == 6, failed.err  # V2 and V3 applied, V4 stopped half-way
    assert applied_versions(db_url) == [V1, V2, V3]
    assert "half" in tables(db_url)
    return project


def test_emergency_returns_exactly_to_the_state_before_the_last_run(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project({k: v for k, v in EMERGENCY.items() if k.startswith(V1)})
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    query(db_url, "INSERT INTO base VALUES (1, 'kept'), (2, 'also kept')")
    before = schema_dump(pg_server, db_url, "--schema=public")
    make_project(EMERGENCY)
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 6

    result = run_cli(capsys, project, db_url, "rollback", "emergency", "--yes", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["mode"] == "reverted" and data["verified"] is True
    assert data["schema_verified"] is True  # compared with the backup taken before the run
    assert [s["version"] for s in data["steps"]] == [V4, V3, V2]
    assert schema_dump(pg_server, db_url, "--schema=public") == before
    assert applied_versions(db_url) == [V1]
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]
    again = run_cli(capsys, project, db_url, "rollback", "emergency", "--yes")
    assert again.code == 0 and "already at the state" in again.out


def test_emergency_falls_back_to_the_backup_when_a_rollback_fails(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project({k: v for k, v in EMERGENCY.items() if k.startswith(V1)})
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    query(db_url, "INSERT INTO base VALUES (1, 'kept'), (2, 'also kept')")
    before = schema_dump(pg_server, db_url, "--schema=public")
    make_project(EMERGENCY)
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 6
    # The rollback of V2 is broken: it fails at run time, after V4 and V3 were reverted.
    make_project(
        EMERGENCY
        | {f"{V2}_orders_rollback.sql": rollback_text(V2, "orders", "DROP TABLE orders_typo;")}
    )

    result = run_cli(capsys, project, db_url, "rollback", "emergency", "--yes", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["mode"] == "restored" and data["restored"]
    assert "orders_typo" in result.err
    assert schema_dump(pg_server, db_url, "--schema=public") == before
    assert applied_versions(db_url) == [V1]
    assert query(db_url, "SELECT id, v FROM base ORDER BY id") == [(1, "kept"), (2, "also kept")]
    events = [r[0] for r in query(db_url, "SELECT event FROM pgshift.log ORDER BY id")]
    assert events[-1] == "restore" and "revert_failed" in events


def test_emergency_with_an_unparsable_rollback_goes_straight_to_the_backup(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _apply_v1_then_a_run_that_fails_half_way(make_project, db_url, capsys)
    (project / "migrations" / f"{V3}_indexed_rollback.sql").write_text(
        rollback_text(V3, "indexed", "DROP INDX base_flag_idx;")
    )
    result = run_cli(capsys, project, db_url, "rollback", "emergency", "--yes", "--json")
    assert result.code == 0, result.err
    assert result.json()["mode"] == "restored" and result.json()["steps"] == []
    assert applied_versions(db_url) == [V1]
    assert tables(db_url) == {"base"}


def test_emergency_waits_for_a_live_lock_holder_and_proceeds_once_it_is_gone(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _apply_v1_then_a_run_that_fails_half_way(make_project, db_url, capsys)
    holder = psycopg.connect(db_url, autocommit=True, application_name="stuck-deploy")
    holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("pgshift"),))
    monkeypatch.setenv("PGSHIFT_RUNNER_LOCK_WAIT", "300")
    busy = run_cli(capsys, project, db_url, "rollback", "emergency", "--yes")
    assert busy.code == 3 and "stuck-deploy" in busy.err
    assert applied_versions(db_url) == [V1, V2, V3]
    holder.close()  # the holder's session is gone, and its lock with it
    done = run_cli(capsys, project, db_url, "rollback", "emergency", "--yes")
    assert done.code == 0, done.err
    assert applied_versions(db_url) == [V1]


# -- a downgrade: the newer files are gone, the rollback SQL stored in history is used ------------

DOWNGRADE = {
    **pair(V1, "one", "CREATE TABLE one (id int PRIMARY KEY);", "DROP TABLE one;"),
    **pair(
        V2,
        "two",
        "CREATE TABLE two (id int REFERENCES one (id));\nCREATE INDEX two_id_idx ON two (id);",
        "DROP INDEX two_id_idx;\nDROP TABLE two;",
    ),
}


def test_rollback_safe_after_the_newer_files_are_gone_uses_the_stored_sql(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(DOWNGRADE)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    folder = project / "migrations"
    rollback_file = folder / f"{V2}_two_rollback.sql"
    # Stored as it was on disk when applied, byte for byte.
    assert query(db_url, "SELECT rollback_sql FROM pgshift.applied WHERE version = %s", [V2]) == [
        (rollback_file.read_text(encoding="utf-8"),)
    ]
    rollback_file.unlink()
    (folder / f"{V2}_two.sql").unlink()  # the application went back to a release without it
    preview = run_cli(capsys, project, db_url, "rollback", "dry-run")
    assert preview.code == 0, preview.out + preview.err
    assert "DROP INDEX two_id_idx" in preview.out and "DROP TABLE two" in preview.out
    result = run_cli(capsys, project, db_url, "rollback", "safe", "--yes", "--skip-backup")
    assert result.code == 0, result.out + result.err
    assert f"{V2}_two: its files are gone, using the rollback SQL stored when it was applied" in (
        result.out
    )
    assert tables(db_url) == {"one"}
    assert applied_versions(db_url) == [V1]
    assert count_events(db_url, "migration_reverted") == 1
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [(m["version"], m["state"]) for m in status["migrations"]] == [(V1, "applied")]


def test_the_library_rollback_uses_the_stored_sql_for_files_and_rollback_files_gone(
    make_project: ProjectMaker, db_url: str
) -> None:
    from pgshift.plan import STORED_ROLLBACK, WARNING

    project = make_project(THREE)
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")},
        env={},
        cwd=project,
    )
    pgshift.up(settings, backup=False)
    folder = project / "migrations"
    (folder / f"{V3}_three.sql").unlink()  # both files of the newest one are gone,
    (folder / f"{V3}_three_rollback.sql").unlink()
    (folder / f"{V2}_two_rollback.sql").unlink()  # and only the rollback file of the one before
    project_files = pgshift.load_project(settings)
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_rollback(project_files, target, count=2)
        result = pgshift.rollback(plan, target, backup=False)
    checks = {c.name: c for c in plan.checks}
    assert checks["rollback-files"].status == WARNING
    assert checks["rollback-files"].detail == (
        f"{V3}_three: its files are gone, {STORED_ROLLBACK};"
        f" {V2}_two: its rollback file is gone, {STORED_ROLLBACK}"
    )
    assert [(s.version, s.status) for s in result.steps] == [
        (V3, "reverted"),
        (V2, "reverted"),
    ]
    assert applied_versions(db_url) == [V1]
    assert tables(db_url) == {"one"}
    assert query(
        db_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
    ) == [(0,)]


# -- the library API: plan, look, then run exactly that plan (like up) ----------------------------


def _settings(project: Path, db_url: str) -> pgshift.Settings:
    return load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")},
        env={},
        cwd=project,
    )


def test_the_library_plans_a_rollback_then_runs_exactly_it_with_one_event_stream(
    make_project: ProjectMaker, db_url: str
) -> None:
    settings = _settings(make_project(THREE), db_url)
    pgshift.up(settings, backup=False)
    seen: list[events.Event] = []
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_rollback(pgshift.load_project(settings), target, count=2)
        assert isinstance(plan, pgshift.Plan) and plan.kind == "revert"
        assert plan.versions == (V3, V2)
        assert [c.name for c in plan.checks] == ["rollback-files", "checksums", "dependencies"]
        assert all(isinstance(c, pgshift.RollbackCheck) for c in plan.checks)
        assert applied_versions(db_url) == [V1, V2, V3]  # planning changes nothing
        result = pgshift.rollback(plan, target, on_event=seen.append)
    assert isinstance(result, pgshift.RunResult)
    assert [(s.version, s.action, s.status) for s in result.steps] == [
        (V3, "revert", "reverted"),
        (V2, "revert", "reverted"),
    ]
    taken = [e for e in seen if isinstance(e, events.BackupTaken)]
    assert len(taken) == 1 and taken[0].reason == "before-rollback"
    assert result.backup_id == taken[0].backup_id
    assert any(isinstance(e, events.BackupProgress) for e in seen)
    assert applied_versions(db_url) == [V1]


def test_the_library_refuses_a_failed_check_a_held_lock_and_an_up_plan_changing_nothing(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(THREE)
    settings = _settings(project, db_url)
    pgshift.up(settings, backup=False)
    (project / "migrations" / f"{V3}_three_rollback.sql").unlink()
    query(db_url, "UPDATE pgshift.applied SET rollback_sql = NULL WHERE version = %s", [V3])
    with pgshift.connect(settings) as target:
        with pytest.raises(UsageError) as refused:
            pgshift.plan_rollback(pgshift.load_project(settings), target)
        assert refused.value.exit_code == 2 and "three_rollback.sql" in refused.value.message
        with pytest.raises(UsageError):
            pgshift.rollback(pgshift.plan_up(pgshift.load_project(settings), target), target)
    make_project(THREE)  # the rollback file is back
    holder = psycopg.connect(db_url, autocommit=True, application_name="stuck-deploy")
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("pgshift"),))
        with pgshift.connect(settings) as target:
            plan = pgshift.plan_rollback(pgshift.load_project(settings), target)
            with pytest.raises(LockBusy) as busy:
                pgshift.rollback(plan, target)
    finally:
        holder.close()
    assert busy.value.exit_code == 3 and "stuck-deploy" in busy.value.message
    assert not (project / ".pgshift" / "backups").exists()  # refused before the backup
    assert applied_versions(db_url) == [V1, V2, V3]


def test_preview_rollback_reports_a_failed_check_instead_of_refusing(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer
) -> None:
    project = make_project(THREE)
    settings = _settings(project, db_url)
    pgshift.up(settings, backup=False)
    with pgshift.connect(settings) as target:
        report = pgshift.preview_rollback(
            pgshift.load_project(settings), target, to_version=V1, simulate=True,
            scratch_url=pg_server.admin_url,
        )  # fmt: skip
        assert isinstance(report, pgshift.DryRunReport) and report.ok
        assert report.versions == (V3, V2) and report.plan.versions == (V3, V2)
        assert isinstance(report.simulation, pgshift.Simulation)
        assert [s.status for s in report.simulation.steps] == ["reverted", "reverted"]
        assert report.steps[0].statements[0].locks[0] == "ACCESS EXCLUSIVE on table one"
        (project / "migrations" / f"{V2}_two_rollback.sql").write_text(
            rollback_text(V2, "two", "DROP TABEL two;")
        )
        broken = pgshift.preview_rollback(
            pgshift.load_project(settings, allow_problems=True), target, count=2, simulate=True
        )
    assert not broken.ok and broken.simulation is None  # never simulated past a failed check
    assert (broken.checks[0].name, broken.checks[0].status) == ("rollback-files", "error")
    assert applied_versions(db_url) == [V1, V2, V3]


def test_rollback_safe_json_prints_one_document_with_the_error_inside(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "one", "CREATE TABLE one (id int);", "DROP TABLE one;"),
            **pair(V2, "two", "CREATE TABLE two (id int);", "DROP TABLE two;"),
            **pair(V3, "bad", "CREATE TABLE bad (id int);", "DROP TABLE nope;"),
        }
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    # V3's rollback fails: nothing reverted, one document, the error inside it.
    result = run_cli(capsys, project, db_url, "rollback", "safe", "--count", "2", "--yes", "--json")
    assert result.code == 1, result.err
    document = result.json()  # exactly one JSON document on stdout
    assert document["error"]["exit_code"] == 1 and "nope" in document["error"]["message"]
    assert [(s["version"], s["status"]) for s in document["steps"]] == [(V3, "failed")]
    assert document["run_id"] and document["backup_id"]
    assert 'table "nope" does not exist' in result.err
    assert applied_versions(db_url) == [V1, V2, V3]
    # A refusal before anything ran is one document too, and text mode still raises it.
    query(db_url, "SELECT 1")
    holder = psycopg.connect(db_url, autocommit=True, application_name="stuck-deploy")
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("pgshift"),))
        busy = run_cli(capsys, project, db_url, "rollback", "to-version", V1, "--yes", "--json")
        text = run_cli(capsys, project, db_url, "rollback", "safe", "--yes")
    finally:
        holder.close()
    assert busy.code == 3 and busy.json()["error"]["exit_code"] == 3
    assert busy.json()["steps"] == [] and "stuck-deploy" in busy.err
    assert text.code == 3 and "stuck-deploy" in text.err and text.out.count("{") == 0
    assert applied_versions(db_url) == [V1, V2, V3]


def test_the_library_emergency_plans_then_restores_only_when_confirmed(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _apply_v1_then_a_run_that_fails_half_way(make_project, db_url, capsys)
    (project / "migrations" / f"{V3}_indexed_rollback.sql").write_text(
        rollback_text(V3, "indexed", "DROP INDX base_flag_idx;")
    )
    settings = _settings(project, db_url)
    with pgshift.connect(settings, purpose="rollback") as target:
        ep = pgshift.plan_emergency(pgshift.load_project(settings, allow_problems=True), target)
        assert isinstance(ep, pgshift.EmergencyPlan)
        assert ep.versions == (V4, V3, V2) and ep.expected == (V1,)
        assert ep.blockers and ep.backup is not None and ep.backup.reason == "before-up"
        with pytest.raises(UsageError) as unconfirmed:
            pgshift.rollback_emergency(ep, target, backup=False)
        assert "not confirmed" in unconfirmed.value.message
        assert applied_versions(db_url) == [V1, V2, V3]  # nothing changed
        seen: list[events.Event] = []
        result = pgshift.rollback_emergency(
            ep, target, on_event=seen.append, restore_confirmed=True
        )
    assert isinstance(result, pgshift.EmergencyResult)
    assert result.mode == "restored" and result.restored is not None
    assert result.restored.manifest.id == ep.backup.id and result.failure
    assert result.safety_backup is not None
    assert [e.reason for e in seen if isinstance(e, events.BackupTaken)] == ["before-rollback"]
    assert any(isinstance(e, events.BackupProgress) and e.phase == "restore" for e in seen)
    assert applied_versions(db_url) == [V1] and tables(db_url) == {"base"}


def test_the_library_restore_plans_then_restores_with_a_safety_backup_first(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(THREE)
    settings = _settings(project, db_url)
    pgshift.up(settings, to=V1, backup=False)
    manual: list[events.Event] = []
    before = pgshift.backup(settings, on_event=manual.append)
    assert isinstance(before, pgshift.Manifest) and before.reason == "manual"
    assert manual[-1] == events.BackupTaken(
        before.id, "manual", before.size_bytes, before.sha256, 1
    )
    assert [m.id for m in pgshift.list_backups(settings)] == [before.id]
    pgshift.up(settings, backup=False)
    seen: list[events.Event] = []
    with pgshift.connect(settings, purpose="restore") as target:
        plan = pgshift.plan_restore(target, before.id)
        assert isinstance(plan, pgshift.RestorePlan) and plan.manifest.id == before.id
        assert {o.identity for o in plan.dropped} >= {"public.two"}
        assert all(isinstance(o, pgshift.SchemaObject) for o in plan.dropped)
        assert applied_versions(db_url) == [V1, V2, V3]  # planning changes nothing
        result = pgshift.restore(plan, target, on_event=seen.append)
    assert isinstance(result, pgshift.RestoreResult)
    taken = [e for e in seen if isinstance(e, events.BackupTaken)]
    assert len(taken) == 1 and result.backup_id == taken[0].backup_id
    assert applied_versions(db_url) == [V1] and tables(db_url) == {"one"}
