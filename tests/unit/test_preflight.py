"""The pure half of pre-flight: checks derived from SQL literals and catalog facts, no database.

What the checks' queries find is proven against real servers in
tests/integration/test_preflight.py; here: which statement implies which check, how its query
is composed (quoted by the parser's deparser, the user's expressions reused as parsed), what
an earlier pending statement makes uncheckable, and how results and durations read.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from pglast import parse_sql
from pglast.parser import parse_sql_json

from pgshift.config import load_settings
from pgshift.errors import ConfigError
from pgshift.ops.preflight import pending_of
from pgshift.rewrite.preflight import (
    CAP,
    Facts,
    Pending,
    PreflightCheck,
    TableFacts,
    TableRef,
    derive_checks,
    duration_results,
    referenced_tables,
    result_of,
    tables_needed,
)
from pgshift.rewrite.preflight_light import (
    EXPECTED_DURATION,
    FAIL,
    NOT_CHECKED,
    PASS,
    WARN,
    PreflightResult,
)
from tests.plugins.project import ProjectMaker, migration_pair

ORDERS = TableRef(None, "orders")
ORDERS_FACTS = TableFacts(
    key=("id",),
    columns=(("id", "int8"), ("region", "text"), ("qty", "int8"), ("code", "varchar")),
    bytes=100 * 1024 * 1024,
    rows=1_000_000,
)
FACTS = Facts(18, ((ORDERS, ORDERS_FACTS), (TableRef(None, "customers"), TableFacts(key=("id",)))))


def _checks(*sqls: str, facts: Facts = FACTS) -> list[PreflightCheck]:
    return derive_checks([Pending("m.sql", n, s, "m") for n, s in enumerate(sqls, 1)], facts)


def _one(*sqls: str, facts: Facts = FACTS) -> PreflightCheck:
    (check,) = _checks(*sqls, facts=facts)
    return check


def _parses(sql: str) -> str:
    """``sql`` parsed back by PostgreSQL's parser and deparsed: the query is well formed."""
    assert len(parse_sql(sql)) == 1
    return sql


def test_set_not_null_reads_the_nulls_named_by_primary_key() -> None:
    check = _one("ALTER TABLE orders ALTER COLUMN region SET NOT NULL")
    assert (check.kind, check.table, check.columns, check.key) == (
        "not-null",
        ORDERS,
        ("region",),
        ("id",),
    )
    assert _parses(check.sql or "") == (
        "SELECT CAST(example AS text), CAST(1 AS bigint), count(*) OVER ()"
        " FROM (SELECT id AS example FROM orders WHERE region IS NULL LIMIT 1000) AS violators"
        " LIMIT 5"
    )


def test_identifiers_are_quoted_by_the_deparser_never_pasted() -> None:
    table = TableRef("Sales", "Order Items")
    facts = Facts(
        18, ((table, TableFacts(key=('k"; DROP TABLE x; --',), columns=(("Region", "text"),))),)
    )
    check = _one(
        'ALTER TABLE "Sales"."Order Items" ALTER COLUMN "Region" SET NOT NULL', facts=facts
    )
    sql = _parses(check.sql or "")
    assert 'FROM "Sales"."Order Items" WHERE "Region" IS NULL' in sql
    assert 'SELECT "k""; DROP TABLE x; --" AS example' in sql


def test_a_users_column_named_like_a_slot_is_left_alone() -> None:
    facts = Facts(
        18, ((ORDERS, TableFacts(key=("id",), columns=(("pgshift_slot_pred", "int4"),))),)
    )
    check = _one("ALTER TABLE orders ADD CHECK (pgshift_slot_pred > 0)", facts=facts)
    assert "WHERE NOT pgshift_slot_pred > 0" in (check.sql or "")


def test_without_a_primary_key_rows_are_named_by_ctid() -> None:
    facts = Facts(18, ((ORDERS, TableFacts(columns=(("region", "text"),))),))
    check = _one("ALTER TABLE ONLY orders ALTER COLUMN region SET NOT NULL", facts=facts)
    assert check.key == ("ctid",)
    assert "SELECT ctid AS example FROM ONLY orders" in (check.sql or "")


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE orders ADD COLUMN n int",
        "ALTER TABLE orders ADD COLUMN n int NOT NULL DEFAULT 0",
        "ALTER TABLE orders ADD COLUMN n bigserial NOT NULL",
        "ALTER TABLE orders ADD COLUMN n int GENERATED ALWAYS AS IDENTITY",
        "ALTER TABLE orders ADD CONSTRAINT c CHECK (qty > 0) NOT VALID",
        "ALTER TABLE orders ADD FOREIGN KEY (qty) REFERENCES customers NOT VALID",
        "ALTER TABLE orders ADD CONSTRAINT u UNIQUE USING INDEX orders_u",
        "ALTER TABLE orders ALTER COLUMN region TYPE text",
        "ALTER TABLE orders ALTER COLUMN code TYPE varchar(3) USING code::varchar(3)",
        "CREATE INDEX ON orders (region)",
        "UPDATE orders SET qty = 1",
    ],
)
def test_statements_whose_success_does_not_depend_on_the_data_imply_no_check(sql: str) -> None:
    assert _checks(sql) == []


def test_add_column_not_null_without_a_default_needs_an_empty_table() -> None:
    for sql in (
        "ALTER TABLE orders ADD COLUMN n int NOT NULL",
        "ALTER TABLE orders ADD COLUMN n int NOT NULL DEFAULT NULL",
        "ALTER TABLE orders ADD COLUMN n int PRIMARY KEY",
    ):
        check = _one(sql)
        assert check.kind == "empty-table"
        assert "WHERE TRUE LIMIT 1000" in (check.sql or "")


def test_add_primary_key_checks_nulls_then_duplicates() -> None:
    nulls, dups = _checks("ALTER TABLE orders ADD PRIMARY KEY (region, qty)")
    assert "WHERE region IS NULL OR qty IS NULL" in (nulls.sql or "")
    assert _parses(dups.sql or "") == (
        "WITH duplicates AS MATERIALIZED (SELECT ROW(region, qty) AS example, count(*) AS n"
        " FROM orders WHERE region IS NOT NULL AND qty IS NOT NULL"
        " GROUP BY 1 HAVING count(*) > 1) SELECT CAST(example AS text), n, count(*) OVER ()"
        " FROM (SELECT example, n FROM duplicates LIMIT 1000) AS capped LIMIT 5"
    )


def test_a_unique_index_keeps_its_where_expressions_collations_and_nulls() -> None:
    check = _one(
        'CREATE UNIQUE INDEX CONCURRENTLY u ON orders (lower(code) COLLATE "C", qty)'
        " NULLS NOT DISTINCT WHERE qty > 0"
    )
    assert check.kind == "unique"
    assert 'ROW(lower(code) COLLATE "C", qty) AS example' in (check.sql or "")
    assert "WHERE qty > 0 GROUP BY 1" in (check.sql or "")  # NULLs group together
    distinct = _one("CREATE UNIQUE INDEX u ON orders (lower(code)) WHERE qty > 0")
    assert "WHERE qty > 0 AND lower(code) IS NOT NULL GROUP BY 1" in (distinct.sql or "")


def test_foreign_keys_compose_their_match_kind() -> None:
    simple = _one("ALTER TABLE orders ADD FOREIGN KEY (qty) REFERENCES customers")
    assert "WHERE child.qty IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customers AS parent" in (
        simple.sql or ""
    )
    assert "parent.id = child.qty" in (simple.sql or "")
    full = _one(
        "ALTER TABLE orders ADD FOREIGN KEY (qty, region) REFERENCES customers (a, b) MATCH FULL"
    )
    assert (
        "WHERE NOT(child.qty IS NULL AND child.region IS NULL) AND ((child.qty IS NULL OR"
        " child.region IS NULL) OR NOT EXISTS" in (full.sql or "")
    )
    assert "MATCH FULL" in full.violation


def test_a_foreign_key_to_a_table_without_primary_key_and_no_columns_is_not_checked() -> None:
    facts = Facts(18, ((ORDERS, ORDERS_FACTS), (TableRef(None, "customers"), TableFacts())))
    check = _one("ALTER TABLE orders ADD FOREIGN KEY (qty) REFERENCES customers", facts=facts)
    assert check.not_checked == "customers has no primary key for the foreign key to reference"


def test_validate_constraint_uses_the_pending_definition_else_the_catalogs() -> None:
    pending = _one(
        "ALTER TABLE orders ADD CONSTRAINT c CHECK (qty > 0) NOT VALID",
        "ALTER TABLE orders VALIDATE CONSTRAINT c",
    )
    assert pending.kind == "check" and "WHERE NOT qty > 0" in (pending.sql or "")
    known = TableFacts(
        key=("id",),
        columns=ORDERS_FACTS.columns,
        constraints=(("fk", "FOREIGN KEY (qty) REFERENCES other(x) MATCH FULL NOT VALID"),),
    )
    facts = Facts(18, ((ORDERS, known),))
    statement = "ALTER TABLE orders VALIDATE CONSTRAINT fk"
    assert referenced_tables([Pending("m.sql", 1, statement)], facts) == [TableRef(None, "other")]
    facts = facts.plus(Facts(18, ((TableRef(None, "other"), TableFacts()),)))
    catalog = _one(statement, facts=facts)
    assert catalog.kind == "foreign-key" and "parent.x = child.qty" in (catalog.sql or "")
    unknown = _one("ALTER TABLE orders VALIDATE CONSTRAINT nope")
    assert unknown.not_checked == "no constraint nope on orders is known before the run"


@pytest.mark.parametrize(
    ("sql", "predicate"),
    [
        (
            "ALTER TABLE orders ALTER COLUMN region TYPE varchar(3)",
            "length(rtrim(CAST(region AS text), ' ')) > 3",
        ),
        (
            "ALTER TABLE orders ALTER COLUMN qty TYPE smallint",
            "qty NOT BETWEEN -32768 AND 32767",  # from an integer: compared as it is
        ),
        (
            "ALTER TABLE orders ALTER COLUMN qty TYPE numeric(5, 2)",
            "CAST(qty AS numeric) <> 'NaN' AND abs(round(CAST(qty AS numeric), 2))"
            " >= power(CAST(10 AS numeric), 3)",
        ),
        (
            "ALTER TABLE orders ALTER COLUMN region TYPE int USING region::int",
            "NOT pg_input_is_valid(CAST(region AS text), 'integer')",
        ),
        (
            "ALTER TABLE orders ALTER COLUMN region TYPE date USING CAST(region AS date)",
            "NOT pg_input_is_valid(CAST(region AS text), 'date')",
        ),
    ],
)
def test_type_changes_check_what_the_conversion_refuses(sql: str, predicate: str) -> None:
    check = _one(sql)
    assert check.kind == "type-change"
    assert f"WHERE {predicate} LIMIT 1000" in _parses(check.sql or "")


@pytest.mark.parametrize(
    ("sql", "major", "reason"),
    [
        (
            "ALTER TABLE orders ALTER COLUMN region TYPE int USING region::int",
            15,
            "PostgreSQL 15 has no pg_input_is_valid (16+)",
        ),
        (
            "ALTER TABLE orders ALTER COLUMN region TYPE int",
            18,
            "PostgreSQL casts text to integer only with USING, whatever the data",
        ),
        (
            "ALTER TABLE orders ALTER COLUMN region TYPE int USING nullif(region, '')::int",
            18,
            "the type of the converted value is not known before the run",
        ),
        (
            "ALTER TABLE orders ALTER COLUMN region TYPE int USING length(region)",
            18,
            "the USING expression is evaluated only by the statement itself",
        ),
        ("ALTER TABLE orders ALTER COLUMN nope TYPE int", 18, "column nope does not exist"),
        ("ALTER TABLE missing ALTER COLUMN a TYPE int", 18, "table missing does not exist"),
    ],
)
def test_type_changes_that_cannot_be_checked_say_why(sql: str, major: int, reason: str) -> None:
    check = _one(sql, facts=Facts(major, FACTS.tables))
    assert check.sql is None
    assert reason in (check.not_checked or "")


@pytest.mark.parametrize(
    ("earlier", "reason"),
    [
        ("CREATE TABLE orders (id int)", "table orders is created by an earlier pending statement"),
        (
            "UPDATE orders SET region = r.region FROM r",
            "rows of orders are updated at m.sql:1 with FROM",
        ),
        (
            "UPDATE orders SET region = (SELECT max(region) FROM r)",
            "rows of orders are updated at m.sql:1 with a subquery",
        ),
        ("DELETE FROM orders USING r WHERE r.id = orders.id", "deleted at m.sql:1 with USING"),
        ("INSERT INTO orders (id) SELECT 1", "inserted into orders at m.sql:1 from a query"),
        (
            "INSERT INTO orders (id) VALUES (1) ON CONFLICT DO NOTHING",
            "inserted into orders at m.sql:1 with ON CONFLICT",
        ),
        ("COPY orders FROM STDIN", "rows are copied into orders at m.sql:1"),
        ("TRUNCATE orders CASCADE", "may change any data (TRUNCATE ... CASCADE at m.sql:1)"),
        ("ALTER TABLE orders RENAME COLUMN x TO region", "a column of it is renamed"),
        ("DO $$ BEGIN PERFORM 1; END $$", "may change any data (DO at m.sql:1)"),
        ("SELECT backfill_regions()", "may change any data (SELECT at m.sql:1)"),
        ("ALTER TABLE orders DROP COLUMN region, ADD COLUMN region serial", "from a sequence"),
        (
            "ALTER TABLE orders ALTER COLUMN region TYPE text USING (SELECT 'x')",
            "changes type at m.sql:1 with a subquery",
        ),
    ],
)
def test_a_check_after_an_underivable_change_is_not_checked(earlier: str, reason: str) -> None:
    checks = _checks(earlier, "ALTER TABLE orders ALTER COLUMN region SET NOT NULL")
    assert reason in (checks[-1].not_checked or "")
    assert checks[-1].sql is None


def test_a_change_to_another_column_does_not_block_the_check() -> None:
    check = _checks(
        "UPDATE orders SET qty = 1 FROM r",  # underivable, but qty is not what is checked...
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
    )[-1]
    assert check.not_checked is not None  # ...an UPDATE ... FROM may change any row: blocked
    check = _checks(
        "ALTER TABLE orders ALTER COLUMN qty TYPE numeric USING (SELECT 1)",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
    )[-1]
    assert check.sql is not None  # a column that cannot be known, not the one read


# What the earlier pending statements leave, derived on their parse trees: the check reads a
# query over the table instead of the table (the rows of the derived state, then the check).
STATE = Facts(
    18,
    (
        (
            ORDERS,
            TableFacts(
                key=("id",),
                columns=(("id", "int8"), ("region", "text"), ("qty", "int8")),
                formatted=(("id", "bigint"), ("region", "text"), ("qty", "integer")),
                defaults=(("id", "default", "nextval('orders_id_seq'::regclass)"),),
            ),
        ),
        (
            TableRef(None, "items"),
            TableFacts(columns=(("code", "text"),), formatted=(("code", "text"),)),
        ),
    ),
)
BASE = "SELECT id AS id, region AS region, qty AS qty FROM orders"


def _from(check: PreflightCheck) -> str:
    """The FROM of the check's inner scan: the table or the derived state's query."""
    assert check.sql is not None, check.not_checked
    _parses(check.sql)
    inner = check.sql.split(" AS example", 1)[1].split(" FROM ", 1)[1]
    return inner.rsplit(" WHERE ", 1)[0]


def test_a_column_added_without_a_default_is_null_in_every_row() -> None:
    check = _one(
        "ALTER TABLE orders ADD COLUMN status text",
        "ALTER TABLE orders ALTER COLUMN status SET NOT NULL",
        facts=STATE,
    )
    assert _from(check) == (
        "(SELECT id AS id, region AS region, qty AS qty, CAST(NULL AS text) AS status"
        f" FROM ({BASE}) AS orders) AS orders"
    )
    assert check.sql is not None and check.sql.endswith(
        "WHERE status IS NULL LIMIT 1000) AS violators LIMIT 5"
    )


def test_a_column_added_with_a_default_holds_it_cast_to_its_type() -> None:
    checks = _checks(
        "ALTER TABLE orders ADD COLUMN big bigint DEFAULT 3000000000,"
        " ADD CONSTRAINT c CHECK (big < qty)",
        "ALTER TABLE orders ALTER COLUMN big TYPE integer",
        facts=STATE,
    )
    assert [c.kind for c in checks] == ["check", "type-change"]
    assert "CAST(3000000000 AS bigint) AS big" in _from(checks[0])
    assert checks[1].sql is not None
    assert "big NOT BETWEEN -2147483648 AND 2147483647" in checks[1].sql


def test_a_number_that_is_not_an_integer_is_rounded_before_the_range() -> None:
    facts = Facts(18, ((ORDERS, TableFacts(key=("id",), columns=(("p", "numeric"),))),))
    check = _one("ALTER TABLE orders ALTER COLUMN p TYPE smallint", facts=facts)
    assert "WHERE round(CAST(p AS numeric)) NOT BETWEEN -32768 AND 32767" in (check.sql or "")
    assert (
        _checks(
            "ALTER TABLE orders ALTER COLUMN id TYPE bigint",
            facts=Facts(18, ((ORDERS, TableFacts(key=("id",), columns=(("id", "int4"),))),)),
        )
        == []
    )  # widening: no value can fail


def test_an_update_is_a_case_over_its_where() -> None:
    check = _one(
        "UPDATE orders o SET region = 'eu', qty = qty + 1 WHERE o.region IS NULL",
        "CREATE UNIQUE INDEX ON orders (region, qty)",
        facts=STATE,
    )
    assert _from(check) == (
        "(SELECT id AS id,"
        " CASE WHEN o.region IS NULL THEN CAST('eu' AS text) ELSE region END AS region,"
        " CASE WHEN o.region IS NULL THEN CAST(qty + 1 AS integer) ELSE qty END AS qty"
        f" FROM ({BASE}) AS o) AS orders"
    )


def test_inserted_rows_are_a_union_with_the_defaults_of_the_omitted_columns() -> None:
    checks = _checks(
        "INSERT INTO items VALUES ('A'), (DEFAULT)",
        "CREATE UNIQUE INDEX ON items (code)",
        "INSERT INTO orders (region) VALUES ('eu')",
        "ALTER TABLE orders ALTER COLUMN qty SET NOT NULL",
        "ALTER TABLE orders ADD PRIMARY KEY (id)",
        facts=STATE,
    )
    assert _from(checks[0]) == (
        "((SELECT ctid AS ctid, code AS code FROM items)"
        " UNION ALL(SELECT NULL AS ctid, pgshift_values.code AS code"
        " FROM ((VALUES (CAST('A' AS text)), (CAST(NULL AS text)))) AS pgshift_values (code)))"
        " AS items"
    )
    assert "CAST(NULL AS integer) AS qty" in _from(checks[1])  # no default: NULL
    # the id a sequence gives is not known before the run: a check reading it is not run
    assert [c.kind for c in checks[2:]] == ["not-null", "unique"]
    assert "get a sequence's next value in id (at m.sql:3)" in (checks[2].not_checked or "")


def test_deleted_and_truncated_rows_are_left_out() -> None:
    check = _one(
        "DELETE FROM orders WHERE qty < 0",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
        facts=STATE,
    )
    assert _from(check) == (
        f"(SELECT id AS id, region AS region, qty AS qty FROM ({BASE}) AS orders"
        " WHERE qty < 0 IS NOT TRUE) AS orders"
    )
    check = _one("TRUNCATE items", "CREATE UNIQUE INDEX ON items (code)", facts=STATE)
    assert _from(check).endswith("AS items WHERE FALSE) AS items")


def test_commands_of_one_alter_table_see_the_commands_before_them() -> None:
    check = _one("ALTER TABLE orders ADD COLUMN s text DEFAULT 'x', ALTER COLUMN s SET NOT NULL")
    assert check.sql is not None and "CAST('x' AS text) AS s" in check.sql


def test_a_row_a_pending_insert_adds_is_named_as_new() -> None:
    check = _one("INSERT INTO items VALUES (NULL)", "CREATE UNIQUE INDEX ON items (code)")
    result = result_of(check, [(None, 1, 1)], 1.0)
    assert result.examples == ("a new row",)


def test_tables_needed_include_referenced_tables() -> None:
    pending = pending_of(
        [
            "ALTER TABLE orders ADD FOREIGN KEY (qty) REFERENCES s.customers;"
            "CREATE UNIQUE INDEX ON items (sku); UPDATE other SET a = 1; CLUSTER big USING big_pk"
        ]
    )
    assert tables_needed(pending) == [
        ORDERS,
        TableRef("s", "customers"),
        TableRef(None, "items"),
        TableRef(None, "big"),
    ]
    assert [(p.file, p.line) for p in pending] == [("<sql 1>", 1)] * 4


def _check() -> PreflightCheck:
    return _one("ALTER TABLE orders ALTER COLUMN region SET NOT NULL")


def test_a_result_names_count_and_examples() -> None:
    rows = [(str(n), 1, CAP) for n in (17, 23, 30, 31, 40)]
    result = result_of(_check(), rows, 4.2)
    assert (result.status, result.count, result.capped) == (FAIL, CAP, True)
    assert result.detail == (
        "SET NOT NULL on orders.region will fail: at least 1,000 rows have NULL in region"
        " (id 17, 23, 30, 31, 40, ...)"
    )
    assert result.as_json() == {
        "file": "m.sql",
        "line": 1,
        "check": "not-null",
        "status": "fail",
        "count": 1000,
        "examples": ["17", "23", "30", "31", "40"],
        "detail": result.detail,
        "duration_ms": 4.2,
    }
    exact = result_of(_check(), [("17", 1, 1)], 1.0)
    assert exact.detail.endswith("will fail: 1 row has NULL in region (id 17)")
    assert result_of(_check(), [], 1.0).detail == (
        "SET NOT NULL on orders.region: no rows have NULL in region"
    )


def test_a_duplicate_names_its_key_and_how_often() -> None:
    check = _one("ALTER TABLE orders ADD UNIQUE (code)")
    result = result_of(check, [("A", 3, 1)], 1.0)
    composite = _one("ALTER TABLE orders ADD UNIQUE (code, qty)")
    two = result_of(composite, [("(A,1)", 2, 2), ("(B,2)", 4, 2)], 1.0)
    assert two.detail.endswith(
        "2 keys are held by more than one row ((code, qty) (A,1) (2 rows), (B,2) (4 rows))"
    )
    assert result.detail == (
        "ADD UNIQUE (code) on orders will fail: 1 key is held by more than one row"
        " (code A (3 rows))"
    )


def test_durations_are_estimated_and_warned_over_three_times_the_estimate() -> None:
    pending = [
        Pending("a.sql", 3, "ALTER TABLE orders ALTER COLUMN qty TYPE int", "a", 100),
        Pending("a.sql", 4, "CREATE INDEX ON orders (region)", "a", 100),
        Pending("b.sql", 2, "ALTER TABLE orders ALTER COLUMN code TYPE text", "b", 100),
        Pending("c.sql", 2, "ALTER TABLE missing ADD CHECK (a > 0)", "c", None),
    ]
    rewrite, index, missing, warn = duration_results(pending, FACTS)
    assert rewrite.check == EXPECTED_DURATION and rewrite.status == PASS
    assert rewrite.detail.startswith("rewrite of orders (100.0 MB, about 1,000,000 rows): about")
    assert index.detail.startswith("index build of orders")
    assert (rewrite.expected_ms or 0) > 1000 and (index.expected_ms or 0) > 1000
    assert missing.status == NOT_CHECKED  # b.sql: varchar to text rewrites nothing: no entry
    assert warn.status == WARN and warn.migration == "a" and (warn.file, warn.line) == ("a.sql", 3)
    assert "over 3x its @estimated-duration (100ms)" in warn.detail


def test_the_preflight_timeout_is_a_setting() -> None:
    assert load_settings(env={}).runner.preflight_timeout_ms == 30_000
    later = load_settings(env={"PGSHIFT_PREFLIGHT_TIMEOUT": "45s"})
    assert later.runner.preflight_timeout_ms == 45_000
    with pytest.raises(ConfigError, match="PGSHIFT_PREFLIGHT_TIMEOUT"):
        load_settings(env={"PGSHIFT_PREFLIGHT_TIMEOUT": "soon"})


# -- what pre-flight parses -------------------------------------------------------------------

#: Statements of every kind the passes read, in one plan: each pass must give the same results
#: from the small trees built from the loader's JSON as from pglast's full trees.
_PLAN = (
    "CREATE TABLE fresh (id bigint PRIMARY KEY, region text)",
    "CREATE TABLE IF NOT EXISTS orders (id bigint)",
    "CREATE TABLE app.part PARTITION OF app.parent FOR VALUES IN (1)",
    "CREATE INDEX ON fresh (region)",
    "CREATE INDEX orders_region ON orders (region) WHERE qty > 0",
    "CREATE INDEX ON orders ((region || (SELECT max(name) FROM lookup)))",
    "CREATE UNIQUE INDEX ON orders (code)",
    "INSERT INTO orders (id) SELECT id FROM customers",
    "UPDATE app.other SET a = 1",
    "DELETE FROM customers WHERE id < 0",
    "MERGE INTO orders o USING customers c ON o.id = c.id WHEN MATCHED THEN DELETE",
    "GRANT SELECT ON orders TO PUBLIC",
    "COMMENT ON TABLE orders IS 'x'",
    "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
    "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES customers (id)",
    "ALTER TABLE fresh ALTER COLUMN region SET NOT NULL",
    "VACUUM FULL orders",
    "CLUSTER orders USING orders_pkey",
)


def _outcome(
    pending: list[Pending],
) -> tuple[list[TableRef], list[TableRef], list[PreflightCheck], list[PreflightResult]]:
    facts = FACTS.plus(Facts(18, ((TableRef("app", "other"), TableFacts(key=("id",))),)))
    return (
        tables_needed(pending),
        referenced_tables(pending, facts),
        derive_checks(pending, facts),
        duration_results(pending, facts),
    )


def test_small_trees_give_the_same_results_as_full_parses() -> None:
    light = pending_of([";\n".join(_PLAN)])
    full = pending_of([";\n".join(_PLAN)])
    for item in full:
        item.__dict__["trees"] = [raw.stmt for raw in parse_sql(item.sql)]  # pglast's, in full
    # Without the loader's table heads (a Pending of SQL alone): from a JSON parse each.
    parsed = [replace(p, head=None) for p in pending_of([";\n".join(_PLAN)])]
    assert [p.kind for p in light][:3] == ["CreateStmt"] * 3  # the loader's kinds reach it
    assert [p.head is not None for p in light][:5] == [True, True, True, True, True]
    outcome = _outcome(light)
    assert outcome == _outcome(full) == _outcome(parsed)
    assert len(outcome[2]) >= 3 and len(outcome[3]) >= 4  # checks and durations were derived


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE t (id int)",
        "CREATE UNLOGGED TABLE IF NOT EXISTS app.t (id int)",
        "CREATE INDEX ON ONLY app.t (name)",
        "INSERT INTO app.t VALUES (1)",
        "UPDATE t SET id = 2",
        "DELETE FROM ONLY t",
        "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
    ],
)
def test_a_tree_built_from_a_head_equals_the_validated_one(sql: str) -> None:
    """Pre-flight builds the small trees without pglast's validation (_node): each must equal
    what pglast's own constructors build from the same JSON tree, attribute by attribute."""
    from pglast import ast

    (statement,) = pending_of([sql])
    ((kind, node),) = json.loads(parse_sql_json(sql))["stmts"][0]["stmt"].items()
    rv = node["relation"]
    relation = ast.RangeVar(
        schemaname=rv.get("schemaname"),
        relname=rv["relname"],
        inh=bool(rv.get("inh", False)),
        relpersistence=rv.get("relpersistence", "p"),
    )
    extra = {"CreateStmt": {"if_not_exists": bool(node.get("if_not_exists"))}}
    extra["IndexStmt"] = {"unique": False}
    validated = getattr(ast, kind)(relation=relation, **extra.get(kind, {}))
    assert statement.head is not None and statement.trees == [validated]
    assert [type(v) for v in _values(statement.trees[0])] == [type(v) for v in _values(validated)]


def _values(node: Any) -> list[Any]:
    return [getattr(node, a) for a in node] + [getattr(node.relation, a) for a in node.relation]


def test_statements_read_only_for_their_table_are_not_parsed_by_pglast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An `up` of 1,000 new tables spent 0.9 s building pglast trees for pre-flight; a table,
    a plain index and its rows now cost no parse at all (their table heads come from the
    loader's parse, kept in the statements memo), and other kinds none."""
    import pgshift.rewrite.preflight as module

    def refuse(sql: str) -> None:
        raise AssertionError(f"parsed in full: {sql}")

    monkeypatch.setattr(module, "parse_sql", refuse)
    # The loader cut each one's table head from its own parse: no JSON parse either.
    monkeypatch.setattr(module, "parse_sql_json", refuse)
    pending = pending_of(
        [
            "CREATE TABLE t (id bigint, name text);"
            " CREATE INDEX ON t (name); INSERT INTO t VALUES (1, 'a'); UPDATE t SET id = 2"
        ]
    )
    results = duration_results(pending, FACTS)
    assert tables_needed(pending) == [] and derive_checks(pending, FACTS) == []
    assert [r.detail for r in results] == [
        "index build of t: not estimated: the table is not on the target"
    ]
    # A kind no pass reads is not parsed at all: here, text that would not even parse.
    assert Pending("m.sql", 1, "GRANT what on earth", kind="GrantStmt").trees == []


# -- plans of new tables only: answered without the parser -------------------------------------

#: Plans that only create tables, index and fill them (rewrite/preflight_light.py answers them).
_NEW_TABLES = [
    [
        "CREATE TABLE t (id bigint, name text)",
        "CREATE INDEX ON t (name)",
        "INSERT INTO t VALUES (1)",
    ],
    [
        "CREATE TABLE app.t (id int)",
        "GRANT SELECT ON app.t TO PUBLIC",
        "CREATE INDEX t_id ON ONLY app.t (id)",
        "UPDATE app.t SET id = 2",
        "DELETE FROM app.t",
        "CREATE UNLOGGED TABLE u (id int)",
        "CREATE INDEX ON u (id)",
        "COMMENT ON TABLE u IS 'x'",
    ],
    [
        "CREATE TABLE app.part PARTITION OF app.parent FOR VALUES IN (1)",
        "CREATE INDEX ON app.part (a)",
    ],
    ["GRANT SELECT ON orders TO PUBLIC"],
]

#: Plans the full derivation must answer: each reads the target or implies a check.
_NOT_NEW_TABLES = [
    ["CREATE TABLE IF NOT EXISTS t (id int)", "CREATE INDEX ON t (id)"],
    ["CREATE TABLE t (id int)", "CREATE INDEX ON orders (region)"],
    ["CREATE TABLE app.t (id int)", "CREATE INDEX ON t (id)"],  # t may be another table
    ["CREATE TABLE t (id int)", "INSERT INTO orders (id) VALUES (1)"],
    ["CREATE TABLE t (id int)", "CREATE UNIQUE INDEX ON t (id)"],
    ["CREATE TABLE t (id int)", "ALTER TABLE t ALTER COLUMN id SET NOT NULL"],
    ["CREATE TABLE t (id int)", "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE"],
    ["CREATE TABLE t (id int)", "SELECT 1"],
    ["CREATE TABLE t AS SELECT 1 AS id", "CREATE INDEX ON t (id)"],
]


@pytest.mark.parametrize("sqls", _NEW_TABLES)
def test_a_plan_of_new_tables_gets_the_full_derivations_results_without_it(
    sqls: list[str],
) -> None:
    """The light answer is what the full path composes (ops/preflight.preflight_pending):
    no table to read facts of, no check, and the durations of an empty catalog."""
    from pgshift.rewrite.preflight_light import new_tables_results

    pending = pending_of([";\n".join(sqls)])
    assert tables_needed(pending) == [] and derive_checks(pending, Facts(18)) == []
    assert new_tables_results(pending) == duration_results(pending, Facts(18))


@pytest.mark.parametrize("sqls", _NOT_NEW_TABLES)
def test_any_other_plan_is_left_to_the_full_derivation(sqls: list[str]) -> None:
    from pgshift.rewrite.preflight_light import new_tables_results

    pending = pending_of([";\n".join(sqls)])
    assert new_tables_results(pending) is None
    assert (
        new_tables_results([replace(p, kind="") for p in pending_of(["CREATE TABLE t ()"])]) is None
    )


def test_loaded_migrations_reach_the_light_path_with_kinds_and_heads(
    make_project: ProjectMaker,
) -> None:
    """From the loader, cold and from the statements memo: the same statements, kinds and
    heads as pre-flight's Pending, and the same results as the full derivation."""
    from pgshift.project_files import read_project
    from pgshift.rewrite.preflight_light import headed, new_tables_results

    root = make_project(
        {
            **migration_pair(
                "20250101000000", "one", "CREATE TABLE a (id int);\nCREATE INDEX ON a (id);"
            ),
            **migration_pair(
                "20250102000000", "two", "INSERT INTO a VALUES (1);\nCREATE TABLE b ();"
            ),
        }
    )
    settings = load_settings({"migrations_dir": str(root / "migrations")}, cwd=root)
    for _ in ("cold", "memo"):
        migrations = read_project(settings).migrations
        light = headed(migrations)
        full = pending_of(migrations)
        assert [(h.file, h.line, h.migration, h.kind, h.head) for h in light] == [
            (p.file, p.line, p.migration, p.kind, p.head) for p in full
        ]
        assert all(h.head is not None for h in light)
        results = new_tables_results(light)
        assert results == duration_results(full, Facts(18)) and results is not None
        assert [r.detail for r in results] == [
            "index build of a: not estimated: the table is not on the target"
        ]
