"""On a terminal `up` shows the plan and asks; only a yes applies anything."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import applied_versions, on_terminal

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "migrations"


def _run_on_terminal(project: Path, db_url: str, answer: bytes) -> tuple[int, str]:
    return on_terminal(
        [sys.executable, "-m", "pgshift", "up", "--dir", str(project / "migrations")],
        cwd=project,
        env={**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"},
        answers=[(b"[y/N]", answer)],
        timeout_s=60,
    )


@pytest.mark.parametrize(("answer", "code", "applied"), [(b"y\n", 0, 2), (b"n\n", 2, 0)])
def test_terminal_confirmation(
    tmp_path: Path, db_url: str, answer: bytes, code: int, applied: int
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    returncode, screen = _run_on_terminal(tmp_path, db_url, answer)
    assert "20250528120000" in screen and "add_user_preferences_table" in screen  # the plan
    assert "Apply 2 migration(s)? [y/N]" in screen
    assert returncode == code, screen
    assert len(applied_versions(db_url)) == applied
