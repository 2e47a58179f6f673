"""Backups and restores against real PostgreSQL: file modes, round trips, corruption, retention.

Every restore test compares what the database holds after it with what it held before, row by
row and sequence by sequence, because "pg_restore exited 0" proves nothing on its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from tests.plugins.pg import PgServer, SystemServer
from tests.plugins.project import ProjectMaker, migration_text, rollback_text
from tests.support import applied_versions, query, run_cli, tables

from pgshift.db.inventory import inventory, quote_ident
from pgshift.ops.manifest import backups_in, compare_inventories, prune

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"


def pair(
    version: str, description: str, sql_text: str, rollback: str = "SELECT 1;"
) -> dict[str, str]:
    slug = description.replace(" ", "_")
    return {
        f"{version}_{slug}.sql": migration_text(version, description, sql_text),
        f"{version}_{slug}_rollback.sql": rollback_text(version, description, rollback),
    }


def backups_of(project: Path) -> list[dict[str, object]]:
    folder = project / ".pgshift" / "backups"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def snapshot(db_url: str) -> dict[str, object]:
    """Everything the tests compare: rows, sequence positions, applied versions, tables."""
    return {
        "accounts": query(db_url, "SELECT id, email, balance FROM accounts ORDER BY id")
        if "accounts" in tables(db_url)
        else None,
        "seq": query(db_url, "SELECT last_value, is_called FROM accounts_id_seq")
        if "accounts" in tables(db_url)
        else None,
        "tables": sorted(tables(db_url)),
        "applied": applied_versions(db_url),
    }


SEED = """
CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance numeric NOT NULL);
INSERT INTO accounts (email, balance)
SELECT 'user' || g || '@x', g * 1.5 FROM generate_series(1, 300) g;
"""


def test_backup_is_private_whatever_the_umask_and_its_manifest_describes_it(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "accounts", SEED, "DROP TABLE accounts;"))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    old = os.umask(0o022)
    try:
        result = run_cli(capsys, project, db_url, "backup", "--json")
    finally:
        os.umask(old)
    assert result.code == 0, result.err
    data = result.json()
    folder = project / ".pgshift" / "backups"
    assert folder.stat().st_mode & 0o777 == 0o700
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"{data['id']}.dump", f"{data['id']}.json"]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    manifest = json.loads(files[1].read_text())
    assert manifest["reason"] == "manual"
    assert manifest["database"] == db_url.split("/")[3].split("?", maxsplit=1)[0]
    assert manifest["versions"] == [V1]
    assert manifest["size_bytes"] == files[0].stat().st_size
    import hashlib

    assert manifest["sha256"] == hashlib.sha256(files[0].read_bytes()).hexdigest()
    assert re.match(r"\d+\.\d+", manifest["pg_dump_version"])
    assert manifest["server_version"]
    logged = query(
        db_url, "SELECT detail->>'backup_id' FROM pgshift.log WHERE event = 'backup_taken'"
    )
    assert logged == [(data["id"],)]


def test_destructive_migration_is_undone_by_restore_rows_and_sequences_included(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "accounts", SEED, "DROP TABLE accounts;"))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    before = snapshot(db_url)
    destructive = """
ALTER TABLE accounts DROP COLUMN balance;
DELETE FROM accounts WHERE id % 2 = 0;
SELECT setval('accounts_id_seq', 5000);
CREATE TABLE audit (id int PRIMARY KEY, account bigint REFERENCES accounts (id));
"""
    make_project(pair(V2, "destroy", destructive))
    up = run_cli(capsys, project, db_url, "up", "--yes", "--json")
    assert up.code == 0, up.err
    backup_id = up.json()["backup_id"]
    assert backup_id and query(db_url, "SELECT count(*) FROM accounts") == [(150,)]

    listed = run_cli(capsys, project, db_url, "rollback", "list-backups", "--json").json()
    assert [b["id"] for b in listed["backups"]] == [backup_id]
    assert listed["backups"][0]["reason"] == "before-up"
    assert listed["backups"][0]["versions"] == [V1]

    restored = run_cli(capsys, project, db_url, "rollback", "restore", backup_id, "--yes")
    assert restored.code == 0, restored.err
    assert snapshot(db_url) == before  # every row, the sequence, no `audit` table left over
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert {m["version"]: m["state"] for m in status["migrations"]} == {
        V1: "applied",
        V2: "pending",
    }
    # The history log keeps what happened after the backup, and records the restore.
    events = [r[0] for r in query(db_url, "SELECT event FROM pgshift.log ORDER BY id")]
    assert "migration_applied" in events and events[-1] == "restore"
    assert events.count("backup_taken") == 2  # before up, and the safety one before restore


def test_corrupted_backup_is_refused_with_exit_7_and_the_database_untouched(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "accounts", SEED, "DROP TABLE accounts;"))
    first = run_cli(capsys, project, db_url, "up", "--yes", "--json")
    assert first.code == 0, first.err
    make_project(pair(V2, "more", "CREATE TABLE more_stuff (id int);"))
    second = run_cli(capsys, project, db_url, "up", "--yes", "--json")
    backup_id = second.json()["backup_id"]
    archive = project / ".pgshift" / "backups" / f"{backup_id}.dump"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    before = snapshot(db_url)
    result = run_cli(capsys, project, db_url, "rollback", "restore", backup_id, "--yes")
    assert result.code == 7, result.err
    assert "SHA-256" in result.err and backup_id in result.err
    assert snapshot(db_url) == before
    assert "more_stuff" in tables(db_url)
    # Refused before anything else happened: no safety backup either.
    assert len(backups_of(project)) == 2


@pytest.fixture
def doomed_role(pg_server: PgServer) -> Iterator[str]:
    """A role that owns a table at backup time and is dropped afterwards (roles are global)."""
    name = f"owner_{uuid.uuid4().hex[:10]}"
    admin = pg_server.admin()
    admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    yield name
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_restore_failing_half_way_leaves_the_database_as_it_was(
    make_project: ProjectMaker, db_url: str, doomed_role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "accounts", SEED, "DROP TABLE accounts;"))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    query(db_url, f'CREATE TABLE owned (id int); ALTER TABLE owned OWNER TO "{doomed_role}"')
    backup_id = run_cli(capsys, project, db_url, "backup", "--json").json()["id"]
    # After the backup: the owner role disappears (so replaying the archive fails after it
    # has dropped and recreated tables), rows change and a table is added.
    query(db_url, "ALTER TABLE owned OWNER TO CURRENT_USER")
    query(db_url, f'DROP ROLE "{doomed_role}"')
    query(db_url, "UPDATE accounts SET balance = 0 WHERE id < 10; CREATE TABLE newer (id int)")
    before = snapshot(db_url)
    result = run_cli(
        capsys, project, db_url, "rollback", "restore", backup_id, "--yes", "--skip-backup"
    )
    assert result.code == 7, result.out + result.err
    assert "rolled back" in result.err and doomed_role in result.err
    assert snapshot(db_url) == before
    assert {"newer", "owned"} <= tables(db_url)


def test_retention_prunes_old_backups_but_keeps_the_newest_and_the_one_before_the_last_run(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = make_project(pair(V1, "one", "CREATE TABLE one (id int);"))
    manual = run_cli(capsys, project, db_url, "backup", "--json").json()["id"]
    pre_run = run_cli(capsys, project, db_url, "up", "--yes", "--json").json()["backup_id"]
    later = run_cli(capsys, project, db_url, "backup", "--json").json()["id"]
    folder = project / ".pgshift" / "backups"

    def age(backup_id: str, days: int) -> None:
        path = folder / f"{backup_id}.json"
        data = json.loads(path.read_text())
        data["created_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        path.write_text(json.dumps(data))

    for backup_id in (manual, pre_run, later):
        age(backup_id, 40)
    monkeypatch.setenv("DB_BACKUP_RETENTION_DAYS", "30")
    newest = run_cli(capsys, project, db_url, "backup", "--json").json()["id"]
    kept = sorted(m.id for m in backups_in(folder))
    assert kept == sorted([pre_run, newest])  # manual and later were older than 30 days
    assert not list(folder.glob(f"{manual}*")) and not list(folder.glob(f"{later}*"))

    # Even when every backup is old, the newest stays.
    age(newest, 35)  # still the newest, by a few days
    manifests = backups_in(folder)
    removed = prune(
        folder,
        database=manifests[0].database,
        server=manifests[0].server,
        retention_days=30,
        protected_run_id=None,
    )
    assert removed == [pre_run]
    assert [m.id for m in backups_in(folder)] == [newest]


def test_names_compared_with_the_inventory_are_spelled_as_the_server_quotes_them(
    db_url: str,
) -> None:
    """A keyword or mixed-case schema is quoted in the inventory; the name compared must match.

    (A hand-written quoting rule left ``order`` bare, so pgshift's own tables in a history
    schema of that name were not recognised.)
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "order"; CREATE TABLE "order".log (id int)')
        conn.execute('CREATE SCHEMA "Mixed"; CREATE TABLE "Mixed".t (id int)')
        objects = inventory(conn)
        quoted = [quote_ident(conn, name) for name in ("order", "Mixed", "plain")]
    assert quoted == ['"order"', '"Mixed"', "plain"]
    assert {("table", '"order".log'), ("table", '"Mixed".t')} <= {o.key for o in objects}
    ours = [o for o in objects if o.identity.startswith(('"order"', '"Mixed"'))]
    assert (
        compare_inventories(
            (), [o for o in ours if "order" in o.identity], ignore_quoted_schema='"order"'
        )
        == []
    )


def test_skip_backup_and_disabled_backups_take_none(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = make_project(pair(V1, "one", "CREATE TABLE one (id int);", "DROP TABLE one;"))
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--json")
    assert result.code == 0 and result.json()["backup_id"] is None
    assert backups_of(project) == []
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    reverted = run_cli(capsys, project, db_url, "rollback", "safe", "--yes", "--json")
    assert reverted.code == 0, reverted.err
    assert reverted.json()["backup_id"] is None and backups_of(project) == []
    again = run_cli(capsys, project, db_url, "up", "--yes", "--json")
    assert again.code == 0 and again.json()["backup_id"] is None
    assert backups_of(project) == [] and applied_versions(db_url) == [V1]
    monkeypatch.delenv("DB_BACKUP_ENABLED")
    last = run_cli(capsys, project, db_url, "rollback", "safe", "--yes", "--json")
    assert last.json()["backup_id"] and [b["reason"] for b in backups_of(project)] == [
        "before-rollback"
    ]


# -- the password never leaks ----------------------------------------------------------------------


class CmdlineWatcher:
    """Reads every process's argv, and the environment of libpq children, while it runs."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.leaks: list[str] = []
        self.children: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    cmdline = (proc / "cmdline").read_bytes()
                    comm = (proc / "comm").read_text().strip()
                except OSError:
                    continue
                if self.secret in cmdline:
                    self.leaks.append(f"argv of {comm}: {cmdline!r}")
                if comm in ("pg_dump", "pg_restore", "psql"):
                    self.children.add(comm)
                    try:
                        environ = (proc / "environ").read_bytes()
                    except OSError:
                        continue
                    if self.secret in environ:
                        self.leaks.append(f"environment of {comm}")

    def __enter__(self) -> CmdlineWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def password_role(pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """A superuser role that must authenticate with a password over TCP (pg_hba first line)."""
    if not isinstance(pg_server, SystemServer):
        pytest.skip("needs the system server, which listens on TCP and whose pg_hba we own")
    name = f"pw_{uuid.uuid4().hex[:10]}"
    secret = f"S3cr:et-{uuid.uuid4().hex}"
    admin = pg_server.admin()
    admin.execute(
        sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(secret)
        )
    )
    hba = Path(pg_server.data_dir) / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host all {name} 127.0.0.1/32 scram-sha-256\n" + original)
    admin.execute("SELECT pg_reload_conf()")
    yield name, secret
    hba.write_text(original)
    admin.execute("SELECT pg_reload_conf()")
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _spawn(project: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """pgshift as a real process with DATABASE_URL in its environment (our own argv is clean)."""
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args, "--dir", str(project / "migrations"), "-v"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
        timeout=120,
        check=False,
    )


@pytest.mark.pg("== 15")
def test_password_appears_in_no_argv_environment_output_manifest_or_table(
    make_project: ProjectMaker,
    db_url: str,
    pg_server: PgServer,
    password_role: tuple[str, str],
) -> None:
    role, secret = password_role
    assert isinstance(pg_server, SystemServer)
    dbname = db_url.split("/")[3].split("?", maxsplit=1)[0]
    url = pg_server.tcp_url(dbname).replace("postgres@", f"{role}:{secret.replace(':', '%3A')}@")
    with psycopg.connect(url) as conn:  # the password is really needed and really works
        assert conn.execute("SELECT current_user").fetchone() == (role,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url.replace(secret.replace(":", "%3A"), "wrong")).close()

    project = make_project(pair(V1, "accounts", SEED, "DROP TABLE accounts;"))
    # Enough rows that pg_dump and psql live long enough for the watcher to see them.
    query(
        db_url,
        "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 300000) g",
    )
    with CmdlineWatcher(secret) as watcher:
        up = _spawn(project, url, "up", "--yes", "--json")
        backup_id = json.loads(up.stdout)["backup_id"]
        restore = _spawn(project, url, "rollback", "restore", backup_id, "--yes")
    assert up.returncode == 0, up.stderr
    assert restore.returncode == 0, restore.stderr
    # pg_restore only reads the archive (no connection); psql is the one that connects.
    assert watcher.children >= {"pg_dump", "psql"}
    assert watcher.leaks == []
    for result in (up, restore):
        assert secret not in result.stdout + result.stderr

    wrong_port = url.replace(f":{pg_server.port}/", ":1/")
    for args in (("backup",), ("rollback", "safe", "--yes"), ("up", "--yes")):
        failed = _spawn(project, wrong_port, *args)
        assert failed.returncode == 3, failed.stderr
        assert secret not in failed.stdout + failed.stderr
        assert secret.split(":")[0] not in failed.stdout + failed.stderr

    folder = project / ".pgshift" / "backups"
    for manifest in folder.glob("*.json"):
        assert secret not in manifest.read_text()
    assert not [p for p in folder.iterdir() if "pgpass" in p.name]
    dumped = subprocess.run(
        [str(pg_server.bin_dir / "pg_dump"), "--data-only", pg_server.url(dbname)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert secret not in dumped and secret.split(":")[0] not in dumped
