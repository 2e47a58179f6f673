"""Rule drop-database: a migration has no business dropping a database."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DropDatabase(Rule):
    code = "drop-database"
    category = "data-loss"
    summary = "DROP DATABASE in a migration deletes a whole database"
    help = "drop databases by hand, outside the migrations"
    nodes = ("DropdbStmt",)
    destructive = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        yield Hit(f"DROP DATABASE {stmt.node.get('dbname')} deletes a whole database and its data")
