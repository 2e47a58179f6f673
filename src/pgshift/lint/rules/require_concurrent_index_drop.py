"""Rule require-concurrent-index-drop: DROP INDEX without CONCURRENTLY."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.source.lock_table import INDEX_TABLE
from pgshift.source.locks import mode_of

#: From the lock table (source/lock_table.py), which tests check against the server.
_MODE = mode_of("DROP INDEX", INDEX_TABLE)


@register
class RequireConcurrentIndexDrop(Rule):
    code = "require-concurrent-index-drop"
    category = "locking"
    summary = "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table"
    help = "use DROP INDEX CONCURRENTLY (pgshift runs it outside a transaction by itself)"
    nodes = ("DropStmt",)
    blocks = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if node.get("removeType") != "OBJECT_INDEX" or node.get("concurrent"):
            return
        for item in node.get("objects") or ():
            names = tree.strings(item.get("List", {}).get("items"))
            if names and names[-1] in ctx.new_indexes:
                continue
            shown = ".".join(names)
            yield Hit(
                f"DROP INDEX {shown} without CONCURRENTLY takes an {_MODE} lock on its"
                " table: reads and writes wait, and queue behind any long query already on it"
            )
