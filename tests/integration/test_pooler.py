"""A real transaction-mode pgbouncer in front of PostgreSQL: pgshift refuses to migrate through it.

The session advisory lock and session settings only hold on one server session, which a
transaction-mode pooler does not give; `health` names the pooler too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from tests.plugins.pg import tool_path
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import applied_versions, run_cli, tables

PGBOUNCER = str(tool_path("pgbouncer"))
pytestmark = pytest.mark.needs_tool("pgbouncer")
V1 = "20250101000000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pooled_url(db_url: str, pg_server: object) -> Iterator[str]:
    """``db_url``'s database reached through pgbouncer in transaction mode on 127.0.0.1."""
    tcp_url = pg_server.tcp_url  # type: ignore[attr-defined]
    direct = urlsplit(tcp_url(urlsplit(db_url).path.lstrip("/")))
    folder = Path(tempfile.mkdtemp(prefix="pgshift-pgbouncer-"))
    port = _free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n* = host=127.0.0.1 port={direct.port}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder}/users.txt\npool_mode = transaction\n"
        f"logfile = {folder}/pgbouncer.log\npidfile = {folder}/pgbouncer.pid\n"
    )
    shutil.chown(folder, "postgres")
    for child in folder.iterdir():
        shutil.chown(child, "postgres")
    runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*runas, PGBOUNCER, "-d", str(folder / "pgbouncer.ini")], check=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, (folder / "pgbouncer.log").read_text()
            time.sleep(0.05)
    try:
        yield urlunsplit(direct._replace(netloc=f"postgres@127.0.0.1:{port}"))
    finally:
        pid = int((folder / "pgbouncer.pid").read_text().strip())
        os.kill(pid, 15)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.pg("== 15")  # the system server is the one listening on TCP
def test_up_refuses_to_migrate_through_a_transaction_pooler(
    make_project: ProjectMaker,
    db_url: str,
    pooled_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = make_project(migration_pair(V1, "one", "CREATE TABLE one (id int);"))
    refused = run_cli(capsys, project, pooled_url, "up", "--yes", "--skip-backup")
    assert refused.code == 3, refused.err
    assert "connection pooler answers for the database" in refused.err
    assert "PGSHIFT_ALLOW_POOLER" in refused.err
    assert "one" not in tables(db_url) and applied_versions(db_url) == []

    monkeypatch.setenv("PGSHIFT_ALLOW_POOLER", "true")  # the operator vouches for the pooler
    allowed = run_cli(capsys, project, pooled_url, "up", "--yes", "--skip-backup")
    assert allowed.code == 0, allowed.err
    assert applied_versions(db_url) == [V1]


@pytest.mark.pg("== 15")
def test_health_names_the_pooler(
    make_project: ProjectMaker, pooled_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project({})
    result = run_cli(capsys, project, pooled_url, "health", "--json")
    checks = {c["name"]: c for c in result.json()["checks"]}
    assert checks["pooler"]["status"] in ("warning", "critical")
    assert "pooler" in checks["pooler"]["detail"]
    assert result.code in (1, 2)
