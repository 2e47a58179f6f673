"""Health never publishes other sessions' data: queries are shown with their constants masked.

A blocked `INSERT INTO secrets_t VALUES (1, '4111-1111-1111-1111')` and its blocker's last query
(which carries a literal too) are read from pg_stat_activity by a real server; the card number
must not reach /health, /metrics, `health --json` or the library's report, and reaches the
report only when `--show-queries` (show_queries=True) asks for the queries in full.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.plugins.project import ProjectMaker
from tests.support import query, run_cli

import pgshift
from pgshift.config import Settings, load_settings
from pgshift.serve import HealthEndpoint, HealthServer

CARD = "4111-1111-1111-1111"
HOLDER_SECRET = "holder-secret-42"
WAITER_SQL = f"INSERT INTO secrets_t VALUES (1, '{CARD}')"
MASKED = "INSERT INTO secrets_t VALUES ($1, $2)"
#: Every session is worth reporting at once, and round trips do not matter here.
ENV = {
    "PGSHIFT_HEALTH_LATENCY_WARN": "10s",
    "PGSHIFT_HEALTH_LATENCY_CRIT": "20s",
    "PGSHIFT_HEALTH_BLOCKED_WARN": "0",
    "PGSHIFT_HEALTH_IDLE_TRANSACTION_WARN": "0",
    "PGSHIFT_HEALTH_LONG_TRANSACTION_WARN": "0",
}


def settings_for(project: Path, db_url: str) -> Settings:
    return load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")},
        env=ENV,
        cwd=project,
    )


@contextmanager
def waiting_insert(db_url: str) -> Iterator[tuple[int, int]]:
    """The holder locks secrets_t (its last query carries a literal), the INSERT waits."""
    query(db_url, "CREATE TABLE secrets_t (id int, card text)")
    holder = psycopg.connect(db_url, application_name="holder")
    waiter = psycopg.connect(db_url, autocommit=True, application_name="waiter")
    holder.execute("LOCK TABLE secrets_t IN ACCESS EXCLUSIVE MODE")
    holder.execute(f"SELECT '{HOLDER_SECRET}' FROM secrets_t")
    thread = threading.Thread(target=lambda: waiter.execute(WAITER_SQL))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not query(
            db_url,
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
            [waiter.info.backend_pid],
        ):
            assert time.monotonic() < deadline, "the INSERT never queued"
            time.sleep(0.05)
        yield holder.info.backend_pid, waiter.info.backend_pid
    finally:
        holder.rollback()
        thread.join(timeout=30)
        holder.close()
        waiter.close()


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback test
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())


def _blocked(report: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == "blocked_sessions")


def test_a_waiting_insert_s_card_number_never_leaves_health(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project({})
    settings = settings_for(project, db_url)
    endpoint = HealthEndpoint(settings, db_url)
    with waiting_insert(db_url) as (holder_pid, waiter_pid):
        # The library, by default.
        report = pgshift.health(settings).to_json()
        blocked = _blocked(report)
        assert [s["query"] for s in blocked["data"]["sessions"]] == [MASKED]
        assert blocked["data"]["blockers"][0]["pid"] == holder_pid
        assert blocked["data"]["blockers"][0]["query"] == "SELECT $1 FROM secrets_t"
        # `health --json`, and the endpoint's /health and /metrics.
        cli = run_cli(capsys, project, db_url, "health", "--json")
        with HealthServer(endpoint, "127.0.0.1", 0) as server:
            endpoint.open()
            served = _get(server.base_url + "/health")
            metrics = _get(server.base_url + "/metrics")
        # Asked for in full, on the command line: the literals were there to hide.
        full = run_cli(capsys, project, db_url, "health", "--json", "--show-queries")
        library_full = pgshift.health(settings, show_queries=True).to_json()
    for text in (json.dumps(report), cli.out + cli.err, served, metrics):
        assert CARD not in text and HOLDER_SECRET not in text
    assert [s["query"] for s in _blocked(json.loads(cli.out))["data"]["sessions"]] == [MASKED]
    assert [s["pid"] for s in _blocked(json.loads(served))["data"]["sessions"]] == [waiter_pid]
    assert MASKED in served
    assert "pgshift_blocked_sessions 1" in metrics
    assert [s["query"] for s in _blocked(json.loads(full.out))["data"]["sessions"]] == [WAITER_SQL]
    assert HOLDER_SECRET in full.out
    assert CARD in json.dumps(library_full)


def test_show_queries_is_refused_for_the_endpoint(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(
        capsys, make_project({}), db_url, "health", "--serve", "127.0.0.1:0", "--show-queries"
    )
    assert result.code == 2
    assert "--show-queries is for the command line only" in result.err
