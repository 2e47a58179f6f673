"""Rule alter-table-rewrite: ALTER TABLE forms that copy the whole table under lock."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

_REWRITES = {
    "AT_SetTableSpace": "SET TABLESPACE copies every page of the table",
    "AT_SetLogged": "SET LOGGED writes the whole table to the WAL",
    "AT_SetUnLogged": "SET UNLOGGED rewrites the whole table",
    "AT_SetAccessMethod": "SET ACCESS METHOD rewrites the whole table",
}


@register
class AlterTableRewrite(Rule):
    code = "alter-table-rewrite"
    category = "rewrite"
    summary = "SET TABLESPACE / LOGGED / UNLOGGED / ACCESS METHOD rewrite the table under lock"
    help = (
        "rebuild the table online instead (pg_repack, or a new table filled in batches and"
        " swapped in), or run it in a maintenance window"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, _cmd in tree.alter_commands(stmt.node):
            what = _REWRITES.get(subtype)
            if what is not None:
                yield Hit(
                    f"ALTER TABLE {table} {what} while holding an ACCESS EXCLUSIVE lock:"
                    " reads and writes stop until it is done"
                )
