"""A role that may not create pgshift's history schema is told so, by name, before any backup."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import query, run_cli

V1 = "20250101000000"


@pytest.fixture
def no_create_role(db_url: str, pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """(url, role): a login role that may connect to the test database but not CREATE in it,
    with a schema ``app`` of its own for its migrations' tables."""
    role = f"nocreate_{uuid.uuid4().hex[:10]}"
    admin = pg_server.admin()
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(sql.Identifier(role)))
    try:
        yield make_conninfo(db_url, user=role), role
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_up_without_create_on_the_database_exits_3_before_any_backup(
    make_project: ProjectMaker,
    db_url: str,
    no_create_role: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, role = no_create_role
    dbname = str(conninfo_to_dict(db_url)["dbname"])
    project = make_project(pair(V1, "items", "CREATE TABLE app.items (id bigint);"))

    status = run_cli(capsys, project, url, "status")
    assert status.code == 0, status.err
    assert 'history schema "pgshift" (PGSHIFT_SCHEMA)' in status.err
    assert f'GRANT CREATE ON DATABASE "{dbname}" TO "{role}"' in status.err
    as_json = run_cli(capsys, project, url, "status", "--json").json()
    assert any("PGSHIFT_SCHEMA" in w for w in as_json["warnings"])

    result = run_cli(capsys, project, url, "up", "--yes")
    assert result.code == 3, result.err
    assert 'history schema "pgshift" (PGSHIFT_SCHEMA)' in result.err
    assert f'GRANT CREATE ON DATABASE "{dbname}" TO "{role}"' in result.err
    assert "a migration failed" not in result.err
    backups = project / ".pgshift" / "backups"
    assert not backups.exists() or not any(backups.iterdir()), "no backup before the refusal"
    assert query(db_url, "SELECT to_regnamespace('pgshift') IS NULL") == [(True,)]

    # The other way the hint offers: an administrator makes the schema for the role.
    query(db_url, f'CREATE SCHEMA pgshift AUTHORIZATION "{role}"')
    assert "warning" not in run_cli(capsys, project, url, "status").err
    done = run_cli(capsys, project, url, "up", "--yes", "--skip-backup")
    assert done.code == 0, done.err
    assert query(db_url, "SELECT version FROM pgshift.applied") == [(V1,)]


def test_a_schema_the_role_may_not_create_in_is_named_with_its_grant(
    make_project: ProjectMaker,
    db_url: str,
    no_create_role: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, role = no_create_role
    query(db_url, "CREATE SCHEMA audit")  # owned by the administrator, no grant to the role
    monkeypatch.setenv("PGSHIFT_SCHEMA", "audit")
    project = make_project(pair(V1, "items", "CREATE TABLE app.items (id bigint);"))
    result = run_cli(capsys, project, url, "up", "--yes", "--skip-backup")
    assert result.code == 3, result.err
    assert 'history schema "audit" (PGSHIFT_SCHEMA)' in result.err
    assert f'GRANT USAGE, CREATE ON SCHEMA "audit" TO "{role}"' in result.err


def test_the_library_raises_the_same_refusal(
    make_project: ProjectMaker, no_create_role: tuple[str, str], tmp_path: Path
) -> None:
    import pgshift
    from pgshift.errors import HistoryAccessDenied

    url, _ = no_create_role
    project = make_project(pair(V1, "items", "CREATE TABLE app.items (id bigint);"))
    settings = pgshift.load_settings(
        {"database_url": url, "migrations_dir": str(project / "migrations")},
        env={"DB_BACKUP_DIR": str(tmp_path / "b")},
        cwd=project,
    )
    with pytest.raises(HistoryAccessDenied) as refused:
        pgshift.up(settings)
    assert refused.value.exit_code == 3 and refused.value.schema == "pgshift"
    assert refused.value.grant.startswith("GRANT CREATE ON DATABASE")
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
