"""Proofs on the target's major: where scratch databases go, and what a proof on another major says.

* By default the scratch database is made on the target's own server (the suite's role is a
  superuser), so baseline, roundtrip, simulate and trace prove things on the target's major;
  a role without CREATEDB falls back to the embedded server, which says what it is for.
* With `--scratch-url` on the session's other server (PostgreSQL 15 target and 18 scratch, and
  the reverse), baseline, `validate --roundtrip`, `rollback dry-run --simulate` and
  `validate --trace` give the same answers as on the target's own server.
* Other tools' tables a migration refers to exist on the scratch database and never count.
* A failure on the scratch database says it happened there; nothing is left behind, even when
  the proof is interrupted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import applied_versions, query, run_cli

import pgshift
from pgshift.config import load_settings
from pgshift.errors import MigrationFailed

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
USERS = (
    "CREATE TABLE ba (ba_id bigint PRIMARY KEY, email text NOT NULL, note text);\n"
    "CREATE DOMAIN positive AS integer NOT NULL CHECK (VALUE > 0);\n"
    "CREATE TABLE orders (id serial PRIMARY KEY, ba_id bigint NOT NULL REFERENCES ba,"
    " n positive);"
)
DROP_USERS = "DROP TABLE orders, ba;\nDROP DOMAIN positive;"
VIEW = "CREATE VIEW ba_emails AS SELECT ba.ba_id, ba.email FROM ba WHERE ba.note IS NULL;"
INDEX = "CREATE INDEX CONCURRENTLY orders_ba ON orders (ba_id);"
PROOF_CODES = {"apply-failed", "rollback-failed", "rollback-incomplete", "reapply-mismatch"}


@pytest.fixture(autouse=True)
def _no_backups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")


def _project(make_project: ProjectMaker) -> Path:
    make_project(
        migration_pair(
            V1, "users", USERS, rollback_sql="DROP TABLE orders, ba; DROP DOMAIN positive;"
        )
    )
    make_project(migration_pair(V2, "view", VIEW, rollback_sql="DROP VIEW ba_emails;"))
    undo = "DROP INDEX CONCURRENTLY orders_ba;"
    return make_project(migration_pair(V3, "index", INDEX, rollback_sql=undo))


def _built_by_hand(url: str) -> None:
    for statement in (USERS, VIEW):
        query(url, statement)


def _scratch_databases(url: str) -> list[str]:
    rows = query(url, "SELECT datname FROM pg_database WHERE datname LIKE 'pgshift\\_scratch\\_%'")
    return [str(r[0]) for r in rows]


def _major(url: str) -> int:
    return int(query(url, "SHOW server_version_num")[0][0]) // 10000


# -- the default: the target's own server ------------------------------------------------------


def test_baseline_proves_on_the_targets_own_server_by_default(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    _built_by_hand(db_url)
    result = run_cli(capsys, project, db_url, "baseline", V2, "--yes", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["versions"] == [V1, V2] and report["differences"] == []
    assert report["proven_on"].startswith("scratch database pgshift_scratch_baseline_")
    assert f"on the target's server (PostgreSQL {_major(db_url)}." in report["proven_on"]
    assert not (project / ".pgshift" / "pgdata").exists()  # no embedded server was needed
    assert _scratch_databases(db_url) == []
    assert applied_versions(db_url) == [V1, V2]


def test_the_library_roundtrip_simulate_and_trace_use_the_targets_server(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--target", V2).code == 0
    report = pgshift.validate(settings, roundtrip=True, trace=True)
    assert not [f for f in report.findings if f.code in PROOF_CODES], report.findings
    assert report.trace is not None and report.trace.schema_from == "target"
    assert [s.sql for s in report.trace.statements] == [INDEX.rstrip(";")]
    assert "on the target's server (PostgreSQL" in report.trace.scratch
    project_ = pgshift.load_project(settings, allow_problems=True)
    with pgshift.connect(settings, purpose="rollback") as target:
        dry = pgshift.preview_rollback(project_, target, count=2, simulate=True)
    assert dry.simulation is not None and dry.simulation.ok, dry.simulation
    assert "on the target's server (PostgreSQL" in dry.simulation.where
    assert not (project / ".pgshift" / "pgdata").exists()
    assert _scratch_databases(db_url) == []


def test_a_role_that_may_not_create_a_database_falls_back_to_the_embedded_server(
    make_project: ProjectMaker,
    plain_role_url: str,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's case on a PostgreSQL 15 target: a NOT NULL column, no --scratch-url, and the
    proof on the embedded PostgreSQL 18 (a role that may not create a database) succeeds."""
    from pgshift import embedded

    project = _project(make_project)
    _built_by_hand(plain_role_url)
    try:
        result = run_cli(capsys, project, plain_role_url, "baseline", V2, "--yes", "--json")
        assert result.code == 0, result.err
        assert "for scratch databases: the target's role app_" in result.err
        assert "may not create a database (no CREATEDB)" in result.err
        assert "no database is configured" not in result.err
        proven = result.json()["proven_on"]
        assert "on the embedded server (PostgreSQL 18." in proven, proven
        assert "may not create a database" in proven
        assert applied_versions(db_url) == [V1, V2]
        url = embedded.server_status(project).url
        assert url is not None and _scratch_databases(url) == []
    finally:
        embedded.stop(project)


# -- another major: --scratch-url on the session's other server --------------------------------


def test_baseline_on_another_major_gives_the_same_answer(
    make_project: ProjectMaker,
    db_url: str,
    other_server: PgServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _project(make_project)
    _built_by_hand(db_url)
    scratch = ["--scratch-url", other_server.admin_url]
    wrong = run_cli(capsys, project, db_url, "baseline", V3, "--yes", *scratch)
    assert wrong.code == 4, wrong.err  # a real difference is still one
    assert "missing: index public.orders_ba" in wrong.err
    assert "not_null" not in wrong.err
    assert f"on the --scratch-url server (PostgreSQL {other_server.major}." in wrong.err
    result = run_cli(capsys, project, db_url, "baseline", V2, "--yes", "--json", *scratch)
    assert result.code == 0, result.err
    assert result.json()["differences"] == []
    assert applied_versions(db_url) == [V1, V2]
    assert _scratch_databases(other_server.admin_url) == []


def test_the_library_baseline_on_another_major(
    make_project: ProjectMaker, db_url: str, other_server: PgServer
) -> None:
    project = _project(make_project)
    _built_by_hand(db_url)
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )
    loaded = pgshift.load_project(settings)
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_baseline(loaded, target, V2, scratch_url=other_server.admin_url)
        assert plan.matches, plan.differences
        assert plan.across_majors is True
        result = pgshift.baseline(plan, target)
    assert result.versions == (V1, V2)


def test_roundtrip_simulate_and_trace_on_another_major(
    make_project: ProjectMaker,
    db_url: str,
    other_server: PgServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _project(make_project)
    scratch = ["--scratch-url", other_server.admin_url]
    assert run_cli(capsys, project, db_url, "up", "--yes", "--target", V2).code == 0
    trip = run_cli(capsys, project, db_url, "validate", "--roundtrip", "--json", *scratch)
    assert trip.json()["roundtrip"] == {"ran": True, "ok": True, "problems": 0}, trip.out
    traced = run_cli(capsys, project, db_url, "validate", "--trace", *scratch)
    assert "trace: 1 statement(s) run on a scratch copy of the target's schema" in traced.out
    assert f"on the --scratch-url server (PostgreSQL {other_server.major}." in traced.out
    assert "CREATE INDEX CONCURRENTLY orders_ba" in traced.out and "failed:" not in traced.out
    simulated = run_cli(
        capsys, project, db_url, "rollback", "dry-run", "--count", "2", "--simulate", "--json",
        *scratch,
    )  # fmt: skip
    assert simulated.code == 0, simulated.out + simulated.err
    simulation = simulated.json()["simulation"]
    assert simulation["ok"] is True, simulation
    assert [s["status"] for s in simulation["steps"]] == ["reverted", "reverted"]
    assert f"(PostgreSQL {other_server.major}." in simulation["where"]
    assert _scratch_databases(other_server.admin_url) == []
    assert applied_versions(db_url) == [V1, V2]


# -- other tools' tables -----------------------------------------------------------------------

TOOL_TABLES = (
    "CREATE TABLE __diesel_schema_migrations (version varchar(50) PRIMARY KEY NOT NULL,"
    " run_on timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    "CREATE TABLE schema_migration (version varchar(48) NOT NULL,"
    " version_self int NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX schema_migration_version_idx ON schema_migration (version)",
    "CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL,"
    " is_applied boolean NOT NULL, tstamp timestamp DEFAULT now())",
)
# As Lemmy does: a trigger on Diesel's table, which Diesel (not a migration) created.
FORBID = (
    "CREATE FUNCTION forbid_diesel_cli() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN RAISE 'use the server'; END $$;\n"
    "CREATE TRIGGER forbid_diesel_cli BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE\n"
    "    ON __diesel_schema_migrations EXECUTE FUNCTION forbid_diesel_cli();\n"
    "GRANT SELECT ON goose_db_version TO PUBLIC;"
)


def test_other_tools_tables_exist_on_the_scratch_database_and_never_count(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    make_project(migration_pair(V1, "users", USERS, rollback_sql=DROP_USERS))
    project = make_project(
        migration_pair(
            V2,
            "forbid",
            FORBID,
            rollback_sql="DROP TRIGGER forbid_diesel_cli ON __diesel_schema_migrations;\n"
            "DROP FUNCTION forbid_diesel_cli();\nREVOKE SELECT ON goose_db_version FROM PUBLIC;",
        )
    )
    for statement in (*TOOL_TABLES, USERS, FORBID):
        query(db_url, statement)
    query(db_url, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true)")
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )
    loaded = pgshift.load_project(settings)
    with pgshift.connect(settings) as target:
        for scratch in (None, pg_server.admin_url):
            plan = pgshift.plan_baseline(loaded, target, V2, scratch_url=scratch)
            assert plan.matches, plan.differences
    trip = run_cli(capsys, project, db_url, "validate", "--roundtrip", "--json")
    assert trip.json()["roundtrip"]["ok"] is True, trip.out
    done = run_cli(capsys, project, db_url, "baseline", V2, "--yes")
    assert done.code == 0, done.err
    assert applied_versions(db_url) == [V1, V2]


# -- failures ----------------------------------------------------------------------------------


def test_a_failure_on_the_scratch_database_says_it_happened_there(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        migration_pair(V1, "uses", "INSERT INTO made_by_hand VALUES (1);", rollback_sql="SELECT 1;")
    )
    query(db_url, "CREATE TABLE made_by_hand (id int)")
    result = run_cli(capsys, project, db_url, "baseline", V1, "--yes")
    assert result.code == 1, result.err
    assert "failed on a scratch database pgshift_scratch_baseline_" in result.err
    assert "on the target's server (PostgreSQL" in result.err
    assert "not on the target (nothing was changed there)" in result.err
    assert 'relation "made_by_hand" does not exist' in result.err
    assert _scratch_databases(db_url) == [] and applied_versions(db_url) == []
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )
    with pgshift.connect(settings) as target, pytest.raises(MigrationFailed) as failed:
        pgshift.plan_baseline(pgshift.load_project(settings), target, V1)
    assert failed.value.exit_code == 1 and failed.value.version == V1
    assert "failed on a scratch database pgshift_scratch_baseline_" in failed.value.message


def test_an_interrupted_proof_leaves_no_scratch_database(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgshift.ops import apply

    project = _project(make_project)
    _built_by_hand(db_url)
    seen: list[str] = []

    def interrupted(self: apply.Runner, plan: object) -> None:
        seen.extend(_scratch_databases(db_url))
        raise KeyboardInterrupt

    monkeypatch.setattr(apply.Runner, "run", interrupted)
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )
    with pgshift.connect(settings) as target, pytest.raises(KeyboardInterrupt):
        pgshift.plan_baseline(pgshift.load_project(settings), target, V2)
    assert len(seen) == 1 and seen[0].startswith("pgshift_scratch_baseline_")
    comment = query(db_url, "SELECT 1 WHERE %s IN (SELECT datname FROM pg_database)", (seen[0],))
    assert comment == [] and _scratch_databases(db_url) == []


def test_leftover_scratch_databases_are_recognisable(db_url: str) -> None:
    from pgshift.db.scratch import ScratchServer, leftovers

    server = ScratchServer(target_url=db_url)
    made = server.create("baseline")
    try:
        found = dict(leftovers(db_url))
        assert made.name in found
        assert found[made.name].startswith("pgshift scratch database (baseline) made by ")
        assert "safe to drop if left over" in found[made.name]
        # The listing docs/adopting.md gives, as written there.
        doc = Path(__file__).resolve().parents[2] / "docs" / "adopting.md"
        lines = doc.read_text(encoding="utf-8").splitlines()
        line = next(x for x in lines if x.startswith('psql "$DATABASE_URL" -c "SELECT datname'))
        listing = line.split(' -c "', 1)[1].removesuffix('"')
        assert [r[0] for r in query(db_url, listing)] == [made.name]
    finally:
        server.drop(made)
    assert made.name not in dict(leftovers(db_url))
