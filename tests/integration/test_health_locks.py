"""`health` never waits on a table lock (issue 9 item 8), and a failed attempt stops warning
once its file is gone or a later attempt of that version was applied."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import ProjectMaker, migration_name, rollback_name
from tests.plugins.project import migration_pair as pair
from tests.support import query, run_cli

import pgshift
from pgshift.config import Settings, load_settings
from pgshift.ops.health_rules import UNKNOWN, WARNING

V1, V2 = "20250101000000", "20250102000000"
CALM = {"PGSHIFT_HEALTH_LATENCY_WARN": "10s", "PGSHIFT_HEALTH_LATENCY_CRIT": "20s"}


def settings_for(project: Path, db_url: str) -> Settings:
    flags = {"database_url": db_url, "migrations_dir": str(project / "migrations")}
    return load_settings(flags, env=dict(CALM), cwd=project)


def test_every_check_answers_while_the_tables_are_locked_access_exclusive(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "accounts", "CREATE TABLE accounts (email text);"))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    query(db_url, "INSERT INTO accounts VALUES ('a@x'), ('a@x')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        query(db_url, "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email)")
    query(db_url, "CREATE INDEX accounts_lower ON accounts (lower(email))")
    with psycopg.connect(db_url) as holder:  # an on-call engineer's open transaction
        holder.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        report = pgshift.health(settings_for(project, db_url))
    unknown = [c for c in report.checks if c.status == UNKNOWN]
    assert unknown == []
    check = report.check("invalid_indexes")
    assert check.status == WARNING
    assert "accounts_email_key" in check.detail


def test_a_failed_attempt_stops_warning_once_its_file_is_gone(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "broken", "SELECT * FROM no_such_table;"))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 1
    failed = pgshift.health(settings_for(project, db_url)).check("failed_migrations")
    assert failed.status == WARNING and V1 in failed.detail
    for name in (migration_name(V1, "broken"), rollback_name(V1, "broken")):
        (project / "migrations" / name).unlink()
    failed = pgshift.health(settings_for(project, db_url)).check("failed_migrations")
    assert failed.status == "ok", failed.detail


def test_a_failed_attempt_stops_warning_once_a_later_attempt_is_applied(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "fixed", "SELECT * FROM no_such_table;"))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 1
    make_project(pair(V1, "fixed", "CREATE TABLE no_such_table (id int);"))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    failed = pgshift.health(settings_for(project, db_url)).check("failed_migrations")
    assert failed.status == "ok", failed.detail


def test_health_lists_file_problems_and_still_reports(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(
        pair(V1, "risky", "SELECT 1;", extra_header=["@risk-level: extreme"])
        | {rollback_name(V2, "gone"): "-- Rollback: x\nSELECT 1;\n"}
    )
    report = pgshift.health(settings_for(project, db_url))
    files = report.check("migration_files")
    assert files.status == WARNING and files.data["count"] >= 2
    assert "extreme" in files.detail and "without a migration" in str(files.data)
    assert report.check("pending_migrations").status == WARNING  # still read
