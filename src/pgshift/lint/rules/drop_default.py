"""Rule drop-default: DROP DEFAULT or DROP EXPRESSION: what inserts omitting the column get."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DropDefault(Rule):
    code = "drop-default"
    severity = "note"
    category = "semantics"
    summary = "DROP DEFAULT / DROP EXPRESSION: inserts that omit the column get NULL from now on"
    help = (
        "first deploy code that always sets the column, then drop the default; the change"
        " itself is catalog-only"
    )
    nodes = ("AlterTableStmt",)
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            column = f"{table}.{cmd.get('name')}"
            if subtype == "AT_ColumnDefault" and cmd.get("def") is None:
                yield Hit(
                    f"dropping the default of {column}: inserts of the running application that"
                    " leave the column out now store NULL, or fail if it is NOT NULL"
                )
            elif subtype == "AT_DropExpression":
                yield Hit(
                    f"{column} stops being generated: existing rows keep their values, but new"
                    " and updated rows get NULL unless the application now writes it"
                )
