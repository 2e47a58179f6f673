"""Expand and contract across a fleet of tenant schemas: `fleet up` runs each tenant's expand
phase on its own table (derived from that tenant's catalog), `fleet status` shows them
expanded, and `pgshift contract` on one tenant's target contracts that tenant alone."""

from __future__ import annotations

from tests.plugins.project import ProjectMaker, migration_pair, tenant_fleet
from tests.support import query

import pgshift
from pgshift.config import load_settings

V1, V2 = "20250101000000", "20250102000000"
TENANTS = ("acme", "globex")


def _columns(db_url: str, tenant: str) -> dict[str, str]:
    rows = query(
        db_url,
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'items'",
        [tenant],
    )
    return {str(name): str(kind) for name, kind in rows}


def test_each_tenant_expands_its_own_table_and_contracts_alone(
    make_project: ProjectMaker, db_url: str
) -> None:
    root = make_project(
        migration_pair(
            V1,
            "items",
            "CREATE TABLE items (id bigserial PRIMARY KEY, label text NOT NULL);\n"
            "INSERT INTO items (label) SELECT 'x' || g FROM generate_series(1, 500) g;",
        )
    )
    specs = pgshift.load_targets(tenant_fleet(root, db_url, TENANTS))
    settings = load_settings(
        {"migrations_dir": str(root / "migrations")},
        env={"DB_BACKUP_ENABLED": "false"},
        cwd=root,
    )
    first = pgshift.fleet_up(pgshift.load_project(settings), specs, backup=False)
    assert first.exit_code == 0  # the tenants' tables, used by the running code from now on
    make_project(
        migration_pair(
            V2,
            "rename label",
            "ALTER TABLE items RENAME COLUMN label TO title;",
            extra_header=["@expand-contract: true"],
        )
    )
    project = pgshift.load_project(settings)
    result = pgshift.fleet_up(project, specs, concurrency=2, backup=False)
    assert {o.target: o.status for o in result.outcomes} == {t: "applied" for t in TENANTS}, [
        o.message for o in result.outcomes
    ]
    status = pgshift.fleet_status(project, specs)
    assert {r.target: (r.state, r.expanded) for r in status.rows} == {
        t: ("up-to-date", 1) for t in TENANTS
    }
    for tenant in TENANTS:
        assert set(_columns(db_url, tenant)) == {"id", "label", "title"}
        query(db_url, f"INSERT INTO \"{tenant}\".items (label) VALUES ('old code')")
        assert query(
            db_url, f'SELECT count(*) FROM "{tenant}".items WHERE title IS DISTINCT FROM label'
        ) == [(0,)]

    [acme] = [s for s in specs if s.name == "acme"]
    with pgshift.connect(pgshift.target_settings(settings, acme)) as target:
        plan = pgshift.plan_contract(target, project)
        pgshift.apply(plan, target, backup=False)
    assert set(_columns(db_url, "acme")) == {"id", "title"}
    assert set(_columns(db_url, "globex")) == {"id", "label", "title"}
