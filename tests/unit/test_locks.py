"""What `rollback dry-run` says a statement locks, read from the lock table through the parser.

The modes themselves are checked against PostgreSQL by tests/integration/test_lock_table.py;
here, the words an operator reads before reverting a production table, one case per way a
statement names its relations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.source import lock_table as lt
from pgshift.source.locks import classify, markdown, mode_of, statement_locks

AE = "ACCESS EXCLUSIVE"
SUE = "SHARE UPDATE EXCLUSIVE"
SRE = "SHARE ROW EXCLUSIVE"
NOTHING = "no lock on an existing relation"
IF_FK = "(when it is a foreign key)"
IF_FK_COLUMN = "(when the column has a foreign key)"


@pytest.mark.parametrize(
    ("sql", "locks"),
    [
        (
            "DROP TABLE app.one",
            (f"{AE} on table app.one", f"{AE} on the tables app.one's foreign keys reference"),
        ),
        ("DROP VIEW v", (f"{AE} on view v",)),
        ("DROP MATERIALIZED VIEW mv", (f"{AE} on materialized view mv",)),
        ("DROP SEQUENCE s", (f"{AE} on sequence s",)),
        ("DROP INDEX i", (f"{AE} on index i", f"{AE} on the table of index i")),
        (
            "DROP INDEX CONCURRENTLY app.i",
            (f"{SUE} on index app.i", f"{SUE} on the table of index app.i"),
        ),
        ("DROP TRIGGER tr ON app.t", (f"{AE} on table app.t",)),
        ("DROP POLICY p ON t", (f"{AE} on table t",)),
        ("DROP RULE r ON t", (f"{AE} on table t",)),
        ("DROP FUNCTION f()", (lt.FACTS_BY_KIND["DROP FUNCTION or PROCEDURE"].note,)),
        ("DROP TYPE mood, feeling", (NOTHING,)),
        ("DROP EXTENSION x", ("not in the lock table (DROP EXTENSION)",)),
    ],
)
def test_drop(sql: str, locks: tuple[str, ...]) -> None:
    assert statement_locks(sql) == locks


@pytest.mark.parametrize(
    ("sql", "locks"),
    [
        (
            "ALTER TABLE t VALIDATE CONSTRAINT c",
            (f"{SUE} on table t", f"ROW SHARE on the table constraint c of t references {IF_FK}"),
        ),
        ("ALTER TABLE t ALTER COLUMN a SET (n_distinct = 100)", (f"{SUE} on table t",)),
        ("ALTER TABLE t ENABLE TRIGGER tr", (f"{SRE} on table t",)),
        (
            "ALTER TABLE t DROP CONSTRAINT fk",
            (f"{AE} on table t", f"{AE} on the table constraint fk of t references {IF_FK}"),
        ),
        (
            "ALTER TABLE app.t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES app.p (id)",
            (f"{SRE} on table app.t", f"{SRE} on referenced table app.p"),
        ),
        # The strongest subcommand wins on each relation, whichever comes first.
        (
            "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id), DROP COLUMN z",
            (
                f"{AE} on table t",
                f"{SRE} on referenced table p",
                f"{AE} on the tables t.z's foreign keys reference {IF_FK_COLUMN}",
            ),
        ),
        (
            "ALTER TABLE t DISABLE TRIGGER tr, ALTER COLUMN a SET STATISTICS 10",
            (f"{SRE} on table t",),
        ),
        (
            "ALTER TABLE m ATTACH PARTITION m2 FOR VALUES IN (1)",
            (f"{SUE} on partitioned table m", f"{AE} on partition m2"),
        ),
        (
            "ALTER TABLE t ADD COLUMN b int REFERENCES p",
            (f"{AE} on table t", f"{SRE} on referenced table p"),
        ),
        ("ALTER TABLE t INHERIT parent", ("not in the lock table (ALTER TABLE AddInherit)",)),
        ("ALTER INDEX i RENAME TO j", (f"{SUE} on index i",)),
        ("ALTER TABLE t RENAME TO u", (f"{AE} on table t",)),
        ("ALTER TYPE mood RENAME TO feeling", (NOTHING,)),
    ],
)
def test_alter(sql: str, locks: tuple[str, ...]) -> None:
    assert statement_locks(sql) == locks


@pytest.mark.parametrize(
    ("sql", "locks"),
    [
        ("CREATE INDEX i ON t (a)", ("SHARE on table t",)),
        ("CREATE INDEX CONCURRENTLY i ON app.t (a)", (f"{SUE} on table app.t",)),
        ("REINDEX INDEX i", (f"{AE} on index i", "SHARE on the table of index i")),
        ("REINDEX TABLE t", ("SHARE on table t", f"{AE} on every index of t")),
        ("COMMENT ON TABLE t IS 'x'", (f"{SUE} on relation t",)),
        ("COMMENT ON COLUMN app.t.a IS 'x'", (f"{SUE} on relation app.t",)),
        ("COMMENT ON TRIGGER tr ON t IS 'x'", ("ACCESS SHARE on table t",)),
        ("TRUNCATE a, app.b", (f"{AE} on table a", f"{AE} on table app.b")),
        ("UPDATE app.t SET a = 1", ("ROW EXCLUSIVE on table app.t",)),
        ("CREATE TABLE t (id int)", (NOTHING,)),
        (
            "CREATE TABLE t (id int REFERENCES p (id), b int REFERENCES app.q)",
            (f"{SRE} on referenced table p", f"{SRE} on referenced table app.q"),
        ),
        (
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
            (f"{SRE} on table t",),
        ),
        ("VACUUM FULL t, app.u", (f"{AE} on table t", f"{AE} on table app.u")),
        ("ANALYZE t", (f"{SUE} on table t",)),
        (
            "REFRESH MATERIALIZED VIEW CONCURRENTLY app.mv",
            ("EXCLUSIVE on materialized view app.mv",),
        ),
        ("SELECT 1", ("ACCESS SHARE on the tables it reads",)),
        (
            "ALTER DOMAIN email ADD CONSTRAINT c CHECK (VALUE <> '')",
            ("SHARE on every table with a column of domain email",),
        ),
    ],
)
def test_other_statements(sql: str, locks: tuple[str, ...]) -> None:
    assert statement_locks(sql) == locks


def test_where_the_majors_differ_both_are_said_unless_the_major_is_known() -> None:
    sql = "GRANT SELECT ON t TO PUBLIC"
    assert statement_locks(sql) == ("ACCESS SHARE on table t (PostgreSQL 15: no lock)",)
    assert statement_locks(sql, 18) == ("ACCESS SHARE on table t",)
    assert statement_locks(sql, 15) == ("no lock on table t",)
    assert statement_locks(sql, 16) == ("ACCESS SHARE on table t (PostgreSQL 15: no lock)",)


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT 1; SELECT 2", ""])
def test_what_does_not_parse_as_one_statement_is_unknown(sql: str) -> None:
    assert statement_locks(sql) == ("unknown (does not parse)",)
    assert classify(sql) is None


def test_every_example_is_of_its_own_kind() -> None:
    """Each kind's examples classify as that kind: the integration test runs them as such."""
    for fact in lt.LOCK_FACTS:
        for example in fact.examples:
            classified = classify(example)
            assert classified is not None
            assert [c.kind for c in classified] == [fact.kind], example


def test_mode_of_is_what_the_lint_messages_read() -> None:
    assert mode_of("CREATE INDEX") == "SHARE"
    assert mode_of("DROP INDEX", lt.INDEX_TABLE) == AE
    assert mode_of("GRANT or REVOKE on a table", major=15) == ""
    with pytest.raises(KeyError):
        mode_of("CREATE INDEX", lt.REFERENCED)


def test_docs_locks_page_is_the_lock_table() -> None:
    """docs/locks.md is rendered from the table, so the page cannot drift from what is tested.

    After changing the table: python -c "from pgshift.source.locks import markdown;
    print(markdown(), end='')" > docs/locks.md
    """
    page = Path(__file__).resolve().parents[2] / "docs" / "locks.md"
    assert page.read_text(encoding="utf-8") == markdown()
    for fact in lt.LOCK_FACTS:
        assert f"| {fact.kind}" in page.read_text(encoding="utf-8")
