"""Rule set-not-null: SET NOT NULL scans the whole table under an exclusive lock."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class SetNotNull(Rule):
    code = "set-not-null"
    summary = "ALTER COLUMN ... SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock"
    help = (
        "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later migration"
        " (no exclusive lock), then SET NOT NULL, which skips the scan (PostgreSQL 12+)"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if table is None or ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype != "AT_SetNotNull":
                continue
            column = str(cmd.get("name"))
            if ctx.pg_major >= 12 and ctx.project.not_null_proven(table, column):
                continue
            help_text = None
            if ctx.pg_major < 12:
                help_text = (
                    f"PostgreSQL {ctx.pg_major} always scans: keep a validated"
                    " CHECK (col IS NOT NULL) instead of NOT NULL until you upgrade"
                )
            yield Hit(
                f"SET NOT NULL on {table}.{column} holds an ACCESS EXCLUSIVE lock while it"
                " reads every row to check for NULLs: reads and writes stop meanwhile",
                help=help_text,
            )
