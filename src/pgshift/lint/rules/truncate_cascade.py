"""Rule truncate-cascade: TRUNCATE ... CASCADE empties tables the statement does not name."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class TruncateCascade(Rule):
    code = "truncate-cascade"
    category = "data-loss"
    summary = "TRUNCATE ... CASCADE also empties every table with a foreign key to it"
    help = "name every table to empty explicitly, without CASCADE"
    nodes = ("TruncateStmt",)
    blocks = True
    destructive = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if node.get("behavior") != "DROP_CASCADE":
            return
        names = ", ".join(str(tree.table(r)) for r in node.get("relations") or ())
        yield Hit(
            f"TRUNCATE {names} CASCADE also deletes every row of every table that references"
            " them, recursively, under ACCESS EXCLUSIVE locks on all of them"
        )
