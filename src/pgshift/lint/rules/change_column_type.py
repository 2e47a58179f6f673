"""Rule change-column-type: ALTER COLUMN ... TYPE on an existing table."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._common import type_location


@register
class ChangeColumnType(Rule):
    code = "change-column-type"
    summary = "changing a column's type rewrites the table and its indexes under an exclusive lock"
    help = (
        "add a new column of the new type, write to both from the application, backfill in"
        " batches, switch reads, then drop the old column in a later migration"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True
    destructive = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype != "AT_AlterColumnType":
                continue
            column = tree.column_def(cmd)
            yield Hit(
                f"changing the type of {table}.{cmd.get('name')} to {tree.type_name(column)}"
                " takes an ACCESS EXCLUSIVE lock and, unless the types are binary compatible"
                " (varchar(n) to text or to a longer varchar), rewrites the table and rebuilds"
                " its indexes: reads and writes stop meanwhile, and running code may break",
                at=type_location(column),
            )
