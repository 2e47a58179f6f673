"""Rule require-concurrent-reindex: REINDEX without CONCURRENTLY."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class RequireConcurrentReindex(Rule):
    code = "require-concurrent-reindex"
    category = "locking"
    summary = "REINDEX without CONCURRENTLY blocks writes (and reads using the index)"
    help = "use REINDEX (CONCURRENTLY) ... (PostgreSQL 12 and later)"
    nodes = ("ReindexStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if "concurrently" in tree.def_names(node.get("params")):
            return
        if ctx.is_new(tree.table(node.get("relation"))):
            return
        help_text = None
        if ctx.pg_major < 12:
            help_text = (
                f"PostgreSQL {ctx.pg_major} has no REINDEX CONCURRENTLY: build a new index with"
                " CREATE INDEX CONCURRENTLY, then drop the old one with DROP INDEX CONCURRENTLY"
            )
        yield Hit(
            "REINDEX without CONCURRENTLY locks out writes to the table, and reads that would"
            " use the index, until the rebuild finishes",
            help=help_text,
        )
