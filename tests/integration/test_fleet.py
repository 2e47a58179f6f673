"""Fleets on real PostgreSQL: tenant schemas and separate databases, waves, failures, resume.

Each test builds a fleet of two databases of their own plus three tenant schemas in the test's
database, runs it through the library or the command line, and reads every target back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import CliResult, query, run_cli, targets_file

import pgshift
from pgshift import events
from pgshift.config import load_settings
from pgshift.db.lock import lock_key
from pgshift.errors import DatabaseUnavailable

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
TENANTS = ("acme", "globex", "initech")


@pytest.fixture
def databases(pg_server: PgServer) -> Iterator[list[str]]:
    """Two more databases on the test's server, dropped afterwards."""
    names = [f"fleet_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        pg_server.create_database(name)
    try:
        yield [pg_server.url(n) for n in names]
    finally:
        for name in names:
            pg_server.drop_database(name)


def _project(make_project: ProjectMaker) -> Path:
    """Three migrations with a side effect each, unqualified (they land in the tenant)."""
    make_project(
        migration_pair(
            V1, "effects", "CREATE TABLE effects (v text); INSERT INTO effects VALUES ('1');"
        )
    )
    make_project(
        migration_pair(
            V2, "items", "CREATE TABLE items (id int); INSERT INTO effects VALUES ('2');"
        )
    )
    return make_project(
        migration_pair(
            V3, "more", "ALTER TABLE items ADD COLUMN n int; INSERT INTO effects VALUES ('3');"
        )
    )


def _targets_file(root: Path, db_url: str, databases: list[str], canary: str | None = None) -> Path:
    lines = []
    for i, url in enumerate(databases):
        lines += ["[[target]]", f'name = "db{i}"', f'url = "{url}"']
        if canary == f"db{i}":
            lines.append('labels = ["canary"]')
    for tenant in TENANTS:
        lines += ["[[target]]", f'name = "{tenant}"', f'url = "{db_url}"', f'schema = "{tenant}"']
        if canary == tenant:
            lines.append('labels = ["canary"]')
    path = root / "fleet.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _settings(root: Path) -> pgshift.Settings:
    return load_settings(
        {"migrations_dir": str(root / "migrations")},
        env={"DB_BACKUP_DIR": str(root / "backups"), "DB_BACKUP_ENABLED": "false"},
        cwd=root,
    )


def _effects(url: str, schema: str = "public") -> list[str]:
    rows = query(url, f'SELECT v FROM "{schema}".effects ORDER BY v')  # test-only names
    return [r[0] for r in rows]


def _applied(url: str, history: str = "pgshift") -> list[str]:
    return [r[0] for r in query(url, f'SELECT version FROM "{history}".applied ORDER BY version')]


def test_tenant_schemas_and_databases_each_get_their_own_history(
    make_project: ProjectMaker, db_url: str, databases: list[str]
) -> None:
    root = _project(make_project)
    specs = pgshift.load_targets(_targets_file(root, db_url, databases))
    project = pgshift.load_project(_settings(root))
    seen: list[events.FleetEvent] = []
    result = pgshift.fleet_up(project, specs, concurrency=3, backup=False, on_event=seen.append)
    assert result.exit_code == 0
    assert [o.status for o in result.outcomes] == ["applied"] * 5
    for url in databases:
        assert _applied(url) == [V1, V2, V3]
        assert _effects(url) == ["1", "2", "3"]
    for tenant in TENANTS:
        assert _applied(db_url, f"{tenant}_pgshift") == [V1, V2, V3]
        assert _effects(db_url, tenant) == ["1", "2", "3"]
    # Nothing landed in the shared database's default places.
    assert query(db_url, "SELECT to_regclass('public.effects'), to_regnamespace('pgshift')") == [
        (None, None)
    ]
    names = {e.target for e in seen if isinstance(e, events.TargetEvent)}
    assert names == {"db0", "db1", *TENANTS}
    assert isinstance(seen[-1], events.FleetProgress)
    assert (seen[-1].done, seen[-1].failed, seen[-1].remaining) == (5, 0, 0)
    # The default target keeps today's lock key; each tenant has its own.
    keys = {lock_key(s.history_schema()) for s in specs}
    assert len(keys) == 4 and lock_key("pgshift") in keys

    again = pgshift.fleet_up(project, specs, backup=False)
    assert [o.status for o in again.outcomes] == ["up-to-date"] * 5
    status = pgshift.fleet_status(project, specs)
    assert [(r.target, r.state, r.head, r.pending) for r in status.rows] == [
        (s.name, "up-to-date", V3, 0) for s in specs
    ]
    assert status.exit_code == 0


def test_a_failing_target_in_the_middle_fails_alone_and_a_rerun_resumes(
    make_project: ProjectMaker, db_url: str, databases: list[str]
) -> None:
    root = _project(make_project)
    specs = pgshift.load_targets(_targets_file(root, db_url, databases))
    project = pgshift.load_project(_settings(root))
    query(db_url, "CREATE SCHEMA globex; CREATE TABLE globex.items (other text)")
    result = pgshift.fleet_up(project, specs, concurrency=2, backup=False)
    by_name = {o.target: o for o in result.outcomes}
    assert by_name["globex"].status == "failed" and by_name["globex"].exit_code == 1
    assert "already exists" in (by_name["globex"].message or "")
    assert by_name["globex"].applied == 1  # V1 went in before V2 failed
    assert {n for n, o in by_name.items() if o.status == "applied"} == {
        "db0", "db1", "acme", "initech"
    }  # fmt: skip
    assert result.exit_code == 1
    status = pgshift.fleet_status(project, specs)
    row = next(r for r in status.rows if r.target == "globex")
    assert (row.state, row.head, row.pending, row.failed) == ("failed", V1, 1, 1)
    assert status.exit_code == 1

    query(db_url, "DROP TABLE globex.items")
    seen: list[events.FleetEvent] = []
    rerun = pgshift.fleet_up(project, specs, backup=False, on_event=seen.append)
    assert rerun.exit_code == 0
    assert {o.target: o.status for o in rerun.outcomes}["globex"] == "applied"
    assert [o.target for o in rerun.outcomes if o.status == "applied"] == ["globex"]
    started_runs = {e.target for e in seen if isinstance(e, events.TargetEvent)}
    assert started_runs == {"globex"}  # the others were only read
    assert _effects(db_url, "globex") == ["1", "2", "3"]


def test_a_failing_canary_stops_the_rest(
    make_project: ProjectMaker, db_url: str, databases: list[str]
) -> None:
    root = _project(make_project)
    specs = pgshift.load_targets(_targets_file(root, db_url, databases, canary="acme"))
    project = pgshift.load_project(_settings(root))
    query(db_url, "CREATE SCHEMA acme; CREATE TABLE acme.items (other text)")
    result = pgshift.fleet_up(project, specs, backup=False)
    assert {o.target: o.status for o in result.outcomes} == {
        "acme": "failed", "db0": "not-started", "db1": "not-started",
        "globex": "not-started", "initech": "not-started",
    }  # fmt: skip
    assert result.exit_code == 1
    for url in databases:
        assert query(url, "SELECT to_regnamespace('pgshift')") == [(None,)]


def test_max_failures_stops_starting_targets(
    make_project: ProjectMaker, db_url: str, databases: list[str]
) -> None:
    root = _project(make_project)
    specs = pgshift.load_targets(_targets_file(root, db_url, databases))
    project = pgshift.load_project(_settings(root))
    for url in databases:  # db0 and db1 come first and both fail
        query(url, "CREATE TABLE items (other text)")
    result = pgshift.fleet_up(project, specs, concurrency=1, max_failures=1, backup=False)
    assert [o.status for o in result.outcomes] == ["failed"] + ["not-started"] * 4


def test_the_runner_lock_is_verified_from_the_second_session(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(make_project)
    settings = load_settings(
        {"migrations_dir": str(root / "migrations"), "database_url": db_url},
        env={"DB_BACKUP_ENABLED": "false"},
        cwd=root,
    )
    project = pgshift.load_project(settings)
    with pgshift.connect(settings) as target:
        pgshift.apply(pgshift.plan_up(project, target, to=V1), target)
        assert target.facts.engine == "postgresql"
    # An engine that says yes without locking: the lock session's pid holds nothing.
    from pgshift.db.target import Target

    real = Target.verify_runner_lock
    monkeypatch.setattr(Target, "verify_runner_lock", lambda self, pid: real(self, pid + 1))
    with pgshift.connect(settings) as target, pytest.raises(DatabaseUnavailable) as refused:
        pgshift.apply(pgshift.plan_up(project, target), target)
    assert "does not enforce session advisory locks" in refused.value.message
    assert refused.value.exit_code == 3
    assert query(db_url, "SELECT version FROM pgshift.applied") == [(V1,)]


def test_fleet_commands_from_the_command_line(
    make_project: ProjectMaker,
    db_url: str,
    databases: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _project(make_project)
    targets = str(_targets_file(root, db_url, databases))
    plan = run_cli(capsys, root, None, "fleet", "plan", "--targets", targets, "--json")
    assert plan.code == 0, plan.err
    assert {t["target"]: len(t["versions"]) for t in plan.json()["targets"]} == dict.fromkeys(
        ["db0", "db1", *TENANTS], 3
    )
    up = run_cli(capsys, root, None, "fleet", "up", "--targets", targets, "--skip-backup", "--yes")
    assert up.code == 0, up.err
    assert "done 5, failed 0, remaining 0" in up.out
    status = run_cli(capsys, root, None, "fleet", "status", "--targets", targets, "--json")
    assert status.code == 0
    assert status.json()["summary"]["up-to-date"] == 5
    for text in (plan.out, up.out, status.out):
        assert "postgresql://" not in text
    bad = root / "bad.toml"
    bad.write_text('[[target]]\nname = "x"\n', encoding="utf-8")
    refused = run_cli(capsys, root, None, "fleet", "status", "--targets", str(bad))
    assert refused.code == 2
    assert f"{bad}:1: key 'url' is required" in refused.err


def test_an_unreachable_target_is_a_row_not_a_crash(
    make_project: ProjectMaker, db_url: str, pg_server: PgServer
) -> None:
    root = _project(make_project)
    gone = pg_server.url("no_such_database_here")
    path = root / "fleet.toml"
    path.write_text(
        f'[[target]]\nname = "ok"\nurl = "{db_url}"\n[[target]]\nname = "gone"\nurl = "{gone}"\n',
        encoding="utf-8",
    )
    project = pgshift.load_project(_settings(root))
    specs = pgshift.load_targets(path)
    result = pgshift.fleet_up(project, specs, backup=False)
    assert [(o.status, o.exit_code) for o in result.outcomes] == [("applied", 0), ("failed", 3)]
    status = pgshift.fleet_status(project, specs)
    assert [r.state for r in status.rows] == ["up-to-date", "unreachable"]
    assert status.exit_code == 3
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM effects").fetchone() == (3,)


def test_the_tenants_of_one_database_are_read_over_one_session(
    make_project: ProjectMaker, db_url: str
) -> None:
    """A no-op `fleet up` and `fleet status` over N tenants of one database open one session
    (their histories are read together), and still see each tenant's own drift and pending."""
    from tests.integration.test_api import _sessions_opened_by

    root = _project(make_project)
    tenants = [f"t{i}" for i in range(6)]
    specs = pgshift.load_targets(_tenants_file(root, db_url, tenants))
    project = pgshift.load_project(_settings(root))
    assert pgshift.fleet_up(project, specs, backup=False).exit_code == 0

    noop: list[pgshift.FleetResult] = []
    assert _sessions_opened_by(db_url, lambda: noop.append(pgshift.fleet_up(project, specs))) == 1
    assert [o.status for o in noop[0].outcomes] == ["up-to-date"] * 6
    status: list[pgshift.FleetStatus] = []
    read = _sessions_opened_by(db_url, lambda: status.append(pgshift.fleet_status(project, specs)))
    assert read == 1
    assert [r.state for r in status[0].rows] == ["up-to-date"] * 6

    query(db_url, f"UPDATE t1_pgshift.applied SET checksum = 'changed' WHERE version = '{V2}'")
    query(db_url, f"DELETE FROM t4_pgshift.applied WHERE version = '{V3}'")
    status.clear()
    read = _sessions_opened_by(db_url, lambda: status.append(pgshift.fleet_status(project, specs)))
    assert read == 1
    assert [(r.target, r.state, r.pending) for r in status[0].rows] == [
        ("t0", "up-to-date", 0), ("t1", "drifted", 0), ("t2", "up-to-date", 0),
        ("t3", "up-to-date", 0), ("t4", "pending", 1), ("t5", "up-to-date", 0),
    ]  # fmt: skip
    assert status[0].exit_code == 4

    # Only a target with work opens its own sessions (the runner's and the lock's).
    query(db_url, f"UPDATE t1_pgshift.applied SET checksum = (SELECT checksum FROM"
          f" t0_pgshift.applied WHERE version = '{V2}') WHERE version = '{V2}'")  # fmt: skip
    query(db_url, f"INSERT INTO t4_pgshift.applied SELECT * FROM t0_pgshift.applied"
          f" WHERE version = '{V3}'")  # fmt: skip
    newco = (*specs, pgshift.TargetSpec("newco", db_url, "newco"))
    ran: list[pgshift.FleetResult] = []
    up = _sessions_opened_by(db_url, lambda: ran.append(pgshift.fleet_up(project, newco)))
    assert [o.status for o in ran[0].outcomes] == ["up-to-date"] * 6 + ["applied"]
    assert up == 3
    assert _effects(db_url, "newco") == ["1", "2", "3"]


def test_fleet_up_shows_the_plan_and_asks_like_up(
    make_project: ProjectMaker,
    db_url: str,
    databases: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 17 finding 14: `fleet up` applied to every target without showing the plan or
    asking, and refused `--yes`."""
    import os
    import sys

    from tests.support import on_terminal

    root = _project(make_project)
    targets = str(_targets_file(root, db_url, databases))
    refused = run_cli(capsys, root, None, "fleet", "up", "--targets", targets, "--skip-backup")
    assert refused.code == 2, refused.err
    assert "refusing to apply migrations to 5 target(s) without confirmation" in refused.err
    assert "pass --yes" in refused.err
    assert all(name in refused.out for name in ("db0", "db1", *TENANTS))  # the plan was shown
    assert query(db_url, "SELECT to_regclass('acme_pgshift.applied')") == [(None,)]

    def answering(answer: bytes) -> tuple[int, str]:
        argv = [sys.executable, "-m", "pgshift", "fleet", "up", "--targets", targets,
                "--skip-backup", "--dir", str(root / "migrations")]  # fmt: skip
        env = {**os.environ, "COLUMNS": "200"}
        return on_terminal(argv, cwd=root, env=env, answers=[(b"[y/N]", answer)])

    code, screen = answering(b"n\n")
    assert code == 2 and "Apply to 5 target(s)? [y/N]" in screen, screen
    assert "cancelled: nothing was applied" in screen
    assert query(db_url, "SELECT to_regclass('acme_pgshift.applied')") == [(None,)]
    code, screen = answering(b"y\n")
    assert code == 0, screen
    assert "done 5, failed 0, remaining 0" in screen
    assert query(db_url, "SELECT count(*) FROM acme_pgshift.applied") == [(3,)]


def test_a_schema_name_pgshift_cannot_use_is_exit_2_naming_it(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17 findings 16 and 15: `schema = "t1; DROP TABLE x"` ended in exit 70
    InvalidName (on PostgreSQL 15), and a targets file's errors were headed "problems in the
    migration files"."""
    root = _project(make_project)
    bad = root / "fleet.toml"
    bad.write_text(
        f'[[target]]\nname = "t1"\nurl = "{db_url}"\nschema = "t1; DROP TABLE x"\n',
        encoding="utf-8",
    )
    for verb in ("plan", "up", "status"):
        extra = ["--yes"] if verb == "up" else []
        refused = run_cli(capsys, root, None, "fleet", verb, "--targets", str(bad), *extra)
        assert refused.code == 2, refused.err
        assert "1 problem in the targets file:" in refused.err
        assert "migration files" not in refused.err
        assert f"{bad}:4: key 'schema': 't1; DROP TABLE x' is not a schema name" in refused.err
    assert query(db_url, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't1%'") == [(0,)]


def test_a_tenant_schema_that_needs_quoting_is_created_as_named(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schema name the new rule accepts but SQL must quote (capitals, a dash) is used as
    written: the tenant and its history land in exactly those schemas."""
    root = _project(make_project)
    targets = root / "fleet.toml"
    targets.write_text(
        f'[[target]]\nname = "t7"\nurl = "{db_url}"\nschema = "Tenant-7"\n', encoding="utf-8"
    )
    up = run_cli(capsys, root, None, "fleet", "up", "--targets", str(targets), "--yes",
                 "--skip-backup")  # fmt: skip
    assert up.code == 0, up.out + up.err
    assert query(db_url, 'SELECT count(*) FROM "Tenant-7_pgshift".applied') == [(3,)]
    assert query(db_url, 'SELECT count(*) FROM "Tenant-7".effects') == [(3,)]  # one per migration


def _tenants_file(root: Path, db_url: str, tenants: list[str]) -> Path:
    return targets_file(root / "tenants.toml", [(t, db_url, t) for t in tenants])


def _outcomes(result: pgshift.FleetResult) -> list[dict[str, object]]:
    """The outcomes as `fleet up --json` prints them, without the time each took."""
    import json
    from dataclasses import asdict

    found = [{k: v for k, v in asdict(o).items() if k != "duration_ms"} for o in result.outcomes]
    return list(json.loads(json.dumps(found)))


def test_a_no_op_fleet_up_reads_every_history_once(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 18: the command's no-op `fleet up` read every history twice, for the plan it shows
    and again for the run. When the plan finds nothing to apply, its read is the run's (CLI and
    library); with work the run still reads again. What it prints and reports is unchanged."""
    from tests.integration.test_api import _sessions_opened_by

    from pgshift.db import store
    from pgshift.history import History

    root = _project(make_project)
    tenants = [f"t{i}" for i in range(4)]
    path = _tenants_file(root, db_url, tenants)
    specs = pgshift.load_targets(path)
    project = pgshift.load_project(_settings(root))
    assert pgshift.fleet_up(project, specs, backup=False).exit_code == 0
    reference = _outcomes(pgshift.fleet_up(project, specs, backup=False))  # reads for itself

    reads: list[tuple[str, ...]] = []
    real = store.read_histories

    def counted(url: str | None, schemas: list[str], purpose: str) -> dict[str, History]:
        reads.append(tuple(schemas))
        return real(url, schemas, purpose)

    monkeypatch.setattr(store, "read_histories", counted)
    argv = ("fleet", "up", "--targets", str(path), "--skip-backup", "--yes")
    ran: list[CliResult] = []

    def command(*extra: str) -> None:
        ran.append(run_cli(capsys, root, None, *argv, *extra))

    for extra in ((), ("--json",)):
        reads.clear()
        opened = _sessions_opened_by(db_url, lambda: command(*extra))  # noqa: B023 (called now)
        assert (opened, len(reads)) == (1, 1)  # as `fleet status`: one session, one read
        assert reads[0] == tuple(f"{t}_pgshift" for t in tenants)
    text, document = ran
    assert text.code == 0 and document.code == 0
    for tenant in tenants:
        assert f"[{tenant}] up-to-date\n" in text.out
    assert "fleet up: 0 target(s) migrated (0 migration(s)), 4 up to date" in text.out
    targets = document.json()["targets"]
    assert [{k: v for k, v in t.items() if k != "duration_ms"} for t in targets] == reference
    assert document.json()["summary"]["up-to-date"] == 4

    # The library: the plan's read is the run's when it is handed over.
    reads.clear()
    plan = pgshift.fleet_plan(project, specs)
    assert plan.histories is not None
    seen: list[events.FleetEvent] = []
    result = pgshift.fleet_up(project, specs, backup=False, plan=plan, on_event=seen.append)
    assert len(reads) == 1
    assert _outcomes(result) == reference
    finished = [e for e in seen if isinstance(e, events.TargetFinished)]
    assert sorted((e.target, e.status) for e in finished) == [(t, "up-to-date") for t in tenants]
    # ... and only for the targets it planned: others are read by the run itself.
    assert pgshift.fleet_up(project, specs[:2], backup=False, plan=plan).exit_code == 0
    assert len(reads) == 2

    # With work and --yes, nobody reads the plan before the run: it is the one read alone, the
    # run takes that read, and only the target with work opens sessions (its own and its lock's),
    # where before the plan opened one more for it and the run read every history again.
    newco = _tenants_file(root, db_url, [*tenants, "newco"])
    reads.clear()
    argv_newco = ("fleet", "up", "--targets", str(newco), "--skip-backup", "-y")
    ran.clear()
    opened = _sessions_opened_by(
        db_url, lambda: ran.append(run_cli(capsys, root, None, *argv_newco))
    )
    (up,) = ran
    assert up.code == 0, up.err
    assert (opened, len(reads)) == (3, 1)
    planned = [line.split() for line in up.out.splitlines() if line.startswith("newco ")]
    assert [row[:3] for row in planned] == [["newco", "pending", "3"]]
    assert "[newco] applied: 3 migration(s)" in up.out
    assert _effects(db_url, "newco") == ["1", "2", "3"]
    assert pgshift.fleet_plan(project, pgshift.load_targets(newco)).histories is not None
    # Asked for the plan alone (`fleet plan`, or before a prompt), a target with work is planned
    # on its own session and the run reads again: time passes at a prompt.
    with_work = (*specs, pgshift.TargetSpec("later", db_url, "later"))
    assert pgshift.fleet_plan(project, with_work).histories is None
    read_alone = pgshift.fleet_plan(project, with_work, on_targets=False)
    assert read_alone.histories is not None
    assert {o.target: o.status for o in read_alone.outcomes}["later"] == "pending"


FLEET_NOOP = """
import json, sys
from pgshift.cli.main import main
code = main(sys.argv[1:])
watched = {"psycopg", "pglast", "rich", "pgshift.db.target", "pgshift.ops.apply", "pgshift.ops.run"}
print(json.dumps({"code": code, "loaded": sorted(watched & set(sys.modules))}))
"""


def test_a_fleet_with_nothing_to_do_loads_no_runner_driver_parser_or_ui(
    make_project: ProjectMaker, db_url: str
) -> None:
    """DESIGN.md principle 6 for fleets: a no-op `fleet up` and `fleet status` read the
    histories and stop there; the runner (ops/apply.py, ops/run.py), the Target, psycopg,
    pglast and rich are loaded only by a target with work."""
    import json
    import os
    import subprocess
    import sys

    root = _project(make_project)
    path = _tenants_file(root, db_url, ["t0", "t1", "t2"])
    env = {**os.environ, "DB_BACKUP_ENABLED": "false"}

    def run(*args: str) -> tuple[int, list[str]]:
        argv = [sys.executable, "-c", FLEET_NOOP, "fleet", *args, "--targets", str(path), "-q"]
        done = subprocess.run(
            argv, cwd=root, env=env, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout.strip().splitlines()[-1])
        return int(found["code"]), [str(m) for m in found["loaded"]]

    code, loaded = run("up", "--yes", "--skip-backup")  # three tenants with work: the runner
    assert code == 0
    assert {"pgshift.db.target", "pgshift.ops.apply", "pgshift.ops.run"} <= set(loaded)
    assert run("up", "--yes", "--skip-backup") == (0, [])
    assert run("status") == (0, [])
    assert _effects(db_url, "t1") == ["1", "2", "3"]
