"""Rule rename-column: renaming a column breaks the code that is running."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class RenameColumn(Rule):
    code = "rename-column"
    category = "compatibility"
    summary = "renaming a column breaks every running query that names it"
    help = (
        "add the new column, write to both, backfill, move reads, then drop the old one;"
        " or put a view with the new name in front of the table"
    )
    nodes = ("RenameStmt",)

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if node.get("renameType") != "OBJECT_COLUMN":
            return
        table = tree.table(node.get("relation"))
        if ctx.is_new(table):
            return
        yield Hit(
            f"renaming {table}.{node.get('subname')} to {node.get('newname')}: the application"
            " version running during and after the deploy still uses the old name and fails"
        )
