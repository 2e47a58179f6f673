"""Rule require-concurrent-index: CREATE INDEX without CONCURRENTLY on an existing table."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.source.locks import mode_of

#: From the lock table (source/lock_table.py), which tests check against the server.
_MODE = mode_of("CREATE INDEX")


@register
class RequireConcurrentIndex(Rule):
    code = "require-concurrent-index"
    category = "locking"
    summary = "CREATE INDEX without CONCURRENTLY blocks writes for the whole build"
    help = (
        "use CREATE INDEX CONCURRENTLY (pgshift runs it outside a transaction by itself);"
        " it lets writes continue while the index builds"
    )
    nodes = ("IndexStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        table = tree.table(node.get("relation"))
        if node.get("concurrent") or ctx.is_new(table):
            return
        kind = "CREATE UNIQUE INDEX" if node.get("unique") else "CREATE INDEX"
        yield Hit(
            f"{kind} without CONCURRENTLY holds a {_MODE} lock on {table}: every INSERT, UPDATE"
            " and DELETE on it waits until the whole index is built"
        )
