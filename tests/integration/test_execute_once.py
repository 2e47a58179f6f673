"""Every statement of a migration runs exactly once: on failure, on retry and across a kill.

Side effects that survive a rollback (sequences) count how often a statement really ran; the
fault campaign kills the runner with SIGKILL at exact instants (db/execute.py's failpoints).
"""

from __future__ import annotations

import signal

import pytest
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import applied_versions, query, run_cli, spawn_cli

V1 = "20250101000000"
V2 = "20250101000100"
# migration_text writes 4 header lines and a blank line: the SQL starts on line 6.
FIRST_LINE = 6


def _last_value(db_url: str, sequence: str) -> int:
    return int(query(db_url, f"SELECT last_value FROM {sequence}")[0][0])


def test_a_failed_migration_is_executed_once_and_names_its_statement(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query(db_url, "CREATE SEQUENCE ran; CREATE TABLE t (id int PRIMARY KEY)")
    sql = "SELECT nextval('ran');\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (1);\n"
    project = make_project(migration_pair(V1, "dup", sql))
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 1, result.err
    assert f"{V1}_dup.sql:{FIRST_LINE + 2}: duplicate key" in result.err
    assert _last_value(db_url, "ran") == 1  # a replay to find the line would make it 2
    assert query(db_url, "SELECT count(*) FROM t") == [(0,)]
    (detail,) = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'migration_failed'")
    assert detail[0]["statement_index"] == 2
    assert detail[0]["line"] == FIRST_LINE + 2


def test_a_statement_timeout_names_the_statement_that_ran_out(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sql = "CREATE TABLE slow (id int);\nINSERT INTO slow VALUES (1);\nSELECT pg_sleep(3);\n"
    project = make_project(migration_pair(V1, "slow", sql))
    monkeypatch.setenv("DB_MIGRATION_TIMEOUT", "1000")
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 5, result.err
    assert f"{V1}_slow.sql:{FIRST_LINE + 2}: canceling statement due to statement timeout" in (
        result.err
    )
    (detail,) = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'migration_failed'")
    assert detail[0]["statement_index"] == 2
    assert applied_versions(db_url) == []


def test_a_lock_timeout_names_the_statement_that_waited(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg

    query(db_url, "CREATE TABLE busy (id int)")
    sql = "CREATE TABLE other (id int);\nSELECT 1;\nALTER TABLE busy ADD COLUMN extra int;\n"
    project = make_project(migration_pair(V1, "alter busy", sql))
    monkeypatch.setenv("PGSHIFT_LOCK_TIMEOUT", "50ms")
    monkeypatch.setenv("PGSHIFT_LOCK_RETRY_TOTAL", "300ms")
    with psycopg.connect(db_url) as blocker:
        blocker.execute("SELECT * FROM busy")  # holds ACCESS SHARE until it ends
        result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 5, result.err
    assert f"{V1}_alter_busy.sql:{FIRST_LINE + 2}: could not take the locks" in result.err
    rows = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'lock_retry'")
    assert rows and all(r[0]["statement_index"] == 2 for r in rows)


@pytest.mark.parametrize(("sqlstate", "name"), [("40P01", "deadlock"), ("40001", "conflict")])
def test_deadlocks_and_serialization_failures_are_retried_and_logged(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sqlstate: str,
    name: str,
) -> None:
    """The first attempt fails as a concurrent session would make it fail; the retry applies."""
    query(db_url, "CREATE SEQUENCE attempts")
    sql = (
        "CREATE TABLE kept (id int);\n"
        "DO $$ BEGIN IF nextval('attempts') = 1 THEN\n"
        f"  RAISE EXCEPTION 'simulated {name}' USING ERRCODE = '{sqlstate}';\n"
        "END IF; END $$;\n"
    )
    project = make_project(migration_pair(V1, name, sql))
    monkeypatch.setenv("PGSHIFT_LOCK_TIMEOUT", "20ms")
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 0, result.err
    assert applied_versions(db_url) == [V1]
    assert _last_value(db_url, "attempts") == 2
    (detail,) = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'lock_retry'")
    assert detail[0]["sqlstate"] == sqlstate
    assert detail[0]["statement_index"] == 1
    assert detail[0]["message"] == f"simulated {name}"


# -- the fault campaign ----------------------------------------------------------------------------

# A `@transaction: false` file mixing statements PostgreSQL accepts in a transaction (each of
# which must commit together with its progress record) and ones it refuses (recognised from
# the catalog on resume). Every statement fails loudly or leaves a countable trace if it runs
# twice.
MIXED = """\
INSERT INTO audit (what) VALUES ('start');
INSERT INTO items SELECT g FROM generate_series(1, 1000) g;
CREATE INDEX CONCURRENTLY items_id_idx ON items (id);
ALTER TABLE items ADD COLUMN note text;
DROP INDEX CONCURRENTLY old_idx;
INSERT INTO audit (what) VALUES ('end');
"""
STATEMENTS = 6


def _campaign_project(make_project: ProjectMaker) -> ProjectMaker:
    setup = (
        "CREATE TABLE audit (id serial PRIMARY KEY, what text NOT NULL);\n"
        "CREATE TABLE items (id int NOT NULL);\n"
        "CREATE INDEX old_idx ON items (id);\n"
    )
    make_project(migration_pair(V1, "setup", setup))
    make_project(migration_pair(V2, "mixed", MIXED, extra_header=["@transaction: false"]))
    return make_project


def _assert_applied_exactly_once(db_url: str) -> None:
    assert applied_versions(db_url) == [V1, V2]
    assert query(db_url, "SELECT what FROM audit ORDER BY id") == [("start",), ("end",)]
    assert query(db_url, "SELECT count(*), count(DISTINCT id) FROM items") == [(1000, 1000)]
    indexes = query(
        db_url,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = 'items'::regclass",
    )
    assert indexes == [("items_id_idx", True)]
    columns = query(
        db_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'"
        " ORDER BY ordinal_position",
    )
    assert columns == [("id",), ("note",)]
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]


def _failpoints() -> list[str]:
    """Every instant of the mixed file: after each statement ran, and after each commit."""
    points = [f"ran:{V2}:{i}" for i in (2, 4)]  # the statements run alone (CONCURRENTLY)
    points += [f"committed:{V2}:{n}" for n in range(1, STATEMENTS + 1)]
    return points


@pytest.mark.parametrize("point", _failpoints())
def test_a_kill_at_any_instant_of_a_non_transactional_file_resumes_exactly_once(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str], point: str
) -> None:
    project = _campaign_project(make_project).root
    killed = spawn_cli(
        project, db_url, "up", "--yes", "--skip-backup", env={"PGSHIFT_FAILPOINT": point}
    )
    _, err = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, err
    # The killed run's lock session is gone with it; the next run may wait for the server to
    # notice, which the lock's bounded wait covers.
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    states = {m["version"]: m["state"] for m in status["migrations"]}
    assert states[V2] in ("failed", "applied", "pending"), states
    resumed = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert resumed.code == 0, resumed.err
    _assert_applied_exactly_once(db_url)
    health = run_cli(capsys, project, db_url, "health", "--json").json()
    checks = {c["name"]: c["status"] for c in health["checks"]}
    assert checks["failed_migrations"] == "ok", health
    assert checks["invalid_indexes"] == "ok", health


def test_the_mixed_file_applies_exactly_once_without_faults(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The campaign's control: the same file, no kill."""
    project = _campaign_project(make_project).root
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 0, result.err
    _assert_applied_exactly_once(db_url)
