"""pgshift in a shell pipeline and at a terminal: closed pipes, flags, help that points home.

A reader that closes the pipe (`pgshift status | head -1`) is simulated exactly: the read end
is closed before pgshift starts, so its very first write meets a broken pipe.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import applied_versions, count_events, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "migrations"


def _pgshift(
    project: Path, db_url: str | None, *args: str, closed_stdout: bool, shell_tail: str = ""
) -> subprocess.CompletedProcess[str]:
    """`python -m pgshift <args>`; with ``closed_stdout`` nobody ever reads its stdout."""
    argv = [sys.executable, "-m", "pgshift", *args, "--dir", str(project / "migrations")]
    env = dict(os.environ)
    if db_url is not None:
        env["DATABASE_URL"] = db_url
    if not closed_stdout:
        return subprocess.run(
            argv, cwd=project, env=env, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            argv, cwd=project, env=env, stdout=write, stderr=subprocess.PIPE, text=True,
            timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        os.close(write)
    return proc


def _clean(err: str) -> None:
    assert "Traceback" not in err, err
    assert "BrokenPipeError" not in err, err
    assert "this is a bug" not in err, err


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--json"),
        ("config",),
        ("config", "--json"),
        ("health",),
        ("rollback", "dry-run"),
        ("rollback", "list-backups"),
        ("validate",),
        ("up", "--help"),
    ],
)
def test_a_closed_pipe_is_no_error_and_keeps_the_exit_code(
    tmp_path: Path, db_url: str, args: tuple[str, ...]
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    assert _pgshift(tmp_path, db_url, "up", "--yes", closed_stdout=False).returncode == 0
    normal = _pgshift(tmp_path, db_url, *args, closed_stdout=False)
    closed = _pgshift(tmp_path, db_url, *args, closed_stdout=True)
    _clean(closed.stderr)
    assert closed.returncode == normal.returncode, closed.stderr


def test_up_into_a_closed_pipe_runs_to_its_end(tmp_path: Path, db_url: str) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    closed = _pgshift(tmp_path, db_url, "up", "--yes", closed_stdout=True)
    _clean(closed.stderr)
    assert closed.returncode == 0, closed.stderr
    assert len(applied_versions(db_url)) == len(list(EXAMPLES.glob("*[0-9]_*[a-z].sql"))) - len(
        list(EXAMPLES.glob("*_rollback.sql"))
    )
    assert count_events(db_url, "run_started") == count_events(db_url, "run_finished") == 1


def test_a_failing_up_into_a_closed_pipe_keeps_its_exit_code(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(
        {
            **pair("20250101000000", "good", "CREATE TABLE good (id int);"),
            **pair("20250102000000", "bad", "INSERT INTO nowhere VALUES (1);"),
        }
    )
    closed = _pgshift(project, db_url, "up", "--yes", "--skip-backup", closed_stdout=True)
    _clean(closed.stderr)
    assert closed.returncode == 1
    assert "nowhere" in closed.stderr  # the error still reaches stderr
    assert applied_versions(db_url) == ["20250101000000"]
    assert count_events(db_url, "run_failed") == 1


def test_up_piped_into_head_goes_on_to_the_end(tmp_path: Path, db_url: str) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    command = (
        f"{sys.executable} -m pgshift up --yes --dir {tmp_path / 'migrations'} -v | head -1;"
        " exit ${PIPESTATUS[0]}"
    )
    proc = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env={**os.environ, "DATABASE_URL": db_url},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    _clean(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert count_events(db_url, "run_finished") == 1


def test_prefixes_of_flags_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, tmp_path, None, "up", "--dry")
    assert result.code == 2
    assert "--dry" in result.err and "see `pgshift up --help`" in result.err


@pytest.mark.parametrize(
    ("args", "help_of"),
    [
        (("status", "--no-such-flag"), "pgshift status"),
        (("up", "--yes", "--no-such-flag"), "pgshift up"),
        (("rollback", "safe", "--no-such-flag"), "pgshift rollback safe"),
        (("rollback", "safe", "--count"), "pgshift rollback safe"),
    ],
)
def test_usage_errors_point_to_the_verbs_own_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], help_of: str
) -> None:
    result = run_cli(capsys, tmp_path, None, *args)
    assert result.code == 2
    assert f"see `{help_of} --help`" in result.err, result.err


def test_a_long_answer_reaches_a_file_whole_and_the_exit_code_is_kept(
    make_project: ProjectMaker, db_url: str, tmp_path: Path
) -> None:
    """The process ends without the interpreter's teardown (cli/main.py `leave`): what it
    wrote must still be flushed, whole, and its exit code kept."""
    files: dict[str, str] = {}
    for i in range(150):
        version = f"2025010100{i // 60:02d}{i % 60:02d}"
        files.update(pair(version, f"table {i}", f"CREATE TABLE t{i} (id int);"))
    project = make_project(files)
    answer = tmp_path / "status.json"
    argv = [sys.executable, "-m", "pgshift", "--database-url", db_url]
    with answer.open("w") as out:
        done = subprocess.run(
            [*argv, "status", "--json"], cwd=project, stdout=out, stderr=subprocess.PIPE,
            text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(answer.read_text()) > 8192  # more than one buffer's worth
    assert json.loads(answer.read_text())["pending"] == 150
    behind = subprocess.run(
        [*argv, "status", "--check"], cwd=project, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert behind.returncode == 1 and behind.stdout.startswith("not at head")
    _clean(behind.stderr)


def test_leaving_runs_the_exit_handlers_and_keeps_what_they_write() -> None:
    """cli/main.py `leave`: the exit handlers still run, their output is flushed, the code kept;
    a thread still running is waited for as a normal exit would."""
    code = (
        "import atexit, threading, time\n"
        "from pgshift.cli.main import leave\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "print('answer')\n"
        "if __import__('sys').argv[1] == 'thread':\n"
        "    threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "leave(3)\n"
    )
    for mode, expected in (("plain", "answer\nhandler ran\n"), ("thread", "thread done\n")):
        done = subprocess.run(
            [sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 3 and expected in done.stdout, (mode, done)
