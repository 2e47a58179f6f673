"""Settings precedence, validation that names the culprit, and password masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.config import describe, load_settings, mask_url
from pgshift.errors import ConfigError


def test_defaults_are_the_seed_values(tmp_path: Path) -> None:
    s = load_settings({}, {}, tmp_path)
    assert (s.pool_min, s.pool_max) == (5, 20)
    assert s.migrations_dir == tmp_path / "migrations"
    assert s.migration_timeout_ms == 300_000
    assert s.health_check_enabled is True and s.health_check_interval_ms == 30_000
    assert s.backup_enabled is True and s.backup_retention_days == 30
    assert s.database_url is None and s.sources["database_url"] == "embedded"
    assert s.sources["pool_min"] == "default"


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pgshift]\nmigration_timeout = "2 minutes"\npool_max = 30\nbackup_enabled = false\n'
        'migrations_dir = "db/migrations"\n'
    )
    sub = tmp_path / "sub"
    sub.mkdir()
    env = {"DB_MIGRATION_TIMEOUT": "1000", "DB_POOL_MIN": "2"}
    s = load_settings({"migration_timeout_ms": "5s"}, env, sub)
    assert s.project_root == tmp_path
    assert (s.migration_timeout_ms, s.sources["migration_timeout_ms"]) == (5000, "flag")
    assert (s.pool_min, s.sources["pool_min"]) == (2, "env")
    assert (s.pool_max, s.sources["pool_max"]) == (30, "pyproject.toml")
    assert s.backup_enabled is False
    assert s.migrations_dir == tmp_path / "db" / "migrations"  # file paths follow the project
    s = load_settings({}, {"DB_MIGRATIONS_DIR": "here"}, sub)
    assert s.migrations_dir == sub / "here"  # typed paths follow the shell


@pytest.mark.parametrize(
    ("env", "culprit"),
    [
        ({"DB_POOL_MIN": "five"}, "DB_POOL_MIN"),
        ({"DB_BACKUP_ENABLED": "maybe"}, "DB_BACKUP_ENABLED"),
        ({"DB_MIGRATION_TIMEOUT": "soon"}, "DB_MIGRATION_TIMEOUT"),
        ({"DB_HEALTH_CHECK_INTERVAL": "-5"}, "DB_HEALTH_CHECK_INTERVAL"),
        ({"DB_POOL_MIN": "30"}, "DB_POOL_MIN"),
    ],
)
def test_bad_value_names_the_variable(tmp_path: Path, env: dict[str, str], culprit: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, env, tmp_path)
    assert culprit in info.value.message
    assert info.value.exit_code == 2


def test_unknown_file_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pgshift.toml").write_text("pool_maximum = 3\n")
    with pytest.raises(ConfigError, match="pool_maximum"):
        load_settings({}, {}, tmp_path)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/prod", "postgresql://app:***@db:5432/prod"),
        ("postgres://app@db/prod?password=s3cret&sslmode=require",
         "postgres://app@db/prod?password=***&sslmode=require"),
        ("host=db user=app password=s3cret dbname=prod",
         "host=db user=app password=*** dbname=prod"),
        ("postgresql://app@db/prod", "postgresql://app@db/prod"),
    ],
)  # fmt: skip
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_describe_never_shows_the_password(tmp_path: Path) -> None:
    s = load_settings({}, {"DATABASE_URL": "postgresql://app:s3cret@db/prod"}, tmp_path)
    rows = describe(s)
    assert all("s3cret" not in value for _, value, _ in rows)
    assert ("DATABASE_URL", "postgresql://app:***@db/prod", "env") in rows


def test_database_url_precedence(tmp_path: Path) -> None:
    (tmp_path / "pgshift.toml").write_text('database_url = "postgresql://file/db"\n')
    flag: dict[str, str | None] = {"database_url": "postgresql://flag/db"}
    env = {"DATABASE_URL": "postgresql://env/db", "PGHOST": "pg"}

    def url(flags: dict[str, str | None], env: dict[str, str]) -> tuple[str | None, str]:
        s = load_settings(flags, env, tmp_path)
        return s.database_url, s.sources["database_url"]

    assert url(flag, env) == ("postgresql://flag/db", "flag")
    assert url({}, env) == ("postgresql://env/db", "env")
    assert url({}, {"PGHOST": "pg"}) == ("postgresql://file/db", "pgshift.toml")
    (tmp_path / "pgshift.toml").unlink()
    assert url({"database_url": ""}, {"DATABASE_URL": "", "PGHOST": "pg"}) == (
        "",
        "env (PG* variables)",
    )
    assert url({}, {"PGHOST": ""}) == (None, "embedded")


def test_an_empty_variable_is_unset_and_file_values_are_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.pgshift]\npool_min = 3\nbackup_enabled = true\nhealth_check_enabled = false\n"
    )
    s = load_settings({"pool_max": None}, {"DB_POOL_MIN": "", "DB_BACKUP_ENABLED": ""}, tmp_path)
    assert (s.pool_min, s.sources["pool_min"]) == (3, "pyproject.toml")
    assert (s.backup_enabled, s.health_check_enabled) == (True, False)
    assert s.sources["pool_max"] == "default"


def test_bad_file_value_and_bad_flag_name_their_key(tmp_path: Path) -> None:
    (tmp_path / "pgshift.toml").write_text('pool_min = "few"\n')
    with pytest.raises(ConfigError, match=r"pgshift.toml: pool_min"):
        load_settings({}, {}, tmp_path)
    (tmp_path / "pgshift.toml").unlink()
    with pytest.raises(ConfigError, match="--pool-max"):
        load_settings({"pool_max": "lots"}, {}, tmp_path)


def test_the_project_root_is_the_nearest_folder_with_a_marker(tmp_path: Path) -> None:
    from pgshift.config import find_project_root

    deep = tmp_path / "repo" / "db" / "migrations"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == (deep, None) or find_project_root(deep)[0] != deep
    (tmp_path / "repo" / ".git").mkdir()
    assert find_project_root(deep) == (tmp_path / "repo", None)
    (tmp_path / "repo" / "db" / ".pgshift").mkdir()
    assert find_project_root(deep) == (tmp_path / "repo" / "db", None)
    toml = tmp_path / "repo" / "db" / "migrations" / "pgshift.toml"
    toml.write_text("schema = 'x'\n")
    assert find_project_root(deep) == (deep, toml)
    (tmp_path / "repo" / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_project_root(tmp_path / "repo") == (tmp_path / "repo", None)  # .git still


def test_docs_url_from_env_or_file_is_an_absolute_base(tmp_path: Path) -> None:
    """Findings link `<docs_url><rule>.md`: the base must be absolute, and ends with a slash."""
    default = load_settings(env={}, cwd=tmp_path)
    assert default.docs_url == "https://github.com/pgshift/pgshift/blob/main/docs/rules/"
    assert default.sources["docs_url"] == "default"
    env = load_settings(env={"PGSHIFT_DOCS_URL": "https://intra.example.com/rules"}, cwd=tmp_path)
    assert env.docs_url == "https://intra.example.com/rules/"
    (tmp_path / "pgshift.toml").write_text('docs_url = "file:///opt/pgshift/rules/"\n')
    assert load_settings(env={}, cwd=tmp_path).docs_url == "file:///opt/pgshift/rules/"
    rows = {name: (value, source) for name, value, source in describe(env)}
    assert rows["PGSHIFT_DOCS_URL"] == ("https://intra.example.com/rules/", "env")
    for bad in ("docs/rules", "ftp://x/rules", "https://"):
        with pytest.raises(ConfigError, match="PGSHIFT_DOCS_URL"):
            load_settings(env={"PGSHIFT_DOCS_URL": bad}, cwd=tmp_path)


def test_settings_are_grouped_and_the_flat_names_are_read_only_aliases(tmp_path: Path) -> None:
    """Every knob lives in exactly one group; the former flat names read the same value."""
    import dataclasses

    from pgshift.config import GROUPS, PLACE

    s = load_settings({"lock_timeout_ms": "750"}, {"DB_BACKUP_DIR": "/srv/b"}, tmp_path)
    assert s.runner.lock_timeout_ms == 750 and s.backup.dir == Path("/srv/b")
    every_field = {
        (group, f.name) for group in GROUPS for f in dataclasses.fields(getattr(s, group))
    }
    assert sorted(every_field) == sorted(PLACE.values())  # each field placed once, none orphaned
    born_grouped = {"stop_grace_ms", "preflight_timeout_ms", "expand_warn_ms"}  # no flat alias
    assert not any(hasattr(s, flat) for flat in born_grouped)
    for flat, (group, field) in PLACE.items():
        if flat in born_grouped:
            continue
        assert getattr(s, flat) == getattr(getattr(s, group), field), flat
        with pytest.raises(AttributeError):
            setattr(s, flat, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.runner.lock_timeout_ms = 1  # type: ignore[misc]
    assert s.lock_timeout_ms == 750 and s.sources["lock_timeout_ms"] == "flag"
