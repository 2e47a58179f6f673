"""Rule backfill-in-ddl-transaction: UPDATE or DELETE of a table altered earlier in the file."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class BackfillInDdlTransaction(Rule):
    code = "backfill-in-ddl-transaction"
    severity = "warning"
    category = "locking"
    summary = "a backfill in the same transaction as an ALTER TABLE keeps its lock for the backfill"
    help = (
        "move the backfill to its own migration (or a script) that updates in batches and"
        " commits between them"
    )
    nodes = ("UpdateStmt", "DeleteStmt")
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if not ctx.transactional or ctx.is_new(table) or not ctx.was_altered(table):
            return
        verb = "UPDATE" if stmt.kind == "UpdateStmt" else "DELETE"
        yield Hit(
            f"{verb} of {table} runs in the transaction that altered it: the ALTER TABLE's"
            " ACCESS EXCLUSIVE lock is held until the whole backfill commits, so reads and"
            " writes wait for all of it"
        )
