"""Pre-flight on real PostgreSQL: every check's prediction against what the statement then does.

Each case builds real data, asks `preflight` about one pending statement, then runs the
statement itself: it must fail exactly when a check said "fail" (and succeed when every check
passed). That is what makes the checks' SQL a fact about PostgreSQL rather than a guess, on
each server the suite runs (15 and 18). The checks' own bounds are tested too: READ ONLY, never
more than ACCESS SHARE, `lock_timeout` 100 ms, and PGSHIFT_PREFLIGHT_TIMEOUT.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import migration_pair

from pgshift.config import load_settings
from pgshift.db.target import Target
from pgshift.ops.preflight import failures, preflight
from pgshift.rewrite.preflight_light import (
    EXPECTED_DURATION,
    FAIL,
    NOT_CHECKED,
    PASS,
    PreflightResult,
)
from pgshift.source.loader import load_migrations

V1, V2 = "20250101000000", "20250102000000"
ORDERS = (
    "CREATE TABLE orders (id bigint PRIMARY KEY, region text, qty bigint, code text, note text);"
)


@dataclass(frozen=True)
class Case:
    """Data, one pending statement, and the statuses its checks must report (in order)."""

    id: str
    setup: str
    statement: str
    statuses: tuple[tuple[str, str], ...]  # (check, status) of every data check, in order
    examples: tuple[str, ...] | None = None  # of the first failing check, as a set
    on_15: tuple[tuple[str, str], ...] | None = None  # statuses where the server is 15


CASES = [
    Case(
        "set-not-null-over-nulls",
        ORDERS
        + "INSERT INTO orders (id, region) VALUES (1, 'eu'), (2, NULL), (3, 'us'), (4, NULL)",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
        (("not-null", FAIL),),
        examples=("2", "4"),
    ),
    Case(
        "set-not-null-clean",
        ORDERS + "INSERT INTO orders (id, region) VALUES (1, 'eu'), (2, 'us')",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
        (("not-null", PASS),),
    ),
    Case(
        "add-column-not-null-without-default-on-rows",
        ORDERS + "INSERT INTO orders (id) VALUES (7)",
        "ALTER TABLE orders ADD COLUMN shipped date NOT NULL",
        (("empty-table", FAIL),),
        examples=("7",),
    ),
    Case(
        "add-column-not-null-without-default-on-an-empty-table",
        ORDERS,
        "ALTER TABLE orders ADD COLUMN shipped date NOT NULL",
        (("empty-table", PASS),),
    ),
    Case(
        "add-column-not-null-with-default",
        ORDERS + "INSERT INTO orders (id) VALUES (7)",
        "ALTER TABLE orders ADD COLUMN shipped boolean NOT NULL DEFAULT false",
        (),
    ),
    Case(
        "add-primary-key-over-nulls-named-by-ctid",
        "CREATE TABLE pairs (a int, b int); INSERT INTO pairs VALUES (1, 1), (NULL, 2)",
        "ALTER TABLE pairs ADD PRIMARY KEY (a)",
        (("not-null", FAIL), ("unique", PASS)),
        examples=("(0,2)",),
    ),
    Case(
        "add-primary-key-over-duplicates",
        "CREATE TABLE pairs (a int, b int); INSERT INTO pairs VALUES (1, 1), (1, 2), (2, 1)",
        "ALTER TABLE pairs ADD PRIMARY KEY (a)",
        (("not-null", PASS), ("unique", FAIL)),
        examples=("1 (2 rows)",),
    ),
    Case(
        "add-primary-key-clean",
        "CREATE TABLE pairs (a int, b int); INSERT INTO pairs VALUES (1, 1), (2, 1)",
        "ALTER TABLE pairs ADD PRIMARY KEY (a, b)",
        (("not-null", PASS), ("unique", PASS)),
    ),
    Case(
        "unique-index-over-duplicates",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, 'A'), (2, 'A'), (3, 'B')",
        "CREATE UNIQUE INDEX orders_code ON orders (code)",
        (("unique", FAIL),),
        examples=("A (2 rows)",),
    ),
    Case(
        "unique-index-over-repeated-nulls",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, NULL), (2, NULL), (3, 'B')",
        "CREATE UNIQUE INDEX orders_code ON orders (code)",
        (("unique", PASS),),
    ),
    Case(
        "unique-index-nulls-not-distinct-over-repeated-nulls",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, NULL), (2, NULL), (3, 'B')",
        "CREATE UNIQUE INDEX orders_code ON orders (code) NULLS NOT DISTINCT",
        (("unique", FAIL),),
    ),
    Case(
        "partial-unique-index-with-duplicates-outside-it",
        ORDERS + "INSERT INTO orders (id, code, qty) VALUES (1, 'A', 0), (2, 'A', 5), (3, 'B', 1)",
        "CREATE UNIQUE INDEX orders_code ON orders (code) WHERE qty > 0",
        (("unique", PASS),),
    ),
    Case(
        "partial-unique-index-with-duplicates-inside-it",
        ORDERS + "INSERT INTO orders (id, code, qty) VALUES (1, 'A', 3), (2, 'A', 5), (3, 'B', 1)",
        "CREATE UNIQUE INDEX orders_code ON orders (code) WHERE qty > 0",
        (("unique", FAIL),),
    ),
    Case(
        "expression-unique-index",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, 'Abc'), (2, 'aBC'), (3, 'x')",
        "CREATE UNIQUE INDEX CONCURRENTLY orders_code ON orders (lower(code))",
        (("unique", FAIL),),
        examples=("abc (2 rows)",),
    ),
    Case(
        "add-unique-composite-over-duplicates",
        "CREATE TABLE pairs (a int, b int); INSERT INTO pairs VALUES (1, 2), (1, 2), (1, 3)",
        "ALTER TABLE pairs ADD CONSTRAINT pairs_ab UNIQUE (a, b)",
        (("unique", FAIL),),
        examples=("(1,2) (2 rows)",),
    ),
    Case(
        "add-unique-composite-with-a-null-part",
        "CREATE TABLE pairs (a int, b int); INSERT INTO pairs VALUES (1, NULL), (1, NULL)",
        "ALTER TABLE pairs ADD CONSTRAINT pairs_ab UNIQUE (a, b)",
        (("unique", PASS),),
    ),
    Case(
        "add-unique-nulls-not-distinct-with-a-null-part",
        "CREATE TABLE pairs (a int, b int); INSERT INTO pairs VALUES (1, NULL), (1, NULL)",
        "ALTER TABLE pairs ADD CONSTRAINT pairs_ab UNIQUE NULLS NOT DISTINCT (a, b)",
        (("unique", FAIL),),
    ),
    Case(
        "add-check-over-violators",
        ORDERS + "INSERT INTO orders (id, qty) VALUES (1, 5), (2, -1), (3, NULL)",
        "ALTER TABLE orders ADD CONSTRAINT qty_positive CHECK (qty > 0)",
        (("check", FAIL),),
        examples=("2",),
    ),
    Case(
        "add-check-where-null-passes",
        ORDERS + "INSERT INTO orders (id, qty) VALUES (1, 5), (3, NULL)",
        "ALTER TABLE orders ADD CONSTRAINT qty_positive CHECK (qty > 0)",
        (("check", PASS),),
    ),
    Case(
        "add-check-not-valid-reads-nothing",
        ORDERS + "INSERT INTO orders (id, qty) VALUES (2, -1)",
        "ALTER TABLE orders ADD CONSTRAINT qty_positive CHECK (qty > 0) NOT VALID",
        (),
    ),
    Case(
        "validate-a-check",
        ORDERS + "INSERT INTO orders (id, qty) VALUES (2, -1);"
        "ALTER TABLE orders ADD CONSTRAINT qty_positive CHECK (qty > 0) NOT VALID",
        "ALTER TABLE orders VALIDATE CONSTRAINT qty_positive",
        (("check", FAIL),),
        examples=("2",),
    ),
    Case(
        "add-foreign-key-over-orphans",
        "CREATE TABLE customers (id int PRIMARY KEY); INSERT INTO customers VALUES (1);"
        "CREATE TABLE invoices (id int PRIMARY KEY, customer int);"
        "INSERT INTO invoices VALUES (10, 1), (11, 99), (12, NULL)",
        "ALTER TABLE invoices ADD FOREIGN KEY (customer) REFERENCES customers",
        (("foreign-key", FAIL),),
        examples=("11",),
    ),
    Case(
        "add-foreign-key-clean",
        "CREATE TABLE customers (id int PRIMARY KEY); INSERT INTO customers VALUES (1);"
        "CREATE TABLE invoices (id int PRIMARY KEY, customer int);"
        "INSERT INTO invoices VALUES (10, 1), (12, NULL)",
        "ALTER TABLE invoices ADD FOREIGN KEY (customer) REFERENCES customers (id)",
        (("foreign-key", PASS),),
    ),
    Case(
        "composite-foreign-key-match-simple-with-a-null-part",
        "CREATE TABLE parents (a int, b int, UNIQUE (a, b)); INSERT INTO parents VALUES (1, 2);"
        "CREATE TABLE kids (id int PRIMARY KEY, x int, y int);"
        "INSERT INTO kids VALUES (1, 1, 2), (2, 5, NULL)",
        "ALTER TABLE kids ADD FOREIGN KEY (x, y) REFERENCES parents (a, b)",
        (("foreign-key", PASS),),
    ),
    Case(
        "composite-foreign-key-match-full-with-a-null-part",
        "CREATE TABLE parents (a int, b int, UNIQUE (a, b)); INSERT INTO parents VALUES (1, 2);"
        "CREATE TABLE kids (id int PRIMARY KEY, x int, y int);"
        "INSERT INTO kids VALUES (1, 1, 2), (2, 5, NULL), (3, NULL, NULL)",
        "ALTER TABLE kids ADD FOREIGN KEY (x, y) REFERENCES parents (a, b) MATCH FULL",
        (("foreign-key", FAIL),),
        examples=("2",),
    ),
    Case(
        "composite-foreign-key-orphan",
        "CREATE TABLE parents (a int, b int, UNIQUE (a, b)); INSERT INTO parents VALUES (1, 2);"
        "CREATE TABLE kids (id int PRIMARY KEY, x int, y int); INSERT INTO kids VALUES (1, 2, 1)",
        "ALTER TABLE kids ADD FOREIGN KEY (x, y) REFERENCES parents (a, b) MATCH FULL",
        (("foreign-key", FAIL),),
        examples=("1",),
    ),
    Case(
        "validate-a-foreign-key",
        "CREATE TABLE customers (id int PRIMARY KEY);"
        "CREATE TABLE invoices (id int PRIMARY KEY, customer int);"
        "INSERT INTO invoices VALUES (3, 9);"
        "ALTER TABLE invoices ADD CONSTRAINT invoices_customer FOREIGN KEY (customer)"
        " REFERENCES customers NOT VALID",
        "ALTER TABLE invoices VALIDATE CONSTRAINT invoices_customer",
        (("foreign-key", FAIL),),
        examples=("3",),
    ),
    Case(
        "narrowing-varchar-over-long-values",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, 'abc'), (2, 'abcd'), (3, 'ab   ')",
        "ALTER TABLE orders ALTER COLUMN code TYPE varchar(3)",
        (("type-change", FAIL),),
        examples=("2",),
    ),
    Case(
        "narrowing-varchar-trailing-spaces-only",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, 'abc'), (3, 'ab   ')",
        "ALTER TABLE orders ALTER COLUMN code TYPE varchar(3)",
        (("type-change", PASS),),
    ),
    Case(
        "bigint-to-integer-out-of-range",
        ORDERS + "INSERT INTO orders (id, qty) VALUES (1, 5), (2, 3000000000), (3, NULL)",
        "ALTER TABLE orders ALTER COLUMN qty TYPE integer",
        (("type-change", FAIL),),
        examples=("2",),
    ),
    Case(
        "bigint-to-integer-in-range",
        ORDERS + "INSERT INTO orders (id, qty) VALUES (1, 5), (2, -2147483648)",
        "ALTER TABLE orders ALTER COLUMN qty TYPE integer",
        (("type-change", PASS),),
    ),
    Case(
        "numeric-to-integer-rounds-over-the-range",
        "CREATE TABLE prices (id int PRIMARY KEY, p numeric);"
        " INSERT INTO prices VALUES (1, 2147483647.4), (2, 2147483647.5)",
        "ALTER TABLE prices ALTER COLUMN p TYPE integer",
        (("type-change", FAIL),),
        examples=("2",),
    ),
    Case(
        "integer-to-bigint-widens-without-a-check",
        "CREATE TABLE counts (id int PRIMARY KEY, n int);"
        " INSERT INTO counts VALUES (1, 2147483647)",
        "ALTER TABLE counts ALTER COLUMN n TYPE bigint",
        (),
    ),
    Case(
        "numeric-precision-overflow-after-rounding",
        "CREATE TABLE prices (id int PRIMARY KEY, p numeric(10, 3));"
        "INSERT INTO prices VALUES (1, 999.994), (2, 999.995), (3, 'NaN')",
        "ALTER TABLE prices ALTER COLUMN p TYPE numeric(5, 2)",
        (("type-change", FAIL),),
        examples=("2",),
    ),
    Case(
        "numeric-precision-fits",
        "CREATE TABLE prices (id int PRIMARY KEY, p numeric(10, 3));"
        "INSERT INTO prices VALUES (1, 999.994), (3, 'NaN')",
        "ALTER TABLE prices ALTER COLUMN p TYPE numeric(5, 2)",
        (("type-change", PASS),),
    ),
    Case(
        "text-to-integer-using-a-cast-over-bad-input",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, '12'), (2, 'x1'), (3, ' 7 ')",
        "ALTER TABLE orders ALTER COLUMN code TYPE integer USING code::integer",
        (("type-change", FAIL),),
        examples=("2",),
        on_15=(("type-change", NOT_CHECKED),),
    ),
    Case(
        "text-to-integer-using-a-cast-clean",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, '12'), (3, ' 7 '), (4, NULL)",
        "ALTER TABLE orders ALTER COLUMN code TYPE integer USING code::integer",
        (("type-change", PASS),),
        on_15=(("type-change", NOT_CHECKED),),
    ),
    Case(
        "text-to-date-using-a-cast-over-bad-input",
        ORDERS + "INSERT INTO orders (id, code) VALUES (1, '2024-02-29'), (2, '2023-02-29')",
        "ALTER TABLE orders ALTER COLUMN code TYPE date USING CAST(code AS date)",
        (("type-change", FAIL),),
        examples=("2",),
        on_15=(("type-change", NOT_CHECKED),),
    ),
]


def _setup(db_url: str, setup: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(setup.encode())
        conn.execute(b"ANALYZE")


def _statement_fails(db_url: str, statement: str) -> bool:
    with psycopg.connect(db_url, autocommit=True) as conn:
        try:
            conn.execute(statement.encode())
        except psycopg.Error:
            return True
    return False


def _data_checks(results: list[PreflightResult]) -> list[PreflightResult]:
    return [r for r in results if r.check != EXPECTED_DURATION]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_check_predicts_what_the_statement_then_does(
    db_url: str, pg_major: int, case: Case
) -> None:
    _setup(db_url, case.setup)
    with Target(db_url) as target:
        results = _data_checks(preflight([case.statement], target))
    expected = case.on_15 if (case.on_15 is not None and pg_major < 16) else case.statuses
    assert [(r.check, r.status) for r in results] == list(expected), [r.detail for r in results]
    predicted = any(r.status == FAIL for r in results)
    fails = _statement_fails(db_url, case.statement)
    if all(r.status in (PASS, FAIL) for r in results):
        assert fails == predicted, [r.detail for r in results]
    else:  # what was not checked is still what the server refuses (the cases are chosen so)
        assert fails == (FAIL in (s for _, s in case.statuses))
    failed = [r for r in results if r.status == FAIL]
    if failed and case.examples is not None:
        assert set(failed[0].examples) == set(case.examples)
        assert failed[0].count == len(case.examples)
        assert " will fail: " in failed[0].detail


def test_the_message_names_table_count_and_examples_by_key(db_url: str) -> None:
    _setup(
        db_url,
        ORDERS + "INSERT INTO orders (id, region) SELECT g, NULL FROM generate_series(1, 1500) g",
    )
    with Target(db_url) as target:
        (result,) = failures(
            preflight(["ALTER TABLE orders ALTER COLUMN region SET NOT NULL"], target)
        )
    assert result.capped and result.count == 1000
    assert result.detail == (
        "SET NOT NULL on orders.region will fail: at least 1,000 rows have NULL in region"
        " (id 1, 2, 3, 4, 5, ...)"
    )
    assert result.as_json()["examples"] == ["1", "2", "3", "4", "5"]


def test_a_statement_after_a_backfill_is_checked_on_the_rows_it_leaves(db_url: str) -> None:
    """The classic recipe: fill the NULLs, then SET NOT NULL. The NULLs there now are gone by
    then: the check reads the rows as the UPDATE leaves them, and passes."""
    _setup(db_url, ORDERS + "INSERT INTO orders (id, region) VALUES (1, NULL)")
    statements = [
        "UPDATE orders SET region = 'eu' WHERE region IS NULL",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
    ]
    with Target(db_url) as target:
        (result,) = _data_checks(preflight(statements, target))
    assert result.status == PASS, result.detail
    assert not _statement_fails(db_url, ";".join(statements))


def test_an_update_from_another_table_is_not_checked_with_the_reason(db_url: str) -> None:
    _setup(
        db_url,
        ORDERS + "CREATE TABLE r (id bigint, region text); INSERT INTO orders (id) VALUES (1)",
    )
    statements = [
        "UPDATE orders SET region = r.region FROM r WHERE r.id = orders.id",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
    ]
    with Target(db_url) as target:
        (result,) = _data_checks(preflight(statements, target))
    assert result.status == NOT_CHECKED
    assert "rows of orders are updated at <sql 1>:1 with FROM" in result.detail


def test_a_column_added_earlier_is_checked_with_its_default(db_url: str) -> None:
    _setup(db_url, ORDERS + "INSERT INTO orders (id) VALUES (1)")
    sql = (
        "ALTER TABLE orders ADD COLUMN status text DEFAULT 'new';\n"
        "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;"
    )
    with Target(db_url) as target:
        (result,) = _data_checks(preflight([sql], target))
    assert result.status == PASS, result.detail
    assert not _statement_fails(db_url, sql)


def test_a_check_is_read_only(db_url: str) -> None:
    """A user's CHECK expression that would write cannot: the transaction is READ ONLY."""
    _setup(
        db_url,
        ORDERS + "CREATE TABLE audit (n int);"
        "CREATE FUNCTION noisy(bigint) RETURNS boolean LANGUAGE sql AS"
        " 'INSERT INTO audit VALUES (1); SELECT $1 > 0';"
        "INSERT INTO orders (id, qty) VALUES (1, 1)",
    )
    with Target(db_url) as target:
        (result,) = _data_checks(
            preflight(["ALTER TABLE orders ADD CONSTRAINT c CHECK (noisy(qty))"], target)
        )
    assert result.status == NOT_CHECKED
    assert "read-only transaction" in result.detail
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM audit").fetchone() == (0,)


def test_a_check_holds_access_share_and_nothing_more(db_url: str) -> None:
    """Sampled from another session while a slow check runs: only AccessShareLock is held."""
    _setup(
        db_url,
        "CREATE TABLE customers (id int PRIMARY KEY); INSERT INTO customers VALUES (1);"
        "CREATE TABLE invoices (id int PRIMARY KEY, customer int);"
        "INSERT INTO invoices SELECT g, 1 FROM generate_series(1, 40) g;"
        "CREATE FUNCTION slow(int) RETURNS int LANGUAGE sql AS"
        " 'SELECT $1 FROM pg_sleep(0.02)'",
    )
    modes: set[tuple[str, str]] = set()
    seen_pid: list[int] = []
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(db_url, autocommit=True) as watcher:
            while not done.is_set():
                for relname, mode in watcher.execute(
                    "SELECT c.relname, l.mode FROM pg_locks l"
                    " JOIN pg_class c ON c.oid = l.relation"
                    " WHERE l.pid = %s AND c.relname IN ('customers', 'invoices')",
                    [seen_pid[0]],
                ):
                    modes.add((relname, mode))
                time.sleep(0.01)

    with Target(db_url) as target:
        seen_pid.append(target.session.info.backend_pid)
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            statement = "ALTER TABLE invoices ADD CONSTRAINT c CHECK (slow(customer) = 1)"
            (result,) = _data_checks(preflight([statement], target))
        finally:
            done.set()
            sampler.join()
    assert result.status == PASS
    assert modes == {("invoices", "AccessShareLock")}


def test_a_locked_table_is_not_checked_within_100ms(db_url: str) -> None:
    _setup(db_url, ORDERS + "INSERT INTO orders (id) VALUES (1)")
    with psycopg.connect(db_url) as holder:
        # A regression that waits on the lock then fails within seconds instead of hanging.
        holder.execute("SET idle_in_transaction_session_timeout = '5s'")
        holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        with Target(db_url) as target:
            started = time.monotonic()
            (result,) = _data_checks(
                preflight(["ALTER TABLE orders ALTER COLUMN region SET NOT NULL"], target)
            )
            took = time.monotonic() - started
    assert result.status == NOT_CHECKED
    assert "locked by another session (waited 100 ms)" in result.detail
    assert took < 2


def test_a_check_is_bounded_by_the_preflight_timeout(db_url: str) -> None:
    _setup(
        db_url,
        ORDERS + "INSERT INTO orders (id, qty) VALUES (1, 1), (2, 2);"
        "CREATE FUNCTION slow(bigint) RETURNS bigint LANGUAGE sql AS"
        " 'SELECT $1 FROM pg_sleep(1)'",
    )
    settings = load_settings(env={"DATABASE_URL": db_url, "PGSHIFT_PREFLIGHT_TIMEOUT": "200ms"})
    assert settings.runner.preflight_timeout_ms == 200
    with Target.from_settings(settings, db_url) as target:
        (result,) = _data_checks(
            preflight(["ALTER TABLE orders ADD CONSTRAINT c CHECK (slow(qty) > 0)"], target)
        )
    assert result.status == NOT_CHECKED
    assert "did not finish within PGSHIFT_PREFLIGHT_TIMEOUT (200 ms)" in result.detail


def test_expected_durations_come_from_the_tables_size(db_url: str) -> None:
    _setup(
        db_url,
        ORDERS + "INSERT INTO orders (id, qty, note) SELECT g, g, repeat('x', 200)"
        " FROM generate_series(1, 20000) g",
    )
    with Target(db_url) as target:
        size = target.session.execute("SELECT pg_relation_size('orders')").fetchone()
        results = preflight(["ALTER TABLE orders ALTER COLUMN qty TYPE integer"], target)
    (duration,) = [r for r in results if r.check == EXPECTED_DURATION]
    assert size is not None and size[0] > 4_000_000
    assert duration.status == PASS and duration.expected_ms is not None
    assert duration.expected_ms > 0
    assert duration.detail.startswith("rewrite of orders (")


def test_migrations_are_checked_in_order_with_their_files_and_estimates(
    db_url: str, tmp_path: Path
) -> None:
    """A violation an earlier pending migration brings (a column added without a default, then
    SET NOT NULL) is judged on the rows it leaves; a migration's expected time over 3x its
    @estimated-duration is a warning."""
    _setup(
        db_url,
        ORDERS + "INSERT INTO orders (id, qty, note) SELECT g, g, repeat('x', 200)"
        " FROM generate_series(1, 20000) g",
    )
    folder = tmp_path / "migrations"
    folder.mkdir()
    for version, name, sql, extra in (
        (V1, "add_status", "ALTER TABLE orders ADD COLUMN status text;", "@estimated-duration: 1s"),
        (
            V2,
            "require_status",
            "ALTER TABLE orders ALTER COLUMN qty TYPE integer;\n"
            "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;",
            "@estimated-duration: 1ms",
        ),
    ):
        for file, text in migration_pair(version, name, sql, extra_header=[extra]).items():
            (folder / file).write_text(text, encoding="utf-8")
    migrations = load_migrations(folder)
    with Target(db_url) as target:
        results = preflight(migrations, target)
    second = str(migrations[1].path)
    assert [(Path(r.file).name, r.line, r.check, r.status) for r in results] == [
        (migrations[1].path.name, 7, "type-change", PASS),
        (migrations[1].path.name, 7, EXPECTED_DURATION, PASS),
        (migrations[1].path.name, 7, EXPECTED_DURATION, "warn"),
        (migrations[1].path.name, 8, "not-null", FAIL),
        (migrations[1].path.name, 8, EXPECTED_DURATION, PASS),
    ]
    assert "at least 1,000 rows have NULL in status (id 1, 2, 3, 4, 5, ...)" in results[3].detail
    assert results[2].detail.endswith("over 3x its @estimated-duration (1ms)")
    assert all(r.file == second for r in results)
