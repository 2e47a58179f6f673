"""The lock table: the strongest lock each kind of statement takes on each relation it touches.

Why it is data: every place pgshift states a lock (lint messages, `rollback dry-run`, `validate
--trace`, docs/locks.md) reads it from here, and tests/integration/test_lock_table.py runs every
example below on each PostgreSQL major the suite runs and compares the strongest lock the
server's own backend holds on each relation (pg_locks) with what this table says. A kind's
``example`` runs against that test's fixture schema (tables t, p, c, m, m1, m2, u, the view v,
the materialized view mv, the sequence s, the index t_a_idx...), so it must keep doing so.

Modes are those of the newest major the suite runs (18); ``pg15`` is PostgreSQL 15's mode where
it differs (``NONE``: no lock there). Locks a query takes on the tables it only reads (ACCESS
SHARE, ROW SHARE for foreign-key checks) and locks on a relation's own indexes, TOAST table and
owned sequences no stronger than the relation's are left out: they are implied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
NONE = ""  # no lock at all on that relation

#: The eight table-level modes, weakest first (the manual's "Table-Level Locks").
MODES = (
    ACCESS_SHARE,
    ROW_SHARE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
)
STRENGTH = {NONE: -1} | {mode: i for i, mode in enumerate(MODES)}

#: The majors whose behaviour this table records: the newest first.
NEWEST_MAJOR = 18
OLDEST_MAJOR = 15

# Roles: what a relation is to the statement.
TABLE = "table"
REFERENCED = "referenced table"
INDEX = "index"
INDEX_TABLE = "table of the index"
INDEXES = "indexes of the table"
PARENT = "partitioned table"
PARTITION = "partition"
VIEW = "view"
MATVIEW = "materialized view"
SEQUENCE = "sequence"
DOMAIN_TABLES = "tables using the domain"
RELATION = "relation"


@dataclass(frozen=True)
class RoleLock:
    """The strongest mode a kind of statement takes on the relations of one role."""

    role: str
    mode: str
    pg15: str | None = None  # PostgreSQL 15's mode, where it differs
    when: str = ""  # the condition under which the role exists ("when it is a foreign key")

    def mode_on(self, major: int | None) -> str:
        """The mode on ``major``: the newest major's when unknown or newer than 15."""
        if self.pg15 is not None and major is not None and major <= OLDEST_MAJOR:
            return self.pg15
        return self.mode


@dataclass(frozen=True)
class LockFact:
    """One kind of statement: its stable key, examples, and its lock per role.

    A role with a ``when`` exists only in some statements of the kind: the examples show it
    both present and absent.

    ``transactional``: PostgreSQL runs it inside a transaction block (else the test samples its
    locks from a second session while a third one makes it wait). ``new_file``: the statement
    gives its table a new relfilenode (True), never does (False), or it depends (None).
    """

    kind: str
    examples: tuple[str, ...]
    locks: tuple[RoleLock, ...]
    transactional: bool = True
    new_file: bool | None = False
    note: str = ""


def _f(kind: str, example: str | tuple[str, ...], *locks: RoleLock, **extra: Any) -> LockFact:
    examples = (example,) if isinstance(example, str) else example
    return LockFact(kind, examples, locks, **extra)


AE, SUE, SRE = ACCESS_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE_ROW_EXCLUSIVE
_FK_REFERENCED = "when it is a foreign key"
_FK_COLUMN = "when the column has a foreign key"

LOCK_FACTS: tuple[LockFact, ...] = (
    # -- ALTER TABLE subcommands (tablecmds.c, AlterTableGetLockLevel) ------------------------
    _f("ALTER TABLE ADD COLUMN", ("ALTER TABLE t ADD COLUMN d int",
       "ALTER TABLE t ADD COLUMN d int DEFAULT 1"), RoleLock(TABLE, AE), new_file=None,
       note="rewrites the table when the default is volatile"),
    _f("ALTER TABLE ADD COLUMN REFERENCES", "ALTER TABLE t ADD COLUMN d int REFERENCES p (id)",
       RoleLock(TABLE, AE), RoleLock(REFERENCED, SRE)),
    _f("ALTER TABLE DROP COLUMN", ("ALTER TABLE t DROP COLUMN b",
       "ALTER TABLE c DROP COLUMN p_id"), RoleLock(TABLE, AE),
       RoleLock(REFERENCED, AE, when=_FK_COLUMN)),
    _f("ALTER TABLE ALTER COLUMN TYPE", ("ALTER TABLE t ALTER COLUMN c TYPE bigint",
       "ALTER TABLE c ALTER COLUMN p_id TYPE bigint", "ALTER TABLE t ALTER COLUMN b TYPE text"),
       RoleLock(TABLE, AE), RoleLock(REFERENCED, AE, when=_FK_COLUMN), new_file=None,
       note="rewrites the table and rebuilds its indexes unless the types are binary compatible"),
    _f("ALTER TABLE ALTER COLUMN SET DEFAULT", "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1",
       RoleLock(TABLE, AE)),
    _f("ALTER TABLE ALTER COLUMN DROP DEFAULT", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT",
       RoleLock(TABLE, AE)),
    _f("ALTER TABLE ALTER COLUMN SET NOT NULL", "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
       RoleLock(TABLE, AE), note="scans the table unless a valid CHECK proves it"),
    _f("ALTER TABLE ALTER COLUMN DROP NOT NULL", "ALTER TABLE t ALTER COLUMN b DROP NOT NULL",
       RoleLock(TABLE, AE)),
    _f("ALTER TABLE ALTER COLUMN SET STATISTICS",
       "ALTER TABLE t ALTER COLUMN a SET STATISTICS 100", RoleLock(TABLE, SUE)),
    _f("ALTER TABLE ALTER COLUMN SET or RESET (attribute options)",
       ("ALTER TABLE t ALTER COLUMN a SET (n_distinct = 100)",
        "ALTER TABLE t ALTER COLUMN a RESET (n_distinct)"), RoleLock(TABLE, SUE)),
    _f("ALTER TABLE ALTER COLUMN SET STORAGE", "ALTER TABLE t ALTER COLUMN b SET STORAGE EXTERNAL",
       RoleLock(TABLE, AE)),
    _f("ALTER TABLE ALTER COLUMN ADD GENERATED AS IDENTITY",
       "ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY", RoleLock(TABLE, AE)),
    _f("ALTER TABLE ADD CONSTRAINT CHECK", "ALTER TABLE t ADD CONSTRAINT t_c_check CHECK (c > 0)",
       RoleLock(TABLE, AE), note="checks every row"),
    _f("ALTER TABLE ADD CONSTRAINT CHECK NOT VALID",
       "ALTER TABLE t ADD CONSTRAINT t_c_check CHECK (c > 0) NOT VALID", RoleLock(TABLE, AE)),
    _f("ALTER TABLE ADD CONSTRAINT FOREIGN KEY",
       "ALTER TABLE c ADD CONSTRAINT c_fk2 FOREIGN KEY (p_id) REFERENCES p (id)",
       RoleLock(TABLE, SRE), RoleLock(REFERENCED, SRE), note="checks every row"),
    _f("ALTER TABLE ADD CONSTRAINT FOREIGN KEY NOT VALID",
       "ALTER TABLE c ADD CONSTRAINT c_fk2 FOREIGN KEY (p_id) REFERENCES p (id) NOT VALID",
       RoleLock(TABLE, SRE), RoleLock(REFERENCED, SRE)),
    _f("ALTER TABLE ADD CONSTRAINT UNIQUE or PRIMARY KEY",
       ("ALTER TABLE t ADD CONSTRAINT t_b_key UNIQUE (b)", "ALTER TABLE m2 ADD PRIMARY KEY (k)"),
       RoleLock(TABLE, AE), note="builds the index"),
    _f("ALTER TABLE ADD CONSTRAINT UNIQUE or PRIMARY KEY USING INDEX",
       "ALTER TABLE t ADD CONSTRAINT t_c_uniq UNIQUE USING INDEX t_c_key", RoleLock(TABLE, AE)),
    _f("ALTER TABLE ADD CONSTRAINT EXCLUDE",
       "ALTER TABLE t ADD CONSTRAINT t_a_excl EXCLUDE USING btree (a WITH =)",
       RoleLock(TABLE, AE), note="builds the index"),
    _f("ALTER TABLE VALIDATE CONSTRAINT", ("ALTER TABLE t VALIDATE CONSTRAINT t_b_check",
       "ALTER TABLE c VALIDATE CONSTRAINT c_q_fkey"), RoleLock(TABLE, SUE),
       RoleLock(REFERENCED, ROW_SHARE, when=_FK_REFERENCED), note="scans the table"),
    _f("ALTER TABLE DROP CONSTRAINT", ("ALTER TABLE t DROP CONSTRAINT t_a_check",
       "ALTER TABLE c DROP CONSTRAINT c_p_fkey"), RoleLock(TABLE, AE),
       RoleLock(REFERENCED, AE, when=_FK_REFERENCED)),
    _f("ALTER TABLE ENABLE or DISABLE TRIGGER", ("ALTER TABLE t DISABLE TRIGGER t_tr",
       "ALTER TABLE t ENABLE TRIGGER t_tr", "ALTER TABLE t DISABLE TRIGGER ALL"),
       RoleLock(TABLE, SRE)),
    _f("ALTER TABLE ENABLE or DISABLE RULE", "ALTER TABLE t DISABLE RULE t_rule",
       RoleLock(TABLE, AE)),
    _f("ALTER TABLE ENABLE, DISABLE or FORCE ROW LEVEL SECURITY",
       "ALTER TABLE t ENABLE ROW LEVEL SECURITY", RoleLock(TABLE, AE)),
    _f("ALTER TABLE SET or RESET (storage parameters)", ("ALTER TABLE t SET (fillfactor = 70)",
       "ALTER TABLE t RESET (fillfactor)", "ALTER TABLE t SET (autovacuum_enabled = false)"),
       RoleLock(TABLE, SUE)),
    _f("ALTER TABLE SET LOGGED or UNLOGGED", "ALTER TABLE t SET UNLOGGED", RoleLock(TABLE, AE),
       new_file=True),
    _f("ALTER TABLE SET ACCESS METHOD", "ALTER TABLE t SET ACCESS METHOD heap",
       RoleLock(TABLE, AE), new_file=None),
    _f("ALTER TABLE SET TABLESPACE", "ALTER TABLE t SET TABLESPACE pg_default",
       RoleLock(TABLE, AE), new_file=None),
    _f("ALTER TABLE CLUSTER ON or SET WITHOUT CLUSTER", ("ALTER TABLE t CLUSTER ON t_a_idx",
       "ALTER TABLE t SET WITHOUT CLUSTER"),
       RoleLock(TABLE, SUE)),
    _f("ALTER TABLE OWNER TO", "ALTER TABLE t OWNER TO CURRENT_USER", RoleLock(TABLE, AE)),
    _f("ALTER TABLE REPLICA IDENTITY", "ALTER TABLE t REPLICA IDENTITY FULL", RoleLock(TABLE, AE)),
    _f("ALTER TABLE ATTACH PARTITION",
       "ALTER TABLE m ATTACH PARTITION m2 FOR VALUES FROM (10) TO (20)",
       RoleLock(PARENT, SUE), RoleLock(PARTITION, AE), note="scans the partition"),
    _f("ALTER TABLE DETACH PARTITION", "ALTER TABLE m DETACH PARTITION m1",
       RoleLock(PARENT, AE), RoleLock(PARTITION, AE)),
    _f("ALTER TABLE DETACH PARTITION CONCURRENTLY",
       "ALTER TABLE m DETACH PARTITION m1 CONCURRENTLY",
       RoleLock(PARENT, SUE), RoleLock(PARTITION, SUE), transactional=False),
    _f("ALTER TABLE RENAME", "ALTER TABLE t RENAME TO t2", RoleLock(TABLE, AE)),
    _f("ALTER TABLE RENAME COLUMN", "ALTER TABLE t RENAME COLUMN b TO b2", RoleLock(TABLE, AE)),
    _f("ALTER TABLE RENAME CONSTRAINT", ("ALTER TABLE t RENAME CONSTRAINT t_pkey TO t_pk",
       "ALTER TABLE t RENAME CONSTRAINT t_a_check TO t_a_positive"),
       RoleLock(TABLE, AE)),
    _f("ALTER TABLE SET SCHEMA", "ALTER TABLE t SET SCHEMA other", RoleLock(TABLE, AE)),
    # -- indexes (indexcmds.c) ---------------------------------------------------------------
    _f("CREATE INDEX", ("CREATE INDEX t_b_idx ON t (b)", "CREATE UNIQUE INDEX t_b_idx ON t (b)"),
       RoleLock(TABLE, SHARE), note="builds the index"),
    _f("CREATE INDEX CONCURRENTLY", "CREATE INDEX CONCURRENTLY t_b_idx ON t (b)",
       RoleLock(TABLE, SUE), transactional=False),
    _f("DROP INDEX", "DROP INDEX t_a_idx", RoleLock(INDEX, AE), RoleLock(INDEX_TABLE, AE)),
    _f("DROP INDEX CONCURRENTLY", "DROP INDEX CONCURRENTLY t_a_idx", RoleLock(INDEX, SUE),
       RoleLock(INDEX_TABLE, SUE), transactional=False),
    _f("ALTER INDEX RENAME", "ALTER INDEX t_a_idx RENAME TO t_a_idx2", RoleLock(INDEX, SUE)),
    _f("ALTER INDEX SET (storage parameters)", "ALTER INDEX t_a_idx SET (fillfactor = 70)",
       RoleLock(INDEX, SUE)),
    _f("REINDEX INDEX", "REINDEX INDEX t_a_idx", RoleLock(INDEX, AE), RoleLock(INDEX_TABLE, SHARE),
       note="rebuilds the index: queries that would use it wait"),
    _f("REINDEX TABLE", "REINDEX TABLE t", RoleLock(TABLE, SHARE), RoleLock(INDEXES, AE),
       note="rebuilds every index: queries that would use one wait"),
    _f("REINDEX INDEX CONCURRENTLY", "REINDEX INDEX CONCURRENTLY t_a_idx", RoleLock(INDEX, SUE),
       RoleLock(INDEX_TABLE, SUE), transactional=False),
    _f("REINDEX TABLE CONCURRENTLY", "REINDEX TABLE CONCURRENTLY t", RoleLock(TABLE, SUE),
       RoleLock(INDEXES, SUE), transactional=False),
    # -- tables ------------------------------------------------------------------------------
    _f("CREATE TABLE", ("CREATE TABLE n (id int)", "CREATE TABLE n (id int REFERENCES p (id))",
       "CREATE TABLE n (LIKE t INCLUDING ALL)"),
       RoleLock(REFERENCED, SRE, when="for each table its foreign keys reference")),
    _f("CREATE TABLE PARTITION OF", "CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (20) TO (30)",
       RoleLock(PARENT, AE)),
    _f("CREATE TABLE AS", "CREATE TABLE n AS SELECT * FROM t"),
    _f("DROP TABLE", ("DROP TABLE c", "DROP TABLE m2"), RoleLock(TABLE, AE),
       RoleLock(REFERENCED, AE, when="for each table its foreign keys reference")),
    _f("TRUNCATE", "TRUNCATE t", RoleLock(TABLE, AE), new_file=True),
    _f("INSERT", "INSERT INTO t (id, a) VALUES (1, 1)", RoleLock(TABLE, ROW_EXCLUSIVE)),
    _f("UPDATE", "UPDATE t SET b = 'x'", RoleLock(TABLE, ROW_EXCLUSIVE),
       note="and a row lock on each row it changes"),
    _f("DELETE", "DELETE FROM t", RoleLock(TABLE, ROW_EXCLUSIVE),
       note="and a row lock on each row it deletes"),
    _f("SELECT", "SELECT * FROM t", note="ACCESS SHARE on the tables it reads"),
    _f("ANALYZE", "ANALYZE t", RoleLock(TABLE, SUE)),
    _f("VACUUM", "VACUUM t", RoleLock(TABLE, SUE), transactional=False),
    _f("VACUUM FULL", "VACUUM FULL t", RoleLock(TABLE, AE), transactional=False, new_file=True),
    _f("CLUSTER", "CLUSTER t USING t_a_idx", RoleLock(TABLE, AE), new_file=True),
    _f("CREATE STATISTICS", "CREATE STATISTICS t_st ON a, c FROM t", RoleLock(TABLE, SUE)),
    _f("GRANT or REVOKE on a table", ("GRANT SELECT ON t TO PUBLIC",
       "REVOKE SELECT ON t FROM PUBLIC"),
       RoleLock(TABLE, ACCESS_SHARE, pg15=NONE)),
    # -- triggers, policies, rules (trigger.c, policy.c, rewriteDefine.c) ---------------------
    _f("CREATE TRIGGER", "CREATE TRIGGER t_tr2 AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
       RoleLock(TABLE, SRE)),
    _f("DROP TRIGGER", "DROP TRIGGER t_tr ON t", RoleLock(TABLE, AE)),
    _f("ALTER TRIGGER RENAME", "ALTER TRIGGER t_tr ON t RENAME TO t_tr2", RoleLock(TABLE, AE)),
    _f("CREATE POLICY", "CREATE POLICY t_pol2 ON t USING (true)", RoleLock(TABLE, AE)),
    _f("ALTER POLICY", "ALTER POLICY t_pol ON t USING (false)", RoleLock(TABLE, AE)),
    _f("ALTER POLICY RENAME", "ALTER POLICY t_pol ON t RENAME TO t_pol2", RoleLock(TABLE, AE)),
    _f("DROP POLICY", "DROP POLICY t_pol ON t", RoleLock(TABLE, AE)),
    _f("CREATE RULE", "CREATE RULE t_rule2 AS ON UPDATE TO t DO ALSO NOTHING", RoleLock(TABLE, AE)),
    _f("ALTER RULE RENAME", "ALTER RULE t_rule ON t RENAME TO t_rule2", RoleLock(TABLE, AE)),
    _f("DROP RULE", "DROP RULE t_rule ON t", RoleLock(TABLE, AE)),
    # -- comments (comment.c: get_object_address's lock on the object) -----------------------
    _f("COMMENT ON TABLE, COLUMN, VIEW, MATERIALIZED VIEW or SEQUENCE",
       ("COMMENT ON TABLE t IS 'x'", "COMMENT ON COLUMN t.a IS 'x'", "COMMENT ON VIEW v IS 'x'",
        "COMMENT ON MATERIALIZED VIEW mv IS 'x'", "COMMENT ON SEQUENCE s IS 'x'"),
       RoleLock(RELATION, SUE)),
    _f("COMMENT ON INDEX", "COMMENT ON INDEX t_a_idx IS 'x'", RoleLock(INDEX, SUE)),
    _f("COMMENT ON CONSTRAINT, TRIGGER, POLICY or RULE", ("COMMENT ON TRIGGER t_tr ON t IS 'x'",
       "COMMENT ON CONSTRAINT t_a_check ON t IS 'x'", "COMMENT ON POLICY t_pol ON t IS 'x'",
       "COMMENT ON RULE t_rule ON t IS 'x'"),
       RoleLock(TABLE, ACCESS_SHARE)),
    # -- views and materialized views --------------------------------------------------------
    _f("CREATE VIEW", "CREATE VIEW v2 AS SELECT * FROM t"),
    _f("CREATE OR REPLACE VIEW", "CREATE OR REPLACE VIEW v AS SELECT id, a, b FROM t",
       RoleLock(VIEW, AE, when="when it exists")),
    _f("DROP VIEW", "DROP VIEW v", RoleLock(VIEW, AE)),
    _f("ALTER VIEW RENAME", "ALTER VIEW v RENAME TO v2", RoleLock(VIEW, AE)),
    _f("CREATE MATERIALIZED VIEW", "CREATE MATERIALIZED VIEW mv2 AS SELECT * FROM t"),
    _f("REFRESH MATERIALIZED VIEW", "REFRESH MATERIALIZED VIEW mv", RoleLock(MATVIEW, AE),
       new_file=True),
    _f("REFRESH MATERIALIZED VIEW CONCURRENTLY", "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
       RoleLock(MATVIEW, EXCLUSIVE)),
    _f("DROP MATERIALIZED VIEW", "DROP MATERIALIZED VIEW mv", RoleLock(MATVIEW, AE)),
    # -- sequences ---------------------------------------------------------------------------
    _f("CREATE SEQUENCE", "CREATE SEQUENCE s2"),
    _f("ALTER SEQUENCE", ("ALTER SEQUENCE s RESTART", "ALTER SEQUENCE s INCREMENT BY 2"),
       RoleLock(SEQUENCE, SRE)),
    _f("ALTER SEQUENCE RENAME", "ALTER SEQUENCE s RENAME TO s2", RoleLock(SEQUENCE, AE)),
    _f("DROP SEQUENCE", "DROP SEQUENCE s", RoleLock(SEQUENCE, AE)),
    # -- types, domains, functions, schemas ---------------------------------------------------
    _f("ALTER TYPE ADD VALUE", "ALTER TYPE mood ADD VALUE 'c'"),
    _f("ALTER TYPE RENAME VALUE", "ALTER TYPE mood RENAME VALUE 'a' TO 'z'"),
    _f("ALTER DOMAIN ADD CONSTRAINT",
       "ALTER DOMAIN email ADD CONSTRAINT email_check CHECK (VALUE <> '')",
       RoleLock(DOMAIN_TABLES, SHARE), note="checks every row of every table using it"),
    _f("CREATE FUNCTION or PROCEDURE",
       "CREATE FUNCTION h() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$"),
    _f("DROP FUNCTION or PROCEDURE", "DROP FUNCTION g()",
       note="with CASCADE, the tables of the triggers and defaults it drops are locked too"),
    _f("CREATE TYPE", "CREATE TYPE color AS ENUM ('red')"),
    _f("DROP TYPE", "DROP TYPE feeling"),
    _f("CREATE SCHEMA", "CREATE SCHEMA sch"),
    _f("RENAME of a type, function or schema", ("ALTER TYPE mood RENAME TO mood2",
       "ALTER FUNCTION f() RENAME TO f2", "ALTER SCHEMA other RENAME TO other2")),
)  # fmt: skip

FACTS_BY_KIND: dict[str, LockFact] = {fact.kind: fact for fact in LOCK_FACTS}

__all__ = ["FACTS_BY_KIND", "LOCK_FACTS", "MODES", "STRENGTH", "LockFact", "RoleLock"]
