"""`pgshift health` on the command line: exit codes, JSON shape, --watch, --serve, no secrets."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import pgshift
from pgshift.cli.main import main
from pgshift.serve import is_loopback, read_token
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


def _no_database_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PGSERVICE", raising=False)


def test_health_in_a_folder_with_no_project_is_unknown_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, finding 8: it used to make and start an embedded server there."""
    _no_database_named(monkeypatch)
    folder = tmp_path / "not-a-project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    code = main(["health"])
    captured = capsys.readouterr()
    assert code == 3, captured.out + captured.err
    assert "health: unknown (exit 3)" in captured.out
    assert "no database is configured" in captured.out and "no pgshift project" in captured.out
    assert main(["health", "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "unknown" and data["exit_code"] == 3
    assert {c["status"] for c in data["checks"]} == {"unknown"}
    # The endpoint refuses too, rather than start a server to report on.
    assert main(["health", "--serve", "127.0.0.1:0"]) == 3
    assert "no database is configured" in capsys.readouterr().err
    assert list(folder.iterdir()) == []  # no .pgshift/, nothing at all

    api_report = pgshift.health(pgshift.load_settings(cwd=folder))
    assert api_report.status == "unknown" and api_report.exit_code == 3
    assert list(folder.iterdir()) == []


# -- --serve beyond loopback: a bearer token, from a file or the environment ------------------

TOKEN = "tok-5b1e9c0d2a7f4e3b8c6d"


def test_serve_beyond_loopback_without_a_token_is_refused_exit_2(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGSHIFT_HEALTH_TOKEN", raising=False)
    project = make_project({})
    result = run_cli(capsys, project, db_url, "health", "--serve", "0.0.0.0:0")
    assert result.code == 2
    assert "listens beyond loopback" in result.err and "--token-file" in result.err
    assert "PGSHIFT_HEALTH_TOKEN" in result.err
    short = project / "short-token"
    short.write_text("abc\n")
    result = run_cli(
        capsys, project, db_url, "health", "--serve", "0.0.0.0:0", "--token-file", str(short)
    )
    assert result.code == 2 and "at least 16 characters" in result.err
    result = run_cli(capsys, project, db_url, "health", "--token-file", str(short))
    assert result.code == 2 and "--token-file is the token of --serve" in result.err
    with pytest.raises(pgshift.PgshiftError, match="beyond loopback") as caught:
        pgshift.health_server(pgshift.load_settings(cwd=project), "0.0.0.0:0")
    assert caught.value.exit_code == 2


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)  # noqa: S310
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serve_beyond_loopback_with_a_token_file_answers_only_the_bearer(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project({})
    token_file = project / "health-token"
    token_file.write_text(TOKEN + "\n")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "pgshift", "health", "--serve", "0.0.0.0:0",
            "--token-file", str(token_file),
            "--dir", str(project / "migrations"), "--database-url", db_url,
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
        assert line.startswith("serving http://0.0.0.0:"), line
        port = line.split()[1].rsplit("/", 1)[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"  # the test talks to this machine only
        assert _get(base + "/health")[0] == 401
        assert _get(base + "/metrics")[0] == 401
        assert _get(base + "/health", "x" * len(TOKEN))[0] == 401
        assert _get(base + "/health", TOKEN + "x")[0] == 401
        code, body = _get(base + "/health", TOKEN)
        assert code == 200 and json.loads(body)["status"] == "warning"
        code, metrics = _get(base + "/metrics", TOKEN)
        assert code == 200 and "pgshift_health_status 1" in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert TOKEN not in out + err + body + metrics


def test_serve_token_from_the_environment_also_guards_loopback(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's way: read_token as the command line does; a token on loopback is
    enforced too, and without one loopback answers everyone, as before."""
    monkeypatch.setenv("PGSHIFT_HEALTH_TOKEN", TOKEN)
    monkeypatch.setenv("DB_POOL_MIN", "1")
    monkeypatch.setenv("DB_POOL_MAX", "2")
    project = make_project({})
    settings = pgshift.load_settings({"database_url": db_url}, cwd=project)
    token = read_token(None, os.environ)
    assert token == TOKEN
    with pgshift.health_server(settings, "127.0.0.1:0", token=token) as server:
        assert _get(server.base_url + "/health")[0] == 401
        assert _get(server.base_url + "/health", TOKEN)[0] == 200
    with pgshift.health_server(settings, "127.0.0.1:0") as server:
        assert _get(server.base_url + "/health")[0] == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True),
        ("0.0.0.0", False), ("::", False), ("192.0.2.10", False),  # noqa: S104
    ],
)  # fmt: skip
def test_which_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _readme_block(after: str) -> list[str]:
    """The lines of the first ```bash block after the sentence ``after`` in README.md."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rest = readme[readme.index(after) :]
    start = rest.index("```bash\n") + len("```bash\n")
    return rest[start : rest.index("```", start)].strip().splitlines()


def test_readme_token_commands_run_as_written(make_project: ProjectMaker, db_url: str) -> None:
    """README's Health section: make a token, serve beyond loopback with it, ask with curl.

    Run as written, except for what a test must choose: a free port instead of 9187 (other
    tests run at the same time), and the test database's URL.
    """
    make_token, serve, ask = _readme_block("Beyond loopback")
    assert serve.startswith("pgshift health --serve 0.0.0.0:9187 --token-file")
    project = make_project({})

    def shell(command: str) -> subprocess.CompletedProcess[str]:
        # The docs are shell: run them as a shell would.
        return subprocess.run(command, cwd=project, shell=True, text=True, capture_output=True)  # noqa: S602

    made = shell(make_token.replace("python ", f"{sys.executable} ", 1))
    assert made.returncode == 0, made.stderr
    argv = serve.replace("pgshift ", f"{sys.executable} -m pgshift ", 1).replace(":9187", ":0")
    proc = subprocess.Popen(
        [*argv.split(), "--dir", str(project / "migrations"), "--database-url", db_url],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DB_POOL_MIN": "1", "DB_POOL_MAX": "2"},
    )
    try:
        port = _read_line(proc, 60).split()[1].rsplit("/", 1)[0].rsplit(":", 1)[1]
        answered = shell(ask.replace(":9187", f":{port}") + " -sS")
        refused = shell(f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/health")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["status"] == "warning"
    assert refused.stdout == "401"
