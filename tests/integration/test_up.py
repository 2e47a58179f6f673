"""`pgshift up` against a real PostgreSQL: transactions, non-transactional steps, drift, resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker, migration_name, migration_text
from tests.plugins.project import migration_pair as pair
from tests.support import applied_versions, query, run_cli, tables

from pgshift.durations import format_duration_ms

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "migrations"

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"


def test_seed_example_applies_and_status_json_shows_it(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "migrations")
    result = run_cli(capsys, tmp_path, db_url, "up", "--yes")
    assert result.code == 0, result.err
    assert {"users", "user_preferences"} <= tables(db_url)
    valid = query(
        db_url,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname LIKE 'idx_user_preferences%' ORDER BY 1",
    )
    assert valid == [("idx_user_preferences_key", True), ("idx_user_preferences_user_id", True)]

    status = run_cli(capsys, tmp_path, db_url, "status", "--json")
    assert status.code == 0
    data = status.json()
    assert data["applied"] == 2 and data["pending"] == 0
    rows = {m["version"]: m for m in data["migrations"]}
    assert rows["20250528120000"]["state"] == "applied"
    assert rows["20250528120000"]["estimated_ms"] == 30_000
    assert rows["20250528120000"]["zero_downtime"] is True
    assert set(rows["20250527100000"]) >= {
        "version", "description", "state", "applied_at", "duration_ms", "estimated_ms",
        "risk_level", "zero_downtime",
    }  # fmt: skip

    again = run_cli(capsys, tmp_path, db_url, "up", "--yes")
    assert again.code == 0 and "up to date" in again.out


def test_runtime_error_in_second_statement_rolls_back_whole_migration(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "CREATE TABLE first_table (id int);\n\nINSERT INTO no_such_table VALUES (1);\n"
    project = make_project({**pair(V1, "two statements", sql)})
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 1
    assert f"{V1}_two_statements.sql:8:" in result.err  # header is 5 lines + blank + stmt 1
    assert 'relation "no_such_table" does not exist' in result.err
    assert "first_table" not in tables(db_url)
    assert applied_versions(db_url) == []
    failed = query(
        db_url, "SELECT event, detail->>'sqlstate' FROM pgshift.log WHERE version = %s", [V1]
    )
    assert ("migration_failed", "42P01") in failed
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert status["migrations"][0]["state"] == "failed"


def test_syntax_error_is_caught_before_anything_runs(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "good one", "CREATE TABLE good_one (id int);"),
            **pair(V2, "bad one", "CREATE TABLE ok_table (id int);\nCREAT TABLE broken (id int);"),
        }
    )
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 2
    assert f"{V2}_bad_one.sql:7" in result.err
    assert "good_one" not in tables(db_url) and "ok_table" not in tables(db_url)


@pytest.mark.parametrize(
    ("name", "text", "culprit"),
    [
        ("2025010100000_short.sql", "SELECT 1;", "2025010100000_short.sql"),
        (f"{V1}_Bad_Case.sql", "SELECT 1;", "Bad_Case"),
        (
            f"{V1}_header_mismatch.sql",
            "-- Migration: 20250101000001_header_mismatch.sql\n"
            "-- Version: 20250101000001\nSELECT 1;",
            f"{V1}_header_mismatch.sql:1",
        ),
        (
            f"{V1}_bad_meta.sql",
            migration_text(V1, "bad meta", "SELECT 1;", extra_header=["@risk-level: extreme"]),
            "extreme",
        ),
        (
            f"{V1}_unknown_dep.sql",
            migration_text(V1, "unknown dep", "SELECT 1;", deps=["20240101000000"]),
            "20240101000000",
        ),
        (f"{V1}_not_utf8.sql", "-- caf\udce9\nSELECT 1;", f"{V1}_not_utf8.sql:1"),
    ],
)
def test_bad_input_exits_2_names_the_culprit_and_touches_nothing(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
    culprit: str,
) -> None:
    project = make_project(pair(V2, "fine", "CREATE TABLE fine (id int);"))
    path = project / "migrations" / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 2, result.err
    assert culprit in result.err
    assert "fine" not in tables(db_url)
    assert applied_versions(db_url) == []


def test_cycle_and_duplicate_version_are_named(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "a", "SELECT 1;", deps=[V2]),
            **pair(V2, "b", "SELECT 1;", deps=[V1]),
        }
    )
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 2
    assert V1 in result.err and V2 in result.err and "cycle" in result.err
    make_project(pair(V2, "b again", "SELECT 1;"))
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 2 and "duplicate" in result.err.lower()


@pytest.mark.parametrize(
    ("files", "fix"),
    [
        (pair(V1, "typo", "CREATE TABLE typo (id int"), "PostgreSQL's parser rejects it"),
        (
            pair(V1, "extreme", "SELECT 1;", extra_header=["@risk-level: extreme"]),
            "correct the header line shown",
        ),
        (
            {**pair(V1, "a", "SELECT 1;", deps=[V2]), **pair(V2, "b", "SELECT 1;", deps=[V1])},
            "make `@dependencies` name migrations that exist",
        ),
        (
            {migration_name(V1, "no way back"): migration_text(V1, "no way back", "SELECT 1;")},
            "fix the rollback file, or mark the migration irreversible",
        ),
        (
            {**pair(V1, "one", "SELECT 1;"), **pair(V1, "other", "SELECT 2;")},
            "give one of the files that share a version a new version",
        ),
    ],
    ids=[
        "syntax-error",
        "risk-level-extreme",
        "dependency-cycle",
        "missing-rollback",
        "duplicate-version",
    ],
)
def test_each_kind_of_file_problem_gets_its_own_hint(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    fix: str,
) -> None:
    """Issue 17 finding 4: every file problem was answered with the rollback-file hint."""
    project = make_project(files)
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 2, result.err
    hint = result.err.split("hint: ", 1)[1]
    assert fix in hint
    if "rollback" not in fix:
        assert "rollback" not in hint and "missing-rollback" not in hint


def test_dependency_order_and_target(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(
                V1, "needs later", "CREATE TABLE child (id int REFERENCES parent (id));", deps=[V2]
            ),
            **pair(V2, "parent", "CREATE TABLE parent (id int PRIMARY KEY);"),
            **pair(V3, "third", "CREATE TABLE third (id int);"),
        }
    )
    dry = run_cli(capsys, project, db_url, "up", "--dry-run", "--target", V1)
    assert dry.code == 0 and "CREATE TABLE child" in dry.out and "third" not in dry.out
    assert applied_versions(db_url) == []
    result = run_cli(capsys, project, db_url, "up", "--yes", "--target", V1)
    assert result.code == 0, result.err
    assert applied_versions(db_url) == [V1, V2]
    assert result.out.index(f"{V2}_parent") < result.out.index(f"{V1}_needs_later")
    assert "third" not in tables(db_url)


def test_refuses_without_terminal_and_without_yes(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V1, "one", "CREATE TABLE one (id int);"))
    result = run_cli(capsys, project, db_url, "up")
    assert result.code == 2
    assert "--yes" in result.err and "terminal" in result.err
    assert tables(db_url) == set()


def test_drift_edit_crlf_and_missing(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "one", "CREATE TABLE one (id int);"),
            **pair(V2, "two", "CREATE TABLE two (id int);"),
        }
    )
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    one = project / "migrations" / f"{V1}_one.sql"
    original = one.read_text()

    one.write_bytes(original.replace("\n", "\r\n").encode())
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [m["state"] for m in status["migrations"]] == ["applied", "applied"]

    one.write_text(original.replace("id int", "id bigint"))
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert status["migrations"][0]["state"] == "drifted"
    make_project(pair(V3, "three", "CREATE TABLE three (id int);"))
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 4
    assert f"{V1}_one.sql" in result.err and "three" not in tables(db_url)

    one.write_text(original)
    (project / "migrations" / f"{V2}_two.sql").unlink()
    (project / "migrations" / f"{V2}_two_rollback.sql").unlink()
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    states = {m["version"]: m["state"] for m in status["migrations"]}
    assert states == {V1: "applied", V2: "missing", V3: "pending"}
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 4


def test_out_of_order_is_shown_and_applied(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(pair(V2, "two", "CREATE TABLE two (id int);"))
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    make_project(pair(V1, "one", "CREATE TABLE one (id int);"))
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert {m["version"]: m["state"] for m in status["migrations"]}[V1] == "out-of-order"
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    assert applied_versions(db_url) == [V1, V2]


def test_mixed_file_applies_with_valid_indexes_and_history(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = """
CREATE TABLE items (id bigint PRIMARY KEY, sku text NOT NULL, owner int);
INSERT INTO items SELECT g, 'sku-' || g, g % 7 FROM generate_series(1, 500) g;
CREATE INDEX CONCURRENTLY items_sku_idx ON items (sku);
CREATE INDEX CONCURRENTLY items_owner_idx ON items (owner);
ANALYZE items;
"""
    project = make_project(pair(V1, "mixed", sql))
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert [s["status"] for s in data["steps"]] == ["applied"]
    assert data["backup_id"] is None and data["run_id"]
    rows = query(
        db_url,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname LIKE 'items_%%_idx' ORDER BY 1",
    )
    assert rows == [("items_owner_idx", True), ("items_sku_idx", True)]
    assert query(db_url, "SELECT count(*) FROM items") == [(500,)]
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]
    row = query(
        db_url,
        "SELECT description, length(checksum), rollback_checksum IS NOT NULL, applied_by,"
        " run_id::text, metadata FROM pgshift.applied",
    )
    assert row[0][:3] == ("mixed", 64, True)
    assert row[0][4] == data["run_id"]
    events = [r[0] for r in query(db_url, "SELECT event FROM pgshift.log ORDER BY id")]
    assert events == ["run_started", "migration_started", "migration_applied", "run_finished"]


def test_failed_unique_concurrent_build_is_rebuilt_after_fix(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query(db_url, "CREATE TABLE accounts (id int, email text)")
    query(db_url, "INSERT INTO accounts VALUES (1, 'a@x'), (2, 'a@x'), (3, 'b@x')")
    sql = """
ALTER TABLE accounts ADD COLUMN note text;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_key ON accounts (email);
CREATE TABLE after_index (id int);
"""
    project = make_project(pair(V1, "unique email", sql))
    refused = run_cli(capsys, project, db_url, "up", "--yes")  # pre-flight sees the duplicate
    assert refused.code == 1 and "1 key is held by more than one row" in refused.err
    # What the runner does when the build fails anyway (data changed after pre-flight):
    first = run_cli(capsys, project, db_url, "up", "--yes", "--skip-preflight")
    assert first.code == 6, first.err
    assert f"{V1}_unique_email.sql:7" in first.err
    invalid = query(
        db_url,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = 'accounts_email_key'",
    )
    assert invalid == [(False,)]
    assert query(db_url, "SELECT statements_done FROM pgshift.progress") == [(1,)]

    query(db_url, "DELETE FROM accounts WHERE id = 2")  # the fix: remove the duplicate
    second = run_cli(capsys, project, db_url, "up", "--yes")
    assert second.code == 0, second.err
    assert "INVALID index" in second.out
    rows = query(
        db_url,
        "SELECT i.indisvalid, i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = 'accounts_email_key'",
    )
    assert rows == [(True, True)]
    # The ALTER TABLE of the first run was not repeated (it would fail: column exists).
    assert "after_index" in tables(db_url)
    assert query(
        db_url, "SELECT count(*) FROM pgshift.log WHERE event = 'invalid_index_rebuilt'"
    ) == [(1,)]


def test_statement_timeout_exits_5(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        pair(V1, "slow", "SELECT pg_sleep(5);", extra_header=["@statement-timeout: 200ms"])
    )
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 5, result.err
    assert "statement timeout" in result.err


def test_recorded_duration_is_how_long_the_migration_ran(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "slowish", "CREATE TABLE slowish (id int);\nSELECT pg_sleep(0.3);"),
            **pair(V2, "mixed slowish", "SELECT pg_sleep(0.2);\nVACUUM;\nSELECT pg_sleep(0.2);"),
        }
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    rows = dict(query(db_url, "SELECT version, duration_ms FROM pgshift.applied"))
    assert 300 <= rows[V1] < 5000
    assert 400 <= rows[V2] < 5000
    logged = query(
        db_url,
        "SELECT (detail->>'duration_ms')::int FROM pgshift.log"
        " WHERE event = 'migration_applied' AND version = %s",
        [V1],
    )
    assert logged == [(rows[V1],)]
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert {m["version"]: m["duration_ms"] for m in status["migrations"]} == rows


def test_a_lone_concurrent_index_build_records_its_whole_wall_time(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17 finding 2: a migration that is one CREATE INDEX CONCURRENTLY of over a second
    was recorded as a few ms (only the history write's transaction was counted)."""
    # An index expression that takes 0.3 s a row (declared immutable, as an index needs):
    # four rows make the concurrent build take well over a second.
    query(
        db_url,
        "CREATE FUNCTION slow_id(x int) RETURNS int IMMUTABLE LANGUAGE plpgsql"
        " AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN x; END $$;"
        " CREATE TABLE slow_rows (id int); INSERT INTO slow_rows SELECT generate_series(1, 4)",
    )
    build = "CREATE INDEX CONCURRENTLY slow_rows_idx ON slow_rows (slow_id(id));"
    project = make_project(pair(V1, "slow index", build))
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    ((recorded,),) = query(db_url, "SELECT duration_ms FROM pgshift.applied")
    assert recorded >= 1200, recorded
    logged = query(
        db_url,
        "SELECT (detail->>'duration_ms')::int FROM pgshift.log WHERE event = 'migration_applied'",
    )
    assert logged == [(recorded,)]
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [m["duration_ms"] for m in status["migrations"]] == [recorded]
    assert format_duration_ms(recorded) in run_cli(capsys, project, db_url, "status").out


def test_mixed_file_failing_before_anything_commits_is_failed_not_half_applied(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "INSERT INTO nowhere VALUES (1);\nCREATE INDEX CONCURRENTLY later_idx ON nowhere (id);"
    project = make_project(pair(V1, "mixed early failure", sql))
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 1, result.err
    assert "nothing of it was applied" in result.err
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert status["migrations"][0]["state"] == "failed"
