"""Rule drop-column: dropping a column loses its data and breaks code that still reads it."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DropColumn(Rule):
    code = "drop-column"
    category = "data-loss"
    summary = "dropping a column loses its data and breaks code that still uses it"
    help = (
        "first deploy code that no longer reads or writes the column, then drop it and"
        " silence this rule on that statement with -- pgshift-ignore: drop-column"
    )
    nodes = ("AlterTableStmt",)
    destructive = True
    in_rollback = False  # undoing an ADD COLUMN is what a rollback is for

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype == "AT_DropColumn":
                yield Hit(
                    f"dropping column {table}.{cmd.get('name')} deletes its data for good, and"
                    " queries of the running application that name it start failing"
                )
