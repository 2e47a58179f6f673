"""The schema fingerprint compares what a schema means, not how a major stores or prints it.

The same schema is built on the PostgreSQL 15 and the 18 server of the session and the two
fingerprints compared: PostgreSQL 18 keeps NOT NULL as named constraints (of tables and of
domains), prints a view's top-level columns without their table, and ships other extension
versions; none of that is a difference. A real difference still is, whichever side has it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from tests.plugins.pg import PgServer

from pgshift.db.fingerprint import Fingerprint, differences, fingerprint, portable

SCHEMA = r"""
CREATE EXTENSION citext;
CREATE SCHEMA app;
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE DOMAIN email AS text NOT NULL CHECK (VALUE LIKE '%@%');
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email email, name text NOT NULL DEFAULT '',
    m mood, born date CHECK (born > '1900-01-01'), score int NOT NULL, nick citext);
CREATE TABLE app.orders (
    id serial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    total numeric(10,2) NOT NULL, note varchar(20) COLLATE "C", UNIQUE (user_id, id));
ALTER TABLE app.orders ADD CONSTRAINT pos CHECK (total > 0) NOT VALID;
CREATE TABLE parent (id int NOT NULL, k text NOT NULL) PARTITION BY LIST (k);
CREATE TABLE child PARTITION OF parent FOR VALUES IN ('a');
CREATE TABLE inh_parent (a int NOT NULL);
CREATE TABLE inh_child (b int) INHERITS (inh_parent);
CREATE UNLOGGED TABLE ul (a int) WITH (fillfactor = 70);
ALTER TABLE ul ALTER COLUMN a SET NOT NULL;
CREATE INDEX users_name ON users (lower(name)) WHERE name <> '';
CREATE UNIQUE INDEX users_email ON users (email) NULLS NOT DISTINCT;
CREATE VIEW v AS SELECT u.id, u.name,
    (SELECT count(*) FROM app.orders o WHERE o.user_id = u.id) AS n
    FROM users u WHERE u.score > 1 ORDER BY 1;
CREATE VIEW v2 AS SELECT * FROM (SELECT id FROM users) s UNION ALL SELECT 1;
CREATE VIEW v3 AS WITH w AS (SELECT id FROM users) SELECT w.id FROM w;
CREATE VIEW v4 AS SELECT w.id, x FROM users w, generate_series(1, 2) x;
CREATE VIEW v5 AS SELECT x.x FROM generate_series(1, 2) x;
CREATE MATERIALIZED VIEW mv AS SELECT id, name FROM users WITH NO DATA;
CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + 1';
CREATE FUNCTION g(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a * 2; END;
CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN NEW.name := upper(NEW.name); RETURN NEW; END$$;
CREATE TRIGGER tt BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION t();
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY pol ON users USING (score > 0);
CREATE SEQUENCE s INCREMENT 5 MINVALUE 3;
CREATE TABLE gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED);
CREATE TYPE comp AS (x int, y text);
CREATE TYPE rng AS RANGE (subtype = float8);
CREATE TABLE ex (r int4range, EXCLUDE USING gist (r WITH &&));
"""


@pytest.fixture
def other_db(other_server: PgServer) -> Iterator[str]:
    """A fresh database on the session's other server (the other major)."""
    name = f"test_{uuid.uuid4().hex}"
    other_server.create_database(name)
    try:
        yield other_server.url(name)
    finally:
        other_server.drop_database(name)


def _built(url: str, *statements: str) -> Fingerprint:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())
        return fingerprint(conn)


def test_the_same_schema_gives_the_same_fingerprint_on_15_and_18(
    db_url: str, other_db: str
) -> None:
    here, there = _built(db_url, SCHEMA), _built(other_db, SCHEMA)
    assert differences(portable(here), portable(there)) == []
    # What `portable` folds really differs as the servers print it (else it would be needless),
    # and nothing else does; not-null constraints never show, on either major.
    raw = differences(here, there)
    assert raw and all(
        line.startswith(("changed: view ", "changed: materialized view ", "changed: extension "))
        for line in raw
    ), raw
    assert {line.split(" (")[0] for line in raw} == {
        "changed: view public.v definition",
        "changed: view public.v3 definition",
        "changed: view public.v5 definition",
        "changed: materialized view public.mv definition",
        "changed: extension citext version",
    }
    assert not [key for key in here if key.endswith("_not_null")]


def test_a_real_difference_is_still_reported_across_majors(db_url: str, other_db: str) -> None:
    here = _built(db_url, SCHEMA, "ALTER TABLE users ALTER COLUMN score DROP NOT NULL")
    there = _built(
        other_db,
        SCHEMA,
        "CREATE OR REPLACE VIEW v AS SELECT u.id, u.name, (SELECT count(*) FROM app.orders o"
        " WHERE o.user_id = u.id) AS n FROM users u WHERE u.score > 2 ORDER BY 1",
        "ALTER EXTENSION citext SET SCHEMA app",
        "ALTER DOMAIN email DROP NOT NULL",
    )
    found = differences(portable(there), portable(here))
    assert "changed: column public.users.score (integer not null -> integer)" in found
    assert "changed: extension citext (in app -> in public)" in found
    assert any(line.startswith("changed: view public.v definition") for line in found)
    assert any(line.startswith("changed: type public.email") for line in found)
    assert "changed: column public.users.nick (app.citext -> citext)" in found  # its type moved
    assert len(found) == 5, found


@pytest.mark.pg(">= 18")
def test_a_not_null_18_alone_can_express_is_a_difference(db_url: str, other_db: str) -> None:
    """NOT VALID and NO INHERIT not-null constraints exist from PostgreSQL 18 on: a 15 database
    cannot have them, so a proof against one reports them; a constraint's name never counts."""
    base = "CREATE TABLE t (a int, b int, c int NOT NULL)"
    here = _built(
        db_url,
        base,
        "ALTER TABLE t ADD CONSTRAINT a_present NOT NULL a NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT b_present NOT NULL b NO INHERIT",
        "ALTER TABLE t RENAME CONSTRAINT t_c_not_null TO c_named",
    )
    there = _built(other_db, base, "ALTER TABLE t ALTER a SET NOT NULL, ALTER b SET NOT NULL")
    assert differences(portable(there), portable(here)) == [
        "changed: column public.t.a (integer not null -> integer not null (not validated))",
        "changed: column public.t.b (integer not null -> integer not null no inherit)",
    ]
