"""Rule cluster: CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class Cluster(Rule):
    code = "cluster"
    category = "rewrite"
    summary = "CLUSTER rewrites the table in index order while nobody can read or write it"
    help = "use pg_repack --order-by, which reorders the table online"
    nodes = ("ClusterStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        what = str(table) if table else "every previously clustered table"
        yield Hit(
            f"CLUSTER rewrites {what} holding an ACCESS EXCLUSIVE lock: reads and writes stop"
            " until the copy and its indexes are rebuilt"
        )
