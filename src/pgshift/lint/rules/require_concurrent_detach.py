"""Rule require-concurrent-detach: DETACH PARTITION without CONCURRENTLY."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.source.lock_table import PARENT
from pgshift.source.locks import mode_of

#: From the lock table (source/lock_table.py), which tests check against the server.
_MODE = mode_of("ALTER TABLE DETACH PARTITION", PARENT)


@register
class RequireConcurrentDetach(Rule):
    code = "require-concurrent-detach"
    category = "locking"
    summary = "DETACH PARTITION without CONCURRENTLY locks the whole partitioned table"
    help = "use ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14 and later)"
    nodes = ("AlterTableStmt",)
    blocks = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype != "AT_DetachPartition":
                continue
            part = (cmd.get("def") or {}).get("PartitionCmd", {})
            if part.get("concurrent"):
                continue
            help_text = None
            if ctx.pg_major < 14:
                help_text = (
                    f"PostgreSQL {ctx.pg_major} has no concurrent detach: run it in a quiet"
                    " window, or upgrade to 14+"
                )
            yield Hit(
                f"DETACH PARTITION {tree.table(part.get('name'))} takes an {_MODE}"
                f" lock on {table}: reads and writes of every partition wait",
                help=help_text,
            )
