"""Rule drop-constraint: dropping a table constraint removes a guarantee running code relies on."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DropConstraint(Rule):
    code = "drop-constraint"
    severity = "note"
    category = "semantics"
    summary = "DROP CONSTRAINT lets in rows the constraint kept out, and breaks ON CONFLICT on it"
    help = (
        "make sure no code relies on it (ON CONFLICT ON CONSTRAINT, a unique lookup, error"
        " handling by name); re-adding it later means a NOT VALID + VALIDATE cycle"
    )
    nodes = ("AlterTableStmt",)
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype == "AT_DropConstraint" and str(cmd.get("name")) not in ctx.not_valid:
                yield Hit(
                    f"dropping constraint {cmd.get('name')} of {table}: rows it refused can come"
                    " in from now on, and statements that name it (ON CONFLICT ON CONSTRAINT)"
                    " fail; the drop itself is catalog-only under a brief ACCESS EXCLUSIVE lock"
                )
