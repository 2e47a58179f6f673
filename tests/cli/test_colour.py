"""Colour on a terminal only (issue 17, item 17): lint findings and `status` states are coloured
on a terminal, never with NO_COLOR set (https://no-color.org) and never off a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import run_cli

V1, V2 = "20250101000000", "20250102000000"
#: An SGR sequence that sets a foreground colour (30-37, 90-97, 38;...), bold or not.
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])(?:;[0-9;]*)?m")
ANY_ESCAPE = re.compile(r"\x1b\[")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """stdout is a terminal that takes colour; nothing in the environment says otherwise."""
    monkeypatch.setattr(type(sys.stdout), "isatty", lambda self: True, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("NO_COLOR", "FORCE_COLOR", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _linted(make_project: ProjectMaker) -> Path:
    make_project(migration_pair(V1, "users", "CREATE TABLE users (id int, email text);"))
    return make_project(migration_pair(V2, "index", "CREATE INDEX users_email ON users (email);"))


def test_lint_findings_are_coloured_on_a_terminal(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str], terminal: pytest.MonkeyPatch
) -> None:
    project = _linted(make_project)
    result = run_cli(capsys, project, None, "validate")
    assert result.code == 1
    assert "\x1b[1;31merror[require-concurrent-index]\x1b[0m" in result.out, result.out
    assert "\x1b[1;31m^\x1b[0m" in result.out  # the caret under the statement
    assert "\x1b[1;31m1 error(s)" in result.out


def test_no_colour_with_no_color_set(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str], terminal: pytest.MonkeyPatch
) -> None:
    terminal.setenv("NO_COLOR", "1")
    project = _linted(make_project)
    result = run_cli(capsys, project, None, "validate")
    assert result.code == 1
    assert "error[require-concurrent-index]" in result.out
    assert not ANY_ESCAPE.search(result.out), result.out


def test_no_colour_off_a_terminal(tmp_path: Path, make_project: ProjectMaker) -> None:
    """A real process whose stdout is a pipe, nothing telling it not to colour: no colour."""
    project = _linted(make_project)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "DATABASE_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "pgshift", "validate", "--dir", str(project / "migrations")],
        cwd=project,
        env={**env, "TERM": "xterm-256color"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr
    assert "error[require-concurrent-index]" in done.stdout
    assert not ANY_ESCAPE.search(done.stdout + done.stderr)


def test_status_states_are_coloured_on_a_terminal_only(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    terminal: pytest.MonkeyPatch,
) -> None:
    make_project(migration_pair(V1, "one", "CREATE TABLE one (id int);"))
    project = make_project(migration_pair(V2, "two", "CREATE TABLE two (id int);"))
    assert (
        run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--target", V1).code == 0
    )

    coloured = run_cli(capsys, project, db_url, "status").out
    assert re.search(r"\x1b\[[0-9;]*32m[^\x1b]*applied", coloured), coloured  # green
    assert re.search(r"\x1b\[[0-9;]*33m[^\x1b]*pending", coloured), coloured  # yellow

    terminal.setenv("NO_COLOR", "1")
    plain = run_cli(capsys, project, db_url, "status").out
    assert "applied" in plain and "pending" in plain
    assert not COLOUR.search(plain), plain

    terminal.delenv("NO_COLOR")
    terminal.setattr(type(sys.stdout), "isatty", lambda self: False, raising=False)
    piped = run_cli(capsys, project, db_url, "status").out
    assert "applied" in piped and not ANY_ESCAPE.search(piped), piped
