"""What `status`, the `up` plan and `rollback list-backups` show, at any terminal width.

Versions and backup ids are what people copy into `rollback to-version` and `rollback restore`:
they are never cut, at 60 columns either. A migration being applied right now is marked running,
whether it runs in one transaction (no progress row exists) or outside one.
"""

from __future__ import annotations

import re
import signal
import sys
import time

import pytest

from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import query, run_cli, spawn_cli

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
LONG = "add a rather long description of what this change does to the tables"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Make pgshift believe stdout is a terminal (rich tables), its width from COLUMNS."""
    monkeypatch.setattr(type(sys.stdout), "isatty", lambda self: True, raising=False)
    return monkeypatch


def _three(make_project: ProjectMaker) -> ProjectMaker:
    make_project(
        {
            **pair(V1, LONG, "CREATE TABLE one (id int);"),
            **pair(V2, LONG, "CREATE TABLE two (id int);"),
            **pair(V3, LONG, "CREATE TABLE three (id int);"),
        }
    )
    return make_project


@pytest.mark.parametrize("columns", ["60", "80"])
def test_versions_and_backup_ids_are_never_cut(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    terminal: pytest.MonkeyPatch,
    columns: str,
) -> None:
    terminal.setenv("COLUMNS", columns)
    project = _three(make_project).root
    plan = run_cli(capsys, project, db_url, "up", "--dry-run")
    assert plan.code == 0, plan.err
    text = ANSI.sub("", plan.out)
    for version in (V1, V2, V3):
        assert version in text, text
    assert run_cli(capsys, project, db_url, "up", "--yes", "--target", V1).code == 0
    status = ANSI.sub("", run_cli(capsys, project, db_url, "status").out)
    for version in (V1, V2, V3):
        assert version in status, status
    backups = run_cli(capsys, project, db_url, "rollback", "list-backups", "--json").json()
    listed = ANSI.sub("", run_cli(capsys, project, db_url, "rollback", "list-backups").out)
    for backup in backups["backups"]:
        assert backup["id"] in listed, listed
    assert "…" not in status.replace("description", "")  # nothing that matters was cut


@pytest.mark.parametrize("columns", [60, 80])
def test_tables_stay_readable_on_a_narrow_terminal(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    terminal: pytest.MonkeyPatch,
    columns: int,
) -> None:
    """Issue 17 finding 7: at 60-80 columns five of list-backups' seven columns collapsed to
    nothing and dates wrapped over eight lines. Every cell is now whole on one line."""
    terminal.setenv("COLUMNS", str(columns))
    project = _three(make_project).root
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    assert run_cli(capsys, project, db_url, "backup").code == 0
    backups = run_cli(capsys, project, db_url, "rollback", "list-backups", "--json").json()
    listed = ANSI.sub("", run_cli(capsys, project, db_url, "rollback", "list-backups").out)
    lines = listed.splitlines()
    assert max(len(line) for line in lines) <= columns, listed
    for backup in backups["backups"]:
        taken = backup["created_at"][:19].replace("T", " ")
        for value in (backup["id"], taken, backup["reason"], backup["database"],
                      backup["sha256"][:12], (backup["versions"] or ["none"])[-1]):  # fmt: skip
            assert any(value in line for line in lines), (value, listed)
    status = ANSI.sub("", run_cli(capsys, project, db_url, "status").out)
    assert max(len(line) for line in status.splitlines()) <= columns + len(LONG), status
    for version in (V1, V2, V3):
        assert version in status, status
    slug = LONG.replace(" ", "_")
    assert any(slug in line for line in status.splitlines())  # whole, not folded


def test_a_wide_terminal_still_gets_a_table(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    terminal: pytest.MonkeyPatch,
) -> None:
    terminal.setenv("COLUMNS", "200")
    project = _three(make_project).root
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    listed = ANSI.sub("", run_cli(capsys, project, db_url, "rollback", "list-backups").out)
    assert "┃" in listed and "taken at" in listed


def _wait_until_running(db_url: str, proc: object) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if query(
            db_url,
            "SELECT 1 FROM pg_stat_activity WHERE state = 'active'"
            " AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
        ):
            return
        time.sleep(0.05)
    pytest.fail("the slow migration never started")


@pytest.mark.parametrize("transaction", [True, False], ids=["transactional", "outside"])
def test_a_migration_being_applied_is_shown_running(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str], transaction: bool
) -> None:
    extra = () if transaction else ("@transaction: false",)
    project = make_project(
        {
            **pair(V1, "first", "CREATE TABLE first (id int);"),
            **pair(V2, "slow", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);",
                   extra_header=extra),
        }
    )  # fmt: skip
    proc = spawn_cli(project, db_url, "up", "--yes", "--skip-backup")
    try:
        _wait_until_running(db_url, proc)
        rows = {r["version"]: r for r in run_cli(capsys, project, db_url, "status", "--json")
                .json()["migrations"]}  # fmt: skip
        assert rows[V2]["running"] is True and rows[V2]["state"] == "pending"
        assert rows[V1]["running"] is False
        text = run_cli(capsys, project, db_url, "status").out
        assert "pending (running)" in text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    after = run_cli(capsys, project, db_url, "status", "--json").json()
    assert not any(r["running"] for r in after["migrations"])


def test_the_summary_counts_failed_apart_from_pending(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "good", "CREATE TABLE good (id int);"),
            **pair(V2, "bad", "INSERT INTO nowhere VALUES (1);"),
            **pair(V3, "later", "CREATE TABLE later (id int);"),
        }
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 1
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert (status["applied"], status["pending"], status["failed"]) == (1, 1, 1)
    text = run_cli(capsys, project, db_url, "status").out
    assert "1 applied, 1 pending, 1 failed" in text


def test_an_out_of_order_migration_is_noted_in_the_plan(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "first", "CREATE TABLE first (id int);"),
            **pair(V3, "third", "CREATE TABLE third (id int);"),
        }
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    make_project(pair(V2, "second, merged late", "CREATE TABLE second (id int);"))
    dry = run_cli(capsys, project, db_url, "up", "--dry-run")
    assert f"out of order: older than applied {V3}" in dry.out
    steps = run_cli(capsys, project, db_url, "up", "--dry-run", "--json").json()["steps"]
    assert [(s["version"], s["out_of_order"]) for s in steps] == [(V2, True)]
    applied = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert applied.code == 0 and "out of order" in applied.out


def test_up_dry_run_shows_the_lint_findings_up_prints(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query(db_url, "CREATE TABLE items (id int)")
    project = make_project(pair(V1, "index items", "CREATE INDEX items_idx ON items (id);"))
    dry = run_cli(capsys, project, db_url, "up", "--dry-run")
    assert dry.code == 0
    assert "lint:" in dry.err and "items_idx" in dry.err + dry.out
    findings = run_cli(capsys, project, db_url, "up", "--dry-run", "--json").json()["findings"]
    assert findings and all(set(f) >= {"code", "file", "line", "message"} for f in findings)


def test_health_count_without_watch_is_refused(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project({})
    result = run_cli(capsys, project, None, "health", "--count", "2")
    assert result.code == 2
    assert "--count" in result.err and "--watch" in result.err


def test_a_duplicate_version_shows_both_files(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17 finding 15: `status` showed one file for a version two files use."""
    project = make_project({**pair(V1, "one", "SELECT 1;"), **pair(V1, "other", "SELECT 2;")})
    text = run_cli(capsys, project, db_url, "status")
    assert text.code == 0, text.err
    (row,) = [line for line in text.out.splitlines() if line.startswith(V1)]
    assert "one" in row and f"{V1}_other.sql" in row and "(duplicate version)" in row
    data = run_cli(capsys, project, db_url, "status", "--json").json()
    (migration,) = data["migrations"]
    assert migration["state"] == "pending"  # the documented states keep their meaning
    assert migration["duplicates"] == [f"{V1}_other.sql"]
    assert any("duplicate version" in p["message"] for p in data["problems"])
