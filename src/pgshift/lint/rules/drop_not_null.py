"""Rule drop-not-null: allowing NULL where readers assume there is none."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DropNotNull(Rule):
    code = "drop-not-null"
    severity = "note"
    category = "semantics"
    summary = "DROP NOT NULL lets NULLs reach code written to never see one"
    help = "deploy code that handles NULL in this column first, then drop the constraint"
    nodes = ("AlterTableStmt",)
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype == "AT_DropNotNull":
                yield Hit(
                    f"{table}.{cmd.get('name')} may now hold NULL: the running application"
                    " version may not expect it"
                )
