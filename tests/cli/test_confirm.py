"""On a terminal `up` shows the plan and asks; only a yes applies anything."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import applied_versions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "migrations"


def _run_on_terminal(project: Path, db_url: str, answer: bytes) -> tuple[int, str]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgshift", "up", "--dir", str(project / "migrations")],
        cwd=project,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"},
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        if not answered and b"[y/N]" in screen:
            os.write(leader, answer)
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(leader)
    return proc.wait(timeout=30), screen.decode(errors="replace")


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
