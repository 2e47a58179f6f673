"""What the severity of the NOT NULL rules rests on, checked against each server we run.

set-not-null stays quiet after a validated ``CHECK (col IS NOT NULL)``, also when the CHECK
was added without a name (the linter then uses the name PostgreSQL chooses), and only
suspects a scan (a warning) when the validated constraint is one the migrations never made.
Both facts are the server's: the name it gives an unnamed CHECK, and that SET NOT NULL skips
its scan after such a CHECK (it says so at DEBUG1: "existing constraints on column ... are
sufficient to prove that it does not contain nulls", ATRewriteTables in tablecmds.c).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.plugins.project import ProjectMaker, migration_text, rollback_text
from tests.support import run_cli

from pgshift.lint.engine import lint_text
from pgshift.lint.tree import check_constraint_name

V1, V2 = "20250101000000", "20250102000000"

NAMES = [
    ("users", "email"),
    ("t" * 40, "c" * 40),  # both parts cut: the longer loses a byte at a time
    ("short", "a_column_name_long_enough_to_be_cut_by_postgresql_itself_x"),
    ("bestellungen_für_die_nächste_woche_mit_überlänge", "straße_und_hausnummer"),
]


@pytest.mark.parametrize(("table", "column"), NAMES)
def test_an_unnamed_check_gets_the_name_the_linter_expects(
    db_url: str, table: str, column: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE TABLE {} ({} text)").format(
                psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
            )
        )
        conn.execute(
            psycopg.sql.SQL("ALTER TABLE {} ADD CHECK ({} IS NOT NULL) NOT VALID").format(
                psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
            )
        )
        row = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
            [psycopg.sql.Identifier(table).as_string(conn)],
        ).fetchone()
    assert row is not None
    assert row[0] == check_constraint_name(table, column)


def _debug_messages(conn: psycopg.Connection[Any], sql: str) -> list[str]:
    messages: list[str] = []
    conn.add_notice_handler(lambda diag: messages.append(diag.message_primary or ""))
    conn.execute("SET client_min_messages = debug1")
    conn.execute(sql.encode())
    conn.execute("RESET client_min_messages")
    return messages


RECIPE = (
    "ALTER TABLE users ADD CHECK (email IS NOT NULL) NOT VALID;\n",
    "ALTER TABLE users VALIDATE CONSTRAINT users_email_check;\n"
    "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n",
)


def test_the_recipe_with_an_unnamed_check_skips_the_scan_and_is_not_reported(
    db_url: str, pg_major: int
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id bigint, email text)")
        conn.execute("INSERT INTO users SELECT g, 'x' FROM generate_series(1, 10) g")
        conn.execute(RECIPE[0].encode())
        said = _debug_messages(conn, RECIPE[1])
    assert any("sufficient to prove that it does not contain nulls" in m for m in said), said
    found = lint_text(
        RECIPE[0] + "-- pgshift-ignore: constraint-missing-not-valid\n" + RECIPE[1],
        "m.sql",
        pg_major=15,
    )
    assert "set-not-null" not in {f.code for f in found}


def test_the_same_scan_without_the_check_is_reported_as_an_error(db_url: str) -> None:
    sql = "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id bigint, email text)")
        conn.execute("INSERT INTO users SELECT g, 'x' FROM generate_series(1, 10) g")
        said = _debug_messages(conn, sql)
    assert not any("sufficient to prove" in m for m in said), said
    (finding,) = [f for f in lint_text(sql, "m.sql") if f.code == "set-not-null"]
    assert finding.severity == "error" and finding.category == "locking"


def _pair(version: str, name: str, sql: str, undo: str, **kw: object) -> dict[str, str]:
    return {
        f"{version}_{name}.sql": migration_text(version, name, sql, **kw),  # type: ignore[arg-type]
        f"{version}_{name}_rollback.sql": rollback_text(version, name, undo),
    }


def test_a_check_made_outside_the_migrations_makes_it_a_warning_and_up_applies_the_claim(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, db_url: str
) -> None:
    """The CHECK exists in the database (made by hand, or before the history); the migration
    validates it and sets NOT NULL, claiming zero downtime: the server skips the scan, so the
    linter must not call it an outage (it cannot see what the constraint checks: a warning)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id bigint, email text)")
        conn.execute("INSERT INTO users SELECT g, 'x' FROM generate_series(1, 10) g")
        conn.execute(
            "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID"
        )
    sql = (
        "ALTER TABLE users VALIDATE CONSTRAINT email_nn;\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
    )
    project: Path = make_project(
        _pair(
            V1,
            "email_not_null",
            sql,
            "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
            zero_downtime=True,
            extra_header=["@estimated-duration: 1 minute"],
        )
    )
    report = run_cli(capsys, project, None, "validate", "--json")
    found = {f["code"]: f for f in report.json()["findings"]}
    assert found["set-not-null"]["severity"] == "warning", found
    assert "email_nn" in found["set-not-null"]["message"]
    assert "zero-downtime-claim" not in found
    assert report.code == 0
    up = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert up.code == 0, up.err
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass"
            " AND attname = 'email'"
        ).fetchone()
    assert row == (True,)
