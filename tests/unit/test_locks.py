"""The locks each statement takes, as `rollback dry-run` shows them, read from SQL literals.

One case per branch of the classifier, so that moving or reshaping it cannot change a word of
what an operator reads before reverting a production table.
"""

from __future__ import annotations

import pytest

from pgshift.source.locks import statement_locks

AE = "ACCESS EXCLUSIVE"
SUE = "SHARE UPDATE EXCLUSIVE"
SRE = "SHARE ROW EXCLUSIVE"
CATALOG = "no table lock (catalog change only)"


@pytest.mark.parametrize(
    ("sql", "locks"),
    [
        ("DROP TABLE one", (f"{AE} on table one",)),
        ("DROP TABLE app.one, two", (f"{AE} on table app.one", f"{AE} on table two")),
        ("DROP VIEW v", (f"{AE} on view v",)),
        ("DROP MATERIALIZED VIEW mv", (f"{AE} on materialized view mv",)),
        ("DROP SEQUENCE s", (f"{AE} on sequence s",)),
        ("DROP FOREIGN TABLE f", (f"{AE} on foreign table f",)),
        ("DROP INDEX i", (f"{AE} on index i and its table",)),
        ("DROP INDEX CONCURRENTLY app.i", (f"{SUE} on the table of app.i",)),
        ("DROP FUNCTION f()", (CATALOG,)),
        ("DROP TYPE mood, feeling", (CATALOG,)),
        ("DROP SCHEMA s", (CATALOG,)),
    ],
)
def test_drop(sql: str, locks: tuple[str, ...]) -> None:
    assert statement_locks(sql) == locks


@pytest.mark.parametrize(
    ("sql", "locks"),
    [
        # Subcommands that keep SHARE UPDATE EXCLUSIVE.
        ("ALTER TABLE t VALIDATE CONSTRAINT c", (f"{SUE} on t",)),
        ("ALTER TABLE t ALTER COLUMN a SET STATISTICS 100", (f"{SUE} on t",)),
        # tablecmds.c AlterTableGetLockLevel: AT_SetOptions / AT_ResetOptions (validate --trace
        # caught the classifier saying ACCESS EXCLUSIVE here).
        ("ALTER TABLE t ALTER COLUMN a SET (n_distinct = 100)", (f"{SUE} on t",)),
        ("ALTER TABLE t ALTER COLUMN a RESET (n_distinct)", (f"{SUE} on t",)),
        ("ALTER TABLE t SET (fillfactor = 70)", (f"{SUE} on t",)),
        ("ALTER TABLE t RESET (fillfactor)", (f"{SUE} on t",)),
        ("ALTER TABLE t CLUSTER ON i", (f"{SUE} on t",)),
        ("ALTER TABLE t SET WITHOUT CLUSTER", (f"{SUE} on t",)),
        ("ALTER TABLE p ATTACH PARTITION c FOR VALUES IN (1)", (f"{SUE} on p",)),
        ("ALTER INDEX i SET (fillfactor = 70)", (f"{SUE} on i",)),
        # A foreign key: SHARE ROW EXCLUSIVE on both tables.
        (
            "ALTER TABLE app.t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES app.p (id)",
            (f"{SRE} on app.t", f"{SRE} on app.p"),
        ),
        (
            "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id),"
            " ADD CONSTRAINT fk2 FOREIGN KEY (b) REFERENCES q (id)",
            (f"{SRE} on t", f"{SRE} on p", f"{SRE} on q"),
        ),
        # The strongest subcommand wins, whichever comes first.
        (
            "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id), DROP COLUMN z",
            (f"{AE} on t", f"{SRE} on p"),
        ),
        (
            "ALTER TABLE t DROP COLUMN z, ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id)",
            (f"{AE} on t", f"{SRE} on p"),
        ),
        ("ALTER TABLE t ENABLE TRIGGER tr", (f"{SRE} on t",)),
        ("ALTER TABLE t DISABLE TRIGGER tr", (f"{SRE} on t",)),
        ("ALTER TABLE t DROP COLUMN z, DISABLE TRIGGER tr", (f"{AE} on t",)),
        ("ALTER TABLE t DISABLE TRIGGER tr, DROP COLUMN z", (f"{AE} on t",)),
        ("ALTER TABLE t VALIDATE CONSTRAINT c, ADD COLUMN b int", (f"{AE} on t",)),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", (f"{AE} on t",)),
        ("ALTER TABLE t ADD COLUMN b int REFERENCES p", (f"{AE} on t",)),
        ("ALTER TABLE ONLY t DROP CONSTRAINT c", (f"{AE} on t",)),
    ],
)
def test_alter_table(sql: str, locks: tuple[str, ...]) -> None:
    assert statement_locks(sql) == locks


@pytest.mark.parametrize(
    ("sql", "locks"),
    [
        ("CREATE INDEX i ON t (a)", ("SHARE on t",)),
        ("CREATE INDEX CONCURRENTLY i ON app.t (a)", (f"{SUE} on app.t",)),
        ("ALTER TABLE t RENAME TO u", (f"{AE} on t",)),
        ("ALTER TABLE app.t RENAME COLUMN a TO b", (f"{AE} on app.t",)),
        ("ALTER TYPE mood RENAME TO feeling", (CATALOG,)),
        ("ALTER SCHEMA s RENAME TO r", (CATALOG,)),
        ("TRUNCATE a, app.b", (f"{AE} on a", f"{AE} on app.b")),
        ("INSERT INTO t VALUES (1)", ("ROW EXCLUSIVE on t",)),
        ("UPDATE app.t SET a = 1", ("ROW EXCLUSIVE on app.t",)),
        ("DELETE FROM t", ("ROW EXCLUSIVE on t",)),
        ("CREATE TABLE t (id int)", ("none on existing tables (creates a new one)",)),
        (
            "CREATE TABLE t (id int PRIMARY KEY, CHECK (id > 0))",
            ("none on existing tables (creates a new one)",),
        ),
        (
            "CREATE TABLE t (id int REFERENCES p (id), b int REFERENCES app.q)",
            (f"{SRE} on p", f"{SRE} on app.q"),
        ),
        ("CREATE TABLE t (id int, FOREIGN KEY (id) REFERENCES p (id))", (f"{SRE} on p",)),
        (
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
            (f"{SRE} on t",),
        ),
        ("VACUUM t", (f"{SUE} on t",)),
        ("VACUUM FULL t, app.u", (f"{AE} on t", f"{AE} on app.u")),
        ("VACUUM (FULL) t", (f"{AE} on t",)),
        ("VACUUM", ()),
        ("ANALYZE t", (f"{SUE} on t",)),
        ("REFRESH MATERIALIZED VIEW mv", (f"{AE} on mv",)),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY app.mv", ("EXCLUSIVE on app.mv",)),
        ("SELECT 1", ("ACCESS SHARE on the tables it reads",)),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", (CATALOG,)),
        ("COMMENT ON TABLE t IS 'x'", (CATALOG,)),
    ],
)
def test_other_statements(sql: str, locks: tuple[str, ...]) -> None:
    assert statement_locks(sql) == locks


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT 1; SELECT 2", ""])
def test_what_does_not_parse_as_one_statement_is_unknown(sql: str) -> None:
    assert statement_locks(sql) == ("unknown (does not parse)",)
