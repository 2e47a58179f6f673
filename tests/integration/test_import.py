"""`pgshift import` on real PostgreSQL: each tool's layout (written here), a database the old tool's
own table marks partly applied (table and schema made by hand), then `pgshift up` applies exactly
the rest and `status` agrees; a dirty or failed entry is refused, named, before anything is
written. The library API (plan_import, import_migrations) does the same."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker
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

USERS = "CREATE TABLE users (id bigint PRIMARY KEY, name text);\n"
ORDERS = "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users);\n"
INDEX = "CREATE INDEX CONCURRENTLY users_name ON users (name);\n"


@dataclass(frozen=True)
class Layout:
    """One tool's folder, its history table (DDL and the rows saying 1 and 2 are applied)."""

    files: dict[str, str]
    table: str
    applied_rows: tuple[str, ...]
    versions: tuple[str, str, str]  # the pgshift versions the three migrations get
    bad_rows: tuple[str, ...] = ()  # a dirty / failed entry instead
    bad_word: str = ""
    transactions: tuple[bool, ...] = (True, True, False)  # the marker on the third one
    irreversible: tuple[bool, ...] = (False, True, False)  # the empty down of the second one


LAYOUTS: dict[str, Layout] = {
    "diesel": Layout(
        {
            "2024-01-01-120000_create_users/up.sql": USERS,
            "2024-01-01-120000_create_users/down.sql": "DROP TABLE users;\n",
            "2024-01-02-120000_create_orders/up.sql": ORDERS,
            "2024-01-02-120000_create_orders/down.sql": "-- This file should undo anything\n",
            "2024-01-03-120000_index_users/up.sql": INDEX,
            "2024-01-03-120000_index_users/down.sql": "DROP INDEX CONCURRENTLY users_name;\n",
            "2024-01-03-120000_index_users/metadata.toml": "run_in_transaction = false\n",
        },
        "CREATE TABLE __diesel_schema_migrations (version varchar(50) PRIMARY KEY,"
        " run_on timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        (
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101120000'),"
            " ('20240102120000')",
        ),
        ("20240101120000", "20240102120000", "20240103120000"),
    ),
    "golang-migrate": Layout(
        {
            "1_create_users.up.sql": USERS,
            "1_create_users.down.sql": "DROP TABLE users;\n",
            "2_create_orders.up.sql": ORDERS,
            "2_create_orders.down.sql": "",
            "3_index_users.up.sql": INDEX,
            "3_index_users.down.sql": "DROP INDEX CONCURRENTLY users_name;\n",
        },
        "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY,"
        " dirty boolean NOT NULL)",
        ("INSERT INTO schema_migrations VALUES (2, false)",),
        ("19700101000001", "19700101000002", "19700101000003"),
        ("INSERT INTO schema_migrations VALUES (2, true)",),
        "version 2 is dirty",
        transactions=(True, True, True),  # golang-migrate has no marker
    ),
    "dbmate": Layout(
        {
            "20240101120000_create_users.sql": "-- migrate:up\n"
            + USERS
            + "\n-- migrate:down\nDROP TABLE users;\n",
            "20240102120000_create_orders.sql": "-- migrate:up\n" + ORDERS + "\n-- migrate:down\n",
            "20240103120000_index_users.sql": "-- migrate:up transaction:false\n"
            + INDEX
            + "\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY users_name;\n",
        },
        "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY)",
        ("INSERT INTO schema_migrations VALUES ('20240101120000'), ('20240102120000')",),
        ("20240101120000", "20240102120000", "20240103120000"),
    ),
    "flyway": Layout(
        {
            "V1__Create_users.sql": USERS,
            "U1__Create_users.sql": "DROP TABLE users;\n",
            "V2__Create_orders.sql": ORDERS,
            "V3__Index_users.sql": INDEX,
            "V3__Index_users.sql.conf": "executeInTransaction=false\n",
        },
        "CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version"
        " varchar(50), description varchar(200) NOT NULL, type varchar(20) NOT NULL, script"
        " varchar(1000) NOT NULL, checksum int, installed_by varchar(100) NOT NULL, installed_on"
        " timestamp NOT NULL DEFAULT now(), execution_time int NOT NULL, success boolean"
        " NOT NULL)",
        (
            "INSERT INTO flyway_schema_history VALUES"
            " (1, '1', 'Create users', 'SQL', 'V1__Create_users.sql', 1, 'app', now(), 5, true),"
            " (2, '2', 'Create orders', 'SQL', 'V2__Create_orders.sql', 2, 'app', now(), 5, true)",
        ),
        ("19700101000001", "19700101000002", "19700101000003"),
        (
            "INSERT INTO flyway_schema_history VALUES"
            " (1, '1', 'Create users', 'SQL', 'V1__Create_users.sql', 1, 'app', now(), 5, true),"
            " (2, '2', 'Create orders', 'SQL', 'V2__Create_orders.sql', 2, 'app', now(), 5,"
            " false)",
        ),
        "version 2 (V2__Create_orders.sql) failed",
        irreversible=(False, True, True),  # no undo scripts for V2 and V3
    ),
    # ory/popx as kratos lays it out: a generic file used where no `.postgres` one exists, files
    # of other databases beside them (left out), `.autocommit` outside a transaction, an empty
    # `.postgres` down, and popx's table with its `version_self` column.
    "popx": Layout(
        {
            "20240101000001000000_create_users.up.sql": USERS,
            "20240101000001000000_create_users.mysql.up.sql": USERS.replace(";", " ENGINE=InnoDB;"),
            "20240101000001000000_create_users.down.sql": "DROP TABLE users;\n",
            "20240101000002000000_create_orders.up.sql": "CREATE TABLE orders (id int);\n",
            "20240101000002000000_create_orders.postgres.up.sql": ORDERS,
            "20240101000002000000_create_orders.postgres.down.sql": "",
            "20240101000002000000_create_orders.sqlite3.down.sql": "DROP TABLE orders;\n",
            "20240101000003000000_index_users.postgres.autocommit.up.sql": INDEX,
            "20240101000003000000_index_users.postgres.autocommit.down.sql": (
                "DROP INDEX CONCURRENTLY users_name;\n"
            ),
            "20240101000003000000_index_users.mysql.up.sql": "CREATE INDEX users_name ON users;\n",
            "20240101000003000000_index_users.cockroach.up.sql": "SELECT 1;\n",
        },
        "CREATE TABLE schema_migration (version VARCHAR (48) NOT NULL,"
        " version_self INT NOT NULL DEFAULT 0)",
        (
            "INSERT INTO schema_migration (version) VALUES ('20240101000001000000'),"
            " ('20240101000002000000')",
        ),
        ("19700101000001", "19700101000002", "19700101000003"),
    ),
}


def _old_database(db_url: str, layout: Layout, rows: tuple[str, ...]) -> None:
    """What the old tool left: its table saying 1 and 2 ran, and their schema."""
    query(db_url, layout.table)
    for row in rows:
        query(db_url, row)
    query(db_url, USERS)
    query(db_url, ORDERS)


def _status(capsys: pytest.CaptureFixture[str], project: Path, db_url: str) -> dict[str, str]:
    result = run_cli(capsys, project, db_url, "status", "--json")
    assert result.code == 0, result.err
    return {m["version"]: m["state"] for m in result.json()["migrations"]}


@pytest.mark.parametrize("tool", sorted(LAYOUTS))
def test_import_carries_the_old_history_over_and_up_applies_only_the_rest(
    tool: str, make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = LAYOUTS[tool]
    project = make_project(layout.files, subdir="old")
    _old_database(db_url, layout, layout.applied_rows)
    v1, v2, v3 = layout.versions

    result = run_cli(capsys, project, db_url, "import", "--from", tool, "old", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["recorded"] == [v1, v2] and report["pending"] == [v3]
    assert tuple(f["transaction"] for f in report["files"]) == layout.transactions
    assert tuple(f["irreversible"] for f in report["files"]) == layout.irreversible
    migrations = project / "migrations"
    third = next(migrations.glob(f"{v3}_*[!k].sql"))
    assert ("\n\n" + INDEX) in third.read_text()
    assert ("-- @transaction: false" in third.read_text()) is not layout.transactions[2]
    assert "-- @lint-ignore: missing-rollback" in next(migrations.glob(f"{v2}_*.sql")).read_text()
    assert applied_versions(db_url) == [v1, v2]
    assert count_events(db_url, "import") == 2
    assert _status(capsys, project, db_url) == {v1: "applied", v2: "applied", v3: "pending"}

    up = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--json")
    assert up.code == 0, up.err
    assert [(s["version"], s["status"]) for s in up.json()["steps"]] == [(v3, "applied")]
    assert _status(capsys, project, db_url) == {v1: "applied", v2: "applied", v3: "applied"}
    assert query(
        db_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_name'::regclass"
    )
    # The rollback text `up` would have recorded, so a later rollback works without the file.
    stored = query(db_url, "SELECT rollback_sql FROM pgshift.applied WHERE version = %s", [v1])
    assert stored[0][0] == next(migrations.glob(f"{v1}_*_rollback.sql")).read_text()


@pytest.mark.parametrize("tool", [t for t, layout in LAYOUTS.items() if layout.bad_rows])
def test_a_dirty_or_failed_entry_is_refused_and_named_before_anything_is_written(
    tool: str, make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = LAYOUTS[tool]
    project = make_project(layout.files, subdir="old")
    _old_database(db_url, layout, layout.bad_rows)
    result = run_cli(capsys, project, db_url, "import", "--from", tool, "old")
    assert result.code == 2, result.err
    assert layout.bad_word in result.err
    assert not (project / "migrations").exists() or not any((project / "migrations").iterdir())
    assert applied_versions(db_url) == []


def test_an_entry_without_a_source_file_is_drift(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = LAYOUTS["dbmate"]
    project = make_project(layout.files, subdir="old")
    _old_database(db_url, layout, ("INSERT INTO schema_migrations VALUES ('20230101000000')",))
    result = run_cli(capsys, project, db_url, "import", "--from", "dbmate", "old")
    assert result.code == 4 and "20230101000000" in result.err


def test_import_refuses_to_overwrite_and_without_a_database_only_writes_files(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = LAYOUTS["golang-migrate"]
    project = make_project(layout.files, subdir="old")
    make_project({"19700101000001_other.sql": "SELECT 1;\n"})
    result = run_cli(capsys, project, None, "import", "--from", "golang-migrate", "old")
    assert result.code == 2 and "already uses version 19700101000001" in result.err
    (project / "migrations" / "19700101000001_other.sql").unlink()
    result = run_cli(capsys, project, None, "import", "--from", "golang-migrate", "old")
    assert result.code == 0, result.err
    assert "no database configured" in result.out
    assert len(list((project / "migrations").glob("*.sql"))) == 5
    again = run_cli(capsys, project, None, "import", "--from", "golang-migrate", "old")
    assert again.code == 0  # the same files, unchanged: nothing overwritten, nothing refused


def test_the_library_api_plans_then_imports(make_project: ProjectMaker, db_url: str) -> None:
    layout = LAYOUTS["flyway"]
    root = make_project(layout.files, subdir="old")
    _old_database(db_url, layout, layout.applied_rows)
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(root / "migrations")}, cwd=root
    )
    with pgshift.connect(settings, purpose="import") as target:
        plan = pgshift.plan_import(settings, "flyway", root / "old", target=target)
        assert isinstance(plan, pgshift.ImportPlan)
        assert plan.history_table == "flyway_schema_history"
        assert plan.carried == layout.versions[:2] and plan.pending == layout.versions[2:]
        assert not (root / "migrations").exists()  # planning writes nothing
        result = pgshift.import_migrations(plan, target=target)
    assert isinstance(result, pgshift.ImportResult)
    assert result.recorded == layout.versions[:2] and len(result.written) == 4
    run = pgshift.up(settings, backup=False)
    assert [s.version for s in run.steps] == [layout.versions[2]]


DOC = Path(__file__).resolve().parents[2] / "docs" / "adopting.md"
HEADINGS = {
    "diesel": ("From Diesel", "migrations"),
    "golang-migrate": ("From golang-migrate", "migrations"),
    "dbmate": ("From dbmate", "db/migrations"),
    "flyway": ("From Flyway", "sql"),
    "popx": ("From ory/popx", "persistence/sql/migrations/sql"),
}


@pytest.mark.parametrize("tool", sorted(HEADINGS))
def test_docs_adopting_walkthrough_runs_as_written(
    tool: str,
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/adopting.md, from each old tool to the first `pgshift up`, on the layout it shows."""
    heading, folder = HEADINGS[tool]
    layout = LAYOUTS[tool]
    lines = doc_commands(DOC, heading)
    assert f"pgshift import --from {tool} {folder}" in lines
    root = make_project(layout.files, subdir=folder)
    _old_database(db_url, layout, layout.applied_rows)
    env = {"DATABASE_URL": db_url, "DB_BACKUP_DIR": str(root / "backups")}
    results = run_doc_commands(capsys, monkeypatch, root, lines, env)
    assert "applies the other 1" in results[0].out
    assert applied_versions(db_url) == list(layout.versions)
