"""Remembered answers of commands with nothing to do (ops/uptodate.py), on the real servers:
a no-op `up`, `status --check` and `wait` answered from a stat of the folder and one digest
the server computes, and never when the files, the history or the code changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import applied_by_library, applied_versions, modules_loaded, run_cli, tables

import pgshift
from pgshift import project_files
from pgshift.source import folder_stat

V1, V2 = "20250101000000", "20250102000000"


def _project(make_project: ProjectMaker) -> Path:
    return make_project(
        {
            **pair(V1, "one", "CREATE TABLE one (id int);"),
            **pair(V2, "two", "CREATE TABLE two (id int);"),
        }
    )


@pytest.fixture
def settled_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (the default waits two seconds after the last change;
    one test below keeps it)."""
    monkeypatch.setattr(folder_stat, "SETTLE_NS", 0)


def _applied(make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]) -> Path:
    """The project, applied, its files' newest change a moment in the past."""
    project = _project(make_project)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    time.sleep(0.01)
    return project


def _files_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, reading the migration files is a failure of the test."""

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the migration files were read")

    monkeypatch.setattr(project_files, "read_project", refuse)


def _forget_v2(db_url: str) -> None:
    """Another hand changes the history: V2 is no longer applied."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE two")
        conn.execute("DELETE FROM pgshift.applied WHERE version = %s", (V2,))


@pytest.mark.usefixtures("settled_now")
def test_a_noop_up_is_answered_without_the_files_until_history_changes(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _applied(make_project, db_url, capsys)
    noop = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert noop.code == 0 and "up to date" in noop.out  # decided in full, and remembered
    with monkeypatch.context() as patched:
        _files_unread(patched)
        quick = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
        assert (quick.code, quick.out) == (noop.code, noop.out)
        told = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "-v")
        assert "answered without reading them" in told.err
        as_json = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--json")
        assert as_json.code == 0 and as_json.json()["steps"] == []
    _forget_v2(db_url)
    again = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert again.code == 0, again.err
    assert applied_versions(db_url) == [V1, V2] and "two" in tables(db_url)


@pytest.mark.usefixtures("settled_now")
def test_an_edit_keeping_size_and_modification_time_is_still_drift(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _applied(make_project, db_url, capsys)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    path = project / "migrations" / f"{V1}_one.sql"
    info = path.stat()
    time.sleep(0.01)
    path.write_text(path.read_text().replace("TABLE one", "TABLE eno"))  # same size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    drift = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert drift.code == 4 and f"{V1}_one" in drift.err


@pytest.mark.usefixtures("settled_now")
def test_status_check_and_wait_remember_the_head(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _applied(make_project, db_url, capsys)
    full = run_cli(capsys, project, db_url, "status", "--check")
    assert full.code == 0 and V2 in full.out
    with monkeypatch.context() as patched:
        _files_unread(patched)
        assert run_cli(capsys, project, db_url, "status", "--check").out == full.out
        waited = run_cli(capsys, project, db_url, "wait", "--timeout", "5s")
        assert waited.code == 0 and f"at head ({V2})" in waited.out
    _forget_v2(db_url)
    behind = run_cli(capsys, project, db_url, "status", "--check")
    assert behind.code == 1 and f"{V2}_two: pending" in behind.out


@pytest.mark.usefixtures("settled_now")
def test_the_library_answers_up_and_at_head_the_same_way(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = applied_by_library(_project(make_project), db_url, monkeypatch, 2)
    assert pgshift.up(settings).steps == () and pgshift.at_head(settings).at_head
    _files_unread(monkeypatch)
    assert pgshift.up(settings) == pgshift.RunResult("", ())
    assert pgshift.at_head(settings) == pgshift.HeadReport(V2, ())
    _forget_v2(db_url)
    with pytest.raises(AssertionError, match="files were read"):
        pgshift.up(settings)  # history changed: decided in full again


def test_a_folder_changed_in_the_last_seconds_is_not_remembered(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file written twice within one tick of the file system's clock keeps its times: only
    a folder whose newest change is older than SETTLE_NS may be remembered."""
    project = _project(make_project)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    assert not (project / ".pgshift" / "cache" / "verdicts.json").exists()


#: What a remembered answer needs none of.
UNNEEDED = ("psycopg", "pglast", "pgshift.source.loader", "pgshift.plan")


def test_the_command_answers_without_the_driver_the_loader_or_the_planner(
    make_project: ProjectMaker, db_url: str
) -> None:
    """As a real process with the real settling time: a remembered no-op `up` and `status
    --check` import neither psycopg nor the files' loader nor the planner."""
    project = _project(make_project)

    def run(*args: str) -> dict[str, object]:
        return modules_loaded(project, db_url, UNNEEDED, *args)

    assert run("up", "--yes", "-q")["code"] == 0
    time.sleep(folder_stat.SETTLE_NS / 1e9 + 0.1)
    for args in (("up", "--yes", "-q"), ("status", "--check")):
        assert run(*args)["code"] == 0  # decided in full, and remembered
        assert run(*args) == {"code": 0, "loaded": []}, args


@pytest.mark.usefixtures("settled_now")
def test_a_cache_that_cannot_be_written_only_costs_the_quick_answer(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read-only image or a `.pgshift` that is not a folder: every answer is decided in full,
    and nothing fails."""
    project = _project(make_project)
    (project / ".pgshift").write_text("not a folder")
    for _ in range(2):
        done = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
        assert done.code == 0, done.err
        assert run_cli(capsys, project, db_url, "status", "--check").code == 0
    assert applied_versions(db_url) == [V1, V2]
    assert (project / ".pgshift").read_text() == "not a folder"
