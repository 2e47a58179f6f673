"""The expand, contract and undo statements derived by rewrite/expand.py, run on real servers.

These run the phases' statements directly (the backfill as one UPDATE), so what they prove is
PostgreSQL's side: after expand both shapes read and write the same rows through every kind
of statement, contract leaves exactly the final shape, undo exactly the old one.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from pgshift.db.expand import facts_of
from pgshift.rewrite.expand import (
    CONTRACT,
    EXPAND,
    UNDO,
    Expansion,
    changes_of,
    expansion,
    tables_of,
)
from pgshift.source.sql import split_statements

V = "20260101000000"

TABLE = """
CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    amount integer NOT NULL DEFAULT 0 CHECK (amount >= 0),
    note text,
    CONSTRAINT accounts_name_key UNIQUE (name)
);
COMMENT ON COLUMN accounts.name IS 'who';
CREATE INDEX accounts_amount_idx ON accounts (amount) WHERE amount > 0;
INSERT INTO accounts (name, amount, note) SELECT 'n' || g, g, 'x' FROM generate_series(1, 50) g;
"""

MIGRATION = """
ALTER TABLE accounts RENAME COLUMN name TO full_name;
ALTER TABLE accounts ALTER COLUMN amount TYPE bigint;
ALTER TABLE accounts ALTER COLUMN note SET NOT NULL;
"""


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(TABLE)
        yield c


def _derive(conn: psycopg.Connection, sql: str) -> Expansion:
    statements, _ = split_statements(sql, "m.sql")
    changes = changes_of(statements)
    return expansion(V, changes, facts_of(conn, tables_of(changes)))


def _run(conn: psycopg.Connection, e: Expansion, phase: str) -> None:
    steps = e.steps(phase)
    for start, end, transactional in e.groups(phase):
        if transactional:
            with conn.transaction():
                for step in steps[start:end]:
                    conn.execute(step.sql)
        else:
            for step in steps[start:end]:
                conn.execute(step.sql)


def _shape(conn: psycopg.Connection) -> list[tuple[str, str, bool]]:
    return conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute"
        " WHERE attrelid = 'accounts'::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attname"
    ).fetchall()


def _objects(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE '%%pgshift%%'"
            " UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '%%pgshift%%'"
            " UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE '%%pgshift%%'"
            " UNION ALL SELECT conname FROM pg_constraint WHERE conname LIKE '%%pgshift%%'"
        ).fetchall()
    ]


def test_both_shapes_read_and_write_the_same_rows_then_contract_leaves_the_final_shape(
    conn: psycopg.Connection,
) -> None:
    e = _derive(conn, MIGRATION)
    _run(conn, e, EXPAND)
    # the old code: old names, old types
    conn.execute("INSERT INTO accounts (name, amount, note) VALUES ('old1', 7, 'o')")
    conn.execute("UPDATE accounts SET name = 'n1-old', amount = 11 WHERE id = 1")
    row = conn.execute(
        "INSERT INTO accounts (name, amount, note) VALUES ('n2', 5, 'u') ON CONFLICT (name)"
        " DO UPDATE SET amount = excluded.amount RETURNING id, name, amount"
    ).fetchone()
    assert row == (2, "n2", 5)
    # the new code: new names, new types
    conn.execute("INSERT INTO accounts (full_name, amount, note) VALUES ('new1', 9, 'n')")
    conn.execute("UPDATE accounts SET full_name = 'n3-new' WHERE id = 3")
    row = conn.execute(
        "INSERT INTO accounts (full_name, amount, note) VALUES ('n4', 44, 'u')"
        " ON CONFLICT (full_name) DO UPDATE SET amount = excluded.amount"
        " RETURNING id, full_name, amount"
    ).fetchone()
    assert row == (4, "n4", 44)
    rows = conn.execute(
        "SELECT count(*) FILTER (WHERE name IS DISTINCT FROM full_name),"
        f" count(*) FILTER (WHERE amount_pgshift_new_{V} IS DISTINCT FROM amount) FROM accounts"
    ).fetchone()
    assert rows == (0, 0)
    assert conn.execute("SELECT name FROM accounts WHERE full_name = 'new1'").fetchone() == (
        "new1",
    )
    assert conn.execute("SELECT full_name FROM accounts WHERE id = 1").fetchone() == ("n1-old",)
    _run(conn, e, CONTRACT)
    assert _shape(conn) == [
        ("amount", "bigint", True),
        ("full_name", "text", True),
        ("id", "bigint", True),
        ("note", "text", True),
    ]
    assert _objects(conn) == []
    assert conn.execute("SELECT amount FROM accounts WHERE id = 4").fetchone() == (44,)
    indexes = {
        r[0]
        for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'accounts'"
        ).fetchall()
    }
    assert indexes == {"accounts_pkey", "accounts_name_key", "accounts_amount_idx"}
    conn.execute("INSERT INTO accounts (full_name, amount, note) VALUES ('big', 5000000000, 'n')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO accounts (full_name, note) VALUES ('big', 'x')")
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO accounts (full_name, amount, note) VALUES ('neg', -1, 'x')")
    assert conn.execute(
        "SELECT col_description('accounts'::regclass, attnum) FROM pg_attribute"
        " WHERE attrelid = 'accounts'::regclass AND attname = 'full_name'"
    ).fetchone() == ("who",)
    conn.execute(
        "INSERT INTO accounts (full_name, note) VALUES ('seq', 'x')"
    )  # the sequence stayed


def test_undo_returns_the_old_shape_with_the_new_codes_writes(conn: psycopg.Connection) -> None:
    before = _shape(conn)
    e = _derive(conn, MIGRATION)
    _run(conn, e, EXPAND)
    conn.execute("INSERT INTO accounts (full_name, amount, note) VALUES ('new1', 9, 'n')")
    conn.execute("UPDATE accounts SET full_name = 'renamed' WHERE id = 1")
    _run(conn, e, UNDO)
    assert _shape(conn) == before
    assert _objects(conn) == []
    assert conn.execute("SELECT name FROM accounts WHERE id = 1").fetchone() == ("renamed",)
    assert conn.execute("SELECT amount FROM accounts WHERE name = 'new1'").fetchone() == (9,)


def test_a_plan_made_again_mid_expand_derives_the_same_steps(conn: psycopg.Connection) -> None:
    first = _derive(conn, MIGRATION)
    steps = first.steps(EXPAND)
    start, end, _ = first.groups(EXPAND)[0]
    with conn.transaction():
        for step in steps[start:end]:
            conn.execute(step.sql)
    again = _derive(conn, MIGRATION)
    assert again.steps(EXPAND) == steps


KINDS = {
    "set-not-null": (
        "CREATE TABLE t (id bigint PRIMARY KEY, note text); INSERT INTO t VALUES (1, 'a');",
        "ALTER TABLE t ALTER COLUMN note SET NOT NULL;",
        ["INSERT INTO t VALUES (2, 'old')"],
        ["INSERT INTO t VALUES (3, 'new')"],
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'",
        (True,),
    ),
    "add-column-volatile-default": (
        "CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 20);",
        "ALTER TABLE t ADD COLUMN token text NOT NULL DEFAULT md5(random()::text);",
        ["INSERT INTO t (id) VALUES (100)"],
        ["INSERT INTO t (id, token) VALUES (101, 'mine')"],
        "SELECT count(*) FILTER (WHERE token IS NULL), count(DISTINCT token), bool_and(attnotnull)"
        " FROM t, pg_attribute WHERE attrelid = 't'::regclass AND attname = 'token'",
        (0, 22, True),
    ),
    "drop-column": (
        "CREATE TABLE t (id bigint PRIMARY KEY, legacy text NOT NULL);"
        " INSERT INTO t VALUES (1, 'x');",
        "ALTER TABLE t DROP COLUMN legacy;",
        ["INSERT INTO t VALUES (2, 'old')", "SELECT legacy FROM t"],
        ["INSERT INTO t (id) VALUES (3)"],
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'legacy'"
        " AND NOT attisdropped",
        (0,),
    ),
    "rename-table": (
        "CREATE TABLE accounts_old (id bigserial PRIMARY KEY, email text UNIQUE, n int DEFAULT 0);"
        " INSERT INTO accounts_old (email) VALUES ('a');",
        "ALTER TABLE accounts_old RENAME TO customers;",
        [
            "INSERT INTO accounts_old (email) VALUES ('b') RETURNING id, n",
            "INSERT INTO accounts_old (email) VALUES ('b') ON CONFLICT (email) DO UPDATE"
            " SET n = accounts_old.n + 1 RETURNING n",
            "UPDATE accounts_old SET n = 5 WHERE email = 'a' RETURNING n",
            "DELETE FROM accounts_old WHERE email = 'b' RETURNING id",
        ],
        ["INSERT INTO customers (email) VALUES ('c') RETURNING id"],
        "SELECT to_regclass('accounts_old') IS NULL, (SELECT n FROM customers WHERE email = 'a')",
        (True, 5),
    ),
    "add-constraints": (
        "CREATE TABLE p (id bigint PRIMARY KEY); INSERT INTO p VALUES (1);"
        " CREATE TABLE t (id bigint PRIMARY KEY, p_id bigint, n int, code text);"
        " INSERT INTO t VALUES (1, 1, 5, 'a');",
        "ALTER TABLE t ADD CONSTRAINT t_n_positive CHECK (n > 0);"
        " ALTER TABLE t ADD CONSTRAINT t_p_fk FOREIGN KEY (p_id) REFERENCES p (id);"
        " ALTER TABLE t ADD CONSTRAINT t_code_key UNIQUE (code);",
        ["INSERT INTO t VALUES (2, 1, 1, 'b')"],
        ["INSERT INTO t VALUES (3, NULL, 2, 'c') ON CONFLICT (code) DO NOTHING"],
        "SELECT count(*) FILTER (WHERE convalidated) FROM pg_constraint"
        " WHERE conrelid = 't'::regclass AND conname IN ('t_n_positive', 't_p_fk', 't_code_key')",
        (3,),
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_change_serves_both_shapes_and_contracts_or_undoes(db_url: str, kind: str) -> None:
    table, migration, old_code, new_code, final_query, final = KINDS[kind]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(table)
        e = _derive(conn, migration)
        _run(conn, e, EXPAND)
        for sql in old_code + new_code:
            conn.execute(sql)
        _run(conn, e, CONTRACT)
        assert conn.execute(final_query).fetchone() == final
        assert _objects(conn) == []
    with psycopg.connect(db_url, autocommit=True) as conn:  # the undo, on a fresh table
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        conn.execute(table)
        before = _catalog(conn)
        e = _derive(conn, migration)
        _run(conn, e, EXPAND)
        for sql in old_code:
            conn.execute(sql)
        _run(conn, e, UNDO)
        assert _catalog(conn) == before
        assert _objects(conn) == []


def _catalog(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    """Every relation, column and constraint of the public schema, for comparing shapes."""
    return conn.execute(
        "SELECT c.relname::text, c.relkind::text, a.attname::text,"
        " format_type(a.atttypid, a.atttypmod), a.attnotnull"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE n.nspname = 'public'"
        " UNION ALL SELECT conname::text, contype::text, NULL, NULL, convalidated"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2, 3"
    ).fetchall()


def test_a_validated_check_lets_contract_set_not_null_without_a_scan(
    conn: psycopg.Connection,
) -> None:
    """The fact contract's SET NOT NULL relies on (tablecmds.c, NotNullImpliedByRelConstraints
    and its successors): a valid CHECK (col IS NOT NULL) spares the scan of the table."""
    e = _derive(conn, "ALTER TABLE accounts ALTER COLUMN note SET NOT NULL;")
    conn.execute("UPDATE accounts SET note = 'x' WHERE note IS NULL")
    _run(conn, e, EXPAND)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("SET client_min_messages = debug1")
    _run(conn, e, CONTRACT)
    assert any("sufficient to prove" in n for n in notices), notices


KEYS = """
CREATE TABLE orders (id serial PRIMARY KEY, note text);
CREATE TABLE items (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    order_id integer NOT NULL REFERENCES orders (id), n int);
INSERT INTO orders (note) SELECT 'o' || g FROM generate_series(1, 30) g;
INSERT INTO items (order_id, n) SELECT g, g FROM generate_series(1, 30) g;
"""


def test_a_serial_primary_key_referenced_by_a_foreign_key_widens_to_bigint(
    db_url: str,
) -> None:
    """The int-to-bigint of a key: the shadow gets a unique index built concurrently, contract
    drops and re-adds the foreign keys that point at it (NOT VALID, then validated on their
    own) and widens the sequence with the column."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(KEYS)
        e = _derive(conn, "ALTER TABLE orders ALTER COLUMN id TYPE bigint;")
        _run(conn, e, EXPAND)
        row = conn.execute("INSERT INTO orders (note) VALUES ('during') RETURNING id").fetchone()
        assert row is not None
        conn.execute("INSERT INTO items (order_id, n) VALUES (%s, 0)", (row[0],))
        conn.execute("INSERT INTO orders (note) VALUES ('x') ON CONFLICT (id) DO NOTHING")
        _run(conn, e, CONTRACT)
        assert conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'orders'::regclass AND attname = 'id'"
        ).fetchone() == ("bigint",)
        assert conn.execute(
            "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'items'::regclass"
            " AND contype = 'f'"
        ).fetchall() == [("items_order_id_fkey", True)]
        assert conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass"
            " AND contype = 'p'"
        ).fetchall() == [("orders_pkey",)]
        widened = "SELECT data_type FROM pg_sequences WHERE sequencename = 'orders_id_seq'"
        assert conn.execute(widened).fetchone() == ("bigint",)
        conn.execute("SELECT setval('orders_id_seq', 3000000000)")
        big = conn.execute("INSERT INTO orders (note) VALUES ('big') RETURNING id").fetchone()
        assert big == (3000000001,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO items (order_id) VALUES (999999)")
        assert _objects(conn) == []


def test_an_identity_column_keeps_counting_through_its_type_change(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(KEYS)
        e = _derive(conn, "ALTER TABLE items ALTER COLUMN id TYPE bigint;")
        _run(conn, e, EXPAND)
        conn.execute("INSERT INTO items (order_id, n) VALUES (1, 31)")
        _run(conn, e, CONTRACT)
        row = conn.execute("INSERT INTO items (order_id, n) VALUES (1, 32) RETURNING id").fetchone()
        assert row == (32,)
        assert conn.execute(
            "SELECT attidentity, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'items'::regclass AND attname = 'id'"
        ).fetchone() == ("a", "bigint")
        assert _objects(conn) == []


def test_a_narrowing_with_using_checks_the_old_codes_values_against_the_new_type(
    db_url: str,
) -> None:
    """`bigint` to `integer` through a `USING` expression: during the window the old code's
    writes go through it, so a value the new type cannot hold is refused at once (it could
    not survive contract) while every other write is served in both shapes."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, code text NOT NULL, n bigint);"
            " INSERT INTO t SELECT g, ' ' || g, g FROM generate_series(1, 50) g;"
        )
        e = _derive(
            conn,
            "ALTER TABLE t ALTER COLUMN code TYPE integer USING trim(code)::integer;"
            " ALTER TABLE t ALTER COLUMN n TYPE integer;",
        )
        _run(conn, e, EXPAND)
        conn.execute("INSERT INTO t VALUES (51, '  51', 2147483647)")
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            conn.execute("INSERT INTO t VALUES (52, '52', 3000000000)")
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute("UPDATE t SET code = 'twelve' WHERE id = 12")
        _run(conn, e, CONTRACT)
        assert conn.execute("SELECT code, n FROM t WHERE id = 51").fetchone() == (51, 2147483647)
        assert conn.execute(
            "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attname)"
            " FROM pg_attribute WHERE attrelid = 't'::regclass AND attname IN ('code', 'n')"
        ).fetchone() == ("integer,integer",)
        assert _objects(conn) == []


def test_column_privileges_and_the_tables_grants_follow_the_new_shape(db_url: str) -> None:
    """A role allowed one column reads the renamed column in the window and after contract;
    a renamed table's view carries the table's grants, PUBLIC's too."""
    role = "pgshift_expand_reader"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role};"
            " CREATE TABLE t (id bigint PRIMARY KEY, secret text, name text);"
            " INSERT INTO t VALUES (1, 's', 'n');"
            f" GRANT SELECT (id, name) ON t TO {role};"
            " CREATE TABLE u (id bigint PRIMARY KEY); GRANT SELECT ON u TO PUBLIC;"
        )
        try:
            e = _derive(conn, "ALTER TABLE t RENAME COLUMN name TO full_name;")
            _run(conn, e, EXPAND)
            with conn.transaction():
                conn.execute(f"SET LOCAL ROLE {role}")
                assert conn.execute("SELECT full_name, name FROM t").fetchone() == ("n", "n")
            _run(conn, e, CONTRACT)
            with conn.transaction():
                conn.execute(f"SET LOCAL ROLE {role}")
                assert conn.execute("SELECT full_name FROM t").fetchone() == ("n",)
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("SELECT secret FROM t")
            e = _derive(conn, "ALTER TABLE u RENAME TO v;")
            _run(conn, e, EXPAND)
            with conn.transaction():
                conn.execute(f"SET LOCAL ROLE {role}")
                assert conn.execute("SELECT count(*) FROM u").fetchone() == (0,)
        finally:
            conn.execute("DROP TABLE IF EXISTS t; DROP VIEW IF EXISTS u; DROP TABLE IF EXISTS v")
            conn.execute(f"DROP ROLE IF EXISTS {role}")
