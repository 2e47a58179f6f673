"""Drift is about the SQL that would run (SPEC 1): checksums over the parsed statements, and
history written by older pgshift (text checksums) upgraded in place with no false drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker, migration_name, migration_text
from tests.plugins.project import migration_pair as pair
from tests.support import count_events, query, run_cli

import pgshift
from pgshift.source.loader import checksum_text

V1, V2 = "20250101000000", "20250102000000"
SQL = "CREATE TABLE widgets (id int);\n"


def _states(capsys: pytest.CaptureFixture[str], project: Path, db_url: str) -> dict[str, str]:
    result = run_cli(capsys, project, db_url, "status", "--json")
    assert result.code == 0, result.err
    return {m["version"]: m["state"] for m in result.json()["migrations"]}


def test_comments_header_whitespace_crlf_and_bom_are_not_drift(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "widgets", SQL))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    path = project / "migrations" / migration_name(V1, "widgets")
    text = migration_text(V1, "widgets", SQL, extra_header=["@lint-ignore: no-such-rule"])
    edited = "\ufeff" + text.replace("CREATE TABLE widgets", "-- why\nCREATE   TABLE widgets")
    path.write_bytes(edited.replace("\n", "\r\n").encode())
    assert _states(capsys, project, db_url) == {V1: "applied"}
    again = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert again.code == 0 and "up to date" in again.out

    path.write_text(migration_text(V1, "widgets", "CREATE TABLE widgets (id bigint);"))
    assert _states(capsys, project, db_url) == {V1: "drifted"}
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 4


def test_changed_metadata_is_information_in_status(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "widgets", SQL, extra_header=["@risk-level: low"]))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    make_project(pair(V1, "widgets", SQL, extra_header=["@risk-level: medium"]))
    (row,) = pgshift.status(pgshift.load_settings(_flags(project, db_url))).rows
    assert row.state == "applied"
    assert row.detail is not None and "@risk-level" in row.detail


def _flags(project: Path, db_url: str) -> dict[str, str | None]:
    return {"database_url": db_url, "migrations_dir": str(project / "migrations")}


def test_history_of_older_pgshift_is_upgraded_once_under_the_lock(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files = pair(V1, "widgets", SQL)
    project = make_project(files)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    forward, rollback = (files[n] for n in sorted(files, key=lambda n: "rollback" in n))
    # What pgshift 0.1 stored: checksums of the files' text.
    query(
        db_url,
        "UPDATE pgshift.applied SET checksum = %s, rollback_checksum = %s",
        [checksum_text(forward), checksum_text(rollback)],
    )
    assert _states(capsys, project, db_url) == {V1: "applied"}  # no false drift, read-only

    noop = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert noop.code == 0, noop.err
    (stored,) = query(db_url, "SELECT checksum, rollback_checksum FROM pgshift.applied")
    project_now = pgshift.load_project(pgshift.load_settings(_flags(project, db_url)))
    (m,) = project_now.migrations
    assert m.rollback is not None
    assert stored == (m.checksum, m.rollback.checksum)
    assert count_events(db_url, "checksums_upgraded") == 1

    # Now an annotation added to the applied file is no drift, and nothing is logged again.
    make_project(pair(V1, "widgets", SQL, extra_header=["@lint-ignore: missing-rollback"]))
    assert _states(capsys, project, db_url) == {V1: "applied"}
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    assert count_events(db_url, "checksums_upgraded") == 1


def test_a_row_whose_file_really_changed_is_not_upgraded(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "widgets", SQL))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    query(db_url, "UPDATE pgshift.applied SET checksum = %s", [checksum_text("other text")])
    assert _states(capsys, project, db_url) == {V1: "drifted"}
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 4
    assert count_events(db_url, "checksums_upgraded") == 0
