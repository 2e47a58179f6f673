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
