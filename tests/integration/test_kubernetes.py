"""docs/kubernetes.md's commands, run as written (SPEC 10), and `status --check` / `wait`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import applied_versions, modules_loaded, run_cli

import pgshift
from pgshift.config import load_settings
from pgshift.errors import WaitTimeout

PAGE = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"
V1, V2 = "20250101000000", "20250102000000"


def page_commands() -> list[list[str]]:
    """Every `command: [...]` of the page, in order."""
    return [json.loads(m) for m in re.findall(r"command: (\[.*\])", PAGE.read_text())]


def _spawn(project: Path, db_url: str, argv: list[str]) -> subprocess.Popen[str]:
    assert argv[0] == "pgshift"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DB_MIGRATIONS_DIR": str(project / "migrations"),
        "DB_BACKUP_ENABLED": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "pgshift", *argv[1:]],
        cwd=project, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_the_pages_job_and_init_container_commands_work(
    make_project: ProjectMaker, db_url: str
) -> None:
    job, init, probe = page_commands()
    assert job == ["pgshift", "up", "--yes"]
    assert init[:2] == ["pgshift", "wait"] and probe == ["pgshift", "status", "--check"]
    project = make_project(pair(V1, "users", "CREATE TABLE users (id int);"))

    assert _finish(_spawn(project, db_url, probe))[0] == 1
    waiting = _spawn(project, db_url, init)  # the pod starts before the Job has run
    time.sleep(1.5)
    assert waiting.poll() is None  # still waiting: nothing applied yet
    code, _, err = _finish(_spawn(project, db_url, job))
    assert code == 0, err
    code, out, err = _finish(waiting)
    assert code == 0 and "at head" in out, err
    assert _finish(_spawn(project, db_url, probe))[0] == 0
    assert applied_versions(db_url) == [V1]


def _lines_while_running(process: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` lines of a running process's stderr, read as they come."""
    import select

    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while len(lines) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if ready:
            lines.append(process.stderr.readline())
    return lines


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_wait_says_what_it_waits_for_while_it_waits(
    make_project: ProjectMaker, db_url: str, verbose: bool
) -> None:
    """Issue 17 finding 12: `wait` printed nothing until it ended (an init container's log
    stayed empty), and with -v its polls were printed as `error:`."""
    project = make_project(pair(V1, "users", "CREATE TABLE users (id int);"))
    waiting = _spawn(project, db_url, ["pgshift", "wait", *(["-v"] if verbose else [])])
    try:
        started, first, *more = _lines_while_running(waiting, 3 if verbose else 2)
        assert waiting.poll() is None  # these came while it still waits
        assert started.startswith("waiting until the database is at the project's head")
        assert first == f"not at head yet: {V1}_users: pending\n"
        if verbose:  # every poll, as plain information
            assert more == [f"still waiting after {more[0].split('after ', 1)[1]}"]
            assert more[0].startswith("still waiting after") and more[0].endswith("pending\n")
        code, _, err = _finish(_spawn(project, db_url, ["pgshift", "up", "--yes"]))
        assert code == 0, err
        code, out, err = _finish(waiting)
        assert code == 0 and "at head" in out, err
        assert "error:" not in err
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    quiet = _finish(_spawn(project, db_url, ["pgshift", "wait", "-q"]))
    assert quiet[0] == 0 and quiet[2] == ""


def test_status_check_is_one_for_pending_failed_or_drifted(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "users", "CREATE TABLE users (id int);"))
    pending = run_cli(capsys, project, db_url, "status", "--check")
    assert pending.code == 1 and f"{V1}_users: pending" in pending.out
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    at_head = run_cli(capsys, project, db_url, "status", "--check", "--json")
    assert at_head.code == 0 and at_head.json()["at_head"] is True
    make_project(pair(V1, "users", "CREATE TABLE users (id bigint);"))
    assert run_cli(capsys, project, db_url, "status", "--check").code == 1
    make_project(pair(V1, "users", "CREATE TABLE users (id int);"))
    make_project(pair(V2, "broken", "SELECT * FROM nowhere;"))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 1
    failed = run_cli(capsys, project, db_url, "status", "--check")
    assert failed.code == 1 and f"{V2}_broken: failed" in failed.out
    # The plain `status` is untouched by the flag's registration.
    assert run_cli(capsys, project, db_url, "status").code == 0


def test_wait_times_out_with_exit_5_and_the_library_raises(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "users", "CREATE TABLE users (id int);"))
    started = time.monotonic()
    result = run_cli(capsys, project, db_url, "wait", "--timeout", "1s")
    assert result.code == 5 and f"{V1}_users: pending" in result.err
    assert time.monotonic() - started < 30
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )
    assert not pgshift.at_head(settings).at_head
    with pytest.raises(WaitTimeout):
        pgshift.wait(settings, timeout_s=0.5)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    assert pgshift.wait(settings, timeout_s=5).at_head
    assert applied_versions(db_url) == [V1]
    # Read-only: neither wrote an event nor took the lock (no run was logged for them).


def page_build_steps() -> list[str]:
    """Every `RUN ...` line of the page's Dockerfile blocks, in order."""
    return re.findall(r"^RUN (.*)$", PAGE.read_text(), flags=re.MULTILINE)


def test_the_memo_the_image_build_writes_spares_the_job_any_parsing(
    make_project: ProjectMaker, db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The page's build step, run without a database, leaves a memo with which a fresh
    container's no-op `up` and `wait` parse nothing (pglast is never imported)."""
    (build,) = page_build_steps()
    assert build == "pgshift validate"
    files = {
        **pair(V1, "users", "CREATE TABLE users (id int);"),
        **pair(V2, "orders", "CREATE TABLE orders (id int);\nCREATE INDEX ON orders (id);"),
    }
    elsewhere = make_project(files)  # the database brought to head from another checkout
    assert modules_loaded(elsewhere, db_url, (), "up", "--yes", "--skip-backup")["code"] == 0
    image = tmp_path_factory.mktemp("image")  # apart from the other checkout's `.pgshift/`
    (image / "migrations").mkdir()
    for name, text in files.items():
        (image / "migrations" / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    built = subprocess.run(
        [sys.executable, "-m", "pgshift", *build.split()[1:]],
        cwd=image, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert (image / ".pgshift" / "cache" / "folder.json").is_file()
    assert not (image / ".pgshift" / "pgdata").exists()  # no database was made for it
    for argv in (["up", "--yes"], ["wait", "--timeout", "10s"]):
        assert modules_loaded(image, db_url, ("pglast",), *argv) == {"code": 0, "loaded": []}
