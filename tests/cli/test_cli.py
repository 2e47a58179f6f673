"""The command line as a user meets it: exit codes, the installed command, secrets kept secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "migrations"


def test_unknown_command_and_flag_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, tmp_path, None, "frobnicate").code == 2
    result = run_cli(capsys, tmp_path, None, "status", "--no-such-flag")
    assert result.code == 2 and "--no-such-flag" in result.err


def test_config_masks_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db.example/prod")
    monkeypatch.setenv("DB_POOL_MAX", "40")
    result = run_cli(capsys, tmp_path, None, "config", "--json")
    assert result.code == 0
    data = result.json()
    assert data["DATABASE_URL"] == {
        "value": "postgresql://app:***@db.example/prod",
        "source": "env",
        "group": "connection",
    }
    assert data["DB_POOL_MAX"] == {"value": 40, "source": "env", "group": "connection"}
    assert data["DB_BACKUP_ENABLED"] == {"value": True, "source": "default", "group": "backup"}
    assert data["DB_MIGRATION_TIMEOUT"]["value"] == 300000  # JSON's own types
    assert data["PGSHIFT_STOP_GRACE"] == {"value": 10000, "source": "default", "group": "runner"}
    assert "hunter2" not in result.out + result.err


def test_config_shows_the_settings_by_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each group is a table under its name, holding exactly that group's settings."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = run_cli(capsys, tmp_path, None, "config")
    assert result.code == 0
    lines = result.out.splitlines()
    groups = ("connection", "project", "runner", "backup", "health", "backfill", "expand", "lint")
    heads = [lines.index(f"[{group}]") for group in groups]
    assert heads == sorted(heads)  # in this order
    ends = [*heads[1:], len(lines)]
    section = {g: lines[h:end] for g, h, end in zip(groups, heads, ends, strict=True)}
    assert any("PGSHIFT_LOCK_TIMEOUT" in line for line in section["runner"])
    assert any("DB_BACKUP_DIR" in line for line in section["backup"])
    assert any("PGSHIFT_BACKFILL_MAX_LAG" in line for line in section["backfill"])
    assert any("PGSHIFT_EXPAND_WARN" in line for line in section["expand"])
    assert not any("DB_BACKUP_DIR" in line for line in section["runner"])
    data = run_cli(capsys, tmp_path, None, "config", "--json").json()
    assert {entry["group"] for entry in data.values()} == set(groups)


def test_bad_setting_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_MIGRATION_TIMEOUT", "forever")
    result = run_cli(capsys, tmp_path, None, "status")
    assert result.code == 2 and "DB_MIGRATION_TIMEOUT" in result.err


def test_unreachable_database_exits_3_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    url = "postgresql://app:hunter2@127.0.0.1:1/prod?connect_timeout=2"
    for args in (("status",), ("up", "--yes"), ("up", "--yes", "-v", "--debug")):
        result = run_cli(capsys, tmp_path, url, *args)
        assert result.code == 3, result.err
        assert "hunter2" not in result.out + result.err
        assert "cannot connect" in result.err


def test_installed_command_runs_the_examples(tmp_path: Path, db_url: str) -> None:
    exe = shutil.which("pgshift")
    assert exe is not None, "the pgshift console script is not installed"
    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    env = {**os.environ, "DATABASE_URL": db_url}
    up = subprocess.run(
        [exe, "up", "--yes"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert "20250528120000_add_user_preferences_table" in up.stdout
    status = subprocess.run(
        [sys.executable, "-m", "pgshift", "status"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0
    assert status.stdout.count("applied") >= 3  # title line + two rows


def test_unexpected_database_refusal_is_an_error_not_a_bug(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support import query

    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    query(db_url, "CREATE SCHEMA pgshift; CREATE TABLE pgshift.applied (something_else int)")
    result = run_cli(capsys, tmp_path, db_url, "status")
    assert result.code == 1, result.err
    assert "the database refused" in result.err and "Traceback" not in result.err


def test_the_examples_pass_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    result = run_cli(capsys, tmp_path, None, "validate", "--json")
    assert result.code == 0, result.out
    report = result.json()
    assert report["ok"] is True
    assert [f for f in report["findings"] if f["severity"] == "error"] == []


@pytest.mark.parametrize("password", ["on", "ghost_app"])
def test_a_password_found_inside_words_or_the_user_name_is_not_masked_there(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str], password: str
) -> None:
    """Issue 17 finding 5: the password `on` turned "connection" into "c***necti***", and a
    password equal to the user name hid the user."""
    from psycopg.conninfo import make_conninfo

    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    url = make_conninfo(db_url, user="ghost_app", password=password)
    result = run_cli(capsys, tmp_path, url, "status")
    assert result.code == 3, result.err
    assert "connection to server on socket" in result.err
    assert 'role "ghost_app" does not exist' in result.err
    assert "***" not in result.err  # the message quotes no password: nothing to hide
    shown = run_cli(capsys, tmp_path, url, "config", "--json").json()["DATABASE_URL"]["value"]
    assert "password=***" in shown and "user=ghost_app" in shown
