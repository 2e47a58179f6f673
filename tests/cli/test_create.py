"""`pgshift create`: both files, a header the loader accepts, never an overwrite."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import pgshift
from pgshift.config import load_settings
from pgshift.errors import UsageError
from pgshift.source.loader import load_migrations
from tests.support import run_cli


def test_create_writes_a_pair_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(
        capsys,
        tmp_path,
        None,
        "create",
        "Add user preferences table!",
        "--zero-downtime",
        "--estimated-duration",
        "30 seconds",
        "--risk-level",
        "medium",
    )
    assert result.code == 0, result.err
    forward, rollback = (Path(p) for p in result.out.split())
    assert forward.parent == tmp_path / "migrations"
    assert forward.name.endswith("_add_user_preferences_table.sql")
    assert rollback.name == forward.name.replace(".sql", "_rollback.sql")
    assert rollback.read_text().splitlines()[0] == f"-- Rollback: {rollback.name}"
    (migration,) = load_migrations(tmp_path / "migrations")
    assert migration.header.zero_downtime is True
    assert migration.header.estimated_duration_ms == 30_000
    assert migration.header.risk_level == "medium"
    assert migration.header.description == "Add user preferences table!"
    version_time = datetime.strptime(migration.version, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - version_time).total_seconds()) < 120


def test_depends_on_resolves_and_unknown_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings({"migrations_dir": str(tmp_path / "migrations")}, {}, tmp_path)
    pgshift.create(settings, "create users", now=datetime(2025, 5, 27, 10, tzinfo=UTC))
    second, _ = pgshift.create(
        settings,
        "add prefs",
        depends_on=["20250527100000"],
        now=datetime(2025, 5, 28, 12, tzinfo=UTC),
    )
    assert "-- @dependencies: 20250527100000_create_users" in second.read_text()
    loaded = load_migrations(tmp_path / "migrations")
    assert [m.dependencies for m in loaded] == [(), ("20250527100000",)]
    result = run_cli(capsys, tmp_path, None, "create", "x", "--depends-on", "20990101000000")
    assert result.code == 2 and "20990101000000" in result.err


def test_create_never_overwrites(tmp_path: Path) -> None:
    settings = load_settings({"migrations_dir": str(tmp_path / "m")}, {}, tmp_path)
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    forward, rollback = pgshift.create(settings, "one", now=moment)
    forward.write_text("-- edited by hand\n")
    with pytest.raises(UsageError, match="20250101000000"):
        pgshift.create(settings, "one", now=moment)
    assert forward.read_text() == "-- edited by hand\n"
    assert rollback.exists()


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, tmp_path, None, "create", "!!!").code == 2
    bad = run_cli(capsys, tmp_path, None, "create", "x", "--estimated-duration", "soonish")
    assert bad.code == 2 and "--estimated-duration" in bad.err
    assert run_cli(capsys, tmp_path, None, "create", "x", "--risk-level", "extreme").code == 2
    assert not (tmp_path / "migrations").exists() or not list((tmp_path / "migrations").iterdir())


def test_a_description_too_long_for_a_file_name_is_exit_2_naming_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17 finding 11: 300 characters ended in `OSError: File name too long`, exit 70."""
    from pgshift.source.naming import MAX_DESCRIPTION

    result = run_cli(capsys, tmp_path, None, "create", "x" * 300)
    assert result.code == 2, result.err
    assert f"over the limit of {MAX_DESCRIPTION}" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "migrations").exists() or not any((tmp_path / "migrations").iterdir())
    longest = run_cli(capsys, tmp_path, None, "create", "y" * MAX_DESCRIPTION)
    assert longest.code == 0, longest.err  # the longest allowed one is written and loads
    assert len(load_migrations(tmp_path / "migrations")) == 1
    settings = load_settings({"migrations_dir": str(tmp_path / "migrations")}, env={})
    with pytest.raises(UsageError, match="over the limit"):
        pgshift.create(settings, "z" * 300)
