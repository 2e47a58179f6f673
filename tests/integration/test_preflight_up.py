"""Pre-flight wired into `up`, the library's plan_up/apply and `fleet up`, on each server.

A `SET NOT NULL` over a column with NULLs is the case: `up` must refuse it with exit 1 before
anything is taken or changed (no backup file, no history row, the table as it was), and with
`--skip-preflight` run it and fail at the statement as it always did, the skip logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import query, run_cli

import pgshift
from pgshift.config import load_settings
from pgshift.errors import PreflightFailed

V1 = "20250101000000"
SETUP = (
    "CREATE TABLE orders (id bigint PRIMARY KEY, region text);"
    " INSERT INTO orders VALUES (17, NULL), (23, NULL), (30, 'eu')"
)
NOT_NULL = "ALTER TABLE orders ALTER COLUMN region SET NOT NULL;"
DETAIL = "SET NOT NULL on orders.region will fail: 2 rows have NULL in region (id 17, 23)"


def _project(make_project: ProjectMaker) -> Path:
    return make_project(pair(V1, "region not null", NOT_NULL))


def _history_rows(db_url: str) -> int:
    if not query(db_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'pgshift'"):
        return 0
    return int(query(db_url, "SELECT count(*) FROM pgshift.log")[0][0])


def _nullable(db_url: str) -> bool:
    rows = query(
        db_url,
        "SELECT is_nullable FROM information_schema.columns"
        " WHERE table_name = 'orders' AND column_name = 'region'",
    )
    return bool(rows[0][0] == "YES")


def _backups(project: Path) -> list[Path]:
    folder = project / ".pgshift" / "backups"
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_up_refuses_a_predicted_failure_before_anything_is_taken(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    query(db_url, SETUP)
    before = _history_rows(db_url)
    result = run_cli(capsys, project, db_url, "up", "--yes")
    assert result.code == 1, result.err
    assert f"{V1}_region_not_null.sql:6: {DETAIL}" in result.err
    assert _backups(project) == []
    assert _history_rows(db_url) == before
    assert _nullable(db_url)
    assert query(db_url, "SELECT id FROM orders WHERE region IS NULL ORDER BY id") == [(17,), (23,)]

    as_json = run_cli(capsys, project, db_url, "up", "--yes", "--json")
    assert as_json.code == 1
    data = as_json.json()
    assert data["error"]["exit_code"] == 1 and data["run_id"] is None
    [check] = [r for r in data["preflight"] if r["check"] == "not-null"]
    assert set(check) == {
        "file", "line", "check", "status", "count", "examples", "detail", "duration_ms"
    }  # fmt: skip
    assert (check["status"], check["count"], check["examples"]) == ("fail", 2, ["17", "23"])
    assert check["detail"] == DETAIL and check["line"] == 6
    assert _backups(project) == [] and _history_rows(db_url) == before


def test_skip_preflight_fails_at_the_statement_and_logs_the_skip(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    query(db_url, SETUP)
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-preflight", "--skip-backup")
    assert result.code == 1
    assert "skipped (--skip-preflight)" in result.err
    assert "contains null values" in result.err  # PostgreSQL's own error, as before
    assert _nullable(db_url)
    events = [r[0] for r in query(db_url, "SELECT event FROM pgshift.log ORDER BY id")]
    assert events.index("preflight_skipped") < events.index("run_started")
    assert "migration_failed" in events


def test_dry_run_and_json_show_every_check(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **pair(V1, "region not null", NOT_NULL),
            **pair("20250102000000", "orders id check", "ALTER TABLE orders ADD CHECK (id > 0);"),
        }
    )
    query(db_url, SETUP)
    text = run_cli(capsys, project, db_url, "up", "--dry-run")
    assert text.code == 0
    assert "Pre-flight" in text.out and DETAIL in text.out
    assert "pass" in text.out and "expected-duration" in text.out

    data = run_cli(capsys, project, db_url, "up", "--dry-run", "--json").json()
    statuses = {(r["check"], r["status"]) for r in data["preflight"]}
    assert {("not-null", "fail"), ("check", "pass"), ("expected-duration", "pass")} <= statuses
    assert data["preflight_skipped"] is False
    skipped = run_cli(capsys, project, db_url, "up", "--dry-run", "--json", "--skip-preflight")
    assert skipped.json()["preflight"] == [] and skipped.json()["preflight_skipped"] is True
    assert _history_rows(db_url) == 0


def test_clean_data_applies_and_json_carries_the_checks(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    query(db_url, SETUP + "; UPDATE orders SET region = 'us' WHERE region IS NULL")
    result = run_cli(capsys, project, db_url, "up", "--yes", "--json", "--skip-backup")
    assert result.code == 0, result.err
    data = result.json()
    assert ("not-null", "pass") in {(r["check"], r["status"]) for r in data["preflight"]}
    assert not _nullable(db_url)


def test_library_plan_up_and_apply_refuse(make_project: ProjectMaker, db_url: str) -> None:
    root = _project(make_project)
    query(db_url, SETUP)
    settings = load_settings(
        {"migrations_dir": str(root / "migrations")},
        env={"DATABASE_URL": db_url, "DB_BACKUP_DIR": str(root / "backups")},
        cwd=root,
    )
    project = pgshift.load_project(settings)
    with pytest.raises(PreflightFailed):
        pgshift.up(settings)  # the one-call form refuses alike
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_up(project, target)
        assert (plan.preflight[0].check, plan.preflight[0].status) == ("not-null", "fail")
        with pytest.raises(PreflightFailed) as refused:
            pgshift.apply(plan, target)
        assert refused.value.exit_code == 1
        assert [r.detail for r in refused.value.results] == [DETAIL]
        assert not (root / "backups").exists() and _history_rows(db_url) == 0

        unchecked = pgshift.plan_up(project, target, preflight=False)
        assert unchecked.preflight == () and unchecked.preflight_skipped
        with pytest.raises(pgshift.PgshiftError) as failed:
            pgshift.apply(unchecked, target, backup=False)
        assert not isinstance(failed.value, PreflightFailed)
    assert query(db_url, "SELECT count(*) FROM pgshift.log WHERE event = 'preflight_skipped'") == [
        (1,)
    ]


@pytest.fixture
def tenant_db(pg_server: PgServer) -> Iterator[str]:
    name = f"pre_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name)
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


def test_fleet_reports_the_bad_tenant_alone(
    make_project: ProjectMaker, db_url: str, tenant_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(make_project)
    query(db_url, SETUP)  # the bad tenant
    query(tenant_db, SETUP + "; UPDATE orders SET region = 'us' WHERE region IS NULL")
    targets = root / "fleet.toml"
    targets.write_text(
        f'[[target]]\nname = "bad"\nurl = "{db_url}"\n'
        f'[[target]]\nname = "good"\nurl = "{tenant_db}"\n',
        encoding="utf-8",
    )
    settings = load_settings(
        {"migrations_dir": str(root / "migrations")},
        env={"DB_BACKUP_DIR": str(root / "backups"), "DB_BACKUP_ENABLED": "false"},
        cwd=root,
    )
    project = pgshift.load_project(settings)
    specs = pgshift.load_targets(targets)
    planned = {o.target: o for o in pgshift.fleet_plan(project, specs).outcomes}
    assert planned["bad"].status == "failed" and DETAIL in (planned["bad"].message or "")
    assert planned["good"].status == "pending"

    result = pgshift.fleet_up(project, specs, backup=False)
    by_name = {o.target: o for o in result.outcomes}
    assert (by_name["bad"].status, by_name["bad"].exit_code) == ("failed", 1)
    assert DETAIL in (by_name["bad"].message or "")
    assert by_name["good"].status == "applied"
    assert result.exit_code == 1
    assert _nullable(db_url) and not _nullable(tenant_db)
    assert _history_rows(db_url) == 0

    cli = run_cli(
        capsys, root, None, "fleet", "up", "--targets", str(targets), "--skip-backup", "--yes"
    )
    assert cli.code == 1
    assert DETAIL in cli.out + cli.err


def test_an_expected_duration_over_three_times_the_estimate_warns_and_applies(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        pair(
            V1,
            "narrow qty",
            "ALTER TABLE items ALTER COLUMN qty TYPE integer;",
            extra_header=["@estimated-duration: 1ms"],
        )
    )
    query(
        db_url,
        "CREATE TABLE items (id bigint PRIMARY KEY, qty bigint, note text);"
        " INSERT INTO items SELECT g, g, repeat('x', 200) FROM generate_series(1, 20000) g;"
        " ANALYZE items",
    )
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 0, result.err
    assert "pre-flight warning:" in result.err
    assert "over 3x its @estimated-duration (1ms)" in result.err
    assert query(
        db_url,
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_name = 'items' AND column_name = 'qty'",
    ) == [("integer",)]


def test_a_fleet_builds_the_pending_statements_once_and_checks_each_tenant_alone(
    make_project: ProjectMaker, db_url: str
) -> None:
    from pgshift.ops.fleet import connect_target
    from pgshift.ops.planning import SharedPlanner

    root = _project(make_project)
    query(db_url, "CREATE SCHEMA bad; CREATE SCHEMA good")
    query(db_url, SETUP.replace("orders", "bad.orders"))
    query(db_url, SETUP.replace("orders", "good.orders") + "; UPDATE good.orders SET region = 'x'")
    targets = root / "fleet.toml"
    targets.write_text(
        "".join(
            f'[[target]]\nname = "{t}"\nurl = "{db_url}"\nschema = "{t}"\n' for t in ("bad", "good")
        ),
        encoding="utf-8",
    )
    settings = load_settings(
        {"migrations_dir": str(root / "migrations")},
        env={"DB_BACKUP_ENABLED": "false"},
        cwd=root,
    )
    project = pgshift.load_project(settings)
    planner = SharedPlanner(project)
    plans = {}
    for spec in pgshift.load_targets(targets):
        with connect_target(settings, spec) as target:
            plans[spec.name] = planner.plan(target)
    # One set of Pending statements (their parse trees built once) served both tenants ...
    made = planner.statements(project.migrations)
    assert made is planner.statements(project.migrations)
    assert "trees" in vars(made[0])
    # ... and each tenant's checks still judged its own rows.
    bad = [r.status for r in plans["bad"].preflight if r.check != "expected-duration"]
    good = [r.status for r in plans["good"].preflight if r.check != "expected-duration"]
    assert (bad, good) == (["fail"], ["pass"])
    assert any("2 rows have NULL in region" in r.detail for r in plans["bad"].preflight)


#: Runs `pgshift <argv>` in a fresh interpreter and prints, last, which heavy modules it loaded.
_LOADED = """
import sys
from pgshift.cli.main import main
code = main(sys.argv[1:])
watched = ("pglast", "pgshift.rewrite.preflight", "pgshift.db.probe", "pgshift.ops.health_rules")
print(sorted(m for m in watched if m in sys.modules))
sys.exit(code)
"""


def test_an_up_of_new_tables_needs_neither_the_parser_nor_the_monitors_probe(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh process's `up` of migrations that only create, index and fill new tables, the
    files read before (memos warm, as `up --dry-run` leaves them): pre-flight is answered from
    the loader's table heads without pglast, with the full derivation's results, and a run
    shorter than the health interval imports nothing for the monitor's samples."""
    import json
    import os
    import subprocess
    import sys

    create = "CREATE TABLE t (id int, name text);\nCREATE INDEX ON t (name);\n"
    project = make_project(
        {
            **pair(V1, "t", create + "INSERT INTO t VALUES (1, 'a');"),
            **pair("20250102000000", "u", "CREATE TABLE u (id int);\nCREATE INDEX ON u (id);"),
        }
    )
    assert run_cli(capsys, project, db_url, "up", "--dry-run").code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DB_", "PGSHIFT_"))}
    argv = ["up", "--yes", "--json", "--skip-backup", "--dir", str(project / "migrations")]
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, *argv, "--database-url", db_url],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    *document, loaded = done.stdout.strip().splitlines()
    assert loaded == "[]"
    report = json.loads("\n".join(document))
    assert [s["status"] for s in report["steps"]] == ["applied", "applied"]
    assert [(p["check"], p["status"], p["detail"]) for p in report["preflight"]] == [
        (
            "expected-duration",
            "not-checked",
            f"index build of {t}: not estimated: the table is not on the target",
        )
        for t in ("t", "u")
    ]
