"""Rule add-exclusion-constraint: an EXCLUDE constraint is built and checked under lock."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class AddExclusionConstraint(Rule):
    code = "add-exclusion-constraint"
    category = "locking"
    summary = "an EXCLUDE constraint on an existing table builds its index under an exclusive lock"
    help = (
        "there is no NOT VALID or USING INDEX form for EXCLUDE: add it in a quiet window, or"
        " enforce the rule with a trigger first and add the constraint when the table is small"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            con = tree.constraint_def(cmd)
            if subtype == "AT_AddConstraint" and con.get("contype") == "CONSTR_EXCLUSION":
                yield Hit(
                    f"adding an EXCLUDE constraint to {table} builds its index and checks every"
                    " row while holding an ACCESS EXCLUSIVE lock: reads and writes wait",
                    at=tree.location(con),
                )
