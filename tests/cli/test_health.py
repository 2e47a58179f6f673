"""`pgshift health` on the command line: exit codes, JSON shape, --watch, --serve, no secrets."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import run_cli

V1 = "20250101000000"
SECRET = "s3cr3t-pw-7731"


@pytest.fixture(autouse=True)
def calm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Latency on a loaded test machine is not what these tests are about."""
    monkeypatch.setenv("PGSHIFT_HEALTH_LATENCY_WARN", "10s")
    monkeypatch.setenv("PGSHIFT_HEALTH_LATENCY_CRIT", "20s")


def with_password(db_url: str) -> str:
    """The same database with a password in the URL (the test servers trust, so it is unused)."""
    assert "postgres@" in db_url
    return db_url.replace("postgres@", f"postgres:{SECRET}@", 1)


def test_healthy_database_exits_0_with_the_spec_json_shape(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    project = make_project(pair(V1, "base", "CREATE TABLE base (a int);"))
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    result = run_cli(capsys, project, with_password(db_url), "health", "--json")
    assert result.code == 0, result.out + result.err
    data = result.json()
    assert data["status"] == "ok" and data["exit_code"] == 0
    for check in data["checks"]:
        assert {"name", "status", "detail"} <= set(check)
        assert check["status"] == "ok"
    assert SECRET not in result.out + result.err


def test_pending_migration_is_a_warning_exit_1_in_the_table(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "base", "CREATE TABLE base (a int);"))
    result = run_cli(capsys, project, with_password(db_url), "health")
    assert result.code == 1, result.out + result.err
    assert "health: warning (exit 1)" in result.out
    line = next(x for x in result.out.splitlines() if "pending_migrations" in x)
    assert line.startswith("WARNING") and f"1 pending: {V1}" in line
    assert "no backup yet" in result.out  # backups enabled by default, none taken
    assert SECRET not in result.out + result.err


def test_unreachable_database_is_critical_exit_2_without_the_password(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project({})
    url = f"postgresql://someone:{SECRET}@127.0.0.1:1/nothing"
    result = run_cli(capsys, project, url, "health", "--json")
    assert result.code == 2
    data = result.json()
    checks = {c["name"]: c["status"] for c in data["checks"]}
    assert checks["connection"] == "critical"
    assert checks["blocked_sessions"] == "unknown"
    assert SECRET not in result.out + result.err
    text = run_cli(capsys, project, url, "health")
    assert text.code == 2 and "cannot connect" in text.out
    assert SECRET not in text.out + text.err


def test_bad_threshold_is_unknown_exit_3(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGSHIFT_HEALTH_BLOCKED_WARN", "soon")
    result = run_cli(capsys, make_project({}), db_url, "health")
    assert result.code == 3
    assert "PGSHIFT_HEALTH_BLOCKED_WARN" in result.err


def test_watch_repeats_the_report_as_json_lines(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_HEALTH_CHECK_INTERVAL", "10ms")
    project = make_project({})
    result = run_cli(capsys, project, db_url, "health", "--watch", "--count", "3", "--json")
    lines = result.out.strip().splitlines()
    assert len(lines) == 3
    reports = [json.loads(line) for line in lines]
    assert {r["status"] for r in reports} == {"warning"}  # no backup yet
    assert result.code == 1
    assert len({r["generated_at"] for r in reports}) == 3


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.1):
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    raise AssertionError("no line from the server in time")


def test_serve_is_a_real_http_endpoint_on_loopback(make_project: ProjectMaker, db_url: str) -> None:
    project = make_project({})
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "pgshift", "health", "--serve", ":0",
            "--dir", str(project / "migrations"), "--database-url", with_password(db_url),
        ],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DB_POOL_MIN": "1", "DB_POOL_MAX": "2"},
    )  # fmt: skip
    try:
        line = _read_line(proc, 60)
        assert line.startswith("serving http://127.0.0.1:"), line
        base = line.split()[1].rsplit("/", 1)[0]
        with urllib.request.urlopen(base + "/health", timeout=30) as response:  # noqa: S310
            status, body = response.status, response.read().decode()
        with urllib.request.urlopen(base + "/metrics", timeout=30) as response:  # noqa: S310
            metrics = response.read().decode()
        assert status == 200
        assert json.loads(body)["status"] == "warning"
        assert "pgshift_health_status 1" in metrics
        assert 'pgshift_health_check_status{check="pool"} 0' in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert SECRET not in body + metrics + out + err
