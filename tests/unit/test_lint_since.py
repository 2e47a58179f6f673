"""`lint_since` written into the project's config (ops/lint_since.py): one line changed, the rest
of the file kept byte for byte, proven with tomllib; read back by config.load_settings."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pgshift.config import load_settings
from pgshift.errors import ConfigError
from pgshift.ops.lint_since import set_key, write_lint_since

V1, V2 = "20240101120000", "20240301120000"

PYPROJECT = """\
# The project's own settings come first.
[project]
name = "app"  # a comment
dependencies = ["psycopg>=3.2"]

[tool.pgshift]
# where the files live
migrations_dir = "db/pgshift"

[tool.ruff]
line-length = 100
"""


def test_a_new_key_goes_under_the_table_and_nothing_else_changes() -> None:
    new = set_key(PYPROJECT, ("tool", "pgshift"), V1)
    assert new == PYPROJECT.replace("[tool.pgshift]\n", f'[tool.pgshift]\nlint_since = "{V1}"\n')
    assert tomllib.loads(new)["tool"]["ruff"] == {"line-length": 100}


def test_an_existing_key_is_replaced_in_place_crlf_kept() -> None:
    text = f'lint_since = "{V1}"\r\nschema = "app"\r\n'
    assert set_key(text, (), V2) == f'lint_since = "{V2}"\r\nschema = "app"\r\n'


def test_top_level_keys_go_before_the_first_table() -> None:
    text = 'schema = "app"\n\n[tool.other]\nx = 1\n'
    new = set_key(text, (), V1)
    assert tomllib.loads(new) == {"schema": "app", "lint_since": V1, "tool": {"other": {"x": 1}}}


def test_a_missing_table_is_added_at_the_end() -> None:
    text = '[project]\nname = "app"'  # no final newline
    new = set_key(text, ("tool", "pgshift"), V1)
    assert new == f'[project]\nname = "app"\n\n[tool.pgshift]\nlint_since = "{V1}"\n'


def test_an_edit_that_would_change_more_is_refused() -> None:
    """Settings in a dotted key: the line edit cannot place the key; tomllib proves it."""
    text = 'tool.pgshift.schema = "app"\n'
    with pytest.raises(ValueError, match="more than that key"):
        set_key(text, ("tool", "pgshift"), V1)


def test_write_lint_since_creates_pgshift_toml_and_never_lowers_it(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    first = write_lint_since(tmp_path, V2)
    assert first.file == tmp_path / "pgshift.toml" and first.version == V2
    assert (tmp_path / "pgshift.toml").read_text() == f'lint_since = "{V2}"\n'
    again = write_lint_since(tmp_path, V1)  # an older history: the later value stands
    assert again.version == V2 and again.problem is None
    settings = load_settings({}, {}, cwd=tmp_path)
    assert settings.lint_since == V2 and settings.sources["lint_since"] == "pgshift.toml"
    assert settings.project_root == tmp_path


def test_write_lint_since_uses_the_pyproject_table_the_project_reads(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "pyproject.toml").chmod(0o640)
    done = write_lint_since(tmp_path, V1)
    assert done.file == tmp_path / "pyproject.toml" and not (tmp_path / "pgshift.toml").exists()
    assert (tmp_path / "pyproject.toml").stat().st_mode & 0o777 == 0o640
    assert load_settings({}, {}, cwd=tmp_path).lint_since == V1
    assert "# where the files live" in (tmp_path / "pyproject.toml").read_text()


def test_a_file_it_cannot_edit_safely_is_left_alone_and_said(tmp_path: Path) -> None:
    text = 'tool.pgshift.schema = "app"\n'
    (tmp_path / "pyproject.toml").write_text(text)
    done = write_lint_since(tmp_path, V1)
    assert done.file is None and done.problem is not None and "not written" in done.problem
    assert (tmp_path / "pyproject.toml").read_text() == text


def test_the_setting_from_env_and_bad_values(tmp_path: Path) -> None:
    assert load_settings({}, {"PGSHIFT_LINT_SINCE": V1}, cwd=tmp_path).lint_since == V1
    with pytest.raises(ConfigError, match=r"PGSHIFT_LINT_SINCE.*14 digits"):
        load_settings({}, {"PGSHIFT_LINT_SINCE": "2024"}, cwd=tmp_path)
