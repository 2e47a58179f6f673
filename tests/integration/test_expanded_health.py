"""An expanded migration as `status`, `health` and `/metrics` show it, on real servers: its
state and since when (its applied row's applied_at, when expand finished), and the warning
once it stays expanded longer than PGSHIFT_EXPAND_WARN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker, rename_migrations
from tests.support import run_cli

import pgshift
from pgshift.config import load_settings
from pgshift.serve import render_metrics

V1, V2 = "20260101000000", "20260102000000"


@pytest.fixture
def expanded(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:  # fmt: skip
    """A project whose second migration (a column rename) is applied in its expand phase."""
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    monkeypatch.setenv("PGSHIFT_HEALTH_LATENCY_WARN", "10s")
    monkeypatch.setenv("PGSHIFT_HEALTH_LATENCY_CRIT", "20s")
    project = make_project(rename_migrations(V1, V2))
    # The expand phase is planned from the table's catalog facts: the table exists first.
    assert run_cli(capsys, project, db_url, "up", "--yes", "--target", V1).code == 0
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 0, result.out + result.err
    return project


def test_status_shows_the_expanded_migration_and_since_when(
    expanded: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC)
    data = run_cli(capsys, expanded, db_url, "status", "--json").json()
    rows = {m["version"]: m for m in data["migrations"]}
    assert rows[V2]["state"] == "expanded" and rows[V1]["state"] == "applied"
    since = datetime.fromisoformat(rows[V2]["applied_at"])
    assert timedelta(0) <= before - since < timedelta(minutes=5)
    assert "pgshift contract" in rows[V2]["detail"]
    assert data["expanded"] == 1 and data["applied"] == 2
    table = run_cli(capsys, expanded, db_url, "status")
    assert "2 applied, 0 pending, 1 expanded" in table.out
    assert "expanded" in next(line for line in table.out.splitlines() if V2 in line)


def test_health_warns_once_expanded_longer_than_pgshift_expand_warn(
    expanded: Path, db_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    fresh = run_cli(capsys, expanded, db_url, "health", "--json")
    check = next(c for c in fresh.json()["checks"] if c["name"] == "expanded_migrations")
    assert check["status"] == "ok", check
    assert check["data"]["count"] == 1 and check["data"]["overdue"] == 0
    assert check["data"]["migrations"][0]["version"] == V2
    assert check["data"]["warn_s"] == 7 * 86400
    monkeypatch.setenv("PGSHIFT_EXPAND_WARN", "1ms")
    late = run_cli(capsys, expanded, db_url, "health", "--json")
    assert late.code == 1, late.out
    check = next(c for c in late.json()["checks"] if c["name"] == "expanded_migrations")
    assert check["status"] == "warning"
    assert f"run `pgshift contract {V2}`" in check["detail"]
    text = run_cli(capsys, expanded, db_url, "health")
    assert text.code == 1 and "PGSHIFT_EXPAND_WARN" in text.out
    # /metrics renders the same report.
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(expanded / "migrations")}, cwd=expanded
    )
    report = pgshift.health(settings)
    assert report.check("expanded_migrations").status == "warning"
    lines = dict(
        line.rsplit(" ", 1)
        for line in render_metrics(report, runs=1).splitlines()
        if not line.startswith("#")
    )
    assert lines["pgshift_migrations_expanded"] == "1"
    assert lines["pgshift_migrations_expanded_overdue"] == "1"
    assert lines['pgshift_health_check_status{check="expanded_migrations"}'] == "1"
    # Contracted: nothing expanded any more.
    assert run_cli(capsys, expanded, db_url, "contract", "--yes").code == 0
    done = run_cli(capsys, expanded, db_url, "health", "--json")
    check = next(c for c in done.json()["checks"] if c["name"] == "expanded_migrations")
    assert check["status"] == "ok" and check["data"]["count"] == 0
