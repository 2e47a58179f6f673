"""`validate --trace` on real PostgreSQL (every major the suite runs): locks and rewrites seen.

What the server does is the point, so each statement is one whose behaviour the manual pins
down: a volatile default rewrites on ADD COLUMN, a constant one does not (11+); int -> bigint
rewrites, widening a varchar does not; CREATE INDEX holds SHARE on its table; CREATE INDEX
CONCURRENTLY is refused in a transaction, so it runs alone and shows its documented lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_text, rollback_text
from tests.support import query, run_cli, tables

V1, V2 = "20250101000000", "20250102000000"
USERS = "CREATE TABLE users (id int PRIMARY KEY, name varchar(10), n int);"
CHANGES = (
    "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
    "ALTER TABLE users ADD COLUMN active boolean DEFAULT true;\n"
    "ALTER TABLE users ALTER COLUMN n TYPE bigint;\n"
    "ALTER TABLE users ALTER COLUMN name TYPE varchar(20);\n"
    "CREATE INDEX users_name_idx ON users (name);\n"
    "CREATE INDEX CONCURRENTLY users_n_idx ON users (n);"
)


@pytest.fixture(autouse=True)
def _no_backups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")


def _project(make_project: ProjectMaker) -> Any:
    return make_project(
        {
            f"{V1}_add_users.sql": migration_text(V1, "add_users", USERS),
            f"{V1}_add_users_rollback.sql": rollback_text(V1, "add_users", "DROP TABLE users;"),
            f"{V2}_change_users.sql": migration_text(
                V2, "change_users", CHANGES, extra_header=["@estimated-duration: 1 minute"]
            ),
            f"{V2}_change_users_rollback.sql": rollback_text(
                V2, "change_users", "ALTER TABLE users DROP COLUMN token;"
            ),
        }
    )


def _by_sql(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["sql"]: s for s in trace["statements"]}


def _modes(statement: dict[str, Any], relation: str) -> set[str]:
    return {lock["mode"] for lock in statement["locks"] if lock["relation"] == relation}


def _check_changes(statements: dict[str, dict[str, Any]]) -> None:
    lines = [line.rstrip(";") for line in CHANGES.splitlines()]
    volatile, constant, bigint, widen, index, concurrent = (statements[sql] for sql in lines)
    assert volatile["rewritten"] == ["public.users"]
    assert "ACCESS EXCLUSIVE" in _modes(volatile, "public.users")
    assert constant["rewritten"] == []
    assert "ACCESS EXCLUSIVE" in _modes(constant, "public.users")
    assert bigint["rewritten"] == ["public.users"]
    assert widen["rewritten"] == []
    assert _modes(index, "public.users") == {"SHARE"}
    assert index["rewritten"] == [] and index["ran_alone"] is False
    assert concurrent["ran_alone"] is True and concurrent["locks_observed"] is False
    assert concurrent["locks"] == []
    assert concurrent["documented_locks"] == ["SHARE UPDATE EXCLUSIVE on table users"]


def _trace_databases(server: PgServer) -> list[str]:
    rows = query(
        server.admin_url,
        "SELECT datname FROM pg_database WHERE datname LIKE 'pgshift_scratch_trace%'",
    )
    return [r[0] for r in rows]


def test_trace_from_the_migrations_alone(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    project = _project(make_project)
    result = run_cli(
        capsys, project, None, "validate", "--trace", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    data = result.json()
    trace = data["trace"]
    assert trace["schema_from"] == "migrations"
    statements = _by_sql(trace)
    assert len(statements) == 7  # both migrations: nothing is applied anywhere
    create = statements[USERS.rstrip(";")]
    assert create["created"] == ["public.users"] and create["rewritten"] == []
    _check_changes(statements)
    assert _trace_databases(pg_server) == []
    disagreements = [f for f in data["findings"] if f["code"] == "trace-disagrees"]
    assert all(f["severity"] == "warning" for f in disagreements)


def test_trace_on_a_copy_of_the_target_runs_only_what_is_pending(
    capsys: pytest.CaptureFixture[str],
    make_project: ProjectMaker,
    pg_server: PgServer,
    db_url: str,
) -> None:
    project = _project(make_project)
    up = run_cli(capsys, project, db_url, "up", "--yes", "--target", V1)
    assert up.code == 0, up.out + up.err
    result = run_cli(
        capsys, project, db_url, "validate", "--trace", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    trace = result.json()["trace"]
    assert trace["schema_from"] == "target"
    statements = _by_sql(trace)
    assert len(statements) == 6
    _check_changes(statements)
    assert tables(db_url) >= {"users"}  # the target has only its first migration
    assert query(db_url, "SELECT count(*) FROM pg_indexes WHERE tablename = 'users'") == [(1,)]
    assert _trace_databases(pg_server) == []


def test_trace_text_output(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    project = _project(make_project)
    result = run_cli(
        capsys, project, None, "validate", "--trace", "--scratch-url", pg_server.admin_url
    )
    assert "trace: 7 statement(s) run on a scratch copy of an empty database" in result.out
    assert "  locks: SHARE on public.users" in result.out
    assert "  rewrote: public.users" in result.out
    assert "ran alone (outside a transaction), locks not observable; documented:" in result.out


def test_the_lock_table_and_the_server_agree_on_per_column_options(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    """Per-column options take SHARE UPDATE EXCLUSIVE (tablecmds.c, AT_SetOptions) on every
    version the suite runs. The trace found the lock table predicting ACCESS EXCLUSIVE here;
    now both say the same, so the trace reports no disagreement (tests/unit/test_trace.py
    covers the disagreement itself)."""
    sql = "ALTER TABLE users ALTER COLUMN n SET (n_distinct = 100);"
    project = make_project(
        {
            f"{V1}_add_users.sql": migration_text(V1, "add_users", USERS),
            f"{V1}_add_users_rollback.sql": rollback_text(V1, "add_users", "DROP TABLE users;"),
            f"{V2}_tune.sql": migration_text(V2, "tune", sql),
            f"{V2}_tune_rollback.sql": rollback_text(
                V2, "tune", "ALTER TABLE users ALTER COLUMN n RESET (n_distinct);"
            ),
        }
    )
    result = run_cli(
        capsys, project, None, "validate", "--trace", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    data = result.json()
    assert [f for f in data["findings"] if f["code"] == "trace-disagrees"] == []
    (traced,) = [s for s in data["trace"]["statements"] if "n_distinct" in s["sql"]]
    assert {(lock["mode"], lock["relation"]) for lock in traced["locks"]} >= {
        ("SHARE UPDATE EXCLUSIVE", "public.users")
    }


def test_the_library_returns_the_trace_in_its_report(
    make_project: ProjectMaker, pg_server: PgServer
) -> None:
    import pgshift
    from pgshift.config import load_settings

    project = _project(make_project)
    settings = load_settings({"migrations_dir": str(project / "migrations")}, env={}, cwd=project)
    report = pgshift.validate(settings, trace=True, scratch_url=pg_server.admin_url)
    assert isinstance(report.trace, pgshift.TraceReport)
    (index,) = [s for s in report.trace.statements if s.sql.startswith("CREATE INDEX users_name")]
    assert pgshift.TracedLock("public.users", "r", "SHARE") in index.locks
    assert pgshift.validate(settings).trace is None


SCHEMA = """CREATE TABLE teams (id int PRIMARY KEY);
CREATE TABLE users (id serial PRIMARY KEY, team_id int REFERENCES teams (id), boss int, n int);
CREATE INDEX users_n_idx ON users (n);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER users_stamp BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION stamp();
CREATE MATERIALIZED VIEW team_sizes AS SELECT team_id, count(*) FROM users GROUP BY team_id;"""

#: What a trace of a real history reported as disagreements although the server did what the
#: lock table says: locks on the table's indexes and sequence, on the table itself through a
#: self-referencing key, foreign-key checks on the referenced table, a backfill blocking through
#: its transaction's ALTER, the new file TRUNCATE and REFRESH give, a table created and dropped
#: in the same file.
ARTIFACTS = """ALTER TABLE users ADD CONSTRAINT users_boss FOREIGN KEY (boss) REFERENCES users (id);
ALTER TABLE users ALTER COLUMN n TYPE bigint;
INSERT INTO teams VALUES (1);
INSERT INTO users (team_id) VALUES (1);
ALTER TABLE users ADD COLUMN flag boolean;
UPDATE users SET flag = true;
DROP TRIGGER users_touch ON users;
ALTER TABLE users DROP CONSTRAINT users_team_id_fkey;
REFRESH MATERIALIZED VIEW team_sizes;
CREATE TABLE audit (id int REFERENCES teams (id));
DROP TABLE audit;
TRUNCATE teams;
COMMENT ON TABLE users IS 'people';
ALTER INDEX users_n_idx RENAME TO users_n_index;
REINDEX TABLE users;"""

#: A lock the table cannot know: CASCADE drops the trigger, which locks its table.
REAL = "DROP FUNCTION stamp() CASCADE;"


def test_trace_reports_real_disagreements_and_not_its_own_artifacts(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    v3 = "20250103000000"
    project = make_project(
        {
            f"{V1}_schema.sql": migration_text(V1, "schema", SCHEMA),
            f"{V1}_schema_rollback.sql": rollback_text(V1, "schema", "DROP TABLE users, teams;"),
            f"{V2}_changes.sql": migration_text(
                V2, "changes", ARTIFACTS, extra_header=["@estimated-duration: 1 minute"]
            ),
            f"{V2}_changes_rollback.sql": rollback_text(V2, "changes", "SELECT 1;"),
            f"{v3}_cascade.sql": migration_text(v3, "cascade", REAL),
            f"{v3}_cascade_rollback.sql": rollback_text(v3, "cascade", "SELECT 1;"),
        }
    )
    result = run_cli(
        capsys, project, None, "validate", "--trace", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    data = result.json()
    statements = _by_sql(data["trace"])
    assert all(s["error"] is None for s in statements.values())
    drop_trigger = statements["DROP TRIGGER users_touch ON users"]
    assert _modes(drop_trigger, "public.users") >= {"ACCESS EXCLUSIVE"}
    assert drop_trigger["predicted_locks"] == ["ACCESS EXCLUSIVE on table users"]
    disagreements = [f for f in data["findings"] if f["code"] == "trace-disagrees"]
    assert [(Path(f["file"]).name, f["message"]) for f in disagreements] == [
        (
            f"{v3}_cascade.sql",
            "the server also held ACCESS EXCLUSIVE on public.users, which the lock table does"
            " not name",
        )
    ]
