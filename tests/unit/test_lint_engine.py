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
