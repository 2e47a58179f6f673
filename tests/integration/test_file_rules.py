"""SPEC 1's file rules for `up` and the read-only commands (issue 9 item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker, migration_name, migration_text, rollback_name
from tests.plugins.project import migration_pair as pair
from tests.support import applied_versions, run_cli

from pgshift.config import DEFAULT_DOCS_URL

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules"


def test_a_pending_migration_without_a_rollback_is_refused_with_the_two_ways_on(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {migration_name(V1, "one way"): migration_text(V1, "one way", "SELECT 1;")}
    )
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 2
    assert f"migration {V1}_one_way has no way back" in result.err
    assert rollback_name(V1, "one way") in result.err
    assert "fix the rollback file" in result.err and "@lint-ignore: missing-rollback" in result.err
    assert applied_versions(db_url) == []


def test_a_migration_marked_irreversible_is_applied_with_a_warning(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = migration_text(
        V1, "one way", "SELECT 1;", extra_header=["@lint-ignore: missing-rollback"]
    )
    project = make_project({migration_name(V1, "one way"): text})
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 0, result.err
    assert "warning[irreversible]" in result.err
    _links_a_page(result.err, "irreversible")
    assert applied_versions(db_url) == [V1]


def _links_a_page(output: str, code: str) -> None:
    """The finding links its rule's page, and that page exists (no dead docs link)."""
    assert f"docs: {DEFAULT_DOCS_URL}{code}.md" in output, output
    assert (DOCS / f"{code}.md").is_file()


def test_a_pending_rollback_that_does_not_parse_is_refused_naming_the_migration(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "broken back", "SELECT 1;", rollback_sql="DROPP TABLE x;"))
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 2
    assert f"the way back of migration {V1}_broken_back is broken" in result.err
    assert "@lint-ignore: missing-rollback" in result.err
    assert applied_versions(db_url) == []


def test_an_applied_migrations_broken_rollback_warns_up_and_refuses_only_its_rollback(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        pair(V1, "old", "CREATE TABLE old_t (id int);", rollback_sql="DROP TABLE old_t;")
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    make_project(
        {rollback_name(V1, "old"): f"-- Rollback: {rollback_name(V1, 'old')}\nALTERR x;\n"}
    )
    make_project(pair(V2, "new", "CREATE TABLE new_t (id int);", rollback_sql="DROP TABLE new_t;"))
    up = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert up.code == 0, up.err
    assert rollback_name(V1, "old") in up.err and "warning[applied-file-problem]" in up.err
    _links_a_page(up.err, "applied-file-problem")
    assert applied_versions(db_url) == [V1, V2]
    validate = run_cli(capsys, project, None, "validate")
    assert validate.code == 1 and rollback_name(V1, "old") in validate.out + validate.err
    assert run_cli(capsys, project, db_url, "rollback", "safe", "--yes", "--skip-backup").code == 0
    assert applied_versions(db_url) == [V1]
    refused = run_cli(capsys, project, db_url, "rollback", "safe", "--yes", "--skip-backup")
    assert refused.code == 2 and rollback_name(V1, "old") in refused.err


def test_status_shows_what_it_can_and_lists_the_problems(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        pair(V1, "fine", "SELECT 1;")
        | pair(V2, "risky", "SELECT 1;", extra_header=["@risk-level: extreme"])
        | {
            rollback_name(
                V3, "deleted"
            ): f"-- Rollback: {rollback_name(V3, 'deleted')}\nSELECT 1;\n"
        }
    )
    text = run_cli(capsys, project, db_url, "status")
    assert text.code == 0, text.err
    assert V1 in text.out and V2 in text.out
    assert "extreme" in text.out and rollback_name(V3, "deleted") in text.out
    data = run_cli(capsys, project, db_url, "status", "--json").json()
    assert {m["version"] for m in data["migrations"]} == {V1, V2}
    assert len(data["problems"]) >= 2
    assert run_cli(capsys, project, None, "rollback", "list-backups").code == 0
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 2
