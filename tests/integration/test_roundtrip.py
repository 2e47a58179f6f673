"""`validate --roundtrip` on real PostgreSQL: good, leaky, broken and failing rollbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_text, rollback_text
from tests.support import query, run_cli, tables

V1, V2, V3, V4 = "20250101000000", "20250102000000", "20250103000000", "20250104000000"


def _pair(version: str, description: str, sql: str, undo: str) -> dict[str, str]:
    return {
        f"{version}_{description}.sql": migration_text(version, description, sql),
        f"{version}_{description}_rollback.sql": rollback_text(version, description, undo),
    }


USERS = _pair(
    V1,
    "add_users",
    "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);\n"
    "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    "DROP INDEX CONCURRENTLY users_email_idx;\nDROP TABLE users;",
)


def _findings(result_json: dict[str, object]) -> list[tuple[str, str, str]]:
    items = result_json["findings"]
    assert isinstance(items, list)
    return [(Path(f["file"]).name, f["code"], f["message"]) for f in items]


def _roundtrip_databases(server: PgServer) -> list[str]:
    rows = query(
        server.admin_url, "SELECT datname FROM pg_database WHERE datname LIKE 'pgshift_roundtrip%'"
    )
    return [r[0] for r in rows]


def test_correct_rollbacks_pass_and_the_target_is_untouched(
    capsys: pytest.CaptureFixture[str],
    make_project: ProjectMaker,
    pg_server: PgServer,
    db_url: str,
) -> None:
    project = make_project(
        USERS
        | _pair(
            V2,
            "add_status",
            "CREATE TYPE status AS ENUM ('new', 'done');\n"
            "ALTER TABLE users ADD COLUMN status status NOT NULL DEFAULT 'new';",
            "ALTER TABLE users DROP COLUMN status;\nDROP TYPE status;",
        )
    )
    result = run_cli(
        capsys, project, db_url, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 0, result.out + result.err
    assert result.json() == {"ok": True, "findings": []}
    assert tables(db_url) == set()  # the target was never touched
    assert _roundtrip_databases(pg_server) == []  # the scratch database was dropped


def test_leaky_broken_and_failing_rollbacks_are_each_reported(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    project = make_project(
        USERS
        # Leaves its table (and its index) behind.
        | _pair(
            V2,
            "add_prefs",
            "CREATE TABLE prefs (user_id bigint PRIMARY KEY, theme text);",
            "SELECT 1;",
        )
        # A rollback that does not parse.
        | _pair(V3, "add_orders", "CREATE TABLE orders (id bigint);", "DROP TABEL orders;")
        # A rollback that fails on the server; the round trip goes on after it.
        | _pair(
            V4,
            "add_nickname",
            "ALTER TABLE users ADD COLUMN nickname text;",
            "ALTER TABLE users DROP COLUMN nick;",
        )
    )
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 1
    found = _findings(result.json())
    by_code = {(name, code): message for name, code, message in found}
    leak = by_code[(f"{V2}_add_prefs_rollback.sql", "rollback-incomplete")]
    assert "left behind: table public.prefs" in leak
    assert "left behind: index public.prefs_pkey" in leak
    assert (f"{V3}_add_orders_rollback.sql", "invalid-file") in by_code
    assert "not tried" in by_code[(f"{V3}_add_orders_rollback.sql", "rollback-failed")]
    failed = by_code[(f"{V4}_add_nickname_rollback.sql", "rollback-failed")]
    assert 'column "nick" of relation "users" does not exist' in failed
    assert not any(name.startswith(V1) for name, _, _ in found)
    assert _roundtrip_databases(pg_server) == []


def test_reapply_after_rollback_is_checked(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    project = make_project(
        USERS
        | _pair(
            V2,
            "add_settings",
            "CREATE TABLE settings (key text PRIMARY KEY, value text);",
            "DROP TABLE settings;",
        )
        # The schema comes back, but the row the rollback forgot makes the re-apply fail.
        | _pair(
            V3,
            "seed_theme",
            "INSERT INTO settings (key, value) VALUES ('theme', 'dark');",
            "SELECT 1;",
        )
    )
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    found = _findings(result.json())
    assert [(name, code) for name, code, _ in found] == [
        (f"{V3}_seed_theme.sql", "reapply-mismatch")
    ]
    assert "duplicate key" in found[0][2]
    assert result.code == 1


def test_a_migration_failing_on_a_fresh_database_stops_the_round_trip(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    project = make_project(
        _pair(V1, "index_orders", "CREATE INDEX CONCURRENTLY o_idx ON orders (id);", "SELECT 1;")
        | USERS_AT_V2
    )
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    found = _findings(result.json())
    assert [(name, code) for name, code, _ in found] == [(f"{V1}_index_orders.sql", "apply-failed")]
    assert 'relation "orders" does not exist' in found[0][2]


USERS_AT_V2 = _pair(
    V2, "add_users", "CREATE TABLE users (id bigint PRIMARY KEY);", "DROP TABLE users;"
)
