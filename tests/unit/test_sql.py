"""Tests of statement splitting, positions and transaction classification with pglast."""

from __future__ import annotations

import pytest

from pgshift.model import Statement
from pgshift.source.sql import LineIndex, split_statements


def split_ok(text: str) -> tuple[Statement, ...]:
    statements, problems = split_statements(text, "m.sql")
    assert problems == []
    return statements


def only(text: str) -> Statement:
    statements = split_ok(text)
    assert len(statements) == 1
    return statements[0]


def problems_of(text: str) -> list[str]:
    statements, problems = split_statements(text, "m.sql")
    assert statements == ()
    return [str(p) for p in problems]


SEED = """\
-- Migration: 20250528120000_add_user_preferences_table.sql
-- @zero-downtime: true

-- Create the user preferences table
CREATE TABLE user_preferences (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    preference_key VARCHAR(255) NOT NULL
);

-- Add indexes for performance
CREATE INDEX CONCURRENTLY idx_user_preferences_user_id ON user_preferences(user_id);
CREATE INDEX CONCURRENTLY idx_user_preferences_key ON user_preferences(preference_key);
"""


def test_seed_statements() -> None:
    create, first, second = split_ok(SEED)
    assert create == Statement(
        index=0,
        sql="CREATE TABLE user_preferences (\n"
        "    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),\n"
        "    preference_key VARCHAR(255) NOT NULL\n"
        ")",
        line=5,
        column=1,
        kind="CreateStmt",
        transactional=True,
    )
    assert (first.index, first.line, first.column, first.kind) == (1, 11, 1, "IndexStmt")
    assert first.sql == (
        "CREATE INDEX CONCURRENTLY idx_user_preferences_user_id ON user_preferences(user_id)"
    )
    assert first.transactional is False
    assert first.concurrent_index == (None, "idx_user_preferences_user_id")
    assert (second.line, second.concurrent_index) == (12, (None, "idx_user_preferences_key"))


def test_positions_count_characters_not_utf8_bytes() -> None:
    text = "-- Créé par Zoë — ünïcödé ✓\nSELECT 'déjà vu'; SELECT '€' AS prix;\n  /* ç */ SELECT 3;"
    a, b, c = split_ok(text)
    assert (a.line, a.column, a.sql) == (2, 1, "SELECT 'déjà vu'")
    assert (b.line, b.column, b.sql) == (2, 19, "SELECT '€' AS prix")
    assert (c.line, c.column, c.sql) == (3, 11, "SELECT 3")


def test_statement_text_excludes_comments_and_semicolon() -> None:
    text = "SELECT 1 -- trailing\n  ;\n/* lead */ -- lead\n\tSELECT 2 /* in */ + 3 ;"
    a, b = split_ok(text)
    assert (a.sql, a.line, a.column) == ("SELECT 1", 1, 1)
    assert (b.sql, b.line, b.column) == ("SELECT 2 /* in */ + 3", 4, 2)


def test_last_statement_without_semicolon() -> None:
    _, b = split_ok("SELECT 1;\nSELECT 'ü' -- done\n")
    assert b.sql == "SELECT 'ü'"
    assert (b.index, b.line) == (1, 2)


def test_crlf_lines() -> None:
    a, b, c = split_ok("SELECT 1;\r\n\r\nSELECT 2;\rSELECT 3;")
    assert (a.line, b.line, c.line) == (1, 3, 4)


def test_dollar_quoted_body_and_strings_are_not_split() -> None:
    text = (
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $body$\n"
        "BEGIN\n  PERFORM 1; COMMIT;\nEND;\n$body$;\n"
        "SELECT 'a;b', $$ ; $$, E'\\'; BEGIN;';\n"
        'CREATE TABLE "odd;name" (x int);\n'
    )
    fn, select, table = split_ok(text)
    assert fn.kind == "CreateFunctionStmt"
    assert fn.sql.endswith("END;\n$body$")
    assert not fn.transaction_control
    assert (select.kind, select.line, select.transaction_control) == ("SelectStmt", 6, False)
    assert (table.kind, table.line) == ("CreateStmt", 7)


@pytest.mark.parametrize("text", ["", "   \n\n", "-- just a comment\n", "/* c */ -- d\n", ";;\n"])
def test_empty_file_has_no_statements(text: str) -> None:
    assert split_ok(text) == ()


def test_syntax_error_line_and_column() -> None:
    text = "-- é\nCREATE TABLE ok (id int);\n\nCREATE TABEL users (id int);\n"
    assert problems_of(text) == ['m.sql:4:8: syntax error at or near "TABEL"']


def test_syntax_error_after_non_ascii() -> None:
    assert problems_of("SELECT 'ünïcødé ✓✓✓'; SELEC 1;") == [
        'm.sql:1:23: syntax error at or near "SELEC"'
    ]


def test_syntax_error_at_end_of_input() -> None:
    assert problems_of("CREATE TABLE t (\n  id int\n\n") == [
        "m.sql:2:9: syntax error at end of input"
    ]


def test_unterminated_string() -> None:
    assert problems_of("SELECT 1;\nSELECT 'abc;\n") == [
        'm.sql:2:8: unterminated quoted string at or near "\'abc;\n"'
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX CONCURRENTLY i ON t (a)",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)",
        "DROP INDEX CONCURRENTLY i",
        "DROP INDEX CONCURRENTLY IF EXISTS s.i",
        "REINDEX INDEX CONCURRENTLY i",
        "REINDEX (CONCURRENTLY) TABLE t",
        "REINDEX SCHEMA s",
        "REINDEX DATABASE d",
        "REINDEX SYSTEM d",
        "VACUUM",
        "VACUUM FULL t",
        "VACUUM (ANALYZE) t",
        "VACUUM ANALYZE t",
        "CLUSTER",
        "CREATE DATABASE d",
        "DROP DATABASE d",
        "ALTER DATABASE d SET TABLESPACE fast",
        "CREATE TABLESPACE fast LOCATION '/x'",
        "DROP TABLESPACE fast",
        "ALTER SYSTEM SET work_mem = '64MB'",
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p",
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p WITH (create_slot = true)",
        "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
        "ALTER SUBSCRIPTION s SET PUBLICATION p",
        "ALTER SUBSCRIPTION s ADD PUBLICATION p WITH (refresh = true)",
        "DROP SUBSCRIPTION s",
        "ALTER TABLE t DETACH PARTITION p CONCURRENTLY",
        "DISCARD ALL",
    ],
)
def test_refused_inside_a_transaction(sql: str) -> None:
    statement = only(sql + ";")
    assert statement.transactional is False
    assert statement.transaction_control is False


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX i ON t (a)",
        "DROP INDEX i",
        "DROP TABLE t",
        "REINDEX INDEX i",
        "REINDEX (CONCURRENTLY false) INDEX i",
        "ANALYZE",
        "ANALYZE t",
        "CLUSTER t USING i",
        "ALTER TYPE mood ADD VALUE 'meh'",
        "ALTER DATABASE d SET work_mem = '1MB'",
        "ALTER TABLE t DETACH PARTITION p",
        "ALTER TABLE t ADD COLUMN c int",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p WITH (create_slot = false)",
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p WITH (connect = false)",
        "ALTER SUBSCRIPTION s SET PUBLICATION p WITH (refresh = false)",
        "ALTER SUBSCRIPTION s DISABLE",
        "DISCARD PLANS",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ VACUUM $$",
        "DO $$ BEGIN EXECUTE 'VACUUM'; END $$",
    ],
)
def test_allowed_inside_a_transaction(sql: str) -> None:
    statement = only(sql + ";")
    assert statement.transactional is True
    assert statement.concurrent_index is None


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("BEGIN", "TransactionStmt"),
        ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", "TransactionStmt"),
        ("COMMIT", "TransactionStmt"),
        ("END", "TransactionStmt"),
        ("ROLLBACK", "TransactionStmt"),
        ("SAVEPOINT a", "TransactionStmt"),
        ("RELEASE SAVEPOINT a", "TransactionStmt"),
        ("ROLLBACK TO SAVEPOINT a", "TransactionStmt"),
        ("PREPARE TRANSACTION 'x'", "TransactionStmt"),
        ("COMMIT PREPARED 'x'", "TransactionStmt"),
    ],
)
def test_transaction_control(sql: str, kind: str) -> None:
    statement = only(sql)
    assert statement.transaction_control is True
    assert statement.kind == kind


def test_concurrent_index_names() -> None:
    schema_index, unnamed, dropped, dropped_plain, many = split_ok(
        "CREATE INDEX CONCURRENTLY idx ON app.users (email);\n"
        "CREATE INDEX CONCURRENTLY ON users (email);\n"
        'DROP INDEX CONCURRENTLY IF EXISTS app."Idx";\n'
        "DROP INDEX CONCURRENTLY idx;\n"
        "DROP INDEX a, b;\n"
    )
    assert schema_index.concurrent_index == ("app", "idx")
    assert unnamed.concurrent_index is None
    assert unnamed.transactional is False
    assert dropped.concurrent_index == ("app", "Idx")
    assert dropped_plain.concurrent_index == (None, "idx")
    assert many.concurrent_index is None


def test_ignore_comments_directly_before_a_statement() -> None:
    text = (
        "-- pgshift-ignore: require-concurrent-index, ban-drop-column\n"
        "/* pgshift-ignore: adding-not-null */\n"
        "CREATE INDEX i ON t (a); -- pgshift-ignore: belongs-to-nobody\n"
        "-- pgshift-ignore: far-away\n"
        "\n"
        "DROP TABLE t;\n"
        "-- a comment between\n"
        "-- PGSHIFT-IGNORE: ban-drop-table\n"
        "-- another\n"
        "   DROP TABLE u;\n"
        "SELECT '-- pgshift-ignore: in-a-string';\n"
    )
    index, drop_t, drop_u, select = split_ok(text)
    assert index.ignore == ("require-concurrent-index", "ban-drop-column", "adding-not-null")
    assert drop_t.ignore == ()
    assert drop_u.ignore == ("ban-drop-table",)
    assert select.ignore == ()


def test_kind_is_the_node_name() -> None:
    kinds = [s.kind for s in split_ok("ALTER TABLE t ADD c int; INSERT INTO t VALUES (1); ANALYZE")]
    assert kinds == ["AlterTableStmt", "InsertStmt", "VacuumStmt"]


def test_line_index() -> None:
    lines = LineIndex("ab\ncd\r\nef\rg")
    assert [lines.position(i) for i in (0, 2, 3, 7, 10)] == [(1, 1), (1, 3), (2, 1), (3, 1), (4, 1)]


@pytest.mark.parametrize(
    ("sql", "transactional"),
    [
        ("COMMIT PREPARED 'x'", False),
        ("ROLLBACK PREPARED 'x'", False),
        ("PREPARE TRANSACTION 'x'", True),
        ("COMMIT", True),
        ("SAVEPOINT a", True),
    ],
)
def test_only_finishing_a_prepared_transaction_is_refused(sql: str, transactional: bool) -> None:
    statement = only(sql)
    assert statement.transaction_control is True
    assert statement.transactional is transactional


@pytest.mark.parametrize(
    ("sql", "transactional"),
    [
        ("ALTER SUBSCRIPTION s REFRESH PUBLICATION WITH (copy_data = false)", False),
        ("ALTER SUBSCRIPTION s DROP PUBLICATION p", False),
        ("ALTER SUBSCRIPTION s DROP PUBLICATION p WITH (refresh = false)", True),
        ("ALTER SUBSCRIPTION s ENABLE", True),
        ("CLUSTER t", True),
        ("REINDEX TABLE t", True),
        ("DISCARD TEMP", True),
        ("VACUUM (FULL, ANALYZE) t", False),
        ("ALTER TABLE t ADD COLUMN c int, DROP COLUMN d", True),
        ("SELECT 1", True),
    ],
)
def test_refusal_reads_the_statement_options(sql: str, transactional: bool) -> None:
    assert only(sql + ";").transactional is transactional


@pytest.mark.parametrize(
    ("sql", "stamped"),
    [
        ("ALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver=145157672);", True),
        (
            "ALTER TABLE ONLY t ALTER COLUMN a SET (pg_attver=1),"
            " ALTER COLUMN b SET (pg_attver=1);",
            True,
        ),
        ("ALTER TABLE ONLY public.t ALTER COLUMN id SET (n_distinct=5);", False),
        ("ALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver=1, n_distinct=5);", False),
        ("ALTER TABLE public.t OWNER TO app;", False),
        ("ALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver=1); DROP TABLE t;", False),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT", False),
    ],
)
def test_a_scratch_copy_leaves_out_only_the_column_options_a_server_stamps(
    sql: str, stamped: bool
) -> None:
    """PostgreSQL 15.20 stamps every column with pg_attver, which pg_dump dumps and other
    servers refuse; exactly those statements are left out of a copy, decided on the parse tree."""
    from pgshift.source.sql import sets_only_stamped_options

    assert sets_only_stamped_options(sql) is stamped
