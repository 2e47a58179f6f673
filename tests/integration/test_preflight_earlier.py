"""A violation an earlier pending migration of the same run creates, predicted by `up` itself.

Each case is two migrations: the first changes the rows (adds a column, updates, inserts,
deletes), the second is a statement that then fails on the rows the first leaves. On the bad
data `up --yes` must refuse with exit 1 before anything is taken or changed (no backup, no
history, schema and rows as they were), the check run on the derived state, not skipped as
"not checked"; on clean data the same migrations apply, every data check "pass". On each
server the suite runs (15 and 18): what the derived query predicts is checked against what
PostgreSQL then does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from tests.plugins.project import ProjectMaker
from tests.plugins.project import migration_pair as pair
from tests.support import query, run_cli

ORDERS = "CREATE TABLE orders (id bigint PRIMARY KEY, region text, code text, qty int);"
ITEMS = "CREATE TABLE items (id bigserial PRIMARY KEY, code text);"


@dataclass(frozen=True)
class Case:
    """Two migrations, the data that makes the second fail, and data on which both apply."""

    id: str
    first: str
    second: str
    bad: str
    clean: str
    check: str  # the failing check's kind
    detail: str  # a part of the refusal's text


CASES = [
    Case(
        "add-column-without-default-then-set-not-null",
        "ALTER TABLE orders ADD COLUMN status text;",
        "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;",
        ORDERS + "INSERT INTO orders (id) VALUES (7), (9)",
        ORDERS,
        "not-null",
        "SET NOT NULL on orders.status will fail: 2 rows have NULL in status (id 7, 9)",
    ),
    Case(
        "add-column-with-a-null-default-then-set-not-null",
        "ALTER TABLE orders ADD COLUMN status text DEFAULT NULL;",
        "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;",
        ORDERS + "INSERT INTO orders (id) VALUES (7)",
        ORDERS,
        "not-null",
        "1 row has NULL in status (id 7)",
    ),
    Case(
        "add-column-default-then-a-check-it-violates",
        "ALTER TABLE orders ADD COLUMN priority int DEFAULT 5;",
        "ALTER TABLE orders ADD CONSTRAINT capped CHECK (priority <= qty);",
        ORDERS + "INSERT INTO orders (id, qty) VALUES (1, 9), (2, 3)",
        ORDERS + "INSERT INTO orders (id, qty) VALUES (1, 9), (2, 5)",
        "check",
        "1 row violates (priority <= qty) (id 2)",
    ),
    Case(
        "add-column-default-then-a-type-change-it-does-not-fit",
        "ALTER TABLE orders ADD COLUMN big bigint DEFAULT 3000000000;",
        "ALTER TABLE orders ALTER COLUMN big TYPE integer;",
        ORDERS + "INSERT INTO orders (id) VALUES (4)",
        ORDERS,
        "type-change",
        "1 row has a value that does not convert to integer (id 4)",
    ),
    Case(
        "update-then-set-not-null",
        "UPDATE orders SET region = 'eu' WHERE region IS NULL AND id < 100;",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL;",
        ORDERS + "INSERT INTO orders (id, region) VALUES (1, NULL), (150, NULL), (2, 'us')",
        ORDERS + "INSERT INTO orders (id, region) VALUES (1, NULL), (150, 'us'), (2, 'us')",
        "not-null",
        "1 row has NULL in region (id 150)",
    ),
    Case(
        "update-then-unique-index",
        "UPDATE orders SET code = upper(code) WHERE code IS NOT NULL;",
        "CREATE UNIQUE INDEX orders_code ON orders (code);",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, 'a'), (2, 'A'), (3, 'b')",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, 'a'), (2, 'c'), (3, 'b')",
        "unique",
        "1 key is held by more than one row (code A (2 rows))",
    ),
    Case(
        "update-then-check",
        "UPDATE orders SET qty = qty - 1 WHERE region = 'eu';",
        "ALTER TABLE orders ADD CONSTRAINT positive CHECK (qty > 0);",
        ORDERS + "INSERT INTO orders (id, region, qty) VALUES (1, 'eu', 1), (2, 'us', 1)",
        ORDERS + "INSERT INTO orders (id, region, qty) VALUES (1, 'eu', 2), (2, 'us', 1)",
        "check",
        "1 row violates (qty > 0) (id 1)",
    ),
    Case(
        "insert-values-then-unique-index",
        "INSERT INTO orders (id, code) VALUES (100, 'A'), (101, 'B');",
        "CREATE UNIQUE INDEX orders_code ON orders (code);",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, 'A')",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, 'C')",
        "unique",
        "1 key is held by more than one row (code A (2 rows))",
    ),
    Case(
        "insert-values-then-set-not-null-the-default-decides",
        "INSERT INTO orders (id) VALUES (100);",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL;",
        ORDERS + "INSERT INTO orders (id, region) VALUES (1, 'eu')",
        ORDERS.replace("region text", "region text DEFAULT 'eu'")
        + "INSERT INTO orders (id, region) VALUES (1, 'eu')",
        "not-null",
        "1 row has NULL in region (id 100)",
    ),
    Case(
        "insert-values-with-a-serial-key-then-unique-index",
        "INSERT INTO items (code) VALUES ('A');",
        "CREATE UNIQUE INDEX items_code ON items (code);",
        ITEMS + "INSERT INTO items (code) VALUES ('A')",
        ITEMS + "INSERT INTO items (code) VALUES ('B')",
        "unique",
        "1 key is held by more than one row (code A (2 rows))",
    ),
    Case(
        "delete-parent-rows-then-foreign-key",
        "DELETE FROM customers WHERE id = 2;",
        "ALTER TABLE orders ADD FOREIGN KEY (qty) REFERENCES customers;",
        ORDERS
        + "CREATE TABLE customers (id int PRIMARY KEY); INSERT INTO customers VALUES (1), (2);"
        " INSERT INTO orders (id, qty) VALUES (10, 1), (11, 2)",
        ORDERS
        + "CREATE TABLE customers (id int PRIMARY KEY); INSERT INTO customers VALUES (1), (2);"
        " INSERT INTO orders (id, qty) VALUES (10, 1), (11, 1)",
        "foreign-key",
        "1 row has no referenced row in customers (qty -> id) (id 11)",
    ),
]

V1, V2 = "20250101000000", "20250102000000"

_SCHEMA = """
SELECT table_name::text, column_name::text, data_type::text, is_nullable::text,
       coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT tablename::text, indexname::text, indexdef, '', '' FROM pg_indexes
 WHERE schemaname = 'public'
UNION ALL SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid), '', ''
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
ORDER BY 1, 2
"""


def _snapshot(db_url: str) -> tuple[object, ...]:
    """The public schema and every row of its tables: what a refusal must leave as it was."""
    tables = [
        r[0]
        for r in query(
            db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
    ]
    with psycopg.connect(db_url) as conn:
        rows = [
            conn.execute(
                sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(t))
            ).fetchall()
            for t in tables
        ]
    history = query(db_url, "SELECT to_regclass('pgshift.log') IS NOT NULL")[0][0]
    logged = query(db_url, "SELECT count(*) FROM pgshift.log")[0][0] if history else 0
    return (query(db_url, _SCHEMA), rows, logged)


def _project(make_project: ProjectMaker, case: Case) -> Path:
    return make_project({**pair(V1, "first", case.first), **pair(V2, "second", case.second)})


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_up_refuses_a_violation_an_earlier_migration_creates(
    make_project: ProjectMaker, db_url: str, case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project, case)
    query(db_url, case.bad)
    before = _snapshot(db_url)
    result = run_cli(capsys, project, db_url, "up", "--yes", "--json")
    assert result.code == 1, result.out + result.err
    data = result.json()
    checks = [r for r in data["preflight"] if r["check"] != "expected-duration"]
    assert [(r["check"], r["status"]) for r in checks] == [(case.check, "fail")], checks
    assert case.detail in checks[0]["detail"]
    assert Path(checks[0]["file"]).name.startswith(V2)
    assert not (project / ".pgshift" / "backups").exists()
    assert _snapshot(db_url) == before
    text = run_cli(capsys, project, db_url, "up", "--yes")
    assert text.code == 1 and case.detail in text.err
    assert _snapshot(db_url) == before
    # Without pre-flight the second migration fails on the server exactly as predicted.
    skipped = run_cli(capsys, project, db_url, "up", "--yes", "--skip-preflight", "--skip-backup")
    assert skipped.code == 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_same_migrations_over_clean_data_apply(
    make_project: ProjectMaker, db_url: str, case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project, case)
    query(db_url, case.clean)
    result = run_cli(capsys, project, db_url, "up", "--yes", "--json", "--skip-backup")
    assert result.code == 0, result.out + result.err
    checks = [r for r in result.json()["preflight"] if r["check"] != "expected-duration"]
    assert [(r["check"], r["status"]) for r in checks] == [(case.check, "pass")], checks
