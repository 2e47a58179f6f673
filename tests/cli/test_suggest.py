""" "Did you mean": a mistyped command, action, choice, option or `[tool.pgshift]` key is refused
with exit 2 and the closest known word (issue 17, item 17). No database needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.cli.main import main
from tests.support import run_cli


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["stauts"], "unknown command 'stauts'; did you mean 'status'?"),
        (["valdate"], "unknown command 'valdate'; did you mean 'validate'?"),
        (["histroy"], "unknown command 'histroy'; did you mean 'history'?"),
        (["rollback", "sfe"], "pgshift rollback: unknown command 'sfe'; did you mean 'safe'?"),
        (["server", "stpo"], "unknown command 'stpo'; did you mean 'stop'?"),
        (["create", "x", "--risk-level", "hgh"], "invalid choice 'hgh'; did you mean 'high'?"),
        (["up", "--yse"], "unrecognized arguments: --yse; did you mean '--yes' for '--yse'?"),
        (["rollback", "safe", "--cuont", "2"], "did you mean '--count' for '--cuont'?"),
        (["completion", "bsh"], "did you mean 'bash'?"),
    ],
)
def test_a_mistyped_word_names_the_closest(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err, err
    assert "Traceback" not in err


def test_a_word_like_nothing_suggests_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xyzzy"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'xyzzy'" in err and "did you mean" not in err
    assert "choose from up, status" in err  # the commands are listed instead


def test_an_unknown_config_key_names_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pgshift]\nmigration_dir = "db"\n', encoding="utf-8"
    )
    result = run_cli(capsys, tmp_path, None, "config")
    assert result.code == 2
    assert "unknown setting 'migration_dir'" in result.err
    assert "did you mean 'migrations_dir'?" in result.err
