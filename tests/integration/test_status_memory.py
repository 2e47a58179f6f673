"""The remembered `pgshift status` (ops/status_memory.py), on the real servers: the same bytes
as the full path in every output mode, answered without the files, and never when the files,
the history, the session's TimeZone or grants, or a live run say something else."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from tests.integration.test_uptodate import UNNEEDED
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import CliResult, applied_by_library, modules_loaded, on_terminal, query, run_cli

import pgshift
from pgshift import project_files
from pgshift.db.activity import marker
from pgshift.source import folder_stat

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
MODES = (("status",), ("status", "-q"), ("status", "--json"))


def _project(make_project: ProjectMaker, *, third: bool = False) -> Path:
    files = {
        **pair(V1, "one", "CREATE TABLE one (id int);"),
        **pair(V2, "two", "CREATE TABLE two (id int);"),
    }
    if third:
        files.update(pair(V3, "three", "CREATE TABLE three (id int);"))
    return make_project(files)


@pytest.fixture
def settled_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (the default waits two seconds after the last change)."""
    monkeypatch.setattr(folder_stat, "SETTLE_NS", 0)


class Reads:
    """Counts the full path's reads of the migration files (project_files.read_project)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = project_files.read_project

        def counted(*args: object, **kwargs: object) -> object:
            self.count += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(project_files, "read_project", counted)

    def full(self, capsys: pytest.CaptureFixture[str], project: Path, url: str) -> CliResult:
        """`pgshift status`, which must take the full path."""
        before = self.count
        result = run_cli(capsys, project, url, "status")
        assert result.code == 0, result.err
        assert self.count == before + 1, "answered from memory"
        return result

    def remembered(self, capsys: pytest.CaptureFixture[str], project: Path, url: str) -> CliResult:
        """`pgshift status`, which must be answered without reading the files."""
        before = self.count
        result = run_cli(capsys, project, url, "status")
        assert result.code == 0, result.err
        assert self.count == before, "the files were read"
        return result


def _applied(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    *,
    third: bool = False,
) -> Path:
    """The project applied (up to V2), then one full `status` that remembers."""
    project = _project(make_project, third=third)
    up = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--target", V2)
    assert up.code == 0, up.err
    time.sleep(0.01)
    return project


@pytest.mark.usefixtures("settled_now")
def test_every_output_mode_prints_the_same_bytes_from_memory(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A problem (a rollback that does not parse) and a duplicate-free failed row included.
    project = _applied(make_project, db_url, capsys, third=True)
    (project / "migrations" / f"{V3}_three_rollback.sql").write_text("DROP TABLE three\n(;\n")
    time.sleep(0.01)
    full = {mode: run_cli(capsys, project, db_url, *mode) for mode in MODES}
    assert "1 problem(s) in the migration files" in full[("status",)].out
    assert f"{V3}  three" in full[("status",)].out and "pending" in full[("status",)].out
    assert full[("status", "-q")].out == ""
    assert json.loads(full[("status", "--json")].out)["applied"] == 2
    assert (project / ".pgshift" / "cache" / "status.json").exists()

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the migration files were read")

    monkeypatch.setattr(project_files, "read_project", refuse)
    for mode in MODES:
        assert run_cli(capsys, project, db_url, *mode) == full[mode], mode


@pytest.mark.usefixtures("settled_now")
def test_a_changed_history_file_or_timezone_takes_the_full_path(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = Reads(monkeypatch)
    project = _applied(make_project, db_url, capsys)
    first = reads.full(capsys, project, db_url)
    assert reads.remembered(capsys, project, db_url) == first

    # The history, changed by hand: V2 is no longer applied.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM pgshift.applied WHERE version = %s", (V2,))
    behind = reads.full(capsys, project, db_url)
    assert "1 applied, 1 pending" in behind.out
    assert reads.remembered(capsys, project, db_url) == behind

    # The session's TimeZone: applied_at is shown in it.
    at = query(db_url, "SELECT applied_at FROM pgshift.applied WHERE version = %s", [V1])[0][0]
    monkeypatch.setenv("PGTZ", "Pacific/Kiritimati")  # UTC+14: another day's date at any hour
    zoned = reads.full(capsys, project, db_url)
    assert f"{at.astimezone(_zone('Pacific/Kiritimati')):%Y-%m-%d %H:%M:%S}" in zoned.out
    assert zoned.out != behind.out
    assert reads.remembered(capsys, project, db_url) == zoned
    monkeypatch.delenv("PGTZ")
    assert reads.full(capsys, project, db_url) == behind

    # A file edited: its estimated duration is shown.
    path = project / "migrations" / f"{V1}_one.sql"
    path.write_text(
        path.read_text().replace("-- Version:", "-- @estimated-duration: 7s\n-- Version:")
    )
    time.sleep(0.01)
    edited = reads.full(capsys, project, db_url)
    assert "/ 7.0s" in edited.out
    assert reads.remembered(capsys, project, db_url) == edited


def _zone(name: str) -> object:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


@pytest.fixture
def reader_role(db_url: str) -> Iterator[tuple[str, str]]:
    """(url, role): a login role that may read pgshift's history and create in its schema."""
    from psycopg.conninfo import make_conninfo

    role = f"reader_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        yield make_conninfo(db_url, user=role), role
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.usefixtures("settled_now")
def test_a_revoked_grant_takes_the_full_path_and_shows_its_warning(
    make_project: ProjectMaker,
    db_url: str,
    reader_role: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, role = reader_role
    reads = Reads(monkeypatch)
    project = _applied(make_project, db_url, capsys)
    who = sql.Identifier(role)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA pgshift TO {}").format(who))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA pgshift TO {}").format(who))
    granted = reads.full(capsys, project, url)
    assert granted.err == "" and "2 applied" in granted.out
    assert reads.remembered(capsys, project, url) == granted

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA pgshift FROM {}").format(who))
    revoked = reads.full(capsys, project, url)
    assert f'GRANT USAGE, CREATE ON SCHEMA "pgshift" TO "{role}"' in revoked.err
    assert revoked.out == granted.out
    assert reads.remembered(capsys, project, url) == revoked


@pytest.mark.usefixtures("settled_now")
def test_a_live_run_takes_the_full_path_and_is_never_remembered(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session running a marked message (db/activity.py) is a live run: its pending
    migration shows "running", which no stamp of the history's rows would tell."""
    reads = Reads(monkeypatch)
    project = _applied(make_project, db_url, capsys, third=True)
    idle = reads.full(capsys, project, db_url)
    assert reads.remembered(capsys, project, db_url) == idle
    with _running(db_url, marker("apply", "pgshift", V3)):
        live = reads.full(capsys, project, db_url)
        assert "pending (running)" in live.out
        reads.full(capsys, project, db_url)  # what showed the run was not kept
    assert reads.remembered(capsys, project, db_url) == idle


@pytest.mark.usefixtures("settled_now")
def test_a_progress_row_is_never_remembered(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stopped migration's progress row: whether it is failed or running depends on who
    holds the migration lock, which no stamp of rows covers."""
    reads = Reads(monkeypatch)
    project = _applied(make_project, db_url, capsys, third=True)
    query(
        db_url,
        "INSERT INTO pgshift.progress (version, checksum, prefix_checksum, statements_done,"
        " run_id) VALUES (%s, 'x', 'x', 1, %s)",
        [V3, str(uuid.uuid4())],
    )
    stopped = reads.full(capsys, project, db_url)
    assert "failed" in stopped.out
    assert reads.full(capsys, project, db_url) == stopped


class _running:
    """A session of another "run" executing ``text`` + a long sleep until the block ends."""

    def __init__(self, db_url: str, text: bytes) -> None:
        self.url = db_url
        self.conn = psycopg.connect(db_url, autocommit=True)
        self.statement = text + b"SELECT pg_sleep(60)"
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with contextlib.suppress(psycopg.Error):  # cancelled at the end of the block
            self.conn.execute(self.statement)

    def __enter__(self) -> None:
        self.thread.start()
        pid = self.conn.info.backend_pid
        deadline = time.monotonic() + 10
        while not query(
            self.url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'", [pid]
        ):
            assert time.monotonic() < deadline, "the marked query never started"
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        pid = self.conn.info.backend_pid
        query(self.url, "SELECT pg_cancel_backend(%s)", [pid])
        self.thread.join(timeout=10)
        self.conn.close()


@pytest.mark.usefixtures("settled_now")
def test_the_library_document_is_remembered_too(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = applied_by_library(_project(make_project), db_url, monkeypatch, 2)
    full = pgshift.status_document(settings)
    assert (full["applied"], full["pending"]) == (2, 0)
    assert [r["state"] for r in full["migrations"]] == ["applied", "applied"]
    monkeypatch.setattr(project_files, "read_project", _refuse)
    assert pgshift.status_document(settings) == full
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM pgshift.applied WHERE version = %s", (V2,))
    with pytest.raises(AssertionError, match="files were read"):
        pgshift.status_document(settings)


def _refuse(*args: object, **kwargs: object) -> object:
    raise AssertionError("the migration files were read")


@pytest.mark.usefixtures("settled_now")
def test_a_cache_that_cannot_be_written_only_costs_the_quick_answer(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    (project / ".pgshift").mkdir()
    (project / ".pgshift" / "cache").write_text("not a folder")
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    shown = [run_cli(capsys, project, db_url, "status") for _ in range(2)]
    assert shown[0] == shown[1] and shown[0].code == 0 and "2 applied" in shown[0].out
    assert (project / ".pgshift" / "cache").read_text() == "not a folder"


#: A fresh `pgshift` process whose reading of the migration files is a failure.
_FILES_REFUSED = """
import sys
from pgshift import project_files
from pgshift.cli.main import main
def refuse(*args, **kwargs):
    raise SystemExit("the migration files were read")
project_files.read_project = refuse
sys.exit(main(sys.argv[1:]))
"""


def test_a_fresh_process_answers_from_memory_on_a_terminal_and_off_it(
    make_project: ProjectMaker, db_url: str
) -> None:
    """As real processes with the real settling time: a remembered `status` (table, -q,
    --json) imports neither psycopg, the parser, the loader nor the planner, and on a terminal
    draws the same screen as the full path did."""
    project = _project(make_project)
    assert modules_loaded(project, db_url, UNNEEDED, "up", "--yes", "-q")["code"] == 0
    time.sleep(folder_stat.SETTLE_NS / 1e9 + 0.1)
    env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "120"}
    code, screen = on_terminal(
        [sys.executable, "-m", "pgshift", "status"], cwd=project, env=env, answers=()
    )
    assert code == 0 and "2 applied, 0 pending" in screen, screen
    again = on_terminal(
        [sys.executable, "-c", _FILES_REFUSED, "status"], cwd=project, env=env, answers=()
    )
    assert again == (code, screen)
    for mode in MODES:
        assert modules_loaded(project, db_url, UNNEEDED, *mode) == {"code": 0, "loaded": []}


@pytest.mark.usefixtures("settled_now")
def test_without_libpq_every_status_is_read_in_full_and_alike(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PGSHIFT_LIBPQ=off: psycopg reads (and what it read is still kept for a session with
    libpq), but no answer comes from memory without the one-statement check."""
    reads = Reads(monkeypatch)
    project = _applied(make_project, db_url, capsys)
    with_libpq = reads.full(capsys, project, db_url)
    monkeypatch.setenv("PGSHIFT_LIBPQ", "off")
    assert reads.full(capsys, project, db_url) == with_libpq
    assert reads.full(capsys, project, db_url) == with_libpq
    monkeypatch.delenv("PGSHIFT_LIBPQ")
    assert reads.remembered(capsys, project, db_url) == with_libpq
