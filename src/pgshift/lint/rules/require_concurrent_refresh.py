"""Rule require-concurrent-refresh: REFRESH MATERIALIZED VIEW without CONCURRENTLY."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.source.lock_table import MATVIEW
from pgshift.source.locks import mode_of

#: From the lock table (source/lock_table.py), which tests check against the server.
_MODE = mode_of("REFRESH MATERIALIZED VIEW", MATVIEW)


@register
class RequireConcurrentRefresh(Rule):
    code = "require-concurrent-refresh"
    category = "locking"
    summary = "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks every read of the view"
    help = (
        "use REFRESH MATERIALIZED VIEW CONCURRENTLY (the view needs a unique index on"
        " plain columns)"
    )
    nodes = ("RefreshMatViewStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        view = tree.table(node.get("relation"))
        if node.get("concurrent") or node.get("skipData") or ctx.is_new(view):
            return
        yield Hit(
            f"REFRESH MATERIALIZED VIEW {view} holds an {_MODE} lock on it while the"
            " query reruns: every SELECT of the view waits"
        )
