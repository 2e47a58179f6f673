"""Several `fleet up` processes sharing one run in a control database; one killed with SIGKILL.

Every target must end at head with every migration applied exactly once: counted through the
history rows and through a side effect each migration writes in its own transaction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import query, run_cli

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
TENANTS = [f"t{i:02d}" for i in range(8)]


@pytest.fixture
def control_url(pg_server: PgServer) -> Iterator[str]:
    name = f"control_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name)
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


def _project(make_project: ProjectMaker) -> Path:
    """Slow enough (0.3 s a migration) that a worker is killed in the middle of targets."""
    body = "SELECT pg_sleep(0.3); INSERT INTO effects VALUES ('{v}');"
    make_project(
        migration_pair(V1, "effects", "CREATE TABLE effects (v text);\n" + body.format(v=1))
    )
    make_project(migration_pair(V2, "two", body.format(v=2)))
    return make_project(migration_pair(V3, "three", body.format(v=3)))


def _worker(root: Path, targets: Path, control_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "pgshift", "fleet", "up", "--targets", str(targets),
            "--control-url", control_url, "--lease", "2", "--concurrency", "2",
            "--skip-backup", "--yes", "--dir", str(root / "migrations"),
        ],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DB_BACKUP_ENABLED": "false"},
    )  # fmt: skip


def _wait_until_running_targets(control_url: str, pid: int) -> None:
    """Until the worker of ``pid`` runs targets it claimed (its name holds its pid)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        exists = query(control_url, "SELECT to_regclass('pgshift_fleet.target_runs') IS NOT NULL")
        if exists[0][0]:
            rows = query(
                control_url,
                "SELECT count(*) FROM pgshift_fleet.target_runs"
                " WHERE state = 'running' AND owner LIKE %s",
                [f"%:{pid}:%"],
            )
            if rows[0][0]:
                return
        time.sleep(0.05)
    raise AssertionError("the first worker never claimed a target")


def test_workers_share_a_run_and_take_over_a_killed_one(
    make_project: ProjectMaker,
    db_url: str,
    control_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _project(make_project)
    targets = root / "fleet.toml"
    targets.write_text(
        "".join(f'[[target]]\nname = "{t}"\nurl = "{db_url}"\nschema = "{t}"\n' for t in TENANTS),
        encoding="utf-8",
    )
    workers = [_worker(root, targets, control_url) for _ in range(3)]
    _wait_until_running_targets(control_url, workers[0].pid)
    time.sleep(0.4)  # in the middle of its first migrations
    workers[0].send_signal(signal.SIGKILL)
    outputs = [w.communicate(timeout=120) for w in workers]
    assert workers[0].returncode == -signal.SIGKILL
    for worker, (out, err) in zip(workers[1:], outputs[1:], strict=True):
        assert worker.returncode == 0, out + err

    for tenant in TENANTS:
        history = f"{tenant}_pgshift"
        assert query(db_url, f'SELECT version FROM "{history}".applied ORDER BY 1') == [
            (V1,), (V2,), (V3,)
        ]  # fmt: skip
        assert query(db_url, f'SELECT v FROM "{tenant}".effects ORDER BY v') == [
            ("1",), ("2",), ("3",)
        ]  # fmt: skip
    rows = query(control_url, "SELECT target, state, attempts FROM pgshift_fleet.target_runs")
    assert sorted(r[0] for r in rows) == TENANTS
    assert {r[1] for r in rows} == {"done"}
    assert max(r[2] for r in rows) >= 2  # the killed worker's targets were taken over

    shown = run_cli(
        capsys, root, None, "fleet", "status", "--targets", str(targets),
        "--control-url", control_url, "--json",
    )  # fmt: skip
    assert shown.code == 0, shown.err
    data = shown.json()
    assert data["summary"]["up-to-date"] == len(TENANTS)
    assert data["run"]["exit_code"] == 0
    assert {t["status"] for t in data["run"]["targets"]} <= {"applied", "up-to-date"}


def test_shards_split_a_fleet_across_workers(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(migration_pair(V1, "one", "CREATE TABLE one (id int);"))
    targets = root / "fleet.toml"
    targets.write_text(
        "".join(f'[[target]]\nname = "{t}"\nurl = "{db_url}"\nschema = "{t}"\n' for t in TENANTS),
        encoding="utf-8",
    )
    seen: list[str] = []
    for index in range(3):
        plan = run_cli(
            capsys, root, None, "fleet", "plan", "--targets", str(targets),
            "--shard", f"{index}/3", "--json",
        )  # fmt: skip
        assert plan.code == 0
        seen += [t["target"] for t in plan.json()["targets"]]
        up = run_cli(
            capsys, root, None, "fleet", "up", "--targets", str(targets),
            "--shard", f"{index}/3", "--skip-backup", "--yes",
        )  # fmt: skip
        assert up.code == 0, up.err
    assert sorted(seen) == TENANTS
    for tenant in TENANTS:
        assert query(db_url, f"SELECT to_regclass('{tenant}.one') IS NOT NULL") == [(True,)]
