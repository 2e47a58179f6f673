"""What the lint engine remembers from each statement for the rules that read later ones."""

from __future__ import annotations

from pgshift.lint import tree
from pgshift.lint.context import LintContext, ProjectState, Stmt
from pgshift.lint.engine import _learn
from pgshift.source.sql import split_statements


def learn(sql: str, project: ProjectState | None = None) -> LintContext:
    statements, problems = split_statements(sql, "m.sql")
    assert problems == []
    ctx = LintContext("m.sql", sql, project=project)
    for statement in statements:
        _learn(Stmt(statement, *tree.unwrap(statement.tree or {})), ctx)
    return ctx


def names(tables: list[tree.TableName]) -> list[str]:
    return [str(t) for t in tables]


def test_new_tables_indexes_and_altered_tables() -> None:
    ctx = learn(
        "CREATE TABLE app.a (id int);\n"
        "CREATE TABLE b AS SELECT 1 AS x;\n"
        "CREATE INDEX i ON a (id);\n"
        "CREATE INDEX ON a (id);\n"
        "ALTER TABLE c ADD COLUMN d int;\n"
        "SELECT 1;\n"
    )
    assert names(ctx.new_tables) == ["app.a", "b"]
    assert ctx.new_indexes == {"i"}
    assert names(ctx.altered_tables) == ["c"]
    assert ctx.not_valid == {}


def test_constraints_added_and_validated() -> None:
    project = ProjectState()
    ctx = learn(
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p NOT VALID;\n"
        "ALTER TABLE t ADD CONSTRAINT nn CHECK (b IS NOT NULL) NOT VALID;\n"
        "ALTER TABLE t ADD CONSTRAINT ok CHECK (c IS NOT NULL);\n",
        project,
    )
    assert set(ctx.not_valid) == {"fk", "nn"}
    assert set(project.pending_not_null) == {"nn"}
    assert [column for _, column in project.validated_not_null] == ["c"]
    learn("ALTER TABLE t VALIDATE CONSTRAINT nn, VALIDATE CONSTRAINT other;", project)
    assert project.pending_not_null == {}
    assert [column for _, column in project.validated_not_null] == ["c", "b"]


def test_linting_only_some_migrations_still_learns_from_the_others() -> None:
    """`up` lints only its planned files; an applied one's validated check still counts."""
    from pathlib import Path

    from pgshift.lint.engine import Linter
    from pgshift.model import Header, Migration

    def migration(version: str, sql: str) -> Migration:
        statements, _ = split_statements(sql, f"{version}.sql")
        path = Path(f"/m/{version}_m.sql")
        return Migration(version, "m", path, sql, version, Header(), statements, None)

    earlier = migration(
        "20250101000000",
        "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;\n"
        "ALTER TABLE users VALIDATE CONSTRAINT email_nn;\n"
        "DROP TABLE old;\n",
    )
    planned = migration("20250102000000", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n")
    linter = Linter(16)
    everything = linter.lint_migrations([earlier, planned])
    assert any(f.file == str(earlier.path) for f in everything)  # the drop is a finding
    only = linter.lint_migrations([earlier, planned], only={planned.version})
    assert [f for f in only if f.file == str(earlier.path)] == []  # not linted again
    assert [f.code for f in only if f.code == "set-not-null"] == []  # the check still counts
    alone = linter.lint_migrations([planned], only={planned.version})
    assert [f.code for f in alone if f.code == "set-not-null"] == ["set-not-null"]
