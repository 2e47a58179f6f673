"""Rule delete-all-rows: DELETE without WHERE, or TRUNCATE, of an existing table."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DeleteAllRows(Rule):
    code = "delete-all-rows"
    category = "data-loss"
    summary = "DELETE without WHERE or TRUNCATE removes every row of an existing table"
    help = (
        "delete only what must go, with a WHERE clause, in batches from a script; if the table"
        " really must be emptied, keep a backup and silence this rule on that statement"
    )
    nodes = ("DeleteStmt", "TruncateStmt")
    blocks = True
    destructive = True
    in_rollback = False  # a rollback emptying the rows its migration added is its job

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if stmt.kind == "DeleteStmt":
            table = tree.table(node.get("relation"))
            if node.get("whereClause") or table is None or ctx.is_new(table):
                return
            if table.name == "pg_enum":  # drop-enum-value says what is wrong with that
                return
            yield Hit(
                f"DELETE FROM {table} without WHERE deletes every row for good, and holds a"
                " lock on each until the migration commits: writes to them wait"
            )
            return
        if node.get("behavior") == "DROP_CASCADE":  # truncate-cascade reports it
            return
        tables = [
            t
            for rel in node.get("relations") or ()
            if (t := tree.table(rel)) is not None and not ctx.is_new(t)
        ]
        if tables:
            yield Hit(
                f"TRUNCATE {', '.join(map(str, tables))} deletes every row for good under an"
                " ACCESS EXCLUSIVE lock: reads and writes wait until the migration commits"
            )
