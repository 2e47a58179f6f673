"""Rule lock-table: an explicit LOCK TABLE strong enough to block the application."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

_MODES = {
    5: "SHARE",
    6: "SHARE ROW EXCLUSIVE",
    7: "EXCLUSIVE",
    8: "ACCESS EXCLUSIVE",
}
_SHARE = 5
_ACCESS_EXCLUSIVE = 8


@register
class LockTable(Rule):
    code = "lock-table"
    category = "locking"
    summary = "LOCK TABLE in SHARE mode or stronger blocks the application until commit"
    help = (
        "let each statement take the lock it needs, for as short as possible; pgshift bounds"
        " every lock wait with lock_timeout and retries"
    )
    nodes = ("LockStmt",)
    blocks = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        mode = int(node.get("mode", _ACCESS_EXCLUSIVE))
        if mode < _SHARE:
            return
        tables = [
            t
            for rel in node.get("relations") or ()
            if (t := tree.table(rel)) is not None and not ctx.is_new(t)
        ]
        if not tables:
            return
        blocked = "reads and writes" if mode == _ACCESS_EXCLUSIVE else "writes"
        yield Hit(
            f"LOCK TABLE {', '.join(map(str, tables))} IN {_MODES[mode]} MODE blocks {blocked}"
            " of the application until the migration commits"
        )
