"""The history write is PREPAREd once per runner session, and a session that loses it still
applies every migration exactly once (db/prepared.py).

A migration's own statements run on the runner's session, so they can look at what that
session has prepared (pg_prepared_statements) and drop it (DEALLOCATE ALL), which is how these
tests watch the write from the inside. Sequences count how often a statement really ran: their
values survive a rollback, so a migration run twice shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import applied_versions, query, run_cli

import pgshift
from pgshift.config import load_settings

V1 = "20250101000000"
V2 = "20250101000100"
V3 = "20250101000200"
V4 = "20250101000300"

#: What the runner's session had prepared when the migration ran.
SEEN = "CREATE TABLE seen AS SELECT name, statement FROM pg_prepared_statements;\n"


def _last_value(db_url: str, sequence: str) -> int:
    return int(query(db_url, f"SELECT last_value FROM {sequence}")[0][0])


def _history_rows(db_url: str) -> list[tuple[object, ...]]:
    return query(
        db_url,
        "SELECT version, description, duration_ms >= 0, run_id IS NOT NULL, applied_by <> ''"
        " FROM pgshift.applied ORDER BY version",
    )


def test_the_write_is_prepared_once_on_the_runners_session(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **migration_pair(V1, "one", "CREATE TABLE one (id int);\n"),
            **migration_pair(V2, "two", "CREATE TABLE two (id int);\n"),
            **migration_pair(V3, "seen", SEEN),
        }
    )
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 0, result.err
    seen = query(db_url, "SELECT name, statement FROM seen")
    # One statement for the applied row, made for the first migration and reused after.
    assert len(seen) == 1, seen
    name, statement = seen[0]
    assert str(name).startswith("pgshift_write_")
    assert 'INSERT INTO "pgshift".applied' in str(statement)
    assert _history_rows(db_url) == [
        (V1, "one", True, True, True),
        (V2, "two", True, True, True),
        (V3, "seen", True, True, True),
    ]
    logged = query(db_url, "SELECT count(*) FROM pgshift.log WHERE event = 'migration_applied'")
    assert logged == [(3,)]


def test_a_migration_that_deallocates_runs_once_and_the_next_prepares_again(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query(db_url, "CREATE SEQUENCE ran_one; CREATE SEQUENCE ran_two")
    project = make_project(
        {
            **migration_pair(V1, "warm", "CREATE TABLE warm (id int);\n"),
            **migration_pair(V2, "drop", "SELECT nextval('ran_one');\nDEALLOCATE ALL;\n"),
            **migration_pair(V3, "after", "SELECT nextval('ran_two');\n"),
            **migration_pair(V4, "seen", SEEN),
        }
    )
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 0, result.err
    assert _last_value(db_url, "ran_one") == 1  # not run a second time
    assert _last_value(db_url, "ran_two") == 1  # nor the one after it in the same message
    assert applied_versions(db_url) == [V1, V2, V3, V4]
    # V2's message (alone, or with V3: a batch at most doubles after V1 ran alone) lost the
    # statements; V4's is a later message, which prepares again.
    assert len(query(db_url, "SELECT name FROM seen")) == 1


def test_a_write_whose_statement_was_dropped_unseen_is_sent_again_as_text(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function drops the session's statements where the parser cannot see it: the EXECUTE
    fails, the whole transaction rolls back, and the migration runs once more with the write
    as text, as do the run's later writes. The library's `up` runs it here (the command line's
    path is the test above)."""
    query(
        db_url,
        "CREATE SEQUENCE ran; CREATE FUNCTION forget_prepared() RETURNS void LANGUAGE plpgsql"
        " AS $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$",
    )
    project = make_project(
        {
            **migration_pair(V1, "warm", "CREATE TABLE warm (id int);\n"),
            **migration_pair(
                V2, "hidden", "CREATE TABLE kept (id int);\nSELECT forget_prepared();\n"
            ),
            **migration_pair(V3, "after", "SELECT nextval('ran');\n" + SEEN),
        }
    )
    monkeypatch.chdir(Path(project))
    monkeypatch.setenv("DATABASE_URL", db_url)
    result = pgshift.up(load_settings(), backup=False)
    assert [s.version for s in result.steps] == [V1, V2, V3]
    assert applied_versions(db_url) == [V1, V2, V3]
    assert query(db_url, "SELECT to_regclass('kept') IS NOT NULL") == [(True,)]
    assert _last_value(db_url, "ran") == 1
    # The session keeps to text after that: nothing is prepared for V3.
    assert query(db_url, "SELECT name FROM seen") == []
    retried = query(db_url, "SELECT count(*) FROM pgshift.log WHERE event = 'migration_applied'")
    assert retried == [(3,)]  # one applied event each: the rolled-back attempt left nothing
