"""A backfill in a fleet of tenant schemas: each tenant's table is backfilled along its own key,
with its progress in its own history schema, through the same path as any migration; a tenant
whose batch fails fails alone, and a re-run continues it after its last committed batch."""

from __future__ import annotations

from pathlib import Path

from tests.plugins.project import ProjectMaker, migration_pair, tenant_fleet
from tests.support import query

import pgshift
from pgshift.config import load_settings

V1, V2 = "20250101000000", "20250102000000"
TENANTS = ("acme", "globex", "initech")


def _project(make_project: ProjectMaker) -> Path:
    make_project(
        migration_pair(
            V1,
            "items",
            "CREATE TABLE items (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0);\n"
            "INSERT INTO items (n) SELECT 0 FROM generate_series(1, 3000);",
        )
    )
    return make_project(
        migration_pair(
            V2,
            "count items",
            "UPDATE items SET n = n + 1;",
            extra_header=["@kind: backfill", "@batch-size: 1000"],
        )
    )


def _counts(db_url: str, tenant: str) -> list[tuple[int, int]]:
    rows = query(db_url, f'SELECT n, count(*) FROM "{tenant}".items GROUP BY n ORDER BY n')
    return [(int(n), int(c)) for n, c in rows]


def test_each_tenant_schema_backfills_its_own_table_and_a_failed_one_resumes(
    make_project: ProjectMaker, db_url: str
) -> None:
    root = _project(make_project)
    specs = pgshift.load_targets(tenant_fleet(root, db_url, TENANTS))
    settings = load_settings(
        {"migrations_dir": str(root / "migrations")},
        env={"DB_BACKUP_ENABLED": "false", "PGSHIFT_BACKFILL_BATCH_TIME": "0"},
        cwd=root,
    )
    project = pgshift.load_project(settings)

    # globex gets its table first, with a row in its 2nd batch that makes n + 1 overflow.
    first = pgshift.fleet_up(project, [s for s in specs if s.name == "globex"], backup=False)
    assert first.exit_code == 0
    query(db_url, "UPDATE globex.items SET n = 0")  # undo globex's backfill: run it again
    query(db_url, "DELETE FROM globex_pgshift.applied WHERE version = %s", [V2])
    query(db_url, "DELETE FROM globex_pgshift.backfill")
    query(db_url, "UPDATE globex.items SET n = 2147483647 WHERE id = 1500")

    result = pgshift.fleet_up(project, specs, concurrency=3, backup=False)
    statuses = {o.target: o.status for o in result.outcomes}
    assert statuses == {"acme": "applied", "globex": "failed", "initech": "applied"}
    for tenant in ("acme", "initech"):
        assert _counts(db_url, tenant) == [(1, 3000)]
        done = query(
            db_url, f'SELECT batches, finished_at IS NOT NULL FROM "{tenant}_pgshift".backfill'
        )
        assert done == [(3, True)]
    # globex: its first batch committed, the failing one rolled back whole.
    assert _counts(db_url, "globex") == [(0, 1999), (1, 1000), (2147483647, 1)]
    assert query(db_url, "SELECT batches FROM globex_pgshift.backfill") == [(1,)]
    status = pgshift.fleet_status(project, specs)
    assert {r.target: r.state for r in status.rows} == {
        "acme": "up-to-date", "globex": "failed", "initech": "up-to-date",
    }  # fmt: skip

    query(db_url, "UPDATE globex.items SET n = 0 WHERE id = 1500")
    again = pgshift.fleet_up(project, specs, backup=False)
    assert {o.target: o.status for o in again.outcomes}["globex"] == "applied"
    assert _counts(db_url, "globex") == [(1, 3000)]  # the first batch did not run twice
    assert query(db_url, "SELECT to_regclass('public.items'), to_regnamespace('pgshift')") == [
        (None, None)
    ]
