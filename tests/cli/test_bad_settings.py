"""Every bad setting is exit 2 naming it, never a traceback (issue 9 item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import run_cli

V1 = "20250101000000"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://localhost:notaport/app",
        "host=localhost port=notaport dbname=app",
        "mysql://me:secret@localhost/app",
        "not a url at all",  # issue 17 finding 10: was ignored, libpq fell back to a socket
        "host=localhost password='secret dbname=app",  # an unterminated quote
    ],
)
def test_a_malformed_database_url_is_exit_2_naming_it(
    url: str,
    make_project: ProjectMaker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = make_project(pair(V1, "one", "SELECT 1;"))
    monkeypatch.setenv("DATABASE_URL", url)
    for verb in (["status"], ["up", "--yes"], ["status", "--check"]):
        result = run_cli(capsys, project, None, *verb)
        assert result.code == 2, (verb, result.err)
        assert "DATABASE_URL" in result.err and "Traceback" not in result.err
        assert "secret" not in result.err
    flag = run_cli(capsys, project, url, "status")
    assert flag.code == 2 and "--database-url" in flag.err


def test_an_unusable_backup_dir_is_exit_2_naming_it(
    make_project: ProjectMaker,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    project = make_project(pair(V1, "one", "SELECT 1;"))
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    for where in ("/proc/nope", str(a_file)):
        monkeypatch.setenv("DB_BACKUP_DIR", where)
        result = run_cli(capsys, project, db_url, "backup")
        assert result.code == 2, result.err
        assert "DB_BACKUP_DIR" in result.err and where in result.err
        assert "Traceback" not in result.err


def test_a_quoted_key_value_string_is_accepted(
    make_project: ProjectMaker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "one", "SELECT 1;"))
    monkeypatch.setenv(
        "DATABASE_URL", "host = 127.0.0.1 port=1 password='a b\\' c' connect_timeout=1"
    )
    result = run_cli(capsys, project, None, "status")
    assert result.code == 3, result.err  # understood, then unreachable: not a setting problem
    assert "a b" not in result.err
