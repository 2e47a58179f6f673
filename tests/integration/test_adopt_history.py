"""Adopting a real history (SPEC 9), on small synthetic projects written here: an old rollback
that does not parse is imported as it is and fixed in place, and the next import keeps the fix
and records the history; files of an earlier import are updated, files edited since are left
alone; an import that finds nothing is exit 2; `validate` is green afterwards (lint_since) while
`--since` and `--all` still show what the history holds; `up` on a fresh database does not
print the history's findings. Command line and library API, on both servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker
from tests.support import applied_versions, count_events, query, run_cli

import pgshift
from pgshift.config import load_settings
from pgshift.errors import InputError
from pgshift.ops.importing import ImportUnusable

USERS = "CREATE TABLE users (id bigint PRIMARY KEY, name text);\n"
# Lint errors, as years-old migrations are full of: a blocking index build and a NOT NULL
# column without a default on an existing table.
OLD_HABITS = (
    "CREATE INDEX users_name ON users (name);\nALTER TABLE users ADD COLUMN email text NOT NULL;\n"
)
BROKEN_DOWN = "DROP INDEX users_name IF;\n"  # a syntax error nobody noticed: it never ran
FIXED_DOWN = "DROP INDEX users_name;\nALTER TABLE users DROP COLUMN email;\n"
V1, V2 = "20240101120000", "20240102120000"

DIESEL = {
    "2024-01-01-120000_create_users/up.sql": USERS,
    "2024-01-01-120000_create_users/down.sql": "DROP TABLE users;\n",
    "2024-01-02-120000_old_habits/up.sql": OLD_HABITS,
    "2024-01-02-120000_old_habits/down.sql": BROKEN_DOWN,
}


def _diesel_database(db_url: str) -> None:
    """What Diesel left: its table saying both ran, and their schema."""
    query(
        db_url,
        "CREATE TABLE __diesel_schema_migrations (version varchar(50) PRIMARY KEY,"
        " run_on timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    query(db_url, f"INSERT INTO __diesel_schema_migrations (version) VALUES ('{V1}'), ('{V2}')")
    query(db_url, USERS)
    query(db_url, OLD_HABITS)


def _rollback(project: Path) -> Path:
    return project / "migrations" / f"{V2}_old_habits_rollback.sql"


def test_a_rollback_that_does_not_parse_is_fixed_in_place_and_the_next_import_keeps_it(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(DIESEL, subdir="old")
    _diesel_database(db_url)

    first = run_cli(capsys, project, db_url, "import", "--from", "diesel", "old")
    assert first.code == 2, first.err
    assert f"{_rollback(project)}:4:23: syntax error" in first.err
    assert "fix those files there, in place; then run this import again" in first.err
    assert "fix the files, then import again" not in first.err
    assert applied_versions(db_url) == []  # nothing recorded from a history that does not load
    assert _rollback(project).read_text().endswith("\n\n" + BROKEN_DOWN)  # imported as it is

    fixed = _rollback(project).read_text().replace(BROKEN_DOWN, FIXED_DOWN)
    _rollback(project).write_text(fixed)
    second = run_cli(capsys, project, db_url, "import", "--from", "diesel", "old", "--json")
    assert second.code == 0, second.err
    assert f"left as it is: {_rollback(project)} (edited since an earlier import" in second.err
    report = second.json()
    assert report["kept"] == [str(_rollback(project))] and report["written"] == []
    assert report["recorded"] == [V1, V2] and report["lint_since"]["version"] == V2
    assert _rollback(project).read_text() == fixed  # the fix stands
    assert applied_versions(db_url) == [V1, V2] and count_events(db_url, "import") == 2
    stored = query(db_url, "SELECT rollback_sql FROM pgshift.applied WHERE version = %s", [V2])
    assert stored[0][0] == fixed

    third = run_cli(capsys, project, db_url, "import", "--from", "diesel", "old", "--json")
    assert third.code == 0 and third.json()["recorded"] == []  # nothing twice

    # validate is green on the adopted history, and says what it left out as history.
    validate = run_cli(capsys, project, db_url, "validate")
    assert validate.code == 0, validate.out
    assert f"in migrations up to {V2} hidden: history (lint_since)" in validate.out
    assert "require-concurrent-index" not in validate.out
    shown = run_cli(capsys, project, db_url, "validate", "--all")
    assert shown.code == 0, shown.out
    assert f"error[require-concurrent-index] (history, up to {V2})" in shown.out
    assert "above are history" in shown.out
    assert run_cli(capsys, project, db_url, "validate", "--since", V1).code == 1
    as_json = run_cli(capsys, project, db_url, "validate", "--json", "--all").json()
    assert as_json["ok"] is True and as_json["history"]["since"] == V2
    assert as_json["history"]["count"] >= 2 and as_json["history"]["shown"] is True
    assert {f["code"] for f in as_json["findings"] if f.get("history")} >= {
        "require-concurrent-index",
        "not-null-column-without-default",
    }


GOLANG = {
    "1_create_users.up.sql": USERS,
    "1_create_users.down.sql": "DROP TABLE users;\n",
    "2_old_habits.up.sql": OLD_HABITS,
    "2_old_habits.down.sql": FIXED_DOWN,
}
G1, G2 = "19700101000001", "19700101000002"


def test_importing_again_updates_unedited_files_and_leaves_edited_ones_alone(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(GOLANG, subdir="old")
    assert run_cli(capsys, project, None, "import", "--from", "golang-migrate", "old").code == 0
    migrations = project / "migrations"
    down1 = migrations / f"{G1}_create_users_rollback.sql"
    up2 = migrations / f"{G2}_old_habits.sql"
    edited = up2.read_text().replace(
        "-- @imported-from:", "-- @estimated-duration: 2 minutes\n-- @imported-from:"
    )
    up2.write_text(edited)
    # The old tool's files change meanwhile (someone fixed them there instead).
    (project / "old" / "1_create_users.down.sql").write_text("DROP TABLE IF EXISTS users;\n")
    (project / "old" / "2_old_habits.up.sql").write_text(OLD_HABITS + "SELECT 1;\n")

    again = run_cli(capsys, project, None, "import", "--from", "golang-migrate", "old", "--json")
    assert again.code == 0, again.err
    report = again.json()
    assert report["updated"] == [str(down1)] and report["written"] == [str(down1)]
    assert report["kept"] == [str(up2)]
    assert down1.read_text().endswith("\n\nDROP TABLE IF EXISTS users;\n")
    assert up2.read_text() == edited  # the edit stands; the source's change is not forced on it
    assert "sha256:" in down1.read_text()  # a fresh stamp: the next import may update it again
    text = run_cli(capsys, project, None, "import", "--from", "golang-migrate", "old")
    assert text.code == 0 and "wrote 0 file(s)" in text.out

    # A file of the history that stops parsing still counts: lint_since hides lint only.
    up2.write_text(edited.replace("CREATE INDEX", "CREAT INDEX"))
    broken = run_cli(capsys, project, None, "validate")
    assert broken.code == 1 and "error[invalid-file]" in broken.out


KRATOS_LIKE = {
    "20191100000001000000_identities.postgres.up.sql": USERS,
    "20191100000001000000_identities.mysql.up.sql": USERS,
    "20191100000001000000_identities.down.sql": "DROP TABLE users;\n",
}


@pytest.mark.parametrize(
    ("tool", "looked_for"),
    [
        ("diesel", "looked for folders <version>_<name>/ holding an up.sql"),
        ("flyway", "looked for V<version>__<name>.sql files, in sub-folders too"),
    ],
)
def test_an_import_that_finds_nothing_is_exit_2_naming_what_it_looked_for(
    tool: str, looked_for: str, make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    """kratos's layout given to the wrong importer: before, exit 0 and nothing imported."""
    project = make_project(KRATOS_LIKE, subdir="sql")
    result = run_cli(capsys, project, None, "import", "--from", tool, "sql")
    assert result.code == 2, result.out
    assert f"{tool}: nothing to import from sql: {looked_for}" in result.err
    assert "--from diesel, golang-migrate, dbmate, flyway or popx" in result.err
    assert not (project / "migrations").exists() and not (project / "pgshift.toml").exists()


def test_golang_migrate_given_popxs_layout_names_popx(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(KRATOS_LIKE, subdir="sql")
    result = run_cli(capsys, project, None, "import", "--from", "golang-migrate", "sql")
    assert result.code == 2 and "that is ory/popx's layout" in result.err
    assert "--from popx" in result.err


def test_popx_with_only_other_databases_files_is_exit_2(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project({"20200101000000000000_x.mysql.up.sql": USERS}, subdir="sql")
    result = run_cli(capsys, project, None, "import", "--from", "popx", "sql")
    assert result.code == 2
    assert "looked for <version>_<name>[.postgres][.autocommit].up.sql" in result.err
    assert "1 file(s) of other databases (1 mysql)" in result.err


def test_popx_older_table_rows_carry_the_history_over(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """popx's table before `version_self`: 14-digit rows, read as popx reads them."""
    project = make_project(
        {
            "20191100000001000000_users.postgres.up.sql": USERS,
            "20191100000001000000_users.postgres.down.sql": "DROP TABLE users;\n",
            "20191100000001000001_habits.up.sql": OLD_HABITS,
            "20191100000001000001_habits.down.sql": FIXED_DOWN,
            "20200101000000000000_later.up.sql": "ALTER TABLE users ADD COLUMN note text;\n",
            "20200101000000000000_later.down.sql": "ALTER TABLE users DROP COLUMN note;\n",
        },
        subdir="sql",
    )
    query(db_url, "CREATE TABLE schema_migration (version varchar(14) NOT NULL)")
    query(db_url, "INSERT INTO schema_migration VALUES ('20191100000001')")
    query(db_url, USERS)
    query(db_url, OLD_HABITS)
    result = run_cli(capsys, project, db_url, "import", "--from", "popx", "sql", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["recorded"] == ["19700101000001", "19700101000002"]
    assert report["pending"] == ["19700101000003"]
    up = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--json")
    assert up.code == 0, up.err
    assert [s["version"] for s in up.json()["steps"]] == ["19700101000003"]


def test_up_on_a_fresh_database_does_not_print_the_historys_findings(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(GOLANG, subdir="old")
    assert run_cli(capsys, project, None, "import", "--from", "golang-migrate", "old").code == 0
    quiet = run_cli(capsys, project, db_url, "up", "--dry-run")
    assert quiet.code == 0, quiet.err
    assert "lint:" not in quiet.err
    (project / "pgshift.toml").unlink()  # without lint_since the same plan shows them
    loud = run_cli(capsys, project, db_url, "up", "--dry-run")
    assert loud.code == 0 and "lint:" in loud.err and "require-concurrent-index" in loud.err


def test_the_library_api_imports_fixes_in_place_and_validates_with_since(
    make_project: ProjectMaker, db_url: str
) -> None:
    root = make_project(DIESEL, subdir="old")
    _diesel_database(db_url)
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(root / "migrations")}, cwd=root
    )
    with pgshift.connect(settings, purpose="import") as target:
        plan = pgshift.plan_import(settings, "diesel", root / "old", target=target)
        assert plan.carried == (V1, V2) and plan.kept == () and plan.last_version == V2
        with pytest.raises(InputError) as refused:
            pgshift.import_migrations(plan, target=target)
        assert isinstance(refused.value, ImportUnusable)
        partial = refused.value.imported
        assert isinstance(partial, pgshift.ImportResult) and len(partial.written) == 4
        assert partial.lint_since is not None and partial.lint_since.version == V2
        assert applied_versions(db_url) == []

        _rollback(root).write_text(_rollback(root).read_text().replace(BROKEN_DOWN, FIXED_DOWN))
        plan = pgshift.plan_import(settings, "diesel", root / "old", target=target)
        assert plan.kept == (_rollback(root),) and plan.updated == ()
        result = pgshift.import_migrations(plan, target=target)
    assert result.recorded == (V1, V2) and result.kept == (_rollback(root),)
    assert isinstance(result.lint_since, pgshift.LintSince)
    assert result.lint_since.file == root / "pgshift.toml"

    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(root / "migrations")}, cwd=root
    )
    assert settings.lint_since == V2
    report = pgshift.validate(settings)
    assert report.ok and report.since == V2 and report.findings == ()
    assert {f.code for f in report.history} >= {"require-concurrent-index"}
    assert all(f.file.startswith(str(root / "migrations")) for f in report.history)
    strict = pgshift.validate(settings, since=V1)
    assert not strict.ok and strict.since == V1
    assert {f.code for f in strict.findings} >= {"require-concurrent-index"}
    assert json.loads(json.dumps([f.to_json() for f in strict.findings]))  # still plain findings
