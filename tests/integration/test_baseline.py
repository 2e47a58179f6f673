"""`pgshift baseline V` on real PostgreSQL: a database built by hand (and another tool's table)
is proven against a scratch database and adopted; a mismatch is refused with the differences
named (exit 4); --force records anyway and logs it; the library API plans then records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import (
    applied_versions,
    count_events,
    doc_commands,
    query,
    run_cli,
    run_doc_commands,
)

import pgshift
from pgshift.config import load_settings
from pgshift.errors import DriftError

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
USERS = "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);"
ORDERS = "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users);"
NAME = "ALTER TABLE users ADD COLUMN name text;"


def _project(make_project: ProjectMaker) -> Path:
    make_project(migration_pair(V1, "create users", USERS, rollback_sql="DROP TABLE users;"))
    make_project(
        migration_pair(V2, "create orders", ORDERS, rollback_sql="DROP TABLE orders;", deps=[V1])
    )
    return make_project(
        migration_pair(V3, "add name", NAME, rollback_sql="ALTER TABLE users DROP COLUMN name;")
    )


def _built_by_hand(db_url: str, *statements: str) -> None:
    """The database another tool made: its schema, and its own bookkeeping table."""
    query(db_url, "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY)")
    query(db_url, "INSERT INTO schema_migrations VALUES ('1'), ('2')")
    for statement in statements:
        query(db_url, statement)


def _events(db_url: str) -> list[dict[str, object]]:
    rows = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'baseline' ORDER BY id")
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


def test_a_matching_database_is_adopted_and_up_applies_only_what_follows(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    _built_by_hand(db_url, USERS, ORDERS)
    result = run_cli(
        capsys, project, db_url, "baseline", V2, "--yes", "--scratch-url", pg_server.admin_url
    )
    assert result.code == 0, result.err
    assert "schema matches" in result.out and "recorded 2 migration(s)" in result.out
    assert applied_versions(db_url) == [V1, V2]
    # The adopted history is history for the linter from now on (SPEC 9, lint_since).
    assert f"lint_since = {V2} in {project / 'pgshift.toml'}" in result.out
    assert (project / "pgshift.toml").read_text() == f'lint_since = "{V2}"\n'
    assert count_events(db_url, "baseline") == 2
    assert all(e["forced"] is False for e in _events(db_url))
    assert not query(
        db_url, "SELECT 1 FROM pg_database WHERE datname LIKE 'pgshift_scratch_baseline%'"
    )
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [m["state"] for m in status["migrations"]] == ["applied", "applied", "pending"]
    up = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--json")
    assert up.code == 0, up.err
    assert [s["version"] for s in up.json()["steps"]] == [V3]
    again = run_cli(
        capsys, project, db_url, "baseline", V2, "--yes", "--scratch-url", pg_server.admin_url
    )
    assert again.code == 2 and f"not part of the baseline up to {V2}: {V3}" in again.err


def test_a_mismatch_is_refused_with_the_differences_named(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    _built_by_hand(db_url, USERS.replace("email text NOT NULL", "email text"), "CREATE TABLE x ()")
    result = run_cli(
        capsys, project, db_url, "baseline", V2, "--yes", "--scratch-url", pg_server.admin_url
    )
    assert result.code == 4, result.err
    assert "missing: table public.orders" in result.err
    assert "left behind: table public.x" in result.err
    assert "changed: column public.users.email (text not null -> text)" in result.err
    assert "schema_migrations" not in result.err  # other tools' bookkeeping is left out
    assert applied_versions(db_url) == []
    assert not (project / "pgshift.toml").exists()  # nothing adopted: no lint_since


def test_force_records_anyway_and_logs_that_it_did(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    _built_by_hand(db_url, USERS)
    result = run_cli(
        capsys, project, db_url, "baseline", V2, "--yes", "--force",
        "--scratch-url", pg_server.admin_url, "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "warning: --force: recorded 2 migration(s) despite" in result.err
    assert "warning: schema difference: missing: table public.orders" in result.err
    report = result.json()
    assert report["forced"] is True and "missing: table public.orders" in report["differences"]
    assert applied_versions(db_url) == [V1, V2]
    events = _events(db_url)
    assert len(events) == 2
    assert all(e["forced"] is True for e in events)
    assert all(e["differences"] == report["differences"] for e in events)


def test_without_a_terminal_and_without_yes_it_refuses(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    _built_by_hand(db_url, USERS)
    result = run_cli(capsys, project, db_url, "baseline", V1, "--scratch-url", pg_server.admin_url)
    assert result.code == 2 and "--yes" in result.err
    assert applied_versions(db_url) == []


def test_the_library_api_proves_then_records(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer
) -> None:
    root = _project(make_project)
    _built_by_hand(db_url, USERS, ORDERS)
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(root / "migrations")}, cwd=root
    )
    project = pgshift.load_project(settings)
    with pgshift.connect(settings) as target:
        # V2 depends on V1: both are part of its baseline, in plan order.
        plan = pgshift.plan_baseline(project, target, V2, scratch_url=pg_server.admin_url)
        assert isinstance(plan, pgshift.BaselinePlan)
        assert plan.versions == (V1, V2) and plan.matches
        assert applied_versions(db_url) == []  # planning records nothing
        query(db_url, "DROP TABLE orders")  # changed between the plan and the recording
        with pytest.raises(DriftError) as refused:
            pgshift.baseline(plan, target)
        assert "missing: table public.orders" in refused.value.message
        query(db_url, ORDERS)
        result = pgshift.baseline(plan, target)
    assert isinstance(result, pgshift.BaselineResult)
    assert result.versions == (V1, V2) and not result.forced
    assert result.lint_since is not None and result.lint_since.version == V2
    assert load_settings({}, {}, cwd=root).lint_since == V2
    checksums = query(db_url, "SELECT version, checksum FROM pgshift.applied ORDER BY version")
    assert checksums == [(m.version, m.checksum) for m in project.migrations[:2]]


def test_docs_adopting_baseline_runs_as_written(
    make_project: ProjectMaker,
    db_url: str,
    pg_server: PgServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The baseline walk-through of docs/adopting.md, on a database built by hand."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "adopting.md"
    lines = doc_commands(doc, "Baseline: a database built by hand")
    assert any(line.startswith(f"pgshift baseline {V2} ") for line in lines)
    folder = "db/pgshift"
    make_project(migration_pair(V1, "create users", USERS), subdir=folder)
    make_project(migration_pair(V2, "create orders", ORDERS, deps=[V1]), subdir=folder)
    root = make_project(migration_pair(V3, "add name", NAME), subdir=folder)
    _built_by_hand(db_url, USERS, ORDERS)
    env = {
        "DATABASE_URL": db_url,
        "SCRATCH_URL": pg_server.admin_url,
        "DB_BACKUP_DIR": str(root / "backups"),
    }
    run_doc_commands(capsys, monkeypatch, root, lines, env)
    assert applied_versions(db_url) == [V1, V2, V3]
    assert count_events(db_url, "baseline") == 2


def test_an_unknown_version_is_bad_usage(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    result = run_cli(capsys, project, db_url, "baseline", "20990101000000", "--yes")
    assert result.code == 2 and "no migration file has this version" in result.err
    # A mistyped version is refused before any scratch server is started for the proof.
    assert not (project / ".pgshift" / "pgdata").exists()
